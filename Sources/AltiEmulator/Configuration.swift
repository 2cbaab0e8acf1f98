import Foundation

/// A project the emulator knows from the start (flag `--project ID[=NAME]`).
public struct ProjectSeed: Sendable, Codable, Equatable {
    public var id: String
    public var name: String

    public init(id: String, name: String) {
        self.id = id
        self.name = name
    }

    /// The demo project every emulator has: `5e8f2a6b1c9d4e3f2a1b0c9d`, "Sample survey".
    public static let sample = ProjectSeed(id: "5e8f2a6b1c9d4e3f2a1b0c9d", name: "Sample survey")

    /// Parses `ID` or `ID=NAME`; the id must look like an Altizure id (24 hex characters).
    public init?(argument: String) {
        let parts = argument.split(separator: "=", maxSplits: 1).map(String.init)
        guard let id = parts.first, ProjectSeed.isValidID(id) else { return nil }
        self.id = id.lowercased()
        self.name = parts.count > 1 ? parts[1] : "Project \(id.lowercased().suffix(6))"
    }

    /// Altizure ids look like MongoDB ObjectIDs: 24 hexadecimal characters.
    public static func isValidID(_ id: String) -> Bool {
        id.count == 24 && id.allSatisfy(\.isHexDigit)
    }
}

/// Everything `alti-emulator` can be told on its command line, with working defaults.
///
/// Durations are in seconds (`TimeInterval`) so they read the same in flags, JSON and code.
public struct EmulatorConfiguration: Sendable {
    /// Bind address. The emulator is a local tool: the default is loopback only.
    public var host: String = "127.0.0.1"
    /// TCP port; 0 picks a free one (the real one is in `RunningEmulator.port`).
    public var port: Int = 0
    /// If set, the bound port is written to this file (decimal, one line) once listening.
    public var portFile: String?
    /// The app key every request must carry in the `key` header.
    public var key: String = "alti-demo-key"
    /// The user token project and image operations must carry in the `altitoken` header.
    public var token: String = "alti-demo-token"
    /// Projects that exist from the start (`alti-emulator` always keeps the sample project).
    public var projects: [ProjectSeed] = [.sample]
    /// If set, projects, images and objects persist under this directory (stop and resume).
    public var dataDirectory: String?
    /// Delay between the bytes arriving (S3 PUT / OSS doneImageUpload) and Ready/Invalid.
    public var processingDelay: TimeInterval = 1
    /// Lifetime of a pre-signed S3 PUT URL (Altizure: 3 hours).
    public var urlLifetime: TimeInterval = 3 * 3600
    /// Lifetime of STS credentials (Altizure: 1 hour).
    public var stsLifetime: TimeInterval = 3600
    /// An image left Pending without bytes this long becomes Invalid (Altizure: 65 minutes).
    public var pendingTimeout: TimeInterval = 65 * 60
    /// How long a reconstruction task stays queued (Pending), and then running (Processing),
    /// before it is Done. Follows the emulator clock, so tests step through it without waiting.
    public var reconstructionPhase: TimeInterval = 10
    /// Largest object a PUT may store.
    public var maxObjectSize: Int = 1 << 30
    /// OSS bucket name handed out in STS credentials.
    public var ossBucket: String = "alti-emu-oss"
    /// Faults active from the start (also changeable at run time, see `FaultSettings`).
    public var faults: FaultSettings = .init()
    /// Print one line per request on standard output (no secrets, no query strings).
    public var logRequests: Bool = false
    /// Upper bound on kept request-log entries (oldest are dropped first).
    public var requestLogLimit: Int = 10_000
    /// Seconds a connection may sit idle between requests before the server closes it (nil:
    /// never, the default). Real servers and load balancers do close them (60-120 s); tests set
    /// a short one to check that a client suspended longer re-connects instead of failing.
    public var idleTimeout: TimeInterval?

    public init() {}

    /// The seeds, with the sample project first and duplicates removed.
    var allProjects: [ProjectSeed] {
        var seen = Set<String>()
        var out: [ProjectSeed] = []
        for seed in projects where !seen.contains(seed.id) {
            seen.insert(seed.id)
            out.append(seed)
        }
        return out
    }
}
