import Foundation

#if canImport(Glibc)
import Glibc
/// The C `struct stat` of the platform's libc.
public typealias SystemStat = Glibc.stat
@inline(__always) func systemOpen(_ path: String, _ flags: Int32) -> Int32 { Glibc.open(path, flags) }
@inline(__always) func systemOpen(_ path: UnsafePointer<CChar>, _ flags: Int32) -> Int32 { Glibc.open(path, flags) }
@inline(__always) func systemStat(_ path: String, _ st: inout SystemStat) -> Int32 { stat(path, &st) }
@inline(__always) func systemRead(_ fd: Int32, _ buffer: UnsafeMutableRawPointer?, _ count: Int) -> Int {
    Glibc.read(fd, buffer, count)
}
#elseif canImport(Darwin)
import Darwin
/// The C `struct stat` of the platform's libc.
public typealias SystemStat = Darwin.stat
@inline(__always) func systemOpen(_ path: String, _ flags: Int32) -> Int32 { Darwin.open(path, flags) }
@inline(__always) func systemOpen(_ path: UnsafePointer<CChar>, _ flags: Int32) -> Int32 { Darwin.open(path, flags) }
@inline(__always) func systemStat(_ path: String, _ st: inout SystemStat) -> Int32 { stat(path, &st) }
@inline(__always) func systemRead(_ fd: Int32, _ buffer: UnsafeMutableRawPointer?, _ count: Int) -> Int {
    Darwin.read(fd, buffer, count)
}
#endif

/// The stat facts the manifest records and the incremental re-scan compares.
public struct FileStat: Sendable, Equatable {
    public var size: Int64
    public var mtimeNs: Int64
    public var inode: UInt64
    public var device: UInt64

    public init(size: Int64, mtimeNs: Int64, inode: UInt64, device: UInt64 = 0) {
        self.size = size
        self.mtimeNs = mtimeNs
        self.inode = inode
        self.device = device
    }

    init(_ st: SystemStat) {
        size = Int64(st.st_size)
        #if canImport(Darwin)
        mtimeNs = Int64(st.st_mtimespec.tv_sec) * 1_000_000_000 + Int64(st.st_mtimespec.tv_nsec)
        #else
        mtimeNs = Int64(st.st_mtim.tv_sec) * 1_000_000_000 + Int64(st.st_mtim.tv_nsec)
        #endif
        inode = UInt64(st.st_ino)
        device = UInt64(st.st_dev)
    }
}

/// Calls `body` with `path` as a NUL-terminated C string: a path that is not valid UTF-8 (a
/// file name as the OS gave it) cannot travel as a Swift `String`.
func withCPath<T>(_ path: [UInt8], _ body: (UnsafePointer<CChar>) -> T) -> T {
    (path + [0]).withUnsafeBufferPointer { bytes in
        bytes.withMemoryRebound(to: CChar.self) { body($0.baseAddress!) }
    }
}

/// `open(2)` for a path of any length. The kernel refuses a path of PATH_MAX (4096) bytes or
/// more with ENAMETOOLONG, but a folder can be nested deeper than that (each name up to 255
/// bytes): such a path is reached one folder at a time with `openat`, as `find` and `rm -r` do.
/// Returns -1 with `errno` set on failure, as `open` does.
func openPath(_ path: [UInt8], _ flags: Int32) -> Int32 {
    if path.count < Int(PATH_MAX) { return withCPath(path) { systemOpen($0, flags) } }
    return withParent(path) { folder, name in withCPath(name) { openat(folder, $0, flags) } }
}

/// `lstat` for a path of any length (see `openPath`).
func lstatPath(_ path: [UInt8], _ st: inout SystemStat) -> Int32 {
    if path.count < Int(PATH_MAX) { return withCPath(path) { lstat($0, &st) } }
    return withParent(path) { folder, name in withCPath(name) { fstatat(folder, $0, &st, AT_SYMLINK_NOFOLLOW) } }
}

/// Opens the folder that holds `path`'s last component, one component at a time, and calls
/// `body` with it and that last name; -1 (errno set) if a folder on the way cannot be opened.
private func withParent(_ path: [UInt8], _ body: (Int32, [UInt8]) -> Int32) -> Int32 {
    let components = path.split(separator: 0x2F, omittingEmptySubsequences: true).map(Array.init)
    guard let name = components.last else { errno = ENOENT; return -1 }
    var folder = withCPath(path.first == 0x2F ? [0x2F] : [0x2E]) {
        systemOpen($0, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
    }
    for component in components.dropLast() where folder >= 0 {
        let next = withCPath(component) { openat(folder, $0, O_RDONLY | O_DIRECTORY | O_CLOEXEC) }
        let saved = errno
        close(folder)
        errno = saved
        folder = next
    }
    guard folder >= 0 else { return -1 }
    let result = body(folder, name)
    let saved = errno
    close(folder)
    errno = saved
    return result
}

/// An OS error with the call that failed, rendered "Permission denied (EACCES)".
public struct OSError: Error, Sendable, Equatable, CustomStringConvertible {
    public let code: Int32
    public let operation: String
    /// Said instead of the code's `strerror` when alti itself refused (a FIFO where a file was).
    public var reason: String?

    public init(_ code: Int32, _ operation: String, reason: String? = nil) {
        self.code = code
        self.operation = operation
        self.reason = reason
    }

    public static func current(_ operation: String) -> OSError { OSError(errno, operation) }

    /// Not a regular file (a FIFO, device or socket put where a file was): never read.
    public static func notRegular(_ operation: String) -> OSError {
        OSError(EINVAL, operation, reason: "not a regular file (a FIFO, device or socket); it is never read")
    }

    public var message: String { reason ?? String(cString: strerror(code)) }
    public var description: String { "\(operation): \(message) (errno \(code))" }
}

/// A file opened for reading. Not Sendable: it belongs to the task that opened it.
public protocol ReadableFile: AnyObject {
    /// Reads sequentially into `buffer`; returns 0 at end of file.
    func read(into buffer: UnsafeMutableRawBufferPointer) throws(OSError) -> Int
    /// Reads up to `count` bytes at `offset` without moving the sequential position.
    func read(at offset: Int64, count: Int) throws(OSError) -> [UInt8]
    /// The stat of the open file.
    func stat() throws(OSError) -> FileStat
}

/// How the scan opens files: the real file system in production, a fault injector in tests.
public protocol FileReading: Sendable {
    /// Opens a regular file without following a symlink in its last component.
    func open(_ path: String) throws(OSError) -> any ReadableFile
    /// The same for a path given as the OS's bytes (a name that is not valid UTF-8).
    func open(bytes path: [UInt8]) throws(OSError) -> any ReadableFile
}

extension FileReading {
    /// Readers that only know `String` paths (fault injectors in tests) get valid UTF-8 paths as
    /// they are; any other path can only be opened by a reader that implements this.
    public func open(bytes path: [UInt8]) throws(OSError) -> any ReadableFile {
        try open(String(decoding: path, as: UTF8.self))
    }
}

/// `FileReading` over POSIX `open`/`read`/`pread`.
public struct POSIXFileReading: FileReading {
    public init() {}

    public func open(_ path: String) throws(OSError) -> any ReadableFile { try open(bytes: Array(path.utf8)) }

    /// `O_NONBLOCK`: the walk never hands over anything but regular files, but one can be swapped
    /// for a FIFO between its stat and this open, and opening a FIFO for reading blocks until a
    /// writer comes. Non-blocking, the open returns at once and `fstat` refuses it; for a regular
    /// file the flag changes nothing.
    public func open(bytes path: [UInt8]) throws(OSError) -> any ReadableFile {
        let fd = openPath(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK)
        if fd < 0 { throw OSError.current("open") }
        var st = SystemStat()
        if fstat(fd, &st) != 0 {
            let error = OSError.current("fstat")
            close(fd)
            throw error
        }
        guard (st.st_mode & S_IFMT) == S_IFREG else {
            close(fd)
            throw OSError.notRegular("open")
        }
        #if os(Linux)
        _ = posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL)
        #endif
        return POSIXFile(fd)
    }
}

final class POSIXFile: ReadableFile {
    private let fd: Int32

    init(_ fd: Int32) { self.fd = fd }
    deinit { close(fd) }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws(OSError) -> Int {
        while true {
            let n = systemRead(fd, buffer.baseAddress, buffer.count)
            if n >= 0 { return n }
            if errno != EINTR { throw OSError.current("read") }
        }
    }

    func read(at offset: Int64, count: Int) throws(OSError) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        var done = 0
        while done < count {
            let n = out.withUnsafeMutableBytes { p in
                pread(fd, p.baseAddress! + done, count - done, off_t(offset) + off_t(done))
            }
            if n < 0 {
                if errno == EINTR { continue }
                throw OSError.current("read")
            }
            if n == 0 { break }
            done += n
        }
        out.removeSubrange(done...)
        return out
    }

    func stat() throws(OSError) -> FileStat {
        var st = SystemStat()
        if fstat(fd, &st) != 0 { throw OSError.current("fstat") }
        return FileStat(st)
    }
}
