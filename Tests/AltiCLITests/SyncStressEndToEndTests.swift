import AltiEmulator
import AltiTestSupport
import Foundation
import Testing

@testable import AltiCore

/// Issue 11, "stress", end to end: the built `alti` against the in-process emulator. Invalid
/// images are not sent in a loop (PUTs counted per image by the emulator), a checksum mismatch
/// re-hashes, a 1 s URL lifetime on a slow link is named as such, `--timeout` stops a run and
/// saves it, and a client suspended past the server's idle timeout finishes with no image sent twice.
@Suite(.serialized) struct SyncStressEndToEndTests {
    typealias E2E = SyncEndToEndTests
    static let project = E2E.project

    static func entry(_ tree: TempTree, _ path: String) throws -> ManifestEntry {
        try #require(try E2E.manifest(tree).entries.first { $0.path == path })
    }

    @Test func anImageTheServerKeepsRefusingIsResentOnceThenHeldUntilResendInvalid() async throws {
        let tree = try E2E.survey()
        defer { tree.remove() }
        var config = testEmulatorConfiguration()
        config.faults.forceInvalid = ["DJI_0020.JPG"]
        try await withEmulator(config) { emu in
            let path = "flight2/DJI_0020.JPG"
            let first = try await E2E.alti(["sync", tree.path, "--project", Self.project], E2E.env(emu))
            #expect(first.exitCode == 75, "\(first.stdout) \(first.stderr)")
            let id = try #require(try Self.entry(tree, path).server?.imageID)
            #expect(await emu.state.stats().putsByImage[id] == 1)
            #expect(try Self.entry(tree, path).server?.refusedSends == 1)

            // "Run again": one re-send.
            let second = try await E2E.alti(["sync", tree.path, "--project", Self.project], E2E.env(emu))
            #expect(second.exitCode == 75, "\(second.stdout) \(second.stderr)")
            #expect(await emu.state.stats().putsByImage[id] == 2)
            #expect(try Self.entry(tree, path).server?.refusedSends == 2)
            #expect(try ManifestSchema.errors([tree.path(".alti/manifest.json")]) == [])

            // Refused again after a re-send: held, reported with the server's reason.
            for _ in 0..<2 {
                let held = try await E2E.alti(["sync", tree.path, "--project", Self.project], E2E.env(emu))
                #expect(held.exitCode == 75, "\(held.stdout) \(held.stderr)")
                #expect(await emu.state.stats().putsByImage[id] == 2)
                #expect(held.stdout.contains(
                    "\(path): forced Invalid by the emulator (forceInvalid) (refused again after a re-send: not sent until the file changes, or --resend-invalid)\n"),
                        "\(held.stdout)")
                #expect(held.stdout.hasSuffix(
                    "The server rejected 1 image again after a re-send: fix or replace them (a changed file is sent again), or send them unchanged with --resend-invalid.\n"))
            }
            #expect(await emu.state.stats().putsByImage.filter { $0.key != id }.values.allSatisfy { $0 == 1 })

            // Asked for, and the server now takes it.
            await emu.setFaults(FaultSettings())
            let asked = try await E2E.alti(["sync", tree.path, "--project", Self.project, "--resend-invalid"], E2E.env(emu))
            #expect(asked.exitCode == 0, "\(asked.stdout) \(asked.stderr)")
            #expect(await emu.state.stats().putsByImage[id] == 3)
            #expect(try E2E.manifest(tree).entries.allSatisfy { $0.server?.state == "Ready" })
        }
    }

    @Test func aChecksumMismatchReHashesTheFileBeforeItIsSentAgain() async throws {
        let tree = try E2E.survey()
        defer { tree.remove() }
        var config = testEmulatorConfiguration()
        config.faults.corruptNextStores = 1  // the store keeps a damaged copy of the first PUT
        try await withEmulator(config) { emu in
            let first = try await E2E.alti(["sync", tree.path, "--project", Self.project, "--transfers", "1", "--json"],
                                           E2E.env(emu))
            #expect(first.exitCode == 75, "\(first.stdout) \(first.stderr)")
            let report = try E2E.json(first)
            let failed = try #require(report["failed"] as? [String: String])
            #expect(failed.count == 1)
            let reason = try #require(failed.values.first)
            #expect(reason.hasPrefix("the server found that the bytes sent do not match the checksum (checksum mismatch: registered "))
            #expect(reason.hasSuffix("); the file will be hashed again before it is sent: run again"))
            let failedPath = try #require(failed.keys.first)
            let relative = String(failedPath.dropFirst(tree.path.count + 1))
            let damaged = try Self.entry(tree, relative)
            #expect(damaged.hashedAtNs == 0, "the hash cache is forgotten")
            let id = try #require(damaged.server?.imageID)
            #expect(await emu.state.stats().putsByImage[id] == 1)

            // The next run hashes that one file again (the bytes match), then sends it once.
            let second = try await E2E.alti(["sync", tree.path, "--project", Self.project, "--json"], E2E.env(emu))
            #expect(second.exitCode == 0, "\(second.stdout) \(second.stderr)")
            #expect(try E2E.json(second)["filesHashed"] as? Int == 1)
            let stats = await emu.state.stats()
            #expect(stats.putsByImage[id] == 2)
            #expect(stats.putsByImage.filter { $0.key != id }.values.allSatisfy { $0 == 1 })
            #expect(stats.imagesByState["Ready"] == 24)
        }
    }

    @Test func oneSecondURLsOnASlowLinkBlameTheLinkNotTheClock() async throws {
        let tree = try TempTree("sync-slow-link")
        defer { tree.remove() }
        let samples = Run.packageRoot.appendingPathComponent("samples/sample-survey/flight1")
        for name in ["DJI_0001.JPG", "DJI_0002.JPG"] { try tree.copy(samples.appendingPathComponent(name).path, to: name) }
        try tree.ageAllFiles()
        var config = testEmulatorConfiguration()
        config.urlLifetime = 1
        config.faults.put.latencyMilliseconds = 1500  // each PUT reaches the store 1.5 s late
        try await withEmulator(config) { emu in
            let result = try await E2E.alti(["sync", tree.path, "--project", Self.project, "--transfers", "2"], E2E.env(emu))
            #expect(result.exitCode == 75, "\(result.stdout) \(result.stderr)")
            let failedLines = result.stdout.split(separator: "\n").filter { $0.hasPrefix("    failed: ") }
            #expect(failedLines.count == 2, "\(result.stdout)")
            for line in failedLines {
                #expect(line.contains(
                    ": the link is too slow for the server's URL lifetime (1 s): the store refused the upload twice (AccessDenied: Request has expired) after its URL had expired on the way (the last try took "),
                        "\(line)")
                #expect(line.hasSuffix(" s); run again with fewer --transfers (e.g. --transfers 1) so each image goes faster, or from a faster link"))
                #expect(!line.contains("clock"))
            }
            // Nothing was stored, and the summary says so (not "sent 4 images").
            #expect(await emu.state.stats().puts("ok") == 0)
            #expect(result.stdout.contains("\n  stored 0 images (0 bytes) in "), "\(result.stdout)")
            #expect(result.stdout.contains(" s (4 uploads refused or failed); "), "\(result.stdout)")
        }
    }

    @Test func timeoutStopsTheRunSavesItAndTheRerunSendsNothingTwice() async throws {
        let tree = try E2E.survey()
        defer { tree.remove() }
        var config = testEmulatorConfiguration()
        // 24 PUTs one at a time: ~19 s, far past the limit. The limit leaves a loaded machine 6 s
        // for the scan and the first requests (2 s did not: the timeout then fired in the scan,
        // which is the other, stderr-only, outcome).
        config.faults.put.latencyMilliseconds = 800
        try await withEmulator(config) { emu in
            let result = try await E2E.alti(["sync", tree.path, "--project", Self.project, "--transfers", "1", "--timeout", "6s"],
                                            E2E.env(emu))
            #expect(result.exitCode == 75, "\(result.stdout) \(result.stderr)")
            let last = result.stdout.split(separator: "\n").last.map(String.init) ?? ""
            #expect(last.hasPrefix("Timed out (--timeout 6s): "), "\(result.stdout) \(result.stderr)")
            #expect(last.hasSuffix(" left to send. Progress is saved; run the same command again to continue."))
            // Folded and saved like Ctrl-C: every image the store has is recorded, no journal left.
            #expect(!FileManager.default.fileExists(atPath: tree.path(".alti/manifest.json.journal")))
            let stored = await emu.state.stats().putsByImage.keys
            let recorded = Set(try E2E.manifest(tree).entries.compactMap { $0.server?.imageID }.filter { !$0.isEmpty })
            #expect(stored.allSatisfy { recorded.contains($0) })
            #expect(stored.count < 24)

            // A limit the run stays within changes nothing: it finishes, nothing sent twice.
            await emu.setFaults(FaultSettings())
            let rerun = try await E2E.alti(["sync", tree.path, "--project", Self.project, "--timeout", "10m"], E2E.env(emu))
            #expect(rerun.exitCode == 0, "\(rerun.stdout) \(rerun.stderr)")
            let stats = await emu.state.stats()
            #expect(stats.putsByImage.count == 24)
            #expect(stats.putsByImage.values.allSatisfy { $0 == 1 })

            let bad = try await E2E.alti(["sync", tree.path, "--project", Self.project, "--timeout", "soon"], E2E.env(emu))
            #expect(bad.exitCode == 64)
            #expect(bad.stderr.contains("--timeout=soon is not a duration: write e.g. 90s, 30m, 2h or 1h30m"), "\(bad.stderr)")
        }
    }

    @Test func timeoutEndsAKeepTryingWaitForADeadServer() async throws {
        let tree = try E2E.survey()
        defer { tree.remove() }
        // Nothing listens on port 1: every probe is refused; the first wait (5 s) outlasts the limit.
        let env = ["ALTI_ENDPOINT": "http://127.0.0.1:1", "ALTI_KEY": E2E.key, "ALTI_TOKEN": E2E.token,
                   "ALTI_RETRY_BASE_MS": "10", "ALTI_KEEP_TRYING_BASE_MS": "5000",
                   "XDG_CONFIG_HOME": "/nonexistent-alti-config", "XDG_STATE_HOME": NSTemporaryDirectory()]
        let result = try await E2E.alti(["sync", tree.path, "--project", Self.project, "--keep-trying", "--timeout", "1s"], env)
        #expect(result.exitCode == 75, "\(result.stdout) \(result.stderr)")
        #expect(result.stderr.contains("waiting for the link ("), "\(result.stderr)")
        #expect(result.stderr.hasSuffix(
            "alti: timed out after 1s (--timeout): everything recorded is saved; run the same command again to continue\n"),
                "\(result.stderr)")
        // The scan was saved before the network was tried.
        let manifest = try E2E.manifest(tree)
        #expect(manifest.entries.filter { $0.sha1 != nil }.count == 24)
    }

    @Test func aClientSuspendedPastTheServersIdleTimeoutReconnectsAndSendsNothingTwice() async throws {
        let tree = try E2E.survey()
        defer { tree.remove() }
        var config = testEmulatorConfiguration()
        config.idleTimeout = 0.3  // the server closes connections idle for 0.3 s
        config.faults.put.latencyMilliseconds = 150
        try await withEmulator(config) { emu in
            let (process, out, err) = try E2E.launch(["sync", tree.path, "--project", Self.project, "--transfers", "2"], E2E.env(emu))
            try await E2E.waitForStoredPuts(4, emu)
            // A closed lid: the client is frozen well past the idle timeout; its pooled
            // connections are closed by the server meanwhile.
            kill(process.processIdentifier, SIGSTOP)
            let atStop = await emu.state.stats()
            try await Task.sleep(for: .milliseconds(1500))
            let beforeResume = await emu.state.stats()
            let putsWhileStopped = beforeResume.puts
            kill(process.processIdentifier, SIGCONT)
            let stdout = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            process.waitUntilExit()
            #expect(process.terminationStatus == 0, "\(stdout) \(stderr)")
            let stats = await emu.state.stats()
            #expect(stats.puts > putsWhileStopped, "the run went on after SIGCONT")
            // The server closed the client's idle connections while it was frozen (a frozen
            // client closes nothing), and the client opened new ones after it resumed.
            #expect(beforeResume.connectionsClosed > atStop.connectionsClosed, "\(atStop) \(beforeResume)")
            #expect(stats.connectionsOpened > beforeResume.connectionsOpened)
            #expect(stats.imagesByState["Ready"] == 24)
            #expect(stats.putsByImage.count == 24)
            #expect(stats.putsByImage.values.allSatisfy { $0 == 1 }, "no image stored twice: \(stats.putsByImage)")
            #expect(try E2E.manifest(tree).entries.allSatisfy { $0.server?.state == "Ready" })
        }
    }
}
