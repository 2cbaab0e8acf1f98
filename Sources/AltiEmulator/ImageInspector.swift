import AltiCrypto
import Foundation

/// Looks at stored bytes the way the processing step does: SHA-1, format by magic number,
/// and (for JPEG and PNG) the pixel dimensions used for gigapixel counts.
enum ImageInspector {
    static func inspect(_ bytes: [UInt8]) -> ReceivedObject {
        let format = sniff(bytes)
        var width: Int?
        var height: Int?
        switch format {
        case "PNG": (width, height) = pngSize(bytes) ?? (nil, nil)
        case "JPEG": (width, height) = jpegSize(bytes) ?? (nil, nil)
        default: break
        }
        return ReceivedObject(size: bytes.count, sha1: Digest.sha1Hex(bytes), format: format,
                              width: width, height: height)
    }

    /// `JPEG`, `PNG` or `TIFF` when the bytes start like one.
    static func sniff(_ b: [UInt8]) -> String? {
        if b.count >= 3, b[0] == 0xFF, b[1] == 0xD8, b[2] == 0xFF { return "JPEG" }
        if b.count >= 8, b[0..<8].elementsEqual([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) { return "PNG" }
        if b.count >= 4, b[0..<4].elementsEqual([0x49, 0x49, 0x2A, 0x00]) || b[0..<4].elementsEqual([0x4D, 0x4D, 0x00, 0x2A]) {
            return "TIFF"
        }
        return nil
    }

    static func pngSize(_ b: [UInt8]) -> (Int, Int)? {
        guard b.count >= 24, b[12..<16].elementsEqual(Array("IHDR".utf8)) else { return nil }
        func be32(_ i: Int) -> Int { Int(b[i]) << 24 | Int(b[i + 1]) << 16 | Int(b[i + 2]) << 8 | Int(b[i + 3]) }
        return (be32(16), be32(20))
    }

    static func jpegSize(_ b: [UInt8]) -> (Int, Int)? {
        var i = 2
        while i + 9 < b.count {
            guard b[i] == 0xFF else { return nil }
            let marker = b[i + 1]
            if marker == 0xFF { i += 1; continue }
            if marker == 0xD8 || marker == 0x01 || (0xD0...0xD7).contains(marker) { i += 2; continue }
            let length = Int(b[i + 2]) << 8 | Int(b[i + 3])
            let isSOF = (0xC0...0xCF).contains(marker) && marker != 0xC4 && marker != 0xC8 && marker != 0xCC
            if isSOF {
                let height = Int(b[i + 5]) << 8 | Int(b[i + 6])
                let width = Int(b[i + 7]) << 8 | Int(b[i + 8])
                return (width, height)
            }
            if marker == 0xDA || length < 2 { return nil }
            i += 2 + length
        }
        return nil
    }

    /// Gigapixels of one image: max(w×h, 2,073,600) / 1e9 (the CLI's rule).
    static func gigaPixel(width: Int?, height: Int?) -> Double {
        let pixels = (width ?? 0) * (height ?? 0)
        return Double(max(pixels, 2_073_600)) / 1e9
    }
}
