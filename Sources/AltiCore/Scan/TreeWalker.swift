import Foundation

/// A regular file found under a scanned root.
public struct WalkedFile: Sendable, Equatable {
    /// Relative to the root, "/" separators.
    public var path: String
    public var stat: FileStat

    /// The last path component.
    public var name: String {
        path.lastIndex(of: "/").map { String(path[path.index(after: $0)...]) } ?? path
    }
}

/// Everything the walk saw: the regular files, and what it left alone and why.
public struct WalkResult: Sendable, Equatable {
    /// Sorted by path.
    public var files: [WalkedFile] = []
    /// Hidden files and folders (name starts with "."), including `.alti` itself.
    public var hidden = 0
    /// OS junk: `.DS_Store`, `Thumbs.db`, `._*`, `desktop.ini`, `$RECYCLE.BIN`, `System Volume Information`.
    public var junk = 0
    /// Symbolic links are never followed (every target inside the root is scanned under its own path;
    /// anything outside the root is not touched; no loops are possible).
    public var symlinks: [String] = []
    /// FIFOs, sockets, devices: classified by `fstatat` without following links, never opened.
    public var special: [String] = []
    /// Folders that could not be listed, with the OS error.
    public var unreadableFolders: [PathProblem] = []
    /// Archive members that cannot be read (encrypted), with why.
    public var unreadableMembers: [PathProblem] = []
}

/// A path and what is wrong with it.
public struct PathProblem: Codable, Sendable, Equatable {
    public var path: String
    public var detail: String
    public init(path: String, detail: String) {
        self.path = path
        self.detail = detail
    }
}

/// Walks a folder recursively without following symlinks and without touching anything outside it.
public enum TreeWalker {
    static let junkNames: Set<String> = ["thumbs.db", "desktop.ini", "$recycle.bin", "system volume information",
                                         "ehthumbs.db"]

    /// True for names the walk skips: hidden (".x", so also ".DS_Store" and "._x") and OS junk.
    public static func isSkipped(_ name: String) -> Bool {
        name.hasPrefix(".") || junkNames.contains(name.lowercased())
    }

    /// The byte counts of the junk names: an ASCII name of another length is none of them, without
    /// the lower-casing (a `String` per file) the full check costs. A non-ASCII name may lower-case
    /// to another length (the Kelvin sign to "k"): it always gets the full check.
    static let junkNameLengths = Set(junkNames.map(\.utf8.count))

    static func isJunk(_ name: String) -> Bool {
        if !junkNameLengths.contains(name.utf8.count), name.utf8.allSatisfy({ $0 < 0x80 }) { return false }
        return junkNames.contains(name.lowercased())
    }

    /// Walks `root` (an absolute folder path). Throws `noInput` if the root itself cannot be listed.
    public static func walk(root: String) throws(AltiError) -> WalkResult {
        var result = WalkResult()
        var rootStat = SystemStat()
        guard withCPath(Array(root.utf8), { stat($0, &rootStat) }) == 0 else {
            throw AltiError(.noInput, "\(root): \(OSError.current("stat").message)")
        }
        guard (rootStat.st_mode & S_IFMT) == S_IFDIR else {
            throw AltiError(.noInput, "\(root) is not a folder; give the folder that holds the images")
        }
        var visited: Set<[UInt64]> = [[UInt64(rootStat.st_dev), UInt64(rootStat.st_ino)]]
        let rootBytes = Array(root.utf8)
        // (recorded relative path, its bytes, expected device and inode): each folder is read
        // completely and closed before its subfolders are opened, so open descriptors stay at one.
        // Names travel as the OS's bytes (opened by bytes, never through a `String`, which would
        // turn a non-UTF-8 name into another one) and are recorded escaped (`RecordedPath`).
        var pending: [(String, [UInt8], UInt64, UInt64)] = [("", [], UInt64(rootStat.st_dev), UInt64(rootStat.st_ino))]
        while let (relative, relativeBytes, device, inode) = pending.popLast() {
            let absolute = relative.isEmpty ? rootBytes : (root == "/" ? [] : rootBytes) + [0x2F] + relativeBytes
            let fd = openPath(absolute, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NONBLOCK | (relative.isEmpty ? 0 : O_NOFOLLOW))
            if fd < 0 {
                let error = OSError.current("open folder")
                if relative.isEmpty { throw AltiError(.noInput, "\(root): \(error.message)") }
                result.unreadableFolders.append(PathProblem(path: relative, detail: error.description))
                continue
            }
            var opened = SystemStat()
            // The folder was swapped for something else between listing and opening: leave it.
            guard fstat(fd, &opened) == 0, UInt64(opened.st_dev) == device, UInt64(opened.st_ino) == inode,
                  let dir = fdopendir(fd)
            else {
                close(fd)
                result.unreadableFolders.append(PathProblem(path: relative, detail: "changed while it was scanned"))
                continue
            }
            var subfolders: [(String, [UInt8], UInt64, UInt64)] = []
            while true {
                errno = 0
                guard let entry = readdir(dir) else {
                    if errno != 0 {
                        result.unreadableFolders.append(
                            PathProblem(path: relative, detail: OSError.current("readdir").description))
                    }
                    break
                }
                let nameBytes = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                    Array(raw.prefix { $0 != 0 })
                }
                if nameBytes == [0x2E] || nameBytes == [0x2E, 0x2E] { continue }
                if nameBytes.first == 0x2E {
                    result.hidden += 1
                    continue
                }
                let name = RecordedPath.escape(nameBytes)
                if isJunk(name) {
                    result.junk += 1
                    continue
                }
                let childPath = relative.isEmpty ? name : relative + "/" + name
                var st = SystemStat()
                // Classified by its own type (the link itself, not its target) before anything is
                // opened: only folders and regular files are ever opened.
                if withCPath(nameBytes, { fstatat(fd, $0, &st, AT_SYMLINK_NOFOLLOW) }) != 0 {
                    // Gone between readdir and stat, or not stat-able: report it as a file problem.
                    result.files.append(WalkedFile(path: childPath, stat: FileStat(size: -1, mtimeNs: 0, inode: 0)))
                    continue
                }
                switch st.st_mode & S_IFMT {
                case S_IFREG:
                    result.files.append(WalkedFile(path: childPath, stat: FileStat(st)))
                case S_IFDIR:
                    if visited.insert([UInt64(st.st_dev), UInt64(st.st_ino)]).inserted {
                        let childBytes = relative.isEmpty ? nameBytes : relativeBytes + [0x2F] + nameBytes
                        subfolders.append((childPath, childBytes, UInt64(st.st_dev), UInt64(st.st_ino)))
                    }
                case S_IFLNK:
                    result.symlinks.append(childPath)
                default:
                    result.special.append(childPath)
                }
            }
            closedir(dir)
            pending.append(contentsOf: subfolders.reversed())
        }
        result.files.sort { RecordedPath.precedes($0.path, $1.path) }
        result.symlinks.sort()
        result.special.sort()
        return result
    }
}
