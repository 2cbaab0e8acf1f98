import AltiCore
import AltiCrypto
import AltiTestSupport
import Foundation
import Testing

/// Checkpoints of long scans, cancellation, and the per-file racy rule (`hashedAtNs`).
@Suite("Scan checkpoints and the per-file racy rule")
struct ScanCheckpointTests {
    /// Collects what a checkpoint closure saw (called from the scanning task only; locked anyway).
    final class Seen: @unchecked Sendable {
        private let lock = NSLock()
        private var items: [ScanCheckpoint] = []
        func add(_ c: ScanCheckpoint) { lock.withLock { items.append(c) } }
        var all: [ScanCheckpoint] { lock.withLock { items } }
    }

    /// `n` distinct JPEGs of different sizes, aged so the racy rule does not apply.
    func tree(_ label: String, files n: Int) throws -> TempTree {
        let tree = try TempTree(label)
        for i in 0..<n {
            try tree.write("d\(i % 4)/img\(String(format: "%03d", i)).jpg",
                           ScanFixtures.jpeg(width: 100 + i, height: 80, body: 2_000 + i * 3_001, seed: UInt8(i % 251)))
        }
        try tree.ageAllFiles()
        return tree
    }

    /// Every entry with a sha1 matches the file on disk now: content hash and stat facts belong together.
    func expectTrue(_ manifest: Manifest, _ tree: TempTree, sourceLocation: SourceLocation = #_sourceLocation) throws {
        for entry in manifest.entries where entry.sha1 != nil {
            let bytes = try tree.read(entry.path)
            #expect(entry.sha1 == Digest.sha1Hex(bytes), "\(entry.path)", sourceLocation: sourceLocation)
            var st = stat()
            #expect(lstat(tree.path(entry.path), &st) == 0)
            #expect(entry.size == Int64(st.st_size), "\(entry.path)", sourceLocation: sourceLocation)
            #expect(entry.inode == UInt64(st.st_ino), "\(entry.path)", sourceLocation: sourceLocation)
            #expect(entry.mtimeNs == Int64(st.st_mtim.tv_sec) * 1_000_000_000 + Int64(st.st_mtim.tv_nsec),
                    "\(entry.path)", sourceLocation: sourceLocation)
            #expect(entry.hashedAtNs != nil, "\(entry.path)", sourceLocation: sourceLocation)
        }
    }

    @Test func aCancelledScanKeepsWhatItsCheckpointSavedAndTheNextScanHashesOnlyTheRest() async throws {
        let tree = try tree("ckpt-cancel", files: 50)
        var service = ScanService()
        service.checkpointInterval = .zero
        let url = tree.url("state/manifest.json")
        let seen = Seen()
        // Its own task: the checkpoint closure cancels the task it runs in (Ctrl-C once ten files are done).
        let scan = Task {
            try await service.update(previous: nil, root: tree.path, jobs: 2, checkpoint: { checkpoint in
                try ManifestStore().save(checkpoint.manifest, to: url)
                seen.add(checkpoint)
                if checkpoint.filesHashed >= 10 { withUnsafeCurrentTask { $0?.cancel() } }
            })
        }
        await #expect(throws: CancellationError.self) { _ = try await scan.value }
        let checkpoints = seen.all
        #expect(checkpoints.count >= 10)  // one per newly hashed file (interval 0) ...
        #expect(zip(checkpoints, checkpoints.dropFirst()).allSatisfy { $0.filesHashed < $1.filesHashed })  // ... never without one
        let saved = try #require(try ManifestStore().load(url))
        let k = saved.entries.count
        #expect(k == checkpoints.last?.filesHashed)
        #expect(k >= 10 && k < 50, "the scan went on after the cancel: \(k) files")
        #expect(saved.entries.allSatisfy { $0.sha1 != nil && $0.verdict == .ok })
        try expectTrue(saved, tree)
        #expect(try ManifestSchema.errors([url.path]) == [])

        let (next, report) = try await ScanService().update(previous: saved, root: tree.path, jobs: 2)
        #expect(report.filesReused == k)
        #expect(report.filesHashed == 50 - k)
        #expect(next.entries.count == 50)
        try expectTrue(next, tree)
    }

    @Test func cancellingScanThrowsScanInterruptedAfterSavingUnderTheLock() async throws {
        let tree = try tree("ckpt-scan", files: 50)
        let service = ScanService()  // default interval: the only save is the one on cancellation
        let holder = TaskHolder()
        let task = Task {
            try await service.scan(paths: [tree.path], jobs: 2, progress: { p in
                if p.filesDone >= 12 { holder.cancel() }
            })
        }
        holder.set(task)
        do {
            _ = try await task.value
            Issue.record("the cancelled scan finished")
        } catch let stopped as ScanInterrupted {
            let manifestPath = tree.path(".alti/manifest.json")
            #expect(stopped.manifest == manifestPath)
            #expect(stopped.filesToExamine == 50)
            let saved = try #require(try ManifestStore().load(URL(fileURLWithPath: manifestPath)))
            #expect(stopped.filesHashed == saved.entries.count)
            #expect(stopped.filesHashed >= 12 && stopped.filesHashed < 50)
            try expectTrue(saved, tree)
            // The lock was released: the next scan can take it, and continues.
            let next = try #require(try await ScanService().scan(paths: [tree.path], jobs: 2).first)
            #expect(next.report.filesReused == stopped.filesHashed)
            #expect(next.report.filesHashed == 50 - stopped.filesHashed)
        }
    }

    @Test func checkpointsCarryOldEntriesAsTheyWereAndLeaveUnseenFilesOut() async throws {
        let tree = try tree("ckpt-merge", files: 30)
        let first = try await ScanService().update(previous: nil, root: tree.path, jobs: 2).0
        var previous = try ManifestStore().save(first, to: tree.url("m.json"))
        // Pretend an older build wrote it: no per-entry read time.
        for index in previous.entries.indices { previous.entries[index].hashedAtNs = nil }
        let old = Dictionary(uniqueKeysWithValues: previous.entries.map { ($0.path, $0) })
        // 10 files are touched (so they are re-read), 20 new ones appear.
        let touched = previous.entries.prefix(10).map(\.path)
        for path in touched { try tree.setMtime(path, ns: 1_600_000_000_000_000_000) }
        for i in 0..<20 {
            try tree.write("new/n\(i).jpg", ScanFixtures.jpeg(width: 50, height: 50, body: 500 + i * 997, seed: UInt8(100 + i)))
            try tree.setMtime("new/n\(i).jpg", ns: 1_650_000_000_000_000_000)
        }
        let started = RFC3339.nowNanoseconds()
        var service = ScanService()
        service.checkpointInterval = .zero
        let seen = Seen()
        let (final, report) = try await service.update(previous: previous, root: tree.path, jobs: 1,
                                                       checkpoint: { seen.add($0) })
        #expect(report.filesHashed == 30)  // 10 touched + 20 new
        #expect(report.filesReused == 20)
        let checkpoints = seen.all
        #expect(!checkpoints.isEmpty)
        for checkpoint in checkpoints {
            let m = checkpoint.manifest
            let hashedNow = m.entries.filter { ($0.hashedAtNs ?? 0) >= started }
            #expect(hashedNow.count == checkpoint.filesHashed)
            for entry in m.entries {
                if let before = old[entry.path], (entry.hashedAtNs ?? 0) < started {
                    // Not examined yet: exactly as before, with the old manifest's write time as its read time.
                    var expected = before
                    expected.hashedAtNs = previous.writtenAtNs
                    expected.duplicateOf = entry.duplicateOf
                    #expect(entry == expected)
                } else {
                    #expect(entry.hashedAtNs ?? 0 >= started, "\(entry.path) was never hashed but has an entry")
                }
            }
            // Every old path is there; a new path only once hashed.
            #expect(Set(old.keys).isSubset(of: Set(m.entries.map(\.path))))
            #expect(m.entries.count == 30 + hashedNow.filter { $0.path.hasPrefix("new/") }.count)
        }
        #expect(final.entries.count == 50)
        try expectTrue(final, tree)
    }

    @Test func aFailingCheckpointStopsTheScan() async throws {
        let tree = try tree("ckpt-fail", files: 10)
        var service = ScanService()
        service.checkpointInterval = .zero
        await #expect(throws: AltiError(.cannotWrite, "disk full")) {
            _ = try await service.update(previous: nil, root: tree.path, jobs: 1,
                                         checkpoint: { _ in throw AltiError(.cannotWrite, "disk full") })
        }
    }

    /// The per-file racy rule: a file read at T1 and rewritten (same size, mtime put back to the
    /// same tick) right after, in a manifest written long after T1. The manifest-level rule alone
    /// (`mtime >= writtenAtNs - 2 s`) would trust it; `hashedAtNs` does not.
    @Test func aSameTickRewriteAfterTheReadIsRehashedEvenWhenTheManifestIsWrittenMuchLater() async throws {
        let tree = try TempTree("racy-file")
        try tree.write("old.jpg", ScanFixtures.jpeg(width: 10, height: 10, seed: 1))
        try tree.ageAllFiles()
        let original = ScanFixtures.jpeg(width: 10, height: 10, seed: 2)
        let path = try tree.write("fresh.jpg", original)
        let second = RFC3339.nowNanoseconds() / 1_000_000_000 * 1_000_000_000
        try tree.setMtime("fresh.jpg", ns: second)
        // Read "a tenth of a second" into the file's tick; the manifest written ten minutes later.
        let (scanned, _) = try await ScanService(now: { second + 100_000_000 }).update(previous: nil, root: tree.path, jobs: 1)
        let url = tree.url("m.json")
        let saved = try ManifestStore().save(scanned, to: url, nowNs: { second + 600_000_000_000 })
        let before = try #require(saved.entry(at: "fresh.jpg"))
        #expect(before.hashedAtNs == second + 100_000_000)
        #expect(before.mtimeNs < saved.writtenAtNs - ScanService.racyWindowNs)  // the old rule would reuse it

        let changed = try ScanFixtures.rewriteKeepingStat(tree, "fresh.jpg", original: original, mtimeNs: second)
        var st = stat()
        _ = lstat(path, &st)
        #expect(UInt64(st.st_ino) == before.inode && Int64(st.st_size) == before.size)

        let loaded = try #require(try ManifestStore().load(url))
        let (next, report) = try await ScanService(now: { second + 700_000_000_000 }).update(previous: loaded, root: tree.path)
        #expect(report.filesHashed == 1)  // fresh.jpg
        #expect(report.filesReused == 1)  // old.jpg: mtime an hour before its read
        #expect(next.entry(at: "fresh.jpg")?.sha1 == Digest.sha1Hex(changed))
        #expect(next.entry(at: "old.jpg") == saved.entry(at: "old.jpg"))

        // Now read ten minutes after its mtime: clearly clean, reused from then on.
        let third = try await ScanService(now: { second + 800_000_000_000 }).update(previous: next, root: tree.path).1
        #expect(third.filesHashed == 0)
        #expect(third.filesReused == 2)
    }

    @Test func canReuseUsesTheEntrysReadTimeElseTheManifestsWriteTime() {
        let m: Int64 = 1_700_000_000_000_000_000
        let stat = FileStat(size: 10, mtimeNs: m, inode: 7)
        func entry(_ hashedAt: Int64?) -> ManifestEntry {
            ManifestEntry(path: "a.jpg", size: 10, mtimeNs: m, inode: 7, sha1: String(repeating: "a", count: 40),
                          type: .jpeg, width: 1, height: 1, verdict: .ok, detail: nil, hashedAtNs: hashedAt)
        }
        let late = m + 3_600_000_000_000
        // hashedAtNs decides, whatever the manifest's write time.
        #expect(ScanService.canReuse(entry(m + 2_000_000_001), stat, previousWrittenAtNs: 0))
        #expect(!ScanService.canReuse(entry(m + 2_000_000_000), stat, previousWrittenAtNs: late))
        #expect(!ScanService.canReuse(entry(m + 1_000_000_000), stat, previousWrittenAtNs: late))
        // Without it (an older manifest): the manifest's write time.
        #expect(ScanService.canReuse(entry(nil), stat, previousWrittenAtNs: m + 2_000_000_001))
        #expect(!ScanService.canReuse(entry(nil), stat, previousWrittenAtNs: m + 1_999_999_999))
    }

    /// A manifest of the previous build (no hashedAtNs anywhere) still validates and decodes; a scan
    /// keeps its racy entries racy even after a checkpoint saved with a much later writtenAtNs.
    @Test func olderManifestsDecodeValidateAndStayRacyAcrossACheckpoint() async throws {
        let tree = try TempTree("legacy")
        for i in 0..<3 {
            try tree.write("big\(i).jpg", ScanFixtures.jpeg(width: 20, height: 20, body: 50_000 + i * 1000, seed: UInt8(i)))
        }
        try tree.ageAllFiles()
        let content = ScanFixtures.jpeg(width: 10, height: 10, seed: 9)
        let path = try tree.write("f.jpg", content)  // the smallest: hashed last
        let second = RFC3339.nowNanoseconds() / 1_000_000_000 * 1_000_000_000
        try tree.setMtime("f.jpg", ns: second)
        var st = stat()
        #expect(lstat(path, &st) == 0)
        // Written by the previous build half a second into f.jpg's tick, from a version of f.jpg that
        // was rewritten (same size, same tick) after it was read.
        var stale = content
        stale[stale.count - 3] ^= 0x11
        let legacy = """
            {
              "entries" : [
                {
                  "detail" : null,
                  "duplicateOf" : null,
                  "height" : 10,
                  "inode" : \(st.st_ino),
                  "missing" : false,
                  "mtimeNs" : \(second),
                  "path" : "f.jpg",
                  "server" : null,
                  "sha1" : "\(Digest.sha1Hex(stale))",
                  "size" : \(content.count),
                  "type" : "JPEG",
                  "verdict" : "ok",
                  "width" : 10
                }
              ],
              "generator" : "alti 0.1.0",
              "remote" : {"bucket" : "", "cloud" : "", "endpoint" : "", "projectID" : ""},
              "schemaVersion" : 1,
              "source" : {"kind" : "folder", "root" : "\(tree.path)"},
              "writtenAt" : "\(RFC3339.string(fromNanoseconds: second + 500_000_000))",
              "writtenAtNs" : \(second + 500_000_000)
            }

            """
        let url = URL(fileURLWithPath: try tree.write("state/manifest.json", legacy))
        #expect(try ManifestSchema.errors([url.path]) == [])
        let previous = try #require(try ManifestStore().load(url))
        #expect(previous.entries.first?.hashedAtNs == nil)

        // A scan checkpoints (ten minutes later by its clock) and is stopped before f.jpg is read.
        var service = ScanService(now: { second + 600_000_000_000 })
        service.checkpointInterval = .zero
        let scan = Task {
            try await service.update(previous: previous, root: tree.path, jobs: 1, checkpoint: { checkpoint in
                try ManifestStore().save(checkpoint.manifest, to: url, nowNs: { second + 600_000_000_000 })
                withUnsafeCurrentTask { $0?.cancel() }
            })
        }
        await #expect(throws: CancellationError.self) { _ = try await scan.value }
        let checkpointed = try #require(try ManifestStore().load(url))
        #expect(checkpointed.writtenAtNs == second + 600_000_000_000)
        let carried = try #require(checkpointed.entry(at: "f.jpg"))
        #expect(carried.sha1 == Digest.sha1Hex(stale))  // not examined: as it was ...
        #expect(carried.hashedAtNs == second + 500_000_000)  // ... with its racy reference kept
        #expect(try ManifestSchema.errors([url.path]) == [])

        let (next, report) = try await ScanService().update(previous: checkpointed, root: tree.path, jobs: 1)
        #expect(next.entry(at: "f.jpg")?.sha1 == Digest.sha1Hex(content))
        #expect(report.filesHashed == 4 - checkpointed.entries.filter { $0.path.hasPrefix("big") }.count)
        #expect(report.filesReused == checkpointed.entries.filter { $0.path.hasPrefix("big") }.count)
    }

    @Test func fastWriterStaysByteIdenticalWithHashedAtNs() throws {
        var m = Manifest(root: "/r", writtenAtNs: 1_700_000_000_123_456_789)
        for (i, value) in [Int64?.none, 0, -1, Int64.max, Int64.min, 1_700_000_000_000_000_001].enumerated() {
            m.entries.append(ManifestEntry(path: "p\(i).jpg", size: 1, mtimeNs: 2, inode: 3, sha1: nil, type: nil, width: nil,
                                           height: nil, verdict: .notAnImage, detail: "x", hashedAtNs: value))
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        var reference = try encoder.encode(m)
        reference.append(0x0A)
        let fast = try ManifestStore.encode(m)
        #expect(String(decoding: fast, as: UTF8.self) == String(decoding: reference, as: UTF8.self))
        #expect(try ManifestStore.decode(fast, file: "x") == m)
        #expect(String(decoding: fast, as: UTF8.self).contains("\"hashedAtNs\" : null,"))  // explicit null
    }
}

/// A task to cancel from a callback that may run before the task handle is stored.
final class TaskHolder: @unchecked Sendable {
    private let lock = NSLock()
    private var task: Task<[ScannedSource], any Error>?
    private var cancelled = false

    func set(_ task: Task<[ScannedSource], any Error>) {
        if lock.withLock({ self.task = task; return cancelled }) { task.cancel() }
    }

    func cancel() {
        lock.withLock { () -> Task<[ScannedSource], any Error>? in cancelled = true; return task }?.cancel()
    }
}
