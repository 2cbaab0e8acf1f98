import Foundation

/// Random access to a file's bytes for header parsing: served from the head already read by the
/// hashing pass, and from `fetch` (a positioned read) only when a header lies beyond it.
public final class ByteWindow {
    public let size: Int64
    private let head: [UInt8]
    private let fetch: (Int64, Int) throws -> [UInt8]
    private var cacheOffset: Int64 = -1
    private var cache: [UInt8] = []
    private static let fetchBlock = 64 * 1024

    /// - Parameters:
    ///   - head: the first bytes of the file.
    ///   - size: the file size.
    ///   - fetch: reads up to `count` bytes at an offset (fewer at end of file).
    public init(head: [UInt8], size: Int64, fetch: @escaping (Int64, Int) throws -> [UInt8] = { _, _ in [] }) {
        self.head = head
        self.size = size
        self.fetch = fetch
    }

    /// The byte at `offset`, or nil past the end of the file.
    public func byte(at offset: Int64) throws -> UInt8? {
        if offset < 0 { return nil }
        if offset < Int64(head.count) { return head[Int(offset)] }
        if offset >= size { return nil }
        if cacheOffset < 0 || offset < cacheOffset || offset >= cacheOffset + Int64(cache.count) {
            cache = try fetch(offset, Self.fetchBlock)
            cacheOffset = offset
            if cache.isEmpty { return nil }
        }
        return cache[Int(offset - cacheOffset)]
    }

    /// `count` bytes at `offset`, or nil if the file ends first.
    public func bytes(at offset: Int64, count: Int) throws -> [UInt8]? {
        var out = [UInt8]()
        out.reserveCapacity(count)
        for i in 0..<Int64(count) {
            guard let b = try byte(at: offset + i) else { return nil }
            out.append(b)
        }
        return out
    }
}

/// The outcome of reading an image header: dimensions, or why there are none.
public struct HeaderResult: Sendable, Equatable {
    public var width: Int?
    public var height: Int?
    public var verdict: Verdict
    public var detail: String?

    public static func dimensions(_ width: Int, _ height: Int?) -> HeaderResult {
        HeaderResult(width: width, height: height, verdict: .ok, detail: nil)
    }
    public static func bad(_ verdict: Verdict, _ detail: String) -> HeaderResult {
        HeaderResult(width: nil, height: nil, verdict: verdict, detail: detail)
    }
}

/// Recognises images by content and reads their pixel size; pure functions over bytes.
public enum ImageSniffer {
    /// Bytes needed by `sniff`.
    public static let magicLength = 8
    /// Bytes of the tail kept by the hashing pass for `tailVerdict`.
    public static let tailLength = 64 * 1024
    /// File name extensions that say "this is meant as an image" (compared lower-cased).
    public static let imageExtensions: Set<String> = ["jpg", "jpeg", "png", "tif", "tiff"]

    private static let pngMagic: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
    private static let pngIEND: [UInt8] = [0, 0, 0, 0, 0x49, 0x45, 0x4E, 0x44, 0xAE, 0x42, 0x60, 0x82]

    /// The image type by magic bytes: JPEG FF D8 FF, PNG 89 50 4E 47 0D 0A 1A 0A, TIFF "II*\0" / "MM\0*".
    public static func sniff<C: Collection<UInt8>>(_ head: C) -> ImageType? {
        let b = Array(head.prefix(magicLength))
        if b.count >= 3, b[0] == 0xFF, b[1] == 0xD8, b[2] == 0xFF { return .jpeg }
        if b.count >= 8, b == pngMagic { return .png }
        if b.count >= 4 {
            if b[0] == 0x49, b[1] == 0x49, b[2] == 0x2A, b[3] == 0x00 { return .tiff }
            if b[0] == 0x4D, b[1] == 0x4D, b[2] == 0x00, b[3] == 0x2A { return .tiff }
        }
        return nil
    }

    /// True when the file name's extension is jpg/jpeg/png/tif/tiff (any case).
    public static func hasImageExtension(_ name: String) -> Bool {
        guard let dot = name.lastIndex(of: "."), dot != name.startIndex else { return false }
        return imageExtensions.contains(name[name.index(after: dot)...].lowercased())
    }

    /// True when the file name has no extension ("DJI_0001", not ".hidden").
    public static func hasNoExtension(_ name: String) -> Bool {
        guard let dot = name.lastIndex(of: ".") else { return true }
        return dot == name.startIndex
    }

    /// Pixel width and height from the header: JPEG SOFn, PNG IHDR, TIFF IFD0 tags 256/257.
    public static func header(_ type: ImageType, _ window: ByteWindow) throws -> HeaderResult {
        switch type {
        case .jpeg: return try jpegHeader(window)
        case .png: return try pngHeader(window)
        case .tiff: return try tiffHeader(window)
        }
    }

    /// Whether the file ends as it should: a JPEG with FF D9 (trailing zero padding allowed), a PNG
    /// with its IEND chunk. `tail` is the last bytes of the file (up to `tailLength`).
    public static func tailVerdict(_ type: ImageType, tail: [UInt8]) -> HeaderResult? {
        var end = tail.count
        while end > 0, tail[end - 1] == 0 { end -= 1 }
        switch type {
        case .jpeg:
            if end >= 2, tail[end - 2] == 0xFF, tail[end - 1] == 0xD9 { return nil }
            return .bad(.truncated, "JPEG has no end-of-image marker (FF D9) at the end")
        case .png:
            if end >= pngIEND.count, Array(tail[(end - pngIEND.count)..<end]) == pngIEND { return nil }
            return .bad(.truncated, "PNG has no IEND chunk at the end")
        case .tiff:
            return nil
        }
    }

    // MARK: JPEG

    private static func jpegHeader(_ w: ByteWindow) throws -> HeaderResult {
        var pos: Int64 = 2
        var segments = 0
        while segments < 100_000 {
            segments += 1
            guard let lead = try w.byte(at: pos) else {
                return .bad(.truncated, "JPEG ends before its frame header (SOF)")
            }
            guard lead == 0xFF else {
                return .bad(.corrupt, "JPEG: expected a marker at offset \(pos), found 0x\(hex(lead))")
            }
            // Any number of 0xFF fill bytes may precede a marker.
            var markerPos = pos + 1
            var marker: UInt8 = 0xFF
            while true {
                guard let m = try w.byte(at: markerPos) else {
                    return .bad(.truncated, "JPEG ends before its frame header (SOF)")
                }
                if m != 0xFF { marker = m; break }
                markerPos += 1
            }
            pos = markerPos + 1
            switch marker {
            case 0x01, 0xD0...0xD8:
                continue  // standalone markers: TEM, RSTn, (repeated) SOI
            case 0xD9:
                return .bad(.corrupt, "JPEG: end-of-image before the frame header (SOF)")
            case 0xDA:
                return .bad(.corrupt, "JPEG: scan data before the frame header (SOF)")
            default:
                break
            }
            guard let lengthBytes = try w.bytes(at: pos, count: 2) else {
                return .bad(.truncated, "JPEG ends inside a segment header at offset \(pos)")
            }
            let length = Int(lengthBytes[0]) << 8 | Int(lengthBytes[1])
            guard length >= 2 else {
                return .bad(.corrupt, "JPEG: segment 0xFF\(hex(marker)) at offset \(pos - 2) has length \(length)")
            }
            // SOF0-SOF15 carry the frame size; C4 (DHT), C8 (JPG) and CC (DAC) are not frames.
            if (0xC0...0xCF).contains(marker), marker != 0xC4, marker != 0xC8, marker != 0xCC {
                guard length >= 8 else {
                    return .bad(.corrupt, "JPEG: frame header SOF\(marker - 0xC0) is \(length) bytes long")
                }
                guard let frame = try w.bytes(at: pos + 2, count: 5) else {
                    return .bad(.truncated, "JPEG ends inside its frame header")
                }
                let height = Int(frame[1]) << 8 | Int(frame[2])
                let width = Int(frame[3]) << 8 | Int(frame[4])
                guard width > 0 else { return .bad(.corrupt, "JPEG: frame header has width 0") }
                // Height 0 means "defined by a later DNL marker": valid, but not in the header.
                return .dimensions(width, height > 0 ? height : nil)
            }
            pos += Int64(length)
        }
        return .bad(.corrupt, "JPEG: no frame header (SOF) in the first 100000 segments")
    }

    // MARK: PNG

    private static func pngHeader(_ w: ByteWindow) throws -> HeaderResult {
        guard let ihdr = try w.bytes(at: 8, count: 16) else {
            return .bad(.truncated, "PNG ends before its IHDR chunk")
        }
        guard ihdr[4...7].elementsEqual("IHDR".utf8) else {
            return .bad(.corrupt, "PNG: the first chunk is not IHDR")
        }
        let width = be32(ihdr, 8)
        let height = be32(ihdr, 12)
        guard width > 0, height > 0 else {
            return .bad(.corrupt, "PNG: IHDR has width \(width), height \(height)")
        }
        return .dimensions(Int(width), Int(height))
    }

    // MARK: TIFF

    private static func tiffHeader(_ w: ByteWindow) throws -> HeaderResult {
        guard let header = try w.bytes(at: 0, count: 8) else {
            return .bad(.truncated, "TIFF ends inside its 8-byte header")
        }
        let little = header[0] == 0x49
        func u16(_ b: [UInt8], _ i: Int) -> UInt32 {
            little ? UInt32(b[i]) | UInt32(b[i + 1]) << 8 : UInt32(b[i]) << 8 | UInt32(b[i + 1])
        }
        func u32(_ b: [UInt8], _ i: Int) -> UInt32 {
            little
                ? UInt32(b[i]) | UInt32(b[i + 1]) << 8 | UInt32(b[i + 2]) << 16 | UInt32(b[i + 3]) << 24
                : be32(b, i)
        }
        let ifd = Int64(u32(header, 4))
        guard ifd >= 8 else { return .bad(.corrupt, "TIFF: first IFD offset \(ifd) is inside the header") }
        guard ifd < w.size else {
            return .bad(.truncated, "TIFF: first IFD at offset \(ifd) is past the end (\(w.size) bytes)")
        }
        guard let countBytes = try w.bytes(at: ifd, count: 2) else {
            return .bad(.truncated, "TIFF ends inside its first IFD")
        }
        let count = Int(u16(countBytes, 0))
        var width: UInt32?
        var height: UInt32?
        for i in 0..<count {
            guard let e = try w.bytes(at: ifd + 2 + Int64(i) * 12, count: 12) else {
                return .bad(.truncated, "TIFF ends inside its first IFD")
            }
            let tag = u16(e, 0)
            guard tag == 256 || tag == 257 else { continue }
            let value: UInt32
            switch u16(e, 2) {
            case 3: value = u16(e, 8)  // SHORT, left-justified in the value field
            case 4: value = u32(e, 8)  // LONG
            default:
                return .bad(.corrupt, "TIFF: tag \(tag) has field type \(u16(e, 2)), expected SHORT or LONG")
            }
            if tag == 256 { width = value } else { height = value }
        }
        guard let width, let height else {
            return .bad(.corrupt, "TIFF: first IFD has no ImageWidth/ImageLength (tags 256/257)")
        }
        guard width > 0, height > 0 else {
            return .bad(.corrupt, "TIFF: image size \(width)x\(height)")
        }
        return .dimensions(Int(width), Int(height))
    }

    private static func be32(_ b: [UInt8], _ i: Int) -> UInt32 {
        UInt32(b[i]) << 24 | UInt32(b[i + 1]) << 16 | UInt32(b[i + 2]) << 8 | UInt32(b[i + 3])
    }

    private static func hex(_ b: UInt8) -> String {
        let digits = Array("0123456789ABCDEF")
        return String([digits[Int(b >> 4)], digits[Int(b & 0xF)]])
    }
}
