import AltiCore
import Foundation

/// Renders `alti status`: a compact summary per source and a total (text), or one JSON object,
/// and decides the exit code. The summary holds no key, token or URL, so none can be printed.
enum StatusRenderer {
    /// The exit code, or nil for 0, in `SyncRenderer.exitCode`'s order: what a sync still has to
    /// do (75: images to send, failed, Invalid, or still processing), then files that are not
    /// usable images (79), then sources that recorded no images at all (66).
    static func exitCode(_ s: StatusSummary) -> Int32? {
        let total = s.total
        if total.toSend.images > 0 || total[.processing].images > 0 { return AltiError(.incomplete, "").exitCode }
        if s.notUsable > 0 { return AltiError(.unusableFiles, "").exitCode }
        if total.all.images == 0 { return AltiError(.noInput, "").exitCode }
        return nil
    }

    /// How the text names each category, in the order it lists them.
    static let labels: [(ImageCategory, String)] = [
        (.ready, "Ready"), (.processing, "processing"), (.pending, "Pending"), (.invalid, "Invalid"),
        (.failed, "failed"), (.absent, "not on the server"), (.notSent, "not sent yet"),
    ]

    static func count(_ n: Int, _ noun: String) -> String { SyncRenderer.count(n, noun) }
    static func bytes(_ n: Int64) -> String { ScanRenderer.bytes(n) }

    // MARK: Text

    static func text(_ s: StatusSummary, palette: Palette = .plain) -> String {
        var lines: [String] = []
        lines.append(s.refreshed
            ? "alti status --refresh: states as the server answered now (\(count(s.requests, "API request")))"
            : "alti status: from the manifests (no network); --refresh asks the server")
        for source in s.sources { lines += text(source, palette: palette) }
        let total = s.total
        lines.append("Total: \(count(s.sources.count, "source")), \(count(total.all.images, "image")) (\(bytes(total.all.bytes))): "
            + states(total, palette: palette) + " · to send \(total.toSend.images) (\(bytes(total.toSend.bytes)))"
            + (s.notUsable > 0 ? " · not usable \(s.notUsable)" : ""))
        lines.append(next(s))
        return lines.joined(separator: "\n") + "\n"
    }

    static func text(_ source: SourceStatus, palette: Palette = .plain) -> [String] {
        var lines: [String] = []
        let remote = source.remote
        var binding = "not synced to a project yet"
        if source.isBound {
            binding = "project \(remote.projectID) at \(remote.endpoint)"
            if !remote.bucket.isEmpty { binding += " (\(remote.cloud), bucket \(remote.bucket))" }
        }
        lines.append("\(source.root) (\(source.kind)) · \(binding)")
        let tally = source.tally
        var imagesLine = "  \(count(tally.all.images, "image")), \(bytes(tally.all.bytes)): \(states(tally, withBytes: true, palette: palette))"
        if source.duplicates > 0 { imagesLine += " · \(count(source.duplicates, "duplicate file"))" }
        if source.missing > 0 { imagesLine += " · \(count(source.missing, "file")) gone since the scan" }
        lines.append(imagesLine)
        let troubled = source.images.filter { $0.category == .invalid || $0.category == .failed }
        for image in troubled.prefix(SyncRenderer.listedLines) {
            let reason = image.errors.isEmpty ? "no reason given" : image.errors.joined(separator: "; ")
            lines.append("    \(palette.paint(image.category == .invalid ? "Invalid" : "failed", .bad)): \(image.path): \(reason)")
        }
        if troubled.count > SyncRenderer.listedLines {
            lines.append("    ... and \(troubled.count - SyncRenderer.listedLines) more (see --json)")
        }
        if !source.notUsable.isEmpty {
            let verdicts = Dictionary(grouping: source.notUsable, by: \.verdict.rawValue).mapValues(\.count)
                .sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
            lines.append("  not usable: \(count(source.notUsable.count, "file")) (\(verdicts))")
            for file in source.notUsable.prefix(SyncRenderer.listedLines) {
                lines.append("    \(file.path): \(file.verdict.rawValue)\(file.detail.map { ": \($0)" } ?? "")")
            }
            if source.notUsable.count > SyncRenderer.listedLines {
                lines.append("    ... and \(source.notUsable.count - SyncRenderer.listedLines) more (see --json)")
            }
        }
        lines.append("  to send: \(count(tally.toSend.images, "image")), \(bytes(tally.toSend.bytes))")
        var when = "  scanned \(source.writtenAt); "
        when += source.lastCheckedAt.map { "server last asked \($0)" } ?? "server never asked"
        if source.journalEvents > 0 {
            when += "; includes \(count(source.journalEvents, "journal event")) of a sync that is running or was stopped"
        }
        lines.append(when)
        lines.append("  manifest: \(source.manifest)\(source.manifestIsFallback ? " (the source is not writable)" : "")")
        return lines
    }

    /// "Ready 3 (7.4 MB) · Invalid 1 (2.1 MB)": Ready always, the other categories when not empty.
    static func states(_ tally: StatusTally, withBytes: Bool = false, palette: Palette = .plain) -> String {
        labels.compactMap { category, label -> String? in
            let c = tally[category]
            guard category == .ready || c.images > 0 else { return nil }
            let word = c.images > 0 ? palette.paint(label, style(of: category)) : label
            return withBytes ? "\(word) \(c.images) (\(bytes(c.bytes)))" : "\(word) \(c.images)"
        }.joined(separator: " · ")
    }

    static func style(of category: ImageCategory) -> Palette.Style {
        switch category {
        case .ready: .good
        case .invalid, .failed: .bad
        default: .waiting
        }
    }

    /// One result per image (per checksum, as `images` counts them), in path order: its
    /// category as the JSON spells it, the server's id and the server's reasons.
    static func imageResults(_ s: StatusSummary) -> [ImageResult] {
        s.images.map { image in
            ImageResult(path: image.path, sha1: image.sha1, size: image.size, state: image.category.rawValue,
                        serverID: image.imageID, error: image.errors.isEmpty ? nil : image.errors.joined(separator: "; "))
        }.sorted { $0.path < $1.path }
    }

    /// The closing line: where things stand, and what to do next.
    static func next(_ s: StatusSummary) -> String {
        let total = s.total
        let bad = s.notUsable
        let processing = total[.processing].images
        if total.all.images == 0 {
            return bad == 0 ? "No images recorded: nothing to send."
                            : "None of the \(count(bad, "file")) listed is a usable image: nothing to send."
        }
        if total.toSend.images > 0 {
            let projects = Set(s.sources.filter(\.isBound).map(\.remote.projectID))
            // The PATHs given: the archives read inside a folder go with their folder.
            let given = s.sources.filter { source in
                !s.sources.contains { $0.kind == "folder" && source.root.hasPrefix($0.root == "/" ? "/" : $0.root + "/") }
            }
            let paths = given.map(\.root).joined(separator: " ")
            let project = projects.count == 1 ? projects.first! : "ID"
            var line = "\(count(total.toSend.images, "image")) (\(bytes(total.toSend.bytes))) left to send"
            if processing > 0 { line += ", \(processing) being processed" }
            return line + ": run alti sync \(paths) --project \(project)"
        }
        if processing > 0 {
            return "\(count(processing, "image")) still being processed by the server: run alti status --refresh later to check."
        }
        if bad > 0 {
            return "\(total.all.images) of \(total.all.images + bad) image files Ready; \(bad) not usable (listed above): replace or remove them."
        }
        return total.all.images == 1 ? "The 1 image is Ready." : "All \(total.all.images) images Ready."
    }

    // MARK: JSON

    /// A file that looks like an image but cannot be sent (as `alti sync --json`'s `notUsable`).
    struct Unusable: Encodable {
        var path: String
        var verdict: String
        var detail: String?

        init(_ problem: FileProblem) {
            path = problem.path
            verdict = problem.verdict.rawValue
            detail = problem.detail
        }
    }

    /// The image fields of a source and of the total; named as in `alti sync --json` where they
    /// mean the same (`images`, `toSend`, `bytesToSend`, `processing`, `invalid`, `failed`,
    /// `notUsable`).
    struct ImagesJSON {
        var images: Int
        var bytes: Int64
        var states: [String: StatusTally.Count]
        var toSend: [String]
        var bytesToSend: Int64
        var processing: [String]
        var invalid: [String: [String]]
        var failed: [String: String]

        init(_ images: [ImageStatus]) {
            let tally = StatusTally(images)
            self.images = tally.all.images
            bytes = tally.all.bytes
            states = Dictionary(uniqueKeysWithValues: ImageCategory.allCases.map { ($0.rawValue, tally[$0]) })
            toSend = images.filter(\.category.isToSend).map(\.path)
            bytesToSend = tally.toSend.bytes
            processing = images.filter { $0.category == .processing }.map(\.path)
            invalid = Dictionary(images.filter { $0.category == .invalid }.map { ($0.path, $0.errors) }, uniquingKeysWith: { a, _ in a })
            failed = Dictionary(images.filter { $0.category == .failed }.map { ($0.path, $0.errors.joined(separator: "; ")) },
                                uniquingKeysWith: { a, _ in a })
        }
    }

    struct SourceJSON: Encodable {
        var root: String
        var kind: String
        var manifest: String
        var manifestIsFallback: Bool
        var endpoint: String?
        var project: String?
        var cloud: String?
        var bucket: String?
        var writtenAt: String
        var lastCheckedAt: String?
        var journalEvents: Int
        var refreshed: Bool
        var images: Int
        var bytes: Int64
        var duplicates: Int
        var missing: Int
        var states: [String: StatusTally.Count]
        var toSend: [String]
        var bytesToSend: Int64
        var processing: [String]
        var invalid: [String: [String]]
        var failed: [String: String]
        var notUsable: [Unusable]

        init(_ s: SourceStatus) {
            let i = ImagesJSON(s.images)
            root = s.root
            kind = s.kind
            manifest = s.manifest
            manifestIsFallback = s.manifestIsFallback
            endpoint = s.remote.endpoint.isEmpty ? nil : s.remote.endpoint
            project = s.remote.projectID.isEmpty ? nil : s.remote.projectID
            cloud = s.remote.cloud.isEmpty ? nil : s.remote.cloud
            bucket = s.remote.bucket.isEmpty ? nil : s.remote.bucket
            writtenAt = s.writtenAt
            lastCheckedAt = s.lastCheckedAt
            journalEvents = s.journalEvents
            refreshed = s.refreshed
            (images, bytes, states, toSend, bytesToSend) = (i.images, i.bytes, i.states, i.toSend, i.bytesToSend)
            (processing, invalid, failed) = (i.processing, i.invalid, i.failed)
            duplicates = s.duplicates
            missing = s.missing
            notUsable = s.notUsable.map(Unusable.init)
        }
    }

    struct JSONReport: Encodable {
        var exitCode: Int32
        var offline: Bool
        var refreshed: Bool
        /// Why the refresh failed (the line printed on stderr); absent when it did not.
        var error: String?
        var requests: [String: Int]
        var manifests: [String]
        var writtenAt: String?
        var lastCheckedAt: String?
        var images: Int
        var bytes: Int64
        var states: [String: StatusTally.Count]
        var toSend: [String]
        var bytesToSend: Int64
        var processing: [String]
        var invalid: [String: [String]]
        var failed: [String: String]
        var notUsable: [Unusable]
        var sources: [SourceJSON]
    }

    /// One JSON object. `failure` is the outcome of the error that stopped a refresh
    /// (`AltiCommand.outcome`): the object then holds the view from the manifests, the message
    /// (as on stderr) and its exit code.
    static func json(_ s: StatusSummary, failure: (code: Int32, message: String?)? = nil) throws -> String {
        let i = ImagesJSON(s.images)
        let report = JSONReport(
            exitCode: failure?.code ?? exitCode(s) ?? 0, offline: !s.refreshed, refreshed: s.refreshed,
            error: failure?.message, requests: ["graphql": s.requests], manifests: s.sources.map(\.manifest),
            writtenAt: s.writtenAt, lastCheckedAt: s.lastCheckedAt, images: i.images, bytes: i.bytes, states: i.states,
            toSend: i.toSend, bytesToSend: i.bytesToSend, processing: i.processing, invalid: i.invalid, failed: i.failed,
            notUsable: s.sources.flatMap { $0.notUsable.map(Unusable.init) }, sources: s.sources.map(SourceJSON.init))
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(report), as: UTF8.self) + "\n"
    }
}
