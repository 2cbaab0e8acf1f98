import AltiCore
import AltiTestSupport
import Foundation
import Testing

@Suite("Manifest JSON Schema and examples")
struct ManifestSchemaTests {
    var examples: [String] {
        let dir = Run.packageRoot.appendingPathComponent("manifests/examples")
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
        return names.filter { $0.hasSuffix(".json") }.sorted().map { dir.appendingPathComponent($0).path }
    }

    @Test func examplesValidateAndDecodeInSwift() throws {
        #expect(examples.count >= 2)
        #expect(try ManifestSchema.errors(examples) == [])
        for path in examples {
            let data = try Data(contentsOf: URL(fileURLWithPath: path))
            let manifest = try ManifestStore.decode(data, file: path)
            #expect(manifest.schemaVersion == Manifest.currentSchemaVersion)
            // Examples are in canonical form: what alti itself would write.
            var normalized = manifest
            normalized.normalize()
            #expect(normalized == manifest, "\(path) is not normalized")
            #expect(try ManifestStore.encode(manifest) == data, "\(path) is not byte-identical to alti's encoding")
        }
    }

    @Test func theValidatorRejectsBrokenManifests() throws {
        let tree = try TempTree("schema-neg")
        let base = try String(contentsOfFile: examples[0], encoding: .utf8)
        let broken = [
            base.replacingOccurrences(of: "\"schemaVersion\" : 2", with: "\"schemaVersion\" : 3"),
            base.replacingOccurrences(of: "\"verdict\" : \"ok\"", with: "\"verdict\" : \"fine\""),
            base.replacingOccurrences(of: "\"missing\" : false", with: "\"missing\" : \"no\""),
            // A "%" that is not an escape: a recorded path writes a literal one as "%25".
            base.replacingOccurrences(of: "\"path\" : \"fake.jpg\"", with: "\"path\" : \"fake%.jpg\""),
        ]
        var paths: [String] = []
        for (i, text) in broken.enumerated() {
            #expect(text != base)
            paths.append(try tree.write("broken\(i).json", text))
        }
        let errors = try ManifestSchema.errors(paths)
        for path in paths { #expect(errors.contains { $0.hasPrefix(path) }, "\(path) passed the schema") }
    }

    @Test func everyManifestTheScanWritesValidates() async throws {
        let tree = try TempTree("schema-scan")
        try tree.copy(ScanFixtures.sampleSurvey, to: "s")
        try tree.write("s/bad/empty.jpg", [UInt8]())
        try tree.write("s/bad/cut.png", ScanFixtures.png(width: 10, height: 10, iend: false))
        try tree.write("s/bad/words.tif", "words")
        try tree.write("s/bad/DJI_9999", ScanFixtures.jpeg(width: 3000, height: 2000))
        try tree.write("s/bad/noframe.jpg", [0xFF, 0xD8, 0xFF, 0xDA, 0x00, 0x02, 0xFF, 0xD9])
        try tree.write("s/ok/tiff.tiff", ScanFixtures.tiff(width: 5, height: 6, littleEndian: true, long: false))
        try tree.copy(tree.path("s/flight1/DJI_0001.JPG"), to: "s/dup.jpg")
        let first = try #require(try await ScanService().scan(paths: [tree.path("s")]).first)
        var m = first.manifest
        m.setServerFacts(ServerFacts(imageID: "x", filename: "DJI_0001.JPG", state: "Ready", errors: [], bucket: "b",
                                     checkedAt: "2025-01-01T00:00:00.000Z"),
                         forSHA1: try #require(m.entry(at: "dup.jpg")?.sha1))
        m.remote = Manifest.Remote(endpoint: "https://api.altizure.com", projectID: "p", cloud: "s3", bucket: "b")
        try ManifestStore().save(m, to: first.manifestURL)
        try FileManager.default.removeItem(atPath: tree.path("s/dup.jpg"))
        let second = try #require(try await ScanService().scan(paths: [tree.path("s")]).first)
        #expect(second.report.missing == 1)
        let verdicts = Set(second.manifest.entries.map(\.verdict))
        #expect(verdicts == [.ok, .empty, .truncated, .notAnImage, .corrupt])
        #expect(try ManifestSchema.errors([second.manifestURL.path]) == [])
        let decoded = try ManifestStore().load(second.manifestURL)
        #expect(decoded == second.manifest)
    }
}
