import AltiCore
import AltiNet
import Foundation

/// PUTs a file to an S3 pre-signed URL exactly as the signature expects: the URL byte-for-byte
/// as received, `Content-Type` (signed by the server), `Content-Length` (never chunked), the
/// body streamed from disk, and no other headers (AltiNet suppresses curl's `Accept` and
/// `Expect`). Transport errors, timeouts (including the low-speed abort of a stalled link),
/// 429 and 5xx are retried on the same URL with full-jitter backoff; a 403 is returned at once
/// as `.urlRejected`, because a refused signed URL never starts working again.
public struct S3PresignedUploader: BlobUploader {
    let transport: any HTTPTransport
    let retry: RetryPolicy
    let limits: HTTPLimits
    let sleep: @Sendable (Duration) async throws -> Void
    /// Called before each retry (for the live display's retry counter).
    let onRetry: @Sendable () -> Void

    public init(
        transport: any HTTPTransport, retry: RetryPolicy = RetryPolicy(), limits: HTTPLimits = HTTPLimits(),
        sleep: @escaping @Sendable (Duration) async throws -> Void = { try await Task.sleep(for: $0) },
        onRetry: @escaping @Sendable () -> Void = {}
    ) {
        self.transport = transport
        self.retry = retry
        self.limits = limits
        self.sleep = sleep
        self.onRetry = onRetry
    }

    public func put(_ source: UploadSource, contentType: String, url: String,
                    progress: @escaping @Sendable (Int64) -> Void) async throws -> PutOutcome {
        if let change = source.changeSinceScan() { return .failed(reason: change) }
        let request = HTTPRequest(
            method: "PUT", url: url, headers: [("Content-Type", contentType)],
            body: .file(path: source.path, offset: 0, length: source.size), limits: limits)
        var lastProblem = ""
        for attempt in 0..<retry.maxAttempts {
            try Task.checkCancellation()
            if attempt > 0 {
                onRetry()
                try await sleep(retry.delay(beforeRetry: attempt - 1))
            }
            // curl reports cumulative bytes; the engine wants deltas, and backs out what a failed
            // attempt had counted so the display never shows more than the survey's size.
            let reported = ByteCounter()
            let response: HTTPResponse
            do {
                response = try await transport.send(request) { cumulative in
                    let delta = cumulative - reported.total
                    if delta != 0 {
                        reported.add(delta)
                        progress(delta)
                    }
                }
            } catch let error as HTTPTransportError {
                progress(-reported.total)
                switch error.kind {
                case .cancelled: throw CancellationError()
                case .fileUnreadable:
                    return .failed(reason: "cannot read \(source.path): \(error.message)")
                default:
                    if error.isTransient {
                        lastProblem = "\(error.kind.rawValue): \(error.message)"
                        continue
                    }
                    return .failed(reason: "upload of \(source.path) failed: \(error.message)")
                }
            }
            switch response.status {
            case 200:
                return .stored
            case 403, 400:
                // 400 is a refusal of the URL only for ExpiredToken (a URL signed with session
                // credentials that have expired); any other 400 is a permanent failure.
                if response.status == 400, S3ErrorBody.code(response.body) != "ExpiredToken" {
                    progress(-reported.total)
                    return .failed(reason: "the store refused \(source.path): \(S3ErrorBody.code(response.body) ?? "HTTP 400") \(S3ErrorBody.message(response.body) ?? "")")
                }
                progress(-reported.total)
                return .urlRejected(code: S3ErrorBody.code(response.body) ?? "HTTP \(response.status)",
                                    message: S3ErrorBody.message(response.body) ?? "")
            case 408, 429, 500...599:
                progress(-reported.total)
                lastProblem = "HTTP \(response.status) \(S3ErrorBody.code(response.body) ?? "")"
                continue
            default:
                progress(-reported.total)
                let code = S3ErrorBody.code(response.body) ?? "HTTP \(response.status)"
                return .failed(reason: "the store refused \(source.path): \(code) \(S3ErrorBody.message(response.body) ?? "")")
            }
        }
        return .failed(reason: "upload of \(source.path) failed after \(retry.maxAttempts) tries (\(lastProblem)); run again to resume")
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
