import AltiCore
import AltiTestSupport
import Foundation
import Testing

/// Builders of small, structurally real image files for scan tests.
enum ScanFixtures {
    /// Rewrites `relative` in place (same inode) with one byte flipped near its end and puts the
    /// mtime back to `mtimeNs`: only content hashing can tell it changed. Returns the new bytes.
    static func rewriteKeepingStat(_ tree: TempTree, _ relative: String, original: [UInt8], mtimeNs: Int64) throws -> [UInt8] {
        var changed = original
        changed[changed.count - 3] ^= 0x55
        let fd = open(tree.path(relative), O_WRONLY)
        try #require(fd >= 0)
        _ = changed.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        close(fd)
        try tree.setMtime(relative, ns: mtimeNs)
        return changed
    }

    static func be16(_ v: Int) -> [UInt8] { [UInt8(v >> 8 & 0xFF), UInt8(v & 0xFF)] }
    static func be32(_ v: Int) -> [UInt8] { [UInt8(v >> 24 & 0xFF), UInt8(v >> 16 & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v & 0xFF)] }
    static func le16(_ v: Int) -> [UInt8] { be16(v).reversed() }
    static func le32(_ v: Int) -> [UInt8] { be32(v).reversed() }

    static func segment(_ marker: UInt8, _ payload: [UInt8]) -> [UInt8] {
        [0xFF, marker] + be16(payload.count + 2) + payload
    }

    /// A baseline-shaped JPEG: SOI, APP0 JFIF, `extra` segments, DHT, SOFn, SOS, body, EOI.
    /// The APP1 payload deliberately contains bytes that look like an SOF0 marker, and the DHT
    /// comes before the frame, so a parser that scans for FF C0 or treats C4 as a frame fails.
    static func jpeg(width: Int, height: Int, sof: UInt8 = 0xC0, body: Int = 200, eoi: Bool = true,
                     zeroPadding: Int = 0, fillBytes: Int = 0, seed: UInt8 = 1) -> [UInt8] {
        var out: [UInt8] = [0xFF, 0xD8]
        out += segment(0xE0, Array("JFIF".utf8) + [0, 1, 1, 0, 0, 1, 0, 1, 0, 0])
        out += segment(0xE1, Array("Exif".utf8) + [0, 0, 0xFF, 0xC0, 0x00, 0x11, 0x08, 0x00, 0x10, 0x00, 0x20, 0x03])
        out += segment(0xC4, [0x00] + [UInt8](repeating: 1, count: 16) + [UInt8](repeating: 0, count: 12))
        out += Array(repeating: 0xFF, count: fillBytes)
        out += segment(sof, [8] + be16(height) + be16(width) + [3, 1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1])
        out += segment(0xDA, [3, 1, 0, 2, 0x11, 3, 0x11, 0, 0x3F, 0])
        out += (0..<body).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ Int(seed)) & 0x7F }
        if eoi { out += [0xFF, 0xD9] }
        out += Array(repeating: 0, count: zeroPadding)
        return out
    }

    static let pngMagic: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]

    static func pngChunk(_ type: String, _ data: [UInt8]) -> [UInt8] {
        be32(data.count) + Array(type.utf8) + data + [0, 0, 0, 0]
    }

    static func png(width: Int, height: Int, iend: Bool = true, idat: Int = 100) -> [UInt8] {
        var out = pngMagic
        out += pngChunk("IHDR", be32(width) + be32(height) + [8, 2, 0, 0, 0])
        out += pngChunk("IDAT", [UInt8](repeating: 0x5A, count: idat))
        if iend { out += [0, 0, 0, 0, 0x49, 0x45, 0x4E, 0x44, 0xAE, 0x42, 0x60, 0x82] }
        return out
    }

    /// A TIFF with its first IFD AFTER `pixelBytes` of pixel data (as many writers do), holding
    /// ImageWidth/ImageLength as SHORT or LONG in either byte order.
    static func tiff(width: Int, height: Int, littleEndian: Bool, long: Bool, pixelBytes: Int = 64) -> [UInt8] {
        let u16 = littleEndian ? le16 : be16
        let u32 = littleEndian ? le32 : be32
        var out: [UInt8] = littleEndian ? [0x49, 0x49, 0x2A, 0x00] : [0x4D, 0x4D, 0x00, 0x2A]
        let ifd = 8 + pixelBytes
        out += u32(ifd)
        out += [UInt8](repeating: 0x80, count: pixelBytes)
        let entries: [(Int, Int, Int)] = [(254, 4, 0), (256, long ? 4 : 3, width), (257, long ? 4 : 3, height),
                                          (258, 3, 8)]
        out += u16(entries.count)
        for (tag, type, value) in entries {
            out += u16(tag) + u16(type) + u32(1)
            out += type == 3 ? u16(value) + [0, 0] : u32(value)
        }
        out += u32(0)
        return out
    }

    static var sampleSurvey: String { Run.packageRoot.appendingPathComponent("samples/sample-survey").path }
}

/// A `FileReading` that fails with an OS error for chosen file names: on open, or on the read
/// after the first chunk (a disk error mid-file).
struct FaultyReading: FileReading {
    var failOpen: [String: Int32] = [:]
    var failRead: [String: Int32] = [:]

    func open(_ path: String) throws(OSError) -> any ReadableFile {
        let name = (path as NSString).lastPathComponent
        if let code = failOpen[name] { throw OSError(code, "open") }
        let file = try POSIXFileReading().open(path)
        if let code = failRead[name] { return FailingFile(inner: file, code: code) }
        return file
    }
}

final class FailingFile: ReadableFile {
    let inner: any ReadableFile
    let code: Int32
    var reads = 0
    init(inner: any ReadableFile, code: Int32) {
        self.inner = inner
        self.code = code
    }
    func read(into buffer: UnsafeMutableRawBufferPointer) throws(OSError) -> Int {
        reads += 1
        if reads > 1 { throw OSError(code, "read") }
        return try inner.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<min(buffer.count, 64)]))
    }
    func read(at offset: Int64, count: Int) throws(OSError) -> [UInt8] { try inner.read(at: offset, count: count) }
    func stat() throws(OSError) -> FileStat { try inner.stat() }
}
