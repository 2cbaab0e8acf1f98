import Foundation

/// The one way alti replaces a whole file (manifest, config, report): a temp file in the same
/// folder, every byte written, fsync, rename over the target, fsync of the folder. A reader sees
/// the old file or the new one, never half of one, and a failure before the rename (a full disk,
/// most often) leaves the old file byte for byte and no temp file behind.
enum DurableFile {
    /// Why a replace failed: the OS error, and whether the new file was already renamed into
    /// place (then only the folder's fsync failed: the data is whole, its name may not survive a
    /// power cut).
    struct Failure: Error {
        let code: Int32
        let renamed: Bool
    }

    /// Replaces `target` with `bytes`.
    /// - Parameters:
    ///   - mode: the new file's mode, exactly (fchmod after open: the umask only narrows).
    ///   - beforeRename: runs after the temp file is fsynced, just before the rename (the crash
    ///     matrix's hook).
    static func replace(_ target: String, with bytes: some ContiguousBytes, mode: mode_t,
                        beforeRename: () -> Void = {}) throws(Failure) {
        try replace(target, mode: mode, beforeRename: beforeRename) { write in bytes.withUnsafeBytes(write) }
    }

    /// Replaces `target` with what `produce` hands to its `write` in pieces (so a large file,
    /// a 100,000-entry manifest, is never held whole in memory); `write` returns false on an
    /// error (errno set), and `produce` then stops and returns false.
    static func replace(_ target: String, mode: mode_t, beforeRename: () -> Void = {},
                        producing produce: (_ write: (UnsafeRawBufferPointer) -> Bool) -> Bool) throws(Failure) {
        let folder = (target as NSString).deletingLastPathComponent
        let name = (target as NSString).lastPathComponent
        let temp = (folder.isEmpty ? "." : folder) + "/.\(name).tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        // close() and unlink() may clobber errno: the error is taken first.
        func fail(closing fd: Int32? = nil) -> Failure {
            let code = errno
            if let fd { close(fd) }
            unlink(temp)
            return Failure(code: code, renamed: false)
        }
        let fd = open(temp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        if fd < 0 { throw fail() }
        if fchmod(fd, mode) != 0 { throw fail(closing: fd) }
        let ok = produce { raw -> Bool in
            var written = 0
            while written < raw.count {
                let n = write(fd, raw.baseAddress! + written, raw.count - written)
                if n < 0 {
                    if errno == EINTR { continue }
                    return false
                }
                written += n
            }
            return true
        }
        if !ok { throw fail(closing: fd) }
        if fsync(fd) != 0 { throw fail(closing: fd) }
        if close(fd) != 0 { throw fail() }
        beforeRename()
        if rename(temp, target) != 0 { throw fail() }
        // The rename is in the folder's entries: without this fsync a power cut could bring back
        // the old name (the data is safe either way, the temp file's blocks were fsynced).
        let dirfd = open(folder.isEmpty ? "." : folder, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dirfd >= 0 {
            defer { close(dirfd) }
            if fsync(dirfd) != 0 { throw Failure(code: errno, renamed: true) }
        }
    }
}
