import Foundation

/// What the client knows about one image on the server, folded from journal events.
public struct ImageFacts: Sendable, Equatable, Codable {
    public var imageID: String?
    public var filename: String?
    public var bucket: String?
    public var state: String?
    public var errors: [String]
    public var checkedAt: String?

    public init(imageID: String? = nil, filename: String? = nil, bucket: String? = nil, state: String? = nil,
                errors: [String] = [], checkedAt: String? = nil) {
        self.imageID = imageID
        self.filename = filename
        self.bucket = bucket
        self.state = state
        self.errors = errors
        self.checkedAt = checkedAt
    }

    /// Applies one event. Only server facts change; a local failure is kept elsewhere.
    public mutating func apply(_ event: JournalEvent) {
        switch event.kind {
        case .registered:
            imageID = event.imageID ?? imageID
            filename = event.filename ?? filename
            bucket = event.bucket ?? bucket
            state = event.state ?? state
            errors = event.errors ?? []
        case .state where event.state == "Absent":
            // hasImage said the project does not have it: an id recorded earlier is void.
            imageID = nil
            filename = nil
            state = "Absent"
            errors = []
        case .started, .state:
            if let id = event.imageID { imageID = id }
            if let f = event.filename { filename = f }
            if let s = event.state { state = s }
            if let e = event.errors { errors = e }
        case .stored:
            // The store has the bytes; until the server says otherwise the image is Uploaded.
            if !RemoteImage.isDone(state) { state = "Uploaded"; errors = [] }
        case .failed:
            return
        }
        checkedAt = event.at
    }
}

/// Thread-safe byte counter for upload progress callbacks (called from libcurl's threads).
public final class ByteCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Int64 = 0
    public init() {}
    public func add(_ n: Int64) { lock.withLock { value += n } }
    public var total: Int64 { lock.withLock { value } }
}

/// The single place where sync state changes: every change is journaled (durably) before the
/// in-memory view reflects it, so the process can die at any await and lose nothing it reported.
public actor SyncRecorder {
    public private(set) var facts: [String: ImageFacts]
    public private(set) var failures: [String: String] = [:]
    public private(set) var putCount = 0
    public private(set) var putBytes: Int64 = 0
    public private(set) var registrations = 0
    public private(set) var urlRefreshes = 0
    public nonisolated let bytesSent = ByteCounter()
    /// What the diff decided to send (for the live display).
    public private(set) var plannedImages = 0
    public private(set) var plannedBytes: Int64 = 0
    public private(set) var phase = "scanning"
    let journals: [SyncJournal]

    /// `journals`: one per manifest taking part (an image may live in several sources).
    public init(initial: [String: ImageFacts], journals: [SyncJournal]) {
        self.facts = initial
        self.journals = journals
    }

    public func record(_ events: [JournalEvent]) async throws {
        guard !events.isEmpty else { return }
        for journal in journals { try await journal.append(events) }
        for event in events {
            facts[event.sha1, default: ImageFacts()].apply(event)
            switch event.kind {
            case .failed: failures[event.sha1] = event.reason ?? "failed"
            case .registered: registrations += 1; failures[event.sha1] = nil
            case .stored: failures[event.sha1] = nil
            default: break
            }
        }
    }

    public func record(_ event: JournalEvent) async throws { try await record([event]) }

    public func countPut(bytes: Int64) {
        putCount += 1
        putBytes += bytes
    }

    public func setPlan(images: Int, bytes: Int64) {
        plannedImages = images
        plannedBytes = bytes
    }

    public func setPhase(_ phase: String) { self.phase = phase }

    public func countURLRefresh() { urlRefreshes += 1 }

    public func state(of sha1: String) -> String? { facts[sha1]?.state }
}
