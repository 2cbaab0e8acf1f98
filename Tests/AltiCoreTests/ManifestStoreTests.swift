import AltiCore
import AltiTestSupport
import Foundation
import Testing

@Suite("ManifestStore: locate, lock, load, save")
struct ManifestStoreTests {
    func sha1File(_ path: String) throws -> [UInt8] { [UInt8](try Data(contentsOf: URL(fileURLWithPath: path))) }

    func corruptCases() -> [(String, [UInt8], String)] {
        [
            ("syntax", Array("{\n  \"schemaVersion\" : 1,\n  \"entries\" : [ nul ]\n}\n".utf8), "line 3, column"),
            ("cut", Array("{\"schemaVersion\":1,\"entries\":[".utf8), "ends in the middle"),
            ("empty", [], "the file is empty"),
            ("shape", Array("{\"schemaVersion\":1,\"generator\":\"alti 0\",\"source\":{\"root\":\"/x\",\"kind\":\"folder\"},\"remote\":{\"endpoint\":\"\",\"projectID\":\"\",\"cloud\":\"\",\"bucket\":\"\"},\"writtenAt\":\"\",\"writtenAtNs\":0,\"entries\":[{\"path\":\"a.jpg\",\"size\":\"big\"}]}".utf8), "entries[0].size"),
            ("newer", Array("{\"schemaVersion\":3,\"whatever\":true}".utf8), "schemaVersion 3 is newer"),
            ("foreign", Array("[1,2,3]".utf8), "not an alti manifest"),
        ]
    }

    @Test func corruptOrNewerManifestIsRefusedAndLeftUntouched() async throws {
        for (name, bytes, message) in corruptCases() {
            let tree = try TempTree("corrupt-\(name)")
            try tree.write("a.jpg", ScanFixtures.jpeg(width: 10, height: 10))
            let manifest = try tree.write(".alti/manifest.json", bytes)
            var before = stat()
            _ = stat(manifest, &before)
            do {
                _ = try await ScanService().scan(paths: [tree.path])
                Issue.record("\(name): a corrupt manifest was accepted")
            } catch let error as AltiError {
                #expect(error.kind == .dataError, "\(name)")
                #expect(error.exitCode == 65)
                #expect(error.message.hasPrefix(manifest + ": "), "\(name): \(error.message)")
                #expect(error.message.contains(message), "\(name): \(error.message)")
                #expect(!error.message.contains("\n"), "\(name): not one line")
            }
            #expect(try tree.read(".alti/manifest.json") == bytes, "\(name): the manifest was modified")
            var after = stat()
            _ = stat(manifest, &after)
            #expect(after.st_ino == before.st_ino, "\(name): the manifest was replaced")
            #expect(try tree.files() == [".alti/manifest.json", ".alti/manifest.json.lock", "a.jpg"])
        }
    }

    @Test func rebuildMovesTheCorruptManifestAsideAndStartsOver() async throws {
        let tree = try TempTree("rebuild-corrupt")
        try tree.write("a.jpg", ScanFixtures.jpeg(width: 10, height: 10))
        let garbage = Array("{ not json".utf8)
        try tree.write(".alti/manifest.json", garbage)
        let result = try #require(try await ScanService().scan(paths: [tree.path], rebuild: true).first)
        let aside = try #require(result.report.movedAside)
        #expect(aside.hasPrefix(tree.path(".alti/manifest.json.corrupt-")))
        #expect([UInt8](try Data(contentsOf: URL(fileURLWithPath: aside))) == garbage)
        #expect(result.manifest.entries.map(\.path) == ["a.jpg"])
        let reloaded = try ManifestStore().load(result.manifestURL)
        #expect(reloaded == result.manifest)
    }

    @Test func saveIsAtomicSortedAndStable() throws {
        let tree = try TempTree("save")
        let url = tree.url("deep/er/manifest.json")
        var m = Manifest(root: "/r")
        m.entries = [
            ManifestEntry(path: "b.jpg", size: 1, mtimeNs: 1, inode: 1, sha1: String(repeating: "a", count: 40), type: .jpeg,
                          width: 1, height: 1, verdict: .ok, detail: nil),
            ManifestEntry(path: "a.jpg", size: 1, mtimeNs: 1, inode: 2, sha1: String(repeating: "a", count: 40), type: .jpeg,
                          width: 1, height: 1, verdict: .ok, detail: nil),
        ]
        let saved = try ManifestStore().save(m, to: url, nowNs: { 1_748_943_667_512_345_678 })
        #expect(saved.entries.map(\.path) == ["a.jpg", "b.jpg"])
        #expect(saved.entries[1].duplicateOf == "a.jpg")
        #expect(saved.writtenAt == "2025-06-03T09:41:07.512Z")
        #expect(saved.writtenAtNs == 1_748_943_667_512_345_678)
        let text = String(decoding: try Data(contentsOf: url), as: UTF8.self)
        #expect(text.hasSuffix("}\n"))
        #expect(text.contains("\"sha1\" : null") == false)
        #expect(text.contains("\"detail\" : null"))  // explicit nulls, not absent keys
        // Keys sorted: "entries" before "generator" before "remote" before "schemaVersion".
        let order = ["\"entries\"", "\"generator\"", "\"remote\"", "\"schemaVersion\"", "\"source\"", "\"writtenAt\""]
            .map { text.range(of: $0)!.lowerBound }
        #expect(order == order.sorted())
        // Saving the same manifest again gives the same bytes (stable output).
        try ManifestStore().save(saved, to: url, nowNs: { 1_748_943_667_512_345_678 })
        #expect(String(decoding: try Data(contentsOf: url), as: UTF8.self) == text)
        // No temp files are left behind.
        #expect(try tree.files() == ["deep/er/manifest.json"])
    }

    @Test func fastWriterIsByteIdenticalToJSONEncoder() throws {
        let tricky = ["plain.jpg", "quote\"back\\slash/and/slashes.jpg", "tab\there\nnewline\r\u{08}\u{0C}\u{01}\u{1F}.jpg",
                      "ünïcødé/写真/📷.JPG", "space dir/x y.tif", "\u{7F}del.png"]
        var m = Manifest(root: "/media/ÜSB \"card\"/DCIM", remote: Manifest.Remote(endpoint: "https://api.altizure.com/graphql",
                         projectID: "p/1", cloud: "s3", bucket: "b"), writtenAtNs: -1)
        for (i, path) in tricky.enumerated() {
            m.entries.append(ManifestEntry(
                path: path, size: Int64(i) * 1_000_000_007, mtimeNs: Int64.min + Int64(i), inode: UInt64.max - UInt64(i),
                sha1: i % 2 == 0 ? String(repeating: "f", count: 40) : nil, type: i % 3 == 0 ? .tiff : nil,
                width: i == 1 ? nil : i, height: i, verdict: Verdict.allCases[i % Verdict.allCases.count],
                detail: i % 2 == 0 ? nil : "what \"went\" wrong\n", missing: i == 2, duplicateOf: i == 4 ? "plain.jpg" : nil,
                server: i % 2 == 0 ? ServerFacts(imageID: "id\(i)", filename: path, state: "Ready", errors: i == 0 ? [] : ["e1", "e\"2"],
                                                 bucket: "bk", cloud: i == 2 ? "OSS" : "", checkedAt: "2025-01-01T00:00:00Z",
                                                 multipart: i == 4 ? MultipartUpload(
                                                     uploadID: "U\"1", key: "p/\(path)", partSize: 8 << 20,
                                                     parts: [.init(number: 1, etag: "\"A1\"", crc64: "18446744073709551615", size: 8 << 20)])
                                                     : nil) : nil,
                exif: i == 5 ? nil : ExifFacts(
                    capturedAt: i == 1 ? nil : "2019-05-21T10:22:3\(i)", make: i == 3 ? nil : "DJI \"\(i)\"", model: "FC6310",
                    gps: i == 2 ? nil : GPSPosition(latitude: [22.30748611111111, -0.000123, 0, 1e-7, 35][i % 5],
                                                    longitude: [114.17375, 1.0, -179.99999999, Double.leastNonzeroMagnitude, 1e21][i % 5],
                                                    altitude: i == 0 ? nil : [1.5, 123456789012345678.0, -12.25, 35.0, 0.1][i % 5]))))
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        var reference = try encoder.encode(m)
        reference.append(0x0A)
        let fast = try ManifestStore.encode(m)
        #expect(String(decoding: fast, as: UTF8.self) == String(decoding: reference, as: UTF8.self))
        #expect(fast == reference)
        #expect(try ManifestStore.decode(fast, file: "x") == m)
        // And an empty manifest.
        var empty = try encoder.encode(Manifest(root: "/"))
        empty.append(0x0A)
        #expect(try ManifestStore.encode(Manifest(root: "/")) == empty)
    }

    @Test func saveIntoAnUnwritableFolderIsCannotWrite() throws {
        let tree = try TempTree("unwritable")
        try tree.write("blocker", "a file where a folder should be")
        #expect(throws: AltiError.self) {
            try ManifestStore().save(Manifest(root: "/r"), to: tree.url("blocker/manifest.json"))
        }
        do {
            try ManifestStore().save(Manifest(root: "/r"), to: tree.url("blocker/manifest.json"))
        } catch {
            #expect(error.kind == .cannotWrite)
            #expect(error.exitCode == 73)
        }
    }

    @Test func secondAltiOnTheSameManifestFailsAtOnce() async throws {
        let tree = try TempTree("lock")
        try tree.write("a.jpg", ScanFixtures.jpeg(width: 10, height: 10))
        let store = ManifestStore()
        let location = store.locate(root: tree.path, override: nil)
        let held = try store.lock(location)
        do {
            _ = try await ScanService().scan(paths: [tree.path])
            Issue.record("a second scan ran while the manifest was locked")
        } catch let error as AltiError {
            #expect(error.kind == .cannotWrite)
            #expect(error.message.contains("in use by another alti"))
        }
        #expect(!FileManager.default.fileExists(atPath: location.file.path))
        held.release()
        let result = try await ScanService().scan(paths: [tree.path])
        #expect(result.first?.manifest.entries.count == 1)
    }

    @Test func readOnlyFolderFallsBackToTheStateDirectory() async throws {
        let tree = try TempTree("card")
        let state = try TempTree("state")
        try tree.write("DCIM/a.jpg", ScanFixtures.jpeg(width: 10, height: 10))
        let root = tree.path("DCIM")
        let store = ManifestStore(environment: ["XDG_STATE_HOME": state.path, "HOME": "/nonexistent"],
                                  canWrite: { _ in false })
        let result = try #require(try await ScanService(store: store).scan(paths: [root]).first)
        let name = ManifestStore.fallbackName(root: root)
        #expect(name.hasPrefix("DCIM-"))
        #expect(name.count == "DCIM-".count + 8 + ".json".count)
        #expect(result.manifestURL.path == state.path("alti/" + name))
        #expect(result.report.manifestIsFallback)
        #expect(result.report.manifest == state.path("alti/" + name))
        #expect(try tree.files() == ["DCIM/a.jpg"])  // nothing written to the card
        // A second DCIM elsewhere gets its own file.
        #expect(ManifestStore.fallbackName(root: "/media/other/DCIM") != name)
        // Found again on the next run, even if the card became writable.
        let writable = ManifestStore(environment: ["XDG_STATE_HOME": state.path], canWrite: { _ in true })
        #expect(writable.locate(root: root, override: nil) == ManifestLocation(file: result.manifestURL, isFallback: true))
        // Without XDG_STATE_HOME: ~/.local/state/alti.
        let home = ManifestStore(environment: ["HOME": "/home/pilot"], canWrite: { _ in false })
        #expect(home.locate(root: "/media/card/DCIM", override: nil).file.path
                == "/home/pilot/.local/state/alti/" + ManifestStore.fallbackName(root: "/media/card/DCIM"))
    }

    @Test func cardScannedWhenWritableThenReadOnlyContinuesInTheStateFolder() async throws {
        let tree = try TempTree("card-ro")
        let state = try TempTree("state-ro")
        try tree.write("DCIM/a.jpg", ScanFixtures.jpeg(width: 10, height: 10))
        try tree.ageAllFiles()
        let root = tree.path("DCIM")
        let first = try #require(try await ScanService().scan(paths: [root]).first)
        var m = first.manifest
        m.setServerFacts(ServerFacts(imageID: "i1", filename: "a.jpg", state: "Ready", bucket: "b", checkedAt: "t"),
                         forSHA1: try #require(m.entries.first?.sha1))
        try ManifestStore().save(m, to: first.manifestURL)
        let cardBytes = try tree.read("DCIM/.alti/manifest.json")

        let readOnly = ManifestStore(environment: ["XDG_STATE_HOME": state.path], canWrite: { _ in false })
        let location = readOnly.locate(root: root, override: nil)
        #expect(location.isFallback)
        #expect(location.seed?.path == first.manifestURL.path)
        let second = try #require(try await ScanService(store: readOnly).scan(paths: [root]).first)
        #expect(second.manifestURL.path.hasPrefix(state.path))
        #expect(second.report.filesReused == 1)  // seeded: nothing re-hashed
        #expect(second.manifest.entries.first?.server?.imageID == "i1")
        #expect(try tree.read("DCIM/.alti/manifest.json") == cardBytes)
    }

    @Test func manifestOverride() async throws {
        let tree = try TempTree("override")
        let elsewhere = try TempTree("elsewhere")
        try tree.write("a.jpg", ScanFixtures.jpeg(width: 10, height: 10))
        let file = elsewhere.path("sub/my.json")
        let result = try #require(try await ScanService().scan(paths: [tree.path], manifestOverride: file).first)
        #expect(result.manifestURL.path == file)
        #expect(try elsewhere.files() == ["sub/my.json", "sub/my.json.lock"])
        #expect(try tree.files() == ["a.jpg"])
    }
}
