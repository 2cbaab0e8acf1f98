import AltiCore
import AltiNet
import Foundation

/// PUTs an image to an S3 pre-signed URL exactly as the signature expects: the URL byte-for-byte
/// as received, `Content-Type` (signed by the server), `Content-Length` (never chunked), the
/// body streamed from its source tree, and no other headers (AltiNet suppresses curl's `Accept`
/// and `Expect`). Transport errors, timeouts (including the low-speed abort of a stalled link),
/// 408, 429 and 5xx are retried on the same URL (`RetryPolicy.run`); a 403 is returned at once as
/// `.grantRejected`, because a refused signed URL never starts working again.
public struct S3PresignedUploader: Sendable {
    let transport: any HTTPTransport
    let retry: RetryPolicy
    let limits: HTTPLimits
    let sleep: @Sendable (Duration) async throws -> Void
    /// Counts retries (for the live display and the report).
    let metrics: SyncMetrics

    public init(
        transport: any HTTPTransport, retry: RetryPolicy = RetryPolicy(), limits: HTTPLimits = HTTPLimits(),
        metrics: SyncMetrics = SyncMetrics(),
        sleep: @escaping @Sendable (Duration) async throws -> Void = { try await Task.sleep(for: $0) }
    ) {
        self.transport = transport
        self.retry = retry
        self.limits = limits
        self.metrics = metrics
        self.sleep = sleep
    }

    public func put(_ source: UploadSource, contentType: String, url: String,
                    progress: @escaping @Sendable (Int64) -> Void) async throws -> TransferOutcome {
        if let change = source.changeSinceScan() { return .failed(reason: change) }
        let request = HTTPRequest(
            method: "PUT", url: url, headers: [("Content-Type", contentType)],
            body: .stream(UploadBody(source)), limits: limits)
        let metrics = self.metrics
        do {
            return try await retry.run(sleep: sleep, onRetryNote: { attempt, delay, reason in
                metrics.countTransferRetry(RetryNote(what: "upload of \(source.path)", attempt: attempt, delay: delay,
                                                     reason: URLRedactor.redactMessage(reason)))
            }) { _ in
                try await attempt(request, source: source, progress: progress)
            }
        } catch let exhausted as RetriesExhausted {
            return .unreachable(reason: "upload of \(source.displayPath) failed after \(exhausted.attempts) tries (\(exhausted.lastProblem)); run again to resume")
        }
    }

    func attempt(_ request: HTTPRequest, source: UploadSource,
                 progress: @escaping @Sendable (Int64) -> Void) async throws -> RetryStep<TransferOutcome> {
        // curl reports cumulative bytes; the engine wants deltas, and a failed attempt's bytes are
        // backed out so the display never shows more than the survey's size.
        let reported = ProgressDeltas(progress)
        let response: HTTPResponse
        do {
            response = try await transport.send(request) { reported.update(cumulative: $0) }
        } catch let error as HTTPTransportError {
            reported.backOut()
            return try TransportFailure(error, source: source).step { .failed(reason: $0) }
        }
        if response.status == 200 {
            // A Wi-Fi login page answers a PUT with 200 too: never take its page for a store.
            if let portal = CaptivePortal.recognise(response, url: request.url) {
                reported.backOut()
                return .finished(.unreachable(reason: portal.message))
            }
            return .finished(.stored)
        }
        reported.backOut()
        let code = S3ErrorBody.code(response.body)
        let message = S3ErrorBody.message(response.body) ?? ""
        switch response.status {
        case 403:
            return .finished(.grantRejected(code: code ?? "HTTP 403", message: message))
        case 400 where code == "ExpiredToken":
            // A URL signed with session credentials that have expired; any other 400 is permanent.
            return .finished(.grantRejected(code: "ExpiredToken", message: message))
        case let status where RetryPolicy.isTransient(status: status):
            return .retry(because: "HTTP \(status) \(code ?? "")")
        default:
            return .finished(.failed(reason: "the store refused \(source.displayPath): \(code ?? "HTTP \(response.status)") \(message)"))
        }
    }
}

/// What a transfer that got no HTTP response means for its attempt, for S3 and OSS alike:
/// cancellation ends it, a lost connection or a timeout is retried, an unreadable source or a
/// failure a retry would not mend (TLS, a malformed request) gives the image up.
struct TransportFailure {
    let error: HTTPTransportError
    let source: UploadSource

    init(_ error: HTTPTransportError, source: UploadSource) {
        self.error = error
        self.source = source
    }

    func step<Value: Sendable>(failing: (String) -> Value) throws -> RetryStep<Value> {
        switch error.kind {
        case .cancelled: throw CancellationError()
        case .fileUnreadable: return .finished(failing("cannot read \(source.displayPath): \(error.message)"))
        default:
            if error.isTransient { return .retry(because: "\(error.kind.rawValue): \(error.message)") }
            return .finished(failing("upload of \(source.displayPath) failed: \(error.message)"))
        }
    }
}

/// Turns cumulative progress reports into deltas, and backs them out when an attempt fails.
final class ProgressDeltas: @unchecked Sendable {
    private let lock = NSLock()
    private var sent: Int64 = 0
    private let progress: @Sendable (Int64) -> Void

    init(_ progress: @escaping @Sendable (Int64) -> Void) { self.progress = progress }

    func update(cumulative: Int64) {
        let delta = lock.withLock { () -> Int64 in
            defer { sent = cumulative }
            return cumulative - sent
        }
        if delta != 0 { progress(delta) }
    }

    func backOut() { update(cumulative: 0) }
}

/// An `UploadSource` as an HTTP body: opened (through its tree) on the transfer thread, again on
/// each rewind.
struct UploadBody: HTTPBodySource {
    let source: UploadSource
    init(_ source: UploadSource) { self.source = source }
    var length: Int64 { source.size }
    func open() throws -> any HTTPBodyReader { Reader(file: try source.open()) }

    final class Reader: HTTPBodyReader {
        let file: any ReadableFile
        init(file: any ReadableFile) { self.file = file }
        func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int { try file.read(into: buffer) }
    }
}

/// Reads `<Code>` and `<Message>` out of an S3/OSS XML error body (no XML parser needed for two
/// leaf elements; the values are plain text in every body the stores send).
enum S3ErrorBody {
    static func code(_ body: [UInt8]) -> String? { element("Code", body) }
    static func message(_ body: [UInt8]) -> String? { element("Message", body) }

    static func element(_ name: String, _ body: [UInt8]) -> String? {
        let text = String(decoding: body.prefix(64 * 1024), as: UTF8.self)
        guard let open = text.range(of: "<\(name)>"), let close = text.range(of: "</\(name)>", range: open.upperBound..<text.endIndex)
        else { return nil }
        return String(text[open.upperBound..<close.lowerBound])
    }
}
