@testable import AltiCLI
import AltiEmulator
import AltiTestSupport
import Foundation
import Testing

@testable import AltiCore

/// `alti sync --cloud oss` against the emulator's OSS storage (which verifies V1 and V4
/// signatures, the STS token and its expiry): what the store received, how many credentials were
/// issued, and what the manifest recorded.
@Suite(.serialized) struct OSSSyncTests {
    static let project = ProjectSeed.sample.id

    /// Real JPEGs in nested folders and under names with spaces, `+`, `#`, `%` and non-ASCII.
    static func awkwardSurvey() throws -> TempTree {
        let tree = try TempTree("oss-sync")
        let names = ["sp ace/DJI 0001.JPG", "plus+dir/DJI+0002.JPG", "hash#dir/DJI#0003.JPG", "pct%dir/DJI%0004.JPG",
                     "ünïcødé 写真/DJI_é0005.JPG", "a/b/c/DJI_0006.JPG"]
        for (i, name) in names.enumerated() { try tree.copy(CommandContextTests.sample(i + 1), to: name) }
        try tree.ageAllFiles()
        return tree
    }

    static func manifest(_ tree: TempTree) throws -> Manifest {
        try JSONDecoder().decode(Manifest.self, from: Data(contentsOf: tree.url(".alti/manifest.json")))
    }

    @Test(arguments: ["v4", "v1"])
    func awkwardNamesEndReadyStoredOnceWithOneCredential(signature: String) async throws {
        let tree = try Self.awkwardSurvey()
        defer { tree.remove() }
        try await withEmulator(testEmulatorConfiguration()) { emu in
            let result = await CommandContextTests.run(
                ["sync", tree.path, "--project", Self.project, "--cloud", "oss", "--oss-signature", signature, "--json"],
                FirstHourTests.env(emu))
            #expect(result.code == 0, "\(result.out) \(result.err)")
            let stats = await emu.state.stats()
            #expect(stats.stsIssued == 1)
            #expect(stats.putsByImage.count == 6)
            #expect(stats.putsByImage.values.allSatisfy { $0 == 1 })
            #expect(stats.imagesByState["Ready"] == 6)
            let manifest = try Self.manifest(tree)
            #expect(manifest.remote.cloud == "OSS")
            #expect(manifest.entries.allSatisfy { $0.server?.state == .ready && $0.server?.cloud == "OSS" })
            // The stored bytes are the files' (the server verified each SHA-1: Ready, not Invalid).
            let server = await emu.state.images(ofProject: Self.project)
            #expect(Set(server.map(\.checksum)) == Set(manifest.entries.compactMap(\.sha1)))
            // No secret of the STS reaches the output or the manifest.
            let manifestText = try String(contentsOf: tree.url(".alti/manifest.json"), encoding: .utf8)
            for secret in ["secret", "token"] {
                #expect(!result.out.lowercased().contains("\"\(secret)\""))
                #expect(!manifestText.lowercased().contains("\"\(secret)\""))
            }
        }
    }

    @Test func aShortLivedCredentialIsRenewedAboutOncePerLifetimeNotPerImage() async throws {
        let tree = try FirstHourTests.survey(12)
        defer { tree.remove() }
        var config = testEmulatorConfiguration()
        config.faults.put.latencyMilliseconds = 400
        // 4 s credentials, renewed with a fifth (0.8 s) left: one per 3.2 s of uploading. Two
        // seconds were too short for a loaded machine, where one upload of 0.4 s can take 2.
        config.faults.stsLifetimeSeconds = 4
        try await withEmulator(config) { emu in
            let started = Date()
            let result = await CommandContextTests.run(
                ["sync", tree.path, "--project", Self.project, "--cloud", "oss", "--transfers", "1"], FirstHourTests.env(emu))
            let seconds = Date().timeIntervalSince(started)
            #expect(result.code == 0, "\(result.out) \(result.err)")
            let stats = await emu.state.stats()
            #expect(stats.imagesByState["Ready"] == 12)
            #expect(stats.putsByImage.values.allSatisfy { $0 == 1 })
            // 12 uploads of >= 0.4 s each (4.8 s at least): about one credential per 3.2 s of
            // uploading, never one per image.
            #expect(stats.stsIssued >= 2, "\(stats.stsIssued) credentials in \(seconds) s")
            #expect(stats.stsIssued <= Int(seconds / 3.2) + 2, "\(stats.stsIssued) credentials in \(seconds) s")
            #expect(stats.stsIssued < 12)
            print("short-lived STS: \(stats.stsIssued) credentials for 12 images in \(String(format: "%.1f", seconds)) s")
        }
    }
}

/// Large images over OSS multipart: resumed part by part after SIGKILL, Ctrl-C and a dropped
/// connection; credentials, clock skew and corrupted stores.
@Suite(.serialized) struct OSSMultipartTests {
    static let project = ProjectSeed.sample.id
    /// 100,000,000 bytes in parts of 7.8 MiB: 13 parts, the last one short.
    static let imageSize = 100_000_000
    static let partSizeMiB = "7.8"
    static let parts = 13

    /// A valid JPEG of `size` bytes: a real sample's SOI, then APP15 segments of noise, then the
    /// rest of the sample (its frame and scan, ending in EOI).
    static func bigJPEG(size: Int) throws -> [UInt8] {
        let base = [UInt8](try Data(contentsOf: URL(fileURLWithPath: CommandContextTests.sample(1))))
        let prefixSize = size - (base.count - 2)  // SOI + padding; then the sample after its SOI
        var out: [UInt8] = [0xFF, 0xD8]
        out.reserveCapacity(size)
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        let noise: [UInt8] = (0..<65_533).map { _ in
            state ^= state << 13
            state ^= state >> 7
            state ^= state << 17
            return UInt8(truncatingIfNeeded: state)
        }
        while prefixSize - out.count >= 4 + 1 {
            let payload = min(noise.count, prefixSize - out.count - 4)
            out += [0xFF, 0xEF, UInt8((payload + 2) >> 8), UInt8((payload + 2) & 0xFF)]
            out += noise[0..<payload]
        }
        // Fill bytes (0xFF) may precede any marker: they make up the last few bytes.
        out += [UInt8](repeating: 0xFF, count: prefixSize - out.count)
        out += base.dropFirst(2)
        precondition(out.count == size)
        return out
    }

    static let bigImage: [UInt8] = try! bigJPEG(size: imageSize)

    static func tree() throws -> TempTree {
        let tree = try TempTree("oss-multipart")
        try tree.write("pano/PANO 0001+é.JPG", bigImage)
        try tree.ageAllFiles()
        return tree
    }

    static func args(_ tree: TempTree, _ extra: [String] = []) -> [String] {
        ["sync", tree.path, "--project", project, "--cloud", "oss", "--part-size", partSizeMiB, "--transfers", "1"] + extra
    }

    static func env(_ emu: RunningEmulator) -> [String: String] {
        SyncEndToEndTests.env(emu, ["ALTI_RETRY_ATTEMPTS": "4"])
    }

    /// The one key the image's parts went to, and how often each part number was stored.
    static func parts(_ emu: RunningEmulator) async -> [Int: Int] {
        let byKey = await emu.state.stats().partsByKey
        #expect(byKey.count <= 1, "\(byKey.keys)")
        return byKey.values.first ?? [:]
    }

    /// The part numbers a (running or killed) alti has journaled.
    static func journaledParts(_ journal: String) -> Set<Int> {
        guard let text = try? String(contentsOfFile: journal, encoding: .utf8) else { return [] }
        var numbers: Set<Int> = []
        for line in text.split(separator: "\n") where line.contains("\"partStored\"") {
            if let event = try? JSONDecoder().decode(JournalEvent.self, from: Data(line.utf8)), let part = event.part {
                numbers.insert(part.number)
            }
        }
        return numbers
    }

    static func expectReadyAndWhole(_ tree: TempTree, _ emu: RunningEmulator) async throws {
        let manifest = try OSSSyncTests.manifest(tree)
        let entry = try #require(manifest.entries.first)
        #expect(entry.server?.state == .ready)
        #expect(entry.server?.multipart == nil)
        let server = await emu.state.images(ofProject: project)
        #expect(server.count == 1)
        #expect(server.first?.checksum == entry.sha1)
        #expect(server.first?.state.rawValue == "Ready")  // the emulator verified the stored bytes' SHA-1
    }

    enum Interruption: String, CaseIterable { case sigkill, ctrlC }

    @Test(arguments: Interruption.allCases)
    func anInterruptedLargeImageResumesWithoutSendingFinishedPartsAgain(_ how: Interruption) async throws {
        let tree = try Self.tree()
        defer { tree.remove() }
        var config = testEmulatorConfiguration()
        config.faults.put.latencyMilliseconds = 150
        try await withEmulator(config) { emu in
            let (process, out, err) = try SyncEndToEndTests.launch(Self.args(tree), Self.env(emu))
            // Interrupt once part 5 is journaled (stored by the emulator AND recorded by alti).
            let journal = tree.path(".alti/manifest.json.journal")
            for _ in 0..<1500 where Self.journaledParts(journal).count < 5 { try await Task.sleep(for: .milliseconds(10)) }
            kill(process.processIdentifier, how == .sigkill ? SIGKILL : SIGINT)
            _ = out.fileHandleForReading.readDataToEndOfFile()
            _ = err.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            #expect(process.terminationStatus == (how == .sigkill ? SIGKILL : 130))
            let before = await Self.parts(emu)
            #expect(before.count >= 5 && before.count < Self.parts)
            // What survived the interruption: the journal (SIGKILL) or the manifest it was folded
            // into (Ctrl-C).
            let recorded = how == .sigkill ? Self.journaledParts(journal)
                : Set(try OSSSyncTests.manifest(tree).entries.first?.server?.multipart?.parts.map(\.number) ?? [])
            #expect(recorded.count >= 5)

            await emu.setFaults(FaultSettings())
            let rerun = try await SyncEndToEndTests.alti(Self.args(tree), Self.env(emu))
            #expect(rerun.exitCode == 0, "\(rerun.stdout) \(rerun.stderr)")
            let after = await Self.parts(emu)
            #expect(after.count == Self.parts)
            // No recorded part was sent again; only a part stored while its answer was cut off
            // by the interruption can have gone twice (the write-only STS cannot list parts).
            for number in recorded { #expect(after[number] == 1, "part \(number) sent again") }
            #expect(after.values.reduce(0, +) <= Self.parts + 1)
            #expect(await emu.state.stats().multipartInitiated == 1)
            try await Self.expectReadyAndWhole(tree, emu)
        }
    }

    @Test func aConnectionDroppedMidPartIsRetriedAndNoFinishedPartIsSentAgain() async throws {
        let tree = try Self.tree()
        defer { tree.remove() }
        try await withEmulator(testEmulatorConfiguration()) { emu in
            var faults = FaultSettings()
            faults.put.resetNext = 3
            await emu.setFaults(faults)
            let result = try await SyncEndToEndTests.alti(Self.args(tree), Self.env(emu))
            #expect(result.exitCode == 0, "\(result.stdout) \(result.stderr)")
            let parts = await Self.parts(emu)
            #expect(parts.count == Self.parts)
            #expect(parts.values.allSatisfy { $0 == 1 })
            try await Self.expectReadyAndWhole(tree, emu)
        }
    }

    @Test func aCorruptedStoreIsCaughtByTheCRCAndSentAgain() async throws {
        let tree = try FirstHourTests.survey(2)
        defer { tree.remove() }
        try await withEmulator(testEmulatorConfiguration()) { emu in
            var faults = FaultSettings()
            faults.corruptNextStores = 1
            await emu.setFaults(faults)
            let result = await CommandContextTests.run(
                ["sync", tree.path, "--project", Self.project, "--cloud", "oss", "--transfers", "1"], FirstHourTests.env(emu))
            #expect(result.code == 0, "\(result.out) \(result.err)")
            let stats = await emu.state.stats()
            #expect(stats.corruptedStores == 1)
            // One image was stored twice (the damaged copy, then the good one); both end Ready:
            // the damaged copy was never recorded or completed.
            #expect(stats.putsByImage.values.sorted() == [1, 2])
            #expect(stats.imagesByState["Ready"] == 2)
        }
    }

    @Test func aCorruptedPartIsCaughtByTheCRCAndSentAgain() async throws {
        let tree = try Self.tree()
        defer { tree.remove() }
        try await withEmulator(testEmulatorConfiguration()) { emu in
            var faults = FaultSettings()
            faults.corruptNextStores = 1
            await emu.setFaults(faults)
            let result = try await SyncEndToEndTests.alti(Self.args(tree), Self.env(emu))
            #expect(result.exitCode == 0, "\(result.stdout) \(result.stderr)")
            let parts = await Self.parts(emu)
            #expect(parts.count == Self.parts)
            #expect(parts.values.reduce(0, +) == Self.parts + 1)  // the damaged part went twice
            try await Self.expectReadyAndWhole(tree, emu)
        }
    }

    @Test func aTamperedCredentialIsRenewedOnceAndATwiceRefusedOneIsReportedWithTheStoresCode() async throws {
        let tree = try FirstHourTests.survey(1)
        defer { tree.remove() }
        try await withEmulator(testEmulatorConfiguration()) { emu in
            var faults = FaultSettings()
            faults.tamperNextSTS = 1
            await emu.setFaults(faults)
            let mended = await CommandContextTests.run(
                ["sync", tree.path, "--project", Self.project, "--cloud", "oss"], FirstHourTests.env(emu))
            #expect(mended.code == 0, "\(mended.out) \(mended.err)")
            var stats = await emu.state.stats()
            #expect(stats.stsIssued == 2)  // the tampered one, then one renewal
            #expect(stats.ossRefusal("SignatureDoesNotMatch") == 1)
            #expect(stats.imagesByState["Ready"] == 1)

            let second = try FirstHourTests.survey(2)
            defer { second.remove() }
            faults.tamperNextSTS = 5
            await emu.setFaults(faults)
            let refused = await CommandContextTests.run(
                ["sync", second.path, "--project", Self.project, "--cloud", "oss", "--transfers", "1"], FirstHourTests.env(emu))
            #expect(refused.code == 75, "\(refused.out) \(refused.err)")
            #expect(refused.out.contains("SignatureDoesNotMatch"))
            // The store's code is the image's error in the manifest too.
            let failed = try OSSSyncTests.manifest(second).entries.first { $0.path.hasSuffix("DJI_0002.JPG") }
            #expect(failed?.server?.errors.first?.contains("SignatureDoesNotMatch") == true, "\(String(describing: failed?.server))")
            stats = await emu.state.stats()
            #expect(stats.stsIssued <= 2 + 2 * 2)  // at most one renewal per image, never a loop
        }
    }

    @Test func aClockThirtyMinutesOffStillUploadsAfterOneCorrectedRetry() async throws {
        let tree = try FirstHourTests.survey(3)
        defer { tree.remove() }
        try await withEmulator(testEmulatorConfiguration()) { emu in
            var faults = FaultSettings()
            faults.ossClockSkewSeconds = 30 * 60
            await emu.setFaults(faults)
            let result = await CommandContextTests.run(
                ["sync", tree.path, "--project", Self.project, "--cloud", "oss", "--transfers", "1"], FirstHourTests.env(emu))
            #expect(result.code == 0, "\(result.out) \(result.err)")
            let stats = await emu.state.stats()
            #expect(stats.ossRefusal("RequestTimeTooSkewed") == 1)
            #expect(stats.imagesByState["Ready"] == 3)
            #expect(result.err.contains("clock is 30 min behind"))
            #expect(result.err.components(separatedBy: "clock is").count == 2)  // said once
        }
    }
}
