import AltiCore
import ArgumentParser
import Foundation

/// `alti scan PATH... [--manifest FILE] [--json] [--rebuild] [--jobs N]`: parses, calls
/// `ScanService`, renders. Works offline.
struct Scan: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Find the images under folders and record them (size, SHA-1, type, pixels) in the manifest.",
        discussion: """
            Hidden files and OS junk are skipped, symlinks are never followed, images are recognised \
            by content (JPEG, PNG, TIFF). The manifest is PATH/.alti/manifest.json, or, when PATH is \
            not writable, a file under $XDG_STATE_HOME/alti/. A re-scan hashes only files whose size, \
            mtime or inode changed. Exit codes: 0 ok, 64 usage, 65 corrupt or newer manifest, \
            66 PATH missing, 73 manifest cannot be written or is in use, 74 nothing could be read.
            """)

    @Argument(help: ArgumentHelp("Folders to scan.", valueName: "path"))
    var paths: [String] = []

    @Option(name: .long, help: ArgumentHelp("Manifest file to use instead of PATH/.alti/manifest.json (one PATH only).", valueName: "file"))
    var manifest: String?

    @Flag(name: .long, help: "Print the summary as one JSON object.")
    var json = false

    @Flag(name: .long, help: "Move an unreadable manifest aside (manifest.json.corrupt-<time>) and start over; with a valid one, hash every file again (server facts are kept).")
    var rebuild = false

    @Option(name: .long, help: ArgumentHelp("Files hashed in parallel (default: 2 per core).", valueName: "n"))
    var jobs: Int?

    func validate() throws {
        if paths.isEmpty { throw ValidationError("give at least one folder to scan") }
        if manifest != nil, paths.count > 1 {
            throw ValidationError("--manifest names one file, so it takes exactly one PATH (got \(paths.count))")
        }
        if let jobs, jobs < 1 { throw ValidationError("--jobs must be at least 1") }
    }

    func run() async throws {
        let progress = ProgressLine.forStandardError()
        var sink: (@Sendable (ScanProgress) -> Void)?
        if let progress { sink = { progress.update($0) } }
        let sources: [ScannedSource]
        do {
            sources = try await ScanService().scan(
                paths: paths, manifestOverride: manifest, rebuild: rebuild,
                jobs: jobs ?? ScanService.defaultJobs, progress: sink)
            progress?.finish()
        } catch {
            progress?.finish()
            throw error
        }
        let reports = sources.map(\.report)
        let output = json ? try ScanRenderer.json(reports) : ScanRenderer.text(reports)
        FileHandle.standardOutput.write(Data(output.utf8))
        if let dead = reports.first(where: \.nothingReadable) {
            let first = dead.problems.first { $0.verdict == .unreadable }.map { "\($0.path): \($0.detail ?? "")" }
                ?? dead.unreadableOtherFiles.first.map { "\($0.path): \($0.detail)" } ?? ""
            throw AltiError(.ioError, "no file under \(dead.root) could be read (\(first))")
        }
    }
}
