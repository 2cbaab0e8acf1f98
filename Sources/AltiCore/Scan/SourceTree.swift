import Foundation

/// Where images come from: a tree of entries that can be walked, and whose entries can be opened
/// (again and again: every hash pass and every upload attempt opens anew) as byte streams.
/// A folder on disk is the first kind; archive members (zip, tar read in place) are the next, and
/// they land here, behind the same three calls, without the scan or the uploads changing.
public protocol SourceTree: Sendable {
    /// The absolute path the user named (the folder, later the archive).
    var root: String { get }
    /// Every regular entry, sorted by path, with what was skipped and why.
    func walk() throws(AltiError) -> WalkResult
    /// Opens one entry (a path relative to the root) for reading, from its start.
    func open(_ path: String) throws(OSError) -> any ReadableFile
    /// The entry's current stat facts, to tell whether it changed since the scan.
    func stat(_ path: String) throws(OSError) -> FileStat
    /// How an entry is named in messages.
    func displayPath(_ path: String) -> String
    /// What the manifest records about the source itself.
    var source: Manifest.Source { get }
    /// The entries a sync is about to upload, in the order it will open them: a tree that can
    /// only be read forward (a tar.gz) serves them in that order instead of skipping one that
    /// is a moment late (which would cost a read from the archive's start).
    func willUpload(_ paths: [String])
}

extension SourceTree {
    public func willUpload(_ paths: [String]) {}
}

/// A folder on disk: walked without following symlinks (`TreeWalker`), read through POSIX
/// `open`/`read` (or an injected `FileReading`, for fault-injection tests).
public struct FolderTree: SourceTree {
    public let root: String
    public let reading: any FileReading

    public init(root: String, reading: any FileReading = POSIXFileReading()) {
        self.root = root
        self.reading = reading
    }

    public func walk() throws(AltiError) -> WalkResult { try TreeWalker.walk(root: root) }

    /// `path` is recorded (`RecordedPath`): opened by the bytes it names, so a name that is not
    /// valid UTF-8 is opened as it is on disk.
    public func open(_ path: String) throws(OSError) -> any ReadableFile { try reading.open(bytes: absoluteBytes(path)) }

    public func stat(_ path: String) throws(OSError) -> FileStat {
        var st = SystemStat()
        guard lstatPath(absoluteBytes(path), &st) == 0 else { throw OSError.current("stat") }
        return FileStat(st)
    }

    /// The recorded (escaped) form: valid UTF-8, and names one file.
    public func displayPath(_ path: String) -> String { absolute(path) }

    public var source: Manifest.Source { Manifest.Source(root: root, kind: "folder") }

    func absolute(_ path: String) -> String { root == "/" ? "/" + path : root + "/" + path }

    /// The path on disk: the root as given, then the bytes the recorded relative path names.
    func absoluteBytes(_ path: String) -> [UInt8] {
        (root == "/" ? [] : Array(root.utf8)) + [0x2F] + RecordedPath.bytes(path)
    }
}
