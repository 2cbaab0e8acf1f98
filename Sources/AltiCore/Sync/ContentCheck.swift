import AltiCrypto
import Foundation

/// Checks an upload's bytes against the checksum the scan recorded, as they stream out: every
/// byte sent is hashed once, and the read that would hand over the last bytes compares the
/// digest first. On a mismatch (the file or archive was replaced under alti with the same size
/// and mtime, or changed mid-upload) that read fails instead, so the store never receives the
/// whole body and nothing is recorded as stored. One check per image for the whole sync: a
/// retried PUT, a renewed grant or an OSS part re-read does not hash those bytes twice; a part
/// skipped on resume is read locally to keep the digest whole.
public final class ContentCheck: @unchecked Sendable {
    public let expectedSHA1: String
    public let size: Int64
    private let lock = NSLock()
    /// Made when the first byte is hashed and dropped once the verdict is in: every image of a
    /// sync has its check from the start, and 100,000 OpenSSL contexts made up front were 17 MB
    /// of a 214 MB peak heap although at most one per transfer in flight is ever in use.
    private var digest: StreamingDigest?
    /// Bytes `[0, hashedTo)` are in the digest.
    private var hashedTo: Int64 = 0
    /// Set once the last byte was hashed: whether the bytes matched.
    private var verdict: Bool?

    public init(expectedSHA1: String, size: Int64) {
        self.expectedSHA1 = expectedSHA1
        self.size = size
    }

    /// Whether the bytes were found not to match (the image must be hashed again).
    public var mismatched: Bool { lock.withLock { verdict == false } }

    static let mismatchMessage = "its bytes no longer match the checksum the scan recorded"

    /// Where the digest stands: bytes before this offset are hashed.
    var hashedOffset: Int64 { lock.withLock { hashedTo } }

    /// Takes bytes read at `offset` (not past `hashedOffset`); throws if they complete the image
    /// and do not hash to the recorded checksum, or if a mismatch was already found.
    func observe(_ bytes: UnsafeRawBufferPointer, at offset: Int64) throws(OSError) {
        lock.lock()
        defer { lock.unlock() }
        if verdict == false { throw OSError(EIO, Self.mismatchMessage) }
        let end = offset + Int64(bytes.count)
        guard verdict == nil, end > hashedTo, offset <= hashedTo else { return }
        let fresh = min(end, size) - hashedTo
        guard fresh > 0 else { return }
        let skip = Int(hashedTo - offset)
        let digest = self.digest ?? StreamingDigest(.sha1)
        self.digest = digest
        digest.update(UnsafeRawBufferPointer(rebasing: bytes[skip..<(skip + Int(fresh))]))
        hashedTo += fresh
        if hashedTo == size {
            verdict = digest.finalize().hexString == expectedSHA1
            self.digest = nil
            if verdict == false { throw OSError(EIO, Self.mismatchMessage) }
        }
    }
}

extension ContentCheck {
    func observe(_ bytes: [UInt8], at offset: Int64) throws(OSError) {
        let failure = bytes.withUnsafeBytes { raw -> OSError? in
            do throws(OSError) { try observe(raw, at: offset) } catch { return error }
            return nil
        }
        if let failure { throw failure }
    }
}

/// A source file whose reads go through its image's `ContentCheck`.
final class CheckedFile: ReadableFile {
    let inner: any ReadableFile
    let check: ContentCheck
    private var position: Int64 = 0

    init(_ inner: any ReadableFile, check: ContentCheck) {
        self.inner = inner
        self.check = check
    }

    /// Hashes what lies between the digest and `offset` (parts stored by an earlier run).
    private func catchUp(to offset: Int64) throws(OSError) {
        while case let from = check.hashedOffset, from < offset {
            let bytes = try inner.read(at: from, count: Int(min(offset - from, 1 << 20)))
            if bytes.isEmpty { return }
            try check.observe(bytes, at: from)
        }
    }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws(OSError) -> Int {
        try catchUp(to: position)
        let n = try inner.read(into: buffer)
        try check.observe(UnsafeRawBufferPointer(rebasing: buffer[0..<n]), at: position)
        position += Int64(n)
        return n
    }

    func read(at offset: Int64, count: Int) throws(OSError) -> [UInt8] {
        try catchUp(to: offset)
        let bytes = try inner.read(at: offset, count: count)
        try check.observe(bytes, at: offset)
        return bytes
    }

    func stat() throws(OSError) -> FileStat { try inner.stat() }
}
