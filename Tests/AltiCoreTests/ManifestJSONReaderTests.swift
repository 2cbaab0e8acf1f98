@testable import AltiCore
import AltiTestSupport
import Foundation
import Testing

/// The fast manifest reader against `JSONDecoder`: whatever it takes, it must read exactly as the
/// `Codable` path does; whatever that path refuses, it must refuse too (and `ManifestStore.decode`
/// then gives `JSONDecoder`'s message).
@Suite("Manifest JSON reader: the fast path equals JSONDecoder")
struct ManifestJSONReaderTests {
    /// A small seeded generator (SplitMix64), so a failure can be replayed.
    struct Seeded: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    /// The outcome of `ManifestStore.decodeWithFoundation`: the manifest, or the refusal's message.
    func foundation(_ data: Data) -> Result<Manifest, AltiError> {
        Result { () throws(AltiError) -> Manifest in try ManifestStore.decodeWithFoundation(data, file: "m.json") }
    }

    /// The invariant, for any bytes: the fast reader takes them only if JSONDecoder reads the same
    /// manifest, and `ManifestStore.decode` ends exactly as JSONDecoder does. Returns whether the
    /// fast reader took them.
    @discardableResult
    func check(_ data: Data, _ label: String, sourceLocation: SourceLocation = #_sourceLocation) -> Bool {
        let fast = ManifestJSONReader.decode(data)
        let reference = foundation(data)
        let store = Result { () throws(AltiError) -> Manifest in try ManifestStore.decode(data, file: "m.json") }
        switch reference {
        case .success(let manifest):
            if let fast { #expect(fast == manifest, "\(label): read differently", sourceLocation: sourceLocation) }
            #expect((try? store.get()) == manifest, "\(label)", sourceLocation: sourceLocation)
        case .failure(let error):
            #expect(fast == nil, "\(label): taken, but JSONDecoder refuses it: \(error.message)",
                    sourceLocation: sourceLocation)
            if case .failure(let storeError) = store {
                #expect(storeError.message == error.message, "\(label)", sourceLocation: sourceLocation)
                #expect(storeError.kind == error.kind, "\(label)", sourceLocation: sourceLocation)
            } else {
                Issue.record("\(label): ManifestStore.decode took what JSONDecoder refuses", sourceLocation: sourceLocation)
            }
        }
        return fast != nil
    }

    // MARK: Generated manifests

    static let trickyStrings = [
        "plain.jpg", "quote\"back\\slash/and/slashes.jpg", "tab\there\nnewline\r\u{08}\u{0C}\u{01}\u{1F}.jpg",
        "ünïcødé/写真/📷.JPG", "space dir/x y.tif", "\u{7F}del.png", "%25 and %FF escaped", "", "nul\u{0}byte",
        "e\u{301} combining", "\u{FEFF}bom", "🏳️‍🌈 flag", "a/b/c/d/e/f/g/h.jpeg",
    ]

    func randomString(_ rng: inout Seeded) -> String {
        if Bool.random(using: &rng) { return Self.trickyStrings.randomElement(using: &rng)! }
        let alphabet = Array("abcXYZ019 _-./\\\"\t\néß漢字🙂%")
        return String((0..<Int.random(in: 0...24, using: &rng)).map { _ in alphabet.randomElement(using: &rng)! })
    }

    func randomManifest(_ rng: inout Seeded, entries count: Int) -> Manifest {
        func maybe<T>(_ make: () -> T) -> T? { Bool.random(using: &rng) ? make() : nil }
        func int64() -> Int64 {
            [Int64.min, Int64.max, 0, -1, 1, Int64.random(in: Int64.min...Int64.max, using: &rng)].randomElement(using: &rng)!
        }
        func double() -> Double {
            [0, -0.0, 1, 1e21, 1e-7, -179.99999999, 22.30748611111111, Double.leastNonzeroMagnitude, Double.greatestFiniteMagnitude,
             Double.random(in: -180...180, using: &rng), Double(Int.random(in: -1000...1000, using: &rng))]
                .randomElement(using: &rng)!
        }
        var m = Manifest(root: randomString(&rng), kind: Bool.random(using: &rng) ? "folder" : "archive",
                         generator: "alti " + randomString(&rng),
                         remote: Manifest.Remote(endpoint: randomString(&rng), projectID: randomString(&rng),
                                                 cloud: randomString(&rng), bucket: randomString(&rng)),
                         writtenAtNs: int64())
        m.source.archive = maybe { Manifest.Source.FileFacts(size: int64(), mtimeNs: int64(), inode: UInt64.random(in: 0...UInt64.max, using: &rng)) }
        for _ in 0..<count {
            let server = maybe {
                ServerFacts(imageID: randomString(&rng), filename: randomString(&rng),
                            state: ImageState(["Ready", "Uploaded", "Invalid", "Pending", "", "Weird"].randomElement(using: &rng)!),
                            errors: (0..<Int.random(in: 0...3, using: &rng)).map { _ in randomString(&rng) },
                            bucket: randomString(&rng), cloud: randomString(&rng), checkedAt: randomString(&rng),
                            multipart: maybe {
                                MultipartUpload(uploadID: randomString(&rng), key: randomString(&rng), partSize: int64(),
                                                parts: (0..<Int.random(in: 0...3, using: &rng)).map { n in
                                                    .init(number: n + 1, etag: randomString(&rng), crc64: randomString(&rng), size: int64())
                                                })
                            },
                            refusedSends: Int.random(in: 0...2, using: &rng))
            }
            let exif = maybe {
                ExifFacts(capturedAt: maybe { randomString(&rng) }, make: maybe { randomString(&rng) }, model: maybe { randomString(&rng) },
                          gps: maybe { GPSPosition(latitude: double(), longitude: double(), altitude: maybe { double() }) })
            }
            m.entries.append(ManifestEntry(
                path: randomString(&rng), size: int64(), mtimeNs: int64(), inode: UInt64.random(in: 0...UInt64.max, using: &rng),
                sha1: maybe { randomString(&rng) }, type: maybe { ImageType.allCases.randomElement(using: &rng)! },
                width: maybe { Int(int64()) }, height: maybe { Int(int64()) }, verdict: Verdict.allCases.randomElement(using: &rng)!,
                detail: maybe { randomString(&rng) }, missing: Bool.random(using: &rng), duplicateOf: maybe { randomString(&rng) },
                server: server, hashedAtNs: maybe { int64() }, exif: exif))
        }
        return m
    }

    @Test func everyExampleManifestIsReadAsJSONDecoderReadsIt() throws {
        let dir = Run.packageRoot.appendingPathComponent("manifests/examples")
        let names = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".json") }.sorted()
        #expect(names.count >= 2)
        for name in names {
            let data = try Data(contentsOf: dir.appendingPathComponent(name))
            let fast = try #require(ManifestJSONReader.decode(data), "\(name): the fast reader refused an example")
            #expect(fast == (try ManifestStore.decodeWithFoundation(data, file: name)), "\(name)")
        }
    }

    /// Random manifests (unicode, escapes, control characters, nulls, EXIF, multipart, server
    /// facts, extreme numbers), as alti writes them and as a compact, unsorted JSONEncoder does.
    @Test func generatedManifestsAreReadAsJSONDecoderReadsThem() throws {
        var rng = Seeded(state: 13)
        let compact = JSONEncoder()  // no pretty-printing, keys in declaration order, "\/" escaped
        var taken = 0
        for round in 0..<300 {
            var manifest = randomManifest(&rng, entries: Int.random(in: 0...8, using: &rng))
            // Some of version 1, which both readers migrate (a folder's "%" becomes "%25").
            if round % 7 == 0 { manifest.schemaVersion = 1 }
            for (style, data) in [("alti", try ManifestStore.encode(manifest)), ("compact", try compact.encode(manifest))] {
                #expect(check(data, "round \(round), \(style)"), "round \(round), \(style): the fast reader refused it")
                taken += 1
                if manifest.schemaVersion == Manifest.currentSchemaVersion {
                    #expect(ManifestJSONReader.decode(data) == manifest, "round \(round), \(style): not what was written")
                }
            }
        }
        #expect(taken == 600)
    }

    /// JSON alti does not write but JSONDecoder reads: other whitespace, escapes of plain
    /// characters, surrogate pairs, keys in another order, absent optional keys, numbers as
    /// doubles written as integers.
    @Test func handWrittenVariantsAreReadAsJSONDecoderReadsThem() throws {
        let entry = #"""
        {"verdict":"ok","path":"\u0061\/b\u00e9\ud83d\udcf7.jpg","size":12,"mtimeNs":-5,"inode":18446744073709551615,
         "sha1":"\"q\"","type":"JPEG","width":null,"missing":true,"server":{"imageID":"i","filename":"f","state":"Ready",
         "errors":[ ],"bucket":"b","checkedAt":"c","multipart":{"uploadID":"u","key":"k","partSize":5,
         "parts":[{"number":1,"etag":"e","crc64":"9","size":5}]}},"exif":{"gps":{"latitude":35,"longitude":-1.5E+2,
         "altitude":0.1e1}},"hashedAtNs":0}
        """#
        let top = #"""
        	{ "writtenAtNs" : 9223372036854775807 ,"writtenAt":"w","generator":"g","schemaVersion":2,
        "source":{"root":"/r","kind":"folder","archive":null},"remote":{"endpoint":"","projectID":"","cloud":"","bucket":""},
        "entries":[ENTRY , ENTRY]}
        """#
        let text = top.replacingOccurrences(of: "ENTRY", with: entry).replacingOccurrences(of: "\n", with: "\r\n")
        let data = Data(text.utf8)
        #expect(check(data, "hand-written"))
        let manifest = try #require(ManifestJSONReader.decode(data))
        #expect(manifest.entries.first?.path == "a/bé📷.jpg")
        #expect(manifest.entries.first?.exif?.gps == GPSPosition(latitude: 35, longitude: -150, altitude: 1))
        #expect(manifest.entries.first?.server?.multipart?.parts.count == 1)
    }

    // MARK: Refusals

    func smallManifest() throws -> String {
        var rng = Seeded(state: 7)
        var manifest = randomManifest(&rng, entries: 0)
        manifest.entries = [
            ManifestEntry(path: "a%b.jpg", size: 10, mtimeNs: 20, inode: 30, sha1: "abc", type: .jpeg, width: 4, height: 3,
                          verdict: .ok, detail: nil, server: ServerFacts(imageID: "id", state: .ready, errors: ["x"],
                          multipart: MultipartUpload(uploadID: "u", key: "k", partSize: 5, parts: [.init(number: 1, etag: "e", crc64: "1", size: 5)])),
                          hashedAtNs: 40, exif: ExifFacts(capturedAt: "t", gps: GPSPosition(latitude: 1.5, longitude: 2))),
        ]
        return String(decoding: try ManifestStore.encode(manifest), as: UTF8.self)
    }

    /// Whatever JSONDecoder refuses, the fast reader refuses, and the message is JSONDecoder's:
    /// the corrupt manifests of ManifestStoreTests, then targeted changes, then every truncation
    /// and thousands of random byte changes of a small manifest.
    @Test func whatJSONDecoderRefusesTheReaderRefusesWithTheSameMessage() throws {
        let corrupt = [
            "{\n  \"schemaVersion\" : 1,\n  \"entries\" : [ nul ]\n}\n", "{\"schemaVersion\":1,\"entries\":[", "",
            "{\"schemaVersion\":3,\"whatever\":true}", "[1,2,3]", "null", "{}", "{ not json",
        ]
        for text in corrupt {
            #expect(!check(Data(text.utf8), text))
            #expect(throws: AltiError.self) { try ManifestStore.decode(Data(text.utf8), file: "m.json") }
        }
        let base = try smallManifest()
        #expect(check(Data(base.utf8), "base"))
        // Each change must make the fast reader refuse (JSONDecoder may or may not take it).
        let refused: [(String, String)] = [
            ("\"size\" : 10", "\"size\" : \"big\""), ("\"size\" : 10", "\"size\" : 10.0"), ("\"size\" : 10", "\"size\" : 1e1"),
            ("\"size\" : 10", "\"size\" : 010"), ("\"size\" : 10", "\"size\" : -0"), ("\"size\" : 10", "\"size\" : null"),
            ("\"size\" : 10", "\"size\" : 9223372036854775808"), ("\"inode\" : 30", "\"inode\" : -30"),
            ("\"inode\" : 30", "\"inode\" : 18446744073709551616"), ("\"size\" : 10", "\"size\" : 10, \"size\" : 11"),
            ("\"size\" : 10", "\"size\" : 10, \"color\" : 1"), ("\"size\" : 10", "\"s\\u0069ze\" : 10"),
            ("\"verdict\" : \"ok\"", "\"verdict\" : \"fine\""), ("\"type\" : \"JPEG\"", "\"type\" : \"jpeg\""),
            ("\"missing\" : false", "\"missing\" : 0"), ("\"path\" : \"a%b.jpg\"", "\"path\" : null"),
            ("\"schemaVersion\" : 2", "\"schemaVersion\" : 3"), ("\"schemaVersion\" : 2", "\"schemaVersion\" : \"2\""),
            ("\"schemaVersion\" : 2,", ""), ("\"latitude\" : 1.5", "\"latitude\" : 1.5e999"),
            ("\"latitude\" : 1.5", "\"latitude\" : .5"), ("\"latitude\" : 1.5", "\"latitude\" : 1."),
            ("\"errors\" : [\n", "\"errors\" : [\n 1,"), ("\"imageID\" : \"id\"", "\"imageID\" : \"\\x\""),
            ("\"imageID\" : \"id\"", "\"imageID\" : \"\\ud800\""), ("\"imageID\" : \"id\"", "\"imageID\" : \"\\udc00\""),
            ("\"imageID\" : \"id\"", "\"imageID\" : \"a\tb\""), ("\"width\" : 4", "\"width\" : 4,"),
        ]
        for (old, new) in refused {
            #expect(base.contains(old), "\(old)")
            let data = Data(base.replacingOccurrences(of: old, with: new).utf8)
            #expect(!check(data, "\(old) -> \(new)"), "\(old) -> \(new): taken by the fast reader")
        }
        #expect(!check(Data((base + "x").utf8), "trailing garbage"))
        #expect(!check(Data([0xEF, 0xBB, 0xBF] + Array(base.utf8)), "byte order mark"))
        #expect(!check(Data(base.replacingOccurrences(of: "a%b", with: "a\u{FF}b").utf8.map { $0 == 0xC3 ? 0xFF : $0 }), "not UTF-8"))

        let bytes = Array(base.utf8)
        var takenPrefixes = 0
        for length in 0..<bytes.count where check(Data(bytes[..<length]), "the first \(length) bytes") {
            takenPrefixes += 1
        }
        #expect(takenPrefixes == 1)  // the whole JSON, without the newline after it: no shorter one

        var rng = Seeded(state: 99)
        let significant = Array("{}[]\":,0123456789-+.eE tfnul\\/ax\u{7}".utf8) + [0xC3, 0xFF]
        var taken = 0
        for round in 0..<2000 {
            var mutated = bytes
            for _ in 0..<Int.random(in: 1...3, using: &rng) {
                let at = Int.random(in: 0..<mutated.count, using: &rng)
                switch Int.random(in: 0..<3, using: &rng) {
                case 0: mutated[at] = significant.randomElement(using: &rng)!
                case 1: mutated.remove(at: at)
                default: mutated.insert(significant.randomElement(using: &rng)!, at: at)
                }
            }
            if check(Data(mutated), "mutation \(round)") { taken += 1 }
        }
        // Most changes break the JSON or the shape; some (inside a string, digits of a number)
        // leave a manifest both readers take. Both kinds must occur, or the test proves little.
        #expect(taken > 50 && taken < 1900, "\(taken) of 2000 mutations taken")
    }

    // MARK: The streamed writer

    /// `save` writes the manifest in pieces as it encodes it: the pieces make exactly the bytes of
    /// `ManifestStore.encode` (JSONEncoder's, as ManifestStoreTests holds), whatever the piece size.
    @Test func theStreamedWriterMakesTheSameBytesInPieces() throws {
        var rng = Seeded(state: 21)
        let manifest = randomManifest(&rng, entries: 40)
        var whole = [UInt8](try ManifestStore.encode(manifest))
        whole.removeLast()  // the newline `save` adds after the JSON
        for chunk in [1, 100, 4096, 1 << 20] {
            var pieces: [[UInt8]] = []
            #expect(ManifestJSON.encode(manifest, chunk: chunk) { pieces.append(Array($0)); return true })
            #expect(Array(pieces.joined()) == whole, "chunk \(chunk)")
            // Pieces after each entry once `chunk` bytes are waiting: many for small chunks.
            #expect(pieces.count >= (chunk == 1 ? 41 : 1), "chunk \(chunk)")
        }
        var calls = 0
        #expect(!ManifestJSON.encode(manifest, chunk: 100) { _ in calls += 1; return false })
        #expect(calls == 1)  // stops at the first refusal
        let tree = try TempTree("streamed-save")
        let saved = try ManifestStore().save(manifest, to: tree.url("m.json"), nowNs: { 5 })
        #expect(try tree.read("m.json") == [UInt8](try ManifestStore.encode(saved)))
    }

    // MARK: The walk's shortcuts

    /// `RecordedPath.precedes` (memcmp) orders as the generic UTF-8 comparison it replaces.
    @Test func pathOrderEqualsTheUTF8ByteOrder() {
        var rng = Seeded(state: 5)
        let samples = Self.trickyStrings + (0..<200).map { _ in randomString(&rng) } + ["a", "ab", "a/b", "a.b", "", "é", "e\u{301}"]
        var compared = 0
        for a in samples {
            for b in samples.prefix(60) {
                #expect(RecordedPath.precedes(a, b) == a.utf8.lexicographicallyPrecedes(b.utf8), "\(a.debugDescription) \(b.debugDescription)")
                compared += 1
            }
        }
        #expect(compared == samples.count * 60)
    }

    /// The junk-name check skips lower-casing only where it cannot matter.
    @Test func junkNamesAreFoundWhateverTheirCase() {
        for name in ["Thumbs.db", "DESKTOP.INI", "$RECYCLE.BIN", "System Volume Information", "ehthumbs.db",
                     "des\u{212A}top.ini"] {  // a Kelvin sign lower-cases to "k"
            #expect(TreeWalker.isJunk(name), "\(name)")
        }
        for name in ["DJI_0001.JPG", "thumbs.dbx", "Thumbs.d", "ünïcødé.jpg", "desktop%2Eini"] {
            #expect(!TreeWalker.isJunk(name), "\(name)")
        }
    }

    // MARK: A fold in one pass

    /// `setServerFacts(_:)` for many checksums at once equals one `setServerFacts(_:forSHA1:)` per checksum.
    @Test func foldingManyChecksumsInOnePassEqualsOneAtATime() {
        var rng = Seeded(state: 3)
        var manifest = randomManifest(&rng, entries: 60)
        let sha1s = ["a", "b", "c", "d"]
        for index in manifest.entries.indices { manifest.entries[index].sha1 = sha1s.randomElement(using: &rng) }
        let facts = ["a": ServerFacts(imageID: "A"), "c": ServerFacts(imageID: "C"), "z": ServerFacts(imageID: "Z")]
        var oneByOne = manifest
        var changed = 0
        for (sha1, server) in facts {
            if oneByOne.setServerFacts(server, forSHA1: sha1) > 0 { changed += 1 }
        }
        var inOnePass = manifest
        #expect(inOnePass.setServerFacts(facts) == changed)
        #expect(inOnePass == oneByOne)
        var forgotten = manifest
        forgotten.forgetHash(ofSHA1: "b")
        forgotten.forgetHash(ofSHA1: "d")
        var forgottenInOnePass = manifest
        forgottenInOnePass.forgetHashes(ofSHA1s: ["b", "d", "zz"])
        #expect(forgottenInOnePass == forgotten)
    }
}
