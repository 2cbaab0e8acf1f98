internal import CLibArchive
import Foundation

/// Writes archives through libarchive, for tests and benchmarks that need survey exports in every
/// format alti reads (alti itself never writes an archive).
public enum ArchiveWriter {
    public enum Format: String, Sendable, CaseIterable {
        case zip, sevenZip = "7z", tar, tarGzip = "tar.gz", tarBzip2 = "tar.bz2", tarXz = "tar.xz", tarZstd = "tar.zst"
    }

    /// Writes `members` (name in the archive → file on disk) to `path`, streaming each file;
    /// `passphrase` encrypts a zip's members (ZipCrypto), for tests of encrypted exports.
    public static func write(_ path: String, format: Format, members: [(name: String, file: String)],
                             passphrase: String? = nil) throws(ArchiveError) {
        // Names are UTF-8; in the C locale libarchive has no form for them (see ArchiveReader).
        let previous = ArchiveReader.utf8Locale.map { uselocale($0) }
        defer { if let previous { uselocale(previous) } }
        guard let handle = archive_write_new() else { throw ArchiveError(archive: path, message: "cannot allocate a writer") }
        defer { archive_write_free(handle) }
        func check(_ status: Int32) throws(ArchiveError) {
            if status != ARCHIVE_OK, status != ARCHIVE_WARN {
                throw ArchiveError(archive: path, message: archive_error_string(handle).map { String(cString: $0) } ?? "write failed")
            }
        }
        switch format {
        case .zip: try check(archive_write_set_format_zip(handle))
        case .sevenZip: try check(archive_write_set_format_7zip(handle))
        default: try check(archive_write_set_format_pax_restricted(handle))
        }
        if let passphrase, format == .zip {
            try check(archive_write_set_options(handle, "zip:encryption=zipcrypt"))
            try check(archive_write_set_passphrase(handle, passphrase))
        }
        switch format {
        case .tarGzip: try check(archive_write_add_filter_gzip(handle))
        case .tarBzip2: try check(archive_write_add_filter_bzip2(handle))
        case .tarXz: try check(archive_write_add_filter_xz(handle))
        case .tarZstd: try check(archive_write_add_filter_zstd(handle))
        default: break
        }
        try check(archive_write_open_filename(handle, path))
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 16)
        defer { buffer.deallocate() }
        for member in members {
            guard let input = FileHandle(forReadingAtPath: member.file) else {
                throw ArchiveError(archive: path, member: member.name, message: "cannot read \(member.file)")
            }
            defer { try? input.close() }
            let attributes = try? FileManager.default.attributesOfItem(atPath: member.file)
            let size = (attributes?[.size] as? NSNumber)?.int64Value ?? 0
            guard let entry = archive_entry_new() else { throw ArchiveError(archive: path, message: "cannot allocate an entry") }
            defer { archive_entry_free(entry) }
            archive_entry_set_pathname_utf8(entry, member.name)
            archive_entry_set_size(entry, la_int64_t(size))
            archive_entry_set_filetype(entry, 0o100000)  // AE_IFREG (a macro Swift does not import)
            archive_entry_set_perm(entry, 0o644)
            archive_entry_set_mtime(entry, time_t(Date().timeIntervalSince1970) - 3600, 0)
            try check(archive_write_header(handle, entry))
            while true {
                let data = input.readData(ofLength: buffer.count)
                if data.isEmpty { break }
                let written = data.withUnsafeBytes { archive_write_data(handle, $0.baseAddress, $0.count) }
                if written < 0 { try check(Int32(written)) }
            }
        }
        try check(archive_write_close(handle))
    }
}
