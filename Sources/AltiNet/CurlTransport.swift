internal import CCurl
import Foundation

/// `curl_global_init`, exactly once per process, before the first handle.
enum CurlGlobal {
    static let initialized: Bool = curl_global_init(Int(CURL_GLOBAL_ALL)) == CURLE_OK
}

/// One libcurl easy handle. Owns the handle and the header list it points to; both are freed
/// in `deinit`. Used by one thread at a time (it moves between pool threads only while idle).
final class EasyHandle: @unchecked Sendable {
    let raw: UnsafeMutableRawPointer
    private var headerList: UnsafeMutablePointer<curl_slist>?

    init?() {
        guard CurlGlobal.initialized, let handle = curl_easy_init() else { return nil }
        raw = handle
    }

    deinit {
        curl_easy_cleanup(raw)
        curl_slist_free_all(headerList)
    }

    /// Clears every option (live connections, DNS and TLS session caches survive: that is the
    /// connection reuse) and frees the previous header list.
    func reset() {
        curl_easy_reset(raw)
        curl_slist_free_all(headerList)
        headerList = nil
    }

    /// Replaces the header list; it stays alive until the next `reset` or `deinit`.
    func setHeaders(_ lines: [String]) -> CURLcode {
        var list: UnsafeMutablePointer<curl_slist>?
        for line in lines {
            guard let appended = curl_slist_append(list, line) else {
                curl_slist_free_all(list)
                return CURLE_OUT_OF_MEMORY
            }
            list = appended
        }
        let code = alti_curl_easy_setopt_slist(raw, CURLOPT_HTTPHEADER, list)
        curl_slist_free_all(headerList)
        headerList = list
        return code
    }
}

/// Idle easy handles kept for reuse (each keeps its connection cache), at most `capacity`.
final class HandleCache: @unchecked Sendable {
    private let lock = NSLock()
    private var idle: [EasyHandle] = []
    private let capacity: Int

    init(capacity: Int) { self.capacity = capacity }

    func take() -> EasyHandle? {
        lock.lock()
        defer { lock.unlock() }
        return idle.popLast()
    }

    func put(_ handle: EasyHandle) {
        lock.lock()
        defer { lock.unlock() }
        if idle.count < capacity { idle.append(handle) }
    }
}

/// Set from the task's cancellation handler, read by the transfer thread.
final class CancelFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    var isSet: Bool {
        lock.lock()
        defer { lock.unlock() }
        return value
    }
    func set() {
        lock.lock()
        value = true
        lock.unlock()
    }
}

/// The per-transfer state the C callbacks reach through their userdata pointer. Lives on the
/// transfer thread for the duration of `curl_easy_perform`.
final class TransferContext {
    let cancel: CancelFlag
    let progress: (@Sendable (Int64) -> Void)?
    let maxResponseBytes: Int
    let limiter: BandwidthLimiter?

    // Request body
    var source: (any HTTPBodySource)?
    var reader: (any HTTPBodyReader)?
    var fd: Int32 = -1
    var fileOffset: Int64 = 0
    var bytes: [UInt8] = []
    var bodyLength: Int64 = 0
    var position: Int64 = 0
    var readError: String?

    // Response
    var headers: [HTTPHeaderField] = []
    var body: [UInt8] = []
    var truncated = false
    var lastReported: Int64 = -1

    let errorBuffer: UnsafeMutablePointer<CChar>

    init(cancel: CancelFlag, progress: (@Sendable (Int64) -> Void)?, maxResponseBytes: Int, limiter: BandwidthLimiter?) {
        self.cancel = cancel
        self.limiter = limiter
        self.progress = progress
        self.maxResponseBytes = maxResponseBytes
        errorBuffer = .allocate(capacity: Int(CURL_ERROR_SIZE) + 1)
        errorBuffer.initialize(repeating: 0, count: Int(CURL_ERROR_SIZE) + 1)
    }

    deinit {
        if fd >= 0 { close(fd) }
        errorBuffer.deallocate()
    }

    var errorText: String { String(cString: errorBuffer) }

    static func from(_ userdata: UnsafeMutableRawPointer?) -> TransferContext {
        Unmanaged<TransferContext>.fromOpaque(userdata!).takeUnretainedValue()
    }
}

// MARK: C callbacks (non-capturing, so they convert to C function pointers)

private let writeCallback: alti_curl_data_cb = { buffer, size, nitems, userdata in
    let ctx = TransferContext.from(userdata)
    let count = size * nitems
    guard let buffer, count > 0 else { return count }
    let room = max(0, ctx.maxResponseBytes - ctx.body.count)
    let keep = min(room, count)
    if keep > 0 {
        buffer.withMemoryRebound(to: UInt8.self, capacity: keep) {
            ctx.body.append(contentsOf: UnsafeBufferPointer(start: $0, count: keep))
        }
    }
    if keep < count { ctx.truncated = true }
    return count
}

private let headerCallback: alti_curl_data_cb = { buffer, size, nitems, userdata in
    let ctx = TransferContext.from(userdata)
    let count = size * nitems
    guard let buffer, count > 0 else { return count }
    let line = buffer.withMemoryRebound(to: UInt8.self, capacity: count) {
        String(decoding: UnsafeBufferPointer(start: $0, count: count), as: UTF8.self)
    }
    if line.hasPrefix("HTTP/") {
        ctx.headers = []  // a new response head (after 100 Continue or a redirect)
    } else if let colon = line.firstIndex(of: ":") {
        let name = line[..<colon].trimmingCharacters(in: .whitespaces)
        let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespacesAndNewlines)
        if !name.isEmpty { ctx.headers.append((name, value)) }
    }
    return count
}

private let readCallback: alti_curl_data_cb = { buffer, size, nitems, userdata in
    let ctx = TransferContext.from(userdata)
    guard let buffer else { return Int(CURL_READFUNC_ABORT) }
    let remaining = ctx.bodyLength - ctx.position
    if remaining <= 0 { return 0 }
    var want = Int(min(Int64(size * nitems), remaining))
    if let limiter = ctx.limiter {
        // Blocks this transfer thread until the shared budget allows some bytes; every upload
        // draws from the same limiter, so N parallel bodies together stay under the cap.
        want = limiter.acquire(upTo: want) { ctx.cancel.isSet }
        if want == 0 { return Int(CURL_READFUNC_ABORT) }
    }
    if ctx.source != nil {
        do {
            if ctx.reader == nil { ctx.reader = try ctx.source!.open() }
            let n = try ctx.reader!.read(into: UnsafeMutableRawBufferPointer(start: buffer, count: want))
            if n == 0 {
                ctx.readError = "the source is shorter than the \(ctx.bodyLength) bytes to send"
                return Int(CURL_READFUNC_ABORT)
            }
            ctx.position += Int64(n)
            return n
        } catch {
            ctx.readError = "read error: \(error)"
            return Int(CURL_READFUNC_ABORT)
        }
    }
    if ctx.fd >= 0 {
        while true {
            let n = pread(ctx.fd, buffer, want, off_t(ctx.fileOffset + ctx.position))
            if n < 0 && errno == EINTR { continue }
            if n < 0 {
                ctx.readError = "read error: \(String(cString: strerror(errno)))"
                return Int(CURL_READFUNC_ABORT)
            }
            if n == 0 {
                ctx.readError = "the file is shorter than the \(ctx.bodyLength) bytes to send"
                return Int(CURL_READFUNC_ABORT)
            }
            ctx.position += Int64(n)
            return n
        }
    }
    let start = Int(ctx.position)
    ctx.bytes.withUnsafeBytes { raw in
        UnsafeMutableRawPointer(buffer).copyMemory(from: raw.baseAddress! + start, byteCount: want)
    }
    ctx.position += Int64(want)
    return want
}

private let seekCallback: alti_curl_seek_cb = { userdata, offset, origin in
    let ctx = TransferContext.from(userdata)
    guard origin == SEEK_SET, offset >= 0, Int64(offset) <= ctx.bodyLength else {
        return Int32(CURL_SEEKFUNC_CANTSEEK)
    }
    if ctx.source != nil {
        // A stream rewinds by opening it again; it cannot jump into its middle.
        guard offset == 0 else { return Int32(CURL_SEEKFUNC_CANTSEEK) }
        ctx.reader = nil
    }
    ctx.position = Int64(offset)
    return Int32(CURL_SEEKFUNC_OK)
}

private let xferinfoCallback: alti_curl_xferinfo_cb = { userdata, _, _, _, ulnow in
    let ctx = TransferContext.from(userdata)
    if ctx.cancel.isSet { return 1 }
    if let progress = ctx.progress, Int64(ulnow) != ctx.lastReported {
        ctx.lastReported = Int64(ulnow)
        progress(Int64(ulnow))
    }
    return 0
}

/// `HTTPTransport` over libcurl's easy interface: the `alti` binary's only HTTP stack.
///
/// - Each request runs `curl_easy_perform` on one of `maxConcurrentTransfers` dedicated threads
///   (never Swift's cooperative pool), bridged with a checked continuation; more requests queue.
/// - Connection reuse: finished easy handles are `curl_easy_reset` and kept for the next request,
///   so keep-alive connections, DNS and TLS sessions are reused (no CURLSH: libcurl 7.88 cannot
///   share a connection cache between concurrent threads).
/// - Task cancellation makes the progress callback abort the transfer; `send` then throws
///   `CancellationError` (within about a second: libcurl calls it at least that often).
/// - The URL goes out byte for byte (`CURLOPT_PATH_AS_IS`); only http/https; TCP keep-alive;
///   the proxies of `ProxySettings` (`HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY`, `NO_PROXY`); the
///   system CA bundle.
/// - Bodies: `POST` with bytes uses `POSTFIELDS` with an explicit size; other bodies (a `PUT` of a
///   file range) are streamed by a read callback with `CURLOPT_UPLOAD` + `INFILESIZE_LARGE`, so
///   `Content-Length` is sent and never `Transfer-Encoding: chunked`; a seek callback lets
///   libcurl rewind. `Expect:`, `Accept:` (and, for POST, `Content-Type:`) are suppressed unless
///   the caller sets them: exactly the caller's headers go out, plus `Host` and `Content-Length`.
public final class CurlTransport: HTTPTransport {
    private let pool: BlockingPool
    private let handles: HandleCache
    private let uploadLimiter: BandwidthLimiter?
    private let proxies: ProxySettings

    /// - Parameters:
    ///   - maxConcurrentTransfers: the number of transfer threads (and of idle handles kept).
    ///   - uploadLimiter: shared by every request body this transport sends (`--bwlimit`).
    ///   - proxies: the proxy of every request (none by default: not even libcurl's own reading
    ///     of the environment; callers pass `ProxySettings(environment:)`).
    public init(maxConcurrentTransfers: Int = 8, uploadLimiter: BandwidthLimiter? = nil, proxies: ProxySettings = .none) {
        self.proxies = proxies
        pool = BlockingPool(threads: max(1, maxConcurrentTransfers), name: "alti-curl")
        handles = HandleCache(capacity: max(1, maxConcurrentTransfers))
        self.uploadLimiter = uploadLimiter
    }

    deinit { pool.shutdown() }

    /// libcurl's version string, e.g. `libcurl/7.88.1 OpenSSL/3.0.x ...`.
    public static var curlVersion: String { String(cString: curl_version()) }

    public func send(_ request: HTTPRequest, progress: (@Sendable (Int64) -> Void)?) async throws -> HTTPResponse {
        try Task.checkCancellation()
        let flag = CancelFlag()
        let result: Result<HTTPResponse, any Error> = await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                pool.submit { [handles, uploadLimiter, proxies] in
                    continuation.resume(returning: Self.perform(request, progress: progress, cancel: flag,
                                                                handles: handles, limiter: uploadLimiter, proxies: proxies))
                }
            }
        } onCancel: {
            flag.set()
        }
        return try result.get()
    }

    // MARK: The blocking part (runs on a pool thread)

    static func perform(_ request: HTTPRequest, progress: (@Sendable (Int64) -> Void)?, cancel: CancelFlag,
                        handles: HandleCache, limiter: BandwidthLimiter? = nil,
                        proxies: ProxySettings = .none) -> Result<HTTPResponse, any Error> {
        let label = "\(request.method) \(URLRedactor.redact(request.url))"
        func failure(_ kind: HTTPTransportError.Kind, _ code: Int, _ message: String) -> Result<HTTPResponse, any Error> {
            .failure(HTTPTransportError(kind: kind, curlCode: code, message: message, request: label))
        }
        if cancel.isSet { return .failure(CancellationError()) }
        for header in request.headers where (header.name + header.value).utf8.contains(where: { $0 == 13 || $0 == 10 }) {
            return failure(.other, 0, "header \(header.name) contains a line break")
        }
        let ctx = TransferContext(cancel: cancel, progress: progress, maxResponseBytes: request.limits.maxResponseBytes,
                                  limiter: limiter)
        switch request.body {
        case .none: break
        case .bytes(let b):
            ctx.bytes = b
            ctx.bodyLength = Int64(b.count)
        case .file(let path, let offset, let length):
            let fd = open(path, O_RDONLY | O_CLOEXEC)
            if fd < 0 { return failure(.fileUnreadable, 0, "cannot open \(path): \(String(cString: strerror(errno)))") }
            ctx.fd = fd
            ctx.fileOffset = offset
            ctx.bodyLength = length
        case .stream(let source):
            ctx.source = source
            ctx.bodyLength = source.length
        }
        guard let handle = handles.take() ?? EasyHandle() else {
            return failure(.other, Int(CURLE_FAILED_INIT.rawValue), "curl_easy_init failed")
        }
        handle.reset()
        let setup = configure(handle, request, ctx, proxies: proxies)
        if setup != CURLE_OK {
            return failure(.other, Int(setup.rawValue), "cannot configure the request: "
                           + String(cString: curl_easy_strerror(setup)))
        }
        let code = withExtendedLifetime(ctx) { curl_easy_perform(handle.raw) }
        var status = 0
        alti_curl_easy_getinfo_long(handle.raw, CURLINFO_RESPONSE_CODE, &status)
        handles.put(handle)

        if code == CURLE_OK {
            return .success(HTTPResponse(status: status, headers: ctx.headers, body: ctx.body,
                                         bodyTruncated: ctx.truncated))
        }
        if cancel.isSet { return .failure(CancellationError()) }
        if let readError = ctx.readError { return failure(.fileUnreadable, Int(code.rawValue), readError) }
        var detail = ctx.errorText.isEmpty ? String(cString: curl_easy_strerror(code)) : ctx.errorText
        if let proxy = proxies.proxy(for: request.url),
           ProxySettings.failureConcernsProxy(proxy, proxyResolveFailed: code == CURLE_COULDNT_RESOLVE_PROXY,
                                              connectFailed: code == CURLE_COULDNT_CONNECT, detail: detail) {
            detail += "; that is the proxy \(ProxySettings.shown(proxy)) from HTTP_PROXY/HTTPS_PROXY/ALL_PROXY: "
                + "check that it runs, or unset it (or add the host to NO_PROXY)"
        }
        return failure(kind(of: code), Int(code.rawValue), detail)
    }

    static func configure(_ handle: EasyHandle, _ request: HTTPRequest, _ ctx: TransferContext,
                          proxies: ProxySettings = .none) -> CURLcode {
        let h = handle.raw
        let userdata = Unmanaged.passUnretained(ctx).toOpaque()
        let limits = request.limits
        var codes: [CURLcode] = []
        codes.append(alti_curl_easy_setopt_str(h, CURLOPT_URL, request.url))
        codes.append(alti_curl_easy_setopt_long(h, CURLOPT_NOSIGNAL, 1))
        codes.append(alti_curl_easy_setopt_long(h, CURLOPT_PATH_AS_IS, 1))
        codes.append(alti_curl_easy_setopt_str(h, CURLOPT_PROTOCOLS_STR, "http,https"))
        codes.append(alti_curl_easy_setopt_str(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https"))
        codes.append(alti_curl_easy_setopt_long(h, CURLOPT_TCP_KEEPALIVE, 1))
        // Always set (a reused handle keeps options): "" means no proxy, and stops libcurl from
        // reading the environment on its own.
        codes.append(alti_curl_easy_setopt_str(h, CURLOPT_PROXY, proxies.proxy(for: request.url) ?? ""))
        codes.append(alti_curl_easy_setopt_str(h, CURLOPT_NOPROXY, proxies.noProxy ?? ""))
        codes.append(alti_curl_easy_setopt_long(h, CURLOPT_CONNECTTIMEOUT_MS, Int(limits.connectTimeout * 1000)))
        codes.append(alti_curl_easy_setopt_long(h, CURLOPT_LOW_SPEED_LIMIT, limits.lowSpeedLimit))
        codes.append(alti_curl_easy_setopt_long(h, CURLOPT_LOW_SPEED_TIME, Int(limits.lowSpeedTime.rounded(.up))))
        if let total = limits.totalTimeout {
            codes.append(alti_curl_easy_setopt_long(h, CURLOPT_TIMEOUT_MS, Int(total * 1000)))
        }
        codes.append(alti_curl_easy_setopt_long(h, CURLOPT_FOLLOWLOCATION, limits.followRedirects ? 1 : 0))
        codes.append(alti_curl_easy_setopt_ptr(h, CURLOPT_ERRORBUFFER, ctx.errorBuffer))
        codes.append(alti_curl_easy_setopt_datacb(h, CURLOPT_WRITEFUNCTION, writeCallback))
        codes.append(alti_curl_easy_setopt_ptr(h, CURLOPT_WRITEDATA, userdata))
        codes.append(alti_curl_easy_setopt_datacb(h, CURLOPT_HEADERFUNCTION, headerCallback))
        codes.append(alti_curl_easy_setopt_ptr(h, CURLOPT_HEADERDATA, userdata))
        codes.append(alti_curl_easy_setopt_xferinfocb(h, xferinfoCallback))
        codes.append(alti_curl_easy_setopt_ptr(h, CURLOPT_XFERINFODATA, userdata))
        codes.append(alti_curl_easy_setopt_long(h, CURLOPT_NOPROGRESS, 0))

        let method = request.method.uppercased()
        func streamBody() {
            codes.append(alti_curl_easy_setopt_datacb(h, CURLOPT_READFUNCTION, readCallback))
            codes.append(alti_curl_easy_setopt_ptr(h, CURLOPT_READDATA, userdata))
            codes.append(alti_curl_easy_setopt_seekcb(h, seekCallback))
            codes.append(alti_curl_easy_setopt_ptr(h, CURLOPT_SEEKDATA, userdata))
        }
        switch (method, request.body) {
        case ("HEAD", _):
            codes.append(alti_curl_easy_setopt_long(h, CURLOPT_NOBODY, 1))
        case ("GET", .none):
            codes.append(alti_curl_easy_setopt_long(h, CURLOPT_HTTPGET, 1))
        case ("POST", .bytes(let bytes)):
            codes.append(alti_curl_easy_setopt_off(h, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(bytes.count)))
            // COPYPOSTFIELDS copies POSTFIELDSIZE_LARGE bytes at once (the pointer must not be NULL,
            // hence one spare byte for an empty body).
            var copy = bytes
            copy.append(0)
            codes.append(copy.withUnsafeMutableBytes {
                alti_curl_easy_setopt_ptr(h, CURLOPT_COPYPOSTFIELDS, $0.baseAddress)
            })
        case ("POST", _):
            codes.append(alti_curl_easy_setopt_long(h, CURLOPT_POST, 1))
            codes.append(alti_curl_easy_setopt_off(h, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(ctx.bodyLength)))
            streamBody()
        case (_, .none) where method != "PUT":
            codes.append(alti_curl_easy_setopt_str(h, CURLOPT_CUSTOMREQUEST, method))
        default:
            // PUT (or another method with a body): upload with a known size.
            codes.append(alti_curl_easy_setopt_long(h, CURLOPT_UPLOAD, 1))
            codes.append(alti_curl_easy_setopt_off(h, CURLOPT_INFILESIZE_LARGE, curl_off_t(ctx.bodyLength)))
            streamBody()
            if method != "PUT" {
                codes.append(alti_curl_easy_setopt_str(h, CURLOPT_CUSTOMREQUEST, method))
            }
        }

        var lines = request.headers.map { $0.value.isEmpty ? "\($0.name);" : "\($0.name): \($0.value)" }
        func callerSets(_ name: String) -> Bool { request.header(name) != nil }
        if !callerSets("Expect") { lines.append("Expect:") }
        if !callerSets("Accept") { lines.append("Accept:") }
        if method == "POST" && !callerSets("Content-Type") { lines.append("Content-Type:") }
        codes.append(handle.setHeaders(lines))
        return codes.first { $0 != CURLE_OK } ?? CURLE_OK
    }

    /// The kind for a raw `CURLcode` value.
    static func kind(ofCurlCode raw: Int) -> HTTPTransportError.Kind {
        kind(of: CURLcode(rawValue: UInt32(raw)))
    }

    static func kind(of code: CURLcode) -> HTTPTransportError.Kind {
        switch code {
        case CURLE_COULDNT_RESOLVE_HOST, CURLE_COULDNT_RESOLVE_PROXY:
            return .cannotResolve
        case CURLE_COULDNT_CONNECT:
            return .cannotConnect
        case CURLE_OPERATION_TIMEDOUT:
            return .timedOut
        case CURLE_GOT_NOTHING, CURLE_SEND_ERROR, CURLE_RECV_ERROR, CURLE_PARTIAL_FILE, CURLE_HTTP2,
             CURLE_HTTP2_STREAM, CURLE_SEND_FAIL_REWIND:
            return .connectionLost
        case CURLE_SSL_CONNECT_ERROR, CURLE_PEER_FAILED_VERIFICATION, CURLE_SSL_CERTPROBLEM, CURLE_SSL_CIPHER,
             CURLE_SSL_CACERT_BADFILE, CURLE_SSL_ENGINE_NOTFOUND, CURLE_SSL_ENGINE_SETFAILED,
             CURLE_SSL_SHUTDOWN_FAILED, CURLE_SSL_CRL_BADFILE, CURLE_SSL_ISSUER_ERROR,
             CURLE_SSL_PINNEDPUBKEYNOTMATCH, CURLE_SSL_INVALIDCERTSTATUS, CURLE_USE_SSL_FAILED,
             CURLE_SSL_CLIENTCERT:
            return .tls
        case CURLE_ABORTED_BY_CALLBACK:
            return .cancelled
        case CURLE_READ_ERROR:
            return .fileUnreadable
        default:
            return .other
        }
    }
}
