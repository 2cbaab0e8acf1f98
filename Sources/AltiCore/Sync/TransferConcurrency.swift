import Foundation

/// How many images go up at once: a count the user fixed (`--transfers 4`), or adapted to the
/// link while it runs (`--transfers auto`, up to `ceiling`).
public enum TransferCount: Sendable, Equatable, ExpressibleByIntegerLiteral {
    case fixed(Int)
    case adaptive(ceiling: Int)

    /// `--transfers auto`: adapted, at most 16 at once. Past a few streams one uplink gains
    /// nothing; 16 is for links where the round trip, not the bandwidth, bounds each stream.
    public static let automatic = TransferCount.adaptive(ceiling: TransferConcurrency.defaultCeiling)

    public init(integerLiteral value: Int) { self = .fixed(value) }

    /// The most uploads that can be in flight at once (connections to keep, workers to start).
    public var most: Int {
        switch self {
        case .fixed(let count): max(1, count)
        case .adaptive(let ceiling): max(1, ceiling)
        }
    }
}

/// The adaptive transfer count, as a pure state machine: fed samples of what the run has moved
/// so far (no clock, no timer inside), it answers how many uploads may be in flight.
///
/// - Slow start: from 2, the limit doubles after each measuring interval whose throughput (bytes
///   stored per second) grew by at least `growth` (10 %) over the interval before, like TCP's
///   slow start (a step too small to bring 10 % needs 40 % of its ideal gain: `required`).
/// - An increase that did not pay (throughput flat: a capped link, a saturated uplink) is undone,
///   and the limit holds. While holding, it re-measures and, every `probeAfter` intervals, probes
///   a quarter more streams (at least one); a probe that pays climbs on by quarters.
/// - Retries (timeouts, lost connections, 5xx, of uploads or API requests) and stalls (no body
///   byte sent for `stallAfter` seconds while uploads are in flight) halve the limit (at least 1),
///   once per `quietAfterBackOff`: the retries of the streams already in trouble do not halve
///   it again. It then holds and probes as above, so it recovers when the link does.
/// - An interval closes on an image stored, once it lasted `minInterval` seconds and stored at
///   least `limit` images (each stream finished one on average): rates are measured from one
///   completion to another, so an image's size does not quantize them. After a change of the
///   limit the next interval starts only once `limit` more images are stored (`settledAt`).
public struct TransferConcurrency: Sendable {
    /// What the run has done so far, cumulative; the time is monotonic seconds from any origin.
    public struct Sample: Sendable, Equatable {
        public var seconds: Double
        public var imagesStored: Int
        public var bytesStored: Int64
        /// Body bytes sent so far, live (stalls are seen on these).
        public var bytesSent: Int64
        /// Retries of transfers and API requests so far.
        public var retries: Int
        /// Uploads under way now.
        public var uploading: Int

        public init(seconds: Double, imagesStored: Int = 0, bytesStored: Int64 = 0, bytesSent: Int64 = 0, retries: Int = 0,
                    uploading: Int = 0) {
            self.seconds = seconds
            self.imagesStored = imagesStored
            self.bytesStored = bytesStored
            self.bytesSent = bytesSent
            self.retries = retries
            self.uploading = uploading
        }
    }

    public enum Phase: Sendable, Equatable {
        /// Doubling while throughput grows.
        case slowStart
        /// Adding a quarter while throughput grows (after a probe paid).
        case climbing
        /// At a plateau (or after a back-off): measuring, probing after `intervalsLeft` intervals.
        case holding(intervalsLeft: Int)
    }

    public static let defaultCeiling = 16
    public static let initialLimit = 2

    public let ceiling: Int
    public private(set) var limit: Int
    /// The highest limit reached.
    public private(set) var peak: Int
    public private(set) var phase: Phase = .slowStart
    /// Back-offs so far (retries or stalls).
    public private(set) var backOffs = 0

    /// Throughput must grow by this factor for more streams to count as paying.
    public var growth = 1.10
    public var minInterval = 0.5
    public var probeAfter = 4
    public var stallAfter = 5.0
    public var quietAfterBackOff = 2.0

    /// Where the current interval started (a completion or the first sample); nil while the
    /// link settles after a change of the limit.
    private var intervalStart: Sample?
    /// After a change, the interval starts once this many images are stored: as many more as
    /// the new limit, so each new stream has finished an image (its first one spans the change,
    /// and counting it would dilute the gain) and the streams above a lowered limit have stopped.
    private var settledAt = 0
    private var last: Sample?
    /// The limit before the last increase and the throughput measured there: where to return
    /// when the increase does not pay.
    private var baseline: (limit: Int, rate: Double)?
    private var retriesSeen = 0
    private var lastProgress = 0.0
    private var quietUntil = -Double.infinity

    public init(ceiling: Int = Self.defaultCeiling) {
        self.ceiling = max(1, ceiling)
        self.limit = min(Self.initialLimit, self.ceiling)
        self.peak = limit
    }

    /// Takes a sample (after each image stored, and now and then for stalls) and returns the limit.
    @discardableResult
    public mutating func observe(_ sample: Sample) -> Int {
        guard let previous = last else {
            last = sample
            intervalStart = sample
            retriesSeen = sample.retries
            lastProgress = sample.seconds
            return limit
        }
        last = sample

        if sample.retries > retriesSeen {
            retriesSeen = sample.retries
            if sample.seconds >= quietUntil {
                backOff(at: sample)
                return limit
            }
        }
        if sample.bytesSent != previous.bytesSent || sample.imagesStored != previous.imagesStored || sample.uploading == 0 {
            lastProgress = sample.seconds
        } else if sample.seconds - lastProgress >= stallAfter {
            lastProgress = sample.seconds
            if sample.seconds >= quietUntil {
                backOff(at: sample)
                return limit
            }
        }

        guard sample.imagesStored > previous.imagesStored else { return limit }
        guard let start = intervalStart else {
            if sample.imagesStored >= settledAt { intervalStart = sample }
            return limit
        }
        let elapsed = sample.seconds - start.seconds
        guard elapsed >= minInterval, sample.imagesStored - start.imagesStored >= limit else { return limit }
        intervalStart = sample
        let before = limit
        decide(rate: Double(sample.bytesStored - start.bytesStored) / elapsed)
        if limit != before { settle(from: sample) }
        return limit
    }

    private mutating func settle(from sample: Sample) {
        intervalStart = nil
        settledAt = sample.imagesStored + limit
    }

    private mutating func decide(rate: Double) {
        switch phase {
        case .slowStart, .climbing:
            if let baseline, rate < baseline.rate * required(from: baseline.limit) {
                // The streams added last did not pay: back to the count that moved as much.
                limit = baseline.limit
                phase = .holding(intervalsLeft: probeAfter)
                return
            }
            baseline = (limit, rate)
            let next = phase == .slowStart ? limit * 2 : limit + max(1, limit / 4)
            raise(to: next)
        case .holding(let intervalsLeft):
            // A fresh measure at the plateau: the link may have changed since.
            baseline = (limit, rate)
            if intervalsLeft > 1 {
                phase = .holding(intervalsLeft: intervalsLeft - 1)
            } else {
                phase = .climbing
                raise(to: limit + max(1, limit / 4))
            }
        }
    }

    /// The throughput factor that makes going from `previous` streams to `limit` pay: `growth`,
    /// but no more than 40 % of what the added streams would bring if each moved as much as the
    /// others, so a small step (one stream up to the ceiling, say 15 to 16) can still pay.
    private func required(from previous: Int) -> Double {
        let step = Double(limit) / Double(max(1, previous)) - 1
        return 1 + min(growth - 1, 0.4 * step)
    }

    private mutating func raise(to next: Int) {
        let raised = min(ceiling, next)
        if raised == limit {
            phase = .holding(intervalsLeft: probeAfter)
        } else {
            limit = raised
            peak = max(peak, limit)
        }
    }

    private mutating func backOff(at sample: Sample) {
        limit = max(1, limit / 2)
        backOffs += 1
        phase = .holding(intervalsLeft: probeAfter)
        baseline = nil
        settle(from: sample)
        quietUntil = sample.seconds + quietAfterBackOff
    }
}

/// Lets at most the controller's limit of transfer workers move an image at once, and feeds the
/// controller from the run's metrics: after each image and on `sampleEvery`'s ticks (stalls
/// show up only on a clock). The engine starts `ceiling` workers; those over the limit wait here.
actor AdaptiveTransfers {
    private var controller: TransferConcurrency
    private let metrics: SyncMetrics
    private let clock = ContinuousClock()
    private let origin: ContinuousClock.Instant
    private var inside = 0
    private var waiting: [(id: Int, turn: CheckedContinuation<Void, any Error>)] = []
    private var nextWaiter = 0

    init(ceiling: Int, metrics: SyncMetrics) {
        let controller = TransferConcurrency(ceiling: ceiling)
        self.controller = controller
        self.metrics = metrics
        origin = clock.now
        metrics.update { $0.transferLimit = controller.limit; $0.peakTransferLimit = controller.peak }
    }

    var limit: Int { controller.limit }

    /// Waits for a turn to move one image.
    func enter() async throws {
        try Task.checkCancellation()
        if inside < controller.limit, waiting.isEmpty {
            inside += 1
            return
        }
        nextWaiter += 1
        let id = nextWaiter
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { waiting.append((id, $0)) }
        } onCancel: {
            Task { await self.abandon(id) }
        }
    }

    /// Gives the turn back after an image (stored or not) and takes a sample.
    func leave() {
        inside -= 1
        sample()
    }

    /// Samples every `period` until cancelled.
    func sampleEvery(_ period: Duration) async {
        while true {
            do { try await Task.sleep(for: period) } catch { return }
            sample()
        }
    }

    private func sample() {
        let snapshot = metrics.snapshot
        let elapsed = clock.now - origin
        controller.observe(TransferConcurrency.Sample(
            seconds: elapsed.seconds, imagesStored: snapshot.imagesStored, bytesStored: snapshot.bytesStored,
            bytesSent: snapshot.bytesInFlight, retries: snapshot.retries, uploading: snapshot.inFlight.count))
        let controller = controller
        metrics.update { $0.transferLimit = controller.limit; $0.peakTransferLimit = controller.peak }
        admit()
    }

    private func admit() {
        while inside < controller.limit, !waiting.isEmpty {
            inside += 1
            waiting.removeFirst().turn.resume()
        }
    }

    private func abandon(_ id: Int) {
        guard let index = waiting.firstIndex(where: { $0.id == id }) else { return }
        waiting.remove(at: index).turn.resume(throwing: CancellationError())
    }
}
