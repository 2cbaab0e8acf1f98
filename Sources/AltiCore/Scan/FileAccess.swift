import Foundation

#if canImport(Glibc)
import Glibc
/// The C `struct stat` of the platform's libc.
public typealias SystemStat = Glibc.stat
@inline(__always) func systemOpen(_ path: String, _ flags: Int32) -> Int32 { Glibc.open(path, flags) }
@inline(__always) func systemStat(_ path: String, _ st: inout SystemStat) -> Int32 { stat(path, &st) }
@inline(__always) func systemRead(_ fd: Int32, _ buffer: UnsafeMutableRawPointer?, _ count: Int) -> Int {
    Glibc.read(fd, buffer, count)
}
#elseif canImport(Darwin)
import Darwin
/// The C `struct stat` of the platform's libc.
public typealias SystemStat = Darwin.stat
@inline(__always) func systemOpen(_ path: String, _ flags: Int32) -> Int32 { Darwin.open(path, flags) }
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

/// An OS error with the call that failed, rendered "Permission denied (EACCES)".
public struct OSError: Error, Sendable, Equatable, CustomStringConvertible {
    public let code: Int32
    public let operation: String

    public init(_ code: Int32, _ operation: String) {
        self.code = code
        self.operation = operation
    }

    public static func current(_ operation: String) -> OSError { OSError(errno, operation) }

    public var message: String { String(cString: strerror(code)) }
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
}

/// `FileReading` over POSIX `open`/`read`/`pread`.
public struct POSIXFileReading: FileReading {
    public init() {}

    public func open(_ path: String) throws(OSError) -> any ReadableFile {
        let fd = systemOpen(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        if fd < 0 { throw OSError.current("open") }
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
