import Foundation
import Testing

@testable import AltiCore

/// An in-memory server: images by checksum, counters per operation, scripted refusals.
actor FakeServer {
    var images: [String: RemoteImage] = [:]  // by sha1
    var storedBytes: [String: Int64] = [:]  // by image id
    var calls: [String: Int] = [:]
    var putsPerImage: [String: Int] = [:]
    var rejectNextPuts = 0
    var urlLifetime = 10_800
    var processOnStore = true
    var invalidOnStore: Set<String> = []
    /// The reasons processing gives an image of `invalidOnStore`.
    var invalidErrors = ["checksum mismatch"]
    var nextID = 0

    func count(_ op: String) { calls[op, default: 0] += 1 }
    func setRejectNextPuts(_ n: Int) { rejectNextPuts = n }
    func setLifetime(_ s: Int) { urlLifetime = s }
    func seed(_ sha1: String, state: ImageState) {
        nextID += 1
        images[sha1] = RemoteImage(id: "img\(nextID)", state: state, filename: "\(sha1).jpg")
    }

    func register(_ r: ImageRegistration) -> RegisteredImage {
        if var existing = images[r.sha1] {
            if !existing.isDone { existing.state = "Pending" }
            images[r.sha1] = existing
            return RegisteredImage(image: existing, grant: grant(existing.id))
        }
        nextID += 1
        let image = RemoteImage(id: "img\(nextID)", state: "Pending", name: r.filename, filename: "\(r.sha1).jpg")
        images[r.sha1] = image
        return RegisteredImage(image: image, grant: grant(image.id))
    }

    /// A URL grant whose lifetime the storage fills in (as S3Storage does).
    func grant(_ id: String) -> UploadGrant {
        .presignedURL("http://s3.test/\(id)?X-Amz-Expires=\(urlLifetime)&X-Amz-Signature=s", expiresAt: nil,
                      lifetime: Double(urlLifetime))
    }

    func put(url: String, size: Int64) -> TransferOutcome {
        count("PUT")
        if rejectNextPuts > 0 {
            rejectNextPuts -= 1
            return .grantRejected(code: "AccessDenied", message: "Request has expired")
        }
        let id = String(url.dropFirst("http://s3.test/".count).prefix { $0 != "?" })
        putsPerImage[id, default: 0] += 1
        storedBytes[id] = size
        for (sha1, var image) in images where image.id == id {
            image.state = processOnStore ? (invalidOnStore.contains(sha1) ? "Invalid" : "Ready") : "Uploaded"
            if image.state == "Invalid" { image.errors = invalidErrors }
            images[sha1] = image
        }
        return .stored
    }

    func byID(_ id: String) -> RemoteImage? { images.values.first { $0.id == id } }
}

struct FakeCatalog: RemoteCatalog {
    let server: FakeServer
    var batchLimit = 100

    func serverInfo() async throws -> ServerInfo {
        ServerInfo(systemMode: "Normal", supportedClouds: ["S3"], nearestBuckets: [BucketSuggestion(cloud: "S3", bucket: "Paris")])
    }
    func project(_ idOrPrefix: String) async throws -> RemoteProject { RemoteProject(id: idOrPrefix, name: "p") }
    func hasImages(project: String, checksums: [String]) async throws -> [String: RemoteImage] {
        await server.count("hasImage")
        var out: [String: RemoteImage] = [:]
        for c in checksums { if let i = await server.images[c] { out[c] = i } }
        return out
    }
    func startUpload(imageIDs: [String]) async throws -> [String: RemoteImage] {
        await server.count("start")
        var out: [String: RemoteImage] = [:]
        for id in imageIDs { out[id] = await server.byID(id) }
        return out
    }
    func imageStates(project: String, imageIDs: [String]) async throws -> [String: RemoteImage] {
        await server.count("states")
        var out: [String: RemoteImage] = [:]
        for id in imageIDs { out[id] = await server.byID(id) }
        return out
    }
    func reconstructionTask(project: String) async throws -> ReconstructionOutcome? { nil }
    func startReconstruction(project: String) async throws -> ReconstructionOutcome { ReconstructionOutcome(taskID: "t") }
    func preStartReconstruction(project: String) async throws -> ReconstructionOutcome { ReconstructionOutcome(taskID: "t") }
}

/// The storage port over the fake server: URL grants whose expiry is counted on `now` (as
/// S3Storage counts it on the local clock).
struct FakeStorage: ImageStorage {
    let server: FakeServer
    var now: @Sendable () -> Date = { Date() }
    var cloud: String { "S3" }
    var bucket: String { "Paris" }
    var batchLimit: Int { 100 }

    func register(project: String, images: [ImageRegistration]) async throws -> [String: Result<RegisteredImage, AltiError>] {
        await server.count("register")
        let receivedAt = now()
        var out: [String: Result<RegisteredImage, AltiError>] = [:]
        for i in images {
            var registered = await server.register(i)
            if case .presignedURL(let url, _, let lifetime?) = registered.grant {
                registered.grant = .presignedURL(url, expiresAt: receivedAt.addingTimeInterval(lifetime), lifetime: lifetime)
            }
            out[i.sha1] = .success(registered)
        }
        return out
    }

    func transfer(_ source: UploadSource, contentType: String, grant: UploadGrant, resume: TransferResume,
                  progress: @escaping @Sendable (Int64) -> Void) async throws -> TransferOutcome {
        guard case .presignedURL(let url, _, _) = grant else { return .failed(reason: "no URL") }
        progress(source.size)
        return await server.put(url: url, size: source.size)
    }

    func complete(imageID: String) async throws -> RemoteImage? { nil }
}

func makeItems(_ n: Int) -> [SyncItem] {
    (0..<n).map { i in
        let sha1 = String(repeating: String(format: "%02x", i % 256), count: 20)
        return SyncItem(sha1: sha1, source: UploadSource(path: "/nonexistent/\(i).jpg", size: Int64(1000 + i)),
                        filename: "IMG_\(i).JPG", imageType: "JPEG")
    }
}

func tempJournal() throws -> SyncJournal {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("alti-journal-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    return try SyncJournal(path: dir.appendingPathComponent("manifest.json.journal").path)
}

func fastOptions() -> SyncOptions {
    var o = SyncOptions()
    o.pollInitial = .milliseconds(1)
    o.pollMax = .milliseconds(2)
    o.waitLimit = .seconds(5)
    return o
}

@Suite struct SyncEngineTests {
    @Test func firstSyncUploadsEachImageOnceAndRecordsIdsThenSecondSyncSendsNothing() async throws {
        let server = FakeServer()
        let journal = try tempJournal()
        let items = makeItems(250)
        let recorder = SyncRecorder(initial: [:], journals: [journal])
        let engine = SyncEngine(catalog: FakeCatalog(server: server),
                                recorder: recorder, options: fastOptions())
        let report = try await engine.run(items: items, project: "p", storage: FakeStorage(server: server))
        #expect(report.ready.count == 250)
        #expect(engine.recorder.metrics.snapshot.transfers == 250)
        #expect(await server.putsPerImage.count == 250)
        #expect(await server.putsPerImage.values.allSatisfy { $0 == 1 })
        #expect(await server.calls["hasImage"] == 3)  // ceil(250/100)
        // Windows of 16 (the lifetime unknown), then full batches of 100 for 3-hour URLs: 16 + 100
        // + 100 + 34, each one registration and one start request.
        #expect(await server.calls["register"] == 4)
        #expect(await server.calls["start"] == 4)
        let facts = await recorder.facts
        #expect(facts.values.allSatisfy { $0.state == .ready && $0.id != nil })

        // The journal alone reproduces the same facts.
        var replayed: [String: ServerFacts] = [:]
        for event in try SyncJournal.read(path: journal.path) { replayed[event.sha1, default: ServerFacts()].apply(event) }
        #expect(replayed.mapValues(\.imageID) == facts.mapValues(\.imageID))
        #expect(replayed.mapValues(\.state) == facts.mapValues(\.state))

        // Second run from the recorded facts: only the lookups that re-check the server's truth
        // (ceil(250/100) batched hasImage), no registrations, no PUTs.
        let second = SyncEngine(catalog: FakeCatalog(server: server),
                                recorder: SyncRecorder(initial: facts, journals: [try tempJournal()]), options: fastOptions())
        var before = await server.calls
        let again = try await second.run(items: items, project: "p", storage: FakeStorage(server: server))
        #expect(again.alreadyReady == 250)
        #expect(again.lostOnServer.isEmpty)
        #expect(second.recorder.metrics.snapshot.transfers == 0)
        before["hasImage", default: 0] += 3
        #expect(await server.calls == before)
    }

    @Test func imagesTheServerAlreadyHasAreNotSentAndInvalidOnesAreSentAgain() async throws {
        let server = FakeServer()
        let items = makeItems(6)
        await server.seed(items[0].sha1, state: "Ready")
        await server.seed(items[1].sha1, state: "Invalid")
        await server.seed(items[2].sha1, state: "Pending")
        let engine = SyncEngine(catalog: FakeCatalog(server: server),
                                recorder: SyncRecorder(initial: [:], journals: [try tempJournal()]), options: fastOptions())
        let report = try await engine.run(items: items, project: "p", storage: FakeStorage(server: server))
        #expect(Set(report.toSend) == Set(items[1...].map(\.sha1)))
        #expect(engine.recorder.metrics.snapshot.transfers == 5)
        #expect(report.ready.count == 6)
    }

    @Test func aRejectedURLIsReplacedOnceAndASecondRejectionFailsTheImage() async throws {
        let server = FakeServer()
        await server.setRejectNextPuts(1)
        var options = fastOptions()
        options.transfers = 1
        let items = makeItems(1)
        let engine = SyncEngine(catalog: FakeCatalog(server: server),
                                recorder: SyncRecorder(initial: [:], journals: [try tempJournal()]), options: options)
        let report = try await engine.run(items: items, project: "p", storage: FakeStorage(server: server))
        #expect(report.ready.count == 1)
        #expect(engine.recorder.metrics.snapshot.grantRefreshes == 1)
        #expect(await server.calls["register"] == 2)

        let server2 = FakeServer()
        await server2.setRejectNextPuts(2)
        let engine2 = SyncEngine(catalog: FakeCatalog(server: server2),
                                 recorder: SyncRecorder(initial: [:], journals: [try tempJournal()]), options: options)
        let report2 = try await engine2.run(items: items, project: "p", storage: FakeStorage(server: server2))
        #expect(report2.failed.count == 1)
        #expect(await server2.calls["PUT"] == 2)  // never a third try with a refused URL
        #expect(!report2.allReady)
    }

    @Test func aURLTooCloseToExpiryIsRefreshedBeforeUse() async throws {
        let server = FakeServer()
        await server.setLifetime(40)
        var options = fastOptions()
        options.transfers = 1
        // The clock jumps 35 s between registration and PUT: 5 s left < 40/4 = 10 s margin.
        let clock = SteppingClock(step: 35)
        let engine = SyncEngine(catalog: FakeCatalog(server: server),
                                recorder: SyncRecorder(initial: [:], journals: [try tempJournal()]), options: options,
                                now: { clock.next() })
        let report = try await engine.run(items: makeItems(1), project: "p",
                                          storage: FakeStorage(server: server, now: { clock.next() }))
        #expect(report.failed.isEmpty)
        #expect(engine.recorder.metrics.snapshot.grantRefreshes >= 1)
        #expect(await server.calls["PUT"] == 1)
    }

    @Test func processingIsPolledUntilReady() async throws {
        let server = FakeServer()
        await server.setProcess(false)
        let items = makeItems(3)
        let engine = SyncEngine(catalog: FakeCatalog(server: server),
                                recorder: SyncRecorder(initial: [:], journals: [try tempJournal()]), options: fastOptions(),
                                sleep: { _ in await server.finishProcessing() })
        let report = try await engine.run(items: items, project: "p", storage: FakeStorage(server: server))
        #expect(report.ready.count == 3)
        #expect((await server.calls["states"] ?? 0) >= 1)
    }

    @Test func aTornLastJournalLineIsIgnoredAndADamagedMiddleLineIsRefused() async throws {
        let journal = try tempJournal()
        try await journal.append([JournalEvent(.registered, sha1: "a", imageID: "1", filename: "f", bucket: "b", state: "Pending"),
                            JournalEvent(.stored, sha1: "a", imageID: "1")])
        let handle = FileHandle(forWritingAtPath: journal.path)!
        handle.seekToEndOfFile()
        handle.write(Data("{\"kind\":\"sto".utf8))
        try handle.close()
        let events = try SyncJournal.read(path: journal.path)
        #expect(events.map(\.kind) == [.registered, .stored])

        let damaged = journal.path + ".2"
        try Data("{\"kind\":\"stored\",\"sha1\":\"a\",\"at\":\"x\"}\nnot json\n{\"kind\":\"stored\",\"sha1\":\"a\",\"at\":\"x\"}\n".utf8)
            .write(to: URL(fileURLWithPath: damaged))
        #expect(throws: AltiError.self) { try SyncJournal.read(path: damaged) }
    }
}

extension FakeServer {
    func setProcess(_ v: Bool) { processOnStore = v }
    /// Processing turns the bytes stored for `sha1` Invalid with `errors`, every time.
    func refuseOnStore(_ sha1: String, errors: [String]) {
        invalidOnStore.insert(sha1)
        invalidErrors = errors
    }
    func finishProcessing() {
        for (sha1, var image) in images where image.state == "Uploaded" {
            image.state = "Ready"
            images[sha1] = image
        }
    }
}

final class SteppingClock: @unchecked Sendable {
    private let lock = NSLock()
    private var current = Date(timeIntervalSince1970: 1_800_000_000)
    private let step: Double
    init(step: Double) { self.step = step }
    func next() -> Date {
        lock.withLock {
            current = current.addingTimeInterval(step)
            return current
        }
    }
}
