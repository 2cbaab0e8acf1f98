import Foundation

/// One request or response header, in wire order.
public typealias HTTPHeaderField = (name: String, value: String)

/// What a request sends as its body.
public enum HTTPBody: Sendable {
    /// No body.
    case none
    /// Bytes held in memory (GraphQL documents, small payloads).
    case bytes([UInt8])
    /// `length` bytes of the file at `path` starting at `offset`, streamed from disk in chunks
    /// (never loaded whole) and re-readable, so a transfer can be rewound and replayed.
    case file(path: String, offset: Int64, length: Int64)
    /// `source.length` bytes read from a source that is opened on the transfer thread and opened
    /// again to rewind (a retry, a redirect): a file under a scanned tree, an archive member.
    case stream(any HTTPBodySource)

    /// The number of bytes the body sends.
    public var count: Int64 {
        switch self {
        case .none: return 0
        case .bytes(let b): return Int64(b.count)
        case .file(_, _, let length): return length
        case .stream(let source): return source.length
        }
    }
}

/// Where a streamed body comes from. `open()` is called on the transfer thread, once per pass
/// over the body (a rewind opens it again), so nothing is held in memory between attempts.
public protocol HTTPBodySource: Sendable {
    /// Exactly the bytes the body sends (`Content-Length`); a shorter stream fails the transfer.
    var length: Int64 { get }
    func open() throws -> any HTTPBodyReader
}

/// One pass over a streamed body, read sequentially from its start on one thread.
public protocol HTTPBodyReader: AnyObject {
    /// Fills up to `buffer.count` bytes; returns 0 at the end. Throws when the bytes cannot be read.
    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int
}

/// Per-request limits. Defaults suit uploads over poor field networks.
public struct HTTPLimits: Sendable, Equatable {
    /// Seconds to establish the TCP/TLS connection (CURLOPT_CONNECTTIMEOUT).
    public var connectTimeout: TimeInterval
    /// A transfer slower than `lowSpeedLimit` bytes/s for `lowSpeedTime` seconds is abandoned
    /// (a stalled upload or a server that never answers) and fails as `.timedOut`.
    public var lowSpeedLimit: Int
    public var lowSpeedTime: TimeInterval
    /// Optional cap on the whole request, in seconds.
    public var totalTimeout: TimeInterval?
    /// Response bodies are kept up to this many bytes; the rest is read and dropped
    /// (`HTTPResponse.bodyTruncated`).
    public var maxResponseBytes: Int
    /// Follow 3xx redirects (off by default: storage and API requests never redirect).
    public var followRedirects: Bool

    public init(connectTimeout: TimeInterval = 15, lowSpeedLimit: Int = 1024, lowSpeedTime: TimeInterval = 30,
                totalTimeout: TimeInterval? = nil, maxResponseBytes: Int = 8 << 20, followRedirects: Bool = false) {
        self.connectTimeout = connectTimeout
        self.lowSpeedLimit = lowSpeedLimit
        self.lowSpeedTime = lowSpeedTime
        self.totalTimeout = totalTimeout
        self.maxResponseBytes = maxResponseBytes
        self.followRedirects = followRedirects
    }
}

/// An HTTP request. The URL is sent BYTE FOR BYTE (never re-encoded or normalised: pre-signed
/// URLs depend on it), and exactly the given headers go out, plus `Host` and `Content-Length`.
public struct HTTPRequest: Sendable {
    public var method: String
    public var url: String
    public var headers: [HTTPHeaderField]
    public var body: HTTPBody
    public var limits: HTTPLimits

    public init(method: String, url: String, headers: [HTTPHeaderField] = [], body: HTTPBody = .none,
                limits: HTTPLimits = HTTPLimits()) {
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
        self.limits = limits
    }

    /// The first header called `name` (case-insensitive).
    public func header(_ name: String) -> String? {
        headers.first { $0.name.caseInsensitiveCompare(name) == .orderedSame }?.value
    }
}

/// An HTTP response: the final status and headers (after any `100 Continue` or followed redirect)
/// and the body, capped at `HTTPLimits.maxResponseBytes`.
public struct HTTPResponse: Sendable {
    public var status: Int
    public var headers: [HTTPHeaderField]
    public var body: [UInt8]
    /// True when the server sent more than `maxResponseBytes`; `body` holds the first bytes.
    public var bodyTruncated: Bool

    public init(status: Int, headers: [HTTPHeaderField] = [], body: [UInt8] = [], bodyTruncated: Bool = false) {
        self.status = status
        self.headers = headers
        self.body = body
        self.bodyTruncated = bodyTruncated
    }

    /// The first header called `name` (case-insensitive).
    public func header(_ name: String) -> String? {
        headers.first { $0.name.caseInsensitiveCompare(name) == .orderedSame }?.value
    }

    /// The `Date` header parsed (RFC 7231 formats), for clock-offset estimates; nil if absent or bad.
    public var date: Date? { header("Date").flatMap(HTTPDate.parse) }

    /// The body as UTF-8 text (invalid bytes replaced).
    public var bodyText: String { String(decoding: body, as: UTF8.self) }
}

/// Sends HTTP requests. `CurlTransport` in production; a `ClosureTransport` in unit tests.
public protocol HTTPTransport: Sendable {
    /// Sends `request` and returns the response, whatever its status (a 4xx/5xx is a response, not
    /// an error). Throws `HTTPTransportError` when no response arrived, `CancellationError` when the
    /// task was cancelled. `progress`, if given, receives the body bytes sent so far (upload
    /// progress), often: throttle it yourself.
    func send(_ request: HTTPRequest, progress: (@Sendable (Int64) -> Void)?) async throws -> HTTPResponse
}

extension HTTPTransport {
    /// Sends `request` without progress reports.
    public func send(_ request: HTTPRequest) async throws -> HTTPResponse {
        try await send(request, progress: nil)
    }
}

/// A transport backed by a closure: the fake for GraphQL-client and uploader tests.
public struct ClosureTransport: HTTPTransport {
    private let handler: @Sendable (HTTPRequest, (@Sendable (Int64) -> Void)?) async throws -> HTTPResponse

    public init(_ handler: @escaping @Sendable (HTTPRequest) async throws -> HTTPResponse) {
        self.handler = { request, _ in try await handler(request) }
    }

    public init(withProgress handler: @escaping @Sendable (HTTPRequest, (@Sendable (Int64) -> Void)?) async throws
        -> HTTPResponse) {
        self.handler = handler
    }

    public func send(_ request: HTTPRequest, progress: (@Sendable (Int64) -> Void)?) async throws -> HTTPResponse {
        try await handler(request, progress)
    }
}

/// A transfer that produced no HTTP response, classified so callers can decide to retry.
public struct HTTPTransportError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: String, Sendable, Equatable {
        /// DNS failed (host or proxy): usually offline.
        case cannotResolve
        /// TCP connect refused or unreachable.
        case cannotConnect
        /// Connect timeout, total timeout, or the low-speed abort of a stalled transfer.
        case timedOut
        /// The connection broke mid-request: reset, empty reply, send/receive error.
        case connectionLost
        /// TLS handshake or certificate verification failed.
        case tls
        /// The transfer was aborted (not by task cancellation, which throws `CancellationError`).
        case cancelled
        /// The local body file could not be opened or read (or was shorter than declared).
        case fileUnreadable
        /// Anything else (bad URL, unsupported protocol, ...).
        case other
    }

    public let kind: Kind
    /// libcurl's `CURLcode` (0 when the error is not curl's).
    public let curlCode: Int
    /// Human-readable cause; URLs in it have no query string.
    public let message: String
    /// Method and redacted URL of the request.
    public let request: String

    public init(kind: Kind, curlCode: Int, message: String, request: String) {
        self.kind = kind
        self.curlCode = curlCode
        self.message = URLRedactor.redactMessage(message)
        self.request = request
    }

    /// Whether retrying the same request may help (timeouts, lost connections, connect failures).
    public var isTransient: Bool {
        switch kind {
        case .cannotResolve, .cannotConnect, .timedOut, .connectionLost: return true
        case .tls, .cancelled, .fileUnreadable, .other: return false
        }
    }

    public var description: String {
        "\(request): \(message) (\(kind.rawValue), curl \(curlCode))"
    }
}

/// Keeps secrets out of logs: pre-signed URLs carry their signature (and STS tokens) in the query.
public enum URLRedactor {
    /// Drops the query string and fragment, and any `user:password@`:
    /// `https://u:p@h/p?X-Amz-Signature=..` -> `https://h/p`.
    public static func redact(_ url: String) -> String {
        var s = Substring(url)
        if let cut = s.firstIndex(where: { $0 == "?" || $0 == "#" }) { s = s[..<cut] }
        if let scheme = s.range(of: "://") {
            let authorityStart = scheme.upperBound
            let authorityEnd = s[authorityStart...].firstIndex(of: "/") ?? s.endIndex
            if let at = s[authorityStart..<authorityEnd].lastIndex(of: "@") {
                s = s[..<authorityStart] + s[s.index(after: at)...]
            }
        }
        return String(s)
    }

    /// Removes every `?query` (up to the next whitespace or quote) from free text such as an
    /// error message that may quote a URL.
    public static func redactMessage(_ text: String) -> String {
        var out = ""
        var skipping = false
        for ch in text {
            if skipping {
                if ch.isWhitespace || ch == "\"" || ch == "'" || ch == ">" {
                    skipping = false
                    out.append(ch)
                }
                continue
            }
            if ch == "?" {
                skipping = true
                continue
            }
            out.append(ch)
        }
        return out
    }
}
