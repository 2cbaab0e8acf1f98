@testable import AltiCLI
import AltiCrypto
import AltiEmulator
import AltiTestSupport
import Foundation
import Testing

@testable import AltiCore

/// Issue 11, bad local input, end to end: names that are not UTF-8 and paths past PATH_MAX are
/// synced (each stored once, the bytes on disk), a file removed between the scan and its upload
/// is named and leaves the run incomplete, and manifests of another project, another endpoint or
/// a newer alti are refused in one line and left byte for byte. Commands run in-process against
/// the emulator; assertions are on what it stored and counted, the manifest and the exit codes.
@Suite(.serialized) struct BadInputSyncTests {
    static let projectA = ProjectSeed.sample.id
    static let projectB = "bbbbbbbbbbbbbbbbbbbbbbbb"

    static func configuration() -> EmulatorConfiguration {
        var config = testEmulatorConfiguration()
        config.projects.append(ProjectSeed(id: projectB, name: "B"))
        return config
    }

    static func env(_ emu: RunningEmulator, endpoint: String? = nil) -> [String: String] {
        ["ALTI_ENDPOINT": endpoint ?? emu.baseURL, "ALTI_KEY": "alti-demo-key", "ALTI_TOKEN": "alti-demo-token",
         "ALTI_RETRY_BASE_MS": "10", "XDG_CONFIG_HOME": "/nonexistent-alti-config"]
    }

    /// A real JPEG of the sample survey made unique by a COM segment (`n` in its text).
    static func jpeg(_ n: Int) throws -> [UInt8] {
        let base = [UInt8](try Data(contentsOf: URL(fileURLWithPath: CommandContextTests.sample(1))))
        let comment = Array("alti bad-input test image \(n)".utf8)
        let length = UInt16(comment.count + 2)
        return [0xFF, 0xD8, 0xFF, 0xFE, UInt8(length >> 8), UInt8(length & 0xFF)] + comment + base.dropFirst(2)
    }

    static func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

    @Test func namesThatAreNotUTF8AndPathsPastPathMaxAreEachStoredOnceAndARerunHashesNothing() async throws {
        let tree = try TempTree("raw-sync")
        defer { tree.removeRaw() }
        let deep = (0..<18).map { Array(repeating: UInt8(ascii: "a") + UInt8($0), count: 250) }
        let files: [[[UInt8]]] = [
            [[0x61, 0xFF, 0x2E, 0x6A, 0x70, 0x67]],  // a\xff.jpg
            [[0x61, 0xFE, 0x2E, 0x6A, 0x70, 0x67]],  // a\xfe.jpg
            [Self.bytes("a%FF.jpg")],  // the literal name
            [[0x64, 0xE9, 0x72], Self.bytes("x.jpg")],  // a Latin-1 folder "dér"
            [[0x64, 0xE9, 0x72], [0x79, 0xFF, 0x2E, 0x6A, 0x70, 0x67]],
            [Array(repeating: UInt8(0xFF), count: 251) + Self.bytes(".jpg")],  // 255 bytes, 1004 recorded
            deep + [Self.bytes("deep.jpg")],  // past PATH_MAX
        ]
        var contentBySHA1: [String: [UInt8]] = [:]
        for (index, components) in files.enumerated() {
            let content = try Self.jpeg(index)
            try tree.writeRaw(components, content)
            contentBySHA1[Digest.sha1Hex(content)] = content
        }
        try await withEmulator(Self.configuration()) { emu in
            let first = await CommandContextTests.run(["sync", tree.path, "--project", Self.projectA, "--json"], Self.env(emu))
            #expect(first.code == 0, "\(first.out) \(first.err)")
            let stats = await emu.state.stats()
            #expect(stats.putsByImage.count == files.count)
            #expect(stats.putsByImage.values.allSatisfy { $0 == 1 })
            #expect(stats.imagesByState["Ready"] == files.count)
            let manifestPath = tree.path(".alti/manifest.json")
            let manifest = try #require(try ManifestStore().load(URL(fileURLWithPath: manifestPath)))
            #expect(manifest.entries.count == files.count)
            let recorded = files.map { $0.map { RecordedPath.escape($0) }.joined(separator: "/") }
            #expect(Set(manifest.entries.map(\.path)) == Set(recorded))
            // Every image stored is the bytes of its file, by the id the manifest recorded.
            for entry in manifest.entries {
                let server = try #require(entry.server, "\(entry.path.prefix(40))")
                #expect(server.state == .ready)
                let stored = await emu.state.objectBytes(imageID: server.imageID)
                #expect(stored == contentBySHA1[entry.sha1 ?? ""], "\(entry.path.prefix(40))")
            }
            // The server's names are UTF-8 display forms; the two "a%FF.jpg" differ by checksum.
            let names = await emu.state.images(ofProject: Self.projectA).map(\.name).sorted()
            #expect(names.filter { $0 == "a%FF.jpg" }.count == 2)
            #expect(names.contains("a%FE.jpg") && names.contains("y%FF.jpg") && names.contains("x.jpg"))
            #expect(try ManifestSchema.errors([manifestPath]) == [])

            let second = await CommandContextTests.run(["sync", tree.path, "--project", Self.projectA, "--json"], Self.env(emu))
            #expect(second.code == 0, "\(second.out) \(second.err)")
            let report = try #require(try JSONSerialization.jsonObject(with: Data(second.out.utf8)) as? [String: Any])
            #expect(report["filesHashed"] as? Int == 0)
            let after = await emu.state.stats()
            #expect(after.puts == stats.puts)
            #expect(after.registrations == stats.registrations)
        }
    }

    @Test func aFileRemovedBetweenTheScanAndItsUploadIsNamedAndTheRestIsStored() async throws {
        let tree = try TempTree("vanish-sync")
        defer { tree.removeRaw() }
        for i in 0..<6 { try tree.writeRaw([Self.bytes("IMG_\(i).JPG")], try Self.jpeg(100 + i)) }
        try await withEmulator(Self.configuration()) { emu in
            // Slow PUTs, one at a time: the files are removed once the first is stored, so the
            // ones not opened yet vanish between the sync's scan and their upload.
            await emu.updateFaults { $0.put.latencyMilliseconds = 400 }
            let run = Task {
                await CommandContextTests.run(["sync", tree.path, "--project", Self.projectA, "--transfers", "1"], Self.env(emu))
            }
            var storedOne = false
            for _ in 0..<1500 {
                if await emu.state.stats().puts("ok") >= 1 { storedOne = true; break }
                try await Task.sleep(for: .milliseconds(10))
            }
            #expect(storedOne)
            // Every file is removed: those stored or in flight (already open) are not affected.
            var removed: [String] = []
            for i in 0..<6 where unlink(tree.path("IMG_\(i).JPG")) == 0 { removed.append("IMG_\(i).JPG") }
            let result = await run.value
            let stats = await emu.state.stats()
            let stored = stats.imagesByState["Ready"] ?? 0
            #expect(stored >= 1, "\(result.out) \(result.err)")
            #expect(result.code == 75, "\(result.out) \(result.err)")
            let manifest = try #require(try ManifestStore().load(URL(fileURLWithPath: tree.path(".alti/manifest.json"))))
            // Nothing recorded is lost: six entries, the stored ones Ready, the others named.
            #expect(manifest.entries.count == 6)
            let ready = manifest.entries.filter { $0.server?.state == .ready }
            #expect(ready.count == stored)
            let notSent = manifest.entries.filter { $0.server?.state != .ready }
            #expect(!notSent.isEmpty)
            for entry in notSent {
                #expect(result.out.contains("vanished: \(tree.path(entry.path)) was removed or renamed since it was scanned"),
                        "\(entry.path): \(result.out)")
            }
            #expect(notSent.count + stored == 6)
        }
    }

    @Test func manifestsOfAnotherProjectAnotherEndpointOrANewerAltiAreRefusedInOneLineAndLeftAsTheyWere() async throws {
        let tree = try TempTree("binding")
        defer { tree.removeRaw() }
        for i in 0..<2 { try tree.writeRaw([Self.bytes("IMG_\(i).JPG")], try Self.jpeg(200 + i)) }
        try await withEmulator(Self.configuration()) { emu in
            let bound = await CommandContextTests.run(["sync", tree.path, "--project", Self.projectA], Self.env(emu))
            #expect(bound.code == 0, "\(bound.err)")
            let manifestPath = tree.path(".alti/manifest.json")
            let bytes = try tree.read(".alti/manifest.json")
            let puts = await emu.state.stats().puts
            // The sync's scan step saves the manifest again before the binding is checked (its
            // `writtenAt` moves); every fact in it must stay: the binding, entries, server facts.
            func facts() throws -> Manifest {
                var manifest = try #require(try ManifestStore().load(URL(fileURLWithPath: manifestPath)))
                manifest.writtenAt = ""
                manifest.writtenAtNs = 0
                return manifest
            }
            let boundFacts = try facts()
            #expect(boundFacts.remote.projectID == Self.projectA)
            #expect(boundFacts.entries.count == 2 && boundFacts.entries.allSatisfy { $0.server?.state == .ready })

            let otherProject = await CommandContextTests.run(["sync", tree.path, "--project", Self.projectB], Self.env(emu))
            #expect(otherProject.code == 67)
            #expect(otherProject.err == "alti: \(manifestPath) belongs to project \(Self.projectA), not \(Self.projectB); "
                + "sync it to that project, or give this sync its own --manifest FILE\n")
            #expect(try facts() == boundFacts)

            // The same emulator under another name is another endpoint as far as the manifest knows.
            let otherURL = emu.baseURL.replacingOccurrences(of: "127.0.0.1", with: "localhost")
            #expect(otherURL != emu.baseURL)
            let otherEndpoint = await CommandContextTests.run(["sync", tree.path, "--project", Self.projectA],
                                                              Self.env(emu, endpoint: otherURL))
            #expect(otherEndpoint.code == 67)
            #expect(otherEndpoint.err == "alti: \(manifestPath) belongs to \(emu.baseURL), not \(otherURL); "
                + "use --endpoint \(emu.baseURL), or give this sync its own --manifest FILE\n")
            #expect(try facts() == boundFacts)

            // Written by a newer alti: refused for scan and sync, not a byte changed.
            let newer = Array(String(decoding: try tree.read(".alti/manifest.json"), as: UTF8.self)
                .replacingOccurrences(of: "\"schemaVersion\" : 2", with: "\"schemaVersion\" : 3").utf8)
            #expect(newer != bytes)
            _ = try tree.write(".alti/manifest.json", newer)
            let line = "alti: \(manifestPath): schemaVersion 3 is newer than this alti understands (2); upgrade alti\n"
            // (--rebuild neither: it would move the newer alti's facts aside.)
            for args in [["scan"], ["scan", "--rebuild"], ["sync", "--project", Self.projectA]] {
                let command = args.joined(separator: " ")
                let refused = await CommandContextTests.run([args[0], tree.path] + args.dropFirst(), Self.env(emu))
                #expect(refused.code == 65, "\(command)")
                #expect(refused.err == line, "\(command)")
                #expect(try tree.read(".alti/manifest.json") == newer, "\(command)")
            }
            #expect(try FileManager.default.contentsOfDirectory(atPath: tree.path(".alti")).filter { $0.contains("corrupt") } == [])
            #expect(await emu.state.stats().puts == puts)
        }
    }

    @Test func aFileStillBeingWrittenMakesTheScanSayChangingAndExit75() async throws {
        let tree = try TempTree("changing-cli")
        defer { tree.removeRaw() }
        try tree.writeRaw([Self.bytes("done.jpg")], try Self.jpeg(300))
        try tree.writeRaw([Self.bytes("copying.jpg")], try Self.jpeg(301))
        let service = ScanService(inspector: FileInspector(reader: AppendingOnFirstRead(name: "copying.jpg")))
        let report = try #require(try await service.scan(paths: [tree.path]).first).report
        #expect(report.changing == ["copying.jpg"])
        #expect(report.problems == [])
        let error = try #require(ScanRenderer.changingError([report]))
        #expect(error.exitCode == 75)
        #expect(error.message == "changing: \(tree.path("copying.jpg")) is still being written; run again when the copy has finished")
        #expect(ScanRenderer.text(report).contains("  changing: \(tree.path("copying.jpg")) is still being written"))
        // The next run (the copy has finished) records it and exits 0.
        let rerun = await CommandContextTests.run(["scan", tree.path], ["XDG_CONFIG_HOME": "/nonexistent-alti-config"], offline: true)
        #expect(rerun.code == 0, "\(rerun.out) \(rerun.err)")
        #expect(!rerun.out.contains("changing: "))
        let manifest = try #require(try ManifestStore().load(URL(fileURLWithPath: tree.path(".alti/manifest.json"))))
        #expect(manifest.entry(at: "copying.jpg")?.sha1 == Digest.sha1Hex(try tree.read("copying.jpg")))
    }
}

/// A copy still being written: after the first read of `name`, zero padding is appended on disk.
struct AppendingOnFirstRead: FileReading {
    let name: String

    func open(_ path: String) throws(OSError) -> any ReadableFile {
        let file = try POSIXFileReading().open(path)
        return (path as NSString).lastPathComponent == name ? GrowingFile(inner: file, path: path) : file
    }
}

