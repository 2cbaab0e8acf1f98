import AltiAPI
import AltiCore
import Foundation

/// Renders a sync summary as text (for people) or one JSON object (for scripts), and decides the
/// exit code. Never prints a key, a token or an upload URL: the summary holds none.
enum SyncRenderer {
    /// The exit code of a finished sync, or nil for 0. Order: interrupted, then what a re-run may
    /// mend (75), then an input with no images (66), then files that are not usable images (79):
    /// a script must be able to tell "all sent" from "all usable ones sent".
    static func exitCode(_ s: SyncSummary) -> Int32? {
        let r = s.report
        if r.phase == .interrupted { return AltiError(.interrupted, "").exitCode }
        // --timeout: the user set the limit, nothing went wrong; what is left is a re-run's work.
        if r.phase == .timedOut { return AltiError(.incomplete, "").exitCode }
        if s.dryRun { return nil }
        if !r.failed.isEmpty || !r.invalid.isEmpty { return AltiError(.incomplete, "").exitCode }
        if !changing(s).isEmpty { return AltiError(.incomplete, "").exitCode }
        if s.waited, !(r.processing.isEmpty && r.notSent.isEmpty) { return AltiError(.incomplete, "").exitCode }
        if !s.waited, !r.notSent.isEmpty { return AltiError(.incomplete, "").exitCode }
        if let rec = r.reconstruction, rec.errorMessage != nil { return AltiError(.incomplete, "").exitCode }
        if !unusable(s).isEmpty { return AltiError(.unusableFiles, "").exitCode }
        if r.total == 0 { return AltiError(.noInput, "").exitCode }
        return nil
    }

    /// A file that is not a usable image, with its full path and why.
    struct Unusable: Encodable, Equatable {
        var path: String
        var verdict: String
        var detail: String?
    }

    /// Every file of the sources that looks like an image but cannot be sent: named files that are
    /// empty, truncated, not images, unreadable; and unreadable files that may be images.
    static func unusable(_ s: SyncSummary) -> [Unusable] {
        s.sources.flatMap { source -> [Unusable] in
            let prefix = source.root == "/" ? "/" : source.root + "/"
            return source.problems.map { Unusable(path: prefix + $0.path, verdict: $0.verdict.rawValue, detail: $0.detail) }
                + source.unreadableOtherFiles.map { Unusable(path: prefix + $0.path, verdict: "unreadable", detail: $0.detail) }
        }
    }

    /// Files that changed while the scan read them (copies still being written), full paths:
    /// not recorded, so not sent; the run exits 75 and the next one reads them again.
    static func changing(_ s: SyncSummary) -> [String] {
        s.sources.flatMap { source in source.changing.map { ScanRenderer.absolute(root: source.root, $0) } }
    }

    /// "1 image", "2 images"; "1 URL refresh", "2 URL refreshes".
    static func count(_ n: Int, _ noun: String, plural: String? = nil) -> String {
        "\(n) \(n == 1 ? noun : plural ?? noun + "s")"
    }

    static let listedLines = 20

    static func text(_ s: SyncSummary, palette: Palette = .plain) -> String {
        let r = s.report
        var lines: [String] = []
        let projectText = s.project.map { "project \($0.id)\($0.name.isEmpty ? "" : " \"\($0.name)\"")" } ?? "project (not looked up: offline)"
        let where_ = s.bucket.isEmpty ? "" : ", bucket \(s.bucket) (\(s.cloud))"
        lines.append("\(s.dryRun ? "alti sync --dry-run" : "alti sync"): \(projectText) at \(s.endpoint)\(where_)")
        let images = s.sources.reduce(0) { $0 + $1.images }
        let bytes = s.sources.reduce(Int64(0)) { $0 + $1.totalBytes }
        let hashed = s.sources.reduce(0) { $0 + $1.filesHashed }
        let reused = s.sources.reduce(0) { $0 + $1.filesReused }
        var scanLine = "  scanned \(count(images, "image")) (\(ScanRenderer.bytes(bytes))) in \(count(s.sources.count, "source")): \(hashed) hashed, \(reused) unchanged"
        if r.total < images { scanLine += ", \(count(images - r.total, "duplicate"))" }
        lines.append(scanLine)
        for path in changing(s).prefix(listedLines) { lines.append("  changing, not sent: \(path) is still being written") }
        let bad = unusable(s)
        if !bad.isEmpty {
            lines.append("  not usable, not sent: \(count(bad.count, "file"))")
            for file in bad.prefix(listedLines) {
                lines.append("    \(file.path): \(file.verdict)\(file.detail.map { ": \($0)" } ?? "")")
            }
            if bad.count > listedLines { lines.append("    ... and \(bad.count - listedLines) more (see --format json)") }
        }
        if s.offlinePlan {
            lines.append("  offline: \(s.offlineReason ?? "the server could not be reached"); this plan is based on the manifest only")
        }
        lines.append("  on the server already: \(r.total - r.toSend.count) · to send: \(count(r.toSend.count, "image")), \(ScanRenderer.bytes(r.bytesToSend))")
        if !r.lostOnServer.isEmpty {
            lines.append("  the server had lost \(count(r.lostOnServer.count, "image")) the manifest held as Ready (deleted in the web app?): \(s.dryRun ? "they would be sent" : "sending them") again")
        }
        if s.dryRun {
            for sha1 in r.toSend.prefix(listedLines) { lines.append("    would send \(relative(s, sha1))") }
            if r.toSend.count > listedLines { lines.append("    ... and \(r.toSend.count - listedLines) more") }
            lines.append("  nothing was changed on the server (dry run)")
            return lines.joined(separator: "\n") + "\n"
        }
        let m = s.metrics
        if m.transfers > 0 || m.registrations > 0 {
            // Stores, not attempts: a run whose every PUT was refused stored nothing.
            let unstored = m.transfers - m.imagesStored
            lines.append("  stored \(count(m.imagesStored, "image")) (\(ScanRenderer.bytes(m.bytesStored))) in \(String(format: "%.1f", s.seconds)) s\(unstored > 0 ? " (\(count(unstored, "upload")) refused or failed)" : ""); \(count(m.registrations, "registration")), \(count(m.grantRefreshes, "URL refresh", plural: "URL refreshes")), \(count(m.apiRequests, "API request"))")
        } else {
            lines.append("  sent nothing; \(count(m.apiRequests, "API request"))")
        }
        // Colour (a terminal only, never with NO_COLOR) marks the words, not the counts' meaning.
        let tally = { (word: String, n: Int, style: Palette.Style) in n > 0 ? palette.paint("\(word) \(n)", style) : "\(word) \(n)" }
        lines.append("  \(tally("Ready", r.ready.count, .good)) · \(tally("Invalid", r.invalid.count, .bad)) · \(tally("processing", r.processing.count, .waiting)) · \(tally("failed", r.failed.count, .bad))\(r.notSent.isEmpty ? "" : " · \(tally("not sent", r.notSent.count, .waiting))")")
        for (sha1, errors) in r.invalid.sorted(by: { $0.key < $1.key }) {
            let held = r.heldInvalid.contains(sha1) ? " (refused again after a re-send: not sent until the file changes, or --resend-invalid)" : ""
            lines.append("    \(palette.paint("Invalid", .bad)): \(relative(s, sha1)): \(errors.isEmpty ? "no reason given" : errors.joined(separator: "; "))\(held)")
        }
        for (sha1, reason) in r.failed.sorted(by: { $0.key < $1.key }) {
            lines.append("    \(palette.paint("failed", .bad)): \(relative(s, sha1)): \(reason)")
        }
        if let rec = r.reconstruction {
            if rec.alreadyUnderway {
                lines.append("  reconstruction already started earlier (task \(rec.taskState ?? "?")): not starting a second one")
            } else if let message = rec.errorMessage {
                lines.append("  reconstruction not started: \(message)\(rec.errorCode.map { " (code \($0))" } ?? "")")
            } else {
                lines.append("  reconstruction started: task \(rec.taskID ?? "?")\(rec.taskState.map { " (\($0))" } ?? "")")
            }
        }
        for manifest in s.manifests { lines.append("  manifest: \(manifest)") }
        lines.append(next(s))
        return lines.joined(separator: "\n") + "\n"
    }

    /// The closing line: what happened, in one sentence, and what to do next.
    static func next(_ s: SyncSummary) -> String {
        let r = s.report
        let bad = unusable(s).count
        if r.phase == .timedOut {
            let sent = r.ready.count + r.processing.count
            return "Timed out (--timeout \(s.timeLimit ?? "")): \(sent) of \(count(r.total, "image")) on the server (\(r.ready.count) Ready), \(r.total - sent) left to send. Progress is saved; run the same command again to continue."
        }
        let stillWritten = changing(s)
        if r.phase != .interrupted, let first = stillWritten.first {
            return "changing: \(first) is still being written\(stillWritten.count > 1 ? " (and \(stillWritten.count - 1) more)" : ""); run again when the copy has finished."
        }
        if r.phase == .interrupted {
            let sent = r.ready.count + r.processing.count
            return "Interrupted: \(sent) of \(count(r.total, "image")) on the server (\(r.ready.count) Ready), \(r.total - sent) left to send. Progress is saved; run the same command again to continue."
        }
        if !r.failed.isEmpty || !r.notSent.isEmpty {
            return "Not finished: run the same command again to retry the \(count(r.failed.count + r.notSent.count, "image")) left (nothing uploaded is sent again)."
        }
        if !r.invalid.isEmpty, Set(r.invalid.keys).isSubset(of: r.heldInvalid) {
            return "The server rejected \(count(r.invalid.count, "image")) again after a re-send: fix or replace them (a changed file is sent again), or send them unchanged with --resend-invalid."
        }
        if !r.invalid.isEmpty {
            return "The server rejected \(count(r.invalid.count, "image")): fix or remove them, then run again (Invalid images are sent again)."
        }
        if !r.processing.isEmpty {
            return s.waited
                ? "\(count(r.processing.count, "image")) still being processed: run the same command again later to check."
                : "Uploaded; the server is verifying \(count(r.processing.count, "image")). Run again later to record their final state."
        }
        if r.total == 0 {
            return bad == 0
                ? "No images found under \(s.sources.map(\.root).joined(separator: ", ")): nothing to send. Check the folder."
                : "None of the \(count(bad, "file")) listed above is a usable image: nothing to send."
        }
        var line = bad == 0 ? "All \(count(r.total, "image")) Ready." : "\(r.total) of \(r.total + bad) image files Ready; \(bad) not usable (listed above) and not sent: replace or remove them."
        if r.total == 1, bad == 0 { line = "The 1 image is Ready." }
        if r.reconstruction == nil, bad == 0 { line += " Start the reconstruction with --start-reconstruction." }
        return line
    }

    static func relative(_ s: SyncSummary, _ sha1: String) -> String {
        s.pathsBySHA1[sha1] ?? sha1
    }

    struct JSONReport: Encodable {
        var endpoint: String
        var project: String?
        var projectName: String?
        var cloud: String?
        var bucket: String?
        var dryRun: Bool
        var offline: Bool
        var phase: String
        var exitCode: Int32
        var manifests: [String]
        var images: Int
        var alreadyReady: Int
        /// Held as Ready by the manifest, gone from the server: sent again.
        var lostOnServer: [String]
        var toSend: [String]
        var bytesToSend: Int64
        var ready: [String]
        var invalid: [String: [String]]
        /// Invalid images not sent in this run: refused again after a re-send (see DESIGN).
        var heldInvalid: [String]
        var processing: [String]
        var failed: [String: String]
        var notSent: [String]
        /// Files that look like images but cannot be sent (path, verdict, detail).
        var notUsable: [Unusable]
        /// Files still being written while they were read: not recorded, not sent (exit 75).
        var changing: [String]
        var requests: [String: Int]
        /// Bytes of the images the store accepted (`imagesStored` of them).
        var bytesSent: Int64
        var imagesStored: Int
        var filesHashed: Int
        var seconds: Double
        var reconstruction: [String: String]?
    }

    /// The object `--json` prints when a sync stops before its report (offline, refused key,
    /// corrupt manifest, ...): `phase` "failed", the one-line error, the exit code.
    static func errorJSON(message: String, exitCode: Int32) throws -> String {
        struct Failure: Encodable {
            var phase = "failed"
            var error: String
            var exitCode: Int32
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(Failure(error: message, exitCode: exitCode)), as: UTF8.self) + "\n"
    }

    static func json(_ s: SyncSummary) throws -> String {
        let r = s.report
        let path = { (sha1: String) in relative(s, sha1) }
        var reconstruction: [String: String]?
        if let rec = r.reconstruction {
            reconstruction = [:]
            reconstruction?["taskID"] = rec.taskID
            reconstruction?["taskState"] = rec.taskState
            reconstruction?["errorMessage"] = rec.errorMessage
            reconstruction?["errorCode"] = rec.errorCode.map(String.init)
            reconstruction?["alreadyUnderway"] = rec.alreadyUnderway ? "true" : nil
        }
        let report = JSONReport(
            endpoint: s.endpoint, project: s.project?.id, projectName: s.project?.name,
            cloud: s.cloud.isEmpty ? nil : s.cloud, bucket: s.bucket.isEmpty ? nil : s.bucket,
            dryRun: s.dryRun, offline: s.offlinePlan, phase: r.phase.rawValue, exitCode: exitCode(s) ?? 0, manifests: s.manifests,
            images: r.total, alreadyReady: r.alreadyReady, lostOnServer: r.lostOnServer.map(path).sorted(), toSend: r.toSend.map(path), bytesToSend: r.bytesToSend,
            ready: r.ready.map(path).sorted(),
            invalid: Dictionary(uniqueKeysWithValues: r.invalid.map { (path($0.key), $0.value) }),
            heldInvalid: r.heldInvalid.map(path).sorted(),
            processing: r.processing.map(path).sorted(),
            failed: Dictionary(uniqueKeysWithValues: r.failed.map { (path($0.key), $0.value) }),
            notSent: r.notSent.map(path).sorted(), notUsable: unusable(s), changing: changing(s),
            requests: ["graphql": s.metrics.apiRequests, "graphqlRetries": s.metrics.apiRetries, "put": s.metrics.transfers,
                       "putRetries": s.metrics.transferRetries, "registrations": s.metrics.registrations,
                       "urlRefreshes": s.metrics.grantRefreshes],
            bytesSent: s.metrics.bytesStored, imagesStored: s.metrics.imagesStored, filesHashed: s.sources.reduce(0) { $0 + $1.filesHashed }, seconds: s.seconds,
            reconstruction: reconstruction)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(report), as: UTF8.self) + "\n"
    }
}

extension SyncRenderer {
    /// One result per image of the run (per checksum: duplicates are one image), in path order:
    /// its state at the end (Ready, Invalid, processing, failed, notSent; a dry run's images to
    /// send are `toSend`), the server's id and the reason it is not Ready.
    static func imageResults(_ s: SyncSummary) -> [ImageResult] {
        let r = s.report
        var states: [String: (state: String, error: String?)] = [:]
        for sha1 in r.toSend { states[sha1] = ("toSend", nil) }
        for sha1 in r.notSent { states[sha1] = ("notSent", nil) }
        for sha1 in r.processing { states[sha1] = ("processing", nil) }
        for sha1 in r.ready { states[sha1] = ("Ready", nil) }
        for (sha1, errors) in r.invalid { states[sha1] = ("Invalid", errors.isEmpty ? "no reason given" : errors.joined(separator: "; ")) }
        for (sha1, reason) in r.failed { states[sha1] = ("failed", reason) }
        for sha1 in s.pathsBySHA1.keys where states[sha1] == nil { states[sha1] = ("unknown", nil) }
        return states.map { sha1, result in
            ImageResult(path: relative(s, sha1), sha1: sha1, size: s.sizesBySHA1[sha1] ?? 0, state: result.state,
                        serverID: s.serverIDs[sha1], error: result.error)
        }.sorted { ($0.path, $0.sha1 ?? "") < ($1.path, $1.sha1 ?? "") }
    }
}
