import Foundation

/// One upload budget shared by every transfer (`--bwlimit`): a token bucket refilled at
/// `bytesPerSecond`, holding at most `burst` bytes. Transfer threads draw from it in their read
/// callbacks, so 4 parallel uploads under a 1 MB/s cap send 1 MB/s together, not 4 MB/s (a
/// per-request limit such as `CURLOPT_MAX_SEND_SPEED_LARGE` would multiply with the parallelism).
public final class BandwidthLimiter: @unchecked Sendable {
    public let bytesPerSecond: Int64
    public let burst: Int64
    private let lock = NSLock()
    private var tokens: Double
    private var last: UInt64
    private let clock: @Sendable () -> UInt64
    private let pause: @Sendable (UInt64) -> Void

    /// - Parameters:
    ///   - burst: the most bytes sent at once after an idle spell (default: 1/20 of a second's
    ///     worth, at least 16 KiB), small so the rate holds over short windows too.
    ///   - clock: monotonic nanoseconds; `pause`: sleeps nanoseconds (both injectable for tests).
    public init(bytesPerSecond: Int64, burst: Int64? = nil,
                clock: @escaping @Sendable () -> UInt64 = { DispatchTime.now().uptimeNanoseconds },
                pause: @escaping @Sendable (UInt64) -> Void = { usleep(useconds_t(min($0 / 1000, 1_000_000))) }) {
        precondition(bytesPerSecond > 0)
        self.bytesPerSecond = bytesPerSecond
        self.burst = max(1, burst ?? max(16 << 10, bytesPerSecond / 20))
        self.tokens = 0
        self.clock = clock
        self.pause = pause
        self.last = clock()
    }

    /// Blocks the calling (transfer) thread until some bytes may be sent and returns how many,
    /// between 1 and `wanted`; returns 0 when `stop()` turns true while waiting.
    public func acquire(upTo wanted: Int, stop: () -> Bool = { false }) -> Int {
        guard wanted > 0 else { return 0 }
        // Wait for a useful amount rather than trickling single bytes: at most a burst, at
        // least what is asked for if that is smaller.
        let target = Double(min(Int64(wanted), burst))
        while true {
            let (granted, wait): (Int, UInt64) = lock.withLock {
                refill()
                if tokens >= target {
                    let granted = Int(min(Double(wanted), tokens.rounded(.down)))
                    tokens -= Double(granted)
                    return (granted, 0)
                }
                return (0, UInt64((target - tokens) / Double(bytesPerSecond) * 1e9) + 1)
            }
            if granted > 0 { return granted }
            if stop() { return 0 }
            // Short naps, so a cancelled transfer is noticed quickly.
            pause(min(wait, 50_000_000))
            if stop() { return 0 }
        }
    }

    private func refill() {
        let now = clock()
        let elapsed = Double(now &- last) / 1e9
        last = now
        tokens = min(Double(burst), tokens + elapsed * Double(bytesPerSecond))
    }
}
