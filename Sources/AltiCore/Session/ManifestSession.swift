import Foundation

/// One source (a folder, later an archive) and its manifest, held for the length of a command:
/// the one place that locates, locks, loads (or seeds), folds a journal left by a crashed run,
/// scans incrementally and saves; and, for a sync, binds the manifest to a project, journals, and
/// folds the journal back. `alti scan`, `alti sync` and `alti status` all open their sources
/// through it, so they cannot drift apart.
public final class ManifestSession: @unchecked Sendable {
    public let tree: any SourceTree
    public let location: ManifestLocation
    public private(set) var manifest: Manifest
    public internal(set) var scanReport: ScanReport
    public var journalPath: String { ManifestSync.journalPath(forManifest: location.file.path) }
    /// Open once the manifest is bound to a project (never for a dry run).
    public private(set) var journal: SyncJournal?

    let store: ManifestStore
    private let lock: ManifestLock
    /// The scan's write time: the racy-check reference must stay the time the LOCAL facts were
    /// written, so later saves that only change server facts keep it (see DESIGN.md).
    private let localFactsWrittenAtNs: Int64

    init(tree: any SourceTree, location: ManifestLocation, lock: ManifestLock, manifest: Manifest,
         scanReport: ScanReport, store: ManifestStore) {
        self.tree = tree
        self.location = location
        self.lock = lock
        self.manifest = manifest
        self.scanReport = scanReport
        self.store = store
        self.localFactsWrittenAtNs = manifest.writtenAtNs
    }

    public var root: String { tree.root }

    /// Checks that every PATH exists and is a folder (before anything is locked or written), and
    /// returns each folder once: the same folder named twice (`survey survey`, `survey ./survey`,
    /// a symlink to it) is one source, since two sessions on one manifest would lock each other
    /// out. A folder inside another one given too is refused: its images would be in two manifests.
    public static func checkSources(_ paths: [String]) throws -> [String] {
        var roots: [(path: String, real: String)] = []
        var seen: Set<[UInt64]> = []
        for path in paths {
            let root = ScanService.absolutePath(path)
            var st = SystemStat()
            guard stat(root, &st) == 0 else {
                throw AltiError(.noInput, "\(root): \(OSError.current("stat").message)")
            }
            let isFolder = (st.st_mode & S_IFMT) == S_IFDIR
            guard isFolder || ((st.st_mode & S_IFMT) == S_IFREG && ArchiveTree.looksLikeArchive(root)) else {
                throw AltiError(.noInput, "\(root) is neither a folder nor an archive alti can read (zip, tar, tar.gz/bz2/xz/zst, 7z): give the folder or the archive that holds the images")
            }
            guard seen.insert([UInt64(st.st_dev), UInt64(st.st_ino)]).inserted else { continue }
            let real = realpath(root, nil).map { pointer -> String in
                defer { free(pointer) }
                return String(cString: pointer)
            } ?? root
            roots.append((root, real))
        }
        for outer in roots {
            for inner in roots where inner.real != outer.real && inner.real.hasPrefix(outer.real == "/" ? "/" : outer.real + "/") {
                throw AltiError(.usage, "\(inner.path) is inside \(outer.path), which is given too: give only \(outer.path) (it includes the other), or sync them in separate runs")
            }
        }
        return roots.map(\.path)
    }

    /// Opens one source: locate, lock, remove a killed save's temp files, load (or seed from a
    /// read-only card's own manifest), fold a leftover journal (one written for another project
    /// is refused, 65, and left as it is), scan incrementally (checkpointing), save, drop the
    /// folded journal.
    /// - Parameter rebuild: move an unreadable manifest aside and re-hash everything.
    /// - Throws: `AltiError`, or `ScanInterrupted` when cancelled during the scan (what was hashed
    ///   is saved first).
    public static func open(root: String, manifestOverride: String?, rebuild: Bool = false, scanner: ScanService,
                            jobs: Int, progress: (@Sendable (ScanProgress) -> Void)? = nil) async throws -> ManifestSession {
        let store = scanner.store
        let started = scanner.now()
        var isDirectory: ObjCBool = true
        _ = FileManager.default.fileExists(atPath: root, isDirectory: &isDirectory)
        let tree: any SourceTree = isDirectory.boolValue ? FolderTree(root: root, reading: scanner.inspector.reader)
                                                         : ArchiveTree(root: root)
        let location = store.locate(root: root, override: manifestOverride)
        let lock = try store.lock(location)
        do {
            // Under the lock no other alti is saving this manifest: a temp file is a killed save's.
            store.removeStaleTemporaryFiles(of: location.file)
            var (previous, movedAside) = try load(location, root: root, rebuild: rebuild, store: store, now: scanner.now)
            let journalPath = ManifestSync.journalPath(forManifest: location.file.path)
            // A journal left by a crashed run is folded as it is read, never held whole (a
            // 100,000-image sync's holds some 400,000 events); the manifest changes only once
            // the journal was read whole and its header checked.
            var folding = previous.map(ManifestSync.Folding.init)
            var leftoverEvents = 0
            let leftoverHeader = try SyncJournal.readEvents(path: journalPath) { event in
                leftoverEvents += 1
                folding?.apply(event)
            }
            // The manifest as its file holds it (not a read-only card's seed, nothing folded into
            // it): a folder scan that finds nothing new need not write it again.
            let asRecorded = !rebuild && leftoverEvents == 0 && location.seed == nil && tree is FolderTree
                ? previous : nil
            if var manifest = previous, folding != nil {
                // Checked before anything is written: a foreign journal stops the command with
                // the manifest and the journal as they were.
                try ManifestSync.checkJournal(leftoverHeader, journalPath: journalPath, manifest: manifest,
                                              manifestPath: location.file.path)
                if leftoverEvents > 0 {
                    // The only holder of the entries as the fold changes them (no copy of them all).
                    previous = nil
                    _ = folding!.finish(into: &manifest)
                    previous = manifest
                }
            }
            // Checkpoints go through the same atomic save, under the lock held here.
            let saved = CheckpointCount()
            let file = location.file
            let clock = scanner.now
            var manifest: Manifest
            var report: ScanReport
            if !rebuild, let previous, let unchanged = unchangedArchive(tree, previous: previous) {
                // The hash cache keyed by member: an archive whose size, mtime and inode are as
                // scanned is not opened at all; its members' entries (and server facts) stand.
                (manifest, report) = unchanged
            } else { do {
                (manifest, report) = try await scanner.update(
                    previous: previous, tree: tree, rehashAll: rebuild, jobs: jobs, progress: progress,
                    checkpoint: { checkpoint in
                        try store.save(checkpoint.manifest, to: file, crashPoint: "checkpoint", nowNs: clock)
                        saved.record(checkpoint)
                    })
            } catch is CancellationError {
                let last = saved.last
                throw ScanInterrupted(root: root, manifest: file.path, filesHashed: last?.filesHashed ?? 0,
                                      filesToExamine: last?.filesToExamine ?? 0)
            } }
            if let asRecorded, Self.recordsTheSame(manifest, as: asRecorded) {
                manifest = asRecorded
            } else {
                manifest = try store.save(manifest, to: file, nowNs: clock)
            }
            // Folded and saved: the old journal goes, even one holding only a torn first line
            // (appending to that would glue a new event onto it).
            unlink(ManifestSync.journalPath(forManifest: file.path))
            report.manifest = file.path
            report.kind = tree.source.kind
            report.manifestIsFallback = location.isFallback
            report.movedAside = movedAside
            report.seconds = Double(scanner.now() - started) / 1e9
            return ManifestSession(tree: tree, location: location, lock: lock, manifest: manifest, scanReport: report,
                                   store: store)
        } catch {
            lock.release()
            throw error
        }
    }

    /// Whether saving `scanned` would write only a new `writtenAt` over `recorded`: every entry,
    /// fact, version and the generator the same. Then the file is left as it is (a no-change
    /// re-scan of 100,000 files would otherwise spend a good part of its time encoding, writing
    /// and fsyncing tens of megabytes that say what the file already says). Only for folders:
    /// their entries carry their own racy-check reference (`hashedAtNs`, filled into every entry
    /// of an older manifest, which makes it differ and so be written), while an archive's
    /// unchanged-archive shortcut needs a `writtenAtNs` later than the archive's mtime.
    static func recordsTheSame(_ scanned: Manifest, as recorded: Manifest) -> Bool {
        var restamped = scanned
        restamped.writtenAt = recorded.writtenAt
        restamped.writtenAtNs = recorded.writtenAtNs
        return restamped == recorded
    }

    /// Opens one source as its manifest recorded it, without scanning: lock, load (or seed from a
    /// read-only card's own manifest), fold a leftover journal (saved, then the journal goes, as
    /// `open` does). For `alti status --refresh`, which changes server facts only; `location` is
    /// `ManifestStore.locate`'s answer.
    /// - Throws: `AltiError(.noInput)` when the source has no manifest yet.
    public static func openRecorded(root: String, location: ManifestLocation, store: ManifestStore) throws -> ManifestSession {
        let lock = try store.lock(location)
        do {
            guard var manifest = try load(location, root: root, rebuild: false, store: store,
                                          now: RFC3339.nowNanoseconds).0 else {
                throw noManifest(root)
            }
            let journalPath = ManifestSync.journalPath(forManifest: location.file.path)
            let leftover = try SyncJournal.read(path: journalPath)
            ManifestSync.fold(leftover, into: &manifest)
            var isDirectory: ObjCBool = false
            _ = FileManager.default.fileExists(atPath: root, isDirectory: &isDirectory)
            let tree: any SourceTree = isDirectory.boolValue ? FolderTree(root: root) : ArchiveTree(root: root)
            var report = ScanService.report(manifest: manifest, walk: WalkResult(), otherSkipped: 0, unreadableOther: [],
                                            hashed: 0, reused: 0, bytesHashed: 0, missing: 0)
            report.manifest = location.file.path
            report.kind = manifest.source.kind
            report.manifestIsFallback = location.isFallback
            let session = ManifestSession(tree: tree, location: location, lock: lock, manifest: manifest, scanReport: report,
                                          store: store)
            if !leftover.isEmpty {
                try session.save()
                unlink(journalPath)
            }
            return session
        } catch {
            lock.release()
            throw error
        }
    }

    /// The one line for a source that was never scanned (`alti status` on a fresh folder).
    public static func noManifest(_ root: String) -> AltiError {
        AltiError(.noInput, "no manifest for \(root): run alti scan \(root) or alti sync \(root) --project ID")
    }

    /// Where the manifests of the archives read inside a folder live: `archives/` beside the
    /// folder's own manifest (`.alti/archives/<name>-<8 hex>.json`).
    public static func archiveManifestFolder(forManifest file: URL) -> URL {
        file.deletingLastPathComponent().appendingPathComponent("archives")
    }

    /// The previous manifest and its report as they stand, when `tree` is an archive with the same
    /// size, mtime and inode as when that manifest was made, and not racily so (its mtime clearly
    /// older than the manifest's write, as for files).
    static func unchangedArchive(_ tree: any SourceTree, previous: Manifest) -> (Manifest, ScanReport)? {
        guard let archive = tree as? ArchiveTree, let now = archive.facts, previous.source.kind == "archive",
              previous.source.archive == now, now.mtimeNs < previous.writtenAtNs - ScanService.racyWindowNs,
              // Images scanned before EXIF was recorded: the scan reads their EXIF once (no hash).
              !previous.entries.contains(where: { !$0.missing && $0.type != nil && $0.exif == nil })
        else { return nil }
        let present = previous.entries.filter { !$0.missing }
        let report = ScanService.report(manifest: previous, walk: WalkResult(), otherSkipped: 0, unreadableOther: [],
                                        hashed: 0, reused: present.count, bytesHashed: 0, missing: 0)
        return (previous, report)
    }

    /// The previous manifest: the file's, else (first run into the state folder of a card that
    /// has its own, now read-only, manifest) the seed's. An unreadable one is refused, or with
    /// `rebuild` moved aside (a seed cannot be moved: it is ignored).
    static func load(_ location: ManifestLocation, root: String, rebuild: Bool, store: ManifestStore,
                     now: () -> Int64) throws(AltiError) -> (Manifest?, movedAside: String?) {
        do {
            if let found = try store.load(location.file) { return (found, nil) }
            guard let seed = location.seed else { return (nil, nil) }
            if rebuild { return ((try? store.load(seed)) ?? nil, nil) }
            return (try store.load(seed), nil)
        } catch where error.kind == .dataError {
            // A newer alti's manifest is not damaged: only upgrading alti reads it (even with
            // --rebuild, which would move that alti's facts aside).
            if ManifestStore.isNewerRefusal(error) { throw error }
            guard rebuild else {
                throw AltiError(.dataError, error.message + "; fix it, or run `alti scan --rebuild \(root)` to move it aside and start over")
            }
            return (nil, try store.moveAside(location.file, nowNs: now()).path)
        }
    }

    // MARK: Sync

    /// Refuses a manifest bound elsewhere (67).
    public func checkBinding(endpoint: String, projectID: String) throws {
        try ManifestSync.checkBinding(manifest, manifestPath: location.file.path, endpoint: endpoint, projectID: projectID)
    }

    /// Binds the manifest to the project, saves it, and opens the journal with a header naming
    /// that binding: from here on a journal is always about the manifest's own project, even if
    /// the run dies before its end, and says so if it is ever found beside another manifest.
    public func bind(endpoint: String, projectID: String) throws {
        manifest.remote.endpoint = endpoint
        manifest.remote.projectID = projectID
        try save()
        CrashPoint.reached("binding-saved")
        journal = try SyncJournal(path: journalPath, header: JournalHeader(
            endpoint: endpoint, projectID: projectID, manifest: location.file.path))
    }

    /// Records the cloud and bucket used, folds this run's journal into the manifest and saves it;
    /// the journal goes only after the manifest is safely on disk (folding twice is harmless,
    /// losing events is not). Does nothing before `bind`.
    public func fold(cloud: String?, bucket: String?) throws {
        guard journal != nil else { return }
        CrashPoint.reached("fold")
        if let cloud, let bucket {
            manifest.remote.cloud = cloud
            manifest.remote.bucket = bucket
        }
        // Events are folded as they are read; the manifest changes only once the journal was
        // read whole and its header checked.
        var folding = ManifestSync.Folding(manifest)
        let header = try SyncJournal.readEvents(path: journalPath) { folding.apply($0) }
        try ManifestSync.checkJournal(header, journalPath: journalPath, manifest: manifest,
                                      manifestPath: location.file.path)
        _ = folding.finish(into: &manifest)
        try save(crashPoint: "fold")
        CrashPoint.reached("fold-saved")
        unlink(journalPath)
    }

    /// Saves server-side changes, keeping the scan's write time as the racy-check reference.
    func save(crashPoint: String? = nil) throws {
        let writtenAt = localFactsWrittenAtNs
        manifest = try store.save(manifest, to: location.file, crashPoint: crashPoint, nowNs: { writtenAt })
    }

    /// Releases the lock.
    public func close() { lock.release() }

    // MARK: Items

    /// The usable, present images of these sessions, one per checksum (the first copy in order),
    /// with the server facts the manifests hold.
    public static func items(of sessions: [ManifestSession]) -> (items: [SyncItem], facts: [String: ServerFacts]) {
        var items: [SyncItem] = []
        var seen: Set<String> = []
        var facts: [String: ServerFacts] = [:]
        for session in sessions {
            facts.merge(ManifestSync.facts(from: session.manifest)) { old, _ in old }
            // An archive's members go in archive order (`inode` holds a member's index): a
            // streaming archive is then read about once for all its uploads.
            var entries = session.manifest.entries
            if let archive = session.tree as? ArchiveTree {
                entries.sort { $0.inode < $1.inode }
                archive.cursor.order = Dictionary(entries.map { ($0.path, Int($0.inode)) }, uniquingKeysWith: { a, _ in a })
            }
            for entry in entries where entry.verdict == .ok && !entry.missing {
                guard let sha1 = entry.sha1, let type = entry.type, seen.insert(sha1).inserted else { continue }
                items.append(SyncItem(
                    sha1: sha1, source: UploadSource(tree: session.tree, path: entry.path, size: entry.size, mtimeNs: entry.mtimeNs,
                                         sha1: sha1),
                    // The server's filename is a display form: valid UTF-8 (the escaped form for a
                    // name that is not), never a key: images are told apart by checksum.
                    filename: RecordedPath.display((entry.path as NSString).lastPathComponent), imageType: type.rawValue,
                    width: entry.width ?? 0, height: entry.height ?? 0))
            }
        }
        return (items, facts)
    }
}

/// Opens several sessions; on any failure, closes those already open.
extension ManifestSession {
    /// Opens a session per PATH and, when `readArchives`, one per archive found inside a folder
    /// (read in place, its manifest in the folder's manifest folder under `archives/`). An archive
    /// inside that cannot be read is reported on its folder; the rest of the survey goes on.
    public static func openAll(roots: [String], manifestOverride: String?, rebuild: Bool = false, scanner: ScanService,
                               jobs: Int, readArchives: Bool = true,
                               progress: (@Sendable (ScanProgress) -> Void)? = nil) async throws -> [ManifestSession] {
        var sessions: [ManifestSession] = []
        do {
            for root in roots {
                let session = try await open(root: root, manifestOverride: manifestOverride, rebuild: rebuild,
                                             scanner: scanner, jobs: jobs, progress: progress)
                sessions.append(session)
                guard readArchives, session.tree is FolderTree else { continue }
                for relative in session.scanReport.archivesFound {
                    // The archive's root is a `String` path (libarchive opens it by name): its
                    // recorded form is decoded; one whose name is not UTF-8 cannot be named so.
                    guard let onDisk = String(validating: RecordedPath.bytes(relative), as: UTF8.self) else {
                        session.scanReport.unreadableOtherFiles.append(PathProblem(
                            path: relative, detail: "an archive whose name is not UTF-8 is not read in place; rename it"))
                        continue
                    }
                    let archive = session.root == "/" ? "/" + onDisk : session.root + "/" + onDisk
                    let manifest = archiveManifestFolder(forManifest: session.location.file)
                        .appendingPathComponent(ManifestStore.fallbackName(root: archive)).path
                    do {
                        sessions.append(try await open(root: archive, manifestOverride: manifest, rebuild: rebuild,
                                                       scanner: scanner, jobs: jobs, progress: progress))
                    } catch let error as AltiError where error.kind == .noInput || error.kind == .dataError {
                        session.scanReport.unreadableOtherFiles.append(PathProblem(path: relative, detail: error.message))
                    }
                }
            }
        } catch {
            for session in sessions { session.close() }
            throw error
        }
        return sessions
    }
}
