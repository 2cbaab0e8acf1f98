import AltiTestSupport
import Foundation
import Testing

@testable import AltiCore

/// Builds EXIF TIFF structures byte by byte: header, IFD0, its Exif and GPS IFDs, then the values
/// that do not fit in 4 bytes. Offsets are relative to the header, as in EXIF.
enum ExifBuilder {
    enum Value {
        case ascii(String)
        /// Raw ASCII bytes (NULs and padding as a camera writes them), count = bytes.count.
        case asciiBytes([UInt8])
        case rationals([(UInt32, UInt32)])
        case byte(UInt8)
        case short(UInt16)
        case long(UInt32)
    }

    static func u16(_ v: Int, _ little: Bool) -> [UInt8] {
        little ? [UInt8(v & 0xFF), UInt8(v >> 8 & 0xFF)] : [UInt8(v >> 8 & 0xFF), UInt8(v & 0xFF)]
    }

    static func u32(_ v: UInt32, _ little: Bool) -> [UInt8] {
        let be = [UInt8(v >> 24 & 0xFF), UInt8(v >> 16 & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v & 0xFF)]
        return little ? be.reversed() : be
    }

    /// - Parameters:
    ///   - padding: bytes between the header and IFD0 (a TIFF's pixel data).
    ///   - exifPointer, gpsPointer: written instead of the real offsets (out of range, loops).
    static func tiff(little: Bool, ifd0: [(UInt16, Value)], exif: [(UInt16, Value)]? = nil,
                     gps: [(UInt16, Value)]? = nil, padding: Int = 0,
                     exifPointer: UInt32? = nil, gpsPointer: UInt32? = nil) -> [UInt8] {
        func size(_ n: Int) -> Int { 2 + 12 * n + 4 }
        let ifd0Count = ifd0.count + (exif == nil ? 0 : 1) + (gps == nil ? 0 : 1)
        let ifd0At = 8 + padding
        let exifAt = ifd0At + size(ifd0Count)
        let gpsAt = exifAt + (exif.map { size($0.count) } ?? 0)
        var dataAt = gpsAt + (gps.map { size($0.count) } ?? 0)
        var data: [UInt8] = []

        func ifd(_ entries: [(UInt16, Value)]) -> [UInt8] {
            var out = u16(entries.count, little)
            for (tag, value) in entries {
                let (type, count, bytes): (Int, Int, [UInt8])
                switch value {
                case .ascii(let s): (type, count, bytes) = (2, s.utf8.count + 1, Array(s.utf8) + [0])
                case .asciiBytes(let b): (type, count, bytes) = (2, b.count, b)
                case .rationals(let r): (type, count, bytes) = (5, r.count, r.flatMap { u32($0.0, little) + u32($0.1, little) })
                case .byte(let b): (type, count, bytes) = (1, 1, [b])
                case .short(let s): (type, count, bytes) = (3, 1, u16(Int(s), little))
                case .long(let l): (type, count, bytes) = (4, 1, u32(l, little))
                }
                out += u16(Int(tag), little) + u16(type, little) + u32(UInt32(count), little)
                if bytes.count <= 4 {
                    out += bytes + [UInt8](repeating: 0, count: 4 - bytes.count)
                } else {
                    out += u32(UInt32(dataAt), little)
                    data += bytes
                    dataAt += bytes.count
                }
            }
            return out + u32(0, little)
        }

        var entries0 = ifd0
        if exif != nil { entries0.append((0x8769, .long(exifPointer ?? UInt32(exifAt)))) }
        if gps != nil { entries0.append((0x8825, .long(gpsPointer ?? UInt32(gpsAt)))) }
        var out: [UInt8] = little ? [0x49, 0x49, 0x2A, 0x00] : [0x4D, 0x4D, 0x00, 0x2A]
        out += u32(UInt32(ifd0At), little)
        out += [UInt8](repeating: 0x80, count: padding)
        out += ifd(entries0)
        if let exif { out += ifd(exif) }
        if let gps { out += ifd(gps) }
        return out + data
    }

    /// A JPEG whose APP1 holds `tiff`, behind an APP0 (as many cameras write it).
    static func jpeg(app1 tiff: [UInt8]) -> [UInt8] {
        let payload = Array("Exif".utf8) + [0, 0] + tiff
        var out: [UInt8] = [0xFF, 0xD8]
        out += ScanFixtures.segment(0xE0, Array("JFIF".utf8) + [0, 1, 1, 0, 0, 1, 0, 1, 0, 0])
        out += ScanFixtures.segment(0xE1, payload)
        return out + Array(ScanFixtures.jpeg(width: 64, height: 48).dropFirst(2))
    }

    /// IFD0, Exif and GPS entries of a drone photo: 22°20'11.04" N 114°15'55.8" E, 123.4 m.
    static let make: [(UInt16, Value)] = [(0x010F, .ascii("DJI")), (0x0110, .ascii("FC6310")),
                                          (0x0132, .ascii("2019:05:21 18:00:00"))]
    static let exif: [(UInt16, Value)] = [(0x9003, .ascii("2019:05:21 10:22:33"))]
    static func gps(lat: String = "N", lon: String = "E", altitudeRef: UInt8 = 0,
                    latitude: [(UInt32, UInt32)] = [(22, 1), (20, 1), (1104, 100)],
                    altitude: (UInt32, UInt32) = (1234, 10)) -> [(UInt16, Value)] {
        [(1, .ascii(lat)), (2, .rationals(latitude)), (3, .ascii(lon)),
         (4, .rationals([(114, 1), (15, 1), (558, 10)])), (5, .byte(altitudeRef)), (6, .rationals([altitude]))]
    }
    static let latitude = 22.0 + 20.0 / 60 + 11.04 / 3600
    static let longitude = 114.0 + 15.0 / 60 + 55.8 / 3600
}

@Suite struct ExifReaderTests {
    typealias B = ExifBuilder

    func read(_ tiff: [UInt8]) -> ExifFacts { ExifReader.tiff(TIFFBytes(tiff)) }

    @Test func bothByteOrdersGiveTheSameFacts() throws {
        for little in [true, false] {
            let facts = read(B.tiff(little: little, ifd0: B.make, exif: B.exif, gps: B.gps()))
            #expect(facts.make == "DJI")
            #expect(facts.model == "FC6310")
            #expect(facts.capturedAt == "2019-05-21T10:22:33")  // DateTimeOriginal, not DateTime
            let gps = try #require(facts.gps)
            #expect(abs(gps.latitude - B.latitude) < 1e-9)
            #expect(abs(gps.longitude - B.longitude) < 1e-9)
            #expect(gps.altitude == 123.4)
            // The same structure inside a JPEG's APP1.
            #expect(ExifReader.jpeg(B.jpeg(app1: B.tiff(little: little, ifd0: B.make, exif: B.exif, gps: B.gps()))) == facts)
        }
    }

    @Test func southWestAndBelowSeaLevelAreNegative() throws {
        let facts = read(B.tiff(little: true, ifd0: B.make, gps: B.gps(lat: "S", lon: "W", altitudeRef: 1)))
        let gps = try #require(facts.gps)
        #expect(abs(gps.latitude + B.latitude) < 1e-9)
        #expect(abs(gps.longitude + B.longitude) < 1e-9)
        #expect(gps.altitude == -123.4)
        // A ref that is neither letter: no position (half a position is none).
        #expect(read(B.tiff(little: true, ifd0: B.make, gps: B.gps(lat: "X"))).gps == nil)
    }

    @Test func offsetTimeOriginalIsAppendedAndDateTimeIsTheFallback() {
        let zoned = read(B.tiff(little: false, ifd0: B.make,
                                exif: B.exif + [(0x9011, .ascii("+08:00")), (0x9010, .ascii("-05:00"))]))
        #expect(zoned.capturedAt == "2019-05-21T10:22:33+08:00")
        // No DateTimeOriginal: DateTime, with its own offset (OffsetTime).
        let fallback = read(B.tiff(little: false, ifd0: B.make, exif: [(0x9010, .ascii("-05:00"))]))
        #expect(fallback.capturedAt == "2019-05-21T18:00:00-05:00")
        // A blank (unset clock) DateTimeOriginal and a blank offset are no values.
        let blank = read(B.tiff(little: true, ifd0: [(0x010F, .ascii("DJI"))],
                                exif: [(0x9003, .ascii("    :  :     :  :  ")), (0x9011, .ascii("   :  "))]))
        #expect(blank.capturedAt == nil)
        #expect(read(B.tiff(little: true, ifd0: [(0x0132, .ascii("0000:00:00 00:00:00"))])).capturedAt == nil)
    }

    @Test func asciiValuesLoseTheirNULsAndSpaces() {
        let facts = read(B.tiff(little: true, ifd0: [(0x010F, .asciiBytes(Array("  Hasselblad ".utf8) + [0, 0, 0])),
                                                     (0x0110, .asciiBytes([0x20, 0x20, 0, 0, 0, 0, 0])),
                                                     (0x0132, .asciiBytes(Array("2020:01:02 03:04:05".utf8)))]))
        #expect(facts.make == "Hasselblad")
        #expect(facts.model == nil)  // only spaces and NULs
        #expect(facts.capturedAt == "2020-01-02T03:04:05")  // no terminating NUL: read as far as the count
    }

    @Test func aZeroDenominatorIsNoValue() throws {
        // Seconds 5/0: no latitude, so no position.
        #expect(read(B.tiff(little: true, ifd0: B.make, gps: B.gps(latitude: [(22, 1), (20, 1), (5, 0)]))).gps == nil)
        // Altitude 0/0: the position stands without it.
        let gps = try #require(read(B.tiff(little: false, ifd0: B.make, gps: B.gps(altitude: (7, 0)))).gps)
        #expect(gps.altitude == nil)
        #expect(abs(gps.latitude - B.latitude) < 1e-9)
    }

    @Test func aTruncatedAPP1GivesWhatItHolds() throws {
        let full = B.tiff(little: true, ifd0: B.make, exif: B.exif, gps: B.gps())
        let jpeg = B.jpeg(app1: full)
        let whole = ExifReader.jpeg(jpeg)
        #expect(whole.gps != nil && whole.make == "DJI" && whole.capturedAt == "2019-05-21T10:22:33")
        // Every cut of the file, from nothing to all of the APP1: nothing traps, and every field
        // is either what the whole file says or nil, never garbage.
        let app1End = 2 + 18 + 4 + 6 + full.count
        var seen = Set<[Bool]>()
        for cut in 0...app1End {
            let facts = ExifReader.jpeg(Array(jpeg[0..<cut]))
            #expect(facts.make == nil || facts.make == whole.make, "cut at \(cut)")
            #expect(facts.model == nil || facts.model == whole.model, "cut at \(cut)")
            // Cut inside DateTimeOriginal's value (it follows DateTime's): DateTime stands in.
            #expect([nil, whole.capturedAt, "2019-05-21T18:00:00"].contains(facts.capturedAt), "cut at \(cut)")
            // Cut inside the altitude (the last value): the position without it.
            var flat = whole.gps
            flat?.altitude = nil
            #expect([nil, whole.gps, flat].contains(facts.gps), "cut at \(cut)")
            seen.insert([facts.make != nil, facts.capturedAt != nil, facts.gps != nil])
        }
        // Cut before the values: nothing; after Make's value but before the GPS data: Make alone.
        #expect(seen.contains([false, false, false]))
        #expect(seen.contains([true, true, false]))
        #expect(ExifReader.jpeg(Array(jpeg[0..<app1End])) == whole)
        // A header-only read knows how far to read: to the APP1's end, then no further.
        #expect(ExifReader.jpegBytesNeeded(Array(jpeg[0..<10])) == 2 + 18 + 4)
        #expect(ExifReader.jpegBytesNeeded(Array(jpeg[0..<30])) == app1End)
        #expect(ExifReader.jpegBytesNeeded(Array(jpeg[0..<(app1End + 1)])) == app1End)
        // An APP1 whose stated length runs past the file's end (the file is cut inside it).
        var lying = jpeg
        lying[2 + 18 + 2] = 0xFF
        lying[2 + 18 + 3] = 0xF0
        #expect(ExifReader.jpeg(Array(lying[0..<app1End])) == whole)
    }

    /// Every byte of a real camera's APP1 set to 0x00, 0x7F and 0xFF in turn: the reader returns
    /// (a trap would kill the test process), and a change past the segment changes nothing.
    @Test func everySingleByteDamageIsSurvived() throws {
        let file = [UInt8](try Data(contentsOf: URL(fileURLWithPath: ScanFixtures.sampleSurvey + "/flight1/DJI_0005.JPG")))
        let whole = ExifReader.jpeg(file)
        #expect(whole.gps != nil && whole.capturedAt != nil)
        let segment = try #require(ExifReader.exifSegment(file))
        var changed = 0
        for index in 2..<(segment.upperBound + 64) {
            for value: UInt8 in [0x00, 0x7F, 0xFF] where file[index] != value {
                var damaged = file
                damaged[index] = value
                let facts = ExifReader.jpeg(damaged)
                if index >= segment.upperBound { #expect(facts == whole, "byte \(index) = \(value)") }
                if facts != whole { changed += 1 }
            }
        }
        #expect(changed > 100)  // the damage reached the parser
    }

    @Test func offsetsOutsideTheSegmentAreNoValues() throws {
        // The Exif IFD pointer past the end: no DateTimeOriginal, so DateTime; GPS pointer far out.
        let facts = read(B.tiff(little: false, ifd0: B.make, exif: B.exif, gps: B.gps(),
                                exifPointer: 0xFFFF_FF00, gpsPointer: 0x7FFF_FFFF))
        #expect(facts.make == "DJI")
        #expect(facts.capturedAt == "2019-05-21T18:00:00")
        #expect(facts.gps == nil)
        // A value offset out of range: that value alone is lost.
        var bytes = B.tiff(little: true, ifd0: [(0x010F, .ascii("A long make name")), (0x0110, .ascii("M1"))])
        // IFD0 at 8: count (2), then Make's entry: its value offset is at 8 + 2 + 8.
        bytes.replaceSubrange(18..<22, with: B.u32(60_000, true))
        let cut = read(bytes)
        #expect(cut.make == nil)
        #expect(cut.model == "M1")
        // IFD0 itself out of range, and a header that is not TIFF.
        var noIFD = bytes
        noIFD.replaceSubrange(4..<8, with: B.u32(90_000, true))
        #expect(read(noIFD) == ExifFacts())
        var notTIFF = B.tiff(little: false, ifd0: B.make)
        #expect(read(notTIFF).make == "DJI")
        notTIFF[3] = 43  // not 42
        #expect(read(notTIFF) == ExifFacts())
        // An entry count far larger than the IFD: the entries that are there are read.
        var counted = B.tiff(little: true, ifd0: [(0x0110, .ascii("M2"))])
        counted.replaceSubrange(8..<10, with: B.u16(0xFFFF, true))
        #expect(read(counted).model == "M2")
    }

    @Test func anIFDLoopIsReadOnce() throws {
        // The Exif pointer points back at IFD0 and the GPS pointer at the Exif IFD's place, which
        // is IFD0 again: each IFD is read once, nothing loops.
        let loop = read(B.tiff(little: true, ifd0: B.make, exif: B.exif, gps: B.gps(), exifPointer: 8, gpsPointer: 8))
        #expect(loop.make == "DJI")
        #expect(loop.capturedAt == "2019-05-21T18:00:00")  // IFD0's DateTime: the Exif IFD was not read
        #expect(loop.gps == nil)
        // The GPS pointer at the Exif IFD (already read as such): not read again as GPS.
        let tiff = B.tiff(little: false, ifd0: B.make, exif: B.exif, gps: B.gps())
        let exifAt = UInt32(8 + 2 + 12 * 5 + 4)
        let shared = read(B.tiff(little: false, ifd0: B.make, exif: B.exif, gps: B.gps(), gpsPointer: exifAt))
        #expect(shared.capturedAt == "2019-05-21T10:22:33")
        #expect(shared.gps == nil)
        #expect(read(tiff).gps != nil)  // the same file with a proper pointer has its position
    }

    @Test func aTIFFFilesOwnIFDsThroughTheScan() async throws {
        let tree = try TempTree("exif-tiff")
        defer { tree.remove() }
        // Pixel data first, IFDs 2 MiB in (past the 1 MiB first chunk), both byte orders.
        for little in [true, false] {
            let ifd0: [(UInt16, B.Value)] = [(256, .short(640)), (257, .long(480))] + B.make
            try tree.write("t/\(little ? "ii" : "mm").tif",
                           B.tiff(little: little, ifd0: ifd0, exif: B.exif, gps: B.gps(lat: "S"), padding: 2 << 20))
        }
        try tree.write("t/plain.png", ScanFixtures.png(width: 4, height: 4))
        try tree.write("t/noexif.jpg", ScanFixtures.jpeg(width: 8, height: 8))  // an APP1 "Exif" of garbage
        try tree.write("t/notes.jpg", "not an image")
        let (manifest, report) = try await ScanService().update(previous: nil, root: tree.path("t"))
        #expect(report.filesHashed == 4)
        for name in ["ii.tif", "mm.tif"] {
            let entry = try #require(manifest.entry(at: name))
            #expect(entry.verdict == .ok && entry.width == 640 && entry.height == 480, "\(entry.detail ?? "")")
            let exif = try #require(entry.exif)
            #expect(exif.make == "DJI" && exif.model == "FC6310" && exif.capturedAt == "2019-05-21T10:22:33")
            let gps = try #require(exif.gps)
            #expect(abs(gps.latitude + B.latitude) < 1e-9 && abs(gps.longitude - B.longitude) < 1e-9)
            #expect(gps.latitude == -22.3364 && gps.altitude == 123.4)  // rounded to 1e-10 degrees
        }
        // Images without EXIF get facts with every field nil; what is not an image gets none.
        #expect(manifest.entry(at: "plain.png")?.exif == ExifFacts())
        #expect(manifest.entry(at: "noexif.jpg")?.exif == ExifFacts())
        let notes = try #require(manifest.entry(at: "notes.jpg"))
        #expect(notes.verdict == .notAnImage && notes.exif == nil)
        #expect(report.imagesWithGPS == 2 && report.imagesWithCaptureTime == 2)
    }
}
