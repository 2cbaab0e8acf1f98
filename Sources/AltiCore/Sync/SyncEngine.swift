import Foundation

/// One unique image (by checksum) to bring to Ready on the server.
///
/// A class, not a struct: a sync's plan, its lists of images to send and to wait on, and each
/// registration window are arrays of the same items, which as values were copies of some 200
/// bytes per image each (two plans of 100,000 images were 50 MB of a 214 MB peak heap); shared,
/// each list costs a reference per image. Immutable, so sharing changes nothing.
public final class SyncItem: Sendable {
    public let sha1: String
    /// One readable copy of the bytes (duplicates elsewhere are the same image).
    public let source: UploadSource
    /// The client file name sent as `filename` (the server's `name`).
    public let filename: String
    /// The API's IMAGE_TYPE: JPEG, PNG or TIFF.
    public let imageType: String
    public let width: Int
    public let height: Int

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
    /// Parallel transfers. 4 by default here: uploads share one uplink, so more streams do not
    /// add bandwidth; 4 hide per-request latency (TLS, time to first byte, the startImageUpload
    /// round trip) without splitting a thin hotel link into streams so slow that they trip the
    /// low-speed limit. rclone's --transfers default is 4 for the same reason. The command's
    /// default is `.automatic`, which finds the count on the link itself (`TransferConcurrency`).
    public var transfers: TransferCount = .fixed(4)
    /// hasImage / state requests in flight at once.
    public var lookupConcurrency = 4
    public var dryRun = false
    /// nil = do not wait for processing.
    public var waitLimit: Duration? = .seconds(600)
    public var pollInitial: Duration = .milliseconds(250)
    public var pollMax: Duration = .seconds(5)
    /// Registrations in the first window, before the grants' lifetime is known; later windows
    /// are sized from that lifetime and the measured upload rate (`RegistrationWindow`).
    public var registrationWindow = 16
    /// `--resend-invalid`: send images the server refused twice with the same bytes anyway.
    public var resendInvalid = false

    public init() {}
}

/// What a sync ended with, per checksum.
public struct SyncReport: Sendable {
    /// `timedOut`: stopped like `interrupted`, by `--timeout` (set by the command, which owns the timer).
    public enum Phase: String, Sendable { case complete, interrupted, timedOut }

    public var phase: Phase = .complete
    public var total = 0
    public var alreadyReady = 0
    public var ready: [String] = []
    public var invalid: [String: [String]] = [:]
    public var processing: [String] = []
    public var failed: [String: String] = [:]
    public var notSent: [String] = []
    public var toSend: [String] = []
    /// Held as Ready by the manifest, but no longer Ready on the server (deleted in the web app,
    /// the project emptied): sent again.
    public var lostOnServer: [String] = []
    /// Invalid, and not sent in this run: the server refused these same bytes after a re-send
    /// (or already in this run). Sent again when the file changes, or with `--resend-invalid`.
    public var heldInvalid: [String] = []
    public var bytesToSend: Int64 = 0
    public var reconstruction: ReconstructionOutcome?

    public init() {}

    public var allReady: Bool { invalid.isEmpty && processing.isEmpty && failed.isEmpty && notSent.isEmpty }
}

/// The sync flow of the upload guide (steps 1, 2, 4, 5) over the ports, for any cloud:
/// hasImage in aliased batches -> register (aliased, in small windows) -> startImageUpload
/// (batched, just before the transfers) -> transfer with bounded parallelism -> complete (where
/// the cloud needs it) -> poll states. Every server fact is recorded through the `SyncRecorder`
/// (journal first) as it arrives.
public struct SyncEngine: Sendable {
    public let catalog: any RemoteCatalog
    public let recorder: SyncRecorder
    public let options: SyncOptions
    let now: @Sendable () -> Date
    let sleep: @Sendable (Duration) async throws -> Void

    public init(
        catalog: any RemoteCatalog, recorder: SyncRecorder, options: SyncOptions,
        now: @escaping @Sendable () -> Date = { Date() },
        sleep: @escaping @Sendable (Duration) async throws -> Void = { try await Task.sleep(for: $0) }
    ) {
        self.catalog = catalog
        self.recorder = recorder
        self.options = options
        self.now = now
        self.sleep = sleep
    }

    /// Runs the whole flow. On cancellation (Ctrl-C) it stops at the next await and returns the
    /// report with `phase == .interrupted`; everything learnt so far is already journaled.
    /// `storage` (cloud and bucket) is asked for only when something must be sent, so a re-run
    /// with nothing to do costs no server-info request.
    public func run(items: [SyncItem], project: String,
                    storage: @Sendable () async throws -> any ImageStorage) async throws -> SyncReport {
        var report = SyncReport()
        report.total = items.count
        do {
            try await sync(items: items, project: project, storage: storage, report: &report)
        } catch is CancellationError {
            report.phase = .interrupted
        }
        try await finish(items: items, report: &report)
        return report
    }

    public func run(items: [SyncItem], project: String, storage: any ImageStorage) async throws -> SyncReport {
        try await run(items: items, project: project, storage: { storage })
    }

    func sync(items: [SyncItem], project: String, storage: @Sendable () async throws -> any ImageStorage,
              report: inout SyncReport) async throws {
        // 1. Diff: ask hasImage for every image, those the manifest holds as Ready included: the
        //    server's truth wins (images deleted in the web app, a project emptied are noticed
        //    and sent again). Batched, 100 per request: a no-change re-run costs ceil(N/100).
        await recorder.setPhase(.checking)
        await recorder.reserveFacts(items.count)
        let recorded = SyncPlan(items: items, facts: await recorder.facts)
        try await lookUp(items.map(\.sha1), project: project)

        // 2. Plan: Ready is done, Uploaded is being processed, Pending/Invalid/absent are sent.
        var plan = SyncPlan(items: items, facts: await recorder.facts)
        let held = await holdRefused(&plan)
        report.heldInvalid = held.map(\.sha1)
        let stillDone = Set(plan.done.map(\.sha1))
        report.alreadyReady = recorded.done.filter { stillDone.contains($0.sha1) }.count
        report.lostOnServer = recorded.done.filter { !stillDone.contains($0.sha1) }.map(\.sha1)
        let toCheck = plan.waiting + plan.toSend
        report.toSend = plan.toSend.map(\.sha1)
        report.bytesToSend = plan.bytesToSend
        await recorder.setPlan(images: plan.toSend.count, bytes: plan.bytesToSend)
        if options.dryRun { return }

        // 3. Upload.
        if !plan.toSend.isEmpty {
            let chosen = try await storage()
            await recorder.setPhase(.uploading)
            for (_, group) in Dictionary(grouping: plan.toSend, by: { $0.source.tree.root }) {
                group[0].source.tree.willUpload(group.map(\.source.path))
            }
            try await upload(plan.toSend, project: project, storage: chosen)
        }

        // 4. Wait for processing.
        if let limit = options.waitLimit {
            await recorder.setPhase(.waiting)
            try await waitForProcessing(items: toCheck, project: project, limit: limit)
        }
    }

    // MARK: Diff

    func lookUp(_ checksums: [String], project: String) async throws {
        try await forEachConcurrently(checksums.chunked(by: catalog.batchLimit), width: options.lookupConcurrency) { batch in
            let found = try await catalog.hasImages(project: project, checksums: batch)
            let events = batch.map { sha1 -> JournalEvent in
                guard let image = found[sha1] else {
                    // Not in the project: whatever we recorded before (another project's id, a
                    // lost image) no longer holds.
                    return JournalEvent(.state, sha1: sha1, at: now(), state: .absent, errors: [])
                }
                return JournalEvent(.state, sha1: sha1, at: now(), imageID: image.id, filename: image.filename,
                                    state: image.state, errors: image.errors)
            }
            try await recorder.record(events)
        }
    }

    /// Takes out of the plan the Invalid images whose bytes are not to be sent again: refused
    /// in this run already, or refused twice (a first send and one re-send) unless
    /// `--resend-invalid`. A changed file has a new checksum, hence no refusals.
    func holdRefused(_ plan: inout SyncPlan) async -> [SyncItem] {
        let facts = await recorder.facts
        let refusedNow = await recorder.refusedThisRun
        var held: [SyncItem] = []
        plan.toSend.removeAll { item in
            guard let f = facts[item.sha1], f.state == .invalid else { return false }
            let hold = refusedNow.contains(item.sha1) || (!options.resendInvalid && f.refusedSends >= 2)
            if hold { held.append(item) }
            return hold
        }
        return held
    }

    // MARK: Upload

    func upload(_ items: [SyncItem], project: String, storage: any ImageStorage) async throws {
        guard !items.isEmpty else { return }
        let window = RegistrationWindow(first: options.registrationWindow, limit: min(storage.batchLimit, catalog.batchLimit))
        let workers = options.transfers.most
        let feeder = RegistrationFeeder(items: items, window: window, lowWater: workers, now: now) { batch in
            try await register(batch, project: project, storage: storage)
        }
        // Fixed: `workers` move images all the time. Adaptive: `ceiling` workers, of which the
        // controller's limit move images while the others wait for a turn.
        let adaptive: AdaptiveTransfers?
        switch options.transfers {
        case .fixed:
            adaptive = nil
            recorder.metrics.update { $0.transferLimit = workers; $0.peakTransferLimit = workers }
        case .adaptive:
            adaptive = AdaptiveTransfers(ceiling: workers, metrics: recorder.metrics)
        }
        do {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<workers {
                    group.addTask {
                        images: while true {
                            try await adaptive?.enter()
                            do {
                                guard let ticket = try await feeder.next() else { break images }
                                if try await send(ticket, project: project, storage: storage) {
                                    await feeder.stored(bytes: ticket.item.source.size)
                                }
                            } catch {
                                await adaptive?.leave()
                                throw error
                            }
                            await adaptive?.leave()
                        }
                        await adaptive?.leave()
                    }
                }
                if let adaptive {
                    // Stalls show up only on a clock: no image ends while nothing moves.
                    group.addTask { await adaptive.sampleEvery(.milliseconds(250)) }
                }
                var finished = 0
                while try await group.next() != nil {
                    finished += 1
                    if finished == workers { group.cancelAll() }  // the sampler
                }
            }
            // The last `stored` lines did not wait for their fsync: an fsync that failed under
            // them stops the run here, as it would have stopped the next append.
            try await recorder.waitUntilDurable()
        } catch {
            // A background registration must not outlive the upload (it would journal after
            // the fold); stop it and let what it already recorded stand.
            await feeder.cancel()
            throw error
        }
    }

    /// A registered image ready to transfer.
    struct Ticket: Sendable {
        var item: SyncItem
        var imageID: String
        var grant: UploadGrant
    }

    /// Registers a batch and signals startImageUpload for all of them; records both.
    func register(_ items: [SyncItem], project: String, storage: any ImageStorage) async throws -> [Ticket] {
        let registrations = items.map { ImageRegistration(sha1: $0.sha1, filename: $0.filename, imageType: $0.imageType) }
        let answers = try await storage.register(project: project, images: registrations)
        let receivedAt = now()
        var events: [JournalEvent] = []
        var tickets: [Ticket] = []
        for item in items {
            switch answers[item.sha1] {
            case .success(let registered)?:
                events.append(JournalEvent(.registered, sha1: item.sha1, at: receivedAt, imageID: registered.image.id,
                                           filename: registered.image.filename, bucket: storage.bucket,
                                           state: registered.image.state, cloud: storage.cloud))
                tickets.append(Ticket(item: item, imageID: registered.image.id, grant: registered.grant))
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
        CrashPoint.reached("registered")  // test hook: registered and journaled, nothing sent
        return tickets
    }

    /// Sends one image. A grant about to expire is replaced before use; a refused grant is
    /// never retried: register once more for a fresh one, then give the image up. True when
    /// the store has the bytes.
    @discardableResult
    func send(_ first: Ticket, project: String, storage: any ImageStorage) async throws -> Bool {
        var ticket = first
        // Two budgets: grants replaced because they were about to expire, and the one fresh grant
        // a refusal earns. Spending one never uses up the other.
        var staleRefreshes = 0
        var refusals = 0
        let metrics = recorder.metrics
        while true {
            try Task.checkCancellation()
            if isStale(ticket.grant), staleRefreshes < 3 {
                staleRefreshes += 1
                await recorder.countGrantRefresh(sha1: ticket.item.sha1)
                guard let renewed = try await register([ticket.item], project: project, storage: storage).first else { return false }
                ticket = renewed
                continue
            }
            let sentAt = now()
            let token = metrics.beginTransfer(name: ticket.item.source.path, size: ticket.item.source.size)
            let outcome: TransferOutcome
            do {
                outcome = try await storage.transfer(ticket.item.source, contentType: ticket.item.contentType,
                                                     grant: ticket.grant, resume: await resume(ticket.item.sha1)) { delta in
                    metrics.addBytes(delta, transfer: token)
                }
                metrics.endTransfer(token)
            } catch {
                metrics.endTransfer(token)
                throw error
            }
            switch outcome {
            case .stored:
                await recorder.countTransfer(stored: true, bytes: ticket.item.source.size)
                // Not waiting for the fsync: a power cut that loses this line costs the bytes sent
                // again at worst (the next run asks the server first), and the next image starts
                // sooner.
                try await recorder.record(JournalEvent(.stored, sha1: ticket.item.sha1, at: now(), imageID: ticket.imageID),
                                          waitForDisk: false)
                if let completed = try await storage.complete(imageID: ticket.imageID) {
                    try await recorder.record(JournalEvent(.state, sha1: ticket.item.sha1, at: now(), imageID: completed.id,
                                                           state: completed.state, errors: completed.errors))
                }
                return true
            case .grantRejected(let code, let message):
                await recorder.countTransfer(stored: false, bytes: 0)
                if refusals >= 1 {
                    try await recorder.record(JournalEvent(
                        .failed, sha1: ticket.item.sha1, at: now(),
                        reason: Self.refusedTwice(code: code, message: message, grant: ticket.grant, sentAt: sentAt, endedAt: now(),
                                                  transfers: recorder.metrics.snapshot.transferLimit)))
                    return false
                }
                refusals += 1
                await recorder.countGrantRefresh(sha1: ticket.item.sha1)
                guard let renewed = try await register([ticket.item], project: project, storage: storage).first else { return false }
                ticket = renewed
            case .unreachable(let reason):
                await recorder.countTransfer(stored: false, bytes: 0)
                try await recorder.record(JournalEvent(.failed, sha1: ticket.item.sha1, at: now(), reason: reason, transient: true))
                return false
            case .failed(let reason):
                await recorder.countTransfer(stored: false, bytes: 0)
                // A source that changed under us is hashed again by the next run, whatever its stat says.
                let change = ticket.item.source.changeFound()
                try await recorder.record(JournalEvent(.failed, sha1: ticket.item.sha1, at: now(), reason: change ?? reason,
                                                       rehash: change != nil ? true : nil))
                return false
            }
        }
    }

    /// Why a store refused an image's URL twice, and what to do. When the URL's lifetime (on this
    /// laptop's clock, counted from its receipt) had run out by the time the store answered, the
    /// time on the way explains the refusal (latency, a slow body, a lifetime shorter than a
    /// registration round trip): the link is too slow for the server's URL lifetime, whatever
    /// the clock says. A URL refused while still valid here points at a clock or signing problem.
    static func refusedTwice(code: String, message: String, grant: UploadGrant, sentAt: Date, endedAt: Date,
                             transfers: Int) -> String {
        let refusal = "the store refused the upload twice (\(code): \(message))"
        if let expiry = grant.expiry, endedAt >= expiry.at {
            let lifetime = Int(expiry.lifetime.rounded())
            let took = String(format: "%.1f", endedAt.timeIntervalSince(sentAt))
            let fewer = transfers > 1 ? "run again with fewer --transfers (e.g. --transfers \(max(1, transfers / 2))) so each image goes faster, or" : "run again"
            return "the link is too slow for the server's URL lifetime (\(lifetime) s): \(refusal) after its URL had expired on the way (the last try took \(took) s); \(fewer) from a faster link"
        }
        return "\(refusal) while its URL was still valid by this laptop's clock; check the laptop's clock and run again"
    }

    /// The multipart upload recorded for an image, and a journal hook for its next steps.
    func resume(_ sha1: String) async -> TransferResume {
        let recorder = self.recorder
        let now = self.now
        return TransferResume(multipart: await recorder.multipart(of: sha1)) { step in
            switch step {
            case .multipartStarted(let id, let key, let partSize):
                try await recorder.record(JournalEvent(.multipartStarted, sha1: sha1, at: now(), uploadID: id, key: key,
                                                       partSize: partSize))
            case .partStored(let id, let part):
                try await recorder.record(JournalEvent(.partStored, sha1: sha1, at: now(), uploadID: id, part: part))
            case .multipartAbandoned(let id):
                try await recorder.record(JournalEvent(.multipartAbandoned, sha1: sha1, at: now(), uploadID: id))
            }
        }
    }

    /// Stale = less than a quarter of its lifetime (at most 60 s) left, measured on the local
    /// clock from when the grant arrived, so a laptop whose clock is off does not matter. Grants
    /// that do not expire by themselves (a shared credential renews itself) are never stale.
    func isStale(_ grant: UploadGrant) -> Bool {
        guard let expiry = grant.expiry else { return false }
        return expiry.at.timeIntervalSince(now()) < Self.staleMargin(lifetime: expiry.lifetime)
    }

    /// What must be left of a grant's lifetime for it to be used: a quarter, at most 60 s.
    static func staleMargin(lifetime: TimeInterval) -> TimeInterval { min(60, lifetime / 4) }

    // MARK: Wait

    func waitForProcessing(items: [SyncItem], project: String, limit: Duration) async throws {
        let deadline = now().addingTimeInterval(limit.seconds)
        var interval = options.pollInitial
        var announced = false
        while true {
            // Poll what the server is processing: Uploaded, or a state this client does not know
            // (the real service may have intermediate ones). Pending without our bytes will not move.
            let pending = await recorder.inProgress(items)
            if !announced {
                // The display's total for this phase (the upload's plan says nothing about it).
                announced = true
                await recorder.setAwaiting(images: pending.count)
            }
            if pending.isEmpty || now() >= deadline { return }
            try await sleep(interval)
            interval = min(options.pollMax, interval * 2)
            try await forEachConcurrently(pending.chunked(by: catalog.batchLimit), width: options.lookupConcurrency) { batch in
                let states = try await catalog.imageStates(project: project, imageIDs: batch.map(\.id))
                var events: [JournalEvent] = []
                for (sha1, id) in batch {
                    if let image = states[id] {
                        guard !image.state.isInProgress else { continue }
                        events.append(JournalEvent(.state, sha1: sha1, at: now(), imageID: id, filename: image.filename,
                                                   state: image.state, errors: image.errors))
                    } else {
                        events.append(JournalEvent(.state, sha1: sha1, at: now(), state: .absent, errors: []))
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
            let state = facts[item.sha1]?.state
            if let reason = failures[item.sha1] {
                report.failed[item.sha1] = reason
            } else if state.isDone {
                report.ready.append(item.sha1)
            } else if state == .invalid {
                report.invalid[item.sha1] = facts[item.sha1]?.errors ?? []
            } else if state.isInProgress {
                report.processing.append(item.sha1)
            } else {
                report.notSent.append(item.sha1)
            }
        }
    }
}

/// Hands out registered tickets to the transfer workers. The next window (one aliased
/// registration + one batched startImageUpload) is registered in the background when fewer than
/// `refillMark` tickets are left (one per worker at least, more when registrations are slow), so
/// the workers never wait for a registration round trip. Each window is sized by `RegistrationWindow` from the lifetime of the
/// grants the last one brought and the upload rate measured so far (bytes stored since the first
/// ticket went out), so grants are still fresh when used and a crash wastes at most two windows.
actor RegistrationFeeder {
    typealias Register = @Sendable ([SyncItem]) async throws -> [SyncEngine.Ticket]
    private var remaining: ArraySlice<SyncItem>
    private var ready: [SyncEngine.Ticket] = []
    private var refill: Task<[SyncEngine.Ticket], any Error>?
    private let window: RegistrationWindow
    private let lowWater: Int
    private let now: @Sendable () -> Date
    private let register: Register
    private var lifetime: RegistrationWindow.Lifetime = .unknown
    private var firstHandedOut: Date?
    private var handedOut = 0
    private var bytesStored: Int64 = 0
    /// When the registration under way was sent, how long the last one took, and its size.
    private var refillStarted: Date?
    private var lastRefillSeconds: TimeInterval = 0
    private var lastWindow = 0

    init(items: [SyncItem], window: RegistrationWindow, lowWater: Int, now: @escaping @Sendable () -> Date,
         register: @escaping Register) {
        self.remaining = items[...]
        self.window = window
        self.lowWater = lowWater
        self.now = now
        self.register = register
    }

    /// A worker's report that the store has an image's bytes (the rate the windows are sized by).
    func stored(bytes: Int64) { bytesStored += bytes }

    /// Bytes per second stored since the first ticket went out; nil before anything is stored.
    var measuredRate: Double? {
        guard bytesStored > 0, let firstHandedOut else { return nil }
        let elapsed = now().timeIntervalSince(firstHandedOut)
        return elapsed > 0 ? Double(bytesStored) / elapsed : nil
    }

    func next() async throws -> SyncEngine.Ticket? {
        while true {
            try Task.checkCancellation()
            if !ready.isEmpty {
                let ticket = ready.removeFirst()
                if firstHandedOut == nil { firstHandedOut = now() }
                handedOut += 1
                if ready.count < refillMark, refill == nil { startRefill() }
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
                    if let refillStarted { lastRefillSeconds = now().timeIntervalSince(refillStarted) }
                    let seen = RegistrationWindow.lifetime(of: tickets.map(\.grant))
                    if seen != .unknown { lifetime = seen }
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

    /// Tickets left when the next registration is sent: enough for the workers to go on for
    /// twice as long as the last registration took at the pace tickets are handed out (a window
    /// of 100 aliased registrations can take a server a few hundred ms, which a mark of one ticket
    /// per worker left as idle time on every window), never fewer than one per worker. At most the
    /// last window's size: grants then wait at most two windows, which `RegistrationWindow` sizes
    /// to fit a grant's usable lifetime.
    var refillMark: Int {
        guard let firstHandedOut, lastRefillSeconds > 0 else { return lowWater }
        let elapsed = now().timeIntervalSince(firstHandedOut)
        guard elapsed > 0 else { return lowWater }
        let pace = Double(handedOut) / elapsed
        let lead = Int((pace * lastRefillSeconds * 2).rounded(.up))
        return max(lowWater, min(lead, lastWindow))
    }

    private func startRefill() {
        guard !remaining.isEmpty else { return }
        let size = window.size(next: remaining.lazy.map(\.source.size), lifetime: lifetime, bytesPerSecond: measuredRate)
        let batch = Array(remaining.prefix(size))
        remaining = remaining.dropFirst(batch.count)
        refillStarted = now()
        lastWindow = batch.count
        let register = register
        refill = Task { try await register(batch) }
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

extension Array {
    /// Consecutive slices of at most `size` elements.
    func chunked(by size: Int) -> [[Element]] {
        stride(from: 0, to: count, by: Swift.max(1, size)).map { Array(self[$0..<Swift.min($0 + size, count)]) }
    }
}

extension Duration {
    /// The duration in (fractional) seconds.
    public var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}
