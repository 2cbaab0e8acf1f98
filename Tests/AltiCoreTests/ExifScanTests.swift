import AltiArchive
import AltiTestSupport
import Foundation
import Testing

@testable import AltiCore

/// EXIF in the scan: the bundled sample's capture facts against an independent reader (Python's
/// Pillow), archive members against their folder copies, the backfill of older manifests, and
/// what the reading costs in opens and bytes.
@Suite(.serialized) struct ExifScanTests {
    /// Prints, per file, what Pillow reads: capture time (DateTimeOriginal, else DateTime, with
    /// OffsetTimeOriginal), make, model and the GPS position as alti documents it.
    static let pillow = """
        import json, os, sys
        try:
            from PIL import Image
        except ImportError:
            print("%s has no Pillow: run scripts/bootstrap --test and set ALTI_TEST_PYTHON to the interpreter it prints" % sys.executable)
            sys.exit(3)
        def text(v):
            if v is None: return None
            if isinstance(v, bytes): v = v.decode("utf-8", "replace")
            v = v.strip("\\x00 ")
            return v or None
        def when(dt, offset):
            dt = text(dt)
            if dt is None: return None
            return dt[0:4] + "-" + dt[5:7] + "-" + dt[8:10] + "T" + dt[11:19] + (text(offset) or "")
        def degrees(parts, ref, negative):
            d, m, s = (float(p) for p in parts)
            v = d + m / 60 + s / 3600
            return -v if text(ref) == negative else v
        out = {}
        root = sys.argv[1]
        for rel in sys.argv[2:]:
            with Image.open(os.path.join(root, rel)) as im:
                exif = im.getexif()
                sub = exif.get_ifd(0x8769)
                gps = exif.get_ifd(0x8825)
                facts = {"make": text(exif.get(0x010F)), "model": text(exif.get(0x0110)),
                         "capturedAt": when(sub.get(0x9003), sub.get(0x9011)) if sub.get(0x9003) else when(exif.get(0x0132), None),
                         "gps": None}
                if 2 in gps and 4 in gps:
                    ref = gps.get(5, 0)
                    if isinstance(ref, bytes): ref = ref[0]
                    alt = float(gps[6]) if 6 in gps else None
                    if alt is not None and ref == 1: alt = -alt
                    facts["gps"] = {"latitude": degrees(gps[2], gps.get(1), "S"),
                                    "longitude": degrees(gps[4], gps.get(3), "W"), "altitude": alt}
                out[rel] = facts
        print(json.dumps(out))
        """

    struct Pillow: Decodable {
        var capturedAt: String?
        var make: String?
        var model: String?
        var gps: GPS?
        struct GPS: Decodable { var latitude: Double; var longitude: Double; var altitude: Double? }
    }

    /// Pillow's reading of `paths` under `root`.
    static func pillowFacts(root: String, _ paths: [String]) throws -> [String: Pillow] {
        let result = try Run.process(TestPython.interpreter, ["-c", pillow, root] + paths)
        guard result.exitCode == 0 else {
            throw RunError("Pillow could not read the images (exit \(result.exitCode)): \(result.stdout)\(result.stderr)")
        }
        return try JSONDecoder().decode([String: Pillow].self, from: Data(result.stdout.utf8))
    }

    /// Expects alti's facts to be Pillow's: strings equal, degrees within 1e-9, metres within 1e-6.
    static func expectSame(_ exif: ExifFacts?, _ pillow: Pillow?, _ path: String) {
        guard let exif, let pillow else {
            Issue.record("\(path): alti \(String(describing: exif)), Pillow \(String(describing: pillow))")
            return
        }
        #expect(exif.capturedAt == pillow.capturedAt, "\(path)")
        #expect(exif.make == pillow.make, "\(path)")
        #expect(exif.model == pillow.model, "\(path)")
        #expect((exif.gps == nil) == (pillow.gps == nil), "\(path)")
        if let a = exif.gps, let b = pillow.gps {
            #expect(abs(a.latitude - b.latitude) < 1e-9, "\(path): \(a.latitude) vs \(b.latitude)")
            #expect(abs(a.longitude - b.longitude) < 1e-9, "\(path): \(a.longitude) vs \(b.longitude)")
            #expect((a.altitude == nil) == (b.altitude == nil), "\(path)")
            if let x = a.altitude, let y = b.altitude { #expect(abs(x - y) < 1e-6, "\(path): \(x) vs \(y)") }
        }
    }

    @Test func theSampleAgreesWithPillow() async throws {
        let root = ScanFixtures.sampleSurvey
        let (manifest, report) = try await ScanService().update(previous: nil, root: root)
        let images = manifest.entries.filter { $0.type != nil }
        #expect(images.count == 24)
        let pillow = try Self.pillowFacts(root: root, images.map(\.path))
        #expect(pillow.count == 24)
        for entry in images { Self.expectSame(entry.exif, pillow[entry.path], entry.path) }
        // The sample has all of it: a comparison of nils with nils would prove nothing.
        #expect(images.allSatisfy { $0.exif?.gps?.altitude != nil && $0.exif?.capturedAt != nil && $0.exif?.make != nil })
        #expect(Set(images.compactMap { $0.exif?.gps.map { "\($0.latitude) \($0.longitude)" } }).count == 24)
        #expect(Set(images.compactMap { $0.exif?.capturedAt }).count == 24)
        #expect(report.imagesWithGPS == 24 && report.imagesWithCaptureTime == 24)
    }

    @Test func anArchiveMemberHasTheFolderCopysFacts() async throws {
        let tree = try TempTree("exif-archive")
        defer { tree.remove() }
        let names = ["flight1/DJI_0001.JPG", "flight1/DJI_0007.JPG", "flight2/DJI_0013.JPG"]
        var members: [(name: String, file: String)] = []
        for name in names {
            try tree.copy(ScanFixtures.sampleSurvey + "/" + name, to: "folder/" + name)
            members.append((name: name, file: tree.path("folder/" + name)))
        }
        let folder = try await ScanService().update(previous: nil, root: tree.path("folder")).0
        for format in [ArchiveWriter.Format.zip, .tarGzip] {
            let archive = tree.path("survey.\(format.rawValue)")
            try ArchiveWriter.write(archive, format: format, members: members)
            let (manifest, _) = try await ScanService().update(previous: nil, tree: ArchiveTree(root: archive))
            for name in names {
                let member = try #require(manifest.entry(at: name)?.exif)
                #expect(member.gps != nil)
                #expect(member == folder.entry(at: name)?.exif, "\(format): \(name)")
            }
        }
    }

    /// A manifest written before EXIF was recorded, as such a build wrote it: no "exif" key at all.
    static func stripExif(_ file: URL) throws {
        var object = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: file)) as? [String: Any])
        let entries = try #require(object["entries"] as? [[String: Any]])
        object["entries"] = entries.map { entry -> [String: Any] in
            var e = entry
            e.removeValue(forKey: "exif")
            return e
        }
        try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted]).write(to: file)
    }

    @Test func anOlderManifestGetsExifFromHeadersWithoutRehashing() async throws {
        let tree = try TempTree("exif-backfill")
        defer { tree.remove() }
        try tree.copy(ScanFixtures.sampleSurvey, to: "s")
        try tree.ageAllFiles()
        let first = try #require(try await ScanService().scan(paths: [tree.path("s")]).first)
        #expect(first.report.filesHashed == 24)
        try Self.stripExif(first.manifestURL)
        let older = try #require(try ManifestStore().load(first.manifestURL))
        #expect(older.entries.allSatisfy { $0.exif == nil })

        let counting = CountingReading()
        let service = ScanService(inspector: FileInspector(reader: counting))
        let second = try #require(try await service.scan(paths: [tree.path("s")]).first)
        #expect(second.report.filesHashed == 0)  // not one image read again in full
        #expect(second.report.bytesHashed == 0)
        #expect(second.report.filesReused == 24)  // the README is no image: sniffed again, never recorded
        #expect(second.report.exifBackfilled == 24)
        #expect(second.report.imagesWithGPS == 24)
        for entry in first.manifest.entries {
            let now = try #require(second.manifest.entry(at: entry.path))
            #expect(now.exif == entry.exif, "\(entry.path)")
            #expect(now.sha1 == entry.sha1 && now.hashedAtNs == entry.hashedAtNs, "\(entry.path)")
        }
        // Only the headers were read: one open per image (and the README's sniff), a few KiB each.
        let readme = try FileManager.default.attributesOfItem(atPath: tree.path("s/README.md"))[.size] as? Int64 ?? -1
        #expect(counting.opens == 25)
        #expect(counting.bytes - readme == 24 * Int64(FileInspector.headerProbe))
        #expect(counting.bytes < first.report.bytesHashed / 10)
        // Saved, so once: the next scan reads nothing.
        let saved = try #require(try ManifestStore().load(second.manifestURL))
        #expect(saved.entries.filter { $0.type != nil }.allSatisfy { $0.exif?.gps != nil })
        #expect(try ManifestSchema.errors([second.manifestURL.path]) == [])
        let third = try #require(try await service.scan(paths: [tree.path("s")]).first)
        #expect(third.report.exifBackfilled == 0 && third.report.filesHashed == 0)
        #expect(counting.opens == 26)  // the README alone
    }

    @Test func anUnchangedArchiveOfAnOlderManifestIsReadOnceForExif() async throws {
        let tree = try TempTree("exif-backfill-archive")
        defer { tree.remove() }
        let names = ["flight1/DJI_0002.JPG", "flight2/DJI_0020.JPG"]
        let archive = tree.path("survey.tar.gz")
        try ArchiveWriter.write(archive, format: .tarGzip,
                                members: names.map { (name: $0, file: ScanFixtures.sampleSurvey + "/" + $0) })
        try tree.ageAllFiles()
        let manifest = tree.path("m.json")
        let first = try #require(try await ScanService().scan(paths: [archive], manifestOverride: manifest).first)
        #expect(first.report.filesHashed == 2)
        try Self.stripExif(URL(fileURLWithPath: manifest))
        let opens = ArchiveLibrary.opens(of: archive)
        let second = try #require(try await ScanService().scan(paths: [archive], manifestOverride: manifest).first)
        #expect(second.report.filesHashed == 0)
        #expect(second.report.exifBackfilled == 2)
        // The walk and one pass for the headers.
        #expect(ArchiveLibrary.opens(of: archive) - opens == 2)
        for name in names {
            #expect(second.manifest.entry(at: name)?.exif == first.manifest.entry(at: name)?.exif)
            #expect(second.manifest.entry(at: name)?.exif?.gps != nil)
        }
        // Now recorded: the unchanged archive is not opened at all.
        let third = try #require(try await ScanService().scan(paths: [archive], manifestOverride: manifest).first)
        #expect(third.report.exifBackfilled == 0)
        #expect(ArchiveLibrary.opens(of: archive) - opens == 2)
    }

    @Test func aHeaderReadNeedsTheRecordedStat() throws {
        let tree = try TempTree("exif-header")
        defer { tree.remove() }
        let b = ExifBuilder.self
        let tiff = try tree.write("far.tif", b.tiff(little: false, ifd0: [(256, .short(4)), (257, .short(4))] + b.make,
                                                    gps: b.gps(), padding: 3 << 20))
        let jpeg = ScanFixtures.sampleSurvey + "/flight2/DJI_0013.JPG"
        let counting = CountingReading()
        let inspector = FileInspector(reader: counting)
        for path in [tiff, jpeg] {
            let st = try POSIXFileReading().open(path).stat()
            let facts = try #require(inspector.headerExif(path: path, expected: st))
            #expect(facts.make == "DJI" && facts.gps != nil, "\(path)")
            // The file is not the one recorded (another size, mtime or inode): nothing is taken from it.
            for other in [FileStat(size: st.size + 1, mtimeNs: st.mtimeNs, inode: st.inode),
                          FileStat(size: st.size, mtimeNs: st.mtimeNs - 1, inode: st.inode),
                          FileStat(size: st.size, mtimeNs: st.mtimeNs, inode: st.inode + 1)] {
                #expect(inspector.headerExif(path: path, expected: other) == nil)
            }
        }
        // The TIFF's IFDs 3 MiB in were reached by positioned reads, not by reading up to them.
        #expect(counting.bytes < 1 << 20)
        #expect(counting.positionedReads > 0)
        #expect(inspector.headerExif(path: tree.path("absent.jpg"), expected: FileStat(size: 0, mtimeNs: 0, inode: 0)) == nil)
    }

    @Test func theScanReadsEachImageOnceForHashAndExif() async throws {
        let counting = CountingReading()
        let (manifest, report) = try await ScanService(inspector: FileInspector(reader: counting))
            .update(previous: nil, root: ScanFixtures.sampleSurvey)
        #expect(manifest.entries.filter { $0.exif?.gps != nil }.count == 24)
        // 24 images and the README: one open each; every byte of the images read once, sequentially;
        // no positioned read; the README stops at its first (and only) chunk.
        let readme = try FileManager.default.attributesOfItem(atPath: ScanFixtures.sampleSurvey + "/README.md")[.size] as? Int64 ?? -1
        #expect(counting.opens == 25)
        #expect(counting.positionedReads == 0)
        #expect(counting.bytes == report.bytesHashed + readme)
    }
}

/// A `FileReading` over the real file system that counts opens, bytes read and positioned reads.
final class CountingReading: FileReading, @unchecked Sendable {
    private let lock = NSLock()
    private var counts = (opens: 0, bytes: Int64(0), positioned: 0)
    var opens: Int { lock.withLock { counts.opens } }
    var bytes: Int64 { lock.withLock { counts.bytes } }
    var positionedReads: Int { lock.withLock { counts.positioned } }

    func open(_ path: String) throws(OSError) -> any ReadableFile {
        let file = try POSIXFileReading().open(path)
        lock.withLock { counts.opens += 1 }
        return Counted(base: file, owner: self)
    }

    func add(bytes: Int, positioned: Bool) {
        lock.withLock {
            counts.bytes += Int64(bytes)
            if positioned { counts.positioned += 1 }
        }
    }

    final class Counted: ReadableFile {
        let base: any ReadableFile
        let owner: CountingReading
        init(base: any ReadableFile, owner: CountingReading) {
            self.base = base
            self.owner = owner
        }
        func read(into buffer: UnsafeMutableRawBufferPointer) throws(OSError) -> Int {
            let n = try base.read(into: buffer)
            owner.add(bytes: n, positioned: false)
            return n
        }
        func read(at offset: Int64, count: Int) throws(OSError) -> [UInt8] {
            let bytes = try base.read(at: offset, count: count)
            owner.add(bytes: bytes.count, positioned: true)
            return bytes
        }
        func stat() throws(OSError) -> FileStat { try base.stat() }
    }
}
