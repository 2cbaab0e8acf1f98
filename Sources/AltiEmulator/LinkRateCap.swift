import Foundation

/// One shared cap on the rate the emulator reads upload bodies at (`--bandwidth`), over all of
/// them together, as a thin field link would carry them: the sum of parallel uploads stays at
/// the rate, however many there are.
///
/// Paced rather than bursty: each chunk read books the time its bytes take at the rate, after
/// whatever earlier chunks booked, and its reader waits until then. An idle link books nothing,
/// so a new upload starts at once. Lock-based: every body reader calls it per chunk, without an
/// actor hop.
public final class LinkRateCap: @unchecked Sendable {
    private let lock = NSLock()
    private var bytesPerSecond = 0
    /// When the bytes booked so far have all passed at the rate (monotonic seconds).
    private var bookedUntil: Double = 0

    public init(bytesPerSecond: Int = 0) { self.bytesPerSecond = bytesPerSecond }

    /// The rate in force; 0 means no cap.
    public var rate: Int {
        get { lock.withLock { bytesPerSecond } }
        set { lock.withLock { bytesPerSecond = max(0, newValue) } }
    }

    /// Books `bytes` at the rate and returns how long the caller must wait before reading on
    /// (0 without a cap).
    func delay(for bytes: Int, now: Double = ProcessInfo.processInfo.systemUptime) -> Double {
        lock.withLock {
            guard bytesPerSecond > 0 else { return 0 }
            bookedUntil = max(bookedUntil, now) + Double(bytes) / Double(bytesPerSecond)
            return bookedUntil - now
        }
    }

    /// Reads on after `bytes` only when the link has carried them.
    func pace(_ bytes: Int) async throws {
        let seconds = delay(for: bytes)
        guard seconds > 0 else { return }
        try await Task.sleep(nanoseconds: UInt64(seconds * 1e9))
    }
}
