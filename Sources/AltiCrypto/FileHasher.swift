import Foundation

/// Streams a file (or a byte range of it) through a digest in fixed-size chunks, so memory
/// stays bounded whatever the file size.
public enum FileHasher {
    public static let chunkSize = 1 << 20

    /// Returns the lower-case hex digest and the number of bytes read.
    /// Throws the POSIX error of `open`/`read`.
    public static func hash(path: String, algorithm: DigestAlgorithm = .sha1,
                            onChunk: ((Int) -> Void)? = nil) throws -> (hex: String, bytes: Int64) {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        defer { close(fd) }
        let digest = StreamingDigest(algorithm)
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: chunkSize, alignment: 16)
        defer { buffer.deallocate() }
        var total: Int64 = 0
        while true {
            let n = read(fd, buffer.baseAddress, chunkSize)
            if n < 0 {
                if errno == EINTR { continue }
                throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO)
            }
            if n == 0 { break }
            digest.update(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
            total += Int64(n)
            onChunk?(n)
        }
        return (digest.finalize().hexString, total)
    }
}
