// ArchiveReader lands with the archives issue; this module is the only importer of CLibArchive.
internal import CLibArchive

public enum ArchiveLibrary {
    /// The libarchive version string, e.g. "libarchive 3.6.2".
    public static var version: String { String(cString: archive_version_string()) }
}
