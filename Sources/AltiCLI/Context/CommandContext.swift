import AltiAPI
import AltiCore
import AltiNet
import AltiStorage
import Foundation

/// What a command needs from the world, in one value: the environment, where its output goes, and
/// how it reaches the server. Commands read `CommandContext.current`; the binary runs with
/// `.live`, tests run commands in-process with a context of their own (`$current.withValue`),
/// as swiftly's commands take a `SwiftlyCoreContext`.
struct CommandContext: Sendable {
    /// The process environment (`ALTI_*`, `XDG_*`, `HOME`): read here and nowhere else.
    var environment: [String: String]
    var standardOutput: @Sendable (String) -> Void
    var standardError: @Sendable (String) -> Void
    /// Whether stderr is a terminal (live progress lines) or a log (plain periodic lines).
    var standardErrorIsTerminal: Bool
    /// Whether stdout is a terminal (colour in the summary).
    var standardOutputIsTerminal = false
    /// Makes the network side for a resolved connection.
    var connect: @Sendable (_ connection: ServerConnection) throws -> RemoteServices
    /// All of standard input (`alti config set --token-stdin`: a secret kept out of `ps`).
    var readStandardInput: @Sendable () -> Data = { FileHandle.standardInput.readDataToEndOfFile() }

    @TaskLocal static var current = CommandContext.live

    static var live: CommandContext {
        CommandContext(
            environment: ProcessInfo.processInfo.environment,
            standardOutput: { FileHandle.standardOutput.write(Data($0.utf8)) },
            standardError: { FileHandle.standardError.write(Data($0.utf8)) },
            standardErrorIsTerminal: isatty(STDERR_FILENO) == 1,
            standardOutputIsTerminal: isatty(STDOUT_FILENO) == 1,
            connect: RemoteServices.live)
    }

    /// The scanner, with manifests located through this context's environment (`XDG_STATE_HOME`,
    /// `HOME`) and its checkpoint interval.
    var scanner: ScanService {
        var scanner = ScanService(store: ManifestStore(environment: environment))
        if let interval = scanCheckpointInterval { scanner.checkpointInterval = interval }
        return scanner
    }

    /// The retry policy, tunable from the environment (tests use short backoffs).
    var retryPolicy: RetryPolicy { RetryPolicy.fromEnvironment(environment) }

    /// Low-speed abort defaults to below 1 KiB/s for 30 s; `ALTI_LOW_SPEED_TIME` (seconds) and
    /// `ALTI_LOW_SPEED_LIMIT` (bytes/s) tune it for links that are slower still (and for tests).
    var uploadLimits: HTTPLimits {
        var limits = HTTPLimits()
        if let t = environment["ALTI_LOW_SPEED_TIME"].flatMap(Double.init), t > 0 { limits.lowSpeedTime = t }
        if let l = environment["ALTI_LOW_SPEED_LIMIT"].flatMap(Int.init), l > 0 { limits.lowSpeedLimit = l }
        return limits
    }

    /// The proxies this command's requests go through (`HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY`,
    /// `NO_PROXY`), for the API and both storages alike.
    var proxies: ProxySettings { ProxySettings(environment: environment) }

    /// `ALTI_SCAN_CHECKPOINT_MS`: how often a long scan saves what it has hashed (default 15 s).
    var scanCheckpointInterval: Duration? {
        guard let ms = environment["ALTI_SCAN_CHECKPOINT_MS"].flatMap(Int.init), ms >= 0 else { return nil }
        return .milliseconds(ms)
    }
}

/// Everything needed to talk to one server: where, as whom, how hard.
struct ServerConnection: Sendable {
    var endpoint: String
    var key: String
    var token: String
    /// The most uploads in flight at once (a fixed `--transfers`, or auto's ceiling).
    var transfers: Int
    var retry: RetryPolicy
    var uploadLimits: HTTPLimits
    var metrics: SyncMetrics
    var oss = OSSOptions()
    /// `--bwlimit`: bytes per second for all upload bodies together (nil: no cap).
    var uploadRate: Int64?
    /// `HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY`, `NO_PROXY` of the command's environment.
    var proxies: ProxySettings = .none
    /// Where one-line notices go (stderr).
    var notice: @Sendable (String) -> Void = { _ in }
}

/// The server as the sync service sees it: the catalog (GraphQL) and the storages of the clouds.
struct RemoteServices: Sendable {
    var catalog: any RemoteCatalog
    var storages: any StorageFactory

    /// libcurl transport, GraphQL client, Altizure catalog, S3 storage: the binary's real wiring.
    @Sendable static func live(_ c: ServerConnection) throws -> RemoteServices {
        // One limiter for every body of the run (S3 PUTs and OSS parts alike): the cap is on the
        // link, not per connection. GraphQL requests are not drawn from it (they are small, and
        // a registration waiting behind image bytes would stall the uploads it feeds).
        let transport = CurlTransport(maxConcurrentTransfers: c.transfers + 4,
                                      uploadLimiter: c.uploadRate.map { BandwidthLimiter(bytesPerSecond: $0) },
                                      proxies: c.proxies)
        let client = GraphQLClient(
            credentials: APICredentials(origin: c.endpoint, key: c.key, token: c.token), retry: c.retry,
            metrics: c.metrics, post: GraphQLOverHTTP.post(using: transport))
        let catalog = AltizureCatalog(client: client)
        return RemoteServices(
            catalog: catalog,
            storages: AltizureStorageFactory(catalog: catalog, transport: transport, retry: c.retry, limits: c.uploadLimits,
                                             metrics: c.metrics, oss: c.oss, notice: c.notice))
    }
}
