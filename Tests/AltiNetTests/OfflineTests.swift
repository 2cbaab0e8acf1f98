import AltiAPI
import AltiCore
import AltiNet
import AltiStorage
import Foundation
import Testing

/// No network, and networks that are not the internet yet: said quickly and plainly, never
/// parsed as data.
@Suite struct OfflineTests {
    static func client(origin: String, calls: Calls? = nil) -> GraphQLClient {
        let post = GraphQLOverHTTP.post(using: CurlTransport())
        return GraphQLClient(
            credentials: APICredentials(origin: origin, key: "K", token: "T"),
            retry: RetryPolicy(maxAttempts: 6, baseDelay: .milliseconds(1), maxDelay: .milliseconds(2)),
            post: { url, headers, body in
                calls?.add()
                return try await post(url, headers, body)
            })
    }

    final class Calls: @unchecked Sendable {
        private let lock = NSLock()
        private var count = 0
        var value: Int { lock.withLock { count } }
        func add() { lock.withLock { count += 1 } }
    }

    @Test func connectionRefusedIsOfflineAfterThreeTriesNotTheWholeBudget() async throws {
        // A port nothing listens on: bound, then closed.
        let server = try RawHTTPServer { _ in .respond(status: 200, headers: [], body: []) }
        let origin = "http://127.0.0.1:\(server.port)"
        server.stop()
        let calls = Calls()
        var message = ""
        do {
            _ = try await Self.client(origin: origin, calls: calls).execute("{ support { systemMode } }", withToken: false)
        } catch let error as AltiError {
            #expect(error.kind == .unavailable)
            message = error.message
        }
        #expect(message.hasPrefix("offline: cannot reach \(origin)"), "\(message)")
        #expect(calls.value == 3)  // not 6: no network is said within a few seconds
    }

    @Test func aCaptivePortalIsRecognisedAsNotTheAPI() async throws {
        let portals: [(status: Int, headers: [(String, String)], body: String, expected: String)] = [
            (302, [("Location", "http://login.hotel.example/portal?mac=1")], "", "a redirect to login.hotel.example"),
            (200, [("Content-Type", "text/html; charset=utf-8")], "<html><body>Welcome to Hotel Wi-Fi</body></html>",
             "answered with a web page (HTTP 200), not the API"),
        ]
        for portal in portals {
            let server = try RawHTTPServer { _ in .respond(status: portal.status, headers: portal.headers, body: Array(portal.body.utf8)) }
            defer { server.stop() }
            let calls = Calls()
            var message = ""
            do {
                _ = try await Self.client(origin: "http://127.0.0.1:\(server.port)", calls: calls)
                    .execute("{ support { systemMode } }", withToken: false)
            } catch let error as AltiError {
                #expect(error.kind == .unavailable)
                message = error.message
            }
            #expect(message.contains(portal.expected) && message.contains("sign in to the network"), "\(message)")
            #expect(calls.value == 1)  // recognised at once: not retried, not parsed
        }
    }
}
