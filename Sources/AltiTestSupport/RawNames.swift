import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Files whose names are bytes a `String` path cannot carry (not valid UTF-8), or whose paths are
/// longer than PATH_MAX: made one folder at a time with `mkdirat`/`openat`, as a camera card or
/// a Windows copy can leave them.
extension TempTree {
    /// Writes `bytes` at `components` (folders, then the file name, each as raw bytes) under the
    /// tree, creating the folders, with the file's mtime `secondsAgo` in the past (so the racy
    /// guard of the scan stays out of the way). Returns nothing: the path may not be a `String`.
    public func writeRaw(_ components: [[UInt8]], _ bytes: [UInt8], secondsAgo: Int = 3600) throws {
        var folder = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard folder >= 0 else { throw RunError("open \(path): errno \(errno)") }
        defer { close(folder) }
        for component in components.dropLast() {
            let made = Self.withC(component) { mkdirat(folder, $0, 0o755) }
            if made != 0, errno != EEXIST { throw RunError("mkdirat: errno \(errno)") }
            let next = Self.withC(component) { openat(folder, $0, O_RDONLY | O_DIRECTORY | O_CLOEXEC) }
            guard next >= 0 else { throw RunError("openat folder: errno \(errno)") }
            close(folder)
            folder = next
        }
        let name = components.last!
        let fd = Self.withC(name) { openat(folder, $0, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644) }
        guard fd >= 0 else { throw RunError("openat file: errno \(errno)") }
        #if canImport(Glibc)
        let written = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        #else
        let written = bytes.withUnsafeBytes { Darwin.write(fd, $0.baseAddress, $0.count) }
        #endif
        close(fd)
        guard written == bytes.count else { throw RunError("short write") }
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        var times = [timespec(tv_sec: now.tv_sec - secondsAgo, tv_nsec: 0), timespec(tv_sec: now.tv_sec - secondsAgo, tv_nsec: 0)]
        let aged = Self.withC(name) { utimensat(folder, $0, &times, AT_SYMLINK_NOFOLLOW) }
        guard aged == 0 else { throw RunError("utimensat: errno \(errno)") }
    }

    /// Removes the tree with `rm -rf`, which handles names that are not UTF-8 and paths longer
    /// than PATH_MAX (`remove()` goes through Foundation, which does neither).
    public func removeRaw() {
        if ProcessInfo.processInfo.environment["KEEP_TEMP"] == "1" { return }
        _ = try? Run.process("rm", ["-rf", path])
    }

    static func withC<T>(_ bytes: [UInt8], _ body: (UnsafePointer<CChar>) -> T) -> T {
        (bytes + [0]).withUnsafeBufferPointer { $0.withMemoryRebound(to: CChar.self) { body($0.baseAddress!) } }
    }
}
