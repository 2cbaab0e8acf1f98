import AltiCrypto
import Foundation

/// What one read of one file found out.
public struct Inspection: Sendable, Equatable {
    /// The stat of the open file before it was read (the facts the hash belongs to).
    public var stat: FileStat?
    public var sha1: String?
    public var type: ImageType?
    public var width: Int?
    public var height: Int?
    /// nil when the content is not an image (the caller decides whether that deserves an entry).
    public var verdict: Verdict?
    public var detail: String?
    /// Bytes streamed through the digest.
    public var bytesHashed: Int64
    /// Not an image, but an archive (zip, tar, 7z, a compressed stream), by its first bytes.
    public var isArchive = false
    /// Its size or mtime changed while it was read (a copy still being written): the read belongs
    /// to no single version, so it is not recorded; the next scan reads it again.
    public var changedWhileRead = false
    /// It was gone when it was opened (removed or renamed since the walk listed it).
    public var vanished = false
    /// The image's EXIF capture facts (all nil when it has none); nil when it is not an image.
    public var exif: ExifFacts?
}

/// Sniffs, parses the header, checks the tail and hashes a file in ONE sequential read:
/// the type comes from the first chunk, the header from the bytes as they stream through the
/// digest (a header further in, such as a TIFF whose IFD is written at the end, is reached by
/// reading forward, hashing on the way), the tail verdict from the last bytes kept while streaming.
/// So a member of a compressed archive, which can only be read forward, is never read twice.
/// Memory per file: one 1 MiB chunk, the 1 MiB head and a 64 KiB tail.
public struct FileInspector: Sendable {
    public static let chunkSize = 1 << 20
    public let reader: any FileReading

    public init(reader: any FileReading = POSIXFileReading()) {
        self.reader = reader
    }

    /// Inspects the file at `path`. Never throws: OS errors become an `unreadable` verdict.
    /// - Parameter onBytes: called after each chunk with its byte count (progress).
    public func inspect(path: String, onBytes: (Int) -> Void = { _ in }) -> Inspection {
        var result = Inspection(stat: nil, sha1: nil, type: nil, width: nil, height: nil, verdict: nil,
                                detail: nil, bytesHashed: 0)
        let file: any ReadableFile
        do {
            file = try reader.open(path)
            result.stat = try file.stat()
        } catch {
            result.verdict = .unreadable
            result.detail = error.description
            result.vanished = error.code == ENOENT && error.reason == nil
            return result
        }
        return withoutActuallyEscaping(onBytes) { onBytes in
            let stream = HashingRead(file: file, chunkSize: Self.chunkSize, onBytes: onBytes)
            defer { stream.close() }
            do {
                // First chunk: filled (short reads are legal) so the sniffer and header parser see it all.
                let first = try stream.fillFirst()
                if first.isEmpty {
                    result.verdict = .empty
                    result.detail = "the file is empty"
                    return result
                }
                guard let type = ImageSniffer.sniff(first) else {
                    result.isArchive = first.withUnsafeBytes { ArchiveTree.looksLikeArchive(head: $0) }
                    return result  // not an image: not hashed
                }
                result.type = type
                // A JPEG's EXIF (APP1, right after SOI) is in this first chunk: parsed from it, so
                // it costs no read at all.
                if type != .tiff { result.exif = ExifReader.facts(type, head: first) }
                stream.hashFirst()
                // A size the file does not state (a zip member written as a stream) is found at its end.
                let stated = result.stat?.size ?? -1
                let window = ByteWindow(head: first, size: stated >= 0 ? max(stated, Int64(first.count)) : .max) { at, count in
                    try stream.fetch(at: at, count: count)
                }
                let header = try ImageSniffer.header(type, window)
                // A TIFF's IFDs are reached through the window like its header: forward on the
                // stream, hashing on the way, or (behind it) a positioned read of the open file.
                if type == .tiff { result.exif = ExifReader.facts(type, head: first, window: window) }
                try stream.finish()
                result.sha1 = stream.digest.finalize().hexString
                result.bytesHashed = stream.hashed
                result.width = header.width
                result.height = header.height
                if header.verdict != .ok {
                    // A header that runs off the end of the file is a truncated file.
                    result.verdict = header.verdict
                    result.detail = header.detail
                } else if let bad = ImageSniffer.tailVerdict(type, tail: stream.tail.bytes) {
                    result.verdict = bad.verdict
                    result.detail = bad.detail
                } else {
                    result.verdict = .ok
                }
                // The file changed while it was read: the hash belongs to no single version. Record the
                // stat from before the read, so the next scan sees a difference and hashes it again.
                if let before = result.stat, let after = try? file.stat(),
                   before.size != after.size || before.mtimeNs != after.mtimeNs {
                    result.changedWhileRead = true
                    result.detail = (result.detail.map { $0 + "; " } ?? "")
                        + "the file changed while it was read; it will be hashed again"
                }
            } catch {
                let exif = result.exif
                result = Inspection(stat: result.stat, sha1: nil, type: result.type, width: nil, height: nil,
                                    verdict: .unreadable, detail: "\(error) at offset \(stream.position)",
                                    bytesHashed: 0)
                result.exif = exif
            }
            return result
        }
    }
}

extension FileInspector {
    /// The EXIF facts of an image already in the manifest, from its first bytes only (at most
    /// `ExifReader.headLength`, plus a TIFF's IFDs where they are): nothing is hashed. For entries
    /// of a manifest written before EXIF was recorded (see DESIGN.md, "EXIF"). nil when the file
    /// cannot be read, is no longer an image, or no longer has the stat `expected` (it changed
    /// since it was hashed: the next scan hashes it again and reads its EXIF then).
    public func headerExif(path: String, expected: FileStat) -> ExifFacts? {
        guard let file = try? reader.open(path), let stat = try? file.stat(),
              max(stat.size, 0) == expected.size, stat.mtimeNs == expected.mtimeNs, stat.inode == expected.inode
        else { return nil }
        var head: [UInt8] = []
        var atEnd = false
        /// Reads on until `head` holds `count` bytes (or the file ends); false on a read error.
        func fill(to count: Int) -> Bool {
            while !atEnd, head.count < count {
                var chunk = [UInt8](repeating: 0, count: count - head.count)
                guard let n = try? chunk.withUnsafeMutableBytes({ try file.read(into: $0) })
                else { return false }
                if n == 0 { atEnd = true }
                head += chunk[0..<n]
            }
            return true
        }
        // A few KiB hold a camera's EXIF; a JPEG's segments say how much more there is to read.
        guard fill(to: Self.headerProbe), let type = ImageSniffer.sniff(head) else { return nil }
        if type == .jpeg {
            var needed = ExifReader.jpegBytesNeeded(head)
            while needed > head.count, !atEnd {
                guard fill(to: min(needed, ExifReader.headLength)) else { return nil }
                if head.count >= ExifReader.headLength { break }
                needed = ExifReader.jpegBytesNeeded(head)
            }
        }
        let window = ByteWindow(head: head, size: max(stat.size, Int64(head.count))) { offset, count in
            try file.read(at: offset, count: count)
        }
        return ExifReader.facts(type, head: head, window: window)
    }

    /// The first read of `headerExif`.
    static let headerProbe = 4096
}

/// The one sequential read of a file the inspector makes: each chunk read is hashed and its last
/// bytes kept; a header parser asking for bytes ahead reads forward to them (hashing on the way)
/// and gets them from the current chunk. Only bytes behind the current chunk and outside the head
/// (a parser jumping back, which no header the sniffer reads needs) cost a separate read.
final class HashingRead {
    let file: any ReadableFile
    let digest = StreamingDigest(.sha1)
    private(set) var tail = Tail(capacity: ImageSniffer.tailLength)
    /// Bytes read and hashed; the chunk in `buffer` ends here.
    private(set) var hashed: Int64 = 0
    /// Bytes read (hashed or not yet).
    private(set) var position: Int64 = 0
    private let buffer: UnsafeMutableRawBufferPointer
    private var chunkLength = 0
    private var atEnd = false
    private let onBytes: (Int) -> Void

    init(file: any ReadableFile, chunkSize: Int, onBytes: @escaping (Int) -> Void) {
        self.file = file
        self.onBytes = onBytes
        buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: chunkSize, alignment: 16)
    }

    func close() { buffer.deallocate() }

    /// Fills the first chunk, not hashed yet (a file that is no image is never hashed).
    func fillFirst() throws(OSError) -> [UInt8] {
        var filled = 0
        while filled < buffer.count {
            let n = try file.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[filled...]))
            if n == 0 { atEnd = true; break }
            filled += n
            position += Int64(n)
        }
        chunkLength = filled
        return Array(UnsafeRawBufferPointer(rebasing: buffer[0..<filled]))
    }

    /// Hashes the first chunk.
    func hashFirst() { consume(chunkLength) }

    private func consume(_ n: Int) {
        let chunk = UnsafeRawBufferPointer(rebasing: buffer[0..<n])
        digest.update(chunk)
        tail.append(chunk)
        hashed += Int64(n)
        chunkLength = n
        onBytes(n)
    }

    /// Reads and hashes the next chunk; false at the end of the file.
    @discardableResult
    func advance() throws(OSError) -> Bool {
        guard !atEnd else { return false }
        let n = try file.read(into: buffer)
        if n == 0 { atEnd = true; return false }
        position += Int64(n)
        consume(n)
        return true
    }

    /// Reads and hashes the rest of the file.
    func finish() throws(OSError) {
        while try advance() {}
    }

    /// Up to `count` bytes at `offset` (fewer at the end of the current chunk, none past the end
    /// of the file), for `ByteWindow`: ahead of the stream by reading forward, behind it by a
    /// separate read.
    func fetch(at offset: Int64, count: Int) throws(OSError) -> [UInt8] {
        while offset >= hashed, try advance() {}
        let chunkStart = hashed - Int64(chunkLength)
        if offset >= chunkStart, offset < hashed {
            let from = Int(offset - chunkStart)
            let to = Int(min(hashed, offset + Int64(count)) - chunkStart)
            return Array(UnsafeRawBufferPointer(rebasing: buffer[from..<to]))
        }
        if offset >= hashed { return [] }  // past the end
        return try file.read(at: offset, count: count)
    }
}

/// The last `capacity` bytes of a stream.
struct Tail {
    let capacity: Int
    private(set) var bytes: [UInt8] = []

    init(capacity: Int) { self.capacity = capacity }

    mutating func append(_ chunk: UnsafeRawBufferPointer) {
        if chunk.count >= capacity {
            bytes = Array(chunk[(chunk.count - capacity)...])
        } else {
            let keep = min(bytes.count, capacity - chunk.count)
            bytes.removeFirst(bytes.count - keep)
            bytes.append(contentsOf: chunk)
        }
    }
}
