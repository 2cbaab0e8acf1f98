import AltiEmulator
import AltiTestSupport
import Foundation
import Testing

@testable import AltiCore

/// The built `alti` launched as a child we can signal and watch (stdout/stderr go to files, so a
/// chatty child never blocks on a full pipe; the test never blocks a thread of the pool, which
/// serves the in-process emulator).
final class AltiChild {
    let process: Process
    let outFile: String
    let errFile: String
    /// Pipes instead of files (a child under a file-size limit could not write its output files).
    let pipes: (out: Pipe, err: Pipe)?

    var pid: pid_t { process.processIdentifier }
    private var piped: [String: String] = [:]

    init(process: Process, outFile: String, errFile: String, pipes: (out: Pipe, err: Pipe)?) {
        self.process = process
        self.outFile = outFile
        self.errFile = errFile
        self.pipes = pipes
    }

    /// Starts `alti args`. `underFileSizeLimit`: through `/bin/sh` with SIGXFSZ ignored (kept
    /// across exec), so a file-size limit makes writes fail with EFBIG instead of killing alti,
    /// and with its output on pipes, which no such limit applies to (alti's output is small).
    static func launch(_ args: [String], _ env: [String: String], underFileSizeLimit: Bool = false) throws -> AltiChild {
        let process = Process()
        let alti = try Run.altiBinary().path
        if underFileSizeLimit {
            process.executableURL = URL(fileURLWithPath: "/bin/sh")
            process.arguments = ["-c", "trap '' XFSZ; exec \"$0\" \"$@\"", alti] + args
        } else {
            process.executableURL = URL(fileURLWithPath: alti)
            process.arguments = args
        }
        process.environment = Run.environment(env)
        let base = NSTemporaryDirectory() + "alti-child-\(UUID().uuidString.prefix(8))"
        var pipes: (out: Pipe, err: Pipe)?
        if underFileSizeLimit {
            pipes = (Pipe(), Pipe())
            process.standardOutput = pipes!.out
            process.standardError = pipes!.err
        } else {
            _ = FileManager.default.createFile(atPath: base + ".out", contents: nil)
            _ = FileManager.default.createFile(atPath: base + ".err", contents: nil)
            process.standardOutput = FileHandle(forWritingAtPath: base + ".out")
            process.standardError = FileHandle(forWritingAtPath: base + ".err")
        }
        try process.run()
        return AltiChild(process: process, outFile: base + ".out", errFile: base + ".err", pipes: pipes)
    }

    /// What the child wrote (for pipes: read once it has ended).
    private func output(_ file: String, _ pipe: Pipe?) -> String {
        if let pipe {
            guard !process.isRunning else { return "" }
            if let text = piped[file] { return text }
            let text = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            piped[file] = text
            return text
        }
        return (try? String(contentsOfFile: file, encoding: .utf8)) ?? ""
    }

    /// Waits (at most ~30 s) for the child to end, polling.
    func waitForExit() async throws {
        for _ in 0..<3000 {
            if !process.isRunning { return }
            try await Task.sleep(for: .milliseconds(10))
        }
        kill(pid, SIGKILL)
        throw RunError("alti \(process.arguments ?? []) did not end within 30 s")
    }

    /// Waits (at most ~30 s) until the child pauses at its armed point (`ALTI_CRASH_AT=...:pause`
    /// creates `pauseFile`); removing the file lets it go on.
    func waitUntilPaused(_ pauseFile: String) async throws {
        for _ in 0..<3000 {
            if FileManager.default.fileExists(atPath: pauseFile) { return }
            if !process.isRunning { throw RunError("alti ended (\(process.terminationStatus)) before its pause point: \(stderr)") }
            try await Task.sleep(for: .milliseconds(10))
        }
        throw RunError("alti never reached its pause point")
    }

    var killedBySIGKILL: Bool { process.terminationReason == .uncaughtSignal && process.terminationStatus == SIGKILL }
    var stdout: String { output(outFile, pipes?.out) }
    var stderr: String { output(errFile, pipes?.err) }

    func removeFiles() {
        unlink(outFile)
        unlink(errFile)
    }
}

/// The crash matrix: the real `alti sync` SIGKILLed at many instants (by the `ALTI_CRASH_AT` test
/// hook for internal ones, by the test, timed from the emulator's counters, for bytes in flight),
/// then run again. After every re-run: the manifest parses and validates against the schema,
/// every image is Ready, no image whose store completed AND was recorded (a `stored` event left
/// in the journal, or Ready in the manifest) is PUT again, no temp file, no journal.
@Suite(.serialized) struct CrashMatrixTests {
    static let project = ProjectSeed.sample.id
    static let images = 6

    /// Samples 1...6, aged so the racy guard stays out of the way.
    static func survey() throws -> TempTree {
        let tree = try TempTree("crash")
        for n in 1...images {
            try tree.copy(CommandContextTests.sample(n), to: "f/DJI_\(String(format: "%04d", n)).JPG")
        }
        try tree.ageAllFiles()
        return tree
    }

    /// Short retries; a checkpoint after every hashed file (so a kill mid-scan finds some saved).
    static func env(_ emu: RunningEmulator, _ extra: [String: String] = [:]) -> [String: String] {
        SyncEndToEndTests.env(emu, ["ALTI_RETRY_ATTEMPTS": "3", "ALTI_SCAN_CHECKPOINT_MS": "0"].merging(extra) { _, new in new })
    }

    /// What a killed run left behind.
    struct Leftover {
        var journal: [JournalEvent]
        /// Image ids whose store completed and was recorded: `stored` in the journal, or Ready in
        /// the manifest (when it parses).
        var recorded: Set<String>
        var tempFiles: [String]
        var manifestPath: String
    }

    static func tempFiles(_ manifest: String) -> [String] {
        let folder = (manifest as NSString).deletingLastPathComponent
        let prefix = "." + (manifest as NSString).lastPathComponent + ".tmp-"
        return ((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []).filter { $0.hasPrefix(prefix) }
    }

    static func leftover(manifest: String) throws -> Leftover {
        let journal = try SyncJournal.read(path: manifest + ".journal")
        var recorded = Set(journal.filter { $0.kind == .stored }.compactMap(\.imageID))
        let exists = FileManager.default.fileExists(atPath: manifest)
        if exists {
            // A killed run never leaves a manifest that does not parse (only whole renames).
            let saved = try JSONDecoder().decode(Manifest.self, from: Data(contentsOf: URL(fileURLWithPath: manifest)))
            for entry in saved.entries {
                if let server = entry.server, server.state == .ready || server.state == .readyStrong { recorded.insert(server.imageID) }
            }
        }
        return Leftover(journal: journal, recorded: recorded, tempFiles: tempFiles(manifest), manifestPath: manifest)
    }

    /// Runs `args` with the hook armed at `crashAt`; the child must die by SIGKILL there.
    static func runKilled(at crashAt: String, _ args: [String], _ env: [String: String]) async throws -> AltiChild {
        let child = try AltiChild.launch(args, env.merging(["ALTI_CRASH_AT": crashAt]) { _, new in new })
        try await child.waitForExit()
        #expect(child.killedBySIGKILL, "\(crashAt): alti was not killed there (exit \(child.process.terminationStatus)): \(child.stderr)")
        return child
    }

    /// Kills `child` while an upload body (a PUT or an OSS part) is being received at a trickle:
    /// once `afterStored` stores are done, the next storage request trickles; the kill comes
    /// when the emulator has held a body in flight across two looks 300 ms apart with no store
    /// completing in between (a fast body never spans them).
    static func killMidBody(_ child: AltiChild, _ emu: RunningEmulator, afterStored: @escaping @Sendable (EmulatorStats) -> Bool) async throws {
        for _ in 0..<1500 {
            if afterStored(await emu.state.stats()) { break }
            if !child.process.isRunning { throw RunError("alti ended before the stores the kill waits for: \(child.stderr)") }
            try await Task.sleep(for: .milliseconds(10))
        }
        await emu.state.updateFaults {
            $0.put.trickleNext = 1
            // Slow enough to be caught in flight, fast enough that the emulator's handler (which
            // sleeps per chunk received) lets it shut down soon after the kill.
            $0.put.trickleBytesPerSecond = 32768
        }
        for _ in 0..<1500 {
            let before = await emu.state.stats()
            if await emu.state.uploadBodiesInFlight() > 0 {
                try await Task.sleep(for: .milliseconds(300))
                let after = await emu.state.stats()
                if await emu.state.uploadBodiesInFlight() > 0, after.puts == before.puts {
                    kill(child.pid, SIGKILL)
                    try await child.waitForExit()
                    #expect(child.killedBySIGKILL)
                    return
                }
            }
            if !child.process.isRunning { throw RunError("alti ended before a body was in flight: \(child.stderr)") }
            try await Task.sleep(for: .milliseconds(10))
        }
        throw RunError("no upload body was ever in flight")
    }

    /// Runs the sync again (faults off) and checks everything the matrix promises.
    static func expectRecovered(_ name: String, manifest: String, args: [String], env: [String: String],
                                emu: RunningEmulator, images: Int, left: Leftover) async throws {
        await emu.setFaults(FaultSettings())
        let before = await emu.state.stats()
        let rerun = try await SyncEndToEndTests.alti(args, env)
        #expect(rerun.exitCode == 0, "\(name): re-run exit \(rerun.exitCode): \(rerun.stdout) \(rerun.stderr)")
        #expect(try ManifestSchema.errors([manifest]) == [], "\(name): the manifest does not validate")
        let saved = try JSONDecoder().decode(Manifest.self, from: Data(contentsOf: URL(fileURLWithPath: manifest)))
        let usable = saved.entries.filter { $0.verdict == .ok && !$0.missing }
        #expect(usable.count == images, "\(name)")
        #expect(usable.allSatisfy { $0.server?.state == .ready }, "\(name): not every image is Ready in the manifest")
        let after = await emu.state.stats()
        #expect(after.imagesByState["Ready"] == images, "\(name): \(after.imagesByState)")
        #expect(after.putsByImage.count == images, "\(name)")
        for id in left.recorded {
            #expect(after.putsByImage[id] == before.putsByImage[id], "\(name): image \(id) was stored and recorded, and sent again")
        }
        #expect(tempFiles(manifest).isEmpty, "\(name): temp files left: \(tempFiles(manifest))")
        #expect(!FileManager.default.fileExists(atPath: manifest + ".journal"), "\(name): the journal was not removed after the fold")
    }

    /// One case: a fresh survey and emulator, a run killed at `crashAt`, `check` on what it left,
    /// then the re-run and its checks.
    static func killAndRerun(_ crashAt: String, check: (Leftover, EmulatorStats) throws -> Void) async throws {
        let tree = try survey()
        defer { tree.remove() }
        try await withEmulator(testEmulatorConfiguration()) { emu in
            let args = ["sync", tree.path, "--project", project, "--transfers", "2"]
            let child = try await runKilled(at: crashAt, args, env(emu))
            defer { child.removeFiles() }
            let manifest = tree.path(".alti/manifest.json")
            let left = try leftover(manifest: manifest)
            try check(left, await emu.state.stats())
            try await expectRecovered(crashAt, manifest: manifest, args: args, env: env(emu), emu: emu, images: images, left: left)
        }
    }

    /// No request but the project's preflight: no `hasImage`, registration or upload.
    static func nothingAboutImages(_ stats: EmulatorStats) -> Bool {
        Set(stats.graphqlFields.keys).isSubset(of: ["project", "support", "getGeoIPInfo"])
            && stats.graphqlRequests <= 1 && stats.registrations == 0 && stats.puts == 0
    }

    @Test func killedDuringTheScanAfterThreeFilesHashed() async throws {
        try await Self.killAndRerun("scan-hashed:3") { left, stats in
            // Checkpoints after files 1 and 2 were saved; nothing about an image reached the
            // server (the project's preflight, a read, goes out while the scan runs).
            let saved = try JSONDecoder().decode(Manifest.self, from: Data(contentsOf: URL(fileURLWithPath: left.manifestPath)))
            #expect(saved.entries.filter { $0.sha1 != nil }.count == 2)
            #expect(Self.nothingAboutImages(stats))
        }
    }

    @Test func killedDuringAScanCheckpointSaveBetweenTempFileAndRename() async throws {
        try await Self.killAndRerun("checkpoint-temp-written:2") { left, stats in
            #expect(left.tempFiles.count == 1, "the kill came between the temp write and the rename")
            let saved = try JSONDecoder().decode(Manifest.self, from: Data(contentsOf: URL(fileURLWithPath: left.manifestPath)))
            #expect(saved.entries.filter { $0.sha1 != nil }.count == 1, "the first checkpoint stands")
            #expect(Self.nothingAboutImages(stats))
        }
    }

    @Test func killedRightAfterTheBindingSave() async throws {
        try await Self.killAndRerun("binding-saved") { left, stats in
            let saved = try JSONDecoder().decode(Manifest.self, from: Data(contentsOf: URL(fileURLWithPath: left.manifestPath)))
            #expect(saved.remote.projectID == Self.project)
            #expect(!FileManager.default.fileExists(atPath: left.manifestPath + ".journal"))
            #expect(stats.registrations == 0 && stats.puts == 0)
        }
    }

    @Test func killedBetweenRegistrationAndPut() async throws {
        try await Self.killAndRerun("registered") { left, stats in
            #expect(left.journal.filter { $0.kind == .registered }.count == Self.images)
            #expect(left.journal.filter { $0.kind == .started }.count == Self.images)
            #expect(stats.registrations == Self.images && stats.puts == 0)
        }
    }

    @Test func killedAfterHalfAJournalLineWasWritten() async throws {
        try await Self.killAndRerun("journal-torn:5") { left, stats in
            let bytes = try Data(contentsOf: URL(fileURLWithPath: left.manifestPath + ".journal"))
            #expect(bytes.last != 0x0A, "the journal ends in a torn line")
            #expect(!left.journal.isEmpty)
        }
    }

    @Test func killedAfterAJournalWriteBeforeItsFsync() async throws {
        try await Self.killAndRerun("journal-unsynced:6") { left, stats in
            let bytes = try Data(contentsOf: URL(fileURLWithPath: left.manifestPath + ".journal"))
            #expect(bytes.last == 0x0A)
            #expect(left.journal.contains { $0.kind == .stored }, "some stores were recorded before the kill")
        }
    }

    @Test func killedWhileFoldingWithTheTempFileWrittenNotRenamed() async throws {
        try await Self.killAndRerun("fold-temp-written") { left, stats in
            #expect(left.tempFiles.count == 1)
            // Every store is recorded in the journal: the re-run sends nothing.
            #expect(left.recorded.count == Self.images)
            #expect(stats.putsByImage.count == Self.images)
        }
    }

    @Test func killedAfterTheFoldRenamedBeforeTheJournalWasRemoved() async throws {
        try await Self.killAndRerun("fold-saved") { left, stats in
            #expect(left.tempFiles.isEmpty)
            #expect(FileManager.default.fileExists(atPath: left.manifestPath + ".journal"))
            let saved = try JSONDecoder().decode(Manifest.self, from: Data(contentsOf: URL(fileURLWithPath: left.manifestPath)))
            #expect(saved.entries.allSatisfy { $0.server?.state == .ready })
            #expect(left.recorded.count == Self.images)
        }
    }

    @Test func killedInTheMiddleOfAPutBody() async throws {
        let tree = try Self.survey()
        defer { tree.remove() }
        try await withEmulator(testEmulatorConfiguration()) { emu in
            let args = ["sync", tree.path, "--project", Self.project, "--transfers", "1"]
            // 100 ms per PUT: on a 0 ms link the 6 images are stored before this test, polling
            // every 10 ms, could make the next body trickle.
            await emu.state.updateFaults { $0.put.latencyMilliseconds = 100 }
            let child = try AltiChild.launch(args, Self.env(emu))
            defer { child.removeFiles() }
            try await Self.killMidBody(child, emu) { $0.puts("ok") >= 2 }
            let manifest = tree.path(".alti/manifest.json")
            let left = try Self.leftover(manifest: manifest)
            let stats = await emu.state.stats()
            #expect(stats.puts("ok") < Self.images, "the kill came before the last store")
            #expect(left.recorded.count >= 2)
            try await Self.expectRecovered("mid-PUT", manifest: manifest, args: args, env: Self.env(emu), emu: emu,
                                           images: Self.images, left: left)
        }
    }

    @Test func killedInTheMiddleOfAnOSSMultipartPart() async throws {
        let tree = try TempTree("crash-oss")
        defer { tree.remove() }
        try tree.write("pano/PANO_0001.JPG", try OSSMultipartTests.bigJPEG(size: 1_200_000))
        try tree.copy(CommandContextTests.sample(1), to: "f/DJI_0001.JPG")
        try tree.ageAllFiles()
        try await withEmulator(testEmulatorConfiguration()) { emu in
            // Above 1 MiB in parts of 0.1 MiB: 12 parts for the big image, one PutObject for the other.
            let args = ["sync", tree.path, "--project", Self.project, "--cloud", "oss", "--multipart-threshold", "1", "--part-size", "0.1",
                        "--transfers", "1"]
            let child = try AltiChild.launch(args, Self.env(emu))
            defer { child.removeFiles() }
            try await Self.killMidBody(child, emu) { stats in
                stats.partsByKey.values.reduce(0) { $0 + $1.count } >= 3
            }
            let manifest = tree.path(".alti/manifest.json")
            let left = try Self.leftover(manifest: manifest)
            let journaledParts = Set(left.journal.filter { $0.kind == .partStored }.compactMap { $0.part?.number })
            #expect(journaledParts.count >= 3 && journaledParts.count < 12, "\(journaledParts)")
            let before = await emu.state.stats().partsByKey
            #expect(before.count == 1)
            try await Self.expectRecovered("mid-part", manifest: manifest, args: args, env: Self.env(emu), emu: emu,
                                           images: 2, left: left)
            // Parts stored and journaled are not sent again.
            let after = await emu.state.stats().partsByKey
            for (key, parts) in before {
                for number in journaledParts {
                    #expect(after[key]?[number] == parts[number], "part \(number) was journaled and sent again")
                }
            }
        }
    }

    @Test func killedMidUploadFromATarGz() async throws {
        let tree = try TempTree("crash-targz")
        defer { tree.remove() }
        let archive = tree.path("survey.tar.gz")
        try ArchiveSyncTests.makeArchive(archive, format: "gz", files: (1...Self.images).map {
            ("f/DJI_\(String(format: "%04d", $0)).JPG", CommandContextTests.sample($0))
        })
        try tree.ageAllFiles()
        try await withEmulator(testEmulatorConfiguration()) { emu in
            let args = ["sync", archive, "--project", Self.project, "--transfers", "1"]
            // 100 ms per PUT, as for the folder: the test must catch a body in flight.
            await emu.state.updateFaults { $0.put.latencyMilliseconds = 100 }
            let child = try AltiChild.launch(args, Self.env(emu))
            defer { child.removeFiles() }
            try await Self.killMidBody(child, emu) { $0.puts("ok") >= 2 }
            let manifest = archive + ManifestStore.archiveSuffix
            let left = try Self.leftover(manifest: manifest)
            #expect(left.recorded.count >= 2)
            #expect(await emu.state.stats().puts("ok") < Self.images)
            try await Self.expectRecovered("tar.gz mid-upload", manifest: manifest, args: args, env: Self.env(emu), emu: emu,
                                           images: Self.images, left: left)
        }
    }
}
