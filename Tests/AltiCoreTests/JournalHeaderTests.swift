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
