import AltiEmulator
import AltiTestSupport
import Foundation
import Testing

@testable import AltiCore

/// Issue 13, "fewer, bigger round trips": the built `alti` against the in-process emulator, with
/// the targets asserted on the emulator's counts (never on wall-clock time): a first sync of N
/// images costs at most 0.06 GraphQL requests per image, a no-change re-run at most
/// ceil(N/100)+3, every image is stored once and ends Ready.
@Suite(.serialized) struct RoundTripTests {
    typealias E2E = SyncEndToEndTests
    static let images = 200

    @Test func aFirstSyncOf200ImagesAndItsNoChangeRerunStayUnderTheRequestTargets() async throws {
        let tree = try E2E.survey(extra: Self.images - 24)
        defer { tree.remove() }
        try await withEmulator(testEmulatorConfiguration()) { emu in
            let first = try await E2E.alti(["sync", tree.path, "--project", E2E.project, "--json"], E2E.env(emu))
            #expect(first.exitCode == 0, "\(first.stdout) \(first.stderr)")
            let stats = await emu.state.stats()
            print("round trips, first sync of \(Self.images): \(stats.graphqlRequests) GraphQL requests \(stats.graphqlFields)")
            #expect(Double(stats.graphqlRequests) <= 0.06 * Double(Self.images), "\(stats.graphqlFields)")
            #expect(stats.putsByImage.count == Self.images)
            #expect(stats.putsByImage.values.allSatisfy { $0 == 1 })
            #expect(stats.puts == Self.images)
            #expect(stats.registrations == Self.images)
            #expect(Set(stats.startsByImage.keys) == Set(stats.putsByImage.keys))
            #expect(stats.imagesByState == ["Ready": Self.images])
            // The preflight is one request: the project with the server's mode and buckets.
            let log = await emu.requestLog()
            let preflight = log.filter { $0.graphqlFields.contains("support") }
            #expect(preflight.count == 1)
            #expect(preflight.first.map { Set($0.graphqlFields) } == ["project", "support", "getGeoIPInfo"])
            #expect(stats.count("support") == 1 && stats.count("getGeoIPInfo") == 1)
            let manifest = try E2E.manifest(tree)
            #expect(manifest.entries.count == Self.images)
            #expect(manifest.entries.allSatisfy { $0.server?.state == .ready })

            let before = await emu.state.stats()
            let second = try await E2E.alti(["sync", tree.path, "--project", E2E.project, "--json"], E2E.env(emu))
            #expect(second.exitCode == 0, "\(second.stdout) \(second.stderr)")
            let after = await emu.state.stats()
            let rerun = after.graphqlRequests - before.graphqlRequests
            print("round trips, no-change re-run of \(Self.images): \(rerun) GraphQL requests")
            #expect(rerun <= (Self.images + 99) / 100 + 3)
            #expect(after.puts == before.puts && after.registrations == before.registrations)
            // The re-run still re-checks the server's truth for every image.
            #expect(after.count("hasImage") - before.count("hasImage") == Self.images)
            #expect((try E2E.json(second)["ready"] as? [String])?.count == Self.images)
        }
    }

    /// A prefix of the project id: the preflight is the search, still one request with the
    /// server's mode and buckets.
    @Test func aProjectPrefixIsLookedUpInTheSameRequestAsTheServersMode() async throws {
        let tree = try E2E.survey()
        defer { tree.remove() }
        try await withEmulator(testEmulatorConfiguration()) { emu in
            let run = try await E2E.alti(["sync", tree.path, "--project", String(E2E.project.prefix(8)), "--json"], E2E.env(emu))
            #expect(run.exitCode == 0, "\(run.stdout) \(run.stderr)")
            let log = await emu.requestLog()
            let preflight = log.filter { $0.graphqlFields.contains("support") }
            #expect(preflight.map { Set($0.graphqlFields) } == [["search", "support", "getGeoIPInfo"]])
            let stats = await emu.state.stats()
            #expect(stats.imagesByState == ["Ready": 24])
            // 24 images: preflight + hasImage + two windows (16 before the lifetime is known,
            // then the rest) of registration + start + at least one poll.
            #expect(stats.graphqlRequests <= 7 + 2, "\(stats.graphqlFields)")
        }
    }
}
