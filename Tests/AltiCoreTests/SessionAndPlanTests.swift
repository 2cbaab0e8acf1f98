@testable import AltiCore
import AltiTestSupport
import Foundation
import Testing

/// Storages over the fake server (SyncEngineTests.swift): S3 only.
struct FakeStorageFactory: StorageFactory {
    let server: FakeServer
    var supportedClouds: [String] { ["S3"] }
    func storage(cloud: String, bucket: String) throws -> any ImageStorage { FakeStorage(server: server) }
}

/// The session every command opens its sources through, the sync service on top of it, and the
/// plan all of them read.
@Suite struct SessionAndPlanTests {
    func syncService(_ server: FakeServer, store: ManifestStore = ManifestStore()) -> SyncService {
        var service = SyncService(catalog: FakeCatalog(server: server), storages: FakeStorageFactory(server: server),
                                  endpoint: "http://emulator.test", metrics: SyncMetrics())
        service.scanner = ScanService(store: store)
        return service
    }

    func request(_ path: String) -> SyncRequest {
        SyncRequest(paths: [path], project: "5e8f2a6b1c9d4e3f2a1b0c9d", options: fastOptions())
    }

    @Test func syncOfAReadOnlyCardThatScanSeededHashesNothing() async throws {
        let tree = try TempTree("session-card")
        let state = try TempTree("session-state")
        for i in 0..<3 { try tree.write("DCIM/IMG_\(i).JPG", ScanFixtures.jpeg(width: 10 + i, height: 10)) }
        try tree.ageAllFiles()
        let root = tree.path("DCIM")
        // Scanned while the card was writable: the card holds its own manifest.
        _ = try await ScanService().scan(paths: [root])
        let cardBytes = try tree.read("DCIM/.alti/manifest.json")

        // Now mounted read-only: sync continues in the state folder, seeded from the card's.
        let readOnly = ManifestStore(environment: ["XDG_STATE_HOME": state.path], canWrite: { _ in false })
        let server = FakeServer()
        let summary = try await syncService(server, store: readOnly).run(request(root))
        #expect(summary.sources[0].filesHashed == 0)
        #expect(summary.sources[0].filesReused == 3)
        #expect(summary.manifests[0].hasPrefix(state.path))
        #expect(summary.report.ready.count == 3)
        #expect(await server.putsPerImage.count == 3)
        #expect(try tree.read("DCIM/.alti/manifest.json") == cardBytes)
        let saved = try #require(try readOnly.load(URL(fileURLWithPath: summary.manifests[0])))
        #expect(saved.entries.allSatisfy { $0.server?.state == .ready && $0.server?.id != nil })
        #expect(saved.remote.projectID == "5e8f2a6b1c9d4e3f2a1b0c9d")
    }

    @Test func aCorruptManifestUnderSyncPointsToScanRebuild() async throws {
        let tree = try TempTree("session-corrupt")
        try tree.write("a.jpg", ScanFixtures.jpeg(width: 10, height: 10))
        try tree.write(".alti/manifest.json", Array("{not json".utf8))
        await #expect {
            _ = try await syncService(FakeServer()).run(request(tree.path))
        } throws: { error in
            guard let error = error as? AltiError else { return false }
            return error.kind == .dataError && error.message.contains("alti scan --rebuild \(tree.path)")
                && !error.message.contains("\n")
        }
    }

    @Test func aLeftoverJournalIsFoldedWhenAnySessionOpens() async throws {
        let tree = try TempTree("session-journal")
        try tree.write("a.jpg", ScanFixtures.jpeg(width: 10, height: 10))
        try tree.ageAllFiles()
        let first = try #require(try await ScanService().scan(paths: [tree.path]).first)
        let sha1 = try #require(first.manifest.entries.first?.sha1)
        // A crashed sync left a journal with the image stored.
        let journal = try SyncJournal(path: ManifestSync.journalPath(forManifest: first.manifestURL.path))
        try await journal.append([JournalEvent(.registered, sha1: sha1, imageID: "i9", filename: "a.jpg", bucket: "b", state: .pending),
                                  JournalEvent(.stored, sha1: sha1, imageID: "i9")])
        // `alti scan` opens a session too: the journal's facts land in the manifest and it goes.
        let again = try #require(try await ScanService().scan(paths: [tree.path]).first)
        #expect(again.manifest.entries.first?.server?.imageID == "i9")
        #expect(again.manifest.entries.first?.server?.state == .uploaded)
        #expect(!FileManager.default.fileExists(atPath: journal.path))
    }

    /// An append that does not wait for the disk has still written its lines when it returns
    /// (a crash of the process loses nothing), in order with the appends around it.
    @Test func anAppendThatDoesNotWaitForTheDiskHasWrittenItsLines() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("journal-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let journal = try SyncJournal(path: dir.appendingPathComponent("m.json.journal").path)
        try await journal.append([JournalEvent(.registered, sha1: "a", imageID: "i1", filename: "a.jpg", bucket: "b", state: .pending)])
        try await journal.append(JournalEvent(.stored, sha1: "a", imageID: "i1"), waitForDisk: false)
        #expect(try SyncJournal.read(path: journal.path).map(\.kind) == [.registered, .stored])
        // Many at once, some waiting and some not: every line lands once, each batch in order.
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<40 {
                group.addTask {
                    try await journal.append([JournalEvent(.registered, sha1: "s\(i)", imageID: "i\(i)", filename: "\(i).jpg",
                                                           bucket: "b", state: .pending),
                                              JournalEvent(.stored, sha1: "s\(i)", imageID: "i\(i)")],
                                             waitForDisk: i.isMultiple(of: 2))
                }
            }
            try await group.waitForAll()
        }
        let events = try SyncJournal.read(path: journal.path)
        #expect(events.count == 2 + 80 && journal.eventsWritten == 82)
        for i in 0..<40 {
            let kinds = events.filter { $0.sha1 == "s\(i)" }.map(\.kind)
            #expect(kinds == [.registered, .stored], "s\(i): \(kinds)")
        }
    }

    @Test func thePlanSortsByStateAndCountsBytesToSend() {
        let items = makeItems(6)
        let facts: [String: ServerFacts] = [
            items[0].sha1: ServerFacts(imageID: "1", state: .ready),
            items[1].sha1: ServerFacts(imageID: "2", state: .readyStrong),
            items[2].sha1: ServerFacts(imageID: "3", state: .uploaded),
            items[3].sha1: ServerFacts(imageID: "4", state: "Verifying"),  // unknown to this client: wait
            items[4].sha1: ServerFacts(imageID: "5", state: .invalid),
        ]
        let plan = SyncPlan(items: items, facts: facts)
        #expect(plan.done.map(\.sha1) == [items[0].sha1, items[1].sha1])
        #expect(plan.waiting.map(\.sha1) == [items[2].sha1, items[3].sha1])
        #expect(plan.toSend.map(\.sha1) == [items[4].sha1, items[5].sha1])
        #expect(plan.bytesToSend == items[4].source.size + items[5].source.size)
        #expect(plan.total == 6)
    }

    @Test func imageStatesRoundTripAndUnknownOnesAreWaitedOn() throws {
        for raw in ["Pending", "Uploaded", "Ready", "ReadyStrong", "Invalid", "Absent", "Verifying"] {
            #expect(ImageState(raw).rawValue == raw)
            let data = try JSONEncoder().encode(ImageState(raw))
            #expect(String(decoding: data, as: UTF8.self) == "\"\(raw)\"")
            #expect(try JSONDecoder().decode(ImageState.self, from: data) == ImageState(raw))
        }
        #expect(ImageState("Verifying") == .other("Verifying"))
        #expect(ImageState("Verifying").isInProgress)
        #expect(!ImageState("Verifying").needsUpload)
        #expect(ImageState("").needsUpload)
        #expect((nil as ImageState?).needsUpload)
    }
}

/// The one retry loop every request path uses.
@Suite struct RetryLoopTests {
    final class Log: @unchecked Sendable {
        let lock = NSLock()
        var sleeps: [Duration] = []
        var retries = 0
        var attempts = 0
    }

    @Test func retriesUntilFinishedWithJitteredSleepsAndCountsRetries() async throws {
        let log = Log()
        let policy = RetryPolicy(maxAttempts: 5, baseDelay: .milliseconds(100), maxDelay: .seconds(1))
        let value = try await policy.run(sleep: { d in log.lock.withLock { log.sleeps.append(d) } },
                                         onRetry: { log.lock.withLock { log.retries += 1 } }) { number -> RetryStep<String> in
            log.lock.withLock { log.attempts += 1 }
            return number < 2 ? .retry(because: "HTTP 503") : .finished("ok")
        }
        #expect(value == "ok")
        #expect(log.attempts == 3 && log.retries == 2 && log.sleeps.count == 2)
        #expect(log.sleeps[0] <= .milliseconds(100) && log.sleeps[1] <= .milliseconds(200))
    }

    @Test func exhaustionReportsTheLastProblemAndThrownErrorsAreNotRetried() async throws {
        let policy = RetryPolicy(maxAttempts: 3, baseDelay: .zero, maxDelay: .zero)
        await #expect(throws: RetriesExhausted(attempts: 3, lastProblem: "try 2")) {
            try await policy.run(sleep: { _ in }) { number -> RetryStep<Int> in .retry(because: "try \(number)") }
        }
        let log = Log()
        await #expect(throws: AltiError.self) {
            try await policy.run(sleep: { _ in }) { _ -> RetryStep<Int> in
                log.lock.withLock { log.attempts += 1 }
                throw AltiError(.auth, "refused")
            }
        }
        #expect(log.attempts == 1)
        #expect(RetryPolicy.isTransient(status: 408) && RetryPolicy.isTransient(status: 429) && RetryPolicy.isTransient(status: 503))
        #expect(!RetryPolicy.isTransient(status: 403) && !RetryPolicy.isTransient(status: 400))
    }

    @Test func cancellationDuringTheBackoffStopsBeforeAnotherAttempt() async throws {
        let log = Log()
        let policy = RetryPolicy(maxAttempts: 5, baseDelay: .zero, maxDelay: .zero)
        let task = Task {
            try await policy.run(sleep: { _ in withUnsafeCurrentTask { $0?.cancel() } }) { _ -> RetryStep<Int> in
                log.lock.withLock { log.attempts += 1 }
                return .retry(because: "lost")
            }
        }
        await #expect(throws: CancellationError.self) { try await task.value }
        #expect(log.attempts == 1)
    }
}

/// The event stream: every journaled event reaches a subscriber, in order, after the journal.
@Suite struct SyncEventStreamTests {
    @Test func subscribersSeeThePlanAndEveryRecordedEventInOrder() async throws {
        let server = FakeServer()
        let journal = try tempJournal()
        let recorder = SyncRecorder(initial: [:], journals: [journal])
        let events = await recorder.events()
        let collected = Task { () -> [SyncEvent] in
            var all: [SyncEvent] = []
            for await event in events { all.append(event) }
            return all
        }
        let engine = SyncEngine(catalog: FakeCatalog(server: server), recorder: recorder, options: fastOptions())
        _ = try await engine.run(items: makeItems(3), project: "p", storage: FakeStorage(server: server))
        await recorder.finish()
        let all = await collected.value
        let recorded = all.compactMap { event -> JournalEvent? in
            if case .recorded(let e) = event { return e }
            return nil
        }
        #expect(recorded == (try SyncJournal.read(path: journal.path)))
        #expect(recorded.filter { $0.kind == .stored }.count == 3)
        #expect(all.contains(.planned(images: 3, bytes: makeItems(3).reduce(0) { $0 + $1.source.size })))
        #expect(all.first == .phase(.checking))
        #expect(all.last == .phase(.done))
    }
}
