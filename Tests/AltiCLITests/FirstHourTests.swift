@testable import AltiCLI
import AltiEmulator
import AltiTestSupport
import ArgumentParser
import Foundation
import Testing

@testable import AltiCore

/// What a new user trips over in the first hour (issue 8): each message is held here as a golden
/// string, each outcome by its exit code and by what the emulator counted.
@Suite struct FirstHourTests {
    static let project = ProjectSeed.sample.id

    static func env(_ emu: RunningEmulator) -> [String: String] {
        ["ALTI_ENDPOINT": emu.baseURL, "ALTI_KEY": "alti-demo-key", "ALTI_TOKEN": "alti-demo-token",
         "ALTI_RETRY_BASE_MS": "10", "XDG_CONFIG_HOME": "/nonexistent-alti-config"]
    }

    /// A few real JPEGs of the sample survey, aged past the racy window.
    static func survey(_ count: Int = 3) throws -> TempTree {
        let tree = try TempTree("first-hour")
        for i in 1...count { try tree.copy(CommandContextTests.sample(i), to: "flight1/DJI_\(String(format: "%04d", i)).JPG") }
        try tree.ageAllFiles()
        return tree
    }

    static func run(_ args: [String], _ env: [String: String] = ["XDG_CONFIG_HOME": "/nonexistent-alti-config"])
        async -> (code: Int32, out: String, err: String, connections: Int) {
        await CommandContextTests.run(args, env)
    }

    // MARK: Point 1: unusable images are named, never "all", and have their own exit code

    @Test func unusableImagesAreNamedInTheSummaryAndTheJSONWithExitCode79() async throws {
        let tree = try Self.survey()
        defer { tree.remove() }
        let jpeg = [UInt8](try Data(contentsOf: URL(fileURLWithPath: CommandContextTests.sample(4))))
        try tree.write("flight1/CUT.JPG", Array(jpeg.prefix(jpeg.count / 2)))
        try tree.write("flight1/EMPTY.JPG", [UInt8]())
        try tree.write("flight1/FAKE.JPG", "not a picture")
        try tree.ageAllFiles()
        try await withEmulator(testEmulatorConfiguration()) { emu in
            let text = await Self.run(["sync", tree.path, "--project", Self.project], Self.env(emu))
            #expect(text.code == 79, "\(text.out) \(text.err)")
            #expect(text.out.contains("  not usable, not sent: 3 files\n"))
            #expect(text.out.contains("    \(tree.path)/flight1/CUT.JPG: truncated"))
            #expect(text.out.contains("    \(tree.path)/flight1/EMPTY.JPG: empty"))
            #expect(text.out.contains("    \(tree.path)/flight1/FAKE.JPG: notAnImage"))
            #expect(text.out.hasSuffix("3 of 6 image files Ready; 3 not usable (listed above) and not sent: replace or remove them.\n"))
            #expect(!text.out.contains("All "))
            #expect(await emu.state.stats().puts == 3)

            let json = await Self.run(["sync", tree.path, "--project", Self.project, "--format", "json"], Self.env(emu))
            #expect(json.code == 79)
            let report = try #require(try JSONSerialization.jsonObject(with: Data(json.out.utf8)) as? [String: Any])
            let notUsable = try #require(report["notUsable"] as? [[String: Any]])
            #expect(Set(notUsable.compactMap { $0["path"] as? String })
                    == Set(["CUT", "EMPTY", "FAKE"].map { "\(tree.path)/flight1/\($0).JPG" }))
            #expect(Set(notUsable.compactMap { $0["verdict"] as? String }) == ["truncated", "empty", "notAnImage"])
            #expect(report["exitCode"] as? Int == 79)
        }
    }

    // MARK: Point 5: typos get messages that point the right way

    @Test func typosNameWhatWasTypedAndWhatWasMeant() async {
        let cases: [([String], String)] = [
            (["snyc", "survey", "--project", "5e8f"],
             "alti: unknown command 'snyc'; did you mean 'alti sync'? (commands: config, report, scan, status, sync; see alti help)\n"),
            (["sync", "survey", "--projct", "5e8f"],
             "alti: unknown option '--projct' for alti sync; did you mean '--project'? (see alti sync --help)\n"),
            (["sync", "survey", "-p", "5e8f"],
             "alti: unknown option '-p' for alti sync; did you mean '--part-size' or '--profile' or '--project'? (see alti sync --help)\n"),
            (["sync", "survey", "--project", "5e8f", "--wait", "-1"],
             "alti: --wait -1: --wait takes a number of 0 or more\n"),
            (["scan", "survey", "--hash-jobs", "-2"],
             "alti: --hash-jobs -2: --hash-jobs takes a number of 0 or more\n"),
        ]
        for (args, expected) in cases {
            let result = await Self.run(args)
            #expect(result.code == 64, "\(args)")
            #expect(result.err == expected)
            #expect(result.out.isEmpty)
        }
        let version = await Self.run(["--version"])
        #expect(version.code == 0)
        #expect(version.out == AltiCommand.versionLine + "\n")
        #expect(version.out.hasPrefix("alti \(AltiVersion.version) ("))
        // The old names still parse (hidden aliases of --transfers and --hash-jobs).
        #expect(ArgumentCheck.check(["sync", "x", "--project", "p", "--jobs", "2"]) == nil)
        #expect(ArgumentCheck.check(["scan", "x", "--jobs", "2", "--json"]) == nil)
    }

    // MARK: Point 6: the same folder twice is one source; a folder inside another is refused

    @Test func theSameFolderTwiceIsSyncedOnceAndANestedOneIsRefused() async throws {
        let tree = try Self.survey()
        defer { tree.remove() }
        try await withEmulator(testEmulatorConfiguration()) { emu in
            let twice = await Self.run(["sync", tree.path, tree.path + "/", tree.path + "/flight1/..", "--project", Self.project],
                                       Self.env(emu))
            #expect(twice.code == 0, "\(twice.out) \(twice.err)")
            #expect(await emu.state.stats().puts == 3)
            #expect(twice.out.contains("in 1 source:"))

            let nested = await Self.run(["sync", tree.path, tree.path + "/flight1", "--project", Self.project], Self.env(emu))
            #expect(nested.code == 64)
            #expect(nested.err == "alti: \(tree.path)/flight1 is inside \(tree.path), which is given too: give only \(tree.path) (it includes the other), or sync them in separate runs\n")
        }
    }

    // MARK: Point 7: messages that pointed the wrong way

    @Test func aCorruptManifestUnderSyncPointsToScanRebuild() async throws {
        let tree = try Self.survey(1)
        defer { tree.remove() }
        try tree.write(".alti/manifest.json", "{\"schemaVersion\": 1,")
        let result = await Self.run(["sync", tree.path, "--project", Self.project, "--dry-run"])
        #expect(result.code == 65)
        #expect(result.err.hasPrefix("alti: \(tree.path)/.alti/manifest.json: "))
        #expect(result.err.hasSuffix("; fix it, or run `alti scan --rebuild \(tree.path)` to move it aside and start over\n"))
        #expect(!result.err.contains("run with --rebuild"))
    }

    @Test func anEmptyFolderIsNotAllReady() async throws {
        let tree = try TempTree("first-hour-empty")
        defer { tree.remove() }
        try tree.write("notes.txt", "flight log")
        try await withEmulator(testEmulatorConfiguration()) { emu in
            let result = await Self.run(["sync", tree.path, "--project", Self.project], Self.env(emu))
            #expect(result.code == 66)
            #expect(result.out.hasSuffix("No images found under \(tree.path): nothing to send. Check the folder.\n"))
            #expect(!result.out.contains("All 0"))
            let json = await Self.run(["sync", tree.path, "--project", Self.project, "--json"], Self.env(emu))
            let report = try #require(try JSONSerialization.jsonObject(with: Data(json.out.utf8)) as? [String: Any])
            #expect(report["bucket"] == nil && report["cloud"] == nil)  // never "bucket": ""
        }
    }

    @Test func oneImageIsSingular() async throws {
        let tree = try Self.survey(1)
        defer { tree.remove() }
        try await withEmulator(testEmulatorConfiguration()) { emu in
            let result = await Self.run(["sync", tree.path, "--project", Self.project], Self.env(emu))
            #expect(result.code == 0, "\(result.err)")
            #expect(result.out.contains("  scanned 1 image ("))
            #expect(result.out.contains("  stored 1 image ("))
            #expect(result.out.contains("1 registration, 0 URL refreshes"))
            #expect(result.out.hasSuffix("The 1 image is Ready. Start the reconstruction with --start-reconstruction.\n"))
            #expect(!result.out.contains("1 images"))
        }
    }

    @Test func aFileGivenAsPathSaysWhatIsNeeded() async throws {
        let tree = try TempTree("first-hour-zip")
        defer { tree.remove() }
        let zip = try tree.write("survey.zip", [0x50, 0x4B, 0x03, 0x04])
        // Archives are read in place now: this stub is a broken one, named with what is wrong, and
        // as nothing in it could be read the scan says so with 74.
        let result = await Self.run(["scan", zip])
        #expect(result.code == 74)
        #expect(result.err == "alti: no file under \(zip) could be read ((at its start): the archive breaks off: Truncated ZIP file header)\n")
        let notes = try tree.write("notes.txt", "flight log")
        let other = await Self.run(["sync", notes, "--project", Self.project, "--dry-run"])
        #expect(other.code == 66)
        #expect(other.err.hasSuffix("is neither a folder nor an archive alti can read (zip, tar, tar.gz/bz2/xz/zst, 7z): give the folder or the archive that holds the images\n"))
    }

    @Test func aDryRunNeedsNoKeyOrToken() async throws {
        let tree = try Self.survey(2)
        defer { tree.remove() }
        let result = await Self.run(["sync", tree.path, "--project", Self.project, "--dry-run"])
        #expect(result.code == 0, "\(result.err)")
        #expect(result.connections == 0)
        #expect(result.out.contains("  offline: no app key is set, so the server was not asked; this plan is based on the manifest only\n"))
        #expect(result.out.contains("to send: 2 images"))
    }

    @Test func interruptedAndProgressLinesCountWhatWasSent() {
        var report = SyncReport()
        report.phase = .interrupted
        report.total = 24
        report.processing = ["a", "b", "c", "d"]
        report.notSent = (0..<20).map { "n\($0)" }
        let summary = SyncSummary(endpoint: "e", project: nil, cloud: "", bucket: "", sources: [], manifests: [], report: report,
                                  pathsBySHA1: [:], metrics: SyncMetrics.Snapshot(), dryRun: false, waited: true,
                                  offlinePlan: false, seconds: 1)
        #expect(SyncRenderer.next(summary)
                == "Interrupted: 4 of 24 images on the server (0 Ready), 20 left to send. Progress is saved; run the same command again to continue.")

        let state = ProgressState(stage: .uploading, done: 20, total: 24, bytesDone: 1_600_000, bytesTotal: 1_900_000,
                                  rate: 190_000)
        #expect(LiveFrame.plainLine(state)
                == "alti: uploading 20/24 images · 1.6 MB of 1.9 MB · 190.0 KB/s · ETA 0:02 · retries 0 · failed 0 · 0 in flight")
    }

    @Test func syncHelpListsEveryExitCodeAndTheManifestFlag() {
        let help = AltiCommand.helpMessage(for: Sync.self, columns: 1000)
        for code in ["64", "65", "66", "67", "69", "73", "74", "75", "76", "77", "78", "79", "130"] {
            #expect(help.contains(" \(code) "), "exit code \(code) missing from alti sync --help")
        }
        let usage = help.components(separatedBy: "USAGE:").last ?? ""
        #expect(usage.prefix(300).contains("--manifest <file>"))
    }

    @Test func gigapixelsPrintAsTheyAre() async throws {
        let tree = try Self.survey(3)
        defer { tree.remove() }
        let result = await Self.run(["scan", tree.path, "--json"])
        #expect(result.code == 0)
        let line = try #require(result.out.split(separator: "\n").first { $0.contains("\"gigapixels\"") })
        let number = line.split(separator: ":")[1].trimmingCharacters(in: CharacterSet(charactersIn: " ,"))
        #expect(number.count <= 12, "gigapixels printed as \(number)")
    }
}
