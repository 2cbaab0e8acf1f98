@testable import AltiCLI
import AltiCore
import AltiTestSupport
import Foundation
import Testing

/// `alti scan` end to end: the built binary on temporary trees; stdout, stderr, exit codes.
@Suite("alti scan (binary)")
struct ScanCommandTests {
    var sample: String { Run.packageRoot.appendingPathComponent("samples/sample-survey").path }

    func json(_ text: String) throws -> [String: Any] {
        let object = try JSONSerialization.jsonObject(with: Data(text.utf8))
        let top = try #require(object as? [String: Any])
        let sources = try #require(top["sources"] as? [[String: Any]])
        return try #require(sources.first)
    }

    @Test func summaryThenNoChangeRescanAsJSON() throws {
        let tree = try TempTree("cli-scan")
        try tree.copy(sample, to: "survey")
        try tree.write("survey/readme.txt", "notes")
        try tree.write("survey/broken.jpg", "oops")
        try tree.ageAllFiles()
        let first = try Run.alti(["scan", tree.path("survey")])
        #expect(first.exitCode == 79, "\(first.stderr)")  // broken.jpg is named: not a usable image
        #expect(first.stderr == "")  // not a terminal: no progress line
        #expect(first.stdout.contains("Scanned \(tree.path("survey"))\n"))
        #expect(first.stdout.contains("  images:     24 (JPEG 24), "))
        #expect(first.stdout.contains("0.050 gigapixels"))
        #expect(first.stdout.contains("\n  exif:       24 with GPS, 24 with capture time\n"))
        #expect(first.stdout.contains("    broken.jpg: notAnImage: "))
        #expect(first.stdout.contains("  skipped:    2 other files, 1 hidden or junk"))
        #expect(first.stdout.contains("  hashed:     24 files"))
        #expect(first.stdout.contains("  manifest:   \(tree.path("survey/.alti/manifest.json"))\n"))

        let second = try Run.alti(["scan", "--json", tree.path("survey")])
        #expect(second.exitCode == 79, "\(second.stderr)")
        #expect(second.stderr == "")
        let report = try json(second.stdout)
        #expect(report["filesHashed"] as? Int == 0)
        #expect(report["filesReused"] as? Int == 25)
        #expect(report["images"] as? Int == 24)
        #expect(report["imagesByType"] as? [String: Int] == ["JPEG": 24])
        #expect(report["otherFilesSkipped"] as? Int == 2)  // readme.txt and the sample's README.md
        #expect(report["manifest"] as? String == tree.path("survey/.alti/manifest.json"))
        #expect(try ManifestSchema.errors([tree.path("survey/.alti/manifest.json")]) == [])
    }

    /// A manifest of an alti that recorded no EXIF: the next scan reads it from the headers and says so.
    @Test func exifOfAnOlderManifestIsBackfilledAndCounted() throws {
        let tree = try TempTree("cli-exif")
        try tree.copy(sample + "/flight2", to: "survey")
        try tree.ageAllFiles()
        let first = try Run.alti(["scan", tree.path("survey")])
        #expect(first.exitCode == 0, "\(first.stderr)")
        #expect(first.stdout.contains("\n  exif:       12 with GPS, 12 with capture time\n"))
        // As an older alti wrote it: no "exif" key in any entry.
        let file = tree.path("survey/.alti/manifest.json")
        var object = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: file)))
            as? [String: Any])
        object["entries"] = try #require(object["entries"] as? [[String: Any]]).map { entry -> [String: Any] in
            var e = entry
            e.removeValue(forKey: "exif")
            return e
        }
        try JSONSerialization.data(withJSONObject: object).write(to: URL(fileURLWithPath: file))
        #expect(try ManifestStore().load(URL(fileURLWithPath: file))?.entries.allSatisfy { $0.exif == nil } == true)
        let second = try Run.alti(["scan", tree.path("survey")])
        #expect(second.exitCode == 0, "\(second.stderr)")
        #expect(second.stdout.contains("\n  exif:       12 with GPS, 12 with capture time (12 read from the headers "
            + "of images scanned by an older alti; not hashed again)\n"))
        #expect(second.stdout.contains("  hashed:     0 files (0 bytes), reused 12 unchanged"))
        let third = try Run.alti(["scan", tree.path("survey")])
        #expect(third.stdout.contains("\n  exif:       12 with GPS, 12 with capture time\n"))
    }

    @Test func relativePathAndManifestFlag() throws {
        let tree = try TempTree("cli-rel")
        try tree.write("photos/a.png", Array([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) + [0, 0, 0, 13]
            + Array("IHDR".utf8) + [0, 0, 7, 128, 0, 0, 4, 56, 8, 2, 0, 0, 0] + [0, 0, 0, 0]
            + [0, 0, 0, 0, 0x49, 0x45, 0x4E, 0x44, 0xAE, 0x42, 0x60, 0x82])
        let r = try Run.alti(["scan", "photos", "--manifest", "state/m.json", "--json"], currentDirectory: tree.path)
        #expect(r.exitCode == 0, "\(r.stderr)")
        let report = try json(r.stdout)
        #expect(report["root"] as? String == tree.path("photos"))
        #expect(report["manifest"] as? String == tree.path("state/m.json"))
        #expect(report["imagesByType"] as? [String: Int] == ["PNG": 1])
        #expect(abs((report["gigapixels"] as? Double ?? 0) - 0.0020736) < 1e-12)  // 1920x1080 < 2 MP
        let manifest = try ManifestStore().load(tree.url("state/m.json"))
        #expect(manifest?.entries.first?.width == 1920)
        #expect(manifest?.source.root == tree.path("photos"))
    }

    @Test func usageAndNoInputExitCodes() throws {
        let tree = try TempTree("cli-codes")
        let none = try Run.alti(["scan"])
        #expect(none.exitCode == 64)
        let two = try Run.alti(["scan", tree.path, tree.path, "--manifest", tree.path("m.json")])
        #expect(two.exitCode == 64)
        let missing = try Run.alti(["scan", tree.path("absent")])
        #expect(missing.exitCode == 66)
        #expect(missing.stderr == "alti: \(tree.path("absent")): No such file or directory\n")
        #expect(missing.stdout == "")
        let jobs = try Run.alti(["scan", tree.path, "--jobs", "0"])
        #expect(jobs.exitCode == 64)
    }

    @Test func corruptManifestExits65UntouchedUntilRebuild() throws {
        let tree = try TempTree("cli-corrupt")
        try tree.copy(sample + "/flight1/DJI_0001.JPG", to: "DJI_0001.JPG")
        let bytes = Array("{\n  \"schemaVersion\" : 1,\n  \"entries\" : [\n    {\"path\" : x}\n  ]\n}\n".utf8)
        try tree.write(".alti/manifest.json", bytes)
        let r = try Run.alti(["scan", tree.path])
        #expect(r.exitCode == 65)
        let lines = r.stderr.split(separator: "\n")
        #expect(lines.count == 1)
        #expect(r.stderr.hasPrefix("alti: \(tree.path(".alti/manifest.json")): invalid JSON at line 4, column "))
        #expect(r.stdout == "")
        #expect(try tree.read(".alti/manifest.json") == bytes)

        let rebuilt = try Run.alti(["scan", tree.path, "--rebuild"])
        #expect(rebuilt.exitCode == 0, "\(rebuilt.stderr)")
        #expect(rebuilt.stdout.contains("moved the unreadable manifest aside to \(tree.path(".alti/manifest.json.corrupt-"))"))
        let aside = try tree.files().filter { $0.hasPrefix(".alti/manifest.json.corrupt-") }
        #expect(aside.count == 1)
        #expect(try tree.read(aside[0]) == bytes)
        #expect(try ManifestSchema.errors([tree.path(".alti/manifest.json")]) == [])
    }

    @Test func lockedManifestExits73() throws {
        let tree = try TempTree("cli-lock")
        try tree.copy(sample + "/flight1/DJI_0002.JPG", to: "a.jpg")
        let store = ManifestStore()
        let lock = try store.lock(store.locate(root: tree.path, override: nil))
        let r = try Run.alti(["scan", tree.path])
        #expect(r.exitCode == 73)
        #expect(r.stderr.contains("is in use by another alti"))
        // The holder is named: this test process took the lock.
        #expect(r.stderr.contains("(pid \(getpid()), "))
        #expect(r.stderr.split(separator: "\n").count == 1)
        lock.release()
        #expect(try Run.alti(["scan", tree.path]).exitCode == 0)
    }

    /// Ctrl-C during a long first scan: exit 130, one line saying how much was hashed, a valid
    /// manifest holding it, and a re-run that continues instead of starting over. A sparse 64 GiB
    /// "image" (no disk space, but a long read) keeps the scan busy however fast the machine is;
    /// it is being read when the signal comes, so this also shows that a read in flight is
    /// abandoned rather than finished.
    @Test func ctrlCSavesWhatWasHashedAndARerunContinues() throws {
        let tree = try TempTree("cli-ctrlc")
        defer { tree.remove() }
        let base = try [UInt8](Data(contentsOf: URL(fileURLWithPath: sample + "/flight1/DJI_0001.JPG")))
        let total = 300
        for i in 0..<total {
            // A distinct image: a comment segment right after SOI, 1-64 KiB of padding.
            let comment = Array("alti test \(i) ".utf8) + [UInt8](repeating: UInt8(i % 200), count: 1_000 + i * 200)
            let length = comment.count + 2
            try tree.write("d\(i % 5)/img\(i).jpg",
                           Array(base[0..<2]) + [0xFF, 0xFE, UInt8(length >> 8), UInt8(length & 0xFF)] + comment + Array(base[2...]))
        }
        let huge = try tree.write("huge.jpg", Array(base.prefix(4096)))
        #expect(truncate(huge, 64 << 30) == 0)
        try tree.ageAllFiles()

        let manifestPath = tree.path(".alti/manifest.json")
        let process = Process()
        process.executableURL = try Run.altiBinary()
        process.arguments = ["scan", "--jobs", "2", tree.path]
        process.environment = Run.environment(["ALTI_SCAN_CHECKPOINT_MS": "0"])
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        // Wait for the first checkpoint holding a hashed file (at most ~60 s), then Ctrl-C once.
        var sawCheckpoint = false
        for _ in 0..<6000 where process.isRunning {
            if let m = try? ManifestStore.decode(Data(contentsOf: URL(fileURLWithPath: manifestPath)), file: manifestPath),
               m.entries.contains(where: { $0.sha1 != nil }) {
                sawCheckpoint = true
                break
            }
            usleep(10_000)
        }
        #expect(sawCheckpoint, "no checkpoint was saved while the scan ran")
        kill(process.processIdentifier, SIGINT)
        let stdout = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationStatus == 130, "\(stdout) \(stderr)")
        #expect(stdout == "")
        let lines = stderr.split(separator: "\n").map(String.init)
        #expect(lines.first == "alti: Ctrl-C: stopping, saving what is recorded (press Ctrl-C again to quit at once)")
        let last = try #require(lines.last)
        #expect(last.hasPrefix("alti: interrupted: ") && last.contains(" hashed and saved in \(manifestPath); run the same command again to continue"), "\(stderr)")

        #expect(try ManifestSchema.errors([manifestPath]) == [])
        let saved = try #require(try ManifestStore().load(URL(fileURLWithPath: manifestPath)))
        let hashed = saved.entries.filter { $0.sha1 != nil }.count
        #expect(hashed >= 1 && hashed < total)
        #expect(saved.entries.count == hashed)
        #expect(saved.entry(at: "huge.jpg") == nil)  // being read when stopped: not recorded
        #expect(last.contains("interrupted: \(hashed == 1 ? "1 file" : "\(hashed) files") of \(tree.path) hashed"), "\(last)")
        #expect(!(try tree.files().contains { $0.contains(".tmp-") }))  // no temp file left behind

        // The re-run (without the 64 GiB file) hashes only what the first run had not.
        #expect(unlink(huge) == 0)
        let rerun = try Run.alti(["scan", "--json", tree.path])
        #expect(rerun.exitCode == 0, "\(rerun.stderr)")
        let report = try json(rerun.stdout)
        #expect(report["filesReused"] as? Int == hashed)
        #expect(report["filesHashed"] as? Int == total - hashed)
        #expect(report["images"] as? Int == total)
        #expect(try ManifestSchema.errors([manifestPath]) == [])
    }

    @Test func checkpointIntervalFromTheEnvironment() {
        func interval(_ env: [String: String]) -> Duration? {
            var context = CommandContext.live
            context.environment = env
            return context.scanCheckpointInterval
        }
        #expect(interval([:]) == nil)
        #expect(interval(["ALTI_SCAN_CHECKPOINT_MS": "250"]) == .milliseconds(250))
        #expect(interval(["ALTI_SCAN_CHECKPOINT_MS": "0"]) == .zero)
        #expect(interval(["ALTI_SCAN_CHECKPOINT_MS": "-1"]) == nil)
        #expect(interval(["ALTI_SCAN_CHECKPOINT_MS": "soon"]) == nil)
    }

    @Test func rendererFormatsBytesAndProgress() {
        #expect(ScanRenderer.bytes(999) == "999 bytes")
        #expect(ScanRenderer.bytes(1_500_000) == "1.5 MB")
        let state = ProgressState(stage: .hashing, done: 10, total: 40, bytesDone: 100_000_000, bytesTotal: 400_000_000,
                                  rate: 100_000_000)
        #expect(LiveFrame.headline(state).plain == "hashing 10/40 files · 100.0 MB of 400.0 MB · 100.0 MB/s · ETA 0:03")
    }
}
