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
}

/// Sniffs, parses the header, checks the tail and hashes a file in ONE sequential read:
/// the type and header come from the first chunk of the hashing read, the tail verdict from the
/// last bytes kept while streaming. Memory per file: one 1 MiB chunk plus a 64 KiB tail.
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
            return result
        }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: Self.chunkSize, alignment: 16)
        defer { buffer.deallocate() }
        var offset: Int64 = 0  // bytes hashed
        var position: Int64 = 0  // bytes read
        do {
            // First chunk: fill it (short reads are legal) so the sniffer and header parser see it all.
            var filled = 0
            while filled < buffer.count {
                let n = try file.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[filled...]))
                if n == 0 { break }
                filled += n
                position += Int64(n)
            }
            if filled == 0 {
                result.verdict = .empty
                result.detail = "the file is empty"
                return result
            }
            let first = UnsafeRawBufferPointer(rebasing: buffer[0..<filled])
            guard let type = ImageSniffer.sniff(first) else {
                result.isArchive = ArchiveTree.looksLikeArchive(head: first)
                return result  // not an image: not hashed
            }
            result.type = type
            let size = max(result.stat?.size ?? 0, Int64(filled))
            let window = ByteWindow(head: Array(first), size: size) { at, count in
                try file.read(at: at, count: count)
            }
            let header = try ImageSniffer.header(type, window)

            let digest = StreamingDigest(.sha1)
            var tail = Tail(capacity: ImageSniffer.tailLength)
            var chunk = first
            while true {
                digest.update(chunk)
                tail.append(chunk)
                offset += Int64(chunk.count)
                onBytes(chunk.count)
                let n = try file.read(into: buffer)
                if n == 0 { break }
                position += Int64(n)
                chunk = UnsafeRawBufferPointer(rebasing: buffer[0..<n])
            }
            result.sha1 = digest.finalize().hexString
            result.bytesHashed = offset
            result.width = header.width
            result.height = header.height
            if header.verdict != .ok {
                // A header that runs off the end of the file is a truncated file.
                result.verdict = header.verdict
                result.detail = header.detail
            } else if let bad = ImageSniffer.tailVerdict(type, tail: tail.bytes) {
                result.verdict = bad.verdict
                result.detail = bad.detail
            } else {
                result.verdict = .ok
            }
            // The file changed while it was read: the hash belongs to no single version. Record the
            // stat from before the read, so the next scan sees a difference and hashes it again.
            if let before = result.stat, let after = try? file.stat(),
               before.size != after.size || before.mtimeNs != after.mtimeNs {
                result.detail = (result.detail.map { $0 + "; " } ?? "")
                    + "the file changed while it was read; it will be hashed again"
            }
        } catch {
            result = Inspection(stat: result.stat, sha1: nil, type: result.type, width: nil, height: nil,
                                verdict: .unreadable, detail: "\(error) at offset \(position)",
                                bytesHashed: 0)
        }
        return result
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
