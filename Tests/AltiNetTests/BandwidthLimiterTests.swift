@testable import AltiNet
import Foundation
import Testing

/// The shared upload limiter: a pure token-bucket check on an injected clock, and the real thing
/// over a socket, where 4 parallel bodies together must stay at the cap (not 4 times it).
@Suite struct BandwidthLimiterTests {
    final class FakeClock: @unchecked Sendable {
        private let lock = NSLock()
        private var ns: UInt64 = 1_000_000_000
        var now: UInt64 { lock.withLock { ns } }
        func advance(_ d: UInt64) { lock.withLock { ns += d } }
    }

    @Test func grantsNeverExceedTheRateTimesTheTimePlusOneBurst() {
        let clock = FakeClock()
        let limiter = BandwidthLimiter(bytesPerSecond: 100_000, burst: 10_000,
                                       clock: { clock.now }, pause: { clock.advance($0) })
        var granted = 0
        while granted < 1_000_000 { granted += limiter.acquire(upTo: 64 << 10) }
        let seconds = Double(clock.now - 1_000_000_000) / 1e9
        // 1 MB at 100 kB/s: 10 s, less at most one burst's worth (0.1 s).
        #expect(seconds >= 9.9 - 0.001)
        #expect(seconds <= 10.2)
        // Each grant is at most a burst.
        #expect(limiter.acquire(upTo: 1 << 20) <= 10_000)
    }

    @Test func aStopWhileWaitingGrantsNothing() {
        let clock = FakeClock()
        let limiter = BandwidthLimiter(bytesPerSecond: 1000, burst: 1000, clock: { clock.now }, pause: { clock.advance($0) })
        #expect(limiter.acquire(upTo: 500) { true } == 0)
    }

    /// When each body read happened and how many bytes it gave curl: the bytes the limiter let
    /// through, timed on the transfer threads themselves (not on the test's tasks, which a busy
    /// cooperative pool may resume late).
    final class ReadLog: @unchecked Sendable {
        private let lock = NSLock()
        private var reads: [(ns: UInt64, bytes: Int)] = []
        func add(_ n: Int) { lock.withLock { reads.append((DispatchTime.now().uptimeNanoseconds, n)) } }
        /// Bytes per second between the first and the last read (the first read's bytes excluded:
        /// they were granted before the window opened).
        var rate: Double {
            lock.withLock {
                guard let first = reads.min(by: { $0.ns < $1.ns }), let last = reads.max(by: { $0.ns < $1.ns }),
                      last.ns > first.ns else { return .infinity }
                let bytes = reads.reduce(0) { $0 + $1.bytes } - first.bytes
                return Double(bytes) / (Double(last.ns - first.ns) / 1e9)
            }
        }
    }

    /// A body source that produces `length` pseudo-random bytes (no file needed), logging reads.
    struct PatternBody: HTTPBodySource {
        let length: Int64
        let log: ReadLog
        func open() throws -> any HTTPBodyReader { Reader(length: length, log: log) }
        final class Reader: HTTPBodyReader {
            var left: Int64
            let log: ReadLog
            init(length: Int64, log: ReadLog) { left = length; self.log = log }
            func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
                let n = Int(min(Int64(buffer.count), left))
                for i in 0..<n { buffer[i] = UInt8(truncatingIfNeeded: (left - Int64(i)) &* 31) }
                left -= Int64(n)
                log.add(n)
                return n
            }
        }
    }

    /// Sends `count` bodies of `size` bytes in parallel; returns the rate at which the bodies were read.
    func sendInParallel(_ transport: CurlTransport, port: Int, count: Int, size: Int64) async throws -> Double {
        let log = ReadLog()
        try await withThrowingTaskGroup(of: Int.self) { group in
            for i in 0..<count {
                group.addTask {
                    let request = HTTPRequest(method: "PUT", url: "http://127.0.0.1:\(port)/body\(i)",
                                              body: .stream(PatternBody(length: size, log: log)))
                    return try await transport.send(request).status
                }
            }
            for try await status in group { #expect(status == 200) }
        }
        return log.rate
    }

    @Test func fourParallelUploadsTogetherStayAtTheCap() async throws {
        let server = try RawHTTPServer { _ in .respond(status: 200, headers: [], body: Array("ok".utf8)) }
        defer { server.stop() }
        let cap: Int64 = 400_000
        let size: Int64 = 300_000
        let limited = CurlTransport(maxConcurrentTransfers: 4, uploadLimiter: BandwidthLimiter(bytesPerSecond: cap))
        let rate = try await sendInParallel(limited, port: server.port, count: 4, size: size)
        let received = server.requests.reduce(0) { $0 + $1.body.count }
        #expect(received == 4 * Int(size))
        // Within 10 % above the cap (the property that matters: parallel bodies share one
        // budget); a generous floor below it, for a loaded machine whose sleeps overshoot.
        #expect(rate <= Double(cap) * 1.10, "achieved \(Int(rate)) B/s over a \(cap) B/s cap")
        #expect(rate >= Double(cap) * 0.75, "achieved \(Int(rate)) B/s over a \(cap) B/s cap")

        // The same transfer without the limiter is far faster: the cap is what held it back.
        let free = try await sendInParallel(CurlTransport(maxConcurrentTransfers: 4), port: server.port, count: 4, size: size)
        #expect(free > rate * 3)
        print("bandwidth limiter: 4 parallel bodies at \(Int(rate)) B/s under a \(cap) B/s cap; \(Int(free)) B/s without it")
    }
}
