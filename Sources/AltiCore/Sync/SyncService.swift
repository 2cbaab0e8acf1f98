import Foundation

/// Everything `alti sync` was asked to do, parsed and validated.
public struct SyncRequest: Sendable {
    public var paths: [String]
    public var manifestOverride: String?
    public var project: String
    public var cloud: String?
    public var bucket: String?
    public var options: SyncOptions
    public var startReconstruction = false
    public var startAnyway = false
    public var hashJobs = ScanService.defaultJobs
    /// Read the archives found inside folders (zip, tar, ...) in place, as sources of their own.
    public var readArchives = true
    /// `--keep-trying[=DURATION]`: wait out a dead link instead of stopping (nil: stop).
    public var keepTrying: KeepTrying?

    public init(paths: [String], project: String, manifestOverride: String? = nil, cloud: String? = nil,
                bucket: String? = nil, options: SyncOptions = SyncOptions()) {
        self.paths = paths
        self.project = project
        self.manifestOverride = manifestOverride
        self.cloud = cloud
        self.bucket = bucket
        self.options = options
    }
}

/// How `--keep-trying` waits for a link to come back: capped exponential backoff with jitter
/// (5 s, 10 s, ... up to 5 min, each between half and all of that), a cheap probe (the project
/// query) after each wait, and the whole run bounded by `limit` (nil: until every image is Ready).
public struct KeepTrying: Sendable {
    public var limit: Duration?
    public var firstDelay: Duration = .seconds(5)
    public var maxDelay: Duration = .seconds(300)

    public init(limit: Duration?) { self.limit = limit }

    /// The wait before probe number `attempt` (0-based).
    func delay(_ attempt: Int, random: Double = Double.random(in: 0.5...1)) -> Duration {
        let ceiling = min(maxDelay.seconds, firstDelay.seconds * pow(2, Double(min(attempt, 20))))
        return .milliseconds(Int64(ceiling * random * 1000))
    }
}

/// What a sync did, for the renderers: the report plus the context around it.
public struct SyncSummary: Sendable {
    public var endpoint: String
    public var project: RemoteProject?
    public var cloud: String
    public var bucket: String
    public var sources: [ScanReport]
    public var manifests: [String]
    public var report: SyncReport
    public var pathsBySHA1: [String: String]
    public var metrics: SyncMetrics.Snapshot
    public var dryRun: Bool
    public var waited: Bool
    public var offlinePlan: Bool
    public var seconds: Double
    /// Why the plan was made from the manifests alone (no network, no credentials).
    public var offlineReason: String? = nil
    /// `--timeout` as the user wrote it, when the run stopped on it.
    public var timeLimit: String? = nil
    /// Each image's server id as recorded at the end (absent: none yet): `--events` image results.
    public var serverIDs: [String: String] = [:]
    /// Each image's size in bytes, by checksum.
    public var sizesBySHA1: [String: Int64] = [:]
}

/// `alti sync`: open the sources (scan) -> resolve the project -> diff -> upload -> wait ->
/// write back, with every server fact journaled as it arrives and folded into the manifests at
/// the end, on every exit.
public struct SyncService: Sendable {
    public let catalog: any RemoteCatalog
    public let storages: any StorageFactory
    public let endpoint: String
    public let metrics: SyncMetrics
    public var scanner = ScanService()
    public var scanProgress: (@Sendable (ScanProgress) -> Void)?
    /// Handed the recorder before the engine starts (displays subscribe to its events).
    public var onRecorder: (@Sendable (SyncRecorder) async -> Void)?
    /// One line each time `--keep-trying` starts waiting for the link.
    public var onWaiting: (@Sendable (String) -> Void)?
    public var sleep: @Sendable (Duration) async throws -> Void = { try await Task.sleep(for: $0) }

    public init(catalog: any RemoteCatalog, storages: any StorageFactory, endpoint: String, metrics: SyncMetrics) {
        self.catalog = catalog
        self.storages = storages
        self.endpoint = endpoint
        self.metrics = metrics
    }

    public func run(_ request: SyncRequest) async throws -> SyncSummary {
        let started = Date()
        // The project's preflight (a read) goes out while the scan runs, so its round trip hides
        // behind the hashing; its answer is read only once the scan is done (step 2).
        let catalog = self.catalog
        let projectID = request.project
        async let early = Result(awaiting: { try await catalog.projectAndServerInfo(projectID) })

        // 1. Scan (offline work first: whatever happens to the network, the hashes are kept).
        let sessions = try await Self.openSessions(request, scanner: scanner, progress: scanProgress)
        defer { for session in sessions { session.close() } }

        // 2. Resolve the project (with the server's mode and buckets in the same request, for
        //    the storage choice); refuse manifests bound elsewhere.
        var waiter = Waiter(keepTrying: request.options.dryRun ? nil : request.keepTrying, onWaiting: onWaiting, sleep: sleep)
        var project: RemoteProject
        var server: ServerInfo?
        var preflight: Result<(project: RemoteProject, server: ServerInfo?), any Error>? = await early
        while true {
            do {
                let found = if let first = preflight.take() { try first.get() } else {
                    try await catalog.projectAndServerInfo(request.project)
                }
                project = found.project
                server = found.server
                break
            } catch let error as AltiError where error.kind == .unavailable {
                if request.options.dryRun {
                    return Self.offlinePlan(sessions, request: request, endpoint: endpoint, metrics: metrics, started: started,
                                            reason: "the server could not be reached")
                }
                let (items, facts) = ManifestSession.items(of: sessions)
                try await waiter.wait(error, left: SyncPlan(items: items, facts: facts))
            }
        }
        for session in sessions { try session.checkBinding(endpoint: endpoint, projectID: project.id) }
        // Bind before the first journal event: a journal is then always about the manifest's own
        // project, even if this run dies before its end.
        if !request.options.dryRun {
            for session in sessions { try session.bind(endpoint: endpoint, projectID: project.id) }
        }

        // 3. Sync the unique, usable images through the engine; the storage (cloud, bucket) is
        //    chosen only if something must be sent.
        let (items, facts) = ManifestSession.items(of: sessions)
        // Handed over, not shared: a copy kept here would make the recorder's first change copy
        // every checksum's facts.
        let recorder = SyncRecorder(initial: consume facts, journals: sessions.compactMap(\.journal), metrics: metrics)
        await onRecorder?(recorder)
        let choice = StorageChoice(catalog: catalog, storages: storages, request: request,
                                   bound: sessions.first?.manifest.remote, known: server)
        let engine = SyncEngine(catalog: catalog, recorder: recorder, options: request.options)
        var report: SyncReport
        do {
            while true {
                do {
                    report = try await engine.run(items: items, project: project.id) { try await choice.storage() }
                } catch let error as AltiError where error.kind == .unavailable && waiter.isOn {
                    try await waiter.wait(error, left: SyncPlan(items: items, facts: await recorder.facts))
                    continue
                }
                // Uploads that failed on the network (each after its own retries): wait for the
                // link, then the engine diffs again and sends what is still missing.
                let transient = await recorder.transientFailures.intersection(report.failed.keys)
                if report.phase == .complete, !transient.isEmpty, waiter.isOn {
                    let cause = AltiError(.unavailable, "\(transient.count == 1 ? "1 upload" : "\(transient.count) uploads") failed on the network")
                    try await waiter.wait(cause, left: SyncPlan(items: items, facts: await recorder.facts))
                    continue
                }
                break
            }
            // 4. Reconstruction, if asked and possible.
            if report.phase == .complete, !request.options.dryRun,
               request.startAnyway || (request.startReconstruction && report.allReady) {
                report.reconstruction = try await startReconstructionOnce(project: project.id, anyway: request.startAnyway)
            }
        } catch {
            // Whatever stopped the run (no network, a refused key, Ctrl-C during the last step),
            // what it learnt goes into the manifests before the error is reported.
            await recorder.finish()
            _ = try? await writeBack(sessions, choice: choice)
            if let lost = error as? AltiError, lost.kind == .unavailable {
                throw Self.offline(lost, left: SyncPlan(items: items, facts: await recorder.facts), keepTrying: request.keepTrying)
            }
            throw error
        }
        await recorder.finish()
        // The ids for the summary are read now and the recorder lets its facts go: the fold
        // below builds the same facts again from the journal, and both at once were the peak
        // (about 170 bytes a checksum each).
        let serverIDs = await recorder.releaseFacts().compactMapValues { $0.imageID.isEmpty ? nil : $0.imageID }
        // Give back to the system what the scan, the plan and the transfers freed, before the
        // fold and the save allocate again: glibc keeps freed memory in the arena of the thread
        // that freed it, and the fold runs on whichever thread of the pool it lands on.
        MemoryRelease.trim()

        // 5. Write back: fold the journal, save atomically, drop the journal.
        let (cloud, bucket) = try await writeBack(sessions, choice: choice)
        var summary = SyncSummary(
            endpoint: endpoint, project: project, cloud: cloud, bucket: bucket, sources: sessions.map(\.scanReport),
            manifests: sessions.map(\.location.file.path), report: report, pathsBySHA1: Self.paths(items),
            metrics: metrics.snapshot, dryRun: request.options.dryRun, waited: request.options.waitLimit != nil,
            offlinePlan: false, seconds: Date().timeIntervalSince(started))
        summary.serverIDs = serverIDs
        summary.sizesBySHA1 = Self.sizes(items)
        return summary
    }

    /// Waits out a dead link for `--keep-trying`; without it (or past its limit) a wait is the
    /// offline error instead.
    struct Waiter {
        let keepTrying: KeepTrying?
        let onWaiting: (@Sendable (String) -> Void)?
        let sleep: @Sendable (Duration) async throws -> Void
        let deadline: Date?
        var waits = 0

        init(keepTrying: KeepTrying?, onWaiting: (@Sendable (String) -> Void)?, sleep: @escaping @Sendable (Duration) async throws -> Void) {
            self.keepTrying = keepTrying
            self.onWaiting = onWaiting
            self.sleep = sleep
            deadline = keepTrying?.limit.map { Date().addingTimeInterval($0.seconds) }
        }

        var isOn: Bool { keepTrying != nil && (deadline.map { Date() < $0 } ?? true) }

        mutating func wait(_ error: AltiError, left: SyncPlan) async throws {
            guard let keepTrying, isOn else { throw SyncService.offline(error, left: left, keepTrying: self.keepTrying) }
            var delay = keepTrying.delay(waits)
            if let deadline { delay = min(delay, .milliseconds(Int64(max(0, deadline.timeIntervalSinceNow) * 1000))) }
            waits += 1
            let cause = error.message.split(separator: ";").first.map(String.init) ?? error.message
            let images = left.toSend.count == 1 ? "1 image" : "\(left.toSend.count) images"
            let until = deadline.map { " (until \(RFC3339.string(from: $0)))" } ?? ""
            onWaiting?("waiting for the link (\(cause)): trying again in \(Int(delay.seconds.rounded())) s; "
                + "\(images) (\(ByteCount.text(left.bytesToSend))) still to send\(until); Ctrl-C stops")
            try await sleep(delay)
        }
    }

    /// How the refusals of a server in a mode other than Normal begin (`support.systemMode`
    /// here, a read-only refusal of a mutation in `AltizureCatalog.mapError`).
    public static let serverModePrefix = "the server is in "

    /// The one line a sync that found no network ends with: why, and what is left to send (the
    /// images not on the server per the manifests; what the run learnt is already saved).
    /// `keepTrying`: the run's `--keep-trying`, if given (then its time is up); without it the
    /// line points at it, since a patient user may want the run to wait for the link.
    static func offline(_ error: AltiError, left plan: SyncPlan, keepTrying: KeepTrying? = nil) -> AltiError {
        // Already the offline line (a Waiter past its limit): do not wrap it twice.
        if error.message.contains(" still to send") { return error }
        // A server that answered with its mode (ReadOnly: maintenance) is reachable: saying
        // "offline" would send the user to check a network that works.
        let answered = error.message.hasPrefix(Self.serverModePrefix)
        let cause = error.message.hasPrefix("offline") || answered ? error.message : "offline: \(error.message)"
        let left = plan.toSend.count == 1 ? "1 image" : "\(plan.toSend.count) images"
        // The cause may already say what to do (sign in to a Wi-Fi portal, run again).
        let advice = cause.contains(" again") ? "" : ": run alti sync again when online (nothing recorded was lost)"
        let patience = keepTrying != nil ? "; --keep-trying's time is up"
            : answered ? "; or add --keep-trying to wait until it accepts uploads and resume in this run"
            : "; or add --keep-trying to wait for the link and resume in this run"
        return AltiError(.unavailable, "\(cause); \(left) (\(ByteCount.text(plan.bytesToSend))) still to send\(advice)\(patience)")
    }

    /// Starts the reconstruction unless the project already has a task: a re-run of the same
    /// command after a dropped link must not start a second one (altizure-api.md: one task per
    /// project). The check costs one request, only when a start is asked for.
    func startReconstructionOnce(project: String, anyway: Bool) async throws -> ReconstructionOutcome {
        if let current = try await catalog.reconstructionTask(project: project),
           let state = current.taskState, !ReconstructionOutcome.restartableStates.contains(state) {
            return ReconstructionOutcome(taskID: current.taskID, taskState: state, alreadyUnderway: true)
        }
        return anyway ? try await catalog.preStartReconstruction(project: project)
                      : try await catalog.startReconstruction(project: project)
    }

    static func sizes(_ items: [SyncItem]) -> [String: Int64] {
        Dictionary(items.map { ($0.sha1, $0.source.size) }, uniquingKeysWith: { a, _ in a })
    }

    static func paths(_ items: [SyncItem]) -> [String: String] {
        Dictionary(items.map { ($0.sha1, $0.source.displayPath) }, uniquingKeysWith: { a, _ in a })
    }

    /// Records the cloud and bucket used and folds each journal into its manifest.
    @discardableResult
    func writeBack(_ sessions: [ManifestSession], choice: StorageChoice) async throws -> (cloud: String, bucket: String) {
        let first = sessions.first?.manifest.remote
        let chosen = await choice.chosen
        for session in sessions { try session.fold(cloud: chosen?.cloud, bucket: chosen?.bucket) }
        return chosen ?? (first?.cloud ?? "", first?.bucket ?? "")
    }

    /// The request's sources, checked, opened and scanned (the caller closes them).
    static func openSessions(_ request: SyncRequest, scanner: ScanService,
                             progress: (@Sendable (ScanProgress) -> Void)?) async throws -> [ManifestSession] {
        try await ManifestSession.openAll(
            roots: try ManifestSession.checkSources(request.paths), manifestOverride: request.manifestOverride,
            scanner: scanner, jobs: request.hashJobs, readArchives: request.readArchives, progress: progress)
    }

    /// `--dry-run` with no credentials: scan and plan from the manifests alone, no server at all.
    public static func planOffline(_ request: SyncRequest, scanner: ScanService, endpoint: String, reason: String,
                                   progress: (@Sendable (ScanProgress) -> Void)? = nil) async throws -> SyncSummary {
        let started = Date()
        let sessions = try await openSessions(request, scanner: scanner, progress: progress)
        defer { for session in sessions { session.close() } }
        return offlinePlan(sessions, request: request, endpoint: endpoint, metrics: SyncMetrics(), started: started,
                           reason: reason)
    }

    /// `--dry-run` without a network: the plan from what the manifests recorded. Facts count only
    /// for a manifest bound to the project asked for.
    static func offlinePlan(_ sessions: [ManifestSession], request: SyncRequest, endpoint: String, metrics: SyncMetrics,
                            started: Date, reason: String) -> SyncSummary {
        var report = SyncReport()
        var (items, facts) = ManifestSession.items(of: sessions)
        if !sessions.allSatisfy({ $0.manifest.remote.projectID.hasPrefix(request.project) }) { facts = [:] }
        let plan = SyncPlan(items: items, facts: facts)
        items = plan.done + plan.waiting + plan.toSend
        report.total = plan.total
        report.alreadyReady = plan.done.count + plan.waiting.count
        report.toSend = plan.toSend.map(\.sha1)
        report.bytesToSend = plan.bytesToSend
        return SyncSummary(
            endpoint: endpoint, project: nil, cloud: request.cloud ?? "", bucket: request.bucket ?? "",
            sources: sessions.map(\.scanReport), manifests: sessions.map(\.location.file.path), report: report,
            pathsBySHA1: Self.paths(items), metrics: metrics.snapshot, dryRun: true, waited: false, offlinePlan: true,
            seconds: Date().timeIntervalSince(started), offlineReason: reason, sizesBySHA1: Self.sizes(items))
    }
}

/// Chooses cloud and bucket once, on first need, and makes their storage: `--cloud` or the
/// first cloud of the server's list that this client supports; `--bucket`, else the bucket the
/// manifest already uses with that cloud (re-runs stay consistent), else the server's first
/// `nearestBuckets` entry for it.
public actor StorageChoice {
    let catalog: any RemoteCatalog
    let storages: any StorageFactory
    let request: SyncRequest
    let bound: Manifest.Remote?
    private var made: (any ImageStorage)?
    /// The server facts the preflight brought, used once: a choice that fails on them (a
    /// ReadOnly server) asks the server again next time (`--keep-trying` waits for a change).
    private var known: ServerInfo?

    public init(catalog: any RemoteCatalog, storages: any StorageFactory, request: SyncRequest, bound: Manifest.Remote?,
                known: ServerInfo? = nil) {
        self.catalog = catalog
        self.storages = storages
        self.request = request
        self.bound = bound
        self.known = known
    }

    public var chosen: (cloud: String, bucket: String)? { made.map { ($0.cloud, $0.bucket) } }

    public func storage() async throws -> any ImageStorage {
        if let made { return made }
        let info: ServerInfo
        if let known {
            self.known = nil
            info = known
        } else {
            info = try await catalog.serverInfo()
        }
        guard info.systemMode == "Normal" else {
            throw AltiError(.unavailable, "\(SyncService.serverModePrefix)\(info.systemMode.isEmpty ? "an unknown" : info.systemMode) mode and accepts no uploads now; run again later")
        }
        let supported = storages.supportedClouds
        let serverClouds = info.supportedClouds.map { $0.uppercased() }
        let cloud: String
        if let wanted = request.cloud?.uppercased() {
            guard supported.contains(wanted) else {
                throw AltiError(.usage, "--cloud \(request.cloud!) is not supported by this alti (supported: \(supported.joined(separator: ", ")))")
            }
            guard serverClouds.contains(wanted) else {
                throw AltiError(.usage, "the server does not accept \(wanted) uploads (it offers \(serverClouds.joined(separator: ", "))); choose another --cloud")
            }
            cloud = wanted
        } else if let first = serverClouds.first(where: { supported.contains($0) }) {
            cloud = first
        } else {
            throw AltiError(.protocolError, "the server offers only \(serverClouds.joined(separator: ", ")) uploads; this alti supports \(supported.joined(separator: ", "))")
        }
        let bucket: String
        if let given = request.bucket {
            bucket = given
        } else if let bound, bound.cloud.uppercased() == cloud, !bound.bucket.isEmpty {
            bucket = bound.bucket
        } else if let nearest = info.nearestBuckets.first(where: { $0.cloud.uppercased() == cloud }) {
            bucket = nearest.bucket
        } else {
            throw AltiError(.protocolError, "the server suggested no \(cloud) bucket; choose one with --bucket")
        }
        let storage = try storages.storage(cloud: cloud, bucket: bucket)
        made = storage
        return storage
    }
}

extension Result where Failure == any Error {
    /// `Result(catching:)` for async work.
    init(awaiting body: () async throws -> Success) async {
        do { self = .success(try await body()) } catch { self = .failure(error) }
    }
}
