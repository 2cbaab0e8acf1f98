import AltiCore
import ArgumentParser
import Foundation

/// `alti status [PATH...] [--refresh] [--manifest FILE] [--format text|json]`: reads the
/// manifests through `StatusService` (no network), or with `--refresh` asks the server first;
/// renders, maps the view to an exit code.
struct Status: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show what the manifests record: images by server state, what is left to send, when they were last synced.",
        usage: """
            alti status [<path> ...] [--refresh] [--manifest <file>] [--format text|json | --events] [--quiet | --verbose] [<options>]
            """,
        discussion: """
            Reads the manifests only: no scan, no network, no lock, so it also shows the progress of a \
            sync that is running or was killed (its journal is counted, not written). A PATH is a folder \
            or an archive, as for scan and sync (default: the current folder); the archives a sync read \
            inside a folder are included. Files added or changed since the last scan are not counted. \
            --refresh asks the project about every image (hasImage, 100 per request) and records the \
            answers in the manifests, as sync does; it needs the key and token. Exit codes: 0 every \
            usable image Ready; 64 bad flags; 65 corrupt manifest or journal; 66 a PATH is missing or has \
            no manifest, or no images are recorded; 67 (--refresh) no such project, or the manifest \
            belongs to another endpoint; 69 (--refresh) server unreachable (the view from the manifests \
            is printed first); 73 (--refresh) another alti is working on the manifest; 75 images left to \
            send, failed, Invalid or still processing; 77 key or token refused; 79 every usable image \
            Ready but some files are not usable images.
            """)

    @Argument(help: ArgumentHelp("Folders or archives (default: the current folder).", valueName: "path"))
    var paths: [String] = []

    @Option(name: .long, help: ArgumentHelp("Manifest file to read instead of PATH/.alti/manifest.json (one PATH only).", valueName: "file"))
    var manifest: String?

    @Flag(name: .long, help: "Ask the server for the current state of every image (hasImage, batched) and record it in the manifests.")
    var refresh = false

    @OptionGroup(title: "Connection (--refresh)") var connection: ConnectionOptions

    @OptionGroup(title: "Output") var output: OutputOptions

    @OptionGroup(title: "Progress") var reporting: ReportingOptions

    func validate() throws {
        if manifest != nil, paths.count > 1 {
            throw ValidationError("--manifest names one file, so it takes exactly one PATH (got \(paths.count))")
        }
        try reporting.check(with: output)
    }

    func run() async throws {
        let out = RunOutput(context: CommandContext.current, format: output.resolved, reporting: reporting)
        do {
            try await status(out)
        } catch {
            await out.failed(error)
            throw error
        }
    }

    func status(_ out: RunOutput) async throws {
        let context = CommandContext.current
        let format = output.resolved
        let service = StatusService(store: ManifestStore(environment: context.environment))
        let (paths, manifest) = (self.paths.isEmpty ? ["."] : self.paths, self.manifest)
        // Always first, without the network: a missing or corrupt manifest fails here (66, 65)
        // before any connection, and this is the view printed if the refresh fails.
        out.events?.start(command: "status", paths: paths, project: nil)
        out.events?.phase("reading")
        let recorded = try service.read(paths: paths, manifestOverride: manifest)
        func show(_ summary: StatusSummary, failure: (code: Int32, message: String?)? = nil) throws {
            let text = StatusRenderer.text(summary, palette: out.palette)
            try out.finish(command: "status", text: text,
                           outcome: text.split(separator: "\n").last.map(String.init) ?? "",
                           json: try StatusRenderer.json(summary, failure: failure), format: format,
                           images: StatusRenderer.imageResults(summary),
                           exitCode: failure?.code ?? StatusRenderer.exitCode(summary))
        }
        guard refresh, recorded.sources.contains(where: \.isBound) else {
            // Nothing was ever synced: there is no project to ask, and the view says so.
            if refresh { out.notice("alti: nothing to refresh: no PATH has been synced to a project yet\n") }
            try show(recorded)
            if let code = StatusRenderer.exitCode(recorded) { throw ExitCode(code) }
            return
        }
        let resolved = try connection.resolve(environment: context.environment, warn: context.standardError)
        let (key, token) = try resolved.requireCredentials()
        let metrics = SyncMetrics()
        // No uploads: the transport's slots (transfers + 4) cover the lookups in flight.
        let server = try context.connect(ServerConnection(
            endpoint: resolved.endpoint, key: key, token: token, transfers: 1, retry: context.retryPolicy,
            uploadLimits: context.uploadLimits, metrics: metrics, proxies: context.proxies,
            notice: { out.notice($0) }))
        out.follow(retriesOf: metrics)
        out.events?.phase("refreshing")
        let work = Task {
            try await service.refresh(paths: paths, manifestOverride: manifest, catalog: server.catalog,
                                      endpoint: resolved.endpoint, metrics: metrics)
        }
        let interruption = Interruption(write: { out.notice($0) }) { work.cancel() }
        defer { interruption.remove() }
        let refreshed: StatusSummary
        do {
            refreshed = try await work.value
        } catch {
            var failure = error
            if interruption.wasInterrupted, error is CancellationError {
                failure = AltiError(.interrupted, "interrupted: the answers received so far are saved in the manifests; run the same command again to ask the rest")
            }
            // The view from the manifests as they stand now (what the refresh learnt before it
            // stopped is in them: nothing is lost), then the one error line.
            let view = (try? service.read(paths: paths, manifestOverride: manifest)) ?? recorded
            try show(view, failure: AltiCommand.outcome(of: failure))
            throw failure
        }
        try show(refreshed)
        if let code = StatusRenderer.exitCode(refreshed) { throw ExitCode(code) }
    }
}
