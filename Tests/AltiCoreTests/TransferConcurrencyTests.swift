import Foundation
import Testing

@testable import AltiCore

/// A link as the controller sees it: images of one size stored one after another at the
/// throughput the current limit gets (`rate`), each completion one sample.
struct SimulatedLink {
    var controller: TransferConcurrency
    var rate: (Int) -> Double
    var imageBytes: Int64 = 400_000
    var seconds = 0.0
    var images = 0
    var retries = 0
    /// The limit after each sample.
    var limits: [Int] = []

    init(ceiling: Int = TransferConcurrency.defaultCeiling, rate: @escaping (Int) -> Double) {
        controller = TransferConcurrency(ceiling: ceiling)
        self.rate = rate
        controller.observe(sample())
    }

    func sample(uploading: Int? = nil) -> TransferConcurrency.Sample {
        TransferConcurrency.Sample(seconds: seconds, imagesStored: images, bytesStored: Int64(images) * imageBytes,
                                   bytesSent: Int64(images) * imageBytes, retries: retries,
                                   uploading: uploading ?? controller.limit)
    }

    /// Stores `count` images at the rate of the limit in force.
    mutating func store(_ count: Int) {
        for _ in 0..<count {
            seconds += Double(imageBytes) / rate(controller.limit)
            images += 1
            limits.append(controller.observe(sample()))
        }
    }

    /// A transient failure is retried `count` times at `seconds` from now (no image stored).
    mutating func retry(_ count: Int = 1, after delay: Double = 0.1) {
        seconds += delay
        retries += count
        limits.append(controller.observe(sample()))
    }

    var limit: Int { controller.limit }
}

/// Round-trip-bound: each stream moves 200 KB/s whatever the others do (a 200 ms link).
private let latencyBound: @Sendable (Int) -> Double = { Double($0) * 200_000 }
/// Capped: 2 MB/s in all, which two streams already fill (the last 10 % is each stream's gap).
private let capped: @Sendable (Int) -> Double = { $0 == 1 ? 1_800_000 : 2_000_000 }

@Suite struct TransferConcurrencyTests {
    @Test func startsAtTwoAndDoublesWhileThroughputGrowsUpToTheCeiling() {
        var link = SimulatedLink(rate: latencyBound)
        #expect(link.limit == 2)
        link.store(200)
        #expect(link.limit == 16)
        #expect(link.controller.peak == 16)
        // Slow start: 2, 4, 8, 16, each step a doubling, never a step back.
        var distinct: [Int] = []
        for limit in link.limits where distinct.last != limit { distinct.append(limit) }
        #expect(distinct == [2, 4, 8, 16])
    }

    @Test func holdsAtAPlateauInsteadOfClimbing() {
        // Throughput grows up to 3 streams and is flat after: a saturated uplink.
        var link = SimulatedLink(rate: { Double(min($0, 3)) * 200_000 })
        link.store(2000)
        #expect(link.controller.peak <= 8)
        // In the second half the limit stays at the plateau, but for the probe of one more
        // stream now and then (4 + 4 / 4 = 5), undone when it does not pay.
        let late = link.limits.suffix(1000)
        #expect(late.allSatisfy { $0 == 4 || $0 == 5 })
        #expect(late.filter { $0 == 4 }.count > late.count / 2)
        #expect(link.controller.backOffs == 0)
    }

    @Test func onACappedLinkItStaysAtAFewStreams() {
        var link = SimulatedLink(rate: capped)
        link.store(1000)
        #expect(link.controller.peak <= 4)
        #expect(link.limits.suffix(500).allSatisfy { $0 <= 3 })
    }

    @Test func retriesHalveTheLimitOncePerQuietSpellAndNeverBelowOne() {
        var link = SimulatedLink(rate: latencyBound)
        link.store(200)
        #expect(link.limit == 16)
        link.retry()
        #expect(link.limit == 8)
        // The other streams' retries of the same trouble, within the quiet spell: no second halving.
        link.retry(3, after: 0.5)
        #expect(link.limit == 8)
        link.retry(after: 2.0)
        #expect(link.limit == 4)
        for _ in 0..<10 { link.retry(after: 2.5) }
        #expect(link.limit == 1)
        #expect(link.limits.allSatisfy { (1...16).contains($0) })
    }

    @Test func aStallWhileUploadsAreInFlightHalvesTheLimit() {
        var link = SimulatedLink(rate: latencyBound)
        link.store(200)
        #expect(link.limit == 16)
        // Nothing sent for 4 s: not yet a stall.
        for _ in 0..<16 {
            link.seconds += 0.25
            link.controller.observe(link.sample())
        }
        #expect(link.limit == 16)
        for _ in 0..<8 {
            link.seconds += 0.25
            link.controller.observe(link.sample())
        }
        #expect(link.limit == 8)
        // Nothing in flight (waiting for a registration, say) is no stall.
        var idle = SimulatedLink(rate: latencyBound)
        idle.store(200)
        for _ in 0..<100 {
            idle.seconds += 0.25
            idle.controller.observe(idle.sample(uploading: 0))
        }
        #expect(idle.limit == 16)
    }

    @Test func recoversAfterABackOffWhenTheLinkDoes() {
        var link = SimulatedLink(rate: latencyBound)
        link.store(200)
        for _ in 0..<6 { link.retry(after: 2.5) }
        #expect(link.limit == 1)
        link.store(2000)
        #expect(link.limit == 16)
        #expect(link.controller.backOffs == 6)
    }

    @Test func neverExceedsTheCeiling() {
        var five = SimulatedLink(ceiling: 5, rate: latencyBound)
        five.store(500)
        #expect(five.limits.max() == 5)
        #expect(five.limit == 5)
        var one = SimulatedLink(ceiling: 1, rate: latencyBound)
        one.store(100)
        #expect(one.limits.allSatisfy { $0 == 1 })
    }

    @Test func transferCountsReadTheirWorkers() {
        let fixed: TransferCount = 3
        #expect(fixed == .fixed(3))
        #expect(fixed.most == 3)
        #expect(TransferCount.automatic.most == 16)
        #expect(TransferCount.fixed(0).most == 1)
    }
}

/// Storage whose transfers take `latency` each (a long round trip), counting how many run at once.
final class SlowStorage: ImageStorage, @unchecked Sendable {
    let inner: FakeStorage
    let latency: Duration
    private let lock = NSLock()
    private var running = 0
    private var most = 0
    private var atStart: [Int] = []

    init(server: FakeServer, latency: Duration) {
        inner = FakeStorage(server: server)
        self.latency = latency
    }

    var cloud: String { inner.cloud }
    var bucket: String { inner.bucket }
    var batchLimit: Int { inner.batchLimit }
    /// The most transfers that ran at once.
    var peak: Int { lock.withLock { most } }
    /// How many ran (this one included) as each transfer started, in order.
    var runningAtStart: [Int] { lock.withLock { atStart } }

    func register(project: String, images: [ImageRegistration]) async throws -> [String: Result<RegisteredImage, AltiError>] {
        try await inner.register(project: project, images: images)
    }

    func transfer(_ source: UploadSource, contentType: String, grant: UploadGrant, resume: TransferResume,
                  progress: @escaping @Sendable (Int64) -> Void) async throws -> TransferOutcome {
        lock.withLock {
            running += 1
            most = max(most, running)
            atStart.append(running)
        }
        defer { lock.withLock { running -= 1 } }
        try await Task.sleep(for: latency)
        return try await inner.transfer(source, contentType: contentType, grant: grant, resume: resume, progress: progress)
    }

    func complete(imageID: String) async throws -> RemoteImage? { nil }
}

@Suite struct AdaptiveTransferEngineTests {
    /// With 150 ms per transfer the throughput grows with every stream, whatever the CPU: auto
    /// must go past 4 at once, never past its ceiling, and still send each image exactly once.
    @Test func autoAddsTransfersOnASlowRoundTripAndSendsEachImageOnce() async throws {
        let server = FakeServer()
        let storage = SlowStorage(server: server, latency: .milliseconds(150))
        var options = fastOptions()
        options.transfers = .automatic
        let items = makeItems(240)
        let engine = SyncEngine(catalog: FakeCatalog(server: server),
                                recorder: SyncRecorder(initial: [:], journals: [try tempJournal()]), options: options)
        let report = try await engine.run(items: items, project: "p", storage: storage)
        #expect(report.ready.count == 240)
        // It starts small (2), then grows. Only the first 3 PUTs are sure to start under the first
        // limit: an interval closes once 2 images are stored and 0.5 s has passed, which a loaded
        // machine can reach before the 4th PUT starts.
        #expect(storage.runningAtStart.prefix(3).allSatisfy { $0 <= 2 }, "\(storage.runningAtStart.prefix(8))")
        #expect(storage.peak > 4)
        #expect(storage.peak <= TransferConcurrency.defaultCeiling)
        #expect(await server.calls["PUT"] == 240)
        #expect(await server.putsPerImage.count == 240)
        #expect(await server.putsPerImage.values.allSatisfy { $0 == 1 })
        let metrics = engine.recorder.metrics.snapshot
        #expect(metrics.peakTransferLimit > 4)
        #expect(metrics.peakTransferLimit <= TransferConcurrency.defaultCeiling)
        #expect(storage.peak <= metrics.peakTransferLimit)
    }

    @Test func aFixedCountRunsExactlyThatManyTransfers() async throws {
        let server = FakeServer()
        let storage = SlowStorage(server: server, latency: .milliseconds(50))
        var options = fastOptions()
        options.transfers = 3
        let engine = SyncEngine(catalog: FakeCatalog(server: server),
                                recorder: SyncRecorder(initial: [:], journals: [try tempJournal()]), options: options)
        let report = try await engine.run(items: makeItems(60), project: "p", storage: storage)
        #expect(report.ready.count == 60)
        #expect(storage.peak == 3)
        #expect(await server.calls["PUT"] == 60)
        #expect(engine.recorder.metrics.snapshot.peakTransferLimit == 3)
    }

    /// Ctrl-C while workers wait for a turn: every waiting worker is let go, the run ends interrupted.
    @Test func cancellingAnAdaptiveUploadLetsTheWaitingWorkersGo() async throws {
        let server = FakeServer()
        let storage = SlowStorage(server: server, latency: .milliseconds(200))
        var options = fastOptions()
        options.transfers = .automatic
        let engine = SyncEngine(catalog: FakeCatalog(server: server),
                                recorder: SyncRecorder(initial: [:], journals: [try tempJournal()]), options: options)
        let run = Task { try await engine.run(items: makeItems(100), project: "p", storage: storage) }
        while await (server.calls["PUT"] ?? 0) == 0 && storage.peak == 0 { try await Task.sleep(for: .milliseconds(10)) }
        run.cancel()
        let report = try await run.value
        #expect(report.phase == .interrupted)
        #expect(await (server.calls["PUT"] ?? 0) < 100)
    }
}
