@testable import AltiNet
import AltiCrypto
import Foundation
import Testing

/// CurlTransport over a real socket: what the server received, byte for byte.
@Suite struct CurlTransportTests {
    static func ok(_ body: String = "ok", headers: [(String, String)] = []) -> RawHTTPServer.Behavior {
        .respond(status: 200, headers: headers, body: Array(body.utf8))
    }

    static func tempFile(size: Int) throws -> (path: String, bytes: [UInt8]) {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("altinet-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        var bytes = [UInt8](repeating: 0, count: size)
        var state: UInt32 = 2_463_534_242
        for i in 0..<size {  // xorshift: incompressible, reproducible
            state ^= state << 13
            state ^= state >> 17
            state ^= state << 5
            bytes[i] = UInt8(truncatingIfNeeded: state)
        }
        let url = dir.appendingPathComponent("body.bin")
        try Data(bytes).write(to: url)
        return (url.path, bytes)
    }

    final class ProgressLog: @unchecked Sendable {
        private let lock = NSLock()
        private var values: [Int64] = []
        func add(_ v: Int64) {
            lock.lock()
            values.append(v)
            lock.unlock()
        }
        var all: [Int64] {
            lock.lock()
            defer { lock.unlock() }
            return values
        }
    }

    @Test func putStreamsAFileWithExactlyTheCallersHeaders() async throws {
        let server = try RawHTTPServer { _ in Self.ok("stored", headers: [("ETag", "\"abc\"")]) }
        defer { server.stop() }
        let file = try Self.tempFile(size: 3 * 1024 * 1024 + 123)
        let target = "/s3/bkt/pid/a%2Fb+c%20d.jpg?X-Amz-Credential=AK%2F20240301%2Fus-east-1&q=a+b=c&X-Amz-Signature=00ff"
        let log = ProgressLog()
        let transport = CurlTransport()
        let response = try await transport.send(
            HTTPRequest(method: "PUT", url: server.baseURL + target, headers: [("Content-Type", "image/jpeg")],
                        body: .file(path: file.path, offset: 0, length: Int64(file.bytes.count))),
            progress: { log.add($0) })

        #expect(response.status == 200)
        #expect(response.bodyText == "stored")
        #expect(response.header("etag") == "\"abc\"")
        let got = try #require(server.requests.first)
        #expect(server.requests.count == 1)
        #expect(got.method == "PUT")
        #expect(got.target == target)
        #expect(Set(got.headers.map { $0.name.lowercased() }) == ["host", "content-type", "content-length"])
        #expect(got.headers(named: "Host") == ["127.0.0.1:\(server.port)"])
        #expect(got.headers(named: "Content-Type") == ["image/jpeg"])
        #expect(got.headers(named: "Content-Length") == [String(file.bytes.count)])
        #expect(got.headers(named: "Transfer-Encoding").isEmpty)
        #expect(got.headers(named: "Expect").isEmpty)
        #expect(got.headers(named: "Accept").isEmpty)
        #expect(got.body.count == file.bytes.count)
        #expect(Digest.sha1Hex(got.body) == Digest.sha1Hex(file.bytes))
        #expect(log.all.last == Int64(file.bytes.count))
        #expect(log.all == log.all.sorted())
    }

    @Test func putSendsOnlyTheRequestedFileRange() async throws {
        let server = try RawHTTPServer { _ in Self.ok() }
        defer { server.stop() }
        let file = try Self.tempFile(size: 200_000)
        let response = try await CurlTransport().send(HTTPRequest(
            method: "PUT", url: server.baseURL + "/range",
            body: .file(path: file.path, offset: 1000, length: 150_000)))
        #expect(response.status == 200)
        let got = try #require(server.requests.first)
        #expect(got.body == Array(file.bytes[1000..<151_000]))
        #expect(got.headers(named: "Content-Length") == ["150000"])
    }

    @Test func emptyPutSendsContentLengthZero() async throws {
        let server = try RawHTTPServer { _ in Self.ok() }
        defer { server.stop() }
        _ = try await CurlTransport().send(HTTPRequest(method: "PUT", url: server.baseURL + "/empty"))
        let got = try #require(server.requests.first)
        #expect(got.headers(named: "Content-Length") == ["0"])
        #expect(got.headers(named: "Transfer-Encoding").isEmpty)
        #expect(got.body.isEmpty)
    }

    @Test func postSendsBytesWithTheCallersContentTypeOnly() async throws {
        let server = try RawHTTPServer { r in
            .respond(status: 200, headers: [("Content-Type", "application/json")], body: Array("{\"data\":{}}".utf8))
        }
        defer { server.stop() }
        let json = Array("{\"query\":\"{ support { systemMode } }\",\"variables\":{}}".utf8)
        let transport = CurlTransport()
        let response = try await transport.send(HTTPRequest(
            method: "POST", url: server.baseURL + "/graphql",
            headers: [("Content-Type", "application/json"), ("key", "k1"), ("altitoken", "")],
            body: .bytes(json)))
        #expect(response.status == 200)
        #expect(response.bodyText == "{\"data\":{}}")
        let got = try #require(server.requests.first)
        #expect(got.method == "POST")
        #expect(got.target == "/graphql")
        #expect(got.body == json)
        #expect(got.headers(named: "Content-Type") == ["application/json"])
        #expect(got.headers(named: "Content-Length") == [String(json.count)])
        #expect(got.headers(named: "key") == ["k1"])
        #expect(got.headers(named: "altitoken") == [""])
        #expect(got.headers(named: "Accept").isEmpty)
        #expect(got.headers(named: "Expect").isEmpty)

        // Without a Content-Type, curl must not invent application/x-www-form-urlencoded.
        _ = try await transport.send(HTTPRequest(method: "POST", url: server.baseURL + "/raw", body: .bytes([1, 2, 3])))
        let second = try #require(server.requests.last)
        #expect(second.headers(named: "Content-Type").isEmpty)
        #expect(second.body == [1, 2, 3])
    }

    @Test func responseStatusHeadersDateAndTruncation() async throws {
        let server = try RawHTTPServer { _ in
            .respond(status: 404, headers: [("Date", "Sat, 16 Dec 2023 16:20:57 GMT"), ("X-Thing", "1")],
                     body: Array(repeating: UInt8(ascii: "x"), count: 5000))
        }
        defer { server.stop() }
        var limits = HTTPLimits()
        limits.maxResponseBytes = 1000
        let response = try await CurlTransport().send(HTTPRequest(method: "GET", url: server.baseURL + "/missing",
                                                                  limits: limits))
        #expect(response.status == 404)
        #expect(response.header("x-thing") == "1")
        #expect(response.date == Date(timeIntervalSince1970: 1_702_743_657))
        #expect(response.body.count == 1000)
        #expect(response.bodyTruncated)
        #expect(server.requests.first?.method == "GET")
        #expect(server.requests.first?.body.isEmpty == true)
    }

    @Test func sequentialRequestsReuseOneConnection() async throws {
        let server = try RawHTTPServer { _ in Self.ok() }
        defer { server.stop() }
        let transport = CurlTransport(maxConcurrentTransfers: 2)
        for i in 0..<3 {
            let r = try await transport.send(HTTPRequest(method: "GET", url: server.baseURL + "/n\(i)"))
            #expect(r.status == 200)
        }
        #expect(server.requests.map(\.target) == ["/n0", "/n1", "/n2"])
        #expect(server.connections == 1)
    }

    @Test func redirectRewindsTheFileBody() async throws {
        let server = try RawHTTPServer { r in
            r.target == "/first" ? .respond(status: 307, headers: [("Location", "/second")], body: []) : Self.ok()
        }
        defer { server.stop() }
        let file = try Self.tempFile(size: 300_000)
        var limits = HTTPLimits()
        limits.followRedirects = true
        let response = try await CurlTransport().send(HTTPRequest(
            method: "PUT", url: server.baseURL + "/first",
            body: .file(path: file.path, offset: 0, length: Int64(file.bytes.count)), limits: limits))
        #expect(response.status == 200)
        #expect(server.requests.map(\.target) == ["/first", "/second"])
        #expect(server.requests.last?.body == file.bytes)
    }

    @Test func refusedConnectionIsCannotConnect() async throws {
        let server = try RawHTTPServer { _ in Self.ok() }
        let port = server.port
        server.stop()
        let error = try await #require(throws: HTTPTransportError.self) {
            _ = try await CurlTransport().send(HTTPRequest(
                method: "GET", url: "http://127.0.0.1:\(port)/x?X-Amz-Signature=secret"))
        }
        #expect(error.kind == .cannotConnect)
        #expect(error.curlCode == 7)
        #expect(error.isTransient)
        #expect(error.request == "GET http://127.0.0.1:\(port)/x")
        #expect(!error.description.contains("secret"))
    }

    @Test func stalledServerIsTimedOut() async throws {
        let server = try RawHTTPServer { _ in .stall }
        defer { server.stop() }
        var limits = HTTPLimits()
        limits.lowSpeedTime = 2
        let error = try await #require(throws: HTTPTransportError.self) {
            _ = try await CurlTransport().send(HTTPRequest(
                method: "GET", url: server.baseURL + "/stall?X-Amz-Signature=topsecret&x-oss-security-token=tok",
                limits: limits))
        }
        #expect(error.kind == .timedOut)
        #expect(error.curlCode == 28)
        #expect(!error.description.contains("topsecret"))
        #expect(!error.description.contains("tok"))
        #expect(error.description.hasPrefix("GET \(server.baseURL)/stall: "))
    }

    @Test func cancellingAnInFlightRequestThrowsCancellationError() async throws {
        let server = try RawHTTPServer { _ in .stall }
        defer { server.stop() }
        let transport = CurlTransport()
        let task = Task {
            // Default low-speed time (30 s): only cancellation can end this quickly with this error.
            try await transport.send(HTTPRequest(method: "GET", url: server.baseURL + "/forever"))
        }
        while server.requests.isEmpty { try await Task.sleep(for: .milliseconds(20)) }
        task.cancel()
        let result = await task.result
        #expect(throws: CancellationError.self) { try result.get() }
    }

    @Test func alreadyCancelledTaskSendsNothing() async throws {
        let server = try RawHTTPServer { _ in Self.ok() }
        defer { server.stop() }
        let transport = CurlTransport()
        let task = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            return try await transport.send(HTTPRequest(method: "GET", url: server.baseURL + "/never"))
        }
        let result = await task.result
        #expect(throws: CancellationError.self) { try result.get() }
        #expect(server.requests.isEmpty)
    }

    @Test func missingFileIsFileUnreadable() async throws {
        let error = try await #require(throws: HTTPTransportError.self) {
            _ = try await CurlTransport().send(HTTPRequest(
                method: "PUT", url: "http://127.0.0.1:9/x",
                body: .file(path: "/nonexistent/\(UUID().uuidString)", offset: 0, length: 10)))
        }
        #expect(error.kind == .fileUnreadable)
    }

    @Test func fileShorterThanDeclaredIsFileUnreadable() async throws {
        let server = try RawHTTPServer { _ in Self.ok() }
        defer { server.stop() }
        let file = try Self.tempFile(size: 1000)
        let error = try await #require(throws: HTTPTransportError.self) {
            _ = try await CurlTransport().send(HTTPRequest(
                method: "PUT", url: server.baseURL + "/short", body: .file(path: file.path, offset: 0, length: 5000)))
        }
        #expect(error.kind == .fileUnreadable)
    }

    @Test func headerInjectionIsRefused() async throws {
        let error = try await #require(throws: HTTPTransportError.self) {
            _ = try await CurlTransport().send(HTTPRequest(method: "GET", url: "http://127.0.0.1:9/",
                                                           headers: [("X-A", "1\r\nX-B: 2")]))
        }
        #expect(error.kind == .other)
    }

    @Test func curlCodesMapToKinds() {
        #expect(CurlTransport.kind(ofCurlCode: 6) == .cannotResolve)
        #expect(CurlTransport.kind(ofCurlCode: 7) == .cannotConnect)
        #expect(CurlTransport.kind(ofCurlCode: 28) == .timedOut)
        #expect(CurlTransport.kind(ofCurlCode: 52) == .connectionLost)
        #expect(CurlTransport.kind(ofCurlCode: 56) == .connectionLost)
        #expect(CurlTransport.kind(ofCurlCode: 55) == .connectionLost)
        #expect(CurlTransport.kind(ofCurlCode: 60) == .tls)
        #expect(CurlTransport.kind(ofCurlCode: 35) == .tls)
        #expect(CurlTransport.kind(ofCurlCode: 3) == .other)
    }
}

@Suite struct URLRedactorTests {
    @Test func dropsQueryFragmentAndUserInfo() {
        #expect(URLRedactor.redact("https://b.s3.amazonaws.com/p/a%2Fb.jpg?X-Amz-Signature=abc&X-Amz-Security-Token=t")
            == "https://b.s3.amazonaws.com/p/a%2Fb.jpg")
        #expect(URLRedactor.redact("http://user:pw@h:8080/x#frag") == "http://h:8080/x")
        #expect(URLRedactor.redact("http://h/x") == "http://h/x")
        #expect(URLRedactor.redact("http://h?a@b/c") == "http://h")
    }

    @Test func redactsQueriesInsideMessages() {
        #expect(URLRedactor.redactMessage("bad URL http://h/p?sig=abc found") == "bad URL http://h/p found")
        let e = HTTPTransportError(kind: .other, curlCode: 3, message: "URL 'http://h/?token=x' malformed",
                                   request: "GET http://h/")
        #expect(e.message == "URL 'http://h/' malformed")
    }

    @Test func parsesHTTPDates() {
        #expect(HTTPDate.parse("Sat, 16 Dec 2023 16:20:57 GMT") == Date(timeIntervalSince1970: 1_702_743_657))
        #expect(HTTPDate.parse("not a date") == nil)
    }
}

@Suite struct ClosureTransportTests {
    @Test func fakeSeesTheRequest() async throws {
        let transport: any HTTPTransport = ClosureTransport { request in
            HTTPResponse(status: request.header("key") == "k" ? 200 : 401, body: Array(request.url.utf8))
        }
        let r = try await transport.send(HTTPRequest(method: "POST", url: "http://x/graphql", headers: [("KEY", "k")]))
        #expect(r.status == 200)
        #expect(r.bodyText == "http://x/graphql")
    }
}
