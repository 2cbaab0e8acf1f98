import AltiCore
import AltiNet
import AltiStorage
import AltiTestSupport
import Foundation
import Testing

/// The S3 uploader's decisions over a closure transport: what it sends, what it retries, what it
/// refuses to send.
@Suite struct S3UploaderTests {
    final class Calls: @unchecked Sendable {
        let lock = NSLock()
        var requests: [HTTPRequest] = []
        var statuses: [Int]
        init(_ statuses: [Int]) { self.statuses = statuses }
        func next(_ request: HTTPRequest) -> HTTPResponse {
            lock.withLock {
                requests.append(request)
                let status = statuses.count > 1 ? statuses.removeFirst() : statuses[0]
                let body = status == 403 ? Array("<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>".utf8) : []
                return HTTPResponse(status: status, body: body)
            }
        }
    }

    func uploader(_ calls: Calls) -> S3PresignedUploader {
        S3PresignedUploader(
            transport: ClosureTransport { calls.next($0) },
            retry: RetryPolicy(maxAttempts: 3, baseDelay: .milliseconds(1), maxDelay: .milliseconds(2)))
    }

    func source(_ tree: TempTree) throws -> UploadSource {
        let path = try tree.write("a.jpg", [UInt8](repeating: 7, count: 1000))
        var st = stat()
        _ = stat(path, &st)
        return UploadSource(path: path, size: 1000, mtimeNs: Int64(st.st_mtim.tv_sec) * 1_000_000_000 + Int64(st.st_mtim.tv_nsec))
    }

    @Test func sendsTheFileWithOnlyItsContentTypeAndRetries5xxOnTheSameURL() async throws {
        let tree = try TempTree("uploader")
        defer { tree.remove() }
        let calls = Calls([503, 200])
        let url = "http://127.0.0.1:1/s3/b/k.jpg?X-Amz-Signature=abc%2F"
        let outcome = try await uploader(calls).put(try source(tree), contentType: "image/jpeg", url: url) { _ in }
        #expect(outcome == .stored)
        #expect(calls.requests.count == 2)
        #expect(calls.requests.allSatisfy { $0.url == url && $0.method == "PUT" })
        #expect(calls.requests[0].headers.map(\.name) == ["Content-Type"])
        #expect(calls.requests[0].header("Content-Type") == "image/jpeg")
        guard case .stream(let body) = calls.requests[0].body else {
            Issue.record("the body must stream from the source tree")
            return
        }
        // Each pass opens the file anew and yields exactly its bytes.
        #expect(body.length == 1000)
        for _ in 0..<2 {
            let reader = try body.open()
            var bytes: [UInt8] = []
            var chunk = [UInt8](repeating: 0, count: 300)
            while true {
                let n = try chunk.withUnsafeMutableBytes { try reader.read(into: $0) }
                if n == 0 { break }
                bytes += chunk[0..<n]
            }
            #expect(bytes == [UInt8](repeating: 7, count: 1000))
        }
    }

    @Test func aRefusedURLIsReturnedAtOnceNotRetried() async throws {
        let tree = try TempTree("uploader")
        defer { tree.remove() }
        let calls = Calls([403])
        let outcome = try await uploader(calls).put(try source(tree), contentType: "image/jpeg", url: "http://x/y") { _ in }
        #expect(outcome == .grantRejected(code: "AccessDenied", message: "Request has expired"))
        #expect(calls.requests.count == 1)
    }

    @Test func aFileChangedSinceTheScanIsNotSent() async throws {
        let tree = try TempTree("uploader")
        defer { tree.remove() }
        let calls = Calls([200])
        let scanned = try source(tree)
        _ = try tree.write("a.jpg", [UInt8](repeating: 8, count: 1001))
        let outcome = try await uploader(calls).put(scanned, contentType: "image/jpeg", url: "http://x/y") { _ in }
        guard case .failed(let reason) = outcome else {
            Issue.record("expected a failure, got \(outcome)")
            return
        }
        #expect(reason.contains("changed since it was scanned"))
        #expect(calls.requests.isEmpty)
    }

    /// A captive portal that answers the PUT itself with its login page and 200: not stored.
    @Test func aLoginPageAnsweringThePutIsNotAStore() async throws {
        let tree = try TempTree("uploader-portal")
        defer { tree.remove() }
        let page = HTTPResponse(status: 200, headers: [HTTPHeaderField(name: "Content-Type", value: "text/html")],
                                body: Array("<html><body>Sign in to Hotel Wi-Fi</body></html>".utf8))
        let uploader = S3PresignedUploader(
            transport: ClosureTransport { _ in page },
            retry: RetryPolicy(maxAttempts: 3, baseDelay: .milliseconds(1), maxDelay: .milliseconds(2)))
        let outcome = try await uploader.put(try source(tree), contentType: "image/jpeg",
                                             url: "http://storage.example/s3/b/k.jpg?X-Amz-Signature=abc") { _ in }
        guard case .unreachable(let reason) = outcome else {
            Issue.record("a login page was taken for a store: \(outcome)")
            return
        }
        #expect(reason.contains("storage.example answered with a web page") && !reason.contains("Signature"))
    }
}
