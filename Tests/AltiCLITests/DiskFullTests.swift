import AltiEmulator
import AltiTestSupport
import Foundation
import Testing

@testable import AltiCore

/// A folder that can be made full on demand: a tiny tmpfs mounted on it (root), or, where mount
/// is refused, an ordinary folder and a file-size limit (RLIMIT_FSIZE set on the running child
/// with prlimit, SIGXFSZ ignored: its writes fail with EFBIG). Unmount with `remove()`.
final class FillableDisk: @unchecked Sendable {
    let path: String
    let isTmpfs: Bool
    private let parent: TempTree

    init() throws {
        parent = try TempTree("disk")
        path = parent.path("disk")
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        // ALTI_TEST_DISK_FULL_BY_RLIMIT=1 tries the fallback where mount would work.
        if ProcessInfo.processInfo.environment["ALTI_TEST_DISK_FULL_BY_RLIMIT"] == "1" {
            isTmpfs = false
        } else {
            isTmpfs = try Run.process("/usr/bin/mount", ["-t", "tmpfs", "-o", "size=1m", "tmpfs", path]).exitCode == 0
        }
    }

    /// Fills the disk (tmpfs: a file grown until ENOSPC), or limits `pid`'s file size to 1 byte.
    func fill(for pid: pid_t) throws {
        guard isTmpfs else {
            let limited = try Run.process("/usr/bin/prlimit", ["--pid", "\(pid)", "--fsize=1"])
            if limited.exitCode != 0 { throw RunError("prlimit failed: \(limited.stderr)") }
            return
        }
        let fd = open(path + "/filler", O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { throw RunError("cannot create the filler: \(errno)") }
        defer { close(fd) }
        let chunk = [UInt8](repeating: 0x55, count: 4096)
        while true {
            let n = chunk.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == ENOSPC { return }
                throw RunError("filling the disk failed: \(errno)")
            }
        }
    }

    /// Frees the space the filler took.
    func free() { unlink(path + "/filler") }

    /// The message alti must give for a write of `file` that failed on this disk.
    func message(_ what: String, _ file: String, kept: String) -> String {
        isTmpfs ? "disk full: cannot \(what) \(file) (No space left on device); free space and run again (\(kept))"
                : "file size limit reached: cannot \(what) \(file) (File too large); raise the limit (ulimit -f) or free space and run again (\(kept))"
    }

    func remove() {
        if isTmpfs { _ = try? Run.process("/usr/bin/umount", [path]) }
        parent.remove()
    }
}

/// A full disk while alti writes: the previous manifest stays byte for byte, one line says so
/// (exit 73, naming the file, "free space and run again"), what was journaled is kept, and once
/// space is freed a plain re-run finishes. The manifest (and its journal) live on a tiny tmpfs
/// (`--manifest`); the child stops itself at a chosen point (`ALTI_CRASH_AT=<point>:pause`),
/// the test fills the disk and lets it go on.
@Suite(.serialized) struct DiskFullTests {
    static let project = ProjectSeed.sample.id

    static func survey(_ count: Int) throws -> TempTree {
        let tree = try TempTree("disk-full")
        for n in 1...count {
            try tree.copy(CommandContextTests.sample(n), to: "f/DJI_\(String(format: "%04d", n)).JPG")
        }
        try tree.ageAllFiles()
        return tree
    }

    /// Runs `args` paused at `pauseAt`; `atPause` sees the world there; then the disk fills and
    /// the child goes on to its end.
    static func runFillingAt(_ pauseAt: String, _ args: [String], _ env: [String: String], disk: FillableDisk,
                             atPause: () throws -> Void = {}) async throws -> AltiChild {
        let pauseFile = NSTemporaryDirectory() + "alti-pause-\(UUID().uuidString.prefix(8))"
        let child = try AltiChild.launch(args, env.merging(["ALTI_CRASH_AT": pauseAt + ":pause",
                                                           "ALTI_CRASH_PAUSE_FILE": pauseFile]) { _, new in new },
                                         underFileSizeLimit: !disk.isTmpfs)
        do {
            try await child.waitUntilPaused(pauseFile)
            try atPause()
            try disk.fill(for: child.pid)
        } catch {
            kill(child.pid, SIGKILL)
            unlink(pauseFile)
            throw error
        }
        unlink(pauseFile)
        try await child.waitForExit()
        return child
    }

    static func bytes(_ path: String) -> Data? { FileManager.default.contents(atPath: path) }

    /// (a) The scan's manifest save: a survey synced before gets two more images; the disk fills
    /// during the scan; the old manifest stays, nothing is sent, and the re-run finishes.
    @Test func aFullDiskDuringTheScanSaveKeepsThePreviousManifest() async throws {
        let tree = try Self.survey(4)
        let disk = try FillableDisk()
        defer { disk.remove(); tree.remove() }
        let manifest = disk.path + "/manifest.json"
        try await withEmulator(testEmulatorConfiguration()) { emu in
            let env = CrashMatrixTests.env(emu, ["ALTI_SCAN_CHECKPOINT_MS": "600000"])
            let args = ["sync", tree.path, "--project", Self.project, "--manifest", manifest]
            let first = try await SyncEndToEndTests.alti(args, env)
            #expect(first.exitCode == 0, "\(first.stderr)")
            let previous = Self.bytes(manifest)
            #expect(previous != nil)
            try tree.copy(CommandContextTests.sample(5), to: "f/DJI_0005.JPG")
            try tree.copy(CommandContextTests.sample(6), to: "f/DJI_0006.JPG")
            try tree.ageAllFiles()
            let before = await emu.state.stats()

            let child = try await Self.runFillingAt("scan-hashed:1", args, env, disk: disk)
            defer { child.removeFiles() }
            #expect(child.process.terminationStatus == 73, "\(child.stderr)")
            #expect(child.stderr == "alti: " + disk.message("write manifest", manifest, kept: "the previous manifest is intact") + "\n")
            #expect(Self.bytes(manifest) == previous, "the previous manifest changed: \(child.stderr)")
            #expect(CrashMatrixTests.tempFiles(manifest).isEmpty)
            let after = await emu.state.stats()
            // At most the project's preflight (a read, sent while the scan runs): nothing about an image.
            #expect(after.graphqlRequests <= before.graphqlRequests + 1)
            #expect(after.graphqlFields["hasImage"] == before.graphqlFields["hasImage"], "nothing was asked about an image")
            #expect(after.registrations == before.registrations && after.puts == before.puts)

            disk.free()
            let rerun = try await SyncEndToEndTests.alti(args, env)
            #expect(rerun.exitCode == 0, "\(rerun.stderr)")
            #expect(await emu.state.stats().imagesByState["Ready"] == 6)
            #expect(try ManifestSchema.errors([manifest]) == [])
        }
    }

    /// (b) A journal append during the sync: the lookups are journaled, then the disk fills before
    /// the registrations are: the sync stops sending (it can no longer record), exits 73, the
    /// journal keeps the events written before (no fragment), the manifest is as bound.
    @Test func aFullDiskOnAJournalAppendStopsSendingAndKeepsWhatWasJournaled() async throws {
        let tree = try Self.survey(12)
        let disk = try FillableDisk()
        defer { disk.remove(); tree.remove() }
        let manifest = disk.path + "/manifest.json"
        let journal = manifest + ".journal"
        try await withEmulator(testEmulatorConfiguration()) { emu in
            let env = CrashMatrixTests.env(emu, ["ALTI_SCAN_CHECKPOINT_MS": "600000"])
            let args = ["sync", tree.path, "--project", Self.project, "--manifest", manifest]
            var bound: Data?
            var journaled: [JournalEvent] = []
            // Paused before the second batch (the registrations); the first (12 lookups) is written.
            let child = try await Self.runFillingAt("journal-append:2", args, env, disk: disk) {
                bound = Self.bytes(manifest)
                journaled = try SyncJournal.read(path: journal)
            }
            defer { child.removeFiles() }
            #expect(journaled.count == 12 && journaled.allSatisfy { $0.kind == .state })
            #expect(child.process.terminationStatus == 73, "\(child.stderr)")
            #expect(child.stderr == "alti: " + disk.message("append to the sync journal", journal,
                                                            kept: "the manifest and the events journaled before are intact") + "\n")
            #expect(Self.bytes(manifest) == bound, "the manifest changed")
            #expect(try SyncJournal.read(path: journal) == journaled, "the journal lost or gained events")
            #expect(Self.bytes(journal)?.last == 0x0A, "the failed batch left a fragment")
            let stats = await emu.state.stats()
            #expect(stats.puts == 0, "an image was sent that could not be recorded")

            disk.free()
            let rerun = try await SyncEndToEndTests.alti(args, env)
            #expect(rerun.exitCode == 0, "\(rerun.stderr)")
            #expect(await emu.state.stats().imagesByState["Ready"] == 12)
            #expect(try ManifestSchema.errors([manifest]) == [])
            #expect(!FileManager.default.fileExists(atPath: journal))
        }
    }

    /// (c) The final fold's save: every image is stored and journaled, the disk fills before the
    /// fold: exit 73, the manifest as bound, the journal whole; the re-run sends nothing again.
    @Test func aFullDiskAtTheFinalFoldKeepsTheJournalAndTheRerunSendsNothing() async throws {
        let tree = try Self.survey(4)
        let disk = try FillableDisk()
        defer { disk.remove(); tree.remove() }
        let manifest = disk.path + "/manifest.json"
        let journal = manifest + ".journal"
        try await withEmulator(testEmulatorConfiguration()) { emu in
            let env = CrashMatrixTests.env(emu, ["ALTI_SCAN_CHECKPOINT_MS": "600000"])
            let args = ["sync", tree.path, "--project", Self.project, "--manifest", manifest]
            var bound: Data?
            var journaled: [JournalEvent] = []
            let child = try await Self.runFillingAt("fold", args, env, disk: disk) {
                bound = Self.bytes(manifest)
                journaled = try SyncJournal.read(path: journal)
            }
            defer { child.removeFiles() }
            #expect(journaled.filter { $0.kind == .stored }.count == 4, "\(journaled.map(\.kind)) \(child.stderr) \(child.stdout)")
            #expect(child.process.terminationStatus == 73, "\(child.stderr)")
            #expect(child.stderr == "alti: " + disk.message("write manifest", manifest, kept: "the previous manifest is intact") + "\n")
            #expect(Self.bytes(manifest) == bound, "the manifest changed")
            #expect(try SyncJournal.read(path: journal) == journaled)
            #expect(CrashMatrixTests.tempFiles(manifest).isEmpty)
            let stored = await emu.state.stats().putsByImage

            disk.free()
            let rerun = try await SyncEndToEndTests.alti(args, env)
            #expect(rerun.exitCode == 0, "\(rerun.stderr)")
            #expect(await emu.state.stats().putsByImage == stored, "a recorded store was sent again")
            let saved = try JSONDecoder().decode(Manifest.self, from: Data(contentsOf: URL(fileURLWithPath: manifest)))
            #expect(saved.entries.allSatisfy { $0.server?.state == .ready })
            #expect(try ManifestSchema.errors([manifest]) == [])
            #expect(!FileManager.default.fileExists(atPath: journal))
        }
    }
}
