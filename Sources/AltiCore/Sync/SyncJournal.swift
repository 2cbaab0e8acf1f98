import Foundation

/// One thing that happened to one image during a sync. Events carry absolute facts (the id, the
/// state), never deltas, so folding a journal twice gives the same manifest: a crash between
/// "manifest saved" and "journal removed" is harmless.
public struct JournalEvent: Codable, Sendable, Equatable {
    public enum Kind: String, Codable, Sendable {
        /// Registered (uploadImageS3/OSS): id, server filename, bucket, state.
        case registered
        /// startImageUpload answered.
        case started
        /// The store accepted the bytes (PUT 200).
        case stored
        /// A state read from the server (hasImage, project.image).
        case state
        /// A local failure after retries (no server fact changes).
        case failed
        /// A multipart upload was initiated (OSS): upload id, object key, part size.
        case multipartStarted
        /// One part is stored (OSS answered 200 and its CRC matched): part number, ETag, CRC-64.
        case partStored
        /// The store no longer knows the upload id (NoSuchUpload): start the image over.
        case multipartAbandoned
    }

    public var kind: Kind
    public var sha1: String
    public var at: String
    public var imageID: String?
    public var filename: String?
    public var bucket: String?
    public var state: ImageState?
    public var errors: [String]?
    public var reason: String?
    /// Multipart events: the upload, the object key, the part size and the part.
    public var uploadID: String?
    public var key: String?
    public var partSize: Int64?
    public var part: MultipartUpload.Part?
    /// The cloud a registration went to ("S3", "OSS").
    public var cloud: String?
    /// A failure because the source no longer holds the bytes scanned: the entries with this
    /// checksum lose their hash cache, so the next scan reads them again.
    public var rehash: Bool?
    /// A failure of the network, not of the image: another run (or `--keep-trying`) may mend it.
    public var transient: Bool?
    /// A state event that is the server's Invalid verdict on bytes this client stored: how many
    /// such verdicts this checksum has had in all (absolute, so folding twice changes nothing).
    public var refusedSends: Int?

    public init(
        _ kind: Kind, sha1: String, at: Date = Date(), imageID: String? = nil, filename: String? = nil,
        bucket: String? = nil, state: ImageState? = nil, errors: [String]? = nil, reason: String? = nil,
        cloud: String? = nil, uploadID: String? = nil, key: String? = nil, partSize: Int64? = nil,
        part: MultipartUpload.Part? = nil, rehash: Bool? = nil, transient: Bool? = nil, refusedSends: Int? = nil
    ) {
        self.refusedSends = refusedSends
        self.rehash = rehash
        self.transient = transient
        self.cloud = cloud
        self.uploadID = uploadID
        self.key = key
        self.partSize = partSize
        self.part = part
        self.kind = kind
        self.sha1 = sha1
        self.at = JournalEvent.timestamp(at)
        self.imageID = imageID
        self.filename = filename
        self.bucket = bucket
        self.state = state
        self.errors = errors
        self.reason = reason
    }

    public static func timestamp(_ date: Date) -> String { RFC3339.string(from: date) }
}

/// The first line of a journal: the manifest, endpoint and project its events belong to. Events
/// carry image ids and states, which mean something only in that project; a journal lying beside
/// a manifest bound elsewhere (a copied `.alti`, a `--manifest` pointed at the wrong file) must
/// not be folded into it. Journals of older alti have no header and fold as before.
public struct JournalHeader: Codable, Sendable, Equatable {
    /// The header's format; a reader refuses a newer one rather than guess.
    public static let currentVersion = 1

    /// The format version; also what tells the header from an event (events have no `journal`).
    public var journal: Int
    public var endpoint: String
    public var projectID: String
    /// The manifest's path when the journal was made, for whoever reads the file. It is not
    /// compared: a card mounted elsewhere moves its manifest, the binding does not change.
    public var manifest: String
    /// When the journal was made (the sync bound its manifest); informative only.
    public var at: String?

    public init(endpoint: String, projectID: String, manifest: String, at: Date = Date()) {
        self.journal = Self.currentVersion
        self.endpoint = endpoint
        self.projectID = projectID
        self.manifest = manifest
        self.at = RFC3339.string(from: at)
    }
}

/// An append-only JSON-lines file beside the manifest (`<manifest>.journal`): a `JournalHeader`
/// line written (and fsynced, then its folder fsynced: the new name) when the file is made, then
/// the events. Every batch of events is
/// one `write` followed by `fsync`, so what the journal says happened survives a crash or power
/// loss at any instant; a torn last line (the crash hit mid-write) is ignored on read, a torn
/// header included (the journal is then empty). The manifest is rewritten only when the journal
/// is folded into it (at the end of a sync and at the start of the next), never once per image.
public final class SyncJournal: @unchecked Sendable {
    public let path: String
    private let fd: Int32
    private let lock = NSLock()
    public private(set) var eventsWritten = 0

    /// Opens the journal for appending; a `header` is written first when the file is empty (a
    /// journal that already holds lines keeps the header it was made with).
    public init(path: String, header: JournalHeader? = nil) throws {
        self.path = path
        let fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        if fd < 0 {
            throw AltiError.writeFailed(path, doing: "create the sync journal", code: errno,
                                        kept: "the manifest is intact and nothing was sent")
        }
        self.fd = fd
        var st = SystemStat()
        guard fstat(fd, &st) == 0, st.st_size == 0 else { return }
        do {
            if let header {
                let start = try writeLines([try Self.encoder.encode(header)], events: 0)
                try syncToDisk(cuttingBackTo: start)
            }
            // A new file's name lives in its folder: fsync the folder too, or a power cut could
            // leave the events fsynced in a file no folder names.
            try Self.syncFolder(of: path)
        } catch {
            // A half-written header would read as an empty journal anyway; leave no file.
            unlink(path)
            throw error
        }
    }

    /// fsyncs the folder holding `path` (its entries: a new or renamed name).
    static func syncFolder(of path: String) throws {
        let folder = (path as NSString).deletingLastPathComponent
        let dirfd = open(folder.isEmpty ? "." : folder, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard dirfd >= 0 else { return }  // cannot open it for reading: nothing to fsync through
        defer { close(dirfd) }
        if fsync(dirfd) != 0 {
            throw AltiError.writeFailed(path, doing: "create the sync journal", code: errno,
                                        kept: "the manifest is intact and nothing was sent")
        }
    }

    deinit { close(fd) }

    /// write + fsync block for as long as the disk takes (seconds on a slow SD card), so they run
    /// on one serial queue of their own, never on a thread of the cooperative pool.
    private static let queue = DispatchQueue(label: "alti.sync-journal")

    /// Appends waiting for the next write, and their callers. Group commit: the uploads that finish
    /// while one fsync runs are written by the next in one write and one fsync, instead of one
    /// fsync each in turn (4 parallel uploads on a 0 ms link spent most of their time queued
    /// behind each other's fsyncs).
    private let waitingLock = NSLock()
    private var waiting: [Waiting] = []
    /// Set when an fsync failed: every later append fails with it (the sync must stop).
    private var syncFailure: (any Error)?

    private struct Waiting {
        var events: [JournalEvent]
        var waitForDisk: Bool
        var done: CheckedContinuation<Void, any Error>
    }

    /// Appends `events`. With `waitForDisk` (the default) it returns once they are fsynced.
    /// Without, it returns once they are written (in the kernel's hands: a crash of this process
    /// loses nothing) while the same batch's fsync runs, so an upload does not wait on the disk
    /// before its next image. Only for events whose loss in a power cut costs no more than
    /// bytes sent again (`stored`: the next run asks the server, which has the bytes); the fsync
    /// still follows at once, and a failed one fails every later append.
    public func append(_ events: [JournalEvent], waitForDisk: Bool = true) async throws {
        guard !events.isEmpty else { return }
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            let first = waitingLock.withLock {
                waiting.append(Waiting(events: events, waitForDisk: waitForDisk, done: continuation))
                return waiting.count == 1
            }
            guard first else { return }  // a flush is already scheduled and will take these too
            Self.queue.async { self.flushWaiting() }
        }
    }

    /// Writes everything waiting in one batch and fsyncs it; every caller in it hears the batch's
    /// outcome (those that do not wait for the disk, once it is written).
    private func flushWaiting() {
        let (batch, failure) = waitingLock.withLock {
            defer { waiting.removeAll() }
            return (waiting, syncFailure)
        }
        if let failure {
            for caller in batch { caller.done.resume(throwing: failure) }
            return
        }
        let start: Int64
        do {
            CrashPoint.reached("journal-append")
            let encoder = Self.encoder
            let events = batch.flatMap(\.events)
            start = try writeLines(try events.map { try encoder.encode($0) }, events: events.count)
        } catch {
            for caller in batch { caller.done.resume(throwing: error) }
            return
        }
        for caller in batch where !caller.waitForDisk { caller.done.resume() }
        do {
            try syncToDisk(cuttingBackTo: start)
            for caller in batch where caller.waitForDisk { caller.done.resume() }
        } catch {
            waitingLock.withLock { syncFailure = error }
            for caller in batch where caller.waitForDisk { caller.done.resume(throwing: error) }
        }
    }

    public func append(_ event: JournalEvent, waitForDisk: Bool = true) async throws {
        try await append([event], waitForDisk: waitForDisk)
    }

    /// Returns once every append made so far is fsynced, or throws the fsync failure that an
    /// append which did not wait for the disk never heard (the run's last batch may be one).
    public func waitUntilDurable() async throws {
        // The queue is serial: a block queued now runs after every flush queued before it.
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in Self.queue.async { done.resume() } }
        if let failure = waitingLock.withLock({ syncFailure }) { throw failure }
    }

    private static var encoder: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }

    /// One `write` (looping over short writes) for all the lines, of which `events` are events
    /// (the header is not one); `syncToDisk` follows. A write that fails part way (a full disk) is
    /// cut back to the last whole batch, so the journal never ends in a fragment this process
    /// made; after any failure the caller must stop recording (the sync stops sending). Returns
    /// the file's size before the write.
    @discardableResult
    private func writeLines(_ lines: [Data], events: Int) throws -> Int64 {
        var bytes = Data()
        for line in lines {
            bytes.append(line)
            bytes.append(0x0A)
        }
        return try lock.withLock {
            var st = SystemStat()
            let start = fstat(fd, &st) == 0 ? Int64(st.st_size) : -1
            try bytes.withUnsafeBytes { raw in
                if events > 0 {
                    // Test hook: a crash in the middle of a line.
                    CrashPoint.reached("journal-torn") { _ = write(fd, raw.baseAddress!, raw.count / 2) }
                }
                var offset = 0
                while offset < raw.count {
                    let n = write(fd, raw.baseAddress! + offset, raw.count - offset)
                    if n < 0 {
                        if errno == EINTR { continue }
                        throw cutBack(to: start, errno)
                    }
                    offset += n
                }
            }
            if events > 0 { CrashPoint.reached("journal-unsynced") }
            eventsWritten += events
            return start
        }
    }

    /// fsyncs what was written; on failure the lines written since `start` are cut off (whether
    /// they reached the disk is unknown).
    private func syncToDisk(cuttingBackTo start: Int64) throws {
        try lock.withLock {
            if fsync(fd) != 0 { throw cutBack(to: start, errno) }
        }
    }

    private func cutBack(to start: Int64, _ code: Int32) -> AltiError {
        if start >= 0 { _ = ftruncate(fd, off_t(start)) }
        return AltiError.writeFailed(path, doing: "append to the sync journal", code: code,
                                     kept: "the manifest and the events journaled before are intact")
    }

    /// What a journal file holds: its header (nil for a journal of an older alti, or an empty or
    /// missing file) and its events.
    public struct Contents: Sendable, Equatable {
        public var header: JournalHeader?
        public var events: [JournalEvent]
    }

    /// Reads a journal's events (see `contents(path:)`).
    public static func read(path: String) throws -> [JournalEvent] { try contents(path: path).events }

    /// Reads a journal. A missing file is an empty journal; a torn last line is dropped (a torn
    /// header too: the journal is then empty); a bad line before the last one means the file was
    /// damaged by something other than a crash.
    public static func contents(path: String) throws -> Contents {
        var events: [JournalEvent] = []
        let header = try readEvents(path: path) { events.append($0) }
        return Contents(header: header, events: events)
    }

    /// The journal's events one at a time, in order, with the checks of `contents`; returns the
    /// header. The fold uses it so that a 10,000-image sync's 40,000 events are never held at once
    /// (they were 26 MB of the peak heap), and the file is read in pieces of `readSize` bytes: a
    /// 100,000-image sync's journal is about 67 MB, which was read whole (6.7 MB of the 31 MB peak
    /// heap of a 10,000-image sync).
    @discardableResult
    public static func readEvents(path: String, readSize: Int = 1 << 20,
                                  _ body: (JournalEvent) throws -> Void) throws -> JournalHeader? {
        // A file that cannot be opened (missing, unreadable) is an empty journal, as it was when
        // `FileManager.contents` read it.
        let fd = systemOpen(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var header: JournalHeader?
        let decoder = JSONDecoder()
        // Non-empty lines are numbered (for the damage message) as before: empty ones are skipped.
        var lineNumber = 0
        func take(_ line: Data) throws {
            lineNumber += 1
            // Only the first line may be the header: it has `journal`, which no event has.
            if lineNumber == 1, let first = try? decoder.decode(JournalHeader.self, from: line) {
                guard first.journal <= JournalHeader.currentVersion else {
                    throw AltiError(
                        .dataError,
                        "the sync journal \(path) has format \(first.journal), newer than this alti understands (\(JournalHeader.currentVersion)); upgrade alti, or move the journal aside and run again")
                }
                header = first
                return
            }
            let event: JournalEvent
            do {
                event = try decoder.decode(JournalEvent.self, from: line)
            } catch {
                throw AltiError(
                    .dataError,
                    "the sync journal \(path) is damaged at line \(lineNumber); move it aside and run again (the server still knows what was uploaded)")
            }
            try body(event)
        }
        // The start of a line that the last piece read did not end.
        var partial = Data()
        var piece = [UInt8](repeating: 0, count: max(1, readSize))
        while true {
            let count = piece.withUnsafeMutableBytes { systemRead(fd, $0.baseAddress!, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                throw AltiError(.ioError, "cannot read the sync journal \(path): \(String(cString: strerror(errno))); run again (nothing was folded)")
            }
            if count == 0 { break }
            try piece.withUnsafeBytes { raw in
                var start = 0
                while start < count, let newline = memchr(raw.baseAddress! + start, 0x0A, count - start) {
                    let end = raw.baseAddress!.distance(to: UnsafeRawPointer(newline))
                    let tail = UnsafeRawBufferPointer(rebasing: raw[start..<end])
                    if partial.isEmpty {
                        if !tail.isEmpty { try take(Data(tail)) }
                    } else {
                        partial.append(contentsOf: tail)
                        let line = partial
                        partial = Data()
                        try take(line)
                    }
                    start = end + 1
                }
                if start < count { partial.append(contentsOf: UnsafeRawBufferPointer(rebasing: raw[start..<count])) }
            }
        }
        // What follows the last newline was torn by a crash mid-write: left out.
        return header
    }
}
