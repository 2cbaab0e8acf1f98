import Foundation
import AltiArchive

/// One scanned source: where its manifest is, the manifest as saved, and the report.
public struct ScannedSource: Sendable {
    public var manifestURL: URL
    public var manifest: Manifest
    public var report: ScanReport
}

/// What a checkpoint hands to its closure while a scan is still hashing.
public struct ScanCheckpoint: Sendable {
    /// Every entry known so far: the files hashed by this run, the reused ones, and the previous
    /// manifest's entries (as they were) for files not examined yet. Files never seen before and
    /// not hashed yet are absent. Not yet normalized or stamped: save it with `ManifestStore.save`.
    public var manifest: Manifest
    /// Files hashed by this run so far (all of them are in `manifest`).
    public var filesHashed: Int
    public var bytesHashed: Int64
    /// Files that still needed examining when the scan started (hashed, reused and left included).
    public var filesToExamine: Int
}

/// A scan stopped by cancellation (Ctrl-C) after saving what it had hashed.
public struct ScanInterrupted: Error, Sendable, Equatable {
    public var root: String
    /// The manifest that holds what was hashed.
    public var manifest: String
    /// Files hashed by the interrupted run and saved in `manifest` (a re-run does not hash them again).
    public var filesHashed: Int
    /// Files that still needed examining when the interrupted run started.
    public var filesToExamine: Int
}

/// Scans folders into their manifests. Commands (scan now, sync later) call this; they never
/// walk or hash themselves.
public struct ScanService: Sendable {
    public var store: ManifestStore
    public var inspector: FileInspector
    /// Realtime nanoseconds; injectable. Stamps `hashedAtNs` and, through `ManifestStore.save`, `writtenAtNs`.
    public var now: @Sendable () -> Int64
    /// How often a long scan hands what it has hashed so far to its checkpoint closure (only when
    /// at least one file was hashed since the last checkpoint). Injectable for tests;
    /// `alti scan` takes `ALTI_SCAN_CHECKPOINT_MS`.
    public var checkpointInterval: Duration = .seconds(15)

    /// Re-hash a file whose mtime is within this much of the moment its content was read.
    ///
    /// Why: mtime has a granularity (2 s on FAT/exFAT, which camera SD cards use; a kernel tick on
    /// ext4). A file rewritten with the same size in the same tick as an earlier read keeps the same
    /// size, mtime and inode, so a stat comparison cannot see the change. Like git's "racily clean"
    /// index entries, we only trust stat data for files whose mtime is clearly older than the moment
    /// their content was read: each entry records `hashedAtNs` (taken just before the file was
    /// opened), and anything with `mtimeNs >= hashedAtNs - 2 s` is hashed again on the next scan.
    /// Entries of manifests written before `hashedAtNs` existed use the manifest's `writtenAtNs`
    /// (an upper bound of their read time); a scan copies that bound into the entries it carries
    /// over, so a later (checkpoint) save with a newer `writtenAtNs` cannot make them look clean.
    public static let racyWindowNs: Int64 = 2_000_000_000

    public init(store: ManifestStore = ManifestStore(), inspector: FileInspector = FileInspector(),
                now: @escaping @Sendable () -> Int64 = { RFC3339.nowNanoseconds() }) {
        self.store = store
        self.inspector = inspector
        self.now = now
    }

    /// The default number of files in flight: two per core (reads block; the hashing is CPU-bound).
    public static var defaultJobs: Int { max(2, 2 * ProcessInfo.processInfo.activeProcessorCount) }

    /// Scans each PATH into its manifest: locate, lock, load (refusing a corrupt or newer one unless
    /// `rebuild`), walk, hash what changed, merge, save atomically, unlock.
    /// - Throws: `AltiError` (`usage` for `--manifest` with several paths, `noInput`, `dataError`,
    ///   `cannotWrite` when the manifest cannot be written or another alti holds its lock).
    public func scan(paths: [String], manifestOverride: String? = nil, rebuild: Bool = false,
                     jobs: Int = ScanService.defaultJobs, readArchives: Bool = true,
                     progress: (@Sendable (ScanProgress) -> Void)? = nil) async throws -> [ScannedSource] {
        guard !paths.isEmpty else { throw AltiError(.usage, "give at least one folder to scan") }
        if manifestOverride != nil, paths.count > 1 {
            throw AltiError(.usage, "--manifest names one file, so it takes exactly one PATH (got \(paths.count))")
        }
        let roots = try ManifestSession.checkSources(paths)
        let sessions = try await ManifestSession.openAll(roots: roots, manifestOverride: manifestOverride, rebuild: rebuild,
                                                         scanner: self, jobs: jobs, readArchives: readArchives,
                                                         progress: progress)
        defer { for session in sessions { session.close() } }
        return sessions.map { ScannedSource(manifestURL: $0.location.file, manifest: $0.manifest, report: $0.scanReport) }
    }

    /// Locks, loads, scans and saves one source (a `ManifestSession` opened and closed).
    public func scanSource(root: String, manifestOverride: String?, rebuild: Bool, jobs: Int,
                           progress: (@Sendable (ScanProgress) -> Void)?) async throws -> ScannedSource {
        let session = try await ManifestSession.open(root: root, manifestOverride: manifestOverride, rebuild: rebuild,
                                                     scanner: self, jobs: jobs, progress: progress)
        defer { session.close() }
        return ScannedSource(manifestURL: session.location.file, manifest: session.manifest, report: session.scanReport)
    }

    /// The engine without storage: walks `root`, reuses what `previous` knows, hashes the rest,
    /// merges. The caller holds the lock and saves. `rehashAll` ignores the stat shortcut (but keeps
    /// server facts and the remote).
    ///
    /// `checkpoint`, if given, is called from this task while hashing, every `checkpointInterval`
    /// if at least one file was hashed since the last one, and once more when the scan is
    /// cancelled (if anything new was hashed); the caller saves what it gets. An error it throws
    /// stops the scan and is rethrown.
    /// - Throws: `CancellationError` when the task is cancelled: in-flight reads are abandoned
    ///   (within one 1 MiB chunk), no new file is started, and a last checkpoint is handed over
    ///   first.
    public func update(previous: Manifest?, root: String, rehashAll: Bool = false, jobs: Int = ScanService.defaultJobs,
                       progress: (@Sendable (ScanProgress) -> Void)? = nil,
                       checkpoint: ((ScanCheckpoint) throws -> Void)? = nil) async throws -> (Manifest, ScanReport) {
        try await update(previous: previous, tree: FolderTree(root: root, reading: inspector.reader), rehashAll: rehashAll,
                         jobs: jobs, progress: progress, checkpoint: checkpoint)
    }

    /// `update(previous:root:...)` over any source tree: its entries are walked and read through it.
    public func update(previous: Manifest?, tree: any SourceTree, rehashAll: Bool = false,
                       jobs: Int = ScanService.defaultJobs,
                       progress: (@Sendable (ScanProgress) -> Void)? = nil,
                       checkpoint: ((ScanCheckpoint) throws -> Void)? = nil) async throws -> (Manifest, ScanReport) {
        let root = tree.root
        let walk = try tree.walk()
        // Every carried-over entry keeps its own racy reference: one without `hashedAtNs` (an older
        // manifest) gets the manifest's `writtenAtNs`, the latest its content can have been read.
        // (Shared, not copied, when every entry has its own: the usual case.)
        var previousEntries = previous?.entries ?? []
        if let previous, previousEntries.contains(where: { $0.hashedAtNs == nil }) {
            for index in previousEntries.indices where previousEntries[index].hashedAtNs == nil {
                previousEntries[index].hashedAtNs = previous.writtenAtNs
            }
        }
        // Indices into `previousEntries` (the first of a path): entries are large, copies cost.
        var previousByPath: [String: Int] = [:]
        previousByPath.reserveCapacity(previousEntries.count)
        for (index, entry) in previousEntries.enumerated() where previousByPath[entry.path] == nil {
            previousByPath[entry.path] = index
        }

        // 1. Reuse or inspect.
        var reused: [ManifestEntry] = []
        reused.reserveCapacity(walk.files.count)
        var toInspect: [WalkedFile] = []
        for file in walk.files {
            if !rehashAll, let oldIndex = previousByPath[file.path],
               case let old = previousEntries[oldIndex],
               Self.canReuse(old, file.stat, previousWrittenAtNs: previous?.writtenAtNs ?? 0) {
                var entry = old
                entry.missing = false
                reused.append(entry)
            } else {
                toInspect.append(file)
            }
        }
        try Task.checkCancellation()

        // 1b. Entries of a manifest written before EXIF was recorded get it from their headers,
        //     once (nothing is hashed again; see DESIGN.md, "EXIF").
        let exifBackfilled = await backfillExif(&reused, tree: tree)
        try Task.checkCancellation()

        // 2. Inspect in parallel (largest first, so one big file does not end up alone at the end),
        //    checkpointing now and then.
        func merged(_ results: [Inspected?]) -> Merged {
            var m = Self.merge(previous: previous, previousEntries: previousEntries, previousByPath: previousByPath,
                               root: root, reused: reused, toInspect: toInspect, results: results)
            m.manifest.source = tree.source
            return m
        }
        var checkpointed = 0  // files hashed at the last checkpoint
        func handOver(_ results: [Inspected?], hashed: Int) throws {
            guard let checkpoint, hashed > checkpointed else { return }
            let m = merged(results)
            try checkpoint(ScanCheckpoint(manifest: m.manifest, filesHashed: m.hashed, bytesHashed: m.bytesHashed,
                                          filesToExamine: toInspect.count))
            checkpointed = hashed
        }
        let results: [Inspected?]
        if let archive = tree as? ArchiveTree {
            results = try await inspectInOnePass(toInspect, archive: archive, progress: progress,
                                                 checkpointEvery: checkpoint == nil ? nil : checkpointInterval,
                                                 checkpoint: handOver)
        } else {
            results = try await inspectAll(toInspect, tree: tree, jobs: jobs, progress: progress,
                                           checkpointEvery: checkpoint == nil ? nil : checkpointInterval,
                                           checkpoint: handOver)
        }
        if Task.isCancelled {
            try handOver(results, hashed: results.reduce(0) { $0 + ($1?.inspection.sha1 == nil ? 0 : 1) })
            throw CancellationError()
        }

        // 3-5. Merge into the manifest.
        let m = merged(results)
        var report = Self.report(manifest: m.manifest, walk: walk, otherSkipped: m.otherSkipped,
                                 unreadableOther: m.unreadableOther, hashed: m.hashed, reused: reused.count,
                                 bytesHashed: m.bytesHashed, missing: m.missing)
        report.exifBackfilled = exifBackfilled
        report.archivesFound = m.archives.sorted()
        report.changing = m.changing.sorted()
        report.vanished = m.vanished.sorted()
        report.specialFiles = walk.special
        return (m.manifest, report)
    }

    /// One examined file: what its read found and when the read started.
    struct Inspected: Sendable {
        var inspection: Inspection
        /// `now()` just before the file was opened: the entry's `hashedAtNs`.
        var hashedAtNs: Int64
    }

    struct Merged {
        var manifest: Manifest
        var otherSkipped = 0
        var unreadableOther: [PathProblem] = []
        var bytesHashed: Int64 = 0
        var hashed = 0
        var missing = 0
        var archives: [String] = []
        /// Files whose size or mtime changed while they were read: not recorded this time.
        var changing: [String] = []
        /// Files gone between the walk and their open.
        var vanished: [String] = []
    }

    /// Turns what is known into a manifest: the reused entries, the examined files (`results[i]`
    /// for `toInspect[i]`; nil = not examined yet, whose previous entry, if any, stays exactly as it
    /// was), entries of files that are gone (marked missing), server facts per checksum.
    static func merge(previous: Manifest?, previousEntries: [ManifestEntry], previousByPath: [String: Int],
                      root: String, reused: [ManifestEntry], toInspect: [WalkedFile], results: [Inspected?]) -> Merged {
        // 3. Turn inspections into entries.
        var entries = reused
        var out = Merged(manifest: Manifest(root: root))
        for (file, done) in zip(toInspect, results) {
            guard let done else {
                if let old = previousByPath[file.path] { entries.append(previousEntries[old]) }
                continue
            }
            let inspection = done.inspection
            out.bytesHashed += inspection.bytesHashed
            if inspection.sha1 != nil { out.hashed += 1 }
            // A copy still being written: what was read belongs to no single version of it. Its
            // previous entry (if any) stands as it was; the next scan reads it again.
            if inspection.changedWhileRead {
                out.changing.append(file.path)
                if let old = previousByPath[file.path] { entries.append(previousEntries[old]) }
                continue
            }
            // Removed (or renamed) since the walk listed it: as if the walk had not seen it; a
            // previous entry is kept as missing below, with its server facts.
            if inspection.vanished {
                out.vanished.append(file.path)
                continue
            }
            let named = ImageSniffer.hasImageExtension(file.name)
            var verdict = inspection.verdict
            var detail = inspection.detail
            switch verdict {
            case nil:
                guard named else {
                    if inspection.isArchive { out.archives.append(file.path) }
                    out.otherSkipped += 1
                    continue
                }
                verdict = .notAnImage
                detail = "named as an image, but the content is not JPEG, PNG or TIFF"
            case .empty?:
                guard named else { out.otherSkipped += 1; continue }
            case .unreadable?:
                guard named || ImageSniffer.hasNoExtension(file.name) else {
                    out.unreadableOther.append(PathProblem(path: file.path, detail: detail ?? "unreadable"))
                    continue
                }
            default:
                break
            }
            // The stat of the open file before the read (the facts the hash belongs to), never the
            // walk's earlier one, and the time taken before that stat.
            let st = inspection.stat ?? file.stat
            entries.append(ManifestEntry(
                path: file.path, size: max(st.size, 0), mtimeNs: st.mtimeNs, inode: st.inode,
                sha1: inspection.sha1, type: inspection.type, width: inspection.width, height: inspection.height,
                verdict: verdict ?? .notAnImage, detail: detail, hashedAtNs: done.hashedAtNs,
                exif: inspection.type == nil ? nil : inspection.exif))
        }

        // 4. Entries of files that are gone (or no longer images) stay, marked missing.
        let present = Set(entries.map(\.path))
        for old in previousEntries where !present.contains(old.path) {
            var entry = old
            entry.missing = true
            entry.duplicateOf = nil
            entries.append(entry)
            out.missing += 1
        }

        // 5. Server facts belong to a checksum: a new or renamed path inherits them from any entry
        //    (missing or not) with the same sha1; the most recently checked facts win.
        var factsBySHA1: [String: ServerFacts] = [:]
        for old in previousEntries {
            guard let sha1 = old.sha1, let server = old.server else { continue }
            if let known = factsBySHA1[sha1], known.checkedAt >= server.checkedAt { continue }
            factsBySHA1[sha1] = server
        }
        for index in entries.indices where !factsBySHA1.isEmpty || entries[index].server != nil {
            entries[index].server = entries[index].sha1.flatMap { factsBySHA1[$0] }
        }

        var manifest = Manifest(root: root, remote: previous?.remote ?? Manifest.Remote(), entries: entries,
                                writtenAtNs: previous?.writtenAtNs ?? 0)
        manifest.normalize()
        out.manifest = manifest
        return out
    }

    /// The stat shortcut: same size, mtime and inode, a usable earlier verdict, and not racy:
    /// the mtime is clearly older than the moment the content was read (`hashedAtNs`, or for an
    /// entry of an older manifest without it, the manifest's `writtenAtNs`).
    public static func canReuse(_ old: ManifestEntry, _ stat: FileStat, previousWrittenAtNs: Int64) -> Bool {
        guard !old.missing, old.verdict != .unreadable,
              old.size == stat.size, old.mtimeNs == stat.mtimeNs, old.inode == stat.inode
        else { return false }
        if old.sha1 == nil, old.verdict != .notAnImage, old.verdict != .empty { return false }
        let readAt = old.hashedAtNs ?? previousWrittenAtNs
        return stat.mtimeNs < readAt - racyWindowNs
    }

    // MARK: EXIF backfill

    /// Reads the EXIF of the image entries in `entries` that have none recorded (reused from a
    /// manifest written before EXIF was), from their first bytes only: no hash, and `sha1`,
    /// `hashedAtNs` and the stat stay as they are. Returns how many got facts. One file at a time
    /// off the cooperative pool (a one-time cost of about 128 KiB per image); an archive's members
    /// in one pass in archive order, as the scan reads them. A file that cannot be read, or changed
    /// since it was hashed, is left without (the next scan that hashes it reads its EXIF then).
    private func backfillExif(_ entries: inout [ManifestEntry], tree: any SourceTree) async -> Int {
        let wanted = entries.indices.filter { entries[$0].type != nil && entries[$0].exif == nil }
        guard !wanted.isEmpty else { return 0 }
        let requests = wanted.map { (path: entries[$0].path,
                                     stat: FileStat(size: entries[$0].size, mtimeNs: entries[$0].mtimeNs,
                                                    inode: entries[$0].inode)) }
        let stop = StopFlag()
        let found: [ExifFacts?] = await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<[ExifFacts?], Never>) in
                Self.ioQueue.async {
                    continuation.resume(returning: Self.headerExif(requests, tree: tree, stop: stop))
                }
            }
        } onCancel: {
            stop.set()
        }
        var count = 0
        for (index, facts) in zip(wanted, found) {
            guard let facts else { continue }
            entries[index].exif = facts
            count += 1
        }
        return count
    }

    /// `FileInspector.headerExif` for each request (`result[i]` for `requests[i]`), until `stop`.
    private static func headerExif(_ requests: [(path: String, stat: FileStat)], tree: any SourceTree,
                                   stop: StopFlag) -> [ExifFacts?] {
        var results = [ExifFacts?](repeating: nil, count: requests.count)
        guard let archive = tree as? ArchiveTree else {
            let inspector = FileInspector(reader: StoppableReading(base: TreeReading(tree: tree), stop: stop))
            for (i, request) in requests.enumerated() where !stop.isSet {
                results[i] = inspector.headerExif(path: request.path, expected: request.stat)
            }
            return results
        }
        let index = Dictionary(requests.indices.map { (requests[$0].path, $0) }, uniquingKeysWith: { a, _ in a })
        guard let reader = try? ArchiveReader(path: archive.root) else { return results }
        let pass = OnePassReading(reader: reader, tree: archive)
        let inspector = FileInspector(reader: pass)
        var left = index.count
        while left > 0, !stop.isSet, let member = try? reader.next() {
            guard member.kind == .regular, let i = index[member.path] else { continue }
            pass.current = member
            results[i] = inspector.headerExif(path: member.path, expected: requests[i].stat)
            left -= 1
        }
        return results
    }

    // MARK: Parallel inspection

    /// Blocking reads run on this queue, not on Swift's cooperative pool: a thread blocked in
    /// `read` would otherwise take one of only `cores` pool threads away from everything else.
    private static let ioQueue = DispatchQueue(label: "alti.scan.io", attributes: .concurrent)

    /// Inspects `files` with at most `jobs` in flight; `results[i]` belongs to `files[i]`. Every
    /// `checkpointEvery` of hashing, `checkpoint` gets the results so far and the number of files
    /// hashed. On cancellation no new file is started, reads in flight are abandoned at their next
    /// chunk, and the files they were reading stay nil (not examined), as do files not started.
    private func inspectAll(_ files: [WalkedFile], tree: any SourceTree, jobs: Int,
                            progress: (@Sendable (ScanProgress) -> Void)?,
                            checkpointEvery: Duration?,
                            checkpoint: ([Inspected?], Int) throws -> Void) async throws -> [Inspected?] {
        var results = [Inspected?](repeating: nil, count: files.count)
        guard !files.isEmpty else { return results }
        let order = files.indices.sorted { files[$0].stat.size > files[$1].stat.size }
        let counter = ProgressCounter(root: tree.root, filesTotal: files.count,
                                      bytesTotal: files.reduce(0) { $0 + max($1.stat.size, 0) }, sink: progress)
        let stop = StopFlag()
        let inspector = FileInspector(reader: StoppableReading(base: TreeReading(tree: tree), stop: stop))
        let now = self.now
        let clock = ContinuousClock()
        var lastCheckpoint = clock.now
        var hashed = 0
        var failure: (any Error)?
        await withTaskCancellationHandler {
            await withTaskGroup(of: (Int, Inspected).self) { group in
                var next = 0
                func add() {
                    let index = order[next]
                    let path = files[index].path
                    next += 1
                    group.addTask {
                        let result = await withCheckedContinuation { (continuation: CheckedContinuation<Inspected, Never>) in
                            Self.ioQueue.async {
                                // Taken before the open (so before the stat and the read): any later write
                                // gives the file an mtime at or after this, which the racy rule catches.
                                let startedAt = now()
                                let inspection = inspector.inspect(path: path) { counter.addBytes($0) }
                                continuation.resume(returning: Inspected(inspection: inspection, hashedAtNs: startedAt))
                            }
                        }
                        return (index, result)
                    }
                }
                while next < min(max(1, jobs), files.count) { add() }
                for await (index, result) in group {
                    counter.fileDone()
                    // A read abandoned by the stop ends as "unreadable": it was not examined.
                    if stop.isSet, result.inspection.verdict == .unreadable { continue }
                    results[index] = result
                    if result.inspection.sha1 != nil {
                        hashed += 1
                        CrashPoint.reached("scan-hashed")
                    }
                    if Task.isCancelled || stop.isSet { continue }  // drain what is in flight
                    if let every = checkpointEvery, clock.now - lastCheckpoint >= every {
                        do {
                            try checkpoint(results, hashed)
                        } catch {
                            failure = error
                            stop.set()
                            group.cancelAll()
                            continue
                        }
                        lastCheckpoint = clock.now
                    }
                    if next < files.count, !Task.isCancelled, !stop.isSet { add() }
                }
            }
        } onCancel: {
            stop.set()
        }
        if let failure { throw failure }
        return results
    }

    /// Inspects an archive's members in ONE pass in archive order, as libarchive reads them: a
    /// tar.gz can only be read from its start, so opening each member on its own would decompress
    /// the archive once per member. The members not needed are skipped as the pass goes. A member
    /// that cannot be read ends as `unreadable` (named); an archive that breaks off mid-way leaves
    /// the members after the break unexamined (their previous entries stand) and is reported.
    private func inspectInOnePass(_ files: [WalkedFile], archive: ArchiveTree,
                                  progress: (@Sendable (ScanProgress) -> Void)?, checkpointEvery: Duration?,
                                  checkpoint: ([Inspected?], Int) throws -> Void) async throws -> [Inspected?] {
        var results = [Inspected?](repeating: nil, count: files.count)
        guard !files.isEmpty else { return results }
        let wanted = Dictionary(files.indices.map { (files[$0].path, $0) }, uniquingKeysWith: { a, _ in a })
        let counter = ProgressCounter(root: archive.root, filesTotal: files.count,
                                      bytesTotal: files.reduce(0) { $0 + max($1.stat.size, 0) }, sink: progress)
        let clock = ContinuousClock()
        var lastCheckpoint = clock.now
        var hashed = 0
        let reader: ArchiveReader
        do {
            reader = try ArchiveReader(path: archive.root)
        } catch {
            throw AltiError(.noInput, "\(error.description); the archive cannot be read: check or replace it")
        }
        let pass = OnePassReading(reader: reader, tree: archive)
        let inspector = FileInspector(reader: pass)
        do {
            while let member = try reader.next() {
                guard member.kind == .regular, let index = wanted[member.path] else { continue }
                if Task.isCancelled { break }
                pass.current = member
                let startedAt = now()
                let inspection = inspector.inspect(path: member.path) { counter.addBytes($0) }
                results[index] = Inspected(inspection: inspection, hashedAtNs: startedAt)
                counter.fileDone()
                if inspection.sha1 != nil { hashed += 1 }
                if let every = checkpointEvery, clock.now - lastCheckpoint >= every {
                    try checkpoint(results, hashed)
                    lastCheckpoint = clock.now
                }
                await Task.yield()
            }
        } catch let error as ArchiveError {
            // A broken header: what was read stands; say where it broke.
            if let index = error.member.flatMap({ wanted[$0] }), results[index] == nil {
                results[index] = Inspected(inspection: Inspection(
                    stat: nil, sha1: nil, type: nil, width: nil, height: nil, verdict: .unreadable,
                    detail: error.message, bytesHashed: 0), hashedAtNs: now())
            }
        }
        return results
    }

    public static func absolutePath(_ path: String) -> String {
        let url = path.hasPrefix("/")
            ? URL(fileURLWithPath: path)
            : URL(fileURLWithPath: FileManager.default.currentDirectoryPath).appendingPathComponent(path)
        var result = url.standardizedFileURL.path
        while result.count > 1, result.hasSuffix("/") { result.removeLast() }
        return result
    }

    static func report(manifest: Manifest, walk: WalkResult, otherSkipped: Int, unreadableOther: [PathProblem],
                       hashed: Int, reused: Int, bytesHashed: Int64, missing: Int) -> ScanReport {
        var byType: [String: Int] = [:]
        var problemsByVerdict: [String: Int] = [:]
        var problems: [FileProblem] = []
        var images = 0
        var totalBytes: Int64 = 0
        var unique = 0
        var duplicates = 0
        var gigapixels = 0.0
        var withGPS = 0
        var withCaptureTime = 0
        for entry in manifest.entries where !entry.missing {
            if entry.duplicateOf != nil { duplicates += 1 }
            guard entry.verdict == .ok, let type = entry.type else {
                problems.append(FileProblem(path: entry.path, verdict: entry.verdict, detail: entry.detail))
                problemsByVerdict[entry.verdict.rawValue, default: 0] += 1
                continue
            }
            images += 1
            if entry.exif?.gps != nil { withGPS += 1 }
            if entry.exif?.capturedAt != nil { withCaptureTime += 1 }
            byType[type.rawValue, default: 0] += 1
            totalBytes += entry.size
            if entry.duplicateOf == nil {
                unique += 1
                gigapixels += ScanReport.gigapixels(width: entry.width, height: entry.height)
            }
        }
        var report = ScanReport(
            root: manifest.source.root, manifest: "", manifestIsFallback: false, movedAside: nil, images: images,
            imagesByType: byType, totalBytes: totalBytes, uniqueImages: unique, duplicates: duplicates,
            // Whole pixels: a sum of products divided by 1e9 otherwise prints as 0.04976640000000003.
            gigapixels: (gigapixels * 1e9).rounded() / 1e9, problems: problems, problemsByVerdict: problemsByVerdict,
            otherFilesSkipped: otherSkipped, hiddenOrJunkSkipped: walk.hidden + walk.junk,
            symlinksSkipped: walk.symlinks.count, specialFilesSkipped: walk.special.count,
            unreadableFolders: walk.unreadableFolders, unreadableOtherFiles: walk.unreadableMembers + unreadableOther, filesHashed: hashed,
            filesReused: reused, bytesHashed: bytesHashed, missing: missing, seconds: 0)
        report.imagesWithGPS = withGPS
        report.imagesWithCaptureTime = withCaptureTime
        return report
    }
}

/// Counts bytes and files from the I/O threads and forwards snapshots to the progress sink.
final class ProgressCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var state: ScanProgress
    private let sink: (@Sendable (ScanProgress) -> Void)?

    init(root: String, filesTotal: Int, bytesTotal: Int64, sink: (@Sendable (ScanProgress) -> Void)?) {
        state = ScanProgress(root: root, filesDone: 0, filesTotal: filesTotal, bytesDone: 0, bytesTotal: bytesTotal)
        self.sink = sink
    }

    func addBytes(_ n: Int) {
        guard let sink else { return }
        let snapshot = lock.withLock { () -> ScanProgress in
            state.bytesDone += Int64(n)
            return state
        }
        sink(snapshot)
    }

    func fileDone() {
        guard let sink else { return }
        let snapshot = lock.withLock { () -> ScanProgress in
            state.filesDone += 1
            return state
        }
        sink(snapshot)
    }
}

/// Set once to make every read of a scan fail at its next chunk (cancellation, a failed checkpoint).
final class StopFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    var isSet: Bool { lock.withLock { value } }
    func set() { lock.withLock { value = true } }
}

/// Opens a tree's entries by their relative paths (what the inspector is handed).
struct TreeReading: FileReading {
    let tree: any SourceTree
    func open(_ path: String) throws(OSError) -> any ReadableFile { try tree.open(path) }
}

/// A `FileReading` whose opens and reads fail with ECANCELED once its flag is set, so a scan that
/// is stopped does not finish reading a 4 GB file first.
struct StoppableReading: FileReading {
    let base: any FileReading
    let stop: StopFlag

    func open(_ path: String) throws(OSError) -> any ReadableFile {
        if stop.isSet { throw OSError(ECANCELED, "open") }
        return StoppableFile(base: try base.open(path), stop: stop)
    }
}

final class StoppableFile: ReadableFile {
    let base: any ReadableFile
    let stop: StopFlag

    init(base: any ReadableFile, stop: StopFlag) {
        self.base = base
        self.stop = stop
    }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws(OSError) -> Int {
        if stop.isSet { throw OSError(ECANCELED, "read") }
        return try base.read(into: buffer)
    }

    func read(at offset: Int64, count: Int) throws(OSError) -> [UInt8] {
        if stop.isSet { throw OSError(ECANCELED, "read") }
        return try base.read(at: offset, count: count)
    }

    func stat() throws(OSError) -> FileStat { try base.stat() }
}

/// The last checkpoint `scanSource` saved (read after `update` throws).
final class CheckpointCount: @unchecked Sendable {
    private let lock = NSLock()
    private var value: ScanCheckpoint?
    var last: ScanCheckpoint? { lock.withLock { value } }
    func record(_ checkpoint: ScanCheckpoint) {
        var slim = checkpoint
        slim.manifest.entries = []
        lock.withLock { value = slim }
    }
}
