import Foundation

/// A file with an entry whose verdict is not ok.
public struct FileProblem: Codable, Sendable, Equatable {
    public var path: String
    public var verdict: Verdict
    public var detail: String?
}

/// What one scan of one source found and did; rendered as the summary (text or `--json`).
public struct ScanReport: Codable, Sendable, Equatable {
    public var root: String
    public var manifest: String
    /// The folder was not writable; the manifest lives under the state folder.
    public var manifestIsFallback: Bool
    /// Where an unreadable manifest was moved by `--rebuild`.
    public var movedAside: String?
    /// Present entries with verdict ok (duplicates included).
    public var images: Int
    public var imagesByType: [String: Int]
    /// Bytes of those images.
    public var totalBytes: Int64
    /// Distinct checksums among them: what a sync uploads.
    public var uniqueImages: Int
    /// Entries linked to an earlier entry with the same checksum.
    public var duplicates: Int
    /// As the service counts them: per unique image `max(width*height, 2073600) / 1e9`.
    public var gigapixels: Double
    /// Present entries that are not usable, with reasons, in path order.
    public var problems: [FileProblem]
    public var problemsByVerdict: [String: Int]
    /// Files that are neither images nor named as images (.txt, .csv, .xml, ...).
    public var otherFilesSkipped: Int
    /// Hidden files and folders and OS junk.
    public var hiddenOrJunkSkipped: Int
    /// Symbolic links (never followed).
    public var symlinksSkipped: Int
    /// FIFOs, sockets, devices.
    public var specialFilesSkipped: Int
    public var unreadableFolders: [PathProblem]
    /// Unreadable files that are not named as images (no manifest entry).
    public var unreadableOtherFiles: [PathProblem]
    /// Files read and hashed in this run.
    public var filesHashed: Int
    /// Entries reused from the previous manifest (size, mtime, inode unchanged; not racy).
    public var filesReused: Int
    public var bytesHashed: Int64
    /// Entries of files that disappeared (kept, server facts included).
    public var missing: Int
    public var seconds: Double
    /// Archives found among the source's files (relative paths): a folder's are read in place as
    /// sources of their own (unless `--no-archives`); an archive's own are listed, never opened.
    public var archivesFound: [String] = []
    /// "folder" or "archive".
    public var kind = "folder"
    /// Files whose size or mtime changed while they were read (a copy still being written): not
    /// recorded this time (a previous entry stands as it was); the run exits 75 and the next one
    /// reads them again.
    public var changing: [String] = []
    /// Files removed or renamed between the walk and their read: not recorded (a previous entry is
    /// kept, marked missing). Named; no effect on the exit code (nothing is left to do).
    public var vanished: [String] = []
    /// FIFOs, sockets and devices by path (never opened): `specialFilesSkipped` of them.
    public var specialFiles: [String] = []
    /// Of `images`, those whose EXIF gives a GPS position, and those with a capture time.
    public var imagesWithGPS = 0
    public var imagesWithCaptureTime = 0
    /// Unchanged images whose EXIF was read from their first bytes (not hashed again) because the
    /// manifest was written before EXIF was recorded; once per image.
    public var exifBackfilled = 0

    /// The service's gigapixel count for one image.
    public static func gigapixels(width: Int?, height: Int?) -> Double {
        Double(max((width ?? 0) * (height ?? 0), 2_073_600)) / 1e9
    }

    /// True when there were files to read and not one of them could be read.
    public var nothingReadable: Bool {
        let unreadableEntries = problemsByVerdict[Verdict.unreadable.rawValue] ?? 0
        let readable = images + (problems.count - unreadableEntries) + otherFilesSkipped
        return unreadableEntries + unreadableOtherFiles.count > 0 && readable == 0
    }
}

/// Progress of the hashing phase, reported often; renderers throttle.
public struct ScanProgress: Sendable, Equatable {
    public var root: String
    public var filesDone: Int
    public var filesTotal: Int
    public var bytesDone: Int64
    public var bytesTotal: Int64

    public init(root: String, filesDone: Int, filesTotal: Int, bytesDone: Int64, bytesTotal: Int64) {
        self.root = root
        self.filesDone = filesDone
        self.filesTotal = filesTotal
        self.bytesDone = bytesDone
        self.bytesTotal = bytesTotal
    }
}
