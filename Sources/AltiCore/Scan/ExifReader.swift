import Foundation

/// Reads an image's capture facts (time, camera, GPS) from its EXIF: a JPEG's APP1 `Exif\0\0`
/// segment, or a TIFF file's own IFDs. Pure functions over bytes the scan has already read.
///
/// Never throws and never traps: every offset, count and length is checked against the bytes at
/// hand, so a malformed or truncated EXIF gives whatever could be read (nil for the rest). A
/// camera's EXIF is the least trustworthy part of a file; a bad block must never cost the scan.
public enum ExifReader {
    /// A JPEG's APP1 segment is looked for in the file's first this many bytes (it sits right after
    /// SOI, at most behind an APP0 or two); segments are not walked any further.
    public static let jpegSearchLength = 64 * 1024
    /// The most a header-only read (the backfill of older manifests) takes of a JPEG: the search
    /// window plus the largest segment that can start at its end (a 2-byte marker, 65535 bytes).
    public static let headLength = jpegSearchLength + 2 + 65_535
    /// Entries read per IFD at most: real IFDs hold a few dozen; a garbage count is not followed.
    static let maxEntries = 1024
    /// Largest value read for one tag: Make and Model are short; a longer "string" is garbage.
    static let maxValueBytes = 4096

    /// The facts of an image of `type` whose first bytes are `head`. A TIFF's IFDs may lie beyond
    /// the head: `window` (the same bytes, and more of the file) reaches them; without it, only the
    /// head is read. A PNG has no EXIF the scan reads: every field nil.
    public static func facts(_ type: ImageType, head: [UInt8], window: ByteWindow? = nil) -> ExifFacts {
        switch type {
        case .jpeg: return jpeg(head)
        case .tiff:
            let source = window ?? ByteWindow(head: head, size: Int64(head.count))
            return tiff(TIFFBytes(count: source.size) { offset, count in try? source.bytes(at: offset, count: count) })
        case .png: return ExifFacts()
        }
    }

    /// The facts in a JPEG's APP1 `Exif\0\0` segment (`head` is the file from its first byte).
    public static func jpeg(_ head: [UInt8]) -> ExifFacts {
        guard let segment = exifSegment(head) else { return ExifFacts() }
        let tiffStart = segment.lowerBound + 6  // after "Exif\0\0"
        let payload = TIFFBytes(count: Int64(segment.upperBound - tiffStart)) { offset, count in
            guard offset >= 0, count >= 0, offset + Int64(count) <= Int64(segment.upperBound - tiffStart) else {
                return nil
            }
            let from = tiffStart + Int(offset)
            return Array(head[from..<(from + count)])
        }
        return tiff(payload)
    }

    /// The byte range of the APP1 segment's payload that starts with `Exif\0\0` (clipped to the
    /// head when the file is shorter than the segment says), or nil.
    static func exifSegment(_ head: [UInt8]) -> Range<Int>? { walk(head).segment }

    /// How many of a JPEG's first bytes a header-only read needs for its EXIF, judged from the
    /// `head` read so far: at most `head.count` when the segment (or the certainty there is none)
    /// is in it; more when the next segment's marker, or the rest of an APP1, lies beyond it.
    public static func jpegBytesNeeded(_ head: [UInt8]) -> Int { walk(head).needed }

    /// Walks the segments after SOI (markers and lengths only) to the APP1 `Exif\0\0`.
    private static func walk(_ head: [UInt8]) -> (segment: Range<Int>?, needed: Int) {
        guard head.count >= 4, head[0] == 0xFF, head[1] == 0xD8 else { return (nil, 4) }
        var pos = 2
        while pos < jpegSearchLength {
            guard pos + 4 <= head.count else { return (nil, pos + 4) }
            guard head[pos] == 0xFF else { return (nil, 0) }
            let marker = head[pos + 1]
            if marker == 0xFF { pos += 1; continue }  // fill byte
            if marker == 0x01 || (0xD0...0xD7).contains(marker) { pos += 2; continue }  // standalone
            // Scan data or the end of the image: EXIF comes before them, if at all.
            if marker == 0xDA || marker == 0xD9 || marker == 0xD8 { return (nil, 0) }
            let length = Int(head[pos + 2]) << 8 | Int(head[pos + 3])
            guard length >= 2 else { return (nil, 0) }
            let start = pos + 4
            let stated = pos + 2 + length
            if marker == 0xE1, length >= 8 {
                // EXIF or XMP: its first 6 bytes tell; an EXIF one is wanted whole.
                guard start + 6 <= head.count else { return (nil, stated) }
                if head[start..<(start + 6)].elementsEqual([0x45, 0x78, 0x69, 0x66, 0, 0]) {
                    return (start..<min(stated, head.count), stated)
                }
            }
            pos = stated
        }
        return (nil, 0)
    }

    /// The facts in a TIFF structure (header, IFD0, its Exif and GPS IFDs); offsets are relative
    /// to its first byte, as in EXIF.
    public static func tiff(_ bytes: TIFFBytes) -> ExifFacts {
        guard let header = bytes.read(0, 8) else { return ExifFacts() }
        let little: Bool
        switch (header[0], header[1]) {
        case (0x49, 0x49): little = true
        case (0x4D, 0x4D): little = false
        default: return ExifFacts()
        }
        let parser = IFDParser(bytes: bytes, little: little)
        guard parser.u16(header, 2) == 42 else { return ExifFacts() }
        var visited = Set<Int64>()
        let ifd0 = parser.entries(at: Int64(parser.u32(header, 4)), visited: &visited)
        var facts = ExifFacts()
        facts.make = ifd0[0x010F].flatMap(parser.ascii)
        facts.model = ifd0[0x0110].flatMap(parser.ascii)

        let exif = ifd0[0x8769].flatMap(parser.offset).map { parser.entries(at: $0, visited: &visited) } ?? [:]
        if let original = exif[0x9003].flatMap(parser.ascii).flatMap(isoDateTime) {
            facts.capturedAt = original + (exif[0x9011].flatMap(parser.ascii).flatMap(zoneOffset) ?? "")
        } else if let modified = ifd0[0x0132].flatMap(parser.ascii).flatMap(isoDateTime) {
            // DateTime's own offset is OffsetTime (0x9010), not OffsetTimeOriginal.
            facts.capturedAt = modified + (exif[0x9010].flatMap(parser.ascii).flatMap(zoneOffset) ?? "")
        }

        let gps = ifd0[0x8825].flatMap(parser.offset).map { parser.entries(at: $0, visited: &visited) } ?? [:]
        if let latitude = coordinate(parser, ref: gps[1], value: gps[2], positive: "N", negative: "S", limit: 90),
           let longitude = coordinate(parser, ref: gps[3], value: gps[4], positive: "E", negative: "W", limit: 180) {
            var altitude = gps[6].flatMap(parser.rationals)?.first ?? nil
            // AltitudeRef 1 is below sea level; absent means above (its default in the standard).
            if let value = altitude, let ref = gps[5].flatMap(parser.data)?.first, ref == 1 { altitude = -value }
            facts.gps = GPSPosition(latitude: latitude, longitude: longitude, altitude: altitude)
        }
        return facts
    }

    /// Degrees from a GPS degrees/minutes/seconds RATIONAL triple and its ref letter; nil when any
    /// part is missing or unreadable (a denominator 0, a ref that is neither letter), or the result
    /// is out of range: half a position is no position.
    static func coordinate(_ parser: IFDParser, ref: IFDEntry?, value: IFDEntry?, positive: String, negative: String,
                           limit: Double) -> Double? {
        guard let letter = ref.flatMap(parser.ascii), letter == positive || letter == negative,
              let parts = value.flatMap(parser.rationals), parts.count >= 3,
              let degrees = parts[0], let minutes = parts[1], let seconds = parts[2]
        else { return nil }
        // Rounded to 1e-10 degrees (0.01 mm): 22°20'11.04" is written 22.3364, not the sum's
        // 22.336399999999998; no GPS is anywhere near that precise.
        let magnitude = ((degrees + minutes / 60 + seconds / 3600) * 1e10).rounded() / 1e10
        guard magnitude.isFinite, magnitude >= 0, magnitude <= limit else { return nil }
        return letter == negative ? -magnitude : magnitude
    }

    /// "2019:05:21 10:22:33" → "2019-05-21T10:22:33"; nil for anything else (the blank
    /// "    :  :     :  :  " and all-zero dates cameras write when their clock is unset).
    static func isoDateTime(_ text: String) -> String? {
        let c = Array(text.utf8)
        guard c.count >= 19 else { return nil }
        let digits = [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18]
        guard digits.allSatisfy({ (0x30...0x39).contains(c[$0]) }),
              c[4] == 0x3A, c[7] == 0x3A, c[10] == 0x20 || c[10] == 0x54, c[13] == 0x3A, c[16] == 0x3A
        else { return nil }
        func number(_ i: Int, _ n: Int) -> Int { c[i..<(i + n)].reduce(0) { $0 * 10 + Int($1 - 0x30) } }
        let month = number(5, 2), day = number(8, 2)
        guard (1...12).contains(month), (1...31).contains(day), number(11, 2) < 24, number(14, 2) < 60,
              number(17, 2) < 61 else { return nil }
        func part(_ range: Range<Int>) -> String { String(decoding: c[range], as: UTF8.self) }
        return part(0..<4) + "-" + part(5..<7) + "-" + part(8..<10) + "T" + part(11..<19)
    }

    /// "+08:00" / "-05:30" as written; nil for anything else (blank "   :  " included).
    static func zoneOffset(_ text: String) -> String? {
        let c = Array(text.utf8)
        guard c.count == 6, c[0] == 0x2B || c[0] == 0x2D, c[3] == 0x3A,
              [1, 2, 4, 5].allSatisfy({ (0x30...0x39).contains(c[$0]) }) else { return nil }
        return text
    }
}

/// Random access to the bytes of a TIFF structure: `read(offset, count)` gives exactly `count`
/// bytes at `offset`, or nil when they are not all there.
public struct TIFFBytes {
    public let count: Int64
    let reader: (Int64, Int) -> [UInt8]?

    public init(count: Int64, read: @escaping (Int64, Int) -> [UInt8]?) {
        self.count = count
        reader = read
    }

    /// A TIFF structure held in memory.
    public init(_ bytes: [UInt8]) {
        self.init(count: Int64(bytes.count)) { offset, count in
            guard offset >= 0, count >= 0, offset + Int64(count) <= Int64(bytes.count) else { return nil }
            return Array(bytes[Int(offset)..<(Int(offset) + count)])
        }
    }

    func read(_ offset: Int64, _ length: Int) -> [UInt8]? {
        guard offset >= 0, length >= 0, offset <= count - Int64(length) else { return nil }
        guard let bytes = reader(offset, length), bytes.count == length else { return nil }
        return bytes
    }
}

/// One 12-byte IFD entry: its tag, field type, value count and 4-byte value field.
struct IFDEntry {
    var tag: UInt16
    var type: UInt16
    var count: UInt32
    var field: [UInt8]
}

/// Reads IFDs and their values in one byte order.
struct IFDParser {
    let bytes: TIFFBytes
    let little: Bool

    func u16(_ b: [UInt8], _ i: Int) -> UInt16 {
        little ? UInt16(b[i]) | UInt16(b[i + 1]) << 8 : UInt16(b[i]) << 8 | UInt16(b[i + 1])
    }

    func u32(_ b: [UInt8], _ i: Int) -> UInt32 {
        let (b0, b1, b2, b3) = (UInt32(b[i]), UInt32(b[i + 1]), UInt32(b[i + 2]), UInt32(b[i + 3]))
        return little ? b0 | b1 << 8 | b2 << 16 | b3 << 24 : b0 << 24 | b1 << 16 | b2 << 8 | b3
    }

    /// The entries of the IFD at `offset` by tag (the first of a repeated tag wins). An IFD seen
    /// before (a pointer back into one already read: a loop) or outside the bytes gives none; a
    /// truncated one gives the entries before the cut.
    func entries(at offset: Int64, visited: inout Set<Int64>) -> [UInt16: IFDEntry] {
        guard offset >= 8, !visited.contains(offset), let countBytes = bytes.read(offset, 2) else { return [:] }
        visited.insert(offset)
        let count = min(Int(u16(countBytes, 0)), ExifReader.maxEntries)
        var out: [UInt16: IFDEntry] = [:]
        for i in 0..<count {
            guard let e = bytes.read(offset + 2 + Int64(i) * 12, 12) else { break }
            let entry = IFDEntry(tag: u16(e, 0), type: u16(e, 2), count: u32(e, 4), field: Array(e[8..<12]))
            if out[entry.tag] == nil { out[entry.tag] = entry }
        }
        return out
    }

    /// The bytes of a value: in the value field when they fit in 4, else at the offset it holds.
    func data(_ entry: IFDEntry) -> [UInt8]? {
        let unit: Int
        switch entry.type {
        case 1, 2, 6, 7: unit = 1  // BYTE, ASCII, SBYTE, UNDEFINED
        case 3, 8: unit = 2  // SHORT, SSHORT
        case 4, 9, 11, 13: unit = 4  // LONG, SLONG, FLOAT, IFD
        case 5, 10, 12: unit = 8  // RATIONAL, SRATIONAL, DOUBLE
        default: return nil
        }
        guard entry.count <= UInt32(ExifReader.maxValueBytes / unit) else { return nil }
        let size = unit * Int(entry.count)
        if size <= 4 { return Array(entry.field[0..<size]) }
        return bytes.read(Int64(u32(entry.field, 0)), size)
    }

    /// An ASCII value without leading NULs and spaces, up to its NUL terminator (what follows is
    /// padding), without trailing spaces; nil when nothing is left or it is not ASCII-typed.
    func ascii(_ entry: IFDEntry) -> String? {
        guard entry.type == 2, let value = data(entry) else { return nil }
        var text = value.drop { $0 == 0 || $0 == 0x20 }
        if let nul = text.firstIndex(of: 0) { text = text[..<nul] }
        while text.last == 0x20 { text.removeLast() }
        return text.isEmpty ? nil : String(decoding: text, as: UTF8.self)
    }

    /// RATIONAL (or SRATIONAL) values; a denominator 0 is no value (nil in its place).
    func rationals(_ entry: IFDEntry) -> [Double?]? {
        guard entry.type == 5 || entry.type == 10, let value = data(entry) else { return nil }
        return stride(from: 0, to: value.count, by: 8).map { i -> Double? in
            let (num, den) = (u32(value, i), u32(value, i + 4))
            guard den != 0 else { return nil }
            return entry.type == 10
                ? Double(Int32(bitPattern: num)) / Double(Int32(bitPattern: den))
                : Double(num) / Double(den)
        }
    }

    /// A sub-IFD pointer (LONG or IFD type, one value).
    func offset(_ entry: IFDEntry) -> Int64? {
        guard entry.type == 4 || entry.type == 13, entry.count >= 1 else { return nil }
        return Int64(u32(entry.field, 0))
    }
}
