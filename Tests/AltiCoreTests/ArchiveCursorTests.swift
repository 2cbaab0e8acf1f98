import Foundation
import Testing
@testable import AltiCore

/// The shared cursor of a streaming archive: waiters are served in archive order, a missing
/// expected member is awaited for the grace only, and waiting costs no CPU.
@Suite struct ArchiveCursorTests {
    /// Three uploads wait for the cursor while the member expected next (m1) never asks: after
    /// the 1 s grace they are served in archive order, each holding the cursor 0.3 s. Before the
    /// fix a waiter whose grace had passed kept its past deadline, so `wait(until:)` returned at
    /// once: the waiters not served spun (100 % CPU, tens of thousands of wake-ups) for as long
    /// as another held the cursor, which on 2 loaded cores starved the reader for minutes. Now
    /// each wakes a handful of times: at the grace, at each release.
    @Test func waitersSleepWhileTheCursorIsBusyAndAreServedInArchiveOrder() async throws {
        let cursor = ArchiveCursor()
        cursor.order = ["m0": 0, "m1": 1, "m2": 2, "m3": 3, "m4": 4]
        cursor.expect(["m1", "m2", "m3", "m4"])
        let served = ServedOrder()
        let waiters = ["m4", "m2", "m3"].map { path in
            Thread.detachNewThreadWithResult {
                cursor.acquire(path)
                served.append(path)
                Thread.sleep(forTimeInterval: 0.3)  // reading its member
                cursor.release()
            }
        }
        for waiter in waiters { waiter.wait() }
        #expect(served.paths == ["m2", "m3", "m4"])
        #expect(cursor.wakeups < 60, "waiters woke \(cursor.wakeups) times")
    }
}

private final class ServedOrder: @unchecked Sendable {
    private let lock = NSLock()
    private var list: [String] = []
    func append(_ path: String) { lock.withLock { list.append(path) } }
    var paths: [String] { lock.withLock { list } }
}

private final class Finished: @unchecked Sendable {
    private let semaphore = DispatchSemaphore(value: 0)
    func signal() { semaphore.signal() }
    func wait() { semaphore.wait() }
}

private extension Thread {
    static func detachNewThreadWithResult(_ body: @escaping @Sendable () -> Void) -> Finished {
        let done = Finished()
        Thread.detachNewThread {
            body()
            done.signal()
        }
        return done
    }
}
