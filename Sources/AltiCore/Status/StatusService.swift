import Foundation

/// `alti status`: what the manifests record about each source, read without scanning, hashing,
/// locking or any network; with `refresh`, the server's current answer for every image, recorded
/// through the journal into the manifests as a sync records it.
public struct StatusService: Sendable {
    public var store: ManifestStore
    /// hasImage requests in flight at once during a refresh (as a sync's diff).
    public var lookupConcurrency = SyncOptions().lookupConcurrency

    public init(store: ManifestStore = ManifestStore()) {
        self.store = store
    }

    /// One source to report and where its manifest is.
    struct Located: Sendable {
        var root: String
        var location: ManifestLocation
    }

    /// The sources of `paths`, each with its manifest: the folder's or archive's own, then, for a
    /// folder, those of the archives a sync read inside it (`ManifestSession.openAll` keeps them
    /// under `archives/` beside the folder's manifest). Nothing is created or written.
    /// - Throws: 66 for a PATH that is missing or has no manifest; 65 for one that is corrupt.
    func locate(paths: [String], manifestOverride: String?) throws -> [Located] {
        let fm = FileManager.default
        var result: [Located] = []
        for root in try ManifestSession.checkSources(paths) {
            let location = store.locate(root: root, override: manifestOverride)
            guard fm.fileExists(atPath: location.file.path) || location.seed.map({ fm.fileExists(atPath: $0.path) }) == true
            else { throw ManifestSession.noManifest(root) }
            result.append(Located(root: root, location: location))
            var isDirectory: ObjCBool = false
            guard fm.fileExists(atPath: root, isDirectory: &isDirectory), isDirectory.boolValue else { continue }
            let folder = ManifestSession.archiveManifestFolder(forManifest: location.file)
            let names = ((try? fm.contentsOfDirectory(atPath: folder.path)) ?? []).filter { $0.hasSuffix(".json") }.sorted()
            let inside = root == "/" ? "/" : root + "/"
            for name in names {
                let file = folder.appendingPathComponent(name)
                // The state folder's `archives/` is shared by every read-only source: keep the
                // manifests of archives inside this root only.
                guard let manifest = try store.load(file), manifest.source.kind == "archive",
                      manifest.source.root.hasPrefix(inside) else { continue }
                result.append(Located(root: manifest.source.root,
                                      location: ManifestLocation(file: file, isFallback: location.isFallback)))
            }
        }
        return result
    }

    /// The status of `paths` from their manifests alone. A journal beside a manifest (a sync
    /// running now, or one that was killed) is folded into the view, not into the file.
    public func read(paths: [String], manifestOverride: String?) throws -> StatusSummary {
        StatusSummary(sources: try locate(paths: paths, manifestOverride: manifestOverride).map(snapshot))
    }

    /// One source's view (`recorded`'s manifest, its leftover journal folded in).
    func snapshot(_ source: Located) throws -> SourceStatus {
        let (manifest, journalEvents) = try recorded(source)
        return SourceStatus(folded: manifest, journalEvents: journalEvents, manifestPath: source.location.file.path,
                            manifestIsFallback: source.location.isFallback)
    }

    /// One source's manifest with its leftover journal folded into it, as they stand, and the
    /// number of the journal's events (also what `alti report` reads); nothing is written. No lock
    /// is taken: a running sync appends to the journal (a torn last line is dropped on read) and
    /// replaces the manifest by rename, so both are always whole. A manifest replaced between the
    /// two reads (the sync folded its journal and removed it) is read again, so a view never
    /// misses the events it folded.
    ///
    /// The journal is folded into the manifest as it is read, a line at a time, as a sync folds it:
    /// a 100,000-image sync killed before its fold leaves about 67 MB of journal, which held
    /// whole (and decoded) would cost a status several times the sync's own memory.
    func recorded(_ source: Located) throws -> (manifest: Manifest, journalEvents: Int) {
        let file = source.location.file
        let journalPath = ManifestSync.journalPath(forManifest: file.path)
        func identity() -> FileStat? {
            var st = SystemStat()
            return systemStat(file.path, &st) == 0 ? FileStat(st) : nil
        }
        var attempt = 0
        while true {
            attempt += 1
            let before = identity()
            var manifest = try store.load(file)
            if manifest == nil, let seed = source.location.seed { manifest = try store.load(seed) }
            guard var manifest else { throw ManifestSession.noManifest(source.root) }
            var folding = ManifestSync.Folding(manifest)
            var events = 0
            _ = try SyncJournal.readEvents(path: journalPath) { event in
                folding.apply(event)
                events += 1
            }
            _ = folding.finish(into: &manifest)
            if identity() == before || attempt == 3 { return (manifest, events) }
        }
    }

    /// Asks the server about every usable image the manifests of `paths` hold a checksum for
    /// (`SyncEngine.lookUp`: hasImage, `batchLimit` per request, `lookupConcurrency` in flight,
    /// after one `project` request per project), records the answers through each manifest's
    /// journal and folds them in, as a sync does, and returns the view of the result.
    ///
    /// Each manifest is locked for the length of the refresh (73 when a sync holds it). Sources
    /// never synced have no project to ask and are left as they are. Whatever stops the refresh
    /// (no network, Ctrl-C), the answers already journaled are folded into the manifests first.
    public func refresh(paths: [String], manifestOverride: String?, catalog: any RemoteCatalog, endpoint: String,
                        metrics: SyncMetrics) async throws -> StatusSummary {
        let located = try locate(paths: paths, manifestOverride: manifestOverride)
        var sessions: [ManifestSession] = []
        defer { for session in sessions { session.close() } }
        for source in located {
            sessions.append(try ManifestSession.openRecorded(root: source.root, location: source.location, store: store))
        }
        let bound = sessions.filter { !$0.manifest.remote.projectID.isEmpty }
        for session in bound {
            try session.checkBinding(endpoint: endpoint, projectID: session.manifest.remote.projectID)
        }
        var projects: [String] = []
        for session in bound where !projects.contains(session.manifest.remote.projectID) {
            projects.append(session.manifest.remote.projectID)
        }
        // A project deleted since the sync is one clear error (67) before anything is journaled.
        for project in projects { _ = try await catalog.project(project) }
        for session in bound {
            try session.bind(endpoint: endpoint, projectID: session.manifest.remote.projectID)
        }
        do {
            for project in projects {
                let group = bound.filter { $0.manifest.remote.projectID == project }
                var facts: [String: ServerFacts] = [:]
                var checksums: [String] = []
                var seen: Set<String> = []
                for session in group {
                    facts.merge(ManifestSync.facts(from: session.manifest)) { old, _ in old }
                    // Entries of files gone since the scan too: their facts follow a renamed file.
                    for entry in session.manifest.entries where entry.verdict == .ok {
                        if let sha1 = entry.sha1, seen.insert(sha1).inserted { checksums.append(sha1) }
                    }
                }
                let recorder = SyncRecorder(initial: facts, journals: group.compactMap(\.journal), metrics: metrics)
                var options = SyncOptions()
                options.lookupConcurrency = lookupConcurrency
                try await SyncEngine(catalog: catalog, recorder: recorder, options: options).lookUp(checksums, project: project)
                await recorder.finish()
            }
        } catch {
            for session in bound { try? session.fold(cloud: nil, bucket: nil) }
            throw error
        }
        for session in bound { try session.fold(cloud: nil, bucket: nil) }
        let sources = sessions.map { session in
            var status = SourceStatus(manifest: session.manifest, manifestPath: session.location.file.path,
                                      manifestIsFallback: session.location.isFallback)
            status.refreshed = status.isBound
            return status
        }
        return StatusSummary(sources: sources, refreshed: true, requests: metrics.snapshot.apiRequests)
    }
}
