import Foundation

/// One upload budget shared by every transfer (`--bwlimit`): a token bucket refilled at
/// `bytesPerSecond`, holding at most `burst` bytes. Transfer threads draw from it in their read
/// callbacks, so 4 parallel uploads under a 1 MB/s cap send 1 MB/s together, not 4 MB/s (a
/// per-request limit such as `CURLOPT_MAX_SEND_SPEED_LARGE` would multiply with the parallelism).
public final class BandwidthLimiter: @unchecked Sendable {
    public let bytesPerSecond: Int64
    public let burst: Int64
    /// What one waiting transfer asks for at least before it wakes up (a few KiB, so threads do
    /// not spin on single bytes, and well under `burst`, so tokens are taken long before a full
    /// bucket would overflow and waste them while threads oversleep on a loaded machine).
    public let chunk: Int64
    private let lock = NSLock()
    private var tokens: Double
    private var last: UInt64
    private let clock: @Sendable () -> UInt64
    private let pause: @Sendable (UInt64) -> Void

    /// - Parameters:
    ///   - burst: the most bytes the bucket holds (default: a quarter second's worth, at least
    ///     64 KiB). The bucket starts empty, so a transfer never starts with a burst; a full one
    ///     only builds up while nothing is sent.
    ///   - clock: monotonic nanoseconds; `pause`: sleeps nanoseconds (both injectable for tests).
    public init(bytesPerSecond: Int64, burst: Int64? = nil,
                clock: @escaping @Sendable () -> UInt64 = { DispatchTime.now().uptimeNanoseconds },
                pause: @escaping @Sendable (UInt64) -> Void = { usleep(useconds_t(min($0 / 1000, 1_000_000))) }) {
        precondition(bytesPerSecond > 0)
        self.bytesPerSecond = bytesPerSecond
        let burst = max(1, burst ?? max(64 << 10, bytesPerSecond / 4))
        self.burst = burst
        self.chunk = min(burst, max(4 << 10, bytesPerSecond / 50))
        self.tokens = 0
        self.clock = clock
        self.pause = pause
        self.last = clock()
    }

    /// Blocks the calling (transfer) thread until some bytes may be sent and returns how many,
    /// between 1 and `wanted`; returns 0 when `stop()` turns true while waiting.
    public func acquire(upTo wanted: Int, stop: () -> Bool = { false }) -> Int {
        guard wanted > 0 else { return 0 }
        // Wait for a useful amount rather than trickling single bytes: a chunk, or what is asked
        // for if that is smaller.
        let target = Double(min(Int64(wanted), chunk))
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
