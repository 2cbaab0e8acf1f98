import Foundation

/// How a file name, which on Linux is any bytes but NUL and "/", is recorded: a manifest path
/// (schemaVersion 2) is always valid UTF-8 and names exactly one byte string.
///
/// The escaped form is the one archive member names already use (`ArchiveMember.safePath`):
/// - a name that is valid UTF-8 is kept as it is, except `%`, written `%25`;
/// - a name that is not valid UTF-8 keeps its ASCII bytes (but `%`) and writes every other byte
///   as `%XX` (upper-case hex).
/// Decoding turns every `%XX` back into its byte and every other character into its UTF-8
/// bytes, so `a\xff.jpg`, `a\xfe.jpg` and a literal `a%FF.jpg` are `a%FF.jpg`, `a%FE.jpg` and
/// `a%25FF.jpg`: three names, three paths. Folders are escaped the same way, component by
/// component. Manifests of schemaVersion 1 recorded folder names raw (a non-UTF-8 name could
/// not be recorded at all); loading one escapes its `%` (`Manifest.migrate`).
public enum RecordedPath {
    /// One name (a path component) as recorded.
    public static func escape(_ raw: some Collection<UInt8>) -> String {
        var text = ""
        if let decoded = String(validating: raw, as: UTF8.self) {
            guard raw.contains(0x25) else { return decoded }  // the bytes: no Foundation search per name
            for scalar in decoded.unicodeScalars {
                if scalar == "%" { text += "%25" } else { text.unicodeScalars.append(scalar) }
            }
            return text
        }
        for byte in raw {
            if byte < 0x80, byte != 0x25 {
                text.unicodeScalars.append(Unicode.Scalar(byte))
            } else {
                text += percent(byte)
            }
        }
        return text
    }

    /// The order of recorded paths (the manifest's, the walk's): byte order of their UTF-8. The
    /// same answer as `a.utf8.lexicographicallyPrecedes(b.utf8)`, by `memcmp` over the contiguous
    /// UTF-8 of both (sorting 100,000 paths the generic way was a visible part of a re-scan).
    public static func precedes(_ a: String, _ b: String) -> Bool {
        let fast = a.utf8.withContiguousStorageIfAvailable { left in
            b.utf8.withContiguousStorageIfAvailable { right -> Bool in
                let common = min(left.count, right.count)
                if common > 0, let l = left.baseAddress, let r = right.baseAddress {
                    let order = memcmp(l, r, common)
                    if order != 0 { return order < 0 }
                }
                return left.count < right.count
            }
        }
        if let fast = fast ?? nil { return fast }
        return a.utf8.lexicographicallyPrecedes(b.utf8)
    }

    /// A recorded path (or name) back to the bytes it names. `%` not followed by two hex digits
    /// (never written by alti) stands for itself.
    public static func bytes(_ recorded: String) -> [UInt8] {
        let utf8 = Array(recorded.utf8)
        guard utf8.contains(0x25) else { return utf8 }
        var out: [UInt8] = []
        out.reserveCapacity(utf8.count)
        var index = 0
        while index < utf8.count {
            if utf8[index] == 0x25, index + 2 < utf8.count, let high = hexValue(utf8[index + 1]),
               let low = hexValue(utf8[index + 2]) {
                out.append(high << 4 | low)
                index += 3
            } else {
                out.append(utf8[index])
                index += 1
            }
        }
        return out
    }

    /// What a recorded name is shown or sent as where a valid UTF-8 string is needed and the
    /// name is not a key (the server's `filename`): the name itself when it is valid UTF-8
    /// (`a%FF.jpg` for the literal one), else its escaped form.
    public static func display(_ recorded: String) -> String {
        let raw = bytes(recorded)
        return String(validating: raw, as: UTF8.self) ?? recorded
    }

    /// Whether a recorded path holds any escape (so it differs from its bytes).
    public static func isEscaped(_ recorded: String) -> Bool { recorded.utf8.contains(0x25) }

    private static func percent(_ byte: UInt8) -> String {
        let digits = Array("0123456789ABCDEF".unicodeScalars)
        var text = "%"
        text.unicodeScalars.append(digits[Int(byte >> 4)])
        text.unicodeScalars.append(digits[Int(byte & 0x0F)])
        return text
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case 0x30...0x39: return byte - 0x30
        case 0x41...0x46: return byte - 0x41 + 10
        case 0x61...0x66: return byte - 0x61 + 10
        default: return nil
        }
    }
}
