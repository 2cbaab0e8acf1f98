import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// Request context carrying the connection, so faults can cut it.
struct EmulatorRequestContext: RequestContext {
    var coreContext: CoreRequestContextStorage
    let channel: any Channel

    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        channel = source.channel
    }
}

/// Thrown after the emulator deliberately cut a connection (reset or hang faults).
struct ConnectionCut: Error {}

/// Whether a request's body has been iterated. Hummingbird allows one iterator per body (a second
/// one asserts), and a handler that refuses after reading the body must not drain it again.
final class BodyIteration: @unchecked Sendable {
    private let lock = NSLock()
    private var started = false

    /// Marks the body as iterated; true if it was not before.
    func begin() -> Bool {
        lock.lock()
        defer { lock.unlock() }
        let first = !started
        started = true
        return first
    }
}

/// A request as the handlers see it: raw path and query exactly as received.
struct IncomingRequest {
    let request: Request
    let context: EmulatorRequestContext
    let rawPath: String
    let rawQuery: String
    let bodyIteration = BodyIteration()

    init(_ request: Request, _ context: EmulatorRequestContext) {
        self.request = request
        self.context = context
        let target = request.uri.string
        if let q = target.firstIndex(of: "?") {
            rawPath = String(target[..<q])
            rawQuery = String(target[target.index(after: q)...])
        } else {
            rawPath = target
            rawQuery = ""
        }
    }

    var method: String { request.method.rawValue }

    /// First value of a header, case-insensitive.
    func header(_ name: String) -> String? {
        guard let fieldName = HTTPField.Name(name) else { return nil }
        return request.headers[fieldName]
    }

    /// All headers in order, with `Host` restored (HTTP/1 moves it into the authority).
    var signingHeaders: [(name: String, value: String)] {
        var out: [(name: String, value: String)] = []
        if let authority = request.head.authority { out.append(("host", authority)) }
        for field in request.headers { out.append((field.name.rawName, field.value)) }
        return out
    }

    var contentLength: Int? { header("content-length").flatMap { Int($0.trimmingCharacters(in: .whitespaces)) } }

    var isChunked: Bool { header("transfer-encoding")?.lowercased().contains("chunked") ?? false }
}

/// How a body is read: normally, at a trickle, or cut off half way.
enum BodyMode {
    case normal
    case trickle(bytesPerSecond: Int)
    case resetHalfway
}

enum BodyReadError: Error {
    case tooLarge
}

/// Reads the whole request body (bounded by `limit`) according to `mode`. With `state` (an
/// upload body to store) the body counts in the stats and shares the `--bandwidth` cap.
func readBody(_ incoming: IncomingRequest, limit: Int, mode: BodyMode, counting state: EmulatorState? = nil) async throws -> [UInt8] {
    // Each handler reads a body once; a second read would find nothing left either way.
    guard incoming.bodyIteration.begin() else { return [] }
    // A body counts as in flight from its first byte to its end (or the end of its connection).
    var receiving = false
    func ended() async { if receiving { receiving = false; await state?.bodyEnded() } }
    do {
        let bytes = try await readBodyBytes(incoming, limit: limit, mode: mode, bandwidth: state?.bandwidth) {
            if !receiving { receiving = true; await state?.bodyBegan() }
        }
        await ended()
        return bytes
    } catch {
        await ended()
        throw error
    }
}

private func readBodyBytes(_ incoming: IncomingRequest, limit: Int, mode: BodyMode, bandwidth: LinkRateCap?,
                           onChunk: () async -> Void) async throws -> [UInt8] {
    var bytes: [UInt8] = []
    if let length = incoming.contentLength, length <= limit { bytes.reserveCapacity(length) }
    let resetAt: Int
    if case .resetHalfway = mode {
        resetAt = max(1, (incoming.contentLength ?? 2) / 2)
        if incoming.contentLength == 0 { try await cutConnection(incoming.context.channel) }
    } else {
        resetAt = Int.max
    }
    for try await buffer in incoming.request.body {
        await onChunk()
        if bytes.count + buffer.readableBytes > limit { throw BodyReadError.tooLarge }
        bytes.append(contentsOf: buffer.readableBytesView)
        if bytes.count >= resetAt { try await cutConnection(incoming.context.channel) }
        if case .trickle(let rate) = mode {
            try await Task.sleep(nanoseconds: UInt64(Double(buffer.readableBytes) / Double(rate) * 1e9))
        }
        try await bandwidth?.pace(buffer.readableBytes)
    }
    return bytes
}

/// Drops the connection without an answer. Unread request bytes make the kernel send a RST.
func cutConnection(_ channel: any Channel) async throws -> Never {
    try? await channel.close()
    throw ConnectionCut()
}

/// Waits up to `seconds`, or until the emulator stops or the client hangs up; then cuts.
func hang(seconds: Double, state: EmulatorState, channel: any Channel) async throws -> Never {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline, channel.isActive, await !state.isStopping {
        try? await Task.sleep(nanoseconds: 50_000_000)
    }
    try await cutConnection(channel)
}

func sleep(milliseconds: Int) async {
    guard milliseconds > 0 else { return }
    try? await Task.sleep(nanoseconds: UInt64(milliseconds) * 1_000_000)
}

extension Response {
    static func bytes(_ status: Int, _ body: [UInt8], contentType: String,
                      extraHeaders: [(String, String)] = []) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = contentType
        for (name, value) in extraHeaders {
            if let field = HTTPField.Name(name) { headers[field] = value }
        }
        return Response(status: .init(code: status), headers: headers,
                        body: .init(byteBuffer: ByteBuffer(bytes: body)))
    }

    static func text(_ status: Int, _ text: String, contentType: String = "text/plain; charset=utf-8",
                     extraHeaders: [(String, String)] = []) -> Response {
        bytes(status, Array(text.utf8), contentType: contentType, extraHeaders: extraHeaders)
    }

    static func json<T: Encodable>(_ status: Int, _ value: T) -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        encoder.dateEncodingStrategy = .iso8601
        let data = (try? encoder.encode(value)) ?? Data("{}".utf8)
        return bytes(status, Array(data), contentType: "application/json; charset=utf-8")
    }

    /// `{"errors":[{"message": ...}]}`, the shape of a GraphQL request error.
    static func graphQLRequestError(_ status: Int, _ message: String) -> Response {
        struct Body: Encodable { struct Message: Encodable { let message: String }; let errors: [Message] }
        return json(status, Body(errors: [.init(message: message)]))
    }
}
