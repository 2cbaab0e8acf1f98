internal import CLibArchive
import Foundation

public enum ArchiveLibrary {
    /// The libarchive version string, e.g. "libarchive 3.6.2".
    public static var version: String { String(cString: archive_version_string()) }

    /// How many times an archive was opened by this process (tests count re-reads).
    public static var opens: Int { openCounter.value }
    /// How many times the archive at `path` was opened by this process (tests running side by
    /// side each count their own archive).
    public static func opens(of path: String) -> Int { openCounter.value(of: path) }
    static let openCounter = Counter()

    final class Counter: @unchecked Sendable {
        private let lock = NSLock()
        private var count = 0
        private var byPath: [String: Int] = [:]
        var value: Int { lock.withLock { count } }
        func value(of path: String) -> Int { lock.withLock { byPath[path, default: 0] } }
        func increment(_ path: String) {
            lock.withLock {
                count += 1
                byPath[path, default: 0] += 1
            }
        }
    }
}

/// A failure reading an archive, naming the archive (and the member, when one is concerned).
public struct ArchiveError: Error, Sendable, Equatable, CustomStringConvertible {
    public var archive: String
    public var member: String?
    public var message: String

    public init(archive: String, member: String? = nil, message: String) {
        self.archive = archive
        self.member = member
        self.message = message
    }

    public var description: String {
        member.map { "\(archive): \($0): \(message)" } ?? "\(archive): \(message)"
    }
}

/// One entry of an archive as its header describes it.
public struct ArchiveMember: Sendable, Equatable {
    public enum Kind: Sendable, Equatable { case regular, directory, symlink, hardlink, other }

    /// The name as recorded, made safe to record and print (see `safePath`).
    public var path: String
    public var kind: Kind
    /// The member's size from its header; nil when the archive does not say (a zip written as a
    /// stream, before its data descriptor).
    public var size: Int64?
    public var mtimeNs: Int64
    public var isEncrypted: Bool
    /// Its position in the archive (0-based): with the archive's own stat, it identifies a member.
    public var index: Int

    /// A name safe to record: UTF-8 when it is (else each byte that is not as `%XX`), no leading
    /// `/` or `./`, `\` as `%5C`, a `..` segment as `%2E%2E`, `%` itself as `%25`. Nothing is ever
    /// written from an archive; this only keeps manifests and messages unambiguous.
    public static func safePath(_ raw: [UInt8]) -> String {
        func escape(_ byte: UInt8) -> String { String(format: "%%%02X", byte) }
        var text = ""
        if let decoded = String(validating: raw, as: UTF8.self) {
            for scalar in decoded.unicodeScalars {
                switch scalar {
                case "%": text += "%25"
                case "\\": text += "%5C"
                default: text.unicodeScalars.append(scalar)
                }
            }
        } else {
            for byte in raw {
                if byte < 0x80, byte != 0x25, byte != 0x5C { text.unicodeScalars.append(Unicode.Scalar(byte)) } else { text += escape(byte) }
            }
        }
        var segments = text.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
        segments.removeAll { $0 == "." }
        return segments.map { $0 == ".." ? "%2E%2E" : $0 }.joined(separator: "/")
    }
}

/// Reads an archive in place through libarchive: zip (zip64, streamed with data descriptors),
/// tar (ustar, pax, GNU), 7z, and any of them compressed (gzip, bzip2, xz, zstd), recognised by
/// content, not by name. One pass, forward only: `next()` moves to the next member, `read`
/// reads the current member's bytes. Not thread-safe: one reader belongs to one task.
public final class ArchiveReader {
    private let handle: OpaquePointer
    public let path: String
    private var current: ArchiveMember?
    private var index = -1
    /// The raw archive bytes the current member has consumed since its header, and the bytes it
    /// has produced: their ratio is what `read` judges. `rawPosition` is where the file was last.
    private var consumed: Int64 = 0
    private var produced: Int64 = 0
    private var rawPosition: Int64 = 0
    /// The current member's refusal, thrown again on every further read of it.
    private var refusal: ArchiveError?

    /// No survey image compresses anywhere near this well: a JPEG is already compressed, and a
    /// sensor's noise keeps even an uncompressed 16-bit TIFF to a few times. A member that inflates
    /// more is taken for a zip bomb and refused mid-read. libarchive gives no member's compressed
    /// size (an entry has only its uncompressed `size`), so the ratio is measured as it is read.
    public static let largestRatio: Int64 = 200
    /// Output below this is never judged, so small members and headers that compress well never
    /// trip the ratio. A deflate bomb (about 1000 times) is stopped after some 16 MiB of output.
    public static let ratioFloor: Int64 = 8 << 20
    /// libarchive reads the file in blocks of this size, and a decompressor takes its input a
    /// block at a time: a member's first bytes may be consumed before its header is. One block is
    /// added to what a member consumed, so read-ahead never makes a ratio.
    static let blockSize = 64 << 10

    public init(path: String) throws(ArchiveError) {
        guard let handle = archive_read_new() else {
            throw ArchiveError(archive: path, message: "libarchive could not allocate a reader")
        }
        self.handle = handle
        self.path = path
        archive_read_support_filter_all(handle)
        archive_read_support_format_all(handle)
        ArchiveLibrary.openCounter.increment(path)
        if archive_read_open_filename(handle, path, Self.blockSize) != ARCHIVE_OK {
            let message = Self.errorText(handle)
            archive_read_free(handle)
            throw ArchiveError(archive: path, message: message)
        }
    }

    deinit { archive_read_free(handle) }

    static func errorText(_ handle: OpaquePointer) -> String {
        archive_error_string(handle).map { String(cString: $0) } ?? "unreadable archive"
    }

    /// The archive's format as libarchive names it (e.g. "ZIP 2.0 (deflation)", "POSIX pax interchange format").
    public var formatName: String { archive_format_name(handle).map { String(cString: $0) } ?? "" }

    /// libarchive converts member names to the thread's locale; a process starts in the C locale,
    /// where a UTF-8 name (a zip's UTF-8 flag) has no form at all. Names are read under C.UTF-8.
    nonisolated(unsafe) static let utf8Locale: locale_t? = newlocale(LC_CTYPE_MASK, "C.UTF-8", nil)

    /// Moves to the next member; nil at the end. A corrupt or truncated archive throws.
    public func next() throws(ArchiveError) -> ArchiveMember? {
        let previous = Self.utf8Locale.map { uselocale($0) }
        defer { if let previous { uselocale(previous) } }
        var entry: OpaquePointer?
        let status = archive_read_next_header(handle, &entry)
        if status == ARCHIVE_EOF { current = nil; return nil }
        guard status == ARCHIVE_OK || status == ARCHIVE_WARN, let entry else {
            throw ArchiveError(archive: path, member: current?.path, message: Self.errorText(handle))
        }
        index += 1
        // -1: the last filter, the file itself; a stream-compressed archive is judged on its
        // compressed bytes. Reaching the next member of such a stream still inflates what is
        // left of a refused one (libarchive skips by reading); nothing of it is kept.
        rawPosition = archive_filter_bytes(handle, -1)
        consumed = 0
        produced = 0
        refusal = nil
        // UTF-8 first (zip's UTF-8 flag, pax headers): in the C locale a process starts in, the
        // locale form of a non-ASCII name is unavailable. The raw bytes otherwise (escaped later).
        var raw: [UInt8] = []
        for name in [archive_entry_pathname_utf8(entry), archive_entry_pathname(entry)] {
            guard let name else { continue }
            raw = Array(UnsafeBufferPointer(start: UnsafeRawPointer(name).assumingMemoryBound(to: UInt8.self), count: strlen(name)))
            break
        }
        let kind: ArchiveMember.Kind
        if archive_entry_hardlink(entry) != nil {
            kind = .hardlink
        } else {
            switch archive_entry_filetype(entry) & 0o170000 {
            case 0o100000: kind = .regular
            case 0o040000: kind = .directory
            case 0o120000: kind = .symlink
            default: kind = .other
            }
        }
        let member = ArchiveMember(
            path: ArchiveMember.safePath(raw), kind: kind,
            size: archive_entry_size_is_set(entry) != 0 ? Int64(archive_entry_size(entry)) : nil,
            mtimeNs: Int64(archive_entry_mtime(entry)) * 1_000_000_000 + Int64(archive_entry_mtime_nsec(entry)),
            isEncrypted: archive_entry_is_encrypted(entry) != 0, index: index)
        current = member
        return member
    }

    /// Reads the current member's bytes; 0 at its end. Corrupt data, a wrong password, a
    /// truncated archive or a member inflating beyond `largestRatio` throws, naming the member.
    public func read(into buffer: UnsafeMutableRawBufferPointer) throws(ArchiveError) -> Int {
        if let refusal { throw refusal }
        let n = archive_read_data(handle, buffer.baseAddress, buffer.count)
        if n < 0 {
            throw ArchiveError(archive: path, member: current?.path, message: Self.errorText(handle))
        }
        // Only forward moves count: 7z reads its header at the file's end, then seeks back to
        // the first member's data.
        let now = archive_filter_bytes(handle, -1)
        consumed += max(0, now - rawPosition)
        rawPosition = now
        produced += Int64(n)
        if produced > Self.ratioFloor, produced > Self.largestRatio * (consumed + Int64(Self.blockSize)) {
            let error = ArchiveError(archive: path, member: current?.path, message:
                "refused: it inflates more than \(Self.largestRatio) times (a zip bomb?); not inflated further")
            refusal = error
            throw error
        }
        return n
    }
}
