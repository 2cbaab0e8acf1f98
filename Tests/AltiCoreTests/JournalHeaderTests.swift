@testable import AltiCore
import AltiTestSupport
import Foundation
import Testing

/// A journal's first line says which manifest, endpoint and project its events belong to.
@Suite struct JournalHeaderTests {
    @Test func bindWritesTheHeaderFirstAndEventsFollowIt() async throws {
        let tree = try TempTree("journal-header")
        defer { tree.remove() }
        try tree.write("a.jpg", ScanFixtures.jpeg(width: 10, height: 10))
        try tree.ageAllFiles()
        let session = try await ManifestSession.open(root: tree.path, manifestOverride: nil, scanner: ScanService(), jobs: 1)
        defer { session.close() }
        try session.bind(endpoint: "http://emulator.test", projectID: "5e8f2a6b1c9d4e3f2a1b0c9d")
        let journal = try #require(session.journal)
        let sha1 = try #require(session.manifest.entries.first?.sha1)
        try await journal.append(JournalEvent(.stored, sha1: sha1, imageID: "i1"))

        let lines = try String(contentsOfFile: session.journalPath, encoding: .utf8).split(separator: "\n")
        #expect(lines.count == 2)
        let manifestPath = tree.path(".alti/manifest.json")
        #expect(lines[0].hasPrefix(#"{"at":""#))
        #expect(lines[0].hasSuffix(#"","endpoint":"http://emulator.test","journal":1,"manifest":"\#(manifestPath)","projectID":"5e8f2a6b1c9d4e3f2a1b0c9d"}"#))
        let contents = try SyncJournal.contents(path: session.journalPath)
        #expect(contents.header?.projectID == "5e8f2a6b1c9d4e3f2a1b0c9d")
        #expect(contents.header?.endpoint == "http://emulator.test")
        #expect(contents.header?.manifest == manifestPath)
        #expect(contents.events.map(\.kind) == [.stored])
        #expect(try SyncJournal.read(path: session.journalPath) == contents.events)
    }

    @Test func aTornHeaderIsAnEmptyJournalAndANewerOneIsRefused() throws {
        let tree = try TempTree("journal-header-torn")
        defer { tree.remove() }
        let torn = try tree.write("torn.journal", #"{"at":"2026-11-25T00:00:00.000Z","endpoint":"http://a.test","jour"#)
        #expect(try SyncJournal.contents(path: torn) == SyncJournal.Contents(header: nil, events: []))

        let newer = try tree.write("newer.journal", #"{"at":"x","endpoint":"e","journal":2,"manifest":"m","projectID":"p"}"# + "\n")
        #expect {
            try SyncJournal.contents(path: newer)
        } throws: { error in
            (error as? AltiError)?.kind == .dataError && (error as? AltiError)?.message.contains("format 2") == true
        }
        // A header anywhere but on the first line is damage, not a header.
        let late = try tree.write("late.journal", #"{"at":"x","kind":"stored","sha1":"a"}"# + "\n"
            + #"{"at":"x","endpoint":"e","journal":1,"manifest":"m","projectID":"p"}"# + "\n")
        #expect(throws: AltiError.self) { try SyncJournal.contents(path: late) }
    }

    /// The journal is read in pieces (1 MiB in a sync): lines cut by a piece's end, empty lines,
    /// a torn last line and a damaged line read as they did when the file was read whole.
    @Test func aJournalReadInPiecesReadsAsAWholeOne() throws {
        let tree = try TempTree("journal-pieces")
        defer { tree.remove() }
        let header = #"{"at":"x","endpoint":"e","journal":1,"manifest":"m","projectID":"p"}"#
        let events = (0..<40).map { i in
            #"{"at":"2026-12-02T00:00:00.000Z","imageID":"id\#(i)","kind":"stored","sha1":"sha\#(i)"}"#
        }
        let text = header + "\n\n" + events.joined(separator: "\n") + "\n\n" + #"{"at":"torn","kin"#
        let path = try tree.write("pieces.journal", text)
        let whole = try SyncJournal.contents(path: path)
        #expect(whole.header?.projectID == "p")
        #expect(whole.events.map(\.imageID) == (0..<40).map { "id\($0)" })
        for readSize in [1, 2, 7, 64, 100, 1 << 20] {
            var read: [JournalEvent] = []
            let seenHeader = try SyncJournal.readEvents(path: path, readSize: readSize) { read.append($0) }
            #expect(seenHeader == whole.header, "piece of \(readSize) bytes")
            #expect(read == whole.events, "piece of \(readSize) bytes")
        }
        // Damage is reported at the same (non-empty) line number whatever the piece size.
        let damaged = try tree.write("damaged.journal", header + "\n\n" + events[0] + "\n{oops}\n" + events[1] + "\n")
        for readSize in [3, 1 << 20] {
            #expect {
                try SyncJournal.readEvents(path: damaged, readSize: readSize) { _ in }
            } throws: { error in
                (error as? AltiError)?.message.contains("is damaged at line 3;") == true
            }
        }
        #expect(try SyncJournal.readEvents(path: tree.path("missing.journal")) { _ in Issue.record("no events") } == nil)
    }

    /// The fold keeps only the facts its events touch, each starting from the manifest's: the
    /// same manifest as folding over every checksum's facts.
    @Test func aFoldStartsEachTouchedChecksumFromTheManifestsFacts() {
        var manifest = Manifest(root: "/survey")
        func entry(_ path: String, _ sha1: String, _ server: ServerFacts?) -> ManifestEntry {
            ManifestEntry(path: path, size: 1, mtimeNs: 1, inode: 1, sha1: sha1, type: .jpeg, width: 1, height: 1,
                          verdict: .ok, detail: nil, server: server, hashedAtNs: 5)
        }
        let known = ServerFacts(imageID: "i1", filename: "a.jpg", state: .uploaded, bucket: "b", cloud: "S3", checkedAt: "t0")
        manifest.entries = [entry("a.jpg", "s1", known), entry("b.jpg", "s2", nil), entry("c.jpg", "s1", known),
                            entry("d.jpg", "s3", ServerFacts(imageID: "i3", state: .ready, checkedAt: "t0"))]
        var folded = manifest
        let changed = ManifestSync.fold([
            JournalEvent(.state, sha1: "s1", imageID: "i1", state: .ready, errors: []),
            JournalEvent(.failed, sha1: "s2", reason: "gone", rehash: true),
        ], into: &folded)
        #expect(changed == 2)
        #expect(folded.entries[0].server?.state == .ready)
        #expect(folded.entries[0].server?.bucket == "b", "a fact the event does not carry is the manifest's")
        #expect(folded.entries[2].server == folded.entries[0].server)
        #expect(folded.entries[1].server?.state == .absent)
        #expect(folded.entries[1].hashedAtNs == 0)
        #expect(folded.entries[3] == manifest.entries[3], "an untouched checksum is left as it was")
    }

    @Test func theBindingCheckComparesEndpointAndProjectOnly() throws {
        var manifest = Manifest(root: "/survey")
        manifest.remote = Manifest.Remote(endpoint: "http://a.test", projectID: "p1")
        let same = JournalHeader(endpoint: "http://a.test", projectID: "p1", manifest: "/mnt/elsewhere/.alti/manifest.json")
        try ManifestSync.checkJournal(same, journalPath: "j", manifest: manifest, manifestPath: "m")
        try ManifestSync.checkJournal(nil, journalPath: "j", manifest: manifest, manifestPath: "m")
        for header in [JournalHeader(endpoint: "http://b.test", projectID: "p1", manifest: "m"),
                       JournalHeader(endpoint: "http://a.test", projectID: "p2", manifest: "m")] {
            #expect(throws: AltiError.self) {
                try ManifestSync.checkJournal(header, journalPath: "j", manifest: manifest, manifestPath: "m")
            }
        }
        #expect {
            try ManifestSync.checkJournal(same, journalPath: "j", manifest: Manifest(root: "/survey"), manifestPath: "m")
        } throws: { error in
            (error as? AltiError)?.kind == .dataError && (error as? AltiError)?.message.contains("m is bound to no project") == true
        }
    }
}
