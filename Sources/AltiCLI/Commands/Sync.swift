import AltiCore
import AltiStorage
import ArgumentParser
import Foundation

/// `alti sync PATH... --project PID`: parses and validates, builds the request, runs
/// `SyncService` with the context's server, renders, maps the outcome to an exit code.
struct Sync: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Upload the images under folders that the project does not have yet, and record their server state.",
        usage: """
            alti sync <path> ... --project <pid> [--manifest <file>] [--transfers <n>] [--wait <seconds> | --no-wait]
                      [--dry-run] [--format text|json] [--start-reconstruction | --start-anyway] [<options>]
            """,
        discussion: """
            Scans like `alti scan`, asks the project which checksums it already has (hasImage, 100 per \
            request), uploads only the missing images, waits until the server has verified them, and \
            writes image ids and states into the manifest. Run it again after any interruption: nothing \
            uploaded is sent again. Exit codes: 0 all Ready; 64 bad flags; 65 corrupt manifest or \
            journal, or a journal of another project; 66 a PATH is missing, not a folder, or holds no images; 67 no such project, or the manifest \
            belongs to another; 69 server unreachable or read-only; 73 manifest cannot be written or is in \
            use; 74 I/O error; 75 some Invalid/failed/processing (run again); 76 the server answered \
            something unusable; 77 key or token refused; 78 bad config file; 79 every usable image is \
            Ready but some files are not usable images (named in the summary); 130 interrupted.
            """)

    @Argument(help: ArgumentHelp("Folders to sync.", valueName: "path"))
    var paths: [String] = []

    @Option(name: .long, help: ArgumentHelp("Project id, or a prefix of it.", valueName: "pid"))
    var project: String

    @OptionGroup(title: "Connection") var connection: ConnectionOptions

    @Option(name: .long, help: ArgumentHelp("Storage cloud: s3 or oss (default: the first of the server's clouds that alti supports).", valueName: "cloud"))
    var cloud: String?

    @Option(name: .long, help: ArgumentHelp("Bucket (default: the manifest's, else the server's nearest).", valueName: "name"))
    var bucket: String?

    @OptionGroup(title: "Transfers") var transfers: TransferOptions

    @OptionGroup(title: "OSS") var oss: OSSFlags

    @OptionGroup(title: "Hashing") var hashing: HashingOptions

    @Option(name: .long, help: ArgumentHelp("Wait at most this long for the server to verify the images (default 600).", valueName: "seconds"))
    var wait: Double?

    @Flag(name: .customLong("no-wait"), help: "Do not wait for the server to verify the images.")
    var noWait = false

    @Flag(name: .customLong("dry-run"), help: "Print what would be registered and sent; change nothing on the server.")
    var dryRun = false

    @OptionGroup(title: "Output") var output: OutputOptions

    @Flag(name: .customLong("start-reconstruction"), help: "When every image is Ready, start the reconstruction.")
    var startReconstruction = false

    @Flag(name: .customLong("start-anyway"), help: "Ask the server to start the reconstruction once all images are Ready or Invalid (preStartReconstruction).")
    var startAnyway = false

    @Option(name: .long, help: ArgumentHelp("Manifest file to use instead of PATH/.alti/manifest.json (one PATH only).", valueName: "file"))
    var manifest: String?

    func validate() throws {
        if paths.isEmpty { throw ValidationError("give at least one folder to sync") }
        if project.isEmpty { throw ValidationError("--project must not be empty") }
        if noWait, wait != nil { throw ValidationError("--wait and --no-wait exclude each other") }
        if let wait, wait < 0 { throw ValidationError("--wait must be 0 or more seconds") }
        if startReconstruction, startAnyway { throw ValidationError("--start-reconstruction and --start-anyway exclude each other") }
        if manifest != nil, paths.count > 1 { throw ValidationError("--manifest names one file, so it takes exactly one PATH") }
        if let cloud, !AltizureStorageFactory.clouds.contains(cloud.uppercased()) {
            throw ValidationError("--cloud \(cloud) is not supported; use s3 or oss")
        }
    }

    var request: SyncRequest {
        var options = SyncOptions()
        options.transfers = transfers.resolved
        options.dryRun = dryRun
        options.waitLimit = noWait ? nil : .milliseconds(Int64((wait ?? 600) * 1000))
        var request = SyncRequest(paths: paths, project: project, manifestOverride: manifest, cloud: cloud, bucket: bucket,
                                  options: options)
        request.startReconstruction = startReconstruction
        request.startAnyway = startAnyway
        request.hashJobs = hashing.hashJobs ?? ScanService.defaultJobs
        request.readArchives = !hashing.noArchives
        return request
    }

    func run() async throws {
        let context = CommandContext.current
        let resolved = try connection.resolve(environment: context.environment)
        let format = output.resolved
        if dryRun, resolved.key == nil || resolved.token == nil {
            // A plan needs no credentials: make it from the manifests, as offline.
            let summary = try await SyncService.planOffline(
                request, scanner: context.scanner, endpoint: resolved.endpoint,
                reason: "no \(resolved.key == nil ? "app key" : "user token") is set, so the server was not asked")
            context.standardOutput(format == .json ? try SyncRenderer.json(summary) : SyncRenderer.text(summary))
            return
        }
        let (key, token) = try resolved.requireCredentials()
        let metrics = SyncMetrics()
        let server = try context.connect(ServerConnection(
            endpoint: resolved.endpoint, key: key, token: token, transfers: transfers.resolved, retry: context.retryPolicy,
            uploadLimits: context.uploadLimits, metrics: metrics, oss: oss.options, notice: context.standardError))

        var service = SyncService(catalog: server.catalog, storages: server.storages, endpoint: resolved.endpoint, metrics: metrics)
        service.scanner = context.scanner
        let scanLine = format == .text && context.standardErrorIsTerminal ? ProgressLine(write: context.standardError) : nil
        if let scanLine { service.scanProgress = { scanLine.update($0) } }
        let display = format == .text ? SyncProgressDisplay(isTerminal: context.standardErrorIsTerminal, write: context.standardError) : nil
        if let display { service.onRecorder = { await display.start($0) } }

        let request = self.request
        let work = Task { try await service.run(request) }
        let interruption = Interruption(write: context.standardError) { work.cancel() }
        defer { interruption.remove() }
        let summary: SyncSummary
        do {
            summary = try await work.value
            scanLine?.finish()
            await display?.stop()
        } catch {
            scanLine?.finish()
            await display?.stop()
            if let stopped = error as? ScanInterrupted { throw stopped.asAltiError }
            if interruption.wasInterrupted, error is CancellationError {
                throw AltiError(.interrupted, "interrupted: everything recorded so far (hashes, server answers) is saved; run the same command again to continue")
            }
            throw error
        }
        context.standardOutput(format == .json ? try SyncRenderer.json(summary) : SyncRenderer.text(summary))
        if let code = SyncRenderer.exitCode(summary) { throw ExitCode(code) }
    }
}
