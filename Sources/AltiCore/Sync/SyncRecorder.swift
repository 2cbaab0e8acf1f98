import Foundation

/// What a sync is doing now, for displays.
public enum SyncPhase: String, Sendable {
    case scanning, checking, uploading, waiting, done
}

/// Everything a display or a log needs to follow a sync, in order: one stream, published by the
/// recorder after each change is journaled (so nothing is shown that a crash could take back).
public enum SyncEvent: Sendable, Equatable {
    case phase(SyncPhase)
    /// What the diff decided to send.
    case planned(images: Int, bytes: Int64)
    /// A journaled server fact or local failure.
    case recorded(JournalEvent)
    /// Processing is being waited on for this many images (the waiting phase's total).
    case awaiting(images: Int)
    /// A grant was replaced (stale, or refused once).
    case grantRefreshed(sha1: String)
}

/// The single place where sync state changes: every change is journaled (durably) before the
/// in-memory view reflects it and before it is published, so the process can die at any await
/// and lose nothing it reported.
public actor SyncRecorder {
    public private(set) var facts: [String: ServerFacts]
    public private(set) var failures: [String: String] = [:]
    /// Failures of the network rather than of the image (`JournalEvent.transient`).
    public private(set) var transientFailures: Set<String> = []
    public nonisolated let metrics: SyncMetrics
    let journals: [SyncJournal]
    private var subscribers: [UUID: AsyncStream<SyncEvent>.Continuation] = [:]

    /// `journals`: one per manifest taking part (an image may live in several sources).
    public init(initial: [String: ServerFacts], journals: [SyncJournal], metrics: SyncMetrics = SyncMetrics()) {
        self.facts = initial
        self.journals = journals
        self.metrics = metrics
    }

    /// Every event from now on, until the stream is dropped or `finish()` ends it. Events are
    /// buffered, so a slow display never slows the sync.
    public func events() -> AsyncStream<SyncEvent> {
        let (stream, continuation) = AsyncStream<SyncEvent>.makeStream()
        let id = UUID()
        subscribers[id] = continuation
        continuation.onTermination = { [weak self] _ in
            Task { await self?.unsubscribe(id) }
        }
        return stream
    }

    private func unsubscribe(_ id: UUID) { subscribers[id] = nil }

    /// Ends every subscriber's stream.
    public func finish() {
        publish(.phase(.done))
        for continuation in subscribers.values { continuation.finish() }
        subscribers = [:]
    }

    private func publish(_ event: SyncEvent) {
        for continuation in subscribers.values { continuation.yield(event) }
    }

    /// Checksums whose stored bytes the server judged Invalid during this run: not sent again
    /// in it (`--keep-trying` passes included).
    public private(set) var refusedThisRun: Set<String> = []

    /// Journals `incoming`, then applies and publishes it. `waitForDisk: false` is for events
    /// whose loss in a power cut costs only bytes sent again (see `SyncJournal.append`).
    public func record(_ incoming: [JournalEvent], waitForDisk: Bool = true) async throws {
        guard !incoming.isEmpty else { return }
        let events = Self.judgeRefusals(incoming, facts: facts)
        for journal in journals { try await journal.append(events, waitForDisk: waitForDisk) }
        for event in events where event.refusedSends != nil { refusedThisRun.insert(event.sha1) }
        for event in events {
            facts[event.sha1, default: ServerFacts()].apply(event)
            switch event.kind {
            case .failed:
                failures[event.sha1] = event.reason ?? "failed"
                if event.transient == true { transientFailures.insert(event.sha1) } else { transientFailures.remove(event.sha1) }
            case .registered:
                metrics.update { $0.registrations += 1 }
                failures[event.sha1] = nil
                transientFailures.remove(event.sha1)
            case .stored:
                failures[event.sha1] = nil
                transientFailures.remove(event.sha1)
            default: break
            }
            publish(.recorded(event))
        }
    }

    public func record(_ event: JournalEvent, waitForDisk: Bool = true) async throws {
        try await record([event], waitForDisk: waitForDisk)
    }

    /// Returns once everything recorded is on disk (see `SyncJournal.waitUntilDurable`).
    public func waitUntilDurable() async throws {
        for journal in journals { try await journal.waitUntilDurable() }
    }

    /// The server's reason for an Invalid that means "the bytes do not hash to the checksum
    /// registered" (the emulator: "checksum mismatch: registered X, stored bytes have Y").
    static func isChecksumMismatch(_ errors: [String]) -> Bool {
        errors.contains { $0.lowercased().contains("checksum mismatch") }
    }

    /// Marks an Invalid that follows bytes this client stored (the image was Uploaded, or in a
    /// state the client does not know) as a refusal, with the checksum's running count, so the
    /// journal holds an absolute fact. A refusal for a checksum mismatch also fails the image with
    /// `rehash`: the file is hashed again before it is sent next, instead of the same bytes going
    /// to a checksum they do not match on every run.
    static func judgeRefusals(_ events: [JournalEvent], facts: [String: ServerFacts]) -> [JournalEvent] {
        // The facts of this batch's checksums as its events change them, over `facts`: a copy of
        // all of `facts` per batch made a sync quadratic (a 10,000-entry dictionary copied for
        // every recorded batch).
        var projected = Projection(facts: facts, changed: [:])
        var out: [JournalEvent] = []
        for var event in events {
            let prior = projected[event.sha1]
            if event.kind == .state || event.kind == .started, event.state == .invalid, event.refusedSends == nil,
               let prior, prior.state.isInProgress {
                event.refusedSends = prior.refusedSends + 1
                out.append(event)
                projected[event.sha1, default: ServerFacts()].apply(event)
                if isChecksumMismatch(event.errors ?? []) {
                    let reason = (event.errors ?? []).first { $0.lowercased().contains("checksum mismatch") } ?? "checksum mismatch"
                    let failure = JournalEvent(
                        .failed, sha1: event.sha1, at: Date(),
                        reason: "the server found that the bytes sent do not match the checksum (\(reason)); the file will be hashed again before it is sent: run again",
                        rehash: true)
                    out.append(failure)
                    projected[event.sha1, default: ServerFacts()].apply(failure)
                }
                continue
            }
            out.append(event)
            projected[event.sha1, default: ServerFacts()].apply(event)
        }
        return out
    }

    /// Facts read through a small overlay of changed ones; `projected[sha1, default:]` as on a
    /// dictionary.
    struct Projection {
        let facts: [String: ServerFacts]
        var changed: [String: ServerFacts]

        subscript(sha1: String) -> ServerFacts? { changed[sha1] ?? facts[sha1] }

        subscript(sha1: String, default value: ServerFacts) -> ServerFacts {
            get { self[sha1] ?? value }
            set { changed[sha1] = newValue }
        }
    }

    /// One transfer ended: `stored` with `bytes`, or refused or failed (no bytes).
    public func countTransfer(stored: Bool, bytes: Int64) {
        metrics.update {
            $0.transfers += 1
            if stored { $0.imagesStored += 1 }
            $0.bytesStored += bytes
        }
    }

    public func setPlan(images: Int, bytes: Int64) { publish(.planned(images: images, bytes: bytes)) }

    public func setPhase(_ phase: SyncPhase) { publish(.phase(phase)) }

    public func setAwaiting(images: Int) { publish(.awaiting(images: images)) }

    public func countGrantRefresh(sha1: String) {
        metrics.update { $0.grantRefreshes += 1 }
        publish(.grantRefreshed(sha1: sha1))
    }

    public func state(of sha1: String) -> ImageState? { facts[sha1]?.state }

    /// The facts, handed over at the end of a run: the recorder keeps none (nothing is recorded
    /// after `finish()`).
    public func releaseFacts() -> [String: ServerFacts] {
        defer { facts = [:] }
        return facts
    }

    /// Makes room for the facts of `count` checksums at once. Grown as answers arrive, the
    /// dictionary doubled several times, and each doubling held the old buckets and the new
    /// together: at 100,000 images 23 MB and 46 MB, the 69 MB top of a plan's peak heap.
    public func reserveFacts(_ count: Int) { facts.reserveCapacity(count) }

    /// The multipart upload recorded for an image. A read of one fact on the actor: a caller
    /// that took `facts` to look one image up held the dictionary while the recorder recorded,
    /// and the next record copied all of it (every checksum's facts, at every transfer).
    public func multipart(of sha1: String) -> MultipartUpload? { facts[sha1]?.multipart }

    /// The images among `items` the server is processing (Uploaded, or a state this client does
    /// not know), with their ids, read on the actor for the same reason as `multipart(of:)`.
    func inProgress(_ items: [SyncItem]) -> [(sha1: String, id: String)] {
        items.compactMap { item in
            guard let f = facts[item.sha1], let id = f.id, f.state.isInProgress else { return nil }
            return (item.sha1, id)
        }
    }
}
