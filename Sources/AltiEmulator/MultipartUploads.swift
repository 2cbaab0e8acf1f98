import AltiCrypto
import Foundation

/// One stored part of an OSS multipart upload.
public struct StoredPart: Sendable, Codable, Equatable {
    public var size: Int
    /// Upper-case hex MD5 of the part as stored: its ETag without the quotes.
    public var md5: String
    /// CRC-64/ECMA of the part as stored (`x-oss-hash-crc64ecma`).
    public var crc64: UInt64
}

/// An OSS multipart upload between InitiateMultipartUpload and Complete/Abort. It belongs to a
/// bucket and key, not to the credentials that started it (OSS lets renewed STS carry on).
public struct MultipartUploadRecord: Sendable, Codable, Equatable {
    public var uploadID: String
    public var bucket: String
    /// The object key inside the bucket (`<pid>/<filename>`).
    public var key: String
    public var initiatedAt: Date
    /// Stored parts by part number (a part sent again replaces the earlier one).
    public var parts: [Int: StoredPart]
}

/// Why a CompleteMultipartUpload is refused (storage-protocols: OSS CompleteMultipartUpload).
enum MultipartCompletionRefusal: Error, Equatable {
    /// The part numbers of the list are not strictly ascending.
    case partOrder
    /// A listed part was not uploaded, or its ETag is not the stored part's.
    case invalidPart(number: Int, etag: String)
    /// A part other than the last is smaller than 100 KiB.
    case tooSmall(number: Int, size: Int)
}

/// An assembled multipart object, ready to be stored like a PutObject's.
struct AssembledObject {
    var bytes: [UInt8]
    /// `<MD5 of the parts' binary MD5s>-<part count>`, upper-case hex, without quotes (the S3/OSS
    /// multipart ETag form; not the MD5 of the object).
    var etag: String
    /// CRC-64 of the whole object, combined from the parts' CRCs.
    var crc64: UInt64
}

/// A completed multipart upload, as CompleteMultipartUpload answers it.
struct CompletedMultipartObject {
    var imageID: String?
    /// The multipart ETag, without quotes.
    var etag: String
    /// CRC-64 of the object as stored.
    var crc64: UInt64
    var size: Int
}

/// The multipart uploads in progress and their parts' bytes: in memory, or with a data directory
/// as files `DIR/multipart/<uploadID>/<partNumber>` (the records go into state.json), so a
/// restarted emulator keeps uploads in progress as OSS does.
struct MultipartUploads {
    /// Every part except the last must be at least this large (OSS: 100 KB).
    static let minimumPartSize = 100 * 1024
    /// Part numbers run from 1 to 10000.
    static let partNumbers = 1...10_000

    let dataDirectory: String?
    private(set) var uploads: [String: MultipartUploadRecord] = [:]
    /// Part bytes by upload id and part number, when there is no data directory.
    private var partBytes: [String: [Int: [UInt8]]] = [:]

    init(dataDirectory: String?, restoring records: [MultipartUploadRecord] = []) {
        self.dataDirectory = dataDirectory
        for record in records { uploads[record.uploadID] = record }
    }

    /// The upload with this id for this bucket and key; nil when unknown, finished, or another key's
    /// (OSS answers NoSuchUpload for an id used with another object).
    func upload(_ uploadID: String, bucket: String, key: String) -> MultipartUploadRecord? {
        guard let record = uploads[uploadID], record.bucket == bucket, record.key == key else { return nil }
        return record
    }

    mutating func initiate(bucket: String, key: String, now: Date) -> MultipartUploadRecord {
        // OSS upload ids are 32 upper-case hex characters.
        let record = MultipartUploadRecord(uploadID: randomHex(16).uppercased(), bucket: bucket, key: key,
                                           initiatedAt: now, parts: [:])
        uploads[record.uploadID] = record
        return record
    }

    /// Stores (or replaces) one part of a known upload.
    mutating func storePart(uploadID: String, number: Int, bytes: [UInt8]) throws -> StoredPart {
        let part = StoredPart(size: bytes.count, md5: Digest.hash(.md5, bytes).hexString.uppercased(),
                              crc64: CRC64.checksum(bytes))
        if let dir = dataDirectory {
            let path = Self.partPath(dir, uploadID, number)
            try FileManager.default.createDirectory(
                atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try Data(bytes).write(to: URL(fileURLWithPath: path), options: .atomic)
        } else {
            partBytes[uploadID, default: [:]][number] = bytes
        }
        uploads[uploadID]?.parts[number] = part
        return part
    }

    /// Checks the client's part list against the stored parts and assembles the object; the
    /// upload stays until `finish` (the caller stores the object first).
    ///
    /// Order of checks: ascending part numbers (InvalidPartOrder), then each listed part uploaded
    /// with that ETag (InvalidPart; quotes around the ETag are optional, the hex is compared as
    /// stored), then every part but the last at least 100 KiB (EntityTooSmall).
    func assemble(_ record: MultipartUploadRecord, listed: [(number: Int, etag: String)]) throws
        -> Result<AssembledObject, MultipartCompletionRefusal>
    {
        for (previous, next) in zip(listed, listed.dropFirst()) where next.number <= previous.number {
            return .failure(.partOrder)
        }
        var parts: [(number: Int, part: StoredPart)] = []
        for item in listed {
            let etag = Self.unquoted(item.etag)
            guard let part = record.parts[item.number], part.md5 == etag else {
                return .failure(.invalidPart(number: item.number, etag: item.etag))
            }
            parts.append((item.number, part))
        }
        for item in parts.dropLast() where item.part.size < Self.minimumPartSize {
            return .failure(.tooSmall(number: item.number, size: item.part.size))
        }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(parts.reduce(0) { $0 + $1.part.size })
        var crc: UInt64 = 0
        var md5s: [UInt8] = []
        for item in parts {
            bytes += try partContents(uploadID: record.uploadID, number: item.number)
            crc = CRC64.combine(crc, item.part.crc64, secondLength: Int64(item.part.size))
            md5s += Self.bytes(fromHex: item.part.md5)
        }
        let etag = Digest.hash(.md5, md5s).hexString.uppercased() + "-\(parts.count)"
        return .success(AssembledObject(bytes: bytes, etag: etag, crc64: crc))
    }

    /// Forgets an upload and its parts (after Complete or Abort). False if it was not there.
    @discardableResult
    mutating func finish(uploadID: String) -> Bool {
        guard uploads.removeValue(forKey: uploadID) != nil else { return false }
        partBytes[uploadID] = nil
        if let dir = dataDirectory {
            try? FileManager.default.removeItem(atPath: Self.uploadPath(dir, uploadID))
        }
        return true
    }

    /// Forgets every upload (`POST /_emulator/reset`).
    mutating func removeAll() {
        uploads = [:]
        partBytes = [:]
        if let dir = dataDirectory { try? FileManager.default.removeItem(atPath: dir + "/multipart") }
    }

    private func partContents(uploadID: String, number: Int) throws -> [UInt8] {
        if let dir = dataDirectory {
            return [UInt8](try Data(contentsOf: URL(fileURLWithPath: Self.partPath(dir, uploadID, number))))
        }
        return partBytes[uploadID]?[number] ?? []
    }

    private static func uploadPath(_ dir: String, _ uploadID: String) -> String { "\(dir)/multipart/\(uploadID)" }
    private static func partPath(_ dir: String, _ uploadID: String, _ number: Int) -> String {
        "\(uploadPath(dir, uploadID))/\(number)"
    }

    /// `"ABC"` -> `ABC`; anything else as it is.
    static func unquoted(_ etag: String) -> String {
        etag.count >= 2 && etag.hasPrefix("\"") && etag.hasSuffix("\"") ? String(etag.dropFirst().dropLast()) : etag
    }

    private static func bytes(fromHex hex: String) -> [UInt8] {
        var out: [UInt8] = []
        var iterator = hex.utf8.makeIterator()
        while let high = iterator.next(), let low = iterator.next() {
            func value(_ c: UInt8) -> UInt8 { c <= 0x39 ? c - 0x30 : (c | 0x20) - 0x61 + 10 }
            out.append(value(high) << 4 | value(low))
        }
        return out
    }
}
