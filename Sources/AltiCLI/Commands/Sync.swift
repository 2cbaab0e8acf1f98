import AltiAPI
import AltiCore
import AltiNet
import AltiStorage
import ArgumentParser
import Foundation

/// `alti sync PATH... --project PID`: parses and validates, wires the real context (libcurl
/// transport, GraphQL client, S3 uploader), calls `SyncService`, renders, maps to an exit code.
struct Sync: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Upload the images under folders that the project does not have yet, and record their server state.",
        discussion: """
            Scans like `alti scan`, asks the project which checksums it already has (hasImage, 100 per \
            request), uploads only the missing images, waits until the server has verified them, and \
            writes image ids and states into the manifest. Run it again after any interruption: nothing \
            uploaded is sent again. Exit codes: 0 all Ready, 75 some Invalid/failed/processing (run again), \
            77 key or token refused, 69 server unreachable, 67 no such project, 130 interrupted; and the \
            scan's codes (64, 65, 66, 73, 74).
            """)

    @Argument(help: ArgumentHelp("Folders to sync.", valueName: "path"))
    var paths: [String] = []

    @Option(name: .long, help: ArgumentHelp("Project id, or a prefix of it.", valueName: "pid"))
    var project: String

    @OptionGroup(title: "Connection") var connection: ConnectionOptions

    @Option(name: .long, help: ArgumentHelp("Storage cloud: s3 (default: the server's first supported one).", valueName: "cloud"))
    var cloud: String?

    @Option(name: .long, help: ArgumentHelp("Bucket (default: the manifest's, else the server's nearest).", valueName: "name"))
    var bucket: String?

    @Option(name: .long, help: ArgumentHelp("Parallel uploads (default 4: one uplink gains nothing from more streams).", valueName: "n"))
    var jobs: Int = 4

    @Option(name: .long, help: ArgumentHelp("Wait at most this long for the server to verify the images (default 600).", valueName: "seconds"))
    var wait: Double?

    @Flag(name: .customLong("no-wait"), help: "Do not wait for the server to verify the images.")
    var noWait = false

    @Flag(name: .customLong("dry-run"), help: "Print what would be registered and sent; change nothing on the server.")
    var dryRun = false

    @Flag(name: .long, help: "Print one JSON report at the end instead of the text summary.")
    var json = false

    @Flag(name: .customLong("start-reconstruction"), help: "When every image is Ready, start the reconstruction.")
    var startReconstruction = false

    @Flag(name: .customLong("start-anyway"), help: "Ask the server to start the reconstruction once all images are Ready or Invalid (preStartReconstruction).")
    var startAnyway = false

    @Option(name: .long, help: ArgumentHelp("Manifest file to use instead of PATH/.alti/manifest.json (one PATH only).", valueName: "file"))
    var manifest: String?

    func validate() throws {
        if paths.isEmpty { throw ValidationError("give at least one folder to sync") }
        if project.isEmpty { throw ValidationError("--project must not be empty") }
        if jobs < 1 || jobs > 64 { throw ValidationError("--jobs must be between 1 and 64") }
        if noWait, wait != nil { throw ValidationError("--wait and --no-wait exclude each other") }
        if let wait, wait < 0 { throw ValidationError("--wait must be 0 or more seconds") }
        if startReconstruction, startAnyway { throw ValidationError("--start-reconstruction and --start-anyway exclude each other") }
        if manifest != nil, paths.count > 1 { throw ValidationError("--manifest names one file, so it takes exactly one PATH") }
        if let cloud, cloud.uppercased() != "S3" { throw ValidationError("--cloud \(cloud) is not supported yet; use s3") }
    }

    func run() async throws {
        let resolved = try connection.resolve()
        let (key, token) = try resolved.requireCredentials()
        let environment = ProcessInfo.processInfo.environment
        let transport = CurlTransport(maxConcurrentTransfers: jobs + 4)
        let retry = RetryPolicy.fromEnvironment(environment)
        let counter = RequestCounter()
        let client = GraphQLClient(
            credentials: APICredentials(origin: resolved.endpoint, key: key, token: token), retry: retry, counter: counter,
            post: GraphQLOverHTTP.post(using: transport))
        let retries = ByteCounter()
        let uploader = S3PresignedUploader(
            transport: transport, retry: retry, limits: Self.uploadLimits(environment), onRetry: { retries.add(1) })

        var options = SyncOptions()
        options.jobs = jobs
        options.dryRun = dryRun
        options.waitLimit = noWait ? nil : .milliseconds(Int64((wait ?? 600) * 1000))
        let request = SyncRequest(
            paths: paths, manifestOverride: manifest, project: project, cloud: cloud, bucket: bucket, options: options,
            startReconstruction: startReconstruction, startAnyway: startAnyway)

        let display = SyncProgressDisplay.forStandardError(json: json)
        var service = SyncService(
            catalog: AltizureCatalog(client: client), uploader: uploader, endpoint: resolved.endpoint, requestCounter: counter)
        let scanLine = json ? nil : ProgressLine.forStandardError()
        if let scanLine { service.scanProgress = { scanLine.update($0) } }
        if let display { service.onRecorder = { display.start($0, putRetries: retries, requests: counter) } }

        let work = Task { try await service.run(request) }
        let interruption = Interruption { work.cancel() }
        defer { interruption.remove() }
        let summary: SyncSummary
        do {
            summary = try await work.value
            scanLine?.finish()
            await display?.stop()
        } catch {
            scanLine?.finish()
            await display?.stop()
            if interruption.wasInterrupted, error is CancellationError {
                throw AltiError(.interrupted, "interrupted: everything recorded so far (hashes, server answers) is saved; run the same command again to continue")
            }
            throw error
        }
        let output = json ? try SyncRenderer.json(summary) : SyncRenderer.text(summary)
        FileHandle.standardOutput.write(Data(output.utf8))
        if let code = SyncRenderer.exitCode(summary) { throw ExitCode(code) }
    }

    /// Low-speed abort defaults to below 1 KiB/s for 30 s; `ALTI_LOW_SPEED_TIME` (seconds) and
    /// `ALTI_LOW_SPEED_LIMIT` (bytes/s) tune it for links that are slower still (and for tests).
    static func uploadLimits(_ env: [String: String]) -> HTTPLimits {
        var limits = HTTPLimits()
        if let t = env["ALTI_LOW_SPEED_TIME"].flatMap(Double.init), t > 0 { limits.lowSpeedTime = t }
        if let l = env["ALTI_LOW_SPEED_LIMIT"].flatMap(Int.init), l > 0 { limits.lowSpeedLimit = l }
        return limits
    }
}
