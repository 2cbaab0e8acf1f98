import Foundation

/// One scanned source: where its manifest is, the manifest as saved, and the report.
public struct ScannedSource: Sendable {
    public var manifestURL: URL
    public var manifest: Manifest
    public var report: ScanReport
}

/// Scans folders into their manifests. Commands (scan now, sync later) call this; they never
/// walk or hash themselves.
public struct ScanService: Sendable {
    public var store: ManifestStore
    public var inspector: FileInspector
    /// Realtime nanoseconds; injectable.
    public var now: @Sendable () -> Int64

    /// Re-hash a file whose mtime is within this much of the previous manifest's write time.
    ///
    /// Why: mtime has a granularity (2 s on FAT/exFAT, which camera SD cards use; a kernel tick on
    /// ext4). A file rewritten with the same size in the same tick as an earlier read keeps the same
    /// size, mtime and inode, so a stat comparison cannot see the change. Like git's "racily clean"
    /// index entries, we only trust stat data for files whose mtime is clearly older than the moment
    /// the manifest was written (`writtenAtNs`, taken just before the write): anything with
    /// `mtimeNs >= writtenAtNs - 2 s` is hashed again on the next scan.
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
                     jobs: Int = ScanService.defaultJobs,
                     progress: (@Sendable (ScanProgress) -> Void)? = nil) async throws -> [ScannedSource] {
        guard !paths.isEmpty else { throw AltiError(.usage, "give at least one folder to scan") }
        if manifestOverride != nil, paths.count > 1 {
            throw AltiError(.usage, "--manifest names one file, so it takes exactly one PATH (got \(paths.count))")
        }
        let roots = paths.map(Self.absolutePath)
        for root in roots {
            var st = stat()
            guard stat(root, &st) == 0 else {
                throw AltiError(.noInput, "\(root): \(OSError.current("stat").message)")
            }
            guard (st.st_mode & S_IFMT) == S_IFDIR else {
                throw AltiError(.noInput, "\(root) is not a folder; give the folder that holds the images")
            }
        }
        var results: [ScannedSource] = []
        for root in roots {
            results.append(try await scanSource(root: root, manifestOverride: manifestOverride, rebuild: rebuild,
                                                jobs: jobs, progress: progress))
        }
        return results
    }

    /// Locks, loads, scans and saves one source.
    public func scanSource(root: String, manifestOverride: String?, rebuild: Bool, jobs: Int,
                           progress: (@Sendable (ScanProgress) -> Void)?) async throws -> ScannedSource {
        let started = now()
        let location = store.locate(root: root, override: manifestOverride)
        let lock = try store.lock(location)
        defer { lock.release() }
        var previous: Manifest?
        var movedAside: String?
        let loaded: Result<Manifest?, AltiError> = Result { () throws(AltiError) -> Manifest? in
            if let found = try store.load(location.file) { return found }
            // First scan into the state folder of a card that has its own (now read-only) manifest:
            // start from it. It cannot be moved aside, so with --rebuild an unreadable one is ignored.
            guard let seed = location.seed else { return nil }
            if rebuild { return try? store.load(seed) }
            return try store.load(seed)
        }
        switch loaded {
        case .success(let manifest):
            previous = manifest
        case .failure(let error):
            guard error.kind == .dataError, rebuild else { throw error }
            movedAside = try store.moveAside(location.file, nowNs: now()).path
        }
        var (manifest, report) = try await update(previous: previous, root: root, rehashAll: rebuild, jobs: jobs,
                                                  progress: progress)
        manifest = try store.save(manifest, to: location.file, nowNs: now)
        report.manifest = location.file.path
        report.manifestIsFallback = location.isFallback
        report.movedAside = movedAside
        report.seconds = Double(now() - started) / 1e9
        return ScannedSource(manifestURL: location.file, manifest: manifest, report: report)
    }

    /// The engine without storage: walks `root`, reuses what `previous` knows, hashes the rest,
    /// merges. The caller holds the lock and saves. `rehashAll` ignores the stat shortcut (but keeps
    /// server facts and the remote).
    public func update(previous: Manifest?, root: String, rehashAll: Bool = false, jobs: Int = ScanService.defaultJobs,
                       progress: (@Sendable (ScanProgress) -> Void)? = nil) async throws -> (Manifest, ScanReport) {
        let walk = try TreeWalker.walk(root: root)
        let previousByPath = Dictionary((previous?.entries ?? []).map { ($0.path, $0) }, uniquingKeysWith: { a, _ in a })

        // 1. Reuse or inspect.
        var reused: [ManifestEntry] = []
        var toInspect: [WalkedFile] = []
        for file in walk.files {
            if !rehashAll, let old = previousByPath[file.path], let previous,
               Self.canReuse(old, file.stat, previousWrittenAtNs: previous.writtenAtNs) {
                var entry = old
                entry.missing = false
                reused.append(entry)
            } else {
                toInspect.append(file)
            }
        }

        // 2. Inspect in parallel (largest first, so one big file does not end up alone at the end).
        let inspections = await inspectAll(toInspect, root: root, jobs: jobs, progress: progress)

        // 3. Turn inspections into entries.
        var entries = reused
        var otherSkipped = 0
        var unreadableOther: [PathProblem] = []
        var bytesHashed: Int64 = 0
        var hashed = 0
        for (file, inspection) in zip(toInspect, inspections) {
            bytesHashed += inspection.bytesHashed
            if inspection.sha1 != nil { hashed += 1 }
            let named = ImageSniffer.hasImageExtension(file.name)
            var verdict = inspection.verdict
            var detail = inspection.detail
            switch verdict {
            case nil:
                guard named else { otherSkipped += 1; continue }
                verdict = .notAnImage
                detail = "named as an image, but the content is not JPEG, PNG or TIFF"
            case .empty?:
                guard named else { otherSkipped += 1; continue }
            case .unreadable?:
                guard named || ImageSniffer.hasNoExtension(file.name) else {
                    unreadableOther.append(PathProblem(path: file.path, detail: detail ?? "unreadable"))
                    continue
                }
            default:
                break
            }
            let st = inspection.stat ?? file.stat
            entries.append(ManifestEntry(
                path: file.path, size: max(st.size, 0), mtimeNs: st.mtimeNs, inode: st.inode,
                sha1: inspection.sha1, type: inspection.type, width: inspection.width, height: inspection.height,
                verdict: verdict ?? .notAnImage, detail: detail))
        }

        // 4. Entries of files that are gone (or no longer images) stay, marked missing.
        let present = Set(entries.map(\.path))
        var missingCount = 0
        for old in previous?.entries ?? [] where !present.contains(old.path) {
            var entry = old
            entry.missing = true
            entry.duplicateOf = nil
            entries.append(entry)
            missingCount += 1
        }

        // 5. Server facts belong to a checksum: a new or renamed path inherits them from any entry
        //    (missing or not) with the same sha1; the most recently checked facts win.
        var factsBySHA1: [String: ServerFacts] = [:]
        for old in previous?.entries ?? [] {
            guard let sha1 = old.sha1, let server = old.server else { continue }
            if let known = factsBySHA1[sha1], known.checkedAt >= server.checkedAt { continue }
            factsBySHA1[sha1] = server
        }
        for index in entries.indices {
            entries[index].server = entries[index].sha1.flatMap { factsBySHA1[$0] }
        }

        var manifest = Manifest(root: root, remote: previous?.remote ?? Manifest.Remote(), entries: entries,
                                writtenAtNs: previous?.writtenAtNs ?? 0)
        manifest.normalize()

        let report = Self.report(manifest: manifest, walk: walk, otherSkipped: otherSkipped,
                                 unreadableOther: unreadableOther, hashed: hashed, reused: reused.count,
                                 bytesHashed: bytesHashed, missing: missingCount)
        return (manifest, report)
    }

    /// The stat shortcut: same size, mtime and inode, a usable earlier verdict, and not racy.
    public static func canReuse(_ old: ManifestEntry, _ stat: FileStat, previousWrittenAtNs: Int64) -> Bool {
        guard !old.missing, old.verdict != .unreadable,
              old.size == stat.size, old.mtimeNs == stat.mtimeNs, old.inode == stat.inode
        else { return false }
        if old.sha1 == nil, old.verdict != .notAnImage, old.verdict != .empty { return false }
        return stat.mtimeNs < previousWrittenAtNs - racyWindowNs
    }

    // MARK: Parallel inspection

    /// Blocking reads run on this queue, not on Swift's cooperative pool: a thread blocked in
    /// `read` would otherwise take one of only `cores` pool threads away from everything else.
    private static let ioQueue = DispatchQueue(label: "alti.scan.io", attributes: .concurrent)

    private func inspectAll(_ files: [WalkedFile], root: String, jobs: Int,
                            progress: (@Sendable (ScanProgress) -> Void)?) async -> [Inspection] {
        guard !files.isEmpty else { return [] }
        let order = files.indices.sorted { files[$0].stat.size > files[$1].stat.size }
        let counter = ProgressCounter(root: root, filesTotal: files.count,
                                      bytesTotal: files.reduce(0) { $0 + max($1.stat.size, 0) }, sink: progress)
        let inspector = self.inspector
        var results = [Inspection?](repeating: nil, count: files.count)
        await withTaskGroup(of: (Int, Inspection).self) { group in
            var next = 0
            func add() {
                let index = order[next]
                let path = root + "/" + files[index].path
                next += 1
                group.addTask {
                    let result = await withCheckedContinuation { (continuation: CheckedContinuation<Inspection, Never>) in
                        Self.ioQueue.async {
                            continuation.resume(returning: inspector.inspect(path: path) { counter.addBytes($0) })
                        }
                    }
                    return (index, result)
                }
            }
            while next < min(max(1, jobs), files.count) { add() }
            for await (index, result) in group {
                results[index] = result
                counter.fileDone()
                if next < files.count { add() }
            }
        }
        return results.map { $0! }
    }

    static func absolutePath(_ path: String) -> String {
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
        for entry in manifest.entries where !entry.missing {
            if entry.duplicateOf != nil { duplicates += 1 }
            guard entry.verdict == .ok, let type = entry.type else {
                problems.append(FileProblem(path: entry.path, verdict: entry.verdict, detail: entry.detail))
                problemsByVerdict[entry.verdict.rawValue, default: 0] += 1
                continue
            }
            images += 1
            byType[type.rawValue, default: 0] += 1
            totalBytes += entry.size
            if entry.duplicateOf == nil {
                unique += 1
                gigapixels += ScanReport.gigapixels(width: entry.width, height: entry.height)
            }
        }
        return ScanReport(
            root: manifest.source.root, manifest: "", manifestIsFallback: false, movedAside: nil, images: images,
            imagesByType: byType, totalBytes: totalBytes, uniqueImages: unique, duplicates: duplicates,
            gigapixels: gigapixels, problems: problems, problemsByVerdict: problemsByVerdict,
            otherFilesSkipped: otherSkipped, hiddenOrJunkSkipped: walk.hidden + walk.junk,
            symlinksSkipped: walk.symlinks.count, specialFilesSkipped: walk.special,
            unreadableFolders: walk.unreadableFolders, unreadableOtherFiles: unreadableOther, filesHashed: hashed,
            filesReused: reused, bytesHashed: bytesHashed, missing: missing, seconds: 0)
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
