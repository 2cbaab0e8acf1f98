import AltiCore
import Testing

@Suite("Image sniffing by content")
struct ScanSnifferTests {
    @Test func magicBytes() {
        #expect(ImageSniffer.sniff([0xFF, 0xD8, 0xFF, 0xE0]) == .jpeg)
        #expect(ImageSniffer.sniff(ScanFixtures.pngMagic) == .png)
        #expect(ImageSniffer.sniff(Array("II*\0".utf8)) == .tiff)
        #expect(ImageSniffer.sniff(Array("MM\0*".utf8)) == .tiff)
        #expect(ImageSniffer.sniff([0xFF, 0xD8, 0x00]) == nil)
        #expect(ImageSniffer.sniff(Array("II+\0".utf8)) == nil)  // BigTIFF is not an API image type
        #expect(ImageSniffer.sniff(Array("GIF89a".utf8)) == nil)
        #expect(ImageSniffer.sniff(Array(ScanFixtures.pngMagic.prefix(7))) == nil)
        #expect(ImageSniffer.sniff([UInt8]()) == nil)
    }

    @Test func extensions() {
        #expect(ImageSniffer.hasImageExtension("a.JPG"))
        #expect(ImageSniffer.hasImageExtension("a.jpeg"))
        #expect(ImageSniffer.hasImageExtension("a.TiFf"))
        #expect(!ImageSniffer.hasImageExtension("a.txt"))
        #expect(!ImageSniffer.hasImageExtension(".jpg"))
        #expect(ImageSniffer.hasNoExtension("DJI_0001"))
        #expect(!ImageSniffer.hasNoExtension("notes.txt"))
    }

    private func header(_ bytes: [UInt8], headCount: Int? = nil) throws -> HeaderResult {
        let type = try #require(ImageSniffer.sniff(bytes))
        let head = Array(bytes.prefix(headCount ?? bytes.count))
        let window = ByteWindow(head: head, size: Int64(bytes.count)) { offset, count in
            Array(bytes[Int(offset)..<min(bytes.count, Int(offset) + count)])
        }
        return try ImageSniffer.header(type, window)
    }

    @Test(arguments: [UInt8(0xC0), 0xC1, 0xC2, 0xC3, 0xC5, 0xC7, 0xC9, 0xCB, 0xCF])
    func jpegFrameHeaders(sof: UInt8) throws {
        // APP1 contains a fake FF C0 (16x32) and a DHT precedes the frame: neither may be taken for it.
        let r = try header(ScanFixtures.jpeg(width: 5472, height: 3648, sof: sof))
        #expect(r == .dimensions(5472, 3648))
    }

    @Test func jpegFillBytesAndHeadBoundary() throws {
        let bytes = ScanFixtures.jpeg(width: 4000, height: 3000, fillBytes: 3)
        #expect(try header(bytes) == .dimensions(4000, 3000))
        // The frame header lies beyond the head: it is fetched with a positioned read.
        #expect(try header(bytes, headCount: 10) == .dimensions(4000, 3000))
    }

    @Test func jpegCutBeforeFrameIsTruncated() throws {
        let bytes = Array(ScanFixtures.jpeg(width: 10, height: 10).prefix(40))
        let r = try header(bytes)
        #expect(r.verdict == .truncated)
        #expect(r.width == nil)
    }

    @Test func jpegWithoutFrameIsCorrupt() throws {
        let bytes: [UInt8] = [0xFF, 0xD8] + ScanFixtures.segment(0xE0, [1, 2, 3]) + ScanFixtures.segment(0xDA, [1, 2])
            + [0xFF, 0xD9]
        let r = try header(bytes)
        #expect(r.verdict == .corrupt)
        #expect(r.detail?.contains("scan data before the frame header") == true)
    }

    @Test func pngIHDR() throws {
        #expect(try header(ScanFixtures.png(width: 1920, height: 1080)) == .dimensions(1920, 1080))
        let r = try header(Array(ScanFixtures.png(width: 1, height: 1).prefix(20)))
        #expect(r.verdict == .truncated)
    }

    @Test(arguments: [(true, false), (true, true), (false, false), (false, true)])
    func tiffIFD0(littleEndian: Bool, long: Bool) throws {
        let bytes = ScanFixtures.tiff(width: 7952, height: 5304, littleEndian: littleEndian, long: long, pixelBytes: 5000)
        // IFD0 sits after the pixel data, beyond a small head.
        #expect(try header(bytes, headCount: 16) == .dimensions(7952, 5304))
    }

    @Test func tiffIFDPastTheEndIsTruncated() throws {
        let bytes = Array(ScanFixtures.tiff(width: 10, height: 10, littleEndian: true, long: false, pixelBytes: 100).prefix(60))
        let r = try header(bytes)
        #expect(r.verdict == .truncated)
    }

    @Test func tails() {
        let jpeg = ScanFixtures.jpeg(width: 10, height: 10)
        #expect(ImageSniffer.tailVerdict(.jpeg, tail: jpeg) == nil)
        #expect(ImageSniffer.tailVerdict(.jpeg, tail: ScanFixtures.jpeg(width: 10, height: 10, zeroPadding: 300)) == nil)
        #expect(ImageSniffer.tailVerdict(.jpeg, tail: Array(jpeg.dropLast()))?.verdict == .truncated)
        #expect(ImageSniffer.tailVerdict(.png, tail: ScanFixtures.png(width: 2, height: 2)) == nil)
        #expect(ImageSniffer.tailVerdict(.png, tail: ScanFixtures.png(width: 2, height: 2, iend: false))?.verdict == .truncated)
        #expect(ImageSniffer.tailVerdict(.tiff, tail: []) == nil)
    }

    @Test func gigapixelsAsTheServiceCounts() {
        #expect(ScanReport.gigapixels(width: 800, height: 600) == 0.0020736)  // below 2 MP: counted as 2,073,600
        #expect(ScanReport.gigapixels(width: 5472, height: 3648) == 5472.0 * 3648.0 / 1e9)
        #expect(ScanReport.gigapixels(width: 5472, height: nil) == 0.0020736)
    }
}
