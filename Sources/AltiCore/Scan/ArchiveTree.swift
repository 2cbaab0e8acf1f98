import AltiArchive
import Foundation

/// An archive read in place (zip, tar, 7z, compressed or not), through `AltiArchive`: its image
/// members are walked and opened like files, nothing is ever extracted or written. A member is
/// opened by reading the archive from its start up to it (libarchive reads forward), so each open
/// costs a pass over what precedes the member: cheap for zip and 7z, which skip stored data, a
/// decompression for tar.gz (see DESIGN.md, "Archives").
public struct ArchiveTree: SourceTree {
    public let root: String
    /// No survey image is larger (a 200-megapixel 16-bit TIFF is 1.2 GB): a member that declares
    /// more is refused unread.
    public static let largestImage: Int64 = 8 << 30
    /// The archive's stat when the tree was made (before any read), recorded in the manifest.
    public let facts: Manifest.Source.FileFacts?

    /// Only zip and 7z can skip to a member without reading what precedes it; the other formats
    /// (tar and compressed streams) are read through one shared forward cursor during uploads.
    public let isStreaming: Bool
    let cursor = ArchiveCursor()
    /// The bytes of a streaming archive's member an upload may hold in memory (its last bytes, or
    /// all of a smaller member), so the shared cursor can pass on to the next upload: memory stays
    /// bounded at this much per upload in flight, whatever the sizes of members and archive.
    public static let streamBuffer: Int64 = 8 << 20

    public init(root: String) {
        self.root = root
        var head: [UInt8] = []
        if let file = try? POSIXFileReading().open(root), let bytes = try? file.read(at: 0, count: 8) { head = bytes }
        isStreaming = !head.withUnsafeBytes { Self.isSeekableArchive(head: $0) }
        var st = SystemStat()
        if systemStat(root, &st) == 0 {
            let stat = FileStat(st)
            facts = Manifest.Source.FileFacts(size: stat.size, mtimeNs: stat.mtimeNs, inode: stat.inode)
        } else {
            facts = nil
        }
    }

    public var source: Manifest.Source { Manifest.Source(root: root, kind: "archive", archive: facts) }

    /// Whether the archive file still has the size, mtime and inode it had when this tree was made.
    public var isUnchanged: Bool {
        guard let facts, let now = try? archiveStat() else { return false }
        return now.size == facts.size && now.mtimeNs == facts.mtimeNs && now.inode == facts.inode
    }

    /// Whether `path` looks like an archive, by content (its first bytes), not by name: zip, 7z,
    /// tar (`ustar` at 257), or a gzip/bzip2/xz/zstd stream (a compressed tar). Reading 512 bytes
    /// is all it costs: the archive itself is opened only if its members must be read.
    public static func looksLikeArchive(_ path: String) -> Bool {
        guard let file = try? POSIXFileReading().open(path), let head = try? file.read(at: 0, count: 512) else { return false }
        return head.withUnsafeBytes { looksLikeArchive(head: $0) }
    }

    /// Zip (local header, empty archive, spanned marker) or 7z: formats whose members can be
    /// reached without reading what precedes them.
    static func isSeekableArchive(head: UnsafeRawBufferPointer) -> Bool {
        let zips: [[UInt8]] = [[0x50, 0x4B, 0x03, 0x04], [0x50, 0x4B, 0x05, 0x06], [0x50, 0x4B, 0x07, 0x08]]
        return zips.contains { head.starts(with: $0) } || head.starts(with: [0x37, 0x7A, 0xBC, 0xAF, 0x27, 0x1C])
    }

    /// The same test on a file's first bytes (at least 262 for tar).
    public static func looksLikeArchive(head: UnsafeRawBufferPointer) -> Bool {
        func starts(_ magic: [UInt8]) -> Bool { head.starts(with: magic) }
        if isSeekableArchive(head: head) { return true }
        if starts([0x1F, 0x8B]) || starts([0x42, 0x5A, 0x68]) || starts([0xFD, 0x37, 0x7A, 0x58, 0x5A, 0x00])
            || starts([0x28, 0xB5, 0x2F, 0xFD]) { return true }  // gzip, bzip2, xz, zstd
        return head.count >= 262 && Array(head[257..<262]) == Array("ustar".utf8)
    }

    /// Names a scan skips inside archives besides hidden and junk ones: macOS resource forks.
    static func isSkipped(_ path: String) -> Bool {
        path.split(separator: "/").contains { TreeWalker.isSkipped(String($0)) || $0 == "__MACOSX" }
    }

    public func walk() throws(AltiError) -> WalkResult {
        var result = WalkResult()
        let stat = try archiveStat()
        let reader: ArchiveReader
        do {
            reader = try ArchiveReader(path: root)
        } catch {
            throw AltiError(.noInput, "\(error.description); the archive cannot be read: check or replace it")
        }
        do {
            while let member = try reader.next() {
                if Self.isSkipped(member.path) {
                    if member.kind != .directory { result.hidden += 1 }
                    continue
                }
                switch member.kind {
                case .directory: continue
                case .symlink, .hardlink: result.symlinks.append(member.path)
                case .other: result.special.append(member.path)
                case .regular:
                    if member.path.isEmpty {
                        result.unreadableMembers.append(PathProblem(path: "#\(member.index)", detail: "the member's name cannot be read"))
                        continue
                    }
                    if let size = member.size, size > Self.largestImage {
                        // A zip bomb declares what it will inflate to: refused before any byte is. One
                        // that declares less, or nothing, is stopped by its ratio as it is read
                        // (`ArchiveReader.largestRatio`).
                        result.unreadableMembers.append(PathProblem(
                            path: member.path, detail: "refused: it declares \(size) bytes, more than any image (\(Self.largestImage)); not inflated"))
                        continue
                    }
                    if member.isEncrypted {
                        result.unreadableMembers.append(PathProblem(path: member.path, detail: "encrypted (alti reads no passwords)"))
                        continue
                    }
                    var memberStat = member.fileStat
                    memberStat.device = stat.device
                    result.files.append(WalkedFile(path: member.path, stat: memberStat))
                }
            }
        } catch {
            // A damaged or truncated archive: the members before the damage are scanned; the
            // damage is reported where it is, and nothing after it can be read.
            let place = error.member.map { "after \($0)" } ?? "at its start"
            result.unreadableMembers.append(PathProblem(path: "(\(place))", detail: "the archive breaks off: \(error.message)"))
        }
        result.files.sort { $0.path < $1.path }
        return result
    }

    func archiveStat() throws(AltiError) -> FileStat {
        var st = SystemStat()
        guard systemStat(root, &st) == 0 else { throw AltiError(.noInput, "\(root): \(OSError.current("stat").message)") }
        return FileStat(st)
    }

    public func open(_ path: String) throws(OSError) -> any ReadableFile {
        isStreaming ? try CursorMemberFile(tree: self, path: path) : try ArchiveMemberFile(tree: self, path: path)
    }

    public func stat(_ path: String) throws(OSError) -> FileStat {
        try ArchiveMemberFile(tree: self, path: path).stat()
    }

    public func displayPath(_ path: String) -> String { "\(root):\(path)" }

    public func willUpload(_ paths: [String]) {
        if isStreaming { cursor.expect(paths) }
    }
}

/// The member a one-pass scan is at, as the inspector's `FileReading`: `open` hands out the
/// shared reader's current member; a read behind or beyond the stream (a header far into a
/// TIFF) goes to a separate reader, so the pass is never disturbed.
final class OnePassReading: FileReading, @unchecked Sendable {
    let reader: ArchiveReader
    let tree: ArchiveTree
    var current: ArchiveMember?

    init(reader: ArchiveReader, tree: ArchiveTree) {
        self.reader = reader
        self.tree = tree
    }

    func open(_ path: String) throws(OSError) -> any ReadableFile {
        guard let current, current.path == path else { throw OSError(ENOENT, "find member") }
        return CurrentMember(pass: self, member: current)
    }

    final class CurrentMember: ReadableFile {
        let pass: OnePassReading
        let member: ArchiveMember
        private var side: ArchiveMemberFile?

        init(pass: OnePassReading, member: ArchiveMember) {
            self.pass = pass
            self.member = member
        }

        func read(into buffer: UnsafeMutableRawBufferPointer) throws(OSError) -> Int {
            do {
                return try pass.reader.read(into: buffer)
            } catch {
                throw OSError(EIO, "read member (\(error.message))")
            }
        }

        func read(at offset: Int64, count: Int) throws(OSError) -> [UInt8] {
            if side == nil { side = try ArchiveMemberFile(tree: pass.tree, path: member.path) }
            return try side!.read(at: offset, count: count)
        }

        func stat() throws(OSError) -> FileStat {
            member.fileStat
        }
    }
}

/// One forward-only reader of a streaming archive (tar.gz and the like), shared by the uploads of
/// its members: each takes it in turn (the others wait), moves it forward to its member and reads
/// it. Uploads go in archive order (`ManifestSession.items`), so a whole sync reads the archive
/// about once instead of once per member; a member behind the cursor (a retry) starts it over.
/// The cursor is held only while a member's bytes are read from the archive: the last
/// `ArchiveTree.streamBuffer` bytes of a member (all of a member that size or smaller) are read
/// into the upload's own buffer at once and the cursor passes on, so uploads of one archive run
/// in parallel, each holding at most that buffer (see DESIGN.md, "Archives").
final class ArchiveCursor: @unchecked Sendable {
    private let condition = NSCondition()
    private var busy = false
    /// Member indexes of the paths waiting for the cursor.
    private var waiting: [Int] = []
    /// Each member's index in the archive (from the manifest), so waiters are served in archive
    /// order even when parallel uploads ask in a slightly different one.
    var order: [String: Int] = [:]
    // Touched only by the holder (between `acquire` and `release`).
    var reader: ArchiveReader?
    /// The member the reader is in, and how many of its bytes were read (nil: none, or at its end).
    var at: ArchiveMember?
    var position: Int64 = 0
    var atEnd = false
    /// The stream buffers of this archive's uploads, reused: a new 8 MiB block per member would
    /// leave glibc's per-thread arenas holding freed ones (the 2 GB bench measured 112 MB peak
    /// RSS with fresh blocks, the expected ~4 x 8 MiB over the base with reuse).
    let buffers = BufferPool(size: Int(ArchiveTree.streamBuffer))

    /// How many times waiters woke to decide (a test's measure that waiting costs no CPU).
    private(set) var wakeups = 0

    /// Member indexes a sync will still ask for (`ArchiveTree.willUpload`), not yet served.
    private var expected: Set<Int> = []
    /// How long a free cursor waits for the next expected member before serving a later one
    /// (whose skipped predecessor will then cost a read from the archive's start).
    static let grace: TimeInterval = 1

    func expect(_ paths: [String]) {
        condition.lock()
        expected = Set(paths.compactMap { order[$0] })
        condition.broadcast()
        condition.unlock()
    }

    /// Waits for the cursor. Served first: the next expected member from the cursor on, when
    /// it is waiting (the one the cursor is in, if its reading was not finished); if it is not
    /// waiting yet, the others wait for it up to `grace`; then the nearest waiting member ahead,
    /// else the lowest (the cursor starts over).
    func acquire(_ path: String) {
        condition.lock()
        let mine = order[path] ?? Int.max
        waiting.append(mine)
        var deadline: Date?
        while true {
            wakeups += 1
            if !busy {
                if let chosen = next(deadline: &deadline), chosen == mine { break }
                // Held back for an expected member: until it comes (a broadcast) or the grace ends.
                if let deadline { _ = condition.wait(until: deadline); continue }
            }
            condition.wait()  // a release, a new expectation or a skipped member wakes it
        }
        waiting.remove(at: waiting.firstIndex(of: mine)!)
        expected.remove(mine)
        busy = true
        condition.unlock()
    }

    /// The waiter to serve now; nil while the expected next member is awaited (`deadline` set).
    private func next(deadline: inout Date?) -> Int? {
        let here = at.map { $0.index + (atEnd ? 1 : 0) } ?? -1
        let best = waiting.filter { $0 >= here }.min() ?? waiting.min()
        if let due = expected.filter({ $0 >= here }).min(), due != best, best.map({ $0 > due }) ?? false {
            let limit = deadline ?? Date().addingTimeInterval(Self.grace)
            if Date() < limit {
                deadline = limit
                return nil
            }
            expected.remove(due)  // it did not come: do not wait for it again
            condition.broadcast()  // the other waiters held back for it decide again now
        }
        // No deadline left once nothing is awaited: a waiter not chosen now sleeps until a release
        // or a broadcast. (A past deadline kept here made `wait(until:)` return at once: the
        // waiters spun at 100 % CPU for as long as the cursor was busy, which on 2 loaded cores
        // starved the reader and stalled the tar.gz OSS test for minutes.)
        deadline = nil
        return best
    }

    func release() {
        condition.lock()
        busy = false
        condition.broadcast()
        condition.unlock()
    }
}

/// Fixed-size buffers handed out and taken back; as many exist as were ever in use at once.
final class BufferPool: @unchecked Sendable {
    let size: Int
    private let lock = NSLock()
    private var free: [UnsafeMutableRawBufferPointer] = []

    init(size: Int) { self.size = size }

    deinit { for buffer in free { buffer.deallocate() } }

    func take() -> UnsafeMutableRawBufferPointer {
        lock.withLock { free.popLast() } ?? .allocate(byteCount: max(size, 1), alignment: 16)
    }

    func give(_ buffer: UnsafeMutableRawBufferPointer) { lock.withLock { free.append(buffer) } }
}

/// A member read through its archive's shared cursor. Reads at any offset: forward on the cursor,
/// from its own buffer for the member's last bytes, and behind (a retried PUT, an OSS part sent
/// again) by taking the cursor again from the archive's start.
final class CursorMemberFile: ReadableFile {
    let tree: ArchiveTree
    let member: ArchiveMember
    private var cursor: ArchiveCursor { tree.cursor }
    private var holding = false
    /// Sequential position for `read(into:)`.
    private var position: Int64 = 0
    /// The member's last bytes, read at once so the cursor could pass on: `tailCount` bytes from
    /// `tailStart`, in a buffer of the cursor's pool.
    private var tail: UnsafeMutableRawBufferPointer?
    private var tailCount = 0
    private var tailStart: Int64 = 0

    init(tree: ArchiveTree, path: String) throws(OSError) {
        self.tree = tree
        tree.cursor.acquire(path)
        holding = true
        do {
            member = try Self.move(tree.cursor, archive: tree.root, to: path, index: tree.cursor.order[path], restart: false)
            try takeTailIfItFits()
        } catch {
            tree.cursor.release()
            holding = false
            throw error
        }
    }

    deinit {
        dropTail()
        release()
    }

    private func dropTail() {
        if let tail { cursor.buffers.give(tail) }
        tail = nil
    }

    private func release() {
        guard holding else { return }
        holding = false
        cursor.release()
    }

    /// Moves the cursor to the start of `path`'s bytes (member `index`, when known), or leaves it
    /// where it is inside them unless `restart`. A member known to be behind the cursor is reached
    /// from the archive's start at once, not after reading on to the end first.
    static func move(_ cursor: ArchiveCursor, archive: String, to path: String, index: Int?,
                     restart: Bool) throws(OSError) -> ArchiveMember {
        if !restart, cursor.reader != nil, let at = cursor.at, at.path == path, !cursor.atEnd { return at }
        let behind = restart || index.map { (cursor.at?.index ?? -1) >= $0 } ?? false
        do {
            for pass in 0..<2 {
                if pass == 1 || behind || cursor.reader == nil {
                    cursor.reader = try ArchiveReader(path: archive)
                    cursor.at = nil
                }
                while let member = try cursor.reader!.next() {
                    cursor.at = member
                    cursor.position = 0
                    cursor.atEnd = false
                    if member.path == path, member.kind == .regular { return member }
                }
                cursor.reader = nil  // at the end: the member is behind us
                if behind { break }
            }
        } catch {
            cursor.reader = nil
            throw OSError(EIO, "read archive")
        }
        throw OSError(ENOENT, "find member")
    }

    /// When what is left of the member fits the stream buffer, reads it into the upload's own
    /// buffer and lets the cursor go.
    private func takeTailIfItFits() throws(OSError) {
        guard holding, tail == nil, let size = member.size, size - cursor.position <= ArchiveTree.streamBuffer else { return }
        let start = cursor.position
        let buffer = cursor.buffers.take()
        let count = Int(size - start)
        var filled = 0
        do {
            while filled < count {
                let n = try readCursor(into: UnsafeMutableRawBufferPointer(rebasing: buffer[filled..<count]))
                if n == 0 { break }
                filled += n
            }
        } catch {
            cursor.buffers.give(buffer)
            throw error
        }
        tail = buffer
        tailCount = filled
        tailStart = start
        cursor.atEnd = true
        release()
    }

    /// Reads on the cursor (held), keeping its position.
    private func readCursor(into buffer: UnsafeMutableRawBufferPointer) throws(OSError) -> Int {
        guard let reader = cursor.reader else { throw OSError(EIO, "read member") }
        do {
            let n = try reader.read(into: buffer)
            cursor.position += Int64(n)
            if n == 0 { cursor.atEnd = true }
            return n
        } catch {
            cursor.reader = nil
            throw OSError(EIO, "read member (\(error.message))")
        }
    }

    /// Up to `buffer.count` bytes at `offset`; 0 at the member's end.
    private func read(at offset: Int64, into buffer: UnsafeMutableRawBufferPointer) throws(OSError) -> Int {
        if let tail, offset >= tailStart {
            let from = Int(offset - tailStart)
            guard from < tailCount else { return 0 }
            let n = min(buffer.count, tailCount - from)
            buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: tail[from..<(from + n)]))
            return n
        }
        if !holding {
            // Behind the buffered tail, or the member was read to its end: take the cursor again.
            cursor.acquire(member.path)
            holding = true
            dropTail()
        }
        let inMember = cursor.reader != nil && cursor.at?.path == member.path && !cursor.atEnd
        if !inMember || offset < cursor.position {
            // Forward to the member, or from the archive's start when the cursor is at or past it.
            _ = try Self.move(cursor, archive: tree.root, to: member.path, index: member.index, restart: inMember)
        }
        if offset > cursor.position {
            _ = try forwardRead(at: offset, count: 0, position: { self.cursor.position }, read: readCursor(into:))
        }
        try takeTailIfItFits()
        if tail != nil { return try read(at: offset, into: buffer) }
        let n = try readCursor(into: buffer)
        if n == 0 { release() }  // read to its end: the next upload may take the cursor
        return n
    }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws(OSError) -> Int {
        let n = try read(at: position, into: buffer)
        position += Int64(n)
        return n
    }

    func read(at offset: Int64, count: Int) throws(OSError) -> [UInt8] {
        try Self.fill(count: count) { filled, into throws(OSError) in try read(at: offset + Int64(filled), into: into) }
    }

    /// Up to `count` bytes from `read(filled, buffer)` calls until it returns 0, read straight
    /// into the array.
    static func fill(count: Int, _ read: (Int, UnsafeMutableRawBufferPointer) throws(OSError) -> Int) throws(OSError) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        var filled = 0
        var failure: OSError?
        bytes.withUnsafeMutableBytes { raw in
            while filled < count {
                do throws(OSError) {
                    let n = try read(filled, UnsafeMutableRawBufferPointer(rebasing: raw[filled..<count]))
                    if n == 0 { break }
                    filled += n
                } catch {
                    failure = error
                    break
                }
            }
        }
        if let failure { throw failure }
        bytes.removeSubrange(filled...)
        return bytes
    }

    func stat() throws(OSError) -> FileStat {
        member.fileStat
    }
}

/// Reads `count` bytes at `offset` (not behind `position()`) from a forward-only member stream:
/// what lies between is read and dropped.
func forwardRead(at offset: Int64, count: Int, position: () -> Int64,
                 read: (UnsafeMutableRawBufferPointer) throws(OSError) -> Int) throws(OSError) -> [UInt8] {
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(count, 64 << 10), alignment: 16)
    defer { buffer.deallocate() }
    while position() < offset {
        let want = Int(min(Int64(buffer.count), offset - position()))
        if try read(UnsafeMutableRawBufferPointer(rebasing: buffer[0..<want])) == 0 { return [] }
    }
    var filled = 0
    while filled < count {
        let n = try read(UnsafeMutableRawBufferPointer(rebasing: buffer[filled..<count]))
        if n == 0 { break }
        filled += n
    }
    return Array(UnsafeRawBufferPointer(rebasing: buffer[0..<filled]))
}

extension ArchiveMember {
    /// The member's stat facts as the manifest records them (`inode` = its index in the archive).
    var fileStat: FileStat { FileStat(size: size ?? -1, mtimeNs: mtimeNs, inode: UInt64(index)) }
}

/// One member's bytes as a `ReadableFile`: sequential reads from its start; `read(at:)` reads
/// forward (and starts over when asked for an earlier offset).
final class ArchiveMemberFile: ReadableFile {
    let tree: ArchiveTree
    let path: String
    private var reader: ArchiveReader
    private var member: ArchiveMember
    private var position: Int64 = 0

    init(tree: ArchiveTree, path: String) throws(OSError) {
        self.tree = tree
        self.path = path
        (reader, member) = try Self.seek(tree.root, to: path)
    }

    static func seek(_ archive: String, to path: String) throws(OSError) -> (ArchiveReader, ArchiveMember) {
        do {
            let reader = try ArchiveReader(path: archive)
            while let member = try reader.next() {
                if member.path == path, member.kind == .regular { return (reader, member) }
            }
        } catch {
            throw OSError(EIO, "read archive")
        }
        throw OSError(ENOENT, "find member")
    }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws(OSError) -> Int {
        do {
            let n = try reader.read(into: buffer)
            position += Int64(n)
            return n
        } catch {
            throw OSError(EIO, "read member (\(error.message))")
        }
    }

    func read(at offset: Int64, count: Int) throws(OSError) -> [UInt8] {
        if offset < position {
            (reader, member) = try Self.seek(tree.root, to: path)
            position = 0
        }
        return try forwardRead(at: offset, count: count, position: { self.position }, read: read(into:))
    }

    func stat() throws(OSError) -> FileStat {
        member.fileStat
    }
}
