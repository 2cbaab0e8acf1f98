import Foundation

/// Reads a manifest from its JSON bytes straight into `Manifest`, about twenty times faster than
/// `JSONDecoder` on Linux (which builds a tree of every value, then decodes it through the
/// `Codable` containers): decoding was most of a no-change re-scan.
///
/// It is a fast path, never the judge: it takes only the JSON alti itself writes (and whatever is
/// equally plain), and refuses (`nil`) anything it is not certain `JSONDecoder` reads to the same
/// value: any syntax error, a key it does not know or that comes twice, an escaped key, a number
/// that is not a plain integer where an integer goes, a `null` where a value is required, an
/// unknown verdict or image type, a newer `schemaVersion`. `ManifestStore.decode` then decodes
/// the same bytes with `JSONDecoder`, which accepts or refuses them with the messages it always
/// gave. So the reader may refuse more than `JSONDecoder` does (that costs only time), but must
/// never accept what it refuses or read a value differently; tests hold the two side by side.
enum ManifestJSONReader {
    /// The manifest in `bytes`, or nil when the fast path does not take it.
    static func decode(_ bytes: UnsafeRawBufferPointer) -> Manifest? {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return nil }
        var reader = Reader(base: base.assumingMemoryBound(to: UInt8.self), end: bytes.count)
        do {
            reader.skipWhitespace()
            let manifest = try reader.manifest()
            reader.skipWhitespace()
            return reader.index == reader.end ? manifest : nil
        } catch {
            return nil
        }
    }

    static func decode(_ data: Data) -> Manifest? {
        data.withUnsafeBytes { decode($0) }
    }

    /// Anything the fast path does not take; the caller falls back to `JSONDecoder`.
    struct Refused: Error {}

    /// A key's bytes in the input (keys are never escaped in what the reader takes).
    struct Key {
        var start: UnsafePointer<UInt8>
        var count: Int

        func `is`(_ name: StaticString) -> Bool {
            count == name.utf8CodeUnitCount && memcmp(start, name.utf8Start, count) == 0
        }
    }

    /// The keys of one kind of object and which of them were seen, so a duplicate is refused.
    /// The names are in the sorted order alti writes them: the next one expected is tried first.
    struct Keys {
        let names: [StaticString]
        private(set) var seen: UInt32 = 0
        private var next = 0

        init(_ names: [StaticString]) { self.names = names }

        /// The index of `key` in `names`; refused when unknown or seen already.
        mutating func index(of key: Key) throws(Refused) -> Int {
            var found = -1
            if next < names.count, key.is(names[next]) {
                found = next
            } else {
                for (i, name) in names.enumerated() where key.is(name) {
                    found = i
                    break
                }
            }
            guard found >= 0, seen & (1 << found) == 0 else { throw Refused() }
            seen |= 1 << found
            next = found + 1
            return found
        }

        /// Refused unless every name in `required` was seen.
        func require(_ required: UInt32) throws(Refused) {
            guard seen & required == required else { throw Refused() }
        }
    }

    struct Reader {
        let base: UnsafePointer<UInt8>
        let end: Int
        var index = 0

        init(base: UnsafePointer<UInt8>, end: Int) {
            self.base = base
            self.end = end
        }

        // MARK: Structure

        /// The byte at the cursor, or 0 at the end (0 is never valid JSON outside a string).
        var peek: UInt8 { index < end ? base[index] : 0 }

        mutating func skipWhitespace() {
            while index < end {
                switch base[index] {
                case 0x20, 0x0A, 0x0D, 0x09: index += 1
                default: return
                }
            }
        }

        mutating func expect(_ byte: UInt8) throws(Refused) {
            skipWhitespace()
            guard peek == byte else { throw Refused() }
            index += 1
        }

        /// Consumes `word` (after whitespace) if it comes next.
        mutating func literal(_ word: StaticString) -> Bool {
            skipWhitespace()
            let count = word.utf8CodeUnitCount
            guard end - index >= count, memcmp(base + index, word.utf8Start, count) == 0 else { return false }
            index += count
            return true
        }

        /// Consumes `null` if it comes next.
        mutating func null() -> Bool { literal("null") }

        mutating func beginObject() throws(Refused) { try expect(UInt8(ascii: "{")) }

        /// The next key of an object begun with `beginObject` (its ":" consumed), or nil at its
        /// end ("}" consumed). `first` is true for the first call on an object.
        mutating func nextKey(_ first: inout Bool) throws(Refused) -> Key? {
            skipWhitespace()
            if peek == UInt8(ascii: "}") {
                index += 1
                return nil
            }
            if !first { try expect(UInt8(ascii: ",")) }
            first = false
            try expect(UInt8(ascii: "\""))
            let start = index
            while index < end, base[index] != UInt8(ascii: "\"") {
                // Escaped or non-ASCII keys are none of alti's: refused, not decoded.
                guard base[index] >= 0x20, base[index] < 0x80, base[index] != UInt8(ascii: "\\") else { throw Refused() }
                index += 1
            }
            guard index < end else { throw Refused() }
            let key = Key(start: base + start, count: index - start)
            index += 1
            try expect(UInt8(ascii: ":"))
            return key
        }

        /// Calls `element` for each element of an array (the "[" and "]" consumed here).
        mutating func array(_ element: (inout Reader) throws(Refused) -> Void) throws(Refused) {
            try expect(UInt8(ascii: "["))
            skipWhitespace()
            if peek == UInt8(ascii: "]") {
                index += 1
                return
            }
            while true {
                try element(&self)
                skipWhitespace()
                switch peek {
                case UInt8(ascii: ","): index += 1
                case UInt8(ascii: "]"): index += 1; return
                default: throw Refused()
                }
            }
        }

        // MARK: Scalars

        mutating func string() throws(Refused) -> String {
            try expect(UInt8(ascii: "\""))
            let start = index
            var ascii = true
            while index < end {
                let byte = base[index]
                if byte == UInt8(ascii: "\"") {
                    let text = UnsafeBufferPointer(start: base + start, count: index - start)
                    index += 1
                    if ascii { return String(decoding: text, as: UTF8.self) }
                    guard let valid = String(validating: text, as: UTF8.self) else { throw Refused() }
                    return valid
                }
                if byte == UInt8(ascii: "\\") {
                    index = start
                    return try escapedString()
                }
                guard byte >= 0x20 else { throw Refused() }  // a raw control character is not JSON
                if byte >= 0x80 { ascii = false }
                index += 1
            }
            throw Refused()
        }

        /// The slow path of `string()`, from just after the opening quote.
        private mutating func escapedString() throws(Refused) -> String {
            var bytes: [UInt8] = []
            while index < end {
                let byte = base[index]
                index += 1
                switch byte {
                case UInt8(ascii: "\""):
                    guard let valid = String(validating: bytes, as: UTF8.self) else { throw Refused() }
                    return valid
                case UInt8(ascii: "\\"):
                    guard index < end else { throw Refused() }
                    let escape = base[index]
                    index += 1
                    switch escape {
                    case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): bytes.append(escape)
                    case UInt8(ascii: "b"): bytes.append(0x08)
                    case UInt8(ascii: "f"): bytes.append(0x0C)
                    case UInt8(ascii: "n"): bytes.append(0x0A)
                    case UInt8(ascii: "r"): bytes.append(0x0D)
                    case UInt8(ascii: "t"): bytes.append(0x09)
                    case UInt8(ascii: "u"):
                        var scalar = try hex4()
                        if (0xD800..<0xDC00).contains(scalar) {
                            // A high surrogate must be followed by an escaped low one.
                            guard end - index >= 2, base[index] == UInt8(ascii: "\\"), base[index + 1] == UInt8(ascii: "u")
                            else { throw Refused() }
                            index += 2
                            let low = try hex4()
                            guard (0xDC00..<0xE000).contains(low) else { throw Refused() }
                            scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                        }
                        guard let unicode = Unicode.Scalar(scalar) else { throw Refused() }  // a lone low surrogate
                        bytes.append(contentsOf: unicode.utf8)
                    default:
                        throw Refused()
                    }
                default:
                    guard byte >= 0x20 else { throw Refused() }
                    bytes.append(byte)
                }
            }
            throw Refused()
        }

        private mutating func hex4() throws(Refused) -> UInt32 {
            guard end - index >= 4 else { throw Refused() }
            var value: UInt32 = 0
            for _ in 0..<4 {
                let byte = base[index]
                index += 1
                let digit: UInt8
                switch byte {
                case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
                case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
                case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
                default: throw Refused()
                }
                value = value << 4 | UInt32(digit)
            }
            return value
        }

        /// The magnitude of a plain integer (`0` or `[1-9][0-9]*`, no fraction or exponent: the
        /// number after it must end there or the container refuses), and whether it was negative.
        private mutating func integer() throws(Refused) -> (negative: Bool, magnitude: UInt64) {
            skipWhitespace()
            let negative = peek == UInt8(ascii: "-")
            if negative { index += 1 }
            let start = index
            var magnitude: UInt64 = 0
            while index < end, base[index] &- UInt8(ascii: "0") < 10 {
                let (times10, o1) = magnitude.multipliedReportingOverflow(by: 10)
                let (sum, o2) = times10.addingReportingOverflow(UInt64(base[index] &- UInt8(ascii: "0")))
                guard !o1, !o2 else { throw Refused() }
                magnitude = sum
                index += 1
            }
            let digits = index - start
            guard digits > 0, !(digits > 1 && base[start] == UInt8(ascii: "0")) else { throw Refused() }
            // A fraction or an exponent ("1.0", "1e3"): JSONDecoder's business.
            if index < end, base[index] == UInt8(ascii: ".") || base[index] | 0x20 == UInt8(ascii: "e") {
                throw Refused()
            }
            // "-0" is refused too: whatever JSONDecoder makes of it, it is not alti's.
            if negative, magnitude == 0 { throw Refused() }
            return (negative, magnitude)
        }

        mutating func int64() throws(Refused) -> Int64 {
            let (negative, magnitude) = try integer()
            if negative {
                guard magnitude <= UInt64(Int64.max) + 1 else { throw Refused() }
                return magnitude == UInt64(Int64.max) + 1 ? Int64.min : -Int64(magnitude)
            }
            guard magnitude <= UInt64(Int64.max) else { throw Refused() }
            return Int64(magnitude)
        }

        mutating func int() throws(Refused) -> Int {
            let value = try int64()
            guard let fitting = Int(exactly: value) else { throw Refused() }
            return fitting
        }

        mutating func uint64() throws(Refused) -> UInt64 {
            let (negative, magnitude) = try integer()
            guard !negative else { throw Refused() }
            return magnitude
        }

        /// A JSON number (the full grammar) as the nearest `Double`, as `JSONDecoder` reads it.
        mutating func double() throws(Refused) -> Double {
            skipWhitespace()
            let start = index
            func digits(_ r: inout Reader) -> Int {
                let from = r.index
                while r.index < r.end, r.base[r.index] &- UInt8(ascii: "0") < 10 { r.index += 1 }
                return r.index - from
            }
            if peek == UInt8(ascii: "-") { index += 1 }
            let intStart = index
            let intDigits = digits(&self)
            guard intDigits > 0, !(intDigits > 1 && base[intStart] == UInt8(ascii: "0")) else { throw Refused() }
            if peek == UInt8(ascii: ".") {
                index += 1
                guard digits(&self) > 0 else { throw Refused() }
            }
            if peek | 0x20 == UInt8(ascii: "e") {
                index += 1
                if peek == UInt8(ascii: "+") || peek == UInt8(ascii: "-") { index += 1 }
                guard digits(&self) > 0 else { throw Refused() }
            }
            let text = String(decoding: UnsafeBufferPointer(start: base + start, count: index - start), as: UTF8.self)
            guard let value = Double(text), value.isFinite else { throw Refused() }
            return value
        }

        mutating func bool() throws(Refused) -> Bool {
            skipWhitespace()
            if literal("true") { return true }
            if literal("false") { return false }
            throw Refused()
        }

        mutating func optionalString() throws(Refused) -> String? { null() ? nil : try string() }
        mutating func optionalInt() throws(Refused) -> Int? { null() ? nil : try int() }
        mutating func optionalInt64() throws(Refused) -> Int64? { null() ? nil : try int64() }
        mutating func optionalDouble() throws(Refused) -> Double? { null() ? nil : try double() }

        mutating func strings() throws(Refused) -> [String] {
            var out: [String] = []
            try array { (r: inout Reader) throws(Refused) in out.append(try r.string()) }
            return out
        }

        // MARK: The manifest's shapes (as their `Decodable` conformances read them)

        static let manifestKeys: [StaticString] = ["entries", "generator", "remote", "schemaVersion", "source", "writtenAt",
                                                   "writtenAtNs"]

        mutating func manifest() throws(Refused) -> Manifest {
            var keys = Keys(Self.manifestKeys)
            var entries: [ManifestEntry] = []
            var generator = "", writtenAt = ""
            var remote = Manifest.Remote()
            var source = Manifest.Source(root: "")
            var version = 0
            var writtenAtNs: Int64 = 0
            try beginObject()
            var first = true
            while let key = try nextKey(&first) {
                switch try keys.index(of: key) {
                case 0:
                    // Sized from the file: an entry is about 500 bytes as alti writes it.
                    entries.reserveCapacity(end / 512)
                    try array { (r: inout Reader) throws(Refused) in entries.append(try r.entry()) }
                case 1: generator = try string()
                case 2: remote = try self.remote()
                case 3:
                    version = try int()
                    // A newer manifest is refused by `Manifest.init(from:)` with its own message.
                    guard version <= Manifest.currentSchemaVersion else { throw Refused() }
                case 4: source = try self.source()
                case 5: writtenAt = try string()
                default: writtenAtNs = try int64()
                }
            }
            try keys.require(0b111_1111)
            var manifest = Manifest(root: "")
            manifest.schemaVersion = version
            manifest.generator = generator
            manifest.source = source
            manifest.remote = remote
            manifest.writtenAt = writtenAt
            manifest.writtenAtNs = writtenAtNs
            manifest.entries = entries
            manifest.migrate(from: version)
            return manifest
        }

        static let remoteKeys: [StaticString] = ["bucket", "cloud", "endpoint", "projectID"]

        mutating func remote() throws(Refused) -> Manifest.Remote {
            var keys = Keys(Self.remoteKeys)
            var remote = Manifest.Remote()
            try beginObject()
            var first = true
            while let key = try nextKey(&first) {
                switch try keys.index(of: key) {
                case 0: remote.bucket = try string()
                case 1: remote.cloud = try string()
                case 2: remote.endpoint = try string()
                default: remote.projectID = try string()
                }
            }
            try keys.require(0b1111)
            return remote
        }

        static let sourceKeys: [StaticString] = ["archive", "kind", "root"]

        mutating func source() throws(Refused) -> Manifest.Source {
            var keys = Keys(Self.sourceKeys)
            var source = Manifest.Source(root: "")
            try beginObject()
            var first = true
            while let key = try nextKey(&first) {
                switch try keys.index(of: key) {
                case 0: source.archive = null() ? nil : try fileFacts()
                case 1: source.kind = try string()
                default: source.root = try string()
                }
            }
            try keys.require(0b110)
            return source
        }

        static let fileFactsKeys: [StaticString] = ["inode", "mtimeNs", "size"]

        mutating func fileFacts() throws(Refused) -> Manifest.Source.FileFacts {
            var keys = Keys(Self.fileFactsKeys)
            var facts = Manifest.Source.FileFacts(size: 0, mtimeNs: 0, inode: 0)
            try beginObject()
            var first = true
            while let key = try nextKey(&first) {
                switch try keys.index(of: key) {
                case 0: facts.inode = try uint64()
                case 1: facts.mtimeNs = try int64()
                default: facts.size = try int64()
                }
            }
            try keys.require(0b111)
            return facts
        }

        static let entryKeys: [StaticString] = ["detail", "duplicateOf", "exif", "hashedAtNs", "height", "inode", "missing",
                                                "mtimeNs", "path", "server", "sha1", "size", "type", "verdict", "width"]

        mutating func entry() throws(Refused) -> ManifestEntry {
            var keys = Keys(Self.entryKeys)
            var entry = ManifestEntry(path: "", size: 0, mtimeNs: 0, inode: 0, sha1: nil, type: nil, width: nil,
                                      height: nil, verdict: .ok, detail: nil)
            try beginObject()
            var first = true
            while let key = try nextKey(&first) {
                switch try keys.index(of: key) {
                case 0: entry.detail = try optionalString()
                case 1: entry.duplicateOf = try optionalString()
                case 2: entry.exif = null() ? nil : try exif()
                case 3: entry.hashedAtNs = try optionalInt64()
                case 4: entry.height = try optionalInt()
                case 5: entry.inode = try uint64()
                case 6: entry.missing = null() ? false : try bool()
                case 7: entry.mtimeNs = try int64()
                case 8: entry.path = try string()
                case 9: entry.server = null() ? nil : try server()
                case 10: entry.sha1 = try optionalString()
                case 11: entry.size = try int64()
                case 12:
                    if !null() {
                        guard let type = ImageType(rawValue: try string()) else { throw Refused() }
                        entry.type = type
                    }
                case 13:
                    guard let verdict = Verdict(rawValue: try string()) else { throw Refused() }
                    entry.verdict = verdict
                default: entry.width = try optionalInt()
                }
            }
            // Required: inode, mtimeNs, path, size, verdict.
            try keys.require(1 << 5 | 1 << 7 | 1 << 8 | 1 << 11 | 1 << 13)
            return entry
        }

        static let exifKeys: [StaticString] = ["capturedAt", "gps", "make", "model"]

        mutating func exif() throws(Refused) -> ExifFacts {
            var keys = Keys(Self.exifKeys)
            var facts = ExifFacts()
            try beginObject()
            var first = true
            while let key = try nextKey(&first) {
                switch try keys.index(of: key) {
                case 0: facts.capturedAt = try optionalString()
                case 1: facts.gps = null() ? nil : try gps()
                case 2: facts.make = try optionalString()
                default: facts.model = try optionalString()
                }
            }
            return facts
        }

        static let gpsKeys: [StaticString] = ["altitude", "latitude", "longitude"]

        mutating func gps() throws(Refused) -> GPSPosition {
            var keys = Keys(Self.gpsKeys)
            var position = GPSPosition(latitude: 0, longitude: 0)
            try beginObject()
            var first = true
            while let key = try nextKey(&first) {
                switch try keys.index(of: key) {
                case 0: position.altitude = try optionalDouble()
                case 1: position.latitude = try double()
                default: position.longitude = try double()
                }
            }
            try keys.require(0b110)
            return position
        }

        static let serverKeys: [StaticString] = ["bucket", "checkedAt", "cloud", "errors", "filename", "imageID", "multipart",
                             "refusedSends", "state"]

        mutating func server() throws(Refused) -> ServerFacts {
            var keys = Keys(Self.serverKeys)
            var facts = ServerFacts()
            try beginObject()
            var first = true
            while let key = try nextKey(&first) {
                switch try keys.index(of: key) {
                case 0: facts.bucket = try string()
                case 1: facts.checkedAt = try string()
                case 2: facts.cloud = try optionalString() ?? ""
                case 3: facts.errors = try strings()
                case 4: facts.filename = try string()
                case 5: facts.imageID = try string()
                case 6: facts.multipart = null() ? nil : try multipart()
                case 7: facts.refusedSends = try optionalInt() ?? 0
                default: facts.state = ImageState(try string())
                }
            }
            // Required: bucket, checkedAt, errors, filename, imageID, state.
            try keys.require(1 << 0 | 1 << 1 | 1 << 3 | 1 << 4 | 1 << 5 | 1 << 8)
            return facts
        }

        static let multipartKeys: [StaticString] = ["key", "partSize", "parts", "uploadID"]

        mutating func multipart() throws(Refused) -> MultipartUpload {
            var keys = Keys(Self.multipartKeys)
            var upload = MultipartUpload(uploadID: "", key: "", partSize: 0, parts: [])
            try beginObject()
            var first = true
            while let key = try nextKey(&first) {
                switch try keys.index(of: key) {
                case 0: upload.key = try string()
                case 1: upload.partSize = try int64()
                case 2: try array { (r: inout Reader) throws(Refused) in upload.parts.append(try r.part()) }
                default: upload.uploadID = try string()
                }
            }
            try keys.require(0b1111)
            return upload
        }

        static let partKeys: [StaticString] = ["crc64", "etag", "number", "size"]

        mutating func part() throws(Refused) -> MultipartUpload.Part {
            var keys = Keys(Self.partKeys)
            var part = MultipartUpload.Part(number: 0, etag: "", crc64: "", size: 0)
            try beginObject()
            var first = true
            while let key = try nextKey(&first) {
                switch try keys.index(of: key) {
                case 0: part.crc64 = try string()
                case 1: part.etag = try string()
                case 2: part.number = try int()
                default: part.size = try int64()
                }
            }
            try keys.require(0b1111)
            return part
        }
    }
}
