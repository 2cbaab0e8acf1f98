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
        config.faults.stsLifetimeSeconds = 2
        try await withEmulator(config) { emu in
            let started = Date()
            let result = await CommandContextTests.run(
                ["sync", tree.path, "--project", Self.project, "--cloud", "oss", "--transfers", "1"], FirstHourTests.env(emu))
            let seconds = Date().timeIntervalSince(started)
            #expect(result.code == 0, "\(result.out) \(result.err)")
            let stats = await emu.state.stats()
            #expect(stats.imagesByState["Ready"] == 12)
            #expect(stats.putsByImage.values.allSatisfy { $0 == 1 })
            // 12 uploads of >= 0.4 s each with 2 s credentials renewed 0.4 s early: about one
            // credential per 1.6 s of uploading, never one per image.
            #expect(stats.stsIssued >= 2, "\(stats.stsIssued) credentials in \(seconds) s")
            #expect(stats.stsIssued <= Int(seconds / 1.6) + 2, "\(stats.stsIssued) credentials in \(seconds) s")
            #expect(stats.stsIssued < 12)
        }
    }
}
