import AltiCore
import Foundation

/// A file that grows while it is read, as a photo still being copied from a card does: the
/// first read of its bytes appends 4 KiB of zeros to `path`, so the size and mtime after the read
/// differ from those before it.
public final class GrowingFile: ReadableFile {
    let inner: any ReadableFile
    let path: String
    var grown = false

    public init(inner: any ReadableFile, path: String) {
        self.inner = inner
        self.path = path
    }

    public func read(into buffer: UnsafeMutableRawBufferPointer) throws(OSError) -> Int {
        let n = try inner.read(into: buffer)
        if !grown, let handle = FileHandle(forWritingAtPath: path) {
            grown = true
            handle.seekToEndOfFile()
            handle.write(Data(repeating: 0, count: 4096))
            handle.closeFile()
        }
        return n
    }

    public func read(at offset: Int64, count: Int) throws(OSError) -> [UInt8] { try inner.read(at: offset, count: count) }
    public func stat() throws(OSError) -> FileStat { try inner.stat() }
}
