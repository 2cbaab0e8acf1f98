import AltiAPI
import AltiCore
import AltiCrypto
import AltiNet
import AltiSigning
import Foundation

/// How OSS uploads are made (`--oss-signature`, `--multipart-threshold`, `--part-size`).
public struct OSSOptions: Sendable {
    public enum Signature: String, Sendable, CaseIterable { case v1, v4 }
    /// V4 by default: OSS retires V1 for new accounts and buckets (storage-protocols.md a.1).
    public var signature: Signature = .v4
    /// Images larger than this go up as a multipart upload, resumable part by part.
    public var multipartThreshold: Int64 = 32 << 20
    /// Every part but the last is this big (OSS: at least 100 KiB, at most 10,000 parts).
    public var partSize: Int64 = 8 << 20

    public init() {}
}

/// The OSS path of the upload guide: `uploadImageOSS` registers a window of images (asking for
/// STS credentials only when none is held that is still valid); the bytes go to
/// `<sts.bucket>/<pid>/<server filename>` signed with the one shared credential (V4 by default);
/// `doneImageUpload` completes each image. Large images go up as a multipart upload whose parts
/// are journaled, so a re-run sends only the missing ones. Every response's
/// `x-oss-hash-crc64ecma` is checked against the CRC-64 computed while the bytes streamed.
public struct OSSStorage: ImageStorage {
    public let cloud = "OSS"
    public let bucket: String
    let catalog: AltizureCatalog
    let credentials: STSVault
    let clock: OSSClock
    let transport: any HTTPTransport
    let retry: RetryPolicy
    let limits: HTTPLimits
    let options: OSSOptions
    let metrics: SyncMetrics
    let sleep: @Sendable (Duration) async throws -> Void
    /// `doneImageUpload`s of images stored while one is on its way go together in the next
    /// aliased request.
    let completions: CompletionBatch

    public init(bucket: String, catalog: AltizureCatalog, transport: any HTTPTransport, retry: RetryPolicy,
                limits: HTTPLimits, options: OSSOptions, metrics: SyncMetrics, clock: OSSClock,
                sleep: @escaping @Sendable (Duration) async throws -> Void = { try await Task.sleep(for: $0) }) {
        self.bucket = bucket
        self.catalog = catalog
        self.transport = transport
        self.retry = retry
        self.limits = limits
        self.options = options
        self.metrics = metrics
        self.clock = clock
        self.sleep = sleep
        self.credentials = STSVault(catalog: catalog, bucket: bucket, metrics: metrics, clock: clock)
        self.completions = CompletionBatch(limit: catalog.batchLimit) { ids in try await catalog.doneUpload(imageIDs: ids) }
    }

    public var batchLimit: Int { catalog.batchLimit }

    public func register(project: String, images: [ImageRegistration]) async throws -> [String: Result<RegisteredImage, AltiError>] {
        await credentials.use(project: project)
        let withSTS = await credentials.needsRenewal()
        let answer = try await catalog.registerOSS(project: project, bucket: bucket, images: images, withSTS: withSTS)
        if let sts = answer.sts { await credentials.store(sts) }
        var result: [String: Result<RegisteredImage, AltiError>] = [:]
        for image in images {
            result[image.sha1] = answer.images[image.sha1].map { registered in
                registered.map { remote in
                    // The object key is `${pid}/${image.filename}`: the SERVER's filename.
                    RegisteredImage(image: remote, grant: .objectKey("\(project)/\(remote.filename ?? image.filename)"))
                }
            }
        }
        return result
    }

    public func complete(imageID: String) async throws -> RemoteImage? {
        try await completions.complete(imageID)
    }

    public func transfer(_ source: UploadSource, contentType: String, grant: UploadGrant, resume: TransferResume,
                         progress: @escaping @Sendable (Int64) -> Void) async throws -> TransferOutcome {
        guard case .objectKey(let key) = grant else {
            return .failed(reason: "internal error: an OSS upload needs an object key")
        }
        if let change = source.changeSinceScan() { return .failed(reason: change) }
        if source.size > options.multipartThreshold {
            return try await MultipartTransfer(storage: self, source: source, key: key, contentType: contentType,
                                               resume: resume, progress: progress).run()
        }
        let request = OSSCall(method: "PUT", key: key, query: [], contentType: contentType,
                              body: .part(offset: 0, length: source.size))
        switch try await send(request, source: source, progress: progress) {
        case .ok: return .stored
        case .uploadLost(let code): return .failed(reason: "the store answered \(code) to a single PUT")
        case .refused(let outcome): return outcome
        }
    }

    // MARK: One signed request, retried

    /// A request to the store: its method, key, sub-resources, and body.
    struct OSSCall: Sendable {
        enum Body: Sendable {
            case none
            case bytes([UInt8])
            /// A range of the image's bytes, CRC-checked against the store's answer; read from
            /// `file` when given (the parts of one multipart upload share one open source).
            case part(offset: Int64, length: Int64, file: SharedSourceFile? = nil)
        }
        var method: String
        var key: String
        var query: [(name: String, value: String)]
        var contentType: String?
        var body: Body
    }

    enum CallResult: Sendable {
        /// 200 (or 204) with the CRC checked: the response, and the CRC of the bytes sent.
        case ok(HTTPResponse, crc64: UInt64)
        /// The multipart upload as the client knows it is gone: `NoSuchUpload`, or `InvalidPart`
        /// (Complete lists a part the store does not hold). The image starts over.
        case uploadLost(code: String)
        case refused(TransferOutcome)
    }

    /// Sends one call with the shared credential, signed on the corrected clock. Transient
    /// failures and a CRC mismatch are retried; an expired or refused credential is renewed once;
    /// a skewed clock is corrected once; anything else is refused with the store's code.
    func send(_ call: OSSCall, source: UploadSource, progress: @escaping @Sendable (Int64) -> Void) async throws
        -> CallResult
    {
        var renewed = false
        var corrected = false
        let metrics = self.metrics
        do {
            return try await retry.run(sleep: sleep, onRetryNote: { attempt, delay, reason in
                metrics.countTransferRetry(RetryNote(what: "OSS \(call.method) of \(source.path)", attempt: attempt, delay: delay,
                                                     reason: URLRedactor.redactMessage(reason)))
            }) { _ -> RetryStep<CallResult> in
                let sts = try await credentials.credential()
                let endpoint = OSSEndpoint(sts.endpoint, bucket: sts.bucket)
                var headers: [SigningHeader] = []
                if let type = call.contentType { headers.append(("Content-Type", type)) }
                let unsigned = OSSRequest(method: call.method, bucket: sts.bucket, key: call.key, headers: headers,
                                          query: call.query)
                let version: OSSSignatureVersion = options.signature == .v1 ? .v1 : .v4(region: endpoint.region)
                let signed = OSSSigner.sign(unsigned, credentials: OSSCredentials(
                    accessKeyId: sts.accessKeyID, accessKeySecret: sts.accessKeySecret, securityToken: sts.securityToken),
                    version: version, date: await clock.now())
                let crc = CRCAccumulator()
                let body: HTTPBody
                switch call.body {
                case .none: body = .none
                case .bytes(let bytes): body = .bytes(bytes)
                case .part(let offset, let length, let file):
                    body = .stream(CRCBody(source: source, file: file, offset: offset, length: length, crc: crc))
                }
                let request = HTTPRequest(method: call.method, url: endpoint.url(key: call.key, query: call.query),
                                          headers: signed.headers.map { (name: $0.name, value: $0.value) }, body: body,
                                          limits: limits)
                let deltas = ProgressDeltas(progress)
                let response: HTTPResponse
                do {
                    response = try await transport.send(request) { deltas.update(cumulative: $0) }
                } catch let error as HTTPTransportError {
                    deltas.backOut()
                    return try TransportFailure(error, source: source).step { .refused(.failed(reason: $0)) }
                }
                if response.status == 200 || response.status == 204 {
                    // A Wi-Fi login page answers with 200 too: never take its page for a store.
                    if let portal = CaptivePortal.recognise(response, url: request.url) {
                        deltas.backOut()
                        return .finished(.refused(.unreachable(reason: portal.message)))
                    }
                    if case .part = call.body, let answered = response.header("x-oss-hash-crc64ecma").flatMap(UInt64.init),
                       answered != crc.value {
                        // The store holds other bytes than we sent: never record it, send again.
                        deltas.backOut()
                        return .retry(because: "CRC-64 mismatch (sent \(crc.value), stored \(answered))")
                    }
                    return .finished(.ok(response, crc64: crc.value))
                }
                deltas.backOut()
                let code = S3ErrorBody.code(response.body) ?? "HTTP \(response.status)"
                let message = S3ErrorBody.message(response.body) ?? ""
                if code == "NoSuchUpload" || code == "InvalidPart" { return .finished(.uploadLost(code: code)) }
                if code == "RequestTimeTooSkewed", !corrected {
                    corrected = true
                    let serverTime = S3ErrorBody.element("ServerTime", response.body).flatMap(STSCredential.parseExpire)
                        ?? response.date
                    if let serverTime { await clock.correct(serverTime: serverTime) }
                    return .retry(because: "RequestTimeTooSkewed")
                }
                if response.status == 403, Self.isCredentialRefusal(code: code, message: message) {
                    if !renewed {
                        renewed = true
                        await credentials.refused(sts)
                        return .retry(because: code)
                    }
                    return .finished(.refused(.failed(
                        reason: "the store refused the OSS credentials after a renewal (\(code): \(message)); check the key and token, and run again")))
                }
                if RetryPolicy.isTransient(status: response.status) {
                    return .retry(because: "HTTP \(response.status) \(code)")
                }
                return .finished(.refused(.failed(reason: "the store refused \(source.displayPath): \(code) \(message)")))
            }
        } catch let exhausted as RetriesExhausted {
            return .refused(.unreachable(
                reason: "upload of \(source.displayPath) failed after \(exhausted.attempts) tries (\(exhausted.lastProblem)); run again to resume"))
        }
    }

    /// A 403 that a fresh STS may mend: the token or the key id is expired, invalid or mismatched,
    /// or the signature made with its secret does not match (a damaged or tampered secret).
    static func isCredentialRefusal(code: String, message: String) -> Bool {
        let codes: Set<String> = ["InvalidAccessKeyId", "InvalidSecurityToken", "SecurityTokenExpired",
                                  "AccessKeyIdAndSecurityTokenNotMatch", "ExpiredToken", "SignatureDoesNotMatch"]
        return codes.contains(code) || message.lowercased().contains("security token")
    }
}

/// A multipart upload of one image: Initiate (journaled), the missing parts (each journaled with
/// its ETag and CRC as it is stored), Complete (the whole object's CRC checked by combining the
/// parts' CRCs). An upload id the store no longer knows starts the image over, once.
struct MultipartTransfer {
    let storage: OSSStorage
    let source: UploadSource
    let key: String
    let contentType: String
    let resume: TransferResume
    let progress: @Sendable (Int64) -> Void

    func run() async throws -> TransferOutcome {
        let partSize = storage.options.partSize
        var upload = resume.multipart.flatMap { $0.key == key && $0.partSize == partSize ? $0 : nil }
        var restarted = false
        let partCount = Int((source.size + partSize - 1) / partSize)
        // One open source for all the parts: a member of a tar.gz is then read on, part after
        // part, instead of from the archive's start for each.
        let file = SharedSourceFile(source)
        while true {
            if upload == nil {
                let initiate = OSSStorage.OSSCall(method: "POST", key: key, query: [("uploads", "")], contentType: contentType,
                                                  body: .bytes([]))
                switch try await storage.send(initiate, source: source, progress: { _ in }) {
                case .ok(let response, _):
                    guard let id = S3ErrorBody.element("UploadId", response.body), !id.isEmpty else {
                        return .failed(reason: "the store answered no UploadId to InitiateMultipartUpload for \(source.displayPath)")
                    }
                    try await resume.record(.multipartStarted(uploadID: id, key: key, partSize: partSize))
                    upload = MultipartUpload(uploadID: id, key: key, partSize: partSize, parts: [])
                case .uploadLost(let code):
                    return .failed(reason: "the store answered \(code) to InitiateMultipartUpload")
                case .refused(let outcome):
                    return outcome
                }
            }
            guard var current = upload else { continue }
            var lost = false
            let stored = Set(current.parts.map(\.number))
            for number in 1...max(1, partCount) where !stored.contains(number) {
                try Task.checkCancellation()
                let offset = Int64(number - 1) * partSize
                let length = min(partSize, source.size - offset)
                let call = OSSStorage.OSSCall(
                    method: "PUT", key: key, query: [("partNumber", String(number)), ("uploadId", current.uploadID)],
                    contentType: nil, body: .part(offset: offset, length: length, file: file))
                switch try await storage.send(call, source: source, progress: progress) {
                case .ok(let response, let crc):
                    let part = MultipartUpload.Part(number: number, etag: response.header("ETag") ?? "", crc64: String(crc),
                                                    size: length)
                    try await resume.record(.partStored(uploadID: current.uploadID, part: part))
                    current.parts.append(part)
                case .uploadLost:
                    lost = true
                case .refused(let outcome):
                    return outcome
                }
                if lost { break }
            }
            if !lost {
                current.parts.sort { $0.number < $1.number }
                switch try await complete(current) {
                case .stored: return .stored
                case .lost: lost = true
                case .refused(let outcome): return outcome
                }
            }
            // The store no longer knows the upload (or assembled other bytes): start over, once.
            try await resume.record(.multipartAbandoned(uploadID: current.uploadID))
            if restarted {
                return .failed(reason: "the store lost the multipart upload of \(source.displayPath) twice; run again")
            }
            restarted = true
            upload = nil
        }
    }

    enum Completion { case stored, lost, refused(TransferOutcome) }

    func complete(_ upload: MultipartUpload) async throws -> Completion {
        var xml = "<CompleteMultipartUpload>"
        for part in upload.parts {
            xml += "<Part><PartNumber>\(part.number)</PartNumber><ETag>\(part.etag)</ETag></Part>"
        }
        xml += "</CompleteMultipartUpload>"
        let call = OSSStorage.OSSCall(method: "POST", key: key, query: [("uploadId", upload.uploadID)],
                                      contentType: "application/xml", body: .bytes(Array(xml.utf8)))
        switch try await storage.send(call, source: source, progress: { _ in }) {
        case .ok(let response, _):
            var expected: UInt64 = 0
            for part in upload.parts {
                expected = CRC64.combine(expected, UInt64(part.crc64) ?? 0, secondLength: part.size)
            }
            if let answered = response.header("x-oss-hash-crc64ecma").flatMap(UInt64.init), answered != expected {
                return .lost
            }
            return .stored
        case .uploadLost:
            return .lost
        case .refused(let outcome):
            return .refused(outcome)
        }
    }
}

/// The one STS credential every upload shares: fetched once (or handed over by a registration),
/// renewed shortly before it expires (less than a fifth of its lifetime or 5 minutes left,
/// whichever is less) or once after the store refused it; concurrent callers wait for one
/// renewal. Never one STS per image.
public actor STSVault {
    let catalog: AltizureCatalog
    let bucket: String
    let metrics: SyncMetrics
    let clock: OSSClock
    private var project: String?
    private var current: (sts: STSCredential, localExpiry: Date, lifetime: TimeInterval)?
    private var renewal: Task<STSCredential, any Error>?

    init(catalog: AltizureCatalog, bucket: String, metrics: SyncMetrics, clock: OSSClock) {
        self.catalog = catalog
        self.bucket = bucket
        self.metrics = metrics
        self.clock = clock
    }

    func use(project: String) { self.project = project }

    /// True when no credential is held that is still comfortably valid.
    func needsRenewal() async -> Bool {
        guard let current else { return true }
        let now = await clock.now()
        return current.localExpiry.timeIntervalSince(now) < min(current.lifetime / 5, 300)
    }

    /// Keeps `sts`. Its lifetime is counted on the (corrected) local clock: `expire` is the
    /// server's time, and a laptop clock an hour off must not make every credential look expired.
    func store(_ sts: STSCredential) async {
        let now = await clock.now()
        var lifetime = sts.expiresAt.timeIntervalSince(now)
        if lifetime <= 0 || lifetime > 12 * 3600 { lifetime = 3600 }  // the documented hour
        current = (sts, now.addingTimeInterval(lifetime), lifetime)
        metrics.update { $0.credentialsReceived += 1 }
    }

    /// The credential to sign with now.
    func credential() async throws -> STSCredential {
        if let current, !(await needsRenewal()) { return current.sts }
        if let renewal { return try await renewal.value }
        guard let project else { throw AltiError(.software, "OSS credentials asked for before any registration") }
        let (catalog, bucket) = (self.catalog, self.bucket)
        let task = Task { () throws -> STSCredential in
            let answer = try await catalog.registerOSS(project: project, bucket: bucket, images: [], withSTS: true)
            guard let sts = answer.sts else {
                throw AltiError(.protocolError, "the server gave no OSS credentials for project \(project)")
            }
            return sts
        }
        renewal = task
        defer { renewal = nil }
        let sts = try await task.value
        await store(sts)
        return sts
    }

    /// The store refused `sts`: the next caller renews (unless another already did).
    func refused(_ sts: STSCredential) {
        if current?.sts.securityToken == sts.securityToken { current = nil }
    }
}

/// The clock requests are signed with: the laptop's, corrected by the store's own time after a
/// `RequestTimeTooSkewed` (field laptops often have wrong clocks). Says once how far off it was.
public actor OSSClock {
    private var offset: TimeInterval = 0
    private var noticed = false
    let notice: @Sendable (String) -> Void
    let base: @Sendable () -> Date

    public init(notice: @escaping @Sendable (String) -> Void = { _ in }, base: @escaping @Sendable () -> Date = { Date() }) {
        self.notice = notice
        self.base = base
    }

    public func now() -> Date { base().addingTimeInterval(offset) }

    func correct(serverTime: Date) {
        offset = serverTime.timeIntervalSince(base())
        if !noticed {
            noticed = true
            let minutes = Int((abs(offset) / 60).rounded())
            notice("alti: this laptop's clock is \(minutes) min \(offset < 0 ? "ahead of" : "behind") the storage's; signing with the storage's time for this run (set the clock to avoid this)\n")
        }
    }
}

/// Where an STS endpoint is and how to address a bucket on it: path style for an IP address or
/// `localhost` (as the SDKs do), virtual-host style otherwise; the V4 region from its
/// `oss-<region>` label.
struct OSSEndpoint: Sendable {
    var scheme: String
    var host: String
    var port: Int?
    var bucket: String

    init(_ endpoint: String, bucket: String) {
        var rest = Substring(endpoint)
        if let range = rest.range(of: "://") {
            scheme = String(rest[..<range.lowerBound]).lowercased()
            rest = rest[range.upperBound...]
        } else {
            scheme = "https"
        }
        if let slash = rest.firstIndex(of: "/") { rest = rest[..<slash] }
        if let colon = rest.lastIndex(of: ":"), !rest.hasSuffix("]"), let p = Int(rest[rest.index(after: colon)...]) {
            port = p
            rest = rest[..<colon]
        }
        host = String(rest)
        self.bucket = bucket
    }

    var pathStyle: Bool {
        host == "localhost" || host.hasPrefix("[") || host.split(separator: ".").count == 4
            && host.split(separator: ".").allSatisfy { UInt8($0) != nil }
    }

    /// `cn-shenzhen` of `oss-cn-shenzhen(-internal).aliyuncs.com`; the emulator accepts any region.
    var region: String {
        guard let label = host.split(separator: ".").first(where: { $0.hasPrefix("oss-") }) else { return "cn-hangzhou" }
        var region = String(label.dropFirst(4))
        if region.hasSuffix("-internal") { region.removeLast("-internal".count) }
        return region.isEmpty || region == "accelerate" ? "cn-hangzhou" : region
    }

    /// The request URL: the key percent-encoded as the SDKs do (every byte but `A-Za-z0-9-._~`
    /// and `/`), sub-resources in the query.
    func url(key: String, query: [(name: String, value: String)]) -> String {
        let authority = (pathStyle ? host : "\(bucket).\(host)") + (port.map { ":\($0)" } ?? "")
        var url = "\(scheme)://\(authority)/" + (pathStyle ? SigningEncoding.uriEncode(bucket) + "/" : "")
            + SigningEncoding.uriEncode(key, keepSlash: true)
        if !query.isEmpty {
            url += "?" + query.map { $0.value.isEmpty ? SigningEncoding.uriEncode($0.name)
                : SigningEncoding.uriEncode($0.name) + "=" + SigningEncoding.uriEncode($0.value) }.joined(separator: "&")
        }
        return url
    }
}

/// The CRC-64 of the bytes a body sent, reset when the body is read again from the start.
final class CRCAccumulator: @unchecked Sendable {
    private let lock = NSLock()
    private var crc = CRC64()
    func reset() { lock.withLock { crc = CRC64() } }
    func update(_ bytes: UnsafeRawBufferPointer) { lock.withLock { crc.update(bytes) } }
    var value: UInt64 { lock.withLock { crc.value } }
}

/// One upload source opened once and read by several requests in turn (the parts of a multipart
/// upload); the file goes when the last request does.
final class SharedSourceFile: @unchecked Sendable {
    private let source: UploadSource
    private let lock = NSLock()
    private var file: (any ReadableFile)?

    init(_ source: UploadSource) { self.source = source }

    func open() throws(OSError) -> any ReadableFile {
        lock.lock()
        defer { lock.unlock() }
        if let file { return file }
        let opened = try source.open()
        file = opened
        return opened
    }
}

/// A range of an upload source as an HTTP body, its CRC-64 computed as it streams (no second read).
struct CRCBody: HTTPBodySource {
    let source: UploadSource
    let file: SharedSourceFile?
    let offset: Int64
    let length: Int64
    let crc: CRCAccumulator

    func open() throws -> any HTTPBodyReader {
        crc.reset()
        return Reader(file: try file?.open() ?? source.open(), offset: offset, length: length, crc: crc)
    }

    final class Reader: HTTPBodyReader {
        let file: any ReadableFile
        var position: Int64
        let end: Int64
        let crc: CRCAccumulator

        init(file: any ReadableFile, offset: Int64, length: Int64, crc: CRCAccumulator) {
            self.file = file
            self.position = offset
            self.end = offset + length
            self.crc = crc
        }

        func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
            let want = Int(min(Int64(buffer.count), end - position))
            guard want > 0 else { return 0 }
            let bytes = try file.read(at: position, count: want)
            guard !bytes.isEmpty else { return 0 }
            bytes.withUnsafeBytes { raw in
                buffer.copyMemory(from: raw)
                crc.update(raw)
            }
            position += Int64(bytes.count)
            return bytes.count
        }
    }
}

/// Signals per-image completions in as few aliased requests as possible without delaying any:
/// the first one goes at once, alone; those that come while a request is on its way wait for it
/// and go together in the next one (at most `limit` per request). Each caller gets its own
/// image's answer, or the request's error.
actor CompletionBatch {
    typealias Send = @Sendable ([String]) async throws -> [String: RemoteImage]
    private var waiting: [(id: String, answer: CheckedContinuation<RemoteImage?, any Error>)] = []
    private var sending = false
    private let limit: Int
    private let send: Send

    init(limit: Int, send: @escaping Send) {
        self.limit = max(1, limit)
        self.send = send
    }

    func complete(_ id: String) async throws -> RemoteImage? {
        try Task.checkCancellation()
        return try await withCheckedThrowingContinuation { answer in
            waiting.append((id, answer))
            if !sending {
                sending = true
                Task { await self.drain() }
            }
        }
    }

    private func drain() async {
        while !waiting.isEmpty {
            let batch = Array(waiting.prefix(limit))
            waiting.removeFirst(batch.count)
            do {
                let answers = try await send(batch.map(\.id))
                for caller in batch { caller.answer.resume(returning: answers[caller.id]) }
            } catch {
                for caller in batch { caller.answer.resume(throwing: error) }
            }
        }
        sending = false
    }
}
