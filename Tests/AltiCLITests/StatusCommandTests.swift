@testable import AltiCLI
import AltiEmulator
import AltiTestSupport
import ArgumentParser
import Foundation
import Testing

@testable import AltiCore

/// `alti status` in-process after real syncs against the emulator: what it prints and its exit
/// code, that it makes no connection without `--refresh`, and that `--refresh` finds what the
/// server lost.
@Suite struct StatusCommandTests {
    static let project = ProjectSeed.sample.id

    static func run(_ args: [String], _ env: [String: String] = ["XDG_CONFIG_HOME": "/nonexistent-alti-config"],
                    offline: Bool = false) async -> (code: Int32, out: String, err: String, connections: Int) {
        await CommandContextTests.run(args, env, offline: offline)
    }

    static func json(_ text: String) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any], "not JSON: \(text)")
    }

    static func size(_ path: String) throws -> Int64 {
        (try FileManager.default.attributesOfItem(atPath: path)[.size] as? NSNumber)?.int64Value ?? -1
    }

    static func count(_ report: [String: Any], _ state: String) -> (images: Int?, bytes: Int?) {
        let states = report["states"] as? [String: [String: Int]]
        return (states?[state]?["images"], states?[state]?["bytes"])
    }

    @Test func statusAfterASyncCountsFromTheManifestAndConnectsToNothing() async throws {
        let tree = try FirstHourTests.survey(4)
        defer { tree.remove() }
        let files = (1...4).map { tree.path("flight1/DJI_\(String(format: "%04d", $0)).JPG") }
        let bytes = try files.reduce(Int64(0)) { $0 + (try Self.size($1)) }
        try await withEmulator(testEmulatorConfiguration()) { emu in
            let sync = await Self.run(["sync", tree.path, "--project", Self.project], FirstHourTests.env(emu))
            #expect(sync.code == 0, "\(sync.out) \(sync.err)")
            let before = await emu.state.stats().graphqlRequests

            // The context refuses any connection: status must not ask for one.
            let result = await Self.run(["status", tree.path, "--json"], FirstHourTests.env(emu), offline: true)
            #expect(result.code == 0, "\(result.out) \(result.err)")
            #expect(result.connections == 0)
            #expect(await emu.state.stats().graphqlRequests == before)
            let report = try Self.json(result.out)
            #expect(report["exitCode"] as? Int == 0)
            #expect(report["offline"] as? Bool == true)
            #expect(report["images"] as? Int == 4)
            #expect(report["bytes"] as? Int == Int(bytes))
            #expect(Self.count(report, "ready").images == 4)
            #expect(Self.count(report, "ready").bytes.map(Int64.init) == bytes)
            #expect(Self.count(report, "notSent").images == 0)
            #expect((report["toSend"] as? [String]) == [])
            #expect(report["bytesToSend"] as? Int == 0)
            #expect(report["manifests"] as? [String] == [tree.path(".alti/manifest.json")])
            let manifest = try SyncEndToEndTests.manifest(tree)
            let source = try #require((report["sources"] as? [[String: Any]])?.first)
            #expect(source["project"] as? String == Self.project)
            #expect(source["endpoint"] as? String == emu.baseURL)
            #expect(source["cloud"] as? String == manifest.remote.cloud)
            #expect(source["writtenAt"] as? String == manifest.writtenAt)
            #expect(source["lastCheckedAt"] as? String == manifest.entries.compactMap { $0.server?.checkedAt }.max())
            #expect(source["journalEvents"] as? Int == 0)
            #expect(!result.out.contains("alti-demo-key") && !result.out.contains("alti-demo-token"))

            let text = await Self.run(["status", tree.path], FirstHourTests.env(emu), offline: true)
            #expect(text.code == 0)
            #expect(text.out.hasPrefix("alti status: from the manifests (no network); --refresh asks the server\n\(tree.path) (folder) · project \(Self.project) at \(emu.baseURL) ("))
            #expect(text.out.contains("\n  4 images, \(ScanRenderer.bytes(bytes)): Ready 4 (\(ScanRenderer.bytes(bytes)))\n"))
            #expect(text.out.contains("\n  to send: 0 images, 0 bytes\n"))
            #expect(text.out.hasSuffix("\nAll 4 images Ready.\n"))
        }
    }

    @Test func anImageDeletedOnTheServerIsNotOnTheServerAfterRefreshAndExits75() async throws {
        let tree = try FirstHourTests.survey(3)
        defer { tree.remove() }
        try await withEmulator(testEmulatorConfiguration()) { emu in
            let env = FirstHourTests.env(emu)
            let sync = await Self.run(["sync", tree.path, "--project", Self.project], env)
            #expect(sync.code == 0, "\(sync.out) \(sync.err)")
            let entry = try #require(try SyncEndToEndTests.manifest(tree).entry(at: "flight1/DJI_0002.JPG"))
            let deleted = tree.path("flight1/DJI_0002.JPG")
            let (imageID, sha1) = (try #require(entry.server?.id), try #require(entry.sha1))
            #expect(await emu.state.removeImage(id: imageID))
            #expect(await emu.state.image(projectID: Self.project, checksum: sha1) == nil)

            // The manifest alone cannot know: still all Ready.
            let offline = await Self.run(["status", tree.path, "--json"], env, offline: true)
            #expect(offline.code == 0)
            #expect(Self.count(try Self.json(offline.out), "ready").images == 3)

            let before = await emu.state.stats().graphqlRequests
            let refreshed = await Self.run(["status", tree.path, "--refresh", "--json"], env)
            #expect(refreshed.code == 75, "\(refreshed.out) \(refreshed.err)")
            #expect(refreshed.connections == 1)
            #expect(refreshed.err.isEmpty)
            let report = try Self.json(refreshed.out)
            #expect(report["refreshed"] as? Bool == true)
            #expect(report["exitCode"] as? Int == 75)
            #expect(Self.count(report, "ready").images == 2)
            #expect(Self.count(report, "absent").images == 1)
            #expect(Self.count(report, "absent").bytes.map(Int64.init) == entry.size)
            #expect(report["toSend"] as? [String] == [deleted])
            #expect(report["bytesToSend"] as? Int == Int(entry.size))
            // One project lookup and one hasImage batch, as the emulator counted them.
            let requests = await emu.state.stats().graphqlRequests - before
            #expect(requests == 2)
            #expect((report["requests"] as? [String: Int])?["graphql"] == requests)
            #expect(await emu.state.stats().count("hasImage") == 3 + 3)

            // Recorded in the manifest (through the journal, which is gone), so the offline view
            // and the next sync know it too.
            let saved = try #require(try SyncEndToEndTests.manifest(tree).entry(at: "flight1/DJI_0002.JPG"))
            #expect(saved.server?.state == .absent)
            #expect(saved.server?.imageID == "")
            #expect(!FileManager.default.fileExists(atPath: tree.path(".alti/manifest.json.journal")))
            let text = await Self.run(["status", tree.path], env, offline: true)
            #expect(text.code == 75)
            #expect(text.out.contains(": Ready 2 ("))
            #expect(text.out.contains(" · not on the server 1 ("))
            #expect(text.out.hasSuffix("\n1 image (\(ScanRenderer.bytes(entry.size))) left to send: run alti sync \(tree.path) --project \(Self.project)\n"))

            let resend = await Self.run(["sync", tree.path, "--project", Self.project], env)
            #expect(resend.code == 0, "\(resend.out) \(resend.err)")
            #expect(await emu.state.stats().puts == 4)
            #expect(await Self.run(["status", tree.path], env, offline: true).code == 0)
        }
    }

    @Test func aPathWithNoManifestIsOneLineAnd66() async throws {
        let tree = try FirstHourTests.survey(1)
        defer { tree.remove() }
        let result = await Self.run(["status", tree.path], offline: true)
        #expect(result.code == 66)
        #expect(result.out.isEmpty)
        #expect(result.err == "alti: no manifest for \(tree.path): run alti scan \(tree.path) or alti sync \(tree.path) --project ID\n")
        #expect(result.connections == 0)
        #expect(!FileManager.default.fileExists(atPath: tree.path(".alti")))
    }

    @Test func anUnreachableServerWithRefreshPrintsTheViewThenOneLineAnd69() async throws {
        let tree = try FirstHourTests.survey(2)
        defer { tree.remove() }
        // Synced against an emulator that is gone by now: its port refuses connections.
        let env = try await withEmulator(testEmulatorConfiguration()) { emu in
            let env = FirstHourTests.env(emu)
            let sync = await Self.run(["sync", tree.path, "--project", Self.project], env)
            #expect(sync.code == 0, "\(sync.out) \(sync.err)")
            return env
        }
        let manifestBytes = try tree.read(".alti/manifest.json")

        let text = await Self.run(["status", tree.path, "--refresh"], env)
        #expect(text.code == 69, "\(text.out) \(text.err)")
        #expect(text.out.hasPrefix("alti status: from the manifests (no network); --refresh asks the server\n"))
        #expect(text.out.hasSuffix("\nAll 2 images Ready.\n"))
        #expect(text.err.hasPrefix("alti: "))
        #expect(text.err.filter { $0 == "\n" }.count == 1)
        #expect(try tree.read(".alti/manifest.json") == manifestBytes)
        #expect(!FileManager.default.fileExists(atPath: tree.path(".alti/manifest.json.journal")))

        let json = await Self.run(["status", tree.path, "--refresh", "--json"], env)
        #expect(json.code == 69)
        let report = try Self.json(json.out)
        #expect(report["exitCode"] as? Int == 69)
        #expect(report["refreshed"] as? Bool == false)
        #expect(report["error"] as? String == String(json.err.dropLast()))
        #expect(Self.count(report, "ready").images == 2)
    }

    @Test func exitCodesFollowSyncsOrder() {
        func summary(_ categories: [ImageCategory], notUsable: Int = 0) -> StatusSummary {
            var manifest = Manifest(root: "/s")
            for (index, category) in categories.enumerated() {
                let state: AltiCore.ImageState? = switch category {
                case .ready: .ready
                case .processing: .uploaded
                case .pending: .pending
                case .invalid: .invalid
                case .absent: .absent
                case .failed: .absent
                case .notSent: nil
                }
                let facts = state.map { ServerFacts(state: $0, errors: category == .failed ? ["x"] : [], checkedAt: "t") }
                manifest.entries.append(ManifestEntry(
                    path: "\(index).jpg", size: 1, mtimeNs: 1, inode: 1, sha1: String(repeating: "\(index)", count: 40),
                    type: .jpeg, width: 1, height: 1, verdict: .ok, detail: nil, server: facts))
            }
            for index in 0..<notUsable {
                manifest.entries.append(ManifestEntry(path: "bad\(index).jpg", size: 0, mtimeNs: 1, inode: 1, sha1: nil, type: nil,
                                                      width: nil, height: nil, verdict: .empty, detail: nil))
            }
            let status = SourceStatus(manifest: manifest, manifestPath: "m")
            #expect(status.images.map(\.category) == categories)
            return StatusSummary(sources: [status])
        }
        #expect(StatusRenderer.exitCode(summary([.ready, .ready])) == nil)
        for left in [ImageCategory.processing, .pending, .invalid, .failed, .absent, .notSent] {
            #expect(StatusRenderer.exitCode(summary([.ready, left])) == 75, "\(left)")
            #expect(StatusRenderer.exitCode(summary([.ready, left], notUsable: 1)) == 75, "\(left)")
        }
        #expect(StatusRenderer.exitCode(summary([.ready], notUsable: 2)) == 79)
        #expect(StatusRenderer.exitCode(summary([], notUsable: 2)) == 79)
        #expect(StatusRenderer.exitCode(summary([])) == 66)
    }

    @Test func statusHelpListsItsExitCodes() {
        let help = AltiCommand.helpMessage(for: Status.self, columns: 1000)
        for code in ["64", "65", "66", "67", "69", "73", "75", "77", "79"] {
            #expect(help.contains(" \(code) "), "exit code \(code) missing from alti status --help")
        }
        #expect(ArgumentCheck.check(["status", "x", "--refresh", "--json", "--manifest", "m"]) == nil)
        #expect(ArgumentCheck.check(["stauts", "x"])?.message.contains("did you mean 'alti status'?") == true)
    }
}
