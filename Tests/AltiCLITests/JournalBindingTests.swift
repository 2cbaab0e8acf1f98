@testable import AltiCLI
import AltiEmulator
import AltiTestSupport
import Foundation
import Testing

@testable import AltiCore

/// Issue 11, "found by an adversarial run": a journal knows which project it belongs to, a killed
/// save leaves no temp file behind for good, and a credential typed in the wrong place is never
/// echoed. Commands run in-process against the emulator; assertions are on what they printed,
/// their exit codes, the files on disk and what the emulator counted.
@Suite struct JournalBindingTests {
    static let projectA = ProjectSeed.sample.id
    static let projectB = "bbbbbbbbbbbbbbbbbbbbbbbb"

    static func configuration() -> EmulatorConfiguration {
        var config = testEmulatorConfiguration()
        config.projects.append(ProjectSeed(id: projectB, name: "B"))
        return config
    }

    static func run(_ args: [String], _ env: [String: String] = ["XDG_CONFIG_HOME": "/nonexistent-alti-config"])
        async -> (code: Int32, out: String, err: String, connections: Int) {
        await CommandContextTests.run(args, env)
    }

    /// The journal a sync to `project` would have left after storing these images (what a killed
    /// run leaves): its header, then registered, stored and Ready for each.
    static func writeJournal(_ path: String, endpoint: String, project: String, manifest: String, sha1s: [String],
                             header: Bool = true) async throws {
        let journal = try SyncJournal(
            path: path, header: header ? JournalHeader(endpoint: endpoint, projectID: project, manifest: manifest) : nil)
        for (i, sha1) in sha1s.enumerated() {
            try await journal.append([
                JournalEvent(.registered, sha1: sha1, imageID: "journal-A-\(i)", filename: "DJI_\(i).JPG", bucket: "bucket-A",
                             state: .pending, cloud: "S3"),
                JournalEvent(.stored, sha1: sha1, imageID: "journal-A-\(i)"),
                JournalEvent(.state, sha1: sha1, imageID: "journal-A-\(i)", state: .ready),
            ])
        }
    }

    // MARK: A journal of another project

    @Test func aJournalOfProjectABesideAManifestOfProjectBIsRefusedAndLeftUntouched() async throws {
        let tree = try FirstHourTests.survey()
        defer { tree.remove() }
        try await withEmulator(Self.configuration()) { emu in
            let env = FirstHourTests.env(emu)
            // The manifest is bound to B (a dry run binds nothing, so a read-only server stops a
            // real sync after the binding and the lookups: B has none of the images).
            await emu.updateFaults { $0.systemMode = .readOnly }
            let bound = await Self.run(["sync", tree.path, "--project", Self.projectB], env)
            #expect(bound.code == 69, "\(bound.err)")
            await emu.setFaults(FaultSettings())
            let manifestPath = tree.path(".alti/manifest.json")
            let journalPath = manifestPath + ".journal"
            let manifest = try #require(try ManifestStore().load(URL(fileURLWithPath: manifestPath)))
            #expect(manifest.remote.projectID == Self.projectB)
            #expect(manifest.entries.allSatisfy { $0.server?.state == .absent })

            // A run for project A left its journal here: every image stored and Ready, in A.
            try await Self.writeJournal(journalPath, endpoint: emu.baseURL, project: Self.projectA,
                                        manifest: "/media/card/.alti/manifest.json", sha1s: manifest.entries.compactMap(\.sha1))
            let journalBytes = try tree.read(".alti/manifest.json.journal")
            let manifestBytes = try tree.read(".alti/manifest.json")
            let refusal = "alti: the sync journal \(journalPath) was written by a sync to project \(Self.projectA) at \(emu.baseURL), "
                + "but \(manifestPath) belongs to project \(Self.projectB) at \(emu.baseURL); nothing was folded and the journal "
                + "is left as it is: move it aside and run again (project \(Self.projectA) still knows what that sync uploaded)\n"

            let sync = await Self.run(["sync", tree.path, "--project", Self.projectB], env)
            #expect(sync.code == 65, "\(sync.out) \(sync.err)")
            #expect(sync.err == refusal)
            #expect(!sync.out.contains("Ready"))
            let scan = await Self.run(["scan", tree.path], env)
            #expect(scan.code == 65, "\(scan.out) \(scan.err)")
            #expect(scan.err == refusal)
            // Nothing folded, nothing written, nothing sent.
            #expect(try tree.read(".alti/manifest.json.journal") == journalBytes)
            #expect(try tree.read(".alti/manifest.json") == manifestBytes)
            #expect(await emu.state.stats().puts == 0)

            // Moved aside, the sync of B finds B has none of the images and sends them all.
            try FileManager.default.moveItem(atPath: journalPath, toPath: journalPath + ".from-A")
            let after = await Self.run(["sync", tree.path, "--project", Self.projectB], env)
            #expect(after.code == 0, "\(after.out) \(after.err)")
            #expect(await emu.state.stats().putsByImage.count == 3)
            let synced = try #require(try ManifestStore().load(URL(fileURLWithPath: manifestPath)))
            #expect(synced.entries.allSatisfy { $0.server?.state == .ready && $0.server?.imageID.hasPrefix("journal-A") == false })
        }
    }

    @Test func aHeaderlessJournalOfAnOlderAltiStillFolds() async throws {
        let tree = try FirstHourTests.survey()
        defer { tree.remove() }
        let first = await Self.run(["scan", tree.path])
        #expect(first.code == 0, "\(first.err)")
        let manifestPath = tree.path(".alti/manifest.json")
        var manifest = try #require(try ManifestStore().load(URL(fileURLWithPath: manifestPath)))
        // Bound to B, as an older alti left it, with that alti's journal: events only.
        manifest.remote = Manifest.Remote(endpoint: "http://127.0.0.1:9", projectID: Self.projectB)
        try ManifestStore().save(manifest, to: URL(fileURLWithPath: manifestPath))
        try await Self.writeJournal(manifestPath + ".journal", endpoint: "", project: "", manifest: "",
                                    sha1s: manifest.entries.compactMap(\.sha1), header: false)
        #expect(try tree.read(".alti/manifest.json.journal").first == UInt8(ascii: "{"))
        #expect(!(try String(contentsOfFile: manifestPath + ".journal", encoding: .utf8)).contains("\"journal\""))

        let scan = await Self.run(["scan", tree.path], ["XDG_CONFIG_HOME": "/nonexistent-alti-config"])
        #expect(scan.code == 0, "\(scan.out) \(scan.err)")
        let folded = try #require(try ManifestStore().load(URL(fileURLWithPath: manifestPath)))
        #expect(folded.entries.count == 3)
        #expect(folded.entries.allSatisfy { $0.server?.state == .ready && $0.server?.imageID.hasPrefix("journal-A") == true })
        #expect(!FileManager.default.fileExists(atPath: manifestPath + ".journal"))
    }

    @Test func aJournalWithATornHeaderIsEmptyAndGoes() async throws {
        let tree = try FirstHourTests.survey()
        defer { tree.remove() }
        let first = await Self.run(["scan", tree.path])
        #expect(first.code == 0, "\(first.err)")
        // The crash hit the first write of a journal (of another project, even): nothing to fold.
        let torn = #"{"at":"2026-11-25T00:00:00.000Z","endpoint":"http://elsewhere.test","journal":1,"manif"#
        try tree.write(".alti/manifest.json.journal", torn)
        let scan = await Self.run(["scan", tree.path])
        #expect(scan.code == 0, "\(scan.out) \(scan.err)")
        #expect(!FileManager.default.fileExists(atPath: tree.path(".alti/manifest.json.journal")))
        let manifest = try #require(try ManifestStore().load(tree.url(".alti/manifest.json")))
        #expect(manifest.entries.count == 3 && manifest.entries.allSatisfy { $0.server == nil })
    }

    // MARK: Temp files of a killed save

    @Test func staleTempFilesOfAKilledSaveGoAtTheNextScanAndTheManifestStands() async throws {
        let tree = try FirstHourTests.survey()
        defer { tree.remove() }
        let first = await Self.run(["scan", tree.path])
        #expect(first.code == 0, "\(first.err)")
        let before = try #require(try ManifestStore().load(tree.url(".alti/manifest.json")))

        // A process that has exited: its pid is free (a save of it can no longer be running).
        let exited = Process()
        exited.executableURL = URL(fileURLWithPath: "/bin/true")
        try exited.run()
        exited.waitUntilExit()
        let deadPID = exited.processIdentifier
        let halfWritten = "{\n  \"entries\" : [\n"
        try tree.write(".alti/.manifest.json.tmp-x", halfWritten)                   // no pid, old
        try tree.setMtime(".alti/.manifest.json.tmp-x", ns: (Int64(Date().timeIntervalSince1970) - 60) * 1_000_000_000)
        try tree.write(".alti/.manifest.json.tmp-\(deadPID)-42", halfWritten)       // its writer is gone
        try tree.write(".alti/.manifest.json.tmp-\(getpid())-7", halfWritten)       // live writer, just now
        // "Just now" must still hold when the scan looks, however slowly a loaded machine gets there
        // (a full suite once took 47 s): an mtime an hour ahead stays younger than the 10 s rule.
        try tree.setMtime(".alti/.manifest.json.tmp-\(getpid())-7", ns: (Int64(Date().timeIntervalSince1970) + 3600) * 1_000_000_000)
        try tree.write(".alti/.other.json.tmp-x", halfWritten)                      // another file's
        try tree.setMtime(".alti/.other.json.tmp-x", ns: (Int64(Date().timeIntervalSince1970) - 60) * 1_000_000_000)

        let scan = await Self.run(["scan", tree.path])
        #expect(scan.code == 0, "\(scan.out) \(scan.err)")
        let left = try FileManager.default.contentsOfDirectory(atPath: tree.path(".alti")).sorted()
        #expect(left == [".manifest.json.tmp-\(getpid())-7", ".other.json.tmp-x", "manifest.json", "manifest.json.lock"])
        let after = try #require(try ManifestStore().load(tree.url(".alti/manifest.json")))
        #expect(after.entries.map(\.sha1) == before.entries.map(\.sha1))
        #expect(after.entries.count == 3)
    }

    // MARK: Credentials typed in the wrong place

    @Test func aTokenGivenAsProjectOrEndpointIsNeverEchoed() async throws {
        let tree = try FirstHourTests.survey()
        defer { tree.remove() }
        let tokenLike = "Zk3vQp9TxW2mYb7LrN4sHd8Jc6Fa1Ge5"
        try await withEmulator(Self.configuration()) { emu in
            let env = FirstHourTests.env(emu)
            let asProject = await Self.run(["sync", tree.path, "--project", tokenLike], env)
            #expect(asProject.code == 67, "\(asProject.err)")
            #expect(asProject.err == "alti: no project of yours starts with Zk3v… at \(emu.baseURL); check --project "
                    + "(the value given looks like a key or token, not a project id)\n")
            // The configured token itself, however short, is masked too.
            let ownToken = await Self.run(["sync", tree.path, "--project", "alti-demo-token"], env)
            #expect(ownToken.code == 67, "\(ownToken.err)")
            #expect(ownToken.err.contains("alti… at"))
            // A project id is echoed as it is.
            let unknownID = await Self.run(["sync", tree.path, "--project", "ffffffffffffffffffffffff"], env)
            #expect(unknownID.code == 67)
            #expect(unknownID.err == "alti: project ffffffffffffffffffffffff does not exist at \(emu.baseURL) or is not yours; check --project\n")

            let asEndpoint = await Self.run(["sync", tree.path, "--project", Self.projectA],
                                            env.merging(["ALTI_ENDPOINT": tokenLike]) { _, new in new })
            #expect(asEndpoint.code == 64)
            #expect(asEndpoint.err == "alti: endpoint 'Zk3v…' is not an http(s) origin; use e.g. --endpoint https://api.altizure.com\n")
            let keyAsEndpoint = await Self.run(["sync", tree.path, "--project", Self.projectA, "--endpoint", "alti-demo-key"], env)
            #expect(keyAsEndpoint.code == 64)
            #expect(keyAsEndpoint.err == "alti: endpoint 'alti…' is not an http(s) origin; use e.g. --endpoint https://api.altizure.com\n")
            let typo = await Self.run(["sync", tree.path, "--project", Self.projectA, "--endpoint", "api.altizure.com"], env)
            #expect(typo.err.contains("'api.altizure.com'"))
            for result in [asProject, asEndpoint] {
                #expect(!result.err.contains(tokenLike) && !result.out.contains(tokenLike))
            }
            for result in [ownToken, keyAsEndpoint] {
                #expect(!result.err.contains("alti-demo-token") && !result.err.contains("alti-demo-key"))
            }
            let pasted = await Self.run([tokenLike, "sync", tree.path])
            #expect(pasted.code == 64)
            #expect(!pasted.err.contains(tokenLike) && pasted.err.contains("'Zk3v…'"))
        }
    }

    @Test func whatLooksLikeACredential() {
        // Random-looking, long, of the token alphabets: masked.
        #expect(SecretMask.looksLikeSecret("Zk3vQp9TxW2mYb7LrN4sHd8Jc6Fa1Ge5"))
        #expect(SecretMask.looksLikeSecret("0123456789abcdef0123456789abcdef01234567"))  // 40 hex: not a project id
        #expect(SecretMask.looksLikeSecret("eyJhbGciOiJIUzI1NiJ9_x-y+z/w=="))
        #expect(SecretMask.looksLikeSecret("short", secrets: [nil, "short"]))
        // Project ids and prefixes, words, URLs, short values: echoed.
        #expect(!SecretMask.looksLikeSecret("5e8f2a6b1c9d4e3f2a1b0c9d"))
        #expect(!SecretMask.looksLikeSecret("5e8f2a6b1c9d4e3f2a1b0c"))
        #expect(!SecretMask.looksLikeSecret("my-survey-project-in-the-field"))
        #expect(!SecretMask.looksLikeSecret("https://api.altizure.com:8443"))
        #expect(!SecretMask.looksLikeSecret("Abc123"))
        #expect(!SecretMask.looksLikeSecret("", secrets: [""]))
        #expect(SecretMask.shown("Zk3vQp9TxW2mYb7LrN4sHd8Jc6Fa1Ge5") == "Zk3v…")
        #expect(SecretMask.shown("5e8f2a6b1c9d4e3f2a1b0c9d") == "5e8f2a6b1c9d4e3f2a1b0c9d")
    }
}
