import AltiCore
import Foundation

/// Renders scan reports: a human summary, or one JSON object (`{"sources": [...]}`).
enum ScanRenderer {
    /// Problems listed one per line before "... and N more".
    static let problemLines = 20

    static func json(_ reports: [ScanReport]) throws -> String {
        struct Output: Encodable { var sources: [ScanReport] }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(Output(sources: reports)), as: UTF8.self) + "\n"
    }

    static func text(_ reports: [ScanReport]) -> String {
        reports.map(text).joined(separator: "\n")
    }

    static func text(_ r: ScanReport) -> String {
        var lines: [String] = []
        lines.append("Scanned \(r.root)")
        let types = r.imagesByType.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
        lines.append("  images:     \(r.images)\(types.isEmpty ? "" : " (\(types))"), \(bytes(r.totalBytes)), "
            + String(format: "%.3f gigapixels", r.gigapixels))
        lines.append("  unique:     \(r.uniqueImages) (\(r.duplicates) duplicate\(r.duplicates == 1 ? "" : "s") of another file's content)")
        if r.images > 0 {
            var exif = "  exif:       \(r.imagesWithGPS) with GPS, \(r.imagesWithCaptureTime) with capture time"
            if r.exifBackfilled > 0 {
                exif += " (\(r.exifBackfilled) read from the headers of images scanned by an older alti; not hashed again)"
            }
            lines.append(exif)
        }
        if !r.problems.isEmpty {
            let counts = r.problemsByVerdict.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }
                .joined(separator: ", ")
            lines.append("  not usable: \(r.problems.count) (\(counts))")
            for p in r.problems.prefix(problemLines) {
                lines.append("    \(p.path): \(p.verdict.rawValue)\(p.detail.map { ": \($0)" } ?? "")")
            }
            if r.problems.count > problemLines {
                lines.append("    ... and \(r.problems.count - problemLines) more (see --json or the manifest)")
            }
        }
        for p in r.unreadableOtherFiles.prefix(problemLines) { lines.append("    \(p.path): unreadable: \(p.detail)") }
        for p in r.unreadableFolders.prefix(problemLines) { lines.append("    \(p.path)/: folder unreadable: \(p.detail)") }
        var skipped = ["\(r.otherFilesSkipped) other file\(r.otherFilesSkipped == 1 ? "" : "s")",
                       "\(r.hiddenOrJunkSkipped) hidden or junk"]
        if r.symlinksSkipped > 0 { skipped.append("\(r.symlinksSkipped) symlink\(r.symlinksSkipped == 1 ? "" : "s") (not followed)") }
        if r.specialFilesSkipped > 0 { skipped.append("\(r.specialFilesSkipped) special (not regular files, never opened)") }
        lines.append("  skipped:    " + skipped.joined(separator: ", "))
        for path in r.specialFiles.prefix(problemLines) {
            lines.append("    \(path): not a regular file (a FIFO, device or socket); skipped")
        }
        for path in r.changing.prefix(problemLines) { lines.append("  " + changingLine(root: r.root, path)) }
        for path in r.vanished.prefix(problemLines) {
            lines.append("  vanished: \(absolute(root: r.root, path)) was removed during the scan; not recorded")
        }
        if !r.archivesFound.isEmpty {
            let listed = r.archivesFound.prefix(5).joined(separator: ", ") + (r.archivesFound.count > 5 ? ", ..." : "")
            lines.append(r.kind == "archive"
                ? "  archives:   \(r.archivesFound.count) inside this archive (\(listed)): listed, not opened"
                : "  archives:   \(r.archivesFound.count) inside (\(listed)): read in place unless --no-archives")
        }
        lines.append("  hashed:     \(r.filesHashed) file\(r.filesHashed == 1 ? "" : "s") (\(bytes(r.bytesHashed))), reused \(r.filesReused) unchanged")
        if r.missing > 0 { lines.append("  missing:    \(r.missing) file\(r.missing == 1 ? "" : "s") gone since the last scan (kept in the manifest)") }
        if let moved = r.movedAside { lines.append("  moved the unreadable manifest aside to \(moved)") }
        if r.manifestIsFallback {
            lines.append("  manifest:   \(r.manifest) (the folder is not writable)")
        } else {
            lines.append("  manifest:   \(r.manifest)")
        }
        return lines.joined(separator: "\n") + "\n"
    }

    static func bytes(_ n: Int64) -> String { ByteCount.text(n) }

    static func absolute(root: String, _ path: String) -> String { root == "/" ? "/" + path : root + "/" + path }

    /// The line for a file that changed while it was read (the summary's, and the error's).
    static func changingLine(root: String, _ path: String) -> String {
        "changing: \(absolute(root: root, path)) is still being written; run again when the copy has finished"
    }

    /// The error of a run that left files being written unrecorded (exit 75), or nil: the
    /// first such file, and how many more.
    static func changingError(_ reports: [ScanReport]) -> AltiError? {
        let all = reports.flatMap { r in r.changing.map { (r.root, $0) } }
        guard let (root, first) = all.first else { return nil }
        let more = all.count > 1 ? " (and \(all.count - 1) more)" : ""
        return AltiError(.incomplete, changingLine(root: root, first) + more)
    }
}

extension ScanRenderer {
    /// The one line `--quiet` prints: what was recorded, and what was not.
    static func outcome(_ reports: [ScanReport]) -> String {
        let images = reports.reduce(0) { $0 + $1.images }
        let total = reports.reduce(Int64(0)) { $0 + $1.totalBytes }
        let problems = reports.reduce(0) { $0 + $1.problems.count + $1.unreadableOtherFiles.count }
        let changing = reports.reduce(0) { $0 + $1.changing.count }
        var line = "Scanned \(SyncRenderer.count(images, "image")) (\(bytes(total))) in \(SyncRenderer.count(reports.count, "source"))"
        if problems > 0 { line += "; \(SyncRenderer.count(problems, "file")) not usable (run without --quiet to list them)" }
        if changing > 0 { line += "; \(changing) still being written: run again when the copy has finished" }
        return line + "."
    }

    /// One result per file entry of the scanned manifests (present files, duplicates included),
    /// in path order: `recorded` for a usable image, else its verdict and the reason.
    static func imageResults(_ sources: [ScannedSource]) -> [ImageResult] {
        sources.flatMap { source in
            source.manifest.entries.filter { !$0.missing }.map { entry in
                ImageResult(path: absolute(root: source.report.root, entry.path), sha1: entry.sha1, size: entry.size,
                            state: entry.verdict == .ok ? "recorded" : entry.verdict.rawValue,
                            serverID: entry.server.flatMap { $0.imageID.isEmpty ? nil : $0.imageID }, error: entry.detail)
            }
        }
    }
}
