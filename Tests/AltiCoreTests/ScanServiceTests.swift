import AltiCore
import AltiCrypto
import AltiTestSupport
import Foundation
import Testing

/// The scan engine on real temporary trees.
@Suite("ScanService on temporary trees")
struct ScanServiceTests {
    func scan(_ tree: TempTree, service: ScanService = ScanService(), rebuild: Bool = false,
              jobs: Int = 4) async throws -> ScannedSource {
        let sources = try await service.scan(paths: [tree.path], rebuild: rebuild, jobs: jobs)
        return try #require(sources.first)
    }

    func sha1sum(_ paths: [String]) throws -> [String: String] {
        let r = try Run.process("sha1sum", paths)
        #expect(r.exitCode == 0, "sha1sum failed: \(r.stderr)")
        var out: [String: String] = [:]
        for line in r.stdout.split(separator: "\n") {
            let parts = line.split(separator: " ", maxSplits: 1)
            out[String(parts[1].drop { $0 == " " || $0 == "*" })] = String(parts[0])
        }
        return out
    }

    @Test func sampleSurveyChecksumsEqualSha1sum() async throws {
        let tree = try TempTree("sample")
        try tree.copy(ScanFixtures.sampleSurvey, to: "survey")
        let result = try await scan(tree)
        let images = result.manifest.entries
        #expect(images.count == 24)
        let expected = try sha1sum(images.map { tree.path($0.path) })
        for entry in images {
            #expect(entry.sha1 == expected[tree.path(entry.path)], "\(entry.path)")
            #expect(entry.type == .jpeg)
            #expect(entry.width == 800 && entry.height == 600)
            #expect(entry.verdict == .ok)
            #expect(entry.detail == nil)
        }
        #expect(images.map(\.path).first == "survey/flight1/DJI_0001.JPG")
        #expect(result.report.images == 24)
        #expect(result.report.imagesByType == ["JPEG": 24])
        #expect(result.report.filesHashed == 24)
        #expect(result.report.bytesHashed == images.reduce(0) { $0 + $1.size })
        #expect(abs(result.report.gigapixels - 24 * 0.0020736) < 1e-12)
    }

    @Test func typesByContentNotByName() async throws {
        let tree = try TempTree("types")
        try tree.write("a/upper.JPG", ScanFixtures.jpeg(width: 100, height: 50))
        try tree.write("a/long.jpeg", ScanFixtures.jpeg(width: 101, height: 51, seed: 2))
        try tree.write("a/DJI_0007", ScanFixtures.jpeg(width: 102, height: 52, seed: 3))
        try tree.write("b/really-a-png.jpg", ScanFixtures.png(width: 640, height: 480))
        try tree.write("b/scan.tif", ScanFixtures.tiff(width: 300, height: 200, littleEndian: false, long: true))
        try tree.write("b/text.jpg", "this is not a JPEG at all")
        try tree.write("b/jpeg-inside.txt", ScanFixtures.jpeg(width: 103, height: 53, seed: 4))
        try tree.write("b/notes.txt", "flight log")
        try tree.write("b/gcp.csv", "id,x,y\n")
        let result = try await scan(tree)
        func entry(_ path: String) throws -> ManifestEntry { try #require(result.manifest.entry(at: path), "\(path)") }
        #expect(try entry("a/upper.JPG").type == .jpeg)
        #expect(try entry("a/long.jpeg").width == 101)
        #expect(try entry("a/DJI_0007").height == 52)
        #expect(try entry("b/really-a-png.jpg").type == .png)
        #expect(try entry("b/scan.tif").type == .tiff)
        #expect(try entry("b/scan.tif").width == 300)
        #expect(try entry("b/jpeg-inside.txt").type == .jpeg)
        let text = try entry("b/text.jpg")
        #expect(text.verdict == .notAnImage)
        #expect(text.sha1 == nil)
        #expect(result.manifest.entry(at: "b/notes.txt") == nil)
        #expect(result.manifest.entry(at: "b/gcp.csv") == nil)
        #expect(result.report.otherFilesSkipped == 2)
        #expect(result.report.imagesByType == ["JPEG": 4, "PNG": 1, "TIFF": 1])
    }

    @Test func hiddenJunkAndSymlinksAreLeftAlone() async throws {
        let tree = try TempTree("skip")
        let outside = try TempTree("outside")
        try outside.write("secret.jpg", ScanFixtures.jpeg(width: 9, height: 9))
        try tree.write("src/in.jpg", ScanFixtures.jpeg(width: 10, height: 10))
        try tree.write("src/.hidden.jpg", ScanFixtures.jpeg(width: 11, height: 11))
        try tree.write("src/.cache/x.jpg", ScanFixtures.jpeg(width: 12, height: 12))
        try tree.write("src/.DS_Store", [0, 0, 0, 1])
        try tree.write("src/._in.jpg", [0, 5, 22, 7])
        try tree.write("src/Thumbs.db", ScanFixtures.jpeg(width: 13, height: 13))
        try tree.symlink("src/out.jpg", to: outside.path("secret.jpg"))
        try tree.symlink("src/outdir", to: outside.path)
        try tree.symlink("src/loop", to: "..")
        try tree.symlink("src/alias.jpg", to: "in.jpg")
        let result = try await scan(tree)
        #expect(result.manifest.entries.map(\.path) == ["src/in.jpg"])
        #expect(result.report.symlinksSkipped == 4)
        // .hidden.jpg, .cache, .DS_Store, ._in.jpg, .alti (the manifest's own folder) + Thumbs.db
        #expect(result.report.hiddenOrJunkSkipped == 6)
        #expect(try outside.files() == ["secret.jpg"])  // nothing was written outside PATH
    }

    @Test func emptyTruncatedCorruptAndNotImageHaveReasons() async throws {
        let tree = try TempTree("verdicts")
        try tree.write("empty.jpg", [UInt8]())
        try tree.write("empty.txt", [UInt8]())
        try tree.write("cut.jpg", Array(ScanFixtures.jpeg(width: 10, height: 10, body: 500).dropLast(100)))
        try tree.write("padded.jpg", ScanFixtures.jpeg(width: 10, height: 10, zeroPadding: 512))
        try tree.write("cut.png", ScanFixtures.png(width: 10, height: 10, iend: false))
        try tree.write("headless.jpg", Array(ScanFixtures.jpeg(width: 10, height: 10).prefix(30)))
        try tree.write("noframe.jpg", [0xFF, 0xD8, 0xFF, 0xDA, 0x00, 0x02, 0x11, 0xFF, 0xD9])
        try tree.write("words.png", "PNG? no")
        let m = try await scan(tree).manifest
        func verdict(_ p: String) -> Verdict? { m.entry(at: p)?.verdict }
        #expect(verdict("empty.jpg") == .empty)
        #expect(m.entry(at: "empty.jpg")?.detail == "the file is empty")
        #expect(m.entry(at: "empty.txt") == nil)
        #expect(verdict("cut.jpg") == .truncated)
        #expect(m.entry(at: "cut.jpg")?.detail?.contains("FF D9") == true)
        #expect(m.entry(at: "cut.jpg")?.sha1 != nil)  // still hashed: it is an image file, just a bad one
        #expect(verdict("padded.jpg") == .ok)
        #expect(verdict("cut.png") == .truncated)
        #expect(m.entry(at: "cut.png")?.detail?.contains("IEND") == true)
        #expect(verdict("headless.jpg") == .truncated)
        #expect(verdict("noframe.jpg") == .corrupt)
        #expect(verdict("words.png") == .notAnImage)
    }

    @Test func unreadableFilesCarryTheOSError() async throws {
        let tree = try TempTree("unreadable")
        try tree.write("locked.jpg", ScanFixtures.jpeg(width: 10, height: 10))
        try tree.write("DJI_0002", ScanFixtures.jpeg(width: 10, height: 10, seed: 9))
        try tree.write("bad-disk.jpg", ScanFixtures.jpeg(width: 10, height: 10, body: 300, seed: 5))
        try tree.write("log.txt", "x")
        try tree.write("fine.jpg", ScanFixtures.jpeg(width: 10, height: 10, seed: 7))
        try tree.ageAllFiles()
        let faulty = FaultyReading(failOpen: ["locked.jpg": EACCES, "DJI_0002": EACCES, "log.txt": EACCES],
                                   failRead: ["bad-disk.jpg": EIO])
        let result = try await scan(tree, service: ScanService(inspector: FileInspector(reader: faulty)))
        let m = result.manifest
        #expect(m.entry(at: "locked.jpg")?.verdict == .unreadable)
        #expect(m.entry(at: "locked.jpg")?.detail == "open: Permission denied (errno 13)")
        #expect(m.entry(at: "DJI_0002")?.verdict == .unreadable)  // extension-less: could be an image
        #expect(m.entry(at: "bad-disk.jpg")?.verdict == .unreadable)
        #expect(m.entry(at: "bad-disk.jpg")?.detail == "read: Input/output error (errno 5) at offset 64")
        #expect(m.entry(at: "bad-disk.jpg")?.sha1 == nil)
        #expect(m.entry(at: "log.txt") == nil)
        #expect(result.report.unreadableOtherFiles == [PathProblem(path: "log.txt", detail: "open: Permission denied (errno 13)")])
        #expect(m.entry(at: "fine.jpg")?.verdict == .ok)
        #expect(result.report.problemsByVerdict == ["unreadable": 3])
        #expect(!result.report.nothingReadable)
        // An unreadable file is tried again on the next scan (its stat facts are not trusted).
        let again = try await scan(tree, service: ScanService(inspector: FileInspector(reader: faulty)))
        #expect(again.report.filesReused == 1)  // fine.jpg only
    }

    @Test func nothingReadableIsFlagged() async throws {
        let tree = try TempTree("dead")
        try tree.write("a.jpg", ScanFixtures.jpeg(width: 10, height: 10))
        let faulty = FaultyReading(failOpen: ["a.jpg": EIO])
        let result = try await scan(tree, service: ScanService(inspector: FileInspector(reader: faulty)))
        #expect(result.report.nothingReadable)
    }

    @Test func rescanWithNothingChangedHashesNothing() async throws {
        let tree = try TempTree("rescan")
        try tree.copy(ScanFixtures.sampleSurvey, to: "survey")
        try tree.write("survey/x.txt", "other")
        try tree.write("survey/bad.jpg", "not an image")
        try tree.ageAllFiles()
        let first = try await scan(tree)
        #expect(first.report.filesHashed == 24)
        let second = try await scan(tree)
        #expect(second.report.filesHashed == 0)
        #expect(second.report.bytesHashed == 0)
        #expect(second.report.filesReused == 25)  // 24 images + bad.jpg (notAnImage, unchanged)
        #expect(second.manifest.entries == first.manifest.entries)
        // Touching one file (new mtime) re-hashes exactly that one.
        try tree.setMtime("survey/flight2/DJI_0013.JPG", ns: 1_600_000_000_000_000_000)
        let third = try await scan(tree)
        #expect(third.report.filesHashed == 1)
    }

    /// A re-scan that finds nothing new leaves the manifest file as it is (no encode, no write, no
    /// fsync: most of a no-change re-scan at 100,000 files), and one that finds a change writes it.
    /// Counted by the file itself: every save renames a new file into place (a new inode).
    @Test func rescanWithNothingChangedDoesNotRewriteTheManifest() async throws {
        let tree = try TempTree("rescan-no-write")
        try tree.copy(ScanFixtures.sampleSurvey, to: "survey")
        try tree.ageAllFiles()
        let first = try await scan(tree)
        let file = first.manifestURL.path
        let bytes = try tree.read(".alti/manifest.json")
        var before = stat()
        #expect(lstat(file, &before) == 0)

        let second = try await scan(tree)
        #expect(second.report.filesHashed == 0)
        #expect(second.report.filesReused == 24)
        #expect(second.manifest == first.manifest)
        var after = stat()
        #expect(lstat(file, &after) == 0)
        #expect(after.st_ino == before.st_ino, "the manifest was written again")
        #expect(try tree.read(".alti/manifest.json") == bytes)

        // One touched file: hashed again, and the manifest is written (a new file renamed in).
        try tree.setMtime("survey/flight2/DJI_0013.JPG", ns: 1_600_000_000_000_000_000)
        let third = try await scan(tree)
        #expect(third.report.filesHashed == 1)
        var written = stat()
        #expect(lstat(file, &written) == 0)
        #expect(written.st_ino != before.st_ino, "a changed scan was not written")
        #expect(try ManifestStore().load(first.manifestURL) == third.manifest)
    }

    /// A manifest written before `hashedAtNs` existed is written again by a re-scan that hashes
    /// nothing: its entries gain their racy-check reference, which must reach the file.
    @Test func rescanOfAnOlderManifestWritesTheFilledInFacts() async throws {
        let tree = try TempTree("rescan-older")
        try tree.copy(ScanFixtures.sampleSurvey, to: "survey")
        try tree.ageAllFiles()
        let first = try await scan(tree)
        var older = first.manifest
        for index in older.entries.indices { older.entries[index].hashedAtNs = nil }
        try ManifestStore().save(older, to: first.manifestURL, nowNs: { first.manifest.writtenAtNs })
        let second = try await scan(tree)
        #expect(second.report.filesHashed == 0)
        let reloaded = try #require(try ManifestStore().load(first.manifestURL))
        #expect(reloaded.entries.allSatisfy { $0.hashedAtNs == first.manifest.writtenAtNs })
    }

    /// The racy-clean case: a file rewritten with the same size, keeping its mtime and inode, in the
    /// same timestamp tick as the manifest write. Only the racy guard can catch it.
    @Test func sameSizeRewriteInTheManifestsSecondIsRehashed() async throws {
        let tree = try TempTree("racy")
        try tree.write("old.jpg", ScanFixtures.jpeg(width: 10, height: 10, seed: 1))
        try tree.ageAllFiles()
        let original = ScanFixtures.jpeg(width: 10, height: 10, seed: 2)
        let path = try tree.write("fresh.jpg", original)
        let second = RFC3339.nowNanoseconds() / 1_000_000_000 * 1_000_000_000  // this very second
        try tree.setMtime("fresh.jpg", ns: second)
        // The manifest is written "half a second later" by an injected clock, so a loaded machine
        // that takes seconds to scan cannot move the write out of the file's tick.
        let clock = ScanService(now: { second + 500_000_000 })
        let first = try await scan(tree, service: clock)
        let before = try #require(first.manifest.entry(at: "fresh.jpg"))
        #expect(first.manifest.writtenAtNs - before.mtimeNs < ScanService.racyWindowNs)

        // Rewrite in place (same inode), same size, then put the mtime back: stat cannot tell.
        let changed = try ScanFixtures.rewriteKeepingStat(tree, "fresh.jpg", original: original, mtimeNs: second)
        var st = stat()
        _ = lstat(path, &st)
        #expect(UInt64(st.st_ino) == before.inode)
        #expect(Int64(st.st_size) == before.size)

        let next = try await scan(tree, service: clock)
        let after = try #require(next.manifest.entry(at: "fresh.jpg"))
        #expect(after.mtimeNs == before.mtimeNs)
        #expect(after.sha1 != before.sha1)
        #expect(after.sha1 == Digest.sha1Hex(changed))
        #expect(next.report.filesHashed == 1)  // fresh.jpg; old.jpg is clearly older and reused
        #expect(next.report.filesReused == 1)
    }

    @Test func missingRenamedAndDuplicatesKeepServerFacts() async throws {
        let tree = try TempTree("facts")
        let a = ScanFixtures.jpeg(width: 2000, height: 1500, seed: 1)
        let b = ScanFixtures.jpeg(width: 2000, height: 1500, seed: 2)
        try tree.write("f/a.jpg", a)
        try tree.write("f/b.jpg", b)
        try tree.write("f/z-copy-of-a.jpg", a)
        try tree.ageAllFiles()
        let store = ManifestStore()
        let first = try await scan(tree)
        #expect(first.manifest.entry(at: "f/z-copy-of-a.jpg")?.duplicateOf == "f/a.jpg")
        #expect(first.report.duplicates == 1)
        #expect(first.report.uniqueImages == 2)
        #expect(abs(first.report.gigapixels - 2 * 0.003) < 1e-12)

        // A sync records server facts per checksum.
        var manifest = first.manifest
        let shaA = Digest.sha1Hex(a)
        let shaB = Digest.sha1Hex(b)
        let factsA = ServerFacts(imageID: "img-a", filename: "a.jpg", state: "Ready", bucket: "bk", checkedAt: "2025-06-01T00:00:00.000Z")
        let factsB = ServerFacts(imageID: "img-b", filename: "b.jpg", state: "Invalid", errors: ["too small"], bucket: "bk", checkedAt: "2025-06-01T00:00:00.000Z")
        #expect(manifest.setServerFacts(factsA, forSHA1: shaA) == 2)
        #expect(manifest.setServerFacts(factsB, forSHA1: shaB) == 1)
        manifest.remote = Manifest.Remote(endpoint: "http://127.0.0.1:1", projectID: "p1", cloud: "s3", bucket: "bk")
        try store.save(manifest, to: first.manifestURL)

        // b.jpg disappears; a.jpg is renamed into a new folder.
        try FileManager.default.removeItem(atPath: tree.path("f/b.jpg"))
        try FileManager.default.createDirectory(atPath: tree.path("g"), withIntermediateDirectories: true)
        #expect(rename(tree.path("f/a.jpg"), tree.path("g/renamed.jpg")) == 0)
        let second = try await scan(tree)
        let m = second.manifest
        #expect(m.remote.projectID == "p1")
        #expect(m.entry(at: "f/b.jpg")?.missing == true)
        #expect(m.entry(at: "f/b.jpg")?.server == factsB)
        #expect(m.entry(at: "f/a.jpg")?.missing == true)
        #expect(m.entry(at: "g/renamed.jpg")?.server == factsA)
        #expect(m.entry(at: "g/renamed.jpg")?.missing == false)
        #expect(second.report.filesReused == 1)  // z-copy-of-a.jpg; the rename changed the path
        #expect(second.report.missing == 2)
        // Duplicates are among present files, first in path order: the renamed file now points at
        // the copy, not at the missing entry.
        #expect(m.entry(at: "f/z-copy-of-a.jpg")?.duplicateOf == nil)
        #expect(m.entry(at: "g/renamed.jpg")?.duplicateOf == "f/z-copy-of-a.jpg")
        #expect(m.entry(at: "f/a.jpg")?.duplicateOf == nil)

        // b.jpg comes back: present again, facts intact.
        try tree.write("f/b.jpg", b)
        let third = try await scan(tree)
        #expect(third.manifest.entry(at: "f/b.jpg")?.missing == false)
        #expect(third.manifest.entry(at: "f/b.jpg")?.server == factsB)
    }

    @Test func parallelismDoesNotChangeTheResult() async throws {
        let tree = try TempTree("jobs")
        for i in 0..<40 {
            try tree.write("d\(i % 3)/img\(i).jpg", ScanFixtures.jpeg(width: 100 + i, height: 100, body: 1000 + i * 37_000,
                                                                    seed: UInt8(i)))
        }
        try tree.ageAllFiles()
        let one = try await ScanService().update(previous: nil, root: tree.path, jobs: 1).0
        let many = try await ScanService().update(previous: nil, root: tree.path, jobs: 16).0
        // Equal but for when each file was read.
        func facts(_ m: Manifest) -> [ManifestEntry] { m.entries.map { var e = $0; e.hashedAtNs = nil; return e } }
        #expect(facts(one) == facts(many))
        #expect(one.entries.allSatisfy { $0.hashedAtNs != nil })
        #expect(one.entries.count == 40)
        #expect(one.entries.map(\.path) == one.entries.map(\.path).sorted())
    }

    @Test func rebuildRehashesButKeepsServerFacts() async throws {
        let tree = try TempTree("rebuild")
        let a = ScanFixtures.jpeg(width: 10, height: 10)
        try tree.write("a.jpg", a)
        try tree.ageAllFiles()
        let first = try await scan(tree)
        var m = first.manifest
        m.setServerFacts(ServerFacts(imageID: "i", filename: "a.jpg", state: "Ready", bucket: "b", checkedAt: "t"),
                         forSHA1: Digest.sha1Hex(a))
        try ManifestStore().save(m, to: first.manifestURL)
        let rebuilt = try await scan(tree, rebuild: true)
        #expect(rebuilt.report.filesHashed == 1)
        #expect(rebuilt.report.movedAside == nil)
        #expect(rebuilt.manifest.entry(at: "a.jpg")?.server?.imageID == "i")
    }

    @Test func missingPathIsNoInput() async throws {
        let tree = try TempTree("noinput")
        await #expect(throws: AltiError(.noInput, "\(tree.path)/nope: No such file or directory")) {
            try await ScanService().scan(paths: [tree.path + "/nope"])
        }
        try tree.write("file.jpg", "x")
        do {
            _ = try await ScanService().scan(paths: [tree.path("file.jpg")])
            Issue.record("a file as PATH was accepted")
        } catch let error as AltiError {
            #expect(error.kind == .noInput)
        }
        do {
            _ = try await ScanService().scan(paths: [tree.path, tree.path], manifestOverride: tree.path("m.json"))
            Issue.record("--manifest with two paths was accepted")
        } catch let error as AltiError {
            #expect(error.kind == .usage)
        }
    }
}
