import AltiCore
import ArgumentParser
import Foundation

/// `alti scan PATH... [--manifest FILE] [--format json] [--rebuild] [--hash-jobs N]`: parses,
/// calls `ScanService`, renders. Works offline.
struct Scan: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Find the images under folders and record them (size, SHA-1, type, pixels) in the manifest.",
        discussion: """
            Hidden files and OS junk are skipped, symlinks are never followed, images are recognised \
            by content (JPEG, PNG, TIFF). The manifest is PATH/.alti/manifest.json, or, when PATH is \
            not writable, a file under $XDG_STATE_HOME/alti/. A re-scan hashes only files whose size, \
            mtime or inode changed. A long scan saves what it has hashed every 15 s, and Ctrl-C \
            saves it before stopping, so a re-run continues instead of starting over. Exit codes: \
            0 ok, 64 usage, 65 corrupt or newer manifest, or a sync journal of another project beside \
            it, 66 PATH missing, 73 manifest cannot be written or is in use, 74 nothing could be read, \
            130 interrupted (progress saved).
            """)

    @Argument(help: ArgumentHelp("Folders to scan.", valueName: "path"))
    var paths: [String] = []

    @Option(name: .long, help: ArgumentHelp("Manifest file to use instead of PATH/.alti/manifest.json (one PATH only).", valueName: "file"))
    var manifest: String?

    @OptionGroup(title: "Output") var output: OutputOptions

    @OptionGroup(title: "Progress") var reporting: ReportingOptions

    @Flag(name: .long, help: "Move an unreadable manifest aside (manifest.json.corrupt-<time>) and start over; with a valid one, hash every file again (server facts are kept).")
    var rebuild = false

    @OptionGroup(title: "Hashing") var hashing: HashingOptions

    /// The first name of --hash-jobs, kept so existing scripts keep working.
    @Option(name: .customLong("jobs"), help: .hidden)
    var jobs: Int?

    func validate() throws {
        if paths.isEmpty { throw ValidationError("give at least one folder to scan") }
        if manifest != nil, paths.count > 1 {
            throw ValidationError("--manifest names one file, so it takes exactly one PATH (got \(paths.count))")
        }
        if let jobs, jobs < 1 { throw ValidationError("--jobs must be at least 1") }
        try reporting.check(with: output)
    }

    func run() async throws {
        let out = RunOutput(context: CommandContext.current, format: output.resolved, reporting: reporting)
        do {
            try await scan(out)
        } catch {
            await out.failed(error)
            throw error
        }
    }

    func scan(_ out: RunOutput) async throws {
        let context = CommandContext.current
        let model = out.model
        let sink: @Sendable (ScanProgress) -> Void = { model.scanned($0) }
        let service = context.scanner
        out.events?.start(command: "scan", paths: paths, project: nil)
        out.events?.phase("scanning")
        // Ctrl-C/SIGTERM: the first cancels the scan, which saves what it hashed and ends with
        // ScanInterrupted (exit 130); a second one exits at once. The handler is installed before
        // the scan starts, so no signal can kill it without a save.
        let holder = CancellableTask()
        let interruption = Interruption(write: { out.notice($0) }) { holder.cancel() }
        defer { interruption.remove() }
        let (paths, manifest, rebuild) = (self.paths, self.manifest, self.rebuild)
        let jobs = hashing.hashJobs ?? self.jobs ?? ScanService.defaultJobs
        let readArchives = !hashing.noArchives
        out.reporter.start()
        let work = Task {
            try await service.scan(paths: paths, manifestOverride: manifest, rebuild: rebuild, jobs: jobs,
                                   readArchives: readArchives, progress: sink)
        }
        holder.set(work)
        let sources: [ScannedSource]
        do {
            sources = try await work.value
            await out.reporter.stop()
        } catch let stopped as ScanInterrupted {
            throw stopped.asAltiError
        }
        out.events?.phase("done")
        let reports = sources.map(\.report)
        var failure: (any Error)?
        if let dead = reports.first(where: \.nothingReadable) {
            let first = dead.problems.first { $0.verdict == .unreadable }.map { "\($0.path): \($0.detail ?? "")" }
                ?? dead.unreadableOtherFiles.first.map { "\($0.path): \($0.detail)" } ?? ""
            failure = AltiError(.ioError, "no file under \(dead.root) could be read (\(first))")
        } else if let changing = ScanRenderer.changingError(reports) {
            // Before 79: a file still being copied is not unusable, it is not finished; a re-run once
            // the copy is done records it.
            failure = changing
        } else if reports.contains(where: { !$0.problems.isEmpty || !$0.unreadableOtherFiles.isEmpty }) {
            // As sync does: a script can tell "every file is a usable image" from "the usable ones are
            // recorded, some are not" (damaged, encrypted or refused members, unreadable files), which
            // the summary names.
            failure = ExitCode(AltiError(.unusableFiles, "").exitCode)
        }
        let code = failure.map { AltiCommand.outcome(of: $0).code }
        try out.finish(command: "scan", text: ScanRenderer.text(reports), outcome: ScanRenderer.outcome(reports),
                       json: try ScanRenderer.json(reports), format: output.resolved,
                       images: ScanRenderer.imageResults(sources), exitCode: code)
        if let failure { throw failure }
    }
}

extension ScanInterrupted {
    /// The one line both `scan` and `sync` print when Ctrl-C stopped the hashing.
    var asAltiError: AltiError {
        let hashed = filesHashed == 1 ? "1 file" : "\(filesHashed) files"
        return AltiError(.interrupted, filesHashed == 0
            ? "interrupted before any file of \(root) was hashed; run the same command again to scan it"
            : "interrupted: \(hashed) of \(root) hashed and saved in \(manifest); run the same command again to continue (they are not hashed again)")
    }
}

/// A task to cancel from a signal handler that may fire before the task exists.
final class CancellableTask: @unchecked Sendable {
    private let lock = NSLock()
    private var task: Task<[ScannedSource], any Error>?
    private var cancelled = false

    func set(_ task: Task<[ScannedSource], any Error>) {
        let cancelNow = lock.withLock { () -> Bool in
            self.task = task
            return cancelled
        }
        if cancelNow { task.cancel() }
    }

    func cancel() {
        let task = lock.withLock { () -> Task<[ScannedSource], any Error>? in
            cancelled = true
            return self.task
        }
        task?.cancel()
    }
}
