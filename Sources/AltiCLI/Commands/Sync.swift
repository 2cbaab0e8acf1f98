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
            alti sync <path> ... --project <pid> [--manifest <file>] [--transfers auto|<n>] [--wait <seconds> | --no-wait]
                      [--dry-run] [--keep-trying[=<duration>]] [--timeout <duration>] [--resend-invalid] [--format text|json | --events] [--quiet | --verbose] [--start-reconstruction | --start-anyway] [<options>]
            """,
        discussion: """
            Scans like `alti scan`, asks the project which checksums it already has (hasImage, 100 per \
            request), uploads only the missing images, waits until the server has verified them, and \
            writes image ids and states into the manifest. Run it again after any interruption: nothing \
            uploaded is sent again. Exit codes: 0 all Ready; 64 bad flags; 65 corrupt manifest or \
            journal, or a journal of another project; 66 a PATH is missing, not a folder, or holds no images; 67 no such project, or the manifest \
            belongs to another; 69 server unreachable or read-only; 73 manifest cannot be written or is in \
            use; 74 I/O error; 75 some Invalid/failed/processing, or --timeout reached (run again); 76 the server answered \
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

    @OptionGroup(title: "Progress") var reporting: ReportingOptions

    @Flag(name: .customLong("start-reconstruction"), help: "When every image is Ready, start the reconstruction.")
    var startReconstruction = false

    @Flag(name: .customLong("start-anyway"), help: "Ask the server to start the reconstruction once all images are Ready or Invalid (preStartReconstruction).")
    var startAnyway = false

    @Option(name: .long, help: ArgumentHelp("Manifest file to use instead of PATH/.alti/manifest.json (one PATH only).", valueName: "file"))
    var manifest: String?

    /// A bare `--keep-trying` arrives as `--keep-trying=always` (`AltiCommand.normalise`):
    /// ArgumentParser has no option with an optional value.
    @Option(name: .customLong("keep-trying"), help: ArgumentHelp(
        "When the link drops or the server is unreachable, wait and resume (5 s up to 5 min between tries) until every image is Ready, or for at most DURATION (90s, 30m, 2h, 1h30m). Written --keep-trying or --keep-trying=DURATION.",
        valueName: "duration"))
    var keepTrying: String?

    @Option(name: .long, help: ArgumentHelp(
        "Stop the whole run after DURATION (90s, 30m, 2h, 1h30m; scan included): like Ctrl-C, everything recorded is saved and the summary says what is left; exit 75.",
        valueName: "duration"))
    var timeout: String?

    @Flag(name: .customLong("resend-invalid"), help: "Send images the server refused twice with the same bytes once more (by default they are held until the file changes).")
    var resendInvalid = false

    /// `--keep-trying`'s limit: nil for "until done"; throws on a malformed duration.
    static func keepTryingLimit(_ text: String) throws -> Duration? {
        if text == "always" { return nil }
        return try duration(text, flag: "--keep-trying")
    }

    /// A duration as `--keep-trying` and `--timeout` take it: seconds (`90`, `1.5`) or
    /// `h`/`m`/`s` parts (`90s`, `30m`, `1h30m`); throws naming `flag` on anything else.
    static func duration(_ text: String, flag: String) throws -> Duration {
        if let seconds = Double(text), seconds > 0 { return .milliseconds(Int64(seconds * 1000)) }
        var total = 0.0
        var number = ""
        for character in text {
            if character.isNumber || character == "." {
                number.append(character)
                continue
            }
            guard let value = Double(number), let unit = ["h": 3600.0, "m": 60.0, "s": 1.0][String(character)] else {
                throw ValidationError("\(flag)=\(text) is not a duration: write e.g. 90s, 30m, 2h or 1h30m")
            }
            total += value * unit
            number = ""
        }
        guard number.isEmpty, total > 0 else {
            throw ValidationError("\(flag)=\(text) is not a duration: write e.g. 90s, 30m, 2h or 1h30m")
        }
        return .milliseconds(Int64(total * 1000))
    }

    func validate() throws {
        if paths.isEmpty { throw ValidationError("give at least one folder to sync") }
        if project.isEmpty { throw ValidationError("--project must not be empty") }
        if noWait, wait != nil { throw ValidationError("--wait and --no-wait exclude each other") }
        if let wait, wait < 0 { throw ValidationError("--wait must be 0 or more seconds") }
        if startReconstruction, startAnyway { throw ValidationError("--start-reconstruction and --start-anyway exclude each other") }
        if manifest != nil, paths.count > 1 { throw ValidationError("--manifest names one file, so it takes exactly one PATH") }
        if let timeout { _ = try Self.duration(timeout, flag: "--timeout") }
        if let keepTrying {
            _ = try Self.keepTryingLimit(keepTrying)
            if dryRun { throw ValidationError("--keep-trying and --dry-run exclude each other (a plan sends nothing)") }
        }
        try reporting.check(with: output)
        if let cloud, !AltizureStorageFactory.clouds.contains(cloud.uppercased()) {
            throw ValidationError("--cloud \(cloud) is not supported; use s3 or oss")
        }
    }

    var request: SyncRequest {
        var options = SyncOptions()
        options.transfers = transfers.resolved
        options.dryRun = dryRun
        options.resendInvalid = resendInvalid
        options.waitLimit = noWait ? nil : .milliseconds(Int64((wait ?? 600) * 1000))
        var request = SyncRequest(paths: paths, project: project, manifestOverride: manifest, cloud: cloud, bucket: bucket,
                                  options: options)
        request.startReconstruction = startReconstruction
        request.startAnyway = startAnyway
        request.hashJobs = hashing.hashJobs ?? ScanService.defaultJobs
        request.readArchives = !hashing.noArchives
        if let keepTrying { request.keepTrying = KeepTrying(limit: try? Self.keepTryingLimit(keepTrying)) }
        if let ms = CommandContext.current.environment["ALTI_KEEP_TRYING_BASE_MS"].flatMap(Int64.init), ms > 0 {
            // Tests shorten the waits; the shape stays the same.
            request.keepTrying?.firstDelay = .milliseconds(ms)
            request.keepTrying?.maxDelay = .milliseconds(ms * 8)
        }
        return request
    }

    func run() async throws {
        let context = CommandContext.current
        let out = RunOutput(context: context, format: output.resolved, reporting: reporting)
        do {
            try await sync(out)
        } catch {
            await out.failed(error)
            // A script reading --json gets an object whatever happened: the error line and exit
            // code in it (the line also goes to stderr as usual).
            if output.resolved == .json, !(error is ExitCode) {
                let outcome = AltiCommand.outcome(of: error)
                context.standardOutput(try SyncRenderer.errorJSON(
                    message: (error as? AltiError)?.message ?? outcome.message ?? "", exitCode: outcome.code))
            }
            throw error
        }
    }

    func sync(_ out: RunOutput) async throws {
        let context = CommandContext.current
        let resolved = try connection.resolve(environment: context.environment, warn: context.standardError)
        let format = output.resolved
        out.events?.start(command: "sync", paths: paths, project: project)
        func show(_ summary: SyncSummary) throws {
            try out.finish(command: "sync", text: SyncRenderer.text(summary, palette: out.palette), outcome: SyncRenderer.next(summary),
                           json: try SyncRenderer.json(summary), format: format,
                           images: SyncRenderer.imageResults(summary), exitCode: SyncRenderer.exitCode(summary))
        }
        if dryRun, resolved.key == nil || resolved.token == nil {
            // A plan needs no credentials: make it from the manifests, as offline.
            out.events?.phase(SyncPhase.scanning.rawValue)
            let model = out.model
            out.reporter.start()
            let summary = try await SyncService.planOffline(
                request, scanner: context.scanner, endpoint: resolved.endpoint,
                reason: "no \(resolved.key == nil ? "app key" : "user token") is set, so the server was not asked",
                progress: { model.scanned($0) })
            await out.reporter.stop()
            try show(summary)
            return
        }
        let (key, token) = try resolved.requireCredentials()
        let metrics = SyncMetrics()
        let server = try context.connect(ServerConnection(
            endpoint: resolved.endpoint, key: key, token: token, transfers: transfers.resolved.most, retry: context.retryPolicy,
            uploadLimits: context.uploadLimits, metrics: metrics, oss: oss.options, uploadRate: transfers.uploadRate,
            proxies: context.proxies, notice: { out.notice($0) }))

        var service = SyncService(catalog: server.catalog, storages: server.storages, endpoint: resolved.endpoint, metrics: metrics)
        service.scanner = context.scanner
        out.follow(retriesOf: metrics)
        let model = out.model
        service.scanProgress = { model.scanned($0) }
        // The display and the events follow the recorder's stream (phase, plan, each journaled
        // fact); the listener ends when the recorder finishes, before the summary is printed.
        let listener = EventListener()
        let events = out.events
        service.onRecorder = { recorder in
            let stream = await recorder.events()
            listener.set(Task {
                for await event in stream {
                    model.apply(event)
                    if case .phase(let phase) = event { events?.phase(phase.rawValue) }
                }
            })
        }
        service.onWaiting = { out.notice($0 + "\n") }
        out.events?.phase(SyncPhase.scanning.rawValue)
        out.reporter.start()

        let request = self.request
        let work = Task { try await service.run(request) }
        let interruption = Interruption(write: { out.notice($0) }) { work.cancel() }
        defer { interruption.remove() }
        // --timeout stops the run the way Ctrl-C does (the same cancellation, so the journal is
        // folded and saved), then reports it as incomplete (75), not as interrupted (130).
        let expiry = RunTimeout()
        let timer = try timeout.map { text in
            let limit = try Self.duration(text, flag: "--timeout")
            return Task {
                guard (try? await Task.sleep(for: limit)) != nil else { return }
                expiry.expire()
                work.cancel()
            }
        }
        defer { timer?.cancel() }
        var summary: SyncSummary
        do {
            summary = try await work.value
            await out.reporter.stop()
            await listener.finished()
        } catch {
            await out.reporter.stop()
            await listener.stop()
            if expiry.expired, !interruption.wasInterrupted, error is CancellationError || error is ScanInterrupted {
                let saved = error is ScanInterrupted ? " during the scan: what was hashed is saved" : ": everything recorded is saved"
                throw AltiError(.incomplete, "timed out after \(timeout ?? "") (--timeout)\(saved); run the same command again to continue")
            }
            if let stopped = error as? ScanInterrupted { throw stopped.asAltiError }
            if interruption.wasInterrupted, error is CancellationError {
                throw AltiError(.interrupted, "interrupted: everything recorded so far (hashes, server answers) is saved; run the same command again to continue")
            }
            throw error
        }
        if expiry.expired, !interruption.wasInterrupted, summary.report.phase == .interrupted {
            summary.report.phase = .timedOut
            summary.timeLimit = timeout
        }
        try show(summary)
        if let code = SyncRenderer.exitCode(summary) { throw ExitCode(code) }
    }
}

/// The task that follows the recorder's events, set once the recorder exists (it may never).
final class EventListener: @unchecked Sendable {
    private let lock = NSLock()
    private var task: Task<Void, Never>?

    func set(_ task: Task<Void, Never>) { lock.withLock { self.task = task } }

    /// Waits until the recorder's stream has ended and every event was applied.
    func finished() async {
        let task = lock.withLock { self.task }
        await task?.value
    }

    /// Stops following (the run failed: its stream may not have ended yet).
    func stop() async {
        let task = lock.withLock { self.task }
        task?.cancel()
        await task?.value
    }
}

/// Whether `--timeout` has fired (set by its timer, read when the run has stopped).
final class RunTimeout: @unchecked Sendable {
    private let lock = NSLock()
    private var fired = false
    func expire() { lock.withLock { fired = true } }
    var expired: Bool { lock.withLock { fired } }
}
