import Foundation

/// The emulator's notion of "now": URL and STS expiry, the 65-minute Pending rule, the progress
/// of reconstruction tasks, timestamps.
/// Tests inject a `ManualEmulatorClock` to cross those limits without waiting.
/// (The processing delay and fault latencies are real time: they exist to be waited for.)
public protocol EmulatorClock: Sendable {
    func now() -> Date
}

/// Wall-clock time.
public struct SystemEmulatorClock: EmulatorClock {
    public init() {}
    public func now() -> Date { Date() }
}

/// A clock that only moves when told to.
public final class ManualEmulatorClock: EmulatorClock, @unchecked Sendable {
    private let lock = NSLock()
    private var current: Date

    public init(_ start: Date = Date()) { current = start }

    public func now() -> Date { lock.withLock { current } }

    public func advance(by seconds: TimeInterval) {
        lock.withLock { current = current.addingTimeInterval(seconds) }
    }

    public func set(_ date: Date) { lock.withLock { current = date } }
}
