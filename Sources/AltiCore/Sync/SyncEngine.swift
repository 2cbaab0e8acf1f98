import Foundation

/// One unique image (by checksum) to bring to Ready on the server.
public struct SyncItem: Sendable, Equatable {
    public var sha1: String
    /// One readable copy of the bytes (duplicates elsewhere are the same image).
    public var source: UploadSource
    /// The client file name sent as `filename` (the server's `name`).
    public var filename: String
    /// The API's IMAGE_TYPE: JPEG, PNG or TIFF.
    public var imageType: String
    public var width: Int
    public var height: Int

    public init(sha1: String, source: UploadSource, filename: String, imageType: String, width: Int = 0, height: Int = 0) {
        self.sha1 = sha1
        self.source = source
        self.filename = filename
        self.imageType = imageType
        self.width = width
        self.height = height
    }

    public var contentType: String {
        switch imageType {
        case "PNG": "image/png"
        case "TIFF": "image/tiff"
        default: "image/jpeg"
        }
    }
}

public struct SyncOptions: Sendable {
    /// Parallel PUTs. 4 by default: uploads share one uplink, so more streams do not add
    /// bandwidth; 4 hide per-request latency (TLS, time to first byte, the startImageUpload
    /// round trip) without splitting a thin hotel link into streams so slow that they trip the
    /// low-speed limit. rclone's --transfers default is 4 for the same reason.
    public var jobs = 4
    /// hasImage / state requests in flight at once.
    public var lookupConcurrency = 4
    public var dryRun = false
    /// nil = do not wait for processing.
    public var waitLimit: Duration? = .seconds(600)
    public var pollInitial: Duration = .milliseconds(250)
    public var pollMax: Duration = .seconds(5)
    /// Registrations per request when uploading (kept small so URLs are fresh when used).
    public var registrationWindow = 16

    public init() {}
}

/// What a sync ended with, per checksum.
public struct SyncReport: Sendable {
    public enum Phase: String, Sendable { case complete, interrupted }

    public var phase: Phase = .complete
    public var total = 0
    public var alreadyReady = 0
    public var ready: [String] = []
    public var invalid: [String: [String]] = [:]
    public var processing: [String] = []
    public var failed: [String: String] = [:]
    public var notSent: [String] = []
    public var toSend: [String] = []
    public var bytesToSend: Int64 = 0
    public var puts = 0
    public var bytesSent: Int64 = 0
    public var registrations = 0
    public var urlRefreshes = 0
    public var reconstruction: ReconstructionOutcome?

    public init() {}

    public var allReady: Bool { invalid.isEmpty && processing.isEmpty && failed.isEmpty && notSent.isEmpty }
}

/// The sync flow of the upload guide (steps 1, 2, 4, 5) over the two ports:
/// hasImage in aliased batches -> register (aliased, in small windows) -> startImageUpload
/// (batched, just before the PUTs) -> PUT with bounded parallelism -> poll states.
/// Every server fact is recorded through the `SyncRecorder` (journal first) as it arrives.
public struct SyncEngine: Sendable {
    public let catalog: any RemoteCatalog
    public let uploader: any BlobUploader
    public let recorder: SyncRecorder
    public let options: SyncOptions
    let now: @Sendable () -> Date
    let sleep: @Sendable (Duration) async throws -> Void

    public init(
        catalog: any RemoteCatalog, uploader: any BlobUploader, recorder: SyncRecorder, options: SyncOptions,
        now: @escaping @Sendable () -> Date = { Date() },
        sleep: @escaping @Sendable (Duration) async throws -> Void = { try await Task.sleep(for: $0) }
    ) {
        self.catalog = catalog
        self.uploader = uploader
        self.recorder = recorder
        self.options = options
        self.now = now
        self.sleep = sleep
    }

    /// Runs the whole flow. On cancellation (Ctrl-C) it stops at the next await and returns the
    /// report with `phase == .interrupted`; everything learnt so far is already journaled.
    /// `bucket` is asked for only when something must be sent, so a re-run with nothing to do
    /// costs no server-info request.
    public func run(items: [SyncItem], project: String, bucket: @Sendable () async throws -> String) async throws -> SyncReport {
        var report = SyncReport()
        report.total = items.count
        do {
            try await sync(items: items, project: project, bucket: bucket, report: &report)
        } catch is CancellationError {
            report.phase = .interrupted
        }
        try await finish(items: items, report: &report)
        return report
    }

    public func run(items: [SyncItem], project: String, bucket: String) async throws -> SyncReport {
        try await run(items: items, project: project, bucket: { bucket })
    }

    func sync(items: [SyncItem], project: String, bucket: @Sendable () async throws -> String, report: inout SyncReport) async throws {
        // 1. Diff: ask hasImage for everything the manifest does not already hold as Ready.
        await recorder.setPhase("checking")
        let known = await recorder.facts
        let unknown = items.filter { !RemoteImage.isDone(known[$0.sha1]?.state) }
        report.alreadyReady = items.count - unknown.count
        try await lookUp(unknown.map(\.sha1), project: project)

        // 2. Plan: Ready is done, Uploaded is being processed, Pending/Invalid/absent are sent.
        let facts = await recorder.facts
        let toSend = unknown.filter { RemoteImage.needsUpload(facts[$0.sha1]?.state) }
        report.toSend = toSend.map(\.sha1)
        report.bytesToSend = toSend.reduce(0) { $0 + $1.source.size }
        await recorder.setPlan(images: toSend.count, bytes: report.bytesToSend)
        if options.dryRun { return }

        // 3. Upload.
        if !toSend.isEmpty {
            let bucketName = try await bucket()
            await recorder.setPhase("uploading")
            try await upload(toSend, project: project, bucket: bucketName)
        }

        // 4. Wait for processing.
        if let limit = options.waitLimit {
            await recorder.setPhase("waiting")
            try await waitForProcessing(items: unknown, project: project, limit: limit)
        }
    }

    // MARK: Diff

    func lookUp(_ checksums: [String], project: String) async throws {
        let batches = stride(from: 0, to: checksums.count, by: catalog.batchLimit).map {
            Array(checksums[$0..<min($0 + catalog.batchLimit, checksums.count)])
        }
        try await forEachConcurrently(batches, width: options.lookupConcurrency) { batch in
            let found = try await catalog.hasImages(project: project, checksums: batch)
            var events: [JournalEvent] = []
            for sha1 in batch {
                if let image = found[sha1] {
                    events.append(JournalEvent(.state, sha1: sha1, at: now(), imageID: image.id, filename: image.filename,
                                               state: image.state, errors: image.errors))
                } else {
                    // Not in the project: whatever we recorded before (another project's id, a
                    // lost image) no longer holds.
                    events.append(JournalEvent(.state, sha1: sha1, at: now(), state: "Absent", errors: []))
                }
            }
            try await recorder.record(events)
        }
    }

    // MARK: Upload

    func upload(_ items: [SyncItem], project: String, bucket: String) async throws {
        guard !items.isEmpty else { return }
        let feeder = RegistrationFeeder(items: items, window: max(1, min(options.registrationWindow, catalog.batchLimit)),
                                        lowWater: max(1, options.jobs), engine: self, project: project, bucket: bucket)
        do {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<max(1, options.jobs) {
                    group.addTask {
                        while let ticket = try await feeder.next() {
                            try await send(ticket, project: project, bucket: bucket)
                        }
                    }
                }
                try await group.waitForAll()
            }
        } catch {
            // A background registration must not outlive the upload (it would journal after
            // the fold); stop it and let what it already recorded stand.
            await feeder.cancel()
            throw error
        }
    }

    /// A registered image ready to PUT, with the local time by which its URL expires.
    struct Ticket: Sendable {
        var item: SyncItem
        var imageID: String
        var url: String
        var expiresAt: Date?
        var lifetime: Double?
    }

    /// Registers a batch and signals startImageUpload for all of them; records both.
    func register(_ items: [SyncItem], project: String, bucket: String) async throws -> [Ticket] {
        let registrations = items.map { ImageRegistration(sha1: $0.sha1, filename: $0.filename, imageType: $0.imageType) }
        let answers = try await catalog.registerS3(project: project, bucket: bucket, images: registrations)
        let receivedAt = now()
        var events: [JournalEvent] = []
        var tickets: [Ticket] = []
        for item in items {
            switch answers[item.sha1] {
            case .success(let registered)?:
                events.append(JournalEvent(.registered, sha1: item.sha1, at: receivedAt, imageID: registered.image.id,
                                           filename: registered.image.filename, bucket: bucket, state: registered.image.state))
                // X-Amz-Date has whole seconds, so the URL may have been signed up to 1 s before
                // it reached us: count its lifetime from 1 s before receipt.
                let lifetime = PresignedURL.lifetime(registered.uploadURL ?? "")
                tickets.append(Ticket(item: item, imageID: registered.image.id, url: registered.uploadURL ?? "",
                                      expiresAt: lifetime.map { receivedAt.addingTimeInterval($0 - 1) }, lifetime: lifetime))
            case .failure(let error)?:
                events.append(JournalEvent(.failed, sha1: item.sha1, at: receivedAt, reason: error.message))
            case nil:
                events.append(JournalEvent(.failed, sha1: item.sha1, at: receivedAt, reason: "the server did not answer the registration"))
            }
        }
        try await recorder.record(events)
        if !tickets.isEmpty {
            let started = try await catalog.startUpload(imageIDs: tickets.map(\.imageID))
            let startEvents = tickets.compactMap { ticket -> JournalEvent? in
                guard let image = started[ticket.imageID] else { return nil }
                return JournalEvent(.started, sha1: ticket.item.sha1, at: now(), imageID: image.id, state: image.state)
            }
            try await recorder.record(startEvents)
        }
        return tickets
    }

    /// PUTs one image. A URL about to expire is replaced before use; a 403 is never retried
    /// with the same URL: register once more for a fresh one, then give the image up.
    func send(_ first: Ticket, project: String, bucket: String) async throws {
        var ticket = first
        // Two budgets: URLs replaced because they were about to expire, and the one fresh URL a
        // refusal (403) earns. Spending one never uses up the other.
        var staleRefreshes = 0
        var refusals = 0
        while true {
            try Task.checkCancellation()
            if isStale(ticket), staleRefreshes < 3 {
                staleRefreshes += 1
                await recorder.countURLRefresh()
                guard let renewed = try await register([ticket.item], project: project, bucket: bucket).first else { return }
                ticket = renewed
                continue
            }
            let counter = recorder.bytesSent
            // The uploader reports deltas; the live display sums them across workers.
            let outcome = try await uploader.put(ticket.item.source, contentType: ticket.item.contentType, url: ticket.url) { delta in
                counter.add(delta)
            }
            switch outcome {
            case .stored:
                await recorder.countPut(bytes: ticket.item.source.size)
                try await recorder.record(JournalEvent(.stored, sha1: ticket.item.sha1, at: now(), imageID: ticket.imageID))
                return
            case .urlRejected(let code, let message):
                await recorder.countPut(bytes: 0)
                if refusals >= 1 {
                    try await recorder.record(JournalEvent(
                        .failed, sha1: ticket.item.sha1, at: now(),
                        reason: "the store refused the upload URL twice (\(code): \(message)); check the laptop's clock and run again"))
                    return
                }
                refusals += 1
                await recorder.countURLRefresh()
                guard let renewed = try await register([ticket.item], project: project, bucket: bucket).first else { return }
                ticket = renewed
            case .failed(let reason):
                await recorder.countPut(bytes: 0)
                try await recorder.record(JournalEvent(.failed, sha1: ticket.item.sha1, at: now(), reason: reason))
                return
            }
        }
    }

    /// Stale = less than a quarter of its lifetime (at most 60 s) left, measured on the local
    /// clock from when the URL arrived, so a laptop whose clock is off does not matter.
    func isStale(_ ticket: Ticket) -> Bool {
        guard let expiresAt = ticket.expiresAt, let lifetime = ticket.lifetime else { return false }
        let margin = min(60, lifetime / 4)
        return expiresAt.timeIntervalSince(now()) < margin
    }

    // MARK: Wait

    func waitForProcessing(items: [SyncItem], project: String, limit: Duration) async throws {
        let deadline = now().addingTimeInterval(Double(limit.components.seconds) + Double(limit.components.attoseconds) / 1e18)
        var interval = options.pollInitial
        while true {
            let facts = await recorder.facts
            // Poll what the server is processing: Uploaded, or a state this client does not know
            // (the real service may have intermediate ones). Pending without our bytes will not move.
            let pending = items.compactMap { item -> (String, String)? in
                guard let f = facts[item.sha1], let id = f.imageID, RemoteImage.isInProgress(f.state) else { return nil }
                return (item.sha1, id)
            }
            if pending.isEmpty || now() >= deadline { return }
            try await sleep(interval)
            interval = min(options.pollMax, interval * 2)
            let batches = stride(from: 0, to: pending.count, by: catalog.batchLimit).map {
                Array(pending[$0..<min($0 + catalog.batchLimit, pending.count)])
            }
            try await forEachConcurrently(batches, width: options.lookupConcurrency) { batch in
                let states = try await catalog.imageStates(project: project, imageIDs: batch.map(\.1))
                var events: [JournalEvent] = []
                for (sha1, id) in batch {
                    if let image = states[id], !RemoteImage.isInProgress(image.state) {
                        events.append(JournalEvent(.state, sha1: sha1, at: now(), imageID: id, filename: image.filename,
                                                   state: image.state, errors: image.errors))
                    } else if states[id] == nil {
                        events.append(JournalEvent(.state, sha1: sha1, at: now(), state: "Absent", errors: []))
                    }
                }
                try await recorder.record(events)
            }
        }
    }

    // MARK: Report

    func finish(items: [SyncItem], report: inout SyncReport) async throws {
        let facts = await recorder.facts
        let failures = await recorder.failures
        for item in items {
            let f = facts[item.sha1]
            if let reason = failures[item.sha1] {
                report.failed[item.sha1] = reason
            } else if RemoteImage.isDone(f?.state) {
                report.ready.append(item.sha1)
            } else if f?.state == "Invalid" {
                report.invalid[item.sha1] = f?.errors ?? []
            } else if RemoteImage.isInProgress(f?.state) {
                report.processing.append(item.sha1)
            } else {
                report.notSent.append(item.sha1)
            }
        }
        report.puts = await recorder.putCount
        report.bytesSent = await recorder.putBytes
        report.registrations = await recorder.registrations
        report.urlRefreshes = await recorder.urlRefreshes
    }
}

/// Hands out registered tickets to the upload workers. The next window (one aliased
/// registration + one batched startImageUpload) is registered in the background when fewer than
/// `lowWater` (= the number of workers) tickets are left, so the workers never wait for a
/// registration round trip, URLs are at most about two windows old when used, and a crash wastes
/// at most two windows of registrations.
actor RegistrationFeeder {
    private var remaining: ArraySlice<SyncItem>
    private var ready: [SyncEngine.Ticket] = []
    private var refill: Task<[SyncEngine.Ticket], any Error>?
    private let window: Int
    private let engine: SyncEngine
    private let project: String
    private let bucket: String

    private let lowWater: Int

    init(items: [SyncItem], window: Int, lowWater: Int, engine: SyncEngine, project: String, bucket: String) {
        self.remaining = items[...]
        self.window = window
        self.lowWater = lowWater
        self.engine = engine
        self.project = project
        self.bucket = bucket
    }

    func next() async throws -> SyncEngine.Ticket? {
        while true {
            try Task.checkCancellation()
            if !ready.isEmpty {
                let ticket = ready.removeFirst()
                if ready.count < lowWater, refill == nil { startRefill() }
                return ticket
            }
            if let refill {
                // The refill is not a child task: forward the worker's cancellation to it, so
                // Ctrl-C abandons an in-flight registration instead of waiting for its timeout.
                let tickets = try await withTaskCancellationHandler {
                    try await refill.value
                } onCancel: {
                    refill.cancel()
                }
                if self.refill == refill {
                    self.refill = nil
                    ready.append(contentsOf: tickets)
                }
                continue
            }
            if remaining.isEmpty { return nil }
            startRefill()
        }
    }

    /// Cancels a background registration and waits until it has stopped.
    func cancel() async {
        guard let pending = refill else { return }
        refill = nil
        pending.cancel()
        _ = try? await pending.value
    }

    private func startRefill() {
        guard !remaining.isEmpty else { return }
        let batch = Array(remaining.prefix(window))
        remaining = remaining.dropFirst(batch.count)
        let engine = engine, project = project, bucket = bucket
        refill = Task { try await engine.register(batch, project: project, bucket: bucket) }
    }
}

/// Runs `body` over `items` with at most `width` in flight; the first error cancels the rest.
func forEachConcurrently<T: Sendable>(
    _ items: [T], width: Int, _ body: @escaping @Sendable (T) async throws -> Void
) async throws {
    try await withThrowingTaskGroup(of: Void.self) { group in
        var iterator = items.makeIterator()
        for _ in 0..<max(1, width) {
            guard let item = iterator.next() else { break }
            group.addTask { try await body(item) }
        }
        while try await group.next() != nil {
            if let item = iterator.next() { group.addTask { try await body(item) } }
        }
    }
}

/// Reads the lifetime of an S3 pre-signed URL (`X-Amz-Expires`, seconds) without keeping or
/// printing the URL.
public enum PresignedURL {
    public static func lifetime(_ url: String) -> Double? {
        guard let query = url.split(separator: "?", maxSplits: 1).dropFirst().first else { return nil }
        for pair in query.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1)
            if parts.count == 2, parts[0].lowercased() == "x-amz-expires", let seconds = Double(parts[1]) { return seconds }
        }
        return nil
    }
}
