@testable import AltiCore
import AltiTestSupport
import Foundation
import Testing

/// `alti status`'s model (pure over a manifest and a journal) and its service: read without
/// writing anything, refresh through the journal as a sync records facts.
@Suite struct StatusTests {
    static let endpoint = "http://emulator.test"
    static let project = "5e8f2a6b1c9d4e3f2a1b0c9d"

    static func sha(_ c: Character) -> String { String(repeating: c, count: 40) }

    static func image(_ path: String, _ size: Int64, _ c: Character, server: ServerFacts? = nil,
                      missing: Bool = false) -> ManifestEntry {
        ManifestEntry(path: path, size: size, mtimeNs: 1, inode: 1, sha1: sha(c), type: .jpeg, width: 4000,
                      height: 3000, verdict: .ok, detail: nil, missing: missing, server: server)
    }

    static func facts(_ state: ImageState, errors: [String] = [], checkedAt: String = "2025-01-01T00:00:00.000Z") -> ServerFacts {
        ServerFacts(imageID: state == .absent ? "" : "id-\(state)", filename: "f.jpg", state: state, errors: errors,
                    bucket: "Paris", cloud: "S3", checkedAt: checkedAt)
    }

    static func at(_ text: String) -> Date { ISO8601DateFormatter().date(from: text)! }

    /// One image in every category, a duplicate, a file gone since the scan, two unusable files.
    static func manifest(root: String = "/survey") -> Manifest {
        var manifest = Manifest(
            root: root, remote: Manifest.Remote(endpoint: endpoint, projectID: project, cloud: "S3", bucket: "Paris"),
            entries: [
                image("a.jpg", 100, "a", server: facts(.ready)),
                image("b.jpg", 200, "b", server: facts(.uploaded, checkedAt: "2025-01-02T00:00:00.000Z")),
                image("c.jpg", 300, "c", server: facts(.pending)),
                image("d.jpg", 400, "d", server: facts(.invalid, errors: ["checksum mismatch"])),
                image("e.jpg", 500, "e"),
                image("f.jpg", 600, "f", server: facts(.ready)),
                image("g.jpg", 700, "g"),
                image("h.jpg", 800, "h"),
                image("z-copy-of-a.jpg", 100, "a", server: facts(.ready)),
                image("gone.jpg", 900, "i", server: facts(.ready), missing: true),
                ManifestEntry(path: "cut.jpg", size: 50, mtimeNs: 1, inode: 1, sha1: sha("j"), type: .jpeg, width: 10,
                              height: 10, verdict: .truncated, detail: "no end-of-image marker"),
                ManifestEntry(path: "empty.jpg", size: 0, mtimeNs: 1, inode: 1, sha1: nil, type: nil, width: nil,
                              height: nil, verdict: .empty, detail: nil),
            ],
            writtenAtNs: 1_735_689_600_000_000_000)
        manifest.normalize()
        return manifest
    }

    /// A sync killed mid-run: e registered and stored, f found gone from the project, g failed.
    static let journal: [JournalEvent] = [
        JournalEvent(.registered, sha1: sha("e"), at: at("2025-03-01T10:00:00Z"), imageID: "id-e", filename: "e.jpg",
                     bucket: "Paris", state: .pending, cloud: "S3"),
        JournalEvent(.stored, sha1: sha("e"), at: at("2025-03-01T10:00:05Z"), imageID: "id-e"),
        JournalEvent(.state, sha1: sha("f"), at: at("2025-03-01T10:00:07Z"), state: .absent, errors: []),
        JournalEvent(.failed, sha1: sha("g"), at: at("2025-03-01T10:00:09Z"), reason: "the store refused the upload (AccessDenied)"),
    ]

    @Test func theModelSortsEachImageByItsFactsWithALeftoverJournalFoldedIn() throws {
        let status = SourceStatus(manifest: Self.manifest(), journal: Self.journal, manifestPath: "/survey/.alti/manifest.json")
        let byPath = Dictionary(uniqueKeysWithValues: status.images.map { ($0.path, $0.category) })
        #expect(byPath == ["/survey/a.jpg": .ready, "/survey/b.jpg": .processing, "/survey/c.jpg": .pending,
                           "/survey/d.jpg": .invalid, "/survey/e.jpg": .processing, "/survey/f.jpg": .absent,
                           "/survey/g.jpg": .failed, "/survey/h.jpg": .notSent])
        let tally = status.tally
        #expect(tally.all == .init(images: 8, bytes: 3600))
        #expect(tally[.ready] == .init(images: 1, bytes: 100))
        #expect(tally[.processing] == .init(images: 2, bytes: 700))
        #expect(tally[.pending] == .init(images: 1, bytes: 300))
        #expect(tally[.invalid] == .init(images: 1, bytes: 400))
        #expect(tally[.failed] == .init(images: 1, bytes: 700))
        #expect(tally[.absent] == .init(images: 1, bytes: 600))
        #expect(tally[.notSent] == .init(images: 1, bytes: 800))
        #expect(tally.toSend == .init(images: 5, bytes: 2800))
        #expect(status.images.first { $0.path == "/survey/d.jpg" }?.errors == ["checksum mismatch"])
        #expect(status.images.first { $0.path == "/survey/g.jpg" }?.errors == ["the store refused the upload (AccessDenied)"])
        #expect(status.duplicates == 1)
        #expect(status.missing == 1)
        #expect(status.notUsable.map(\.path) == ["/survey/cut.jpg", "/survey/empty.jpg"])
        #expect(status.notUsable.map(\.verdict) == [.truncated, .empty])
        #expect(status.journalEvents == 4)
        // The journal's last server read (f, 10:00:07; a local failure reads nothing).
        #expect(status.lastCheckedAt == "2025-03-01T10:00:07.000Z")
        #expect(status.writtenAt == "2025-01-01T00:00:00.000Z")
        #expect(status.remote == Manifest.Remote(endpoint: Self.endpoint, projectID: Self.project, cloud: "S3", bucket: "Paris"))

        // Without the journal the same manifest says what it recorded.
        let before = SourceStatus(manifest: Self.manifest(), manifestPath: "m").tally
        #expect(before[.ready] == .init(images: 2, bytes: 700))
        #expect(before[.notSent] == .init(images: 3, bytes: 2000))
        #expect(before.toSend == .init(images: 5, bytes: 2700))
    }

    @Test func theTotalCountsAnImageInTwoSourcesOnceWithTheFactsOfTheFirstThatHasAny() {
        let first = SourceStatus(manifest: Self.manifest(), manifestPath: "m1")
        var second = Manifest(root: "/other.zip", kind: "archive", entries: [
            Self.image("x/h-again.jpg", 800, "h", server: Self.facts(.ready)),
            Self.image("x/new.jpg", 1000, "k"),
        ])
        second.normalize()
        let summary = StatusSummary(sources: [first, SourceStatus(manifest: second, manifestPath: "m2")])
        #expect(summary.sources[1].images.map(\.path) == ["/other.zip:x/h-again.jpg", "/other.zip:x/new.jpg"])
        let total = summary.total
        #expect(total.all == .init(images: 9, bytes: 4600))
        #expect(total[.ready] == .init(images: 3, bytes: 1500))
        #expect(total[.notSent] == .init(images: 3, bytes: 2200))
        #expect(summary.notUsable == 2)
        #expect(summary.lastCheckedAt == "2025-01-02T00:00:00.000Z")
    }

    // MARK: The service

    /// A folder whose manifest is `manifest()` rooted there, saved as a sync saves it.
    static func recordedFolder(_ label: String) throws -> (TempTree, URL) {
        let tree = try TempTree(label)
        let file = tree.url(".alti/manifest.json")
        try ManifestStore().save(manifest(root: tree.path), to: file, nowNs: { 1_735_689_600_000_000_000 })
        return (tree, file)
    }

    @Test func readFoldsTheJournalOfARunningOrKilledSyncIntoTheViewAndWritesNothing() async throws {
        let (tree, file) = try Self.recordedFolder("status-read")
        defer { tree.remove() }
        let journal = try SyncJournal(path: file.path + ".journal")
        try await journal.append(Self.journal)
        // A sync killed in the middle of its next write.
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: file.path + ".journal"))
        handle.seekToEndOfFile()
        handle.write(Data(#"{"kind":"stored","sha1":"hhhh"#.utf8))
        try handle.close()
        let manifestBytes = try Data(contentsOf: file)
        let journalBytes = try Data(contentsOf: URL(fileURLWithPath: file.path + ".journal"))

        let summary = try StatusService().read(paths: [tree.path], manifestOverride: nil)
        #expect(summary.sources.count == 1)
        let source = summary.sources[0]
        #expect(source.journalEvents == 4)
        #expect(source.tally[.processing] == .init(images: 2, bytes: 700))
        #expect(source.tally.toSend == .init(images: 5, bytes: 2800))
        #expect(source.manifest == file.path)
        #expect(!summary.refreshed)
        // Nothing written, nothing locked, the journal left for the next sync to fold.
        #expect(try Data(contentsOf: file) == manifestBytes)
        #expect(try Data(contentsOf: URL(fileURLWithPath: file.path + ".journal")) == journalBytes)
        #expect(!FileManager.default.fileExists(atPath: file.path + ".lock"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: tree.path(".alti")).sorted()
                == ["manifest.json", "manifest.json.journal"])
    }

    @Test func readDoesNotWaitForTheLockASyncHolds() throws {
        let (tree, file) = try Self.recordedFolder("status-locked")
        defer { tree.remove() }
        let store = ManifestStore()
        let held = try store.lock(store.locate(root: tree.path, override: nil))
        defer { held.release() }
        let summary = try StatusService(store: store).read(paths: [tree.path], manifestOverride: nil)
        #expect(summary.sources.first?.tally.all.images == 8)
        #expect(summary.sources.first?.manifest == file.path)
    }

    @Test func aSourceWithoutAManifestIsOneLineAnd66AndNothingIsCreated() throws {
        let tree = try TempTree("status-none")
        defer { tree.remove() }
        try tree.write("a.jpg", ScanFixtures.jpeg(width: 10, height: 10))
        #expect {
            _ = try StatusService().read(paths: [tree.path], manifestOverride: nil)
        } throws: { error in
            guard let error = error as? AltiError else { return false }
            return error.kind == .noInput && error.exitCode == 66
                && error.message == "no manifest for \(tree.path): run alti scan \(tree.path) or alti sync \(tree.path) --project ID"
        }
        #expect(!FileManager.default.fileExists(atPath: tree.path(".alti")))
    }

    @Test func theArchivesReadInsideAFolderAreSourcesOfTheirOwnButNotThoseOfOtherFolders() throws {
        let (tree, _) = try Self.recordedFolder("status-archives")
        defer { tree.remove() }
        let store = ManifestStore()
        let inside = tree.path("flight3.zip")
        let archiveManifest = Manifest(root: inside, kind: "archive", entries: [Self.image("DJI_1.JPG", 42, "m")])
        try store.save(archiveManifest, to: tree.url(".alti/archives/\(ManifestStore.fallbackName(root: inside))"))
        let elsewhere = Manifest(root: "/elsewhere/other.zip", kind: "archive", entries: [Self.image("DJI_2.JPG", 43, "n")])
        try store.save(elsewhere, to: tree.url(".alti/archives/other.zip-00000000.json"))

        let summary = try StatusService().read(paths: [tree.path], manifestOverride: nil)
        #expect(summary.sources.map(\.root) == [tree.path, inside])
        #expect(summary.sources[1].kind == "archive")
        #expect(summary.sources[1].images.map(\.path) == ["\(inside):DJI_1.JPG"])
        #expect(summary.total.all == .init(images: 9, bytes: 3642))
    }

    @Test func refreshAsksInBatchesAndRecordsTheAnswersThroughTheJournalIntoTheManifest() async throws {
        let tree = try TempTree("status-refresh")
        defer { tree.remove() }
        let file = tree.url(".alti/manifest.json")
        // 150 images a sync left all Ready; since then the server lost 30 and is re-processing 20.
        let checksums = (0..<150).map { String(format: "%040x", $0) }
        var manifest = Manifest(
            root: tree.path, remote: Manifest.Remote(endpoint: Self.endpoint, projectID: Self.project, cloud: "S3", bucket: "Paris"),
            entries: checksums.enumerated().map { index, sha1 in
                ManifestEntry(path: String(format: "IMG_%04d.JPG", index), size: 1000, mtimeNs: 1, inode: UInt64(index),
                              sha1: sha1, type: .jpeg, width: 10, height: 10, verdict: .ok, detail: nil,
                              server: Self.facts(.ready))
            },
            writtenAtNs: 1_735_689_600_000_000_000)
        manifest.normalize()
        let writtenAtNs: Int64 = 1_735_689_600_000_000_000
        try ManifestStore().save(manifest, to: file, nowNs: { writtenAtNs })
        let server = FakeServer()
        for sha1 in checksums.prefix(100) { await server.seed(sha1, state: .ready) }
        for sha1 in checksums[100..<120] { await server.seed(sha1, state: .uploaded) }

        let metrics = SyncMetrics()
        let summary = try await StatusService().refresh(paths: [tree.path], manifestOverride: nil,
                                                        catalog: FakeCatalog(server: server), endpoint: Self.endpoint,
                                                        metrics: metrics)
        #expect(await server.calls["hasImage"] == 2)
        #expect(summary.refreshed)
        #expect(summary.sources[0].refreshed)
        let total = summary.total
        #expect(total[.ready] == .init(images: 100, bytes: 100_000))
        #expect(total[.processing] == .init(images: 20, bytes: 20_000))
        #expect(total[.absent] == .init(images: 30, bytes: 30_000))
        #expect(total.toSend == .init(images: 30, bytes: 30_000))

        // The manifest holds the answers, its racy-check reference unchanged; the journal is folded
        // and gone; the lock is released.
        let saved = try #require(try ManifestStore().load(file))
        #expect(saved.writtenAtNs == writtenAtNs)
        #expect(saved.entries.filter { $0.server?.state == .absent }.count == 30)
        #expect(saved.entries.filter { $0.server?.state == .uploaded }.count == 20)
        #expect(saved.entries.allSatisfy { $0.server?.checkedAt != "2025-01-01T00:00:00.000Z" })
        #expect(!FileManager.default.fileExists(atPath: file.path + ".journal"))
        let again = try ManifestStore().lock(ManifestLocation(file: file, isFallback: false))
        again.release()
        #expect(try StatusService().read(paths: [tree.path], manifestOverride: nil).total.toSend.images == 30)
    }

    @Test func refreshRespectsTheLockOfARunningSyncAndRefusesAManifestOfAnotherEndpoint() async throws {
        let (tree, file) = try Self.recordedFolder("status-refresh-lock")
        defer { tree.remove() }
        let store = ManifestStore()
        let server = FakeServer()
        let held = try store.lock(ManifestLocation(file: file, isFallback: false))
        await #expect {
            _ = try await StatusService(store: store).refresh(paths: [tree.path], manifestOverride: nil,
                                                              catalog: FakeCatalog(server: server), endpoint: Self.endpoint,
                                                              metrics: SyncMetrics())
        } throws: { ($0 as? AltiError)?.kind == .cannotWrite }
        held.release()
        await #expect {
            _ = try await StatusService(store: store).refresh(paths: [tree.path], manifestOverride: nil,
                                                              catalog: FakeCatalog(server: server), endpoint: "http://other.test",
                                                              metrics: SyncMetrics())
        } throws: { ($0 as? AltiError)?.kind == .notFound }
        #expect(await server.calls["hasImage"] == nil)
    }
}
