import Foundation

/// The two classes of requests faults apply to.
public enum RequestClass: String, Sendable, Codable, CaseIterable {
    /// `POST /graphql`.
    case graphql
    /// Storage requests: `PUT /s3/...` and every OSS request (`PUT`, `POST`, `DELETE`, `GET` under
    /// `/<ossBucket>/...`, multipart included). The name predates multipart.
    case put
}

/// Fault switches for one request class. `...Next` fields hit the next N requests (deterministic,
/// for tests); `...Rate` fields hit each request with that probability (0...1, for demos).
/// Precedence when several apply to one request: reset, hang, trickle, fail.
public struct RequestFaults: Sendable, Codable, Equatable {
    /// Added to every request of this class before it is answered (a fixed round-trip delay).
    public var latencyMilliseconds: Int = 0
    /// Answer `failStatus` (503 or 500) instead of handling the request.
    public var failNext: Int = 0
    public var failRate: Double = 0
    public var failStatus: Int = 503
    /// Close the connection (TCP reset) in the middle of the request body.
    public var resetNext: Int = 0
    public var resetRate: Double = 0
    /// Read the request body at `trickleBytesPerSecond`, then answer normally.
    public var trickleNext: Int = 0
    public var trickleRate: Double = 0
    public var trickleBytesPerSecond: Int = 1024
    /// Read the request, then do not answer for `hangSeconds` (or until the emulator stops).
    public var hangNext: Int = 0
    public var hangRate: Double = 0
    public var hangSeconds: Double = 60

    public init() {}

    enum CodingKeys: String, CodingKey {
        case latencyMilliseconds, failNext, failRate, failStatus, resetNext, resetRate
        case trickleNext, trickleRate, trickleBytesPerSecond, hangNext, hangRate, hangSeconds
    }

    /// Every field is optional in JSON; a missing one keeps its default.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = RequestFaults()
        latencyMilliseconds = try c.decodeIfPresent(Int.self, forKey: .latencyMilliseconds) ?? d.latencyMilliseconds
        failNext = try c.decodeIfPresent(Int.self, forKey: .failNext) ?? d.failNext
        failRate = try c.decodeIfPresent(Double.self, forKey: .failRate) ?? d.failRate
        failStatus = try c.decodeIfPresent(Int.self, forKey: .failStatus) ?? d.failStatus
        resetNext = try c.decodeIfPresent(Int.self, forKey: .resetNext) ?? d.resetNext
        resetRate = try c.decodeIfPresent(Double.self, forKey: .resetRate) ?? d.resetRate
        trickleNext = try c.decodeIfPresent(Int.self, forKey: .trickleNext) ?? d.trickleNext
        trickleRate = try c.decodeIfPresent(Double.self, forKey: .trickleRate) ?? d.trickleRate
        trickleBytesPerSecond =
            try c.decodeIfPresent(Int.self, forKey: .trickleBytesPerSecond) ?? d.trickleBytesPerSecond
        hangNext = try c.decodeIfPresent(Int.self, forKey: .hangNext) ?? d.hangNext
        hangRate = try c.decodeIfPresent(Double.self, forKey: .hangRate) ?? d.hangRate
        hangSeconds = try c.decodeIfPresent(Double.self, forKey: .hangSeconds) ?? d.hangSeconds
    }

    /// Checks ranges; returns a message naming the bad field, or nil.
    func validationError(prefix: String) -> String? {
        for (name, rate) in [("failRate", failRate), ("resetRate", resetRate), ("trickleRate", trickleRate),
                             ("hangRate", hangRate)] where !(0...1).contains(rate) {
            return "\(prefix).\(name) must be between 0 and 1"
        }
        for (name, count) in [("latencyMilliseconds", latencyMilliseconds), ("failNext", failNext),
                              ("resetNext", resetNext), ("trickleNext", trickleNext), ("hangNext", hangNext)]
        where count < 0 {
            return "\(prefix).\(name) must not be negative"
        }
        if failStatus != 500 && failStatus != 503 { return "\(prefix).failStatus must be 500 or 503" }
        if trickleBytesPerSecond < 1 { return "\(prefix).trickleBytesPerSecond must be at least 1" }
        if hangSeconds < 0 { return "\(prefix).hangSeconds must not be negative" }
        return nil
    }
}

/// The system mode `support { systemMode }` reports. In `ReadOnly`, mutations that write
/// (register, start/done upload, create project, reconstruction) answer a GraphQL error.
public enum SystemMode: String, Sendable, Codable {
    case normal = "Normal"
    case readOnly = "ReadOnly"
}

/// All run-time switches: set from flags at start, replaced via `POST /_emulator/faults` or
/// `RunningEmulator.setFaults(_:)`. Every JSON field is optional (missing = default = off).
public struct FaultSettings: Sendable, Codable, Equatable {
    public var graphql: RequestFaults = .init()
    public var put: RequestFaults = .init()
    /// `Normal` or `ReadOnly`.
    public var systemMode: SystemMode = .normal
    /// Overrides `EmulatorConfiguration.urlLifetime` for URLs issued from now on (seconds).
    public var urlLifetimeSeconds: Double?
    /// Overrides `EmulatorConfiguration.stsLifetime` for STS issued from now on (seconds).
    public var stsLifetimeSeconds: Double?
    /// Image names (client filenames), server filenames or ids that processing turns Invalid.
    public var forceInvalid: [String] = []
    /// Added to the emulator clock for OSS requests only (seconds, either sign): the OSS storage
    /// then judges request times, STS expiry and `RequestTimeTooSkewed` by that clock and answers it
    /// in `Date` and `ServerTime`, so a client with a correct clock looks skewed to it.
    public var ossClockSkewSeconds: Double = 0
    /// The next N stores (S3 PUT, OSS PutObject, UploadPart, CompleteMultipartUpload; empty bodies
    /// excepted) keep a copy with one byte flipped, and the answer (ETag, `x-oss-hash-crc64ecma`)
    /// describes that stored copy: a client that checks them sees the damage.
    public var corruptNextStores: Int = 0
    /// The next N STS credentials hand the client a secret that differs from the one the OSS
    /// verifier holds (every request signed with it is `SignatureDoesNotMatch`).
    public var tamperNextSTS: Int = 0
    /// One cap, in bytes per second, on all upload bodies together (S3 PUT, OSS PutObject and
    /// UploadPart): a thin link shared by every parallel upload. 0: no cap.
    public var bandwidthBytesPerSecond: Int = 0

    public init() {}

    enum CodingKeys: String, CodingKey {
        case graphql, put, systemMode, urlLifetimeSeconds, stsLifetimeSeconds, forceInvalid
        case ossClockSkewSeconds, corruptNextStores, tamperNextSTS, bandwidthBytesPerSecond
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        graphql = try c.decodeIfPresent(RequestFaults.self, forKey: .graphql) ?? .init()
        put = try c.decodeIfPresent(RequestFaults.self, forKey: .put) ?? .init()
        systemMode = try c.decodeIfPresent(SystemMode.self, forKey: .systemMode) ?? .normal
        urlLifetimeSeconds = try c.decodeIfPresent(Double.self, forKey: .urlLifetimeSeconds)
        stsLifetimeSeconds = try c.decodeIfPresent(Double.self, forKey: .stsLifetimeSeconds)
        forceInvalid = try c.decodeIfPresent([String].self, forKey: .forceInvalid) ?? []
        ossClockSkewSeconds = try c.decodeIfPresent(Double.self, forKey: .ossClockSkewSeconds) ?? 0
        corruptNextStores = try c.decodeIfPresent(Int.self, forKey: .corruptNextStores) ?? 0
        tamperNextSTS = try c.decodeIfPresent(Int.self, forKey: .tamperNextSTS) ?? 0
        bandwidthBytesPerSecond = try c.decodeIfPresent(Int.self, forKey: .bandwidthBytesPerSecond) ?? 0
    }

    public subscript(requestClass: RequestClass) -> RequestFaults {
        get { requestClass == .graphql ? graphql : put }
        set {
            if requestClass == .graphql { graphql = newValue } else { put = newValue }
        }
    }

    /// A message naming the first out-of-range field, or nil when the settings are usable.
    public func validationError() -> String? {
        if let message = graphql.validationError(prefix: "graphql") { return message }
        if let message = put.validationError(prefix: "put") { return message }
        if let s = urlLifetimeSeconds, s <= 0 { return "urlLifetimeSeconds must be positive" }
        if let s = stsLifetimeSeconds, s <= 0 { return "stsLifetimeSeconds must be positive" }
        if !ossClockSkewSeconds.isFinite { return "ossClockSkewSeconds must be a number of seconds" }
        if corruptNextStores < 0 { return "corruptNextStores must not be negative" }
        if tamperNextSTS < 0 { return "tamperNextSTS must not be negative" }
        if bandwidthBytesPerSecond < 0 { return "bandwidthBytesPerSecond must not be negative" }
        return nil
    }
}

/// What the emulator does to one request, decided when it arrives.
public enum FaultAction: Sendable, Equatable {
    case none
    case fail(status: Int)
    case reset
    case trickle(bytesPerSecond: Int)
    case hang(seconds: Double)

    /// A short label for the request log and the outcome counters.
    var label: String? {
        switch self {
        case .none: return nil
        case .fail(let status): return "fault-\(status)"
        case .reset: return "fault-reset"
        case .trickle: return nil
        case .hang: return "fault-hang"
        }
    }
}

extension RequestFaults {
    /// Consumes one `...Next` count or rolls the rates; mutates the counters.
    mutating func decide(using rng: inout some RandomNumberGenerator) -> FaultAction {
        func roll(_ rate: Double) -> Bool { rate > 0 && Double.random(in: 0..<1, using: &rng) < rate }
        if resetNext > 0 { resetNext -= 1; return .reset }
        if roll(resetRate) { return .reset }
        if hangNext > 0 { hangNext -= 1; return .hang(seconds: hangSeconds) }
        if roll(hangRate) { return .hang(seconds: hangSeconds) }
        if trickleNext > 0 { trickleNext -= 1; return .trickle(bytesPerSecond: trickleBytesPerSecond) }
        if roll(trickleRate) { return .trickle(bytesPerSecond: trickleBytesPerSecond) }
        if failNext > 0 { failNext -= 1; return .fail(status: failStatus) }
        if roll(failRate) { return .fail(status: failStatus) }
        return .none
    }
}
