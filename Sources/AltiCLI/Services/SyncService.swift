import AltiAPI
import AltiCore
import Foundation

/// Everything `alti sync` was asked to do, parsed and validated.
struct SyncRequest: Sendable {
    var paths: [String]
    var manifestOverride: String?
    var project: String
    var cloud: String?
    var bucket: String?
    var options: SyncOptions
    var startReconstruction = false
    var startAnyway = false
    var scanJobs = ScanService.defaultJobs
}

/// One source taking part in a sync: its manifest (locked for the whole run) and journal.
final class SyncSource: @unchecked Sendable {
    let root: String
    let location: ManifestLocation
    let lock: ManifestLock
    var manifest: Manifest
    var scanReport: ScanReport
    let journalPath: String
    /// Opened once the manifest is bound to the project (never for a dry run).
    var journal: SyncJournal?
    /// The scan's write time: the racy-check reference must stay the time the LOCAL facts were
    /// written, so later saves that only change server facts keep it (see DESIGN.md).
    let localFactsWrittenAtNs: Int64

    init(root: String, location: ManifestLocation, lock: ManifestLock, manifest: Manifest, scanReport: ScanReport,
         journalPath: String) {
        self.root = root
        self.location = location
        self.lock = lock
        self.manifest = manifest
        self.scanReport = scanReport
        self.journalPath = journalPath
        self.localFactsWrittenAtNs = manifest.writtenAtNs
    }
}

/// What the command prints: the sync report plus the context around it.
struct SyncSummary: Sendable {
    var endpoint: String
    var project: RemoteProject?
    var cloud: String
    var bucket: String
    var sources: [ScanReport]
    var manifests: [String]
    var report: SyncReport
    var pathsBySHA1: [String: String]
    var graphQLRequests: Int
    var graphQLRetries: Int
    var dryRun: Bool
    var waited: Bool
    var offlinePlan: Bool
    var seconds: Double
}

/// `alti sync`: scan -> resolve project -> diff -> upload -> wait -> write back, with every
/// server fact journaled as it arrives and folded into the manifests at the end.
struct SyncService {
    let catalog: any RemoteCatalog
    let uploader: any BlobUploader
    let endpoint: String
    let requestCounter: RequestCounter
    let store = ManifestStore()
    let scanner = ScanService()
    var scanProgress: (@Sendable (ScanProgress) -> Void)?
    var onRecorder: (@Sendable (SyncRecorder) -> Void)?

    func run(_ request: SyncRequest) async throws -> SyncSummary {
        let started = Date()
        // 1. Scan (offline work first: whatever happens to the network, the hashes are kept).
        let sources = try await prepareSources(request)
        defer { for source in sources { source.lock.release() } }

        // 2. Resolve the project; refuse manifests bound elsewhere.
        let project: RemoteProject
        do {
            project = try await catalog.project(request.project)
        } catch let error as AltiError where error.kind == .unavailable && request.options.dryRun {
            return offlinePlan(sources, request: request, started: started)
        }
        for source in sources {
            try ManifestSync.checkBinding(source.manifest, manifestPath: source.location.file.path, endpoint: endpoint, projectID: project.id)
        }
        // Bind before the first journal event: a journal is then always about the manifest's own
        // project, even if this run dies before its end.
        if !request.options.dryRun {
            for source in sources {
                source.manifest.remote.endpoint = endpoint
                source.manifest.remote.projectID = project.id
                try save(source)
                source.journal = try SyncJournal(path: source.journalPath)
            }
        }

        // 3. Items: unique checksums of usable, present images.
        var items: [SyncItem] = []
        var pathsBySHA1: [String: String] = [:]
        var initial: [String: ImageFacts] = [:]
        for source in sources {
            initial.merge(ManifestSync.facts(from: source.manifest)) { old, _ in old }
            for entry in source.manifest.entries where entry.verdict == .ok && !entry.missing {
                guard let sha1 = entry.sha1, let type = entry.type, pathsBySHA1[sha1] == nil else { continue }
                let absolute = source.root + "/" + entry.path
                pathsBySHA1[sha1] = absolute
                items.append(SyncItem(
                    sha1: sha1, source: UploadSource(path: absolute, size: entry.size, mtimeNs: entry.mtimeNs),
                    filename: (entry.path as NSString).lastPathComponent, imageType: type.rawValue,
                    width: entry.width ?? 0, height: entry.height ?? 0))
            }
        }

        // 4. Sync through the engine; the bucket is chosen only if something must be sent.
        let recorder = SyncRecorder(initial: initial, journals: sources.compactMap(\.journal))
        onRecorder?(recorder)
        let choice = BucketChoice(catalog: catalog, request: request, bound: sources.first?.manifest.remote)
        let engine = SyncEngine(catalog: catalog, uploader: uploader, recorder: recorder, options: request.options)
        var report: SyncReport
        do {
            report = try await engine.run(items: items, project: project.id) { try await choice.bucket() }

            // 5. Reconstruction, if asked and possible.
            if report.phase == .complete, !request.options.dryRun {
                if request.startAnyway {
                    report.reconstruction = try await catalog.preStartReconstruction(project: project.id)
                } else if request.startReconstruction, report.allReady {
                    report.reconstruction = try await catalog.startReconstruction(project: project.id)
                }
            }
        } catch {
            // Whatever stopped the run (no network, a refused key, Ctrl-C during the last step),
            // what it learnt goes into the manifests before the error is reported.
            _ = try? await writeBack(sources, choice: choice)
            throw error
        }

        // 6. Write back: fold the journal, save atomically, drop the journal.
        let (cloud, bucket) = try await writeBack(sources, choice: choice)
        return SyncSummary(
            endpoint: endpoint, project: project, cloud: cloud, bucket: bucket, sources: sources.map(\.scanReport),
            manifests: sources.map(\.location.file.path), report: report, pathsBySHA1: pathsBySHA1,
            graphQLRequests: await requestCounter.requests, graphQLRetries: await requestCounter.retries,
            dryRun: request.options.dryRun, waited: request.options.waitLimit != nil, offlinePlan: false,
            seconds: Date().timeIntervalSince(started))
    }

    /// Locks, loads, folds a journal left by an interrupted run, scans, saves.
    func prepareSources(_ request: SyncRequest) async throws -> [SyncSource] {
        var result: [SyncSource] = []
        do {
            for path in request.paths {
                let root = ScanService.absolutePath(path)
                var isDirectory: ObjCBool = false
                guard FileManager.default.fileExists(atPath: root, isDirectory: &isDirectory) else {
                    throw AltiError(.noInput, "\(root) does not exist; give the folder that holds the images")
                }
                guard isDirectory.boolValue else {
                    throw AltiError(.noInput, "\(root) is not a folder; give the folder that holds the images")
                }
                let location = store.locate(root: root, override: request.manifestOverride)
                let lock = try store.lock(location)
                do {
                    var previous: Manifest?
                    do {
                        previous = try store.load(location.file)
                    } catch {
                        throw AltiError(error.kind, error.message + " (alti scan --rebuild \(root) moves it aside and starts over)")
                    }
                    let journalPath = ManifestSync.journalPath(forManifest: location.file.path)
                    let leftover = try SyncJournal.read(path: journalPath)
                    if var manifest = previous, !leftover.isEmpty {
                        ManifestSync.fold(leftover, into: &manifest)
                        previous = manifest
                    }
                    let (scanned, report) = try await scanner.update(
                        previous: previous, root: root, jobs: request.scanJobs, progress: scanProgress,
                        checkpoint: { [store] in try store.save($0.manifest, to: location.file) })
                    let saved = try store.save(scanned, to: location.file)
                    // Folded and saved: the old journal goes, even one holding only a torn first
                    // line (appending to that would glue a new event onto it).
                    unlink(journalPath)
                    var scanReport = report
                    scanReport.manifest = location.file.path
                    scanReport.manifestIsFallback = location.isFallback
                    result.append(SyncSource(root: root, location: location, lock: lock, manifest: saved,
                                             scanReport: scanReport, journalPath: journalPath))
                } catch {
                    lock.release()
                    throw error
                }
            }
        } catch {
            for source in result { source.lock.release() }
            throw error
        }
        return result
    }

    /// Records the cloud and bucket used and folds each journal into its manifest.
    @discardableResult
    func writeBack(_ sources: [SyncSource], choice: BucketChoice) async throws -> (cloud: String, bucket: String) {
        let first = sources.first?.manifest.remote
        let (cloud, bucket) = await choice.chosen ?? (first?.cloud ?? "", first?.bucket ?? "")
        for source in sources where source.journal != nil {
            source.manifest.remote.cloud = cloud
            source.manifest.remote.bucket = bucket
            try fold(source)
        }
        return (cloud, bucket)
    }

    /// Folds this run's journal into the manifest and saves it; the journal goes only after the
    /// manifest is safely on disk (folding twice is harmless, losing events is not).
    func fold(_ source: SyncSource) throws {
        let events = try SyncJournal.read(path: source.journalPath)
        ManifestSync.fold(events, into: &source.manifest)
        try save(source)
        unlink(source.journalPath)
    }

    /// Saves server-side changes, keeping the scan's write time as the racy-check reference.
    func save(_ source: SyncSource) throws {
        let writtenAt = source.localFactsWrittenAtNs
        source.manifest = try store.save(source.manifest, to: source.location.file, nowNs: { writtenAt })
    }

    /// `--dry-run` without a network: the plan from what the manifests recorded.
    func offlinePlan(_ sources: [SyncSource], request: SyncRequest, started: Date) -> SyncSummary {
        var report = SyncReport()
        var pathsBySHA1: [String: String] = [:]
        var seen: Set<String> = []
        for source in sources {
            for entry in source.manifest.entries where entry.verdict == .ok && !entry.missing {
                guard let sha1 = entry.sha1, seen.insert(sha1).inserted else { continue }
                pathsBySHA1[sha1] = source.root + "/" + entry.path
                report.total += 1
                if RemoteImage.isDone(entry.server?.state), source.manifest.remote.projectID.hasPrefix(request.project) {
                    report.alreadyReady += 1
                } else {
                    report.toSend.append(sha1)
                    report.bytesToSend += entry.size
                }
            }
        }
        return SyncSummary(
            endpoint: endpoint, project: nil, cloud: request.cloud ?? "", bucket: request.bucket ?? "",
            sources: sources.map(\.scanReport), manifests: sources.map(\.location.file.path), report: report,
            pathsBySHA1: pathsBySHA1, graphQLRequests: 0, graphQLRetries: 0, dryRun: true, waited: false,
            offlinePlan: true, seconds: Date().timeIntervalSince(started))
    }
}

/// Chooses cloud and bucket once, on first need: `--cloud` or the first cloud of the server's
/// list that this client supports; `--bucket`, else the bucket the manifest already uses with
/// that cloud (re-runs stay consistent), else the server's first `nearestBuckets` entry for it.
actor BucketChoice {
    static let supportedClouds = ["S3"]
    let catalog: any RemoteCatalog
    let request: SyncRequest
    let bound: Manifest.Remote?
    private(set) var chosen: (cloud: String, bucket: String)?

    init(catalog: any RemoteCatalog, request: SyncRequest, bound: Manifest.Remote?) {
        self.catalog = catalog
        self.request = request
        self.bound = bound
    }

    func bucket() async throws -> String {
        if let chosen { return chosen.bucket }
        let info = try await catalog.serverInfo()
        guard info.systemMode == "Normal" else {
            throw AltiError(.unavailable, "the server is in \(info.systemMode.isEmpty ? "an unknown" : info.systemMode) mode and accepts no uploads now; run again later")
        }
        let serverClouds = info.supportedClouds.map { $0.uppercased() }
        let cloud: String
        if let wanted = request.cloud?.uppercased() {
            guard Self.supportedClouds.contains(wanted) else {
                throw AltiError(.usage, "--cloud \(request.cloud!) is not supported by this alti (supported: \(Self.supportedClouds.joined(separator: ", ")))")
            }
            guard serverClouds.contains(wanted) else {
                throw AltiError(.usage, "the server does not accept \(wanted) uploads (it offers \(serverClouds.joined(separator: ", "))); choose another --cloud")
            }
            cloud = wanted
        } else if let first = serverClouds.first(where: { Self.supportedClouds.contains($0) }) {
            cloud = first
        } else {
            throw AltiError(.protocolError, "the server offers only \(serverClouds.joined(separator: ", ")) uploads; this alti supports \(Self.supportedClouds.joined(separator: ", "))")
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
        chosen = (cloud, bucket)
        return bucket
    }
}
