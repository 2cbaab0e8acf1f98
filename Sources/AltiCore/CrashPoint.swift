import Foundation

/// A test-only fault-injection hook (in the spirit of SQLite's): `ALTI_CRASH_AT=<point>[:<n>][:pause]`
/// makes the process SIGKILL itself the `n`-th time (default 1) it reaches `point`; with `pause`
/// it instead creates the file `$ALTI_CRASH_PAUSE_FILE` and waits there until a test, having
/// changed the world (filled the disk), removes it. (A pause, not SIGSTOP: Foundation's Process
/// takes a stopped child for an ended one.)
/// The crash-matrix tests use it for instants no outside timing can hit reliably (a torn journal
/// line, between a manifest's temp write and its rename). The variable is read once; unset, each
/// call is one comparison of a lazily made constant with nil. See DESIGN.md "Crash safety".
///
/// Points: `scan-hashed` (a file was hashed), `checkpoint-temp-written` (a scan checkpoint's temp
/// file is written and fsynced, not renamed yet), `binding-saved` (the manifest is bound and saved,
/// no journal yet), `registered` (a registration window is journaled, nothing sent for it yet),
/// `journal-append` (a batch of events is about to be written), `journal-torn` (half a batch is
/// written), `journal-unsynced` (a batch is written, not fsynced), `fold` (the sync's journal is about to be folded), `fold-temp-written` (the final
/// fold's temp file is written, not renamed), `fold-saved` (the folded manifest is renamed into
/// place, the journal not yet removed).
public enum CrashPoint {
    struct Armed: Sendable {
        var point: String
        var count: Int
        var pause: Bool
    }

    static let armed: Armed? = parse(ProcessInfo.processInfo.environment["ALTI_CRASH_AT"])

    static func parse(_ value: String?) -> Armed? {
        guard let value, !value.isEmpty else { return nil }
        let parts = value.split(separator: ":").map(String.init)
        var armed = Armed(point: parts[0], count: 1, pause: false)
        for part in parts.dropFirst() {
            if part == "pause" { armed.pause = true } else if let n = Int(part), n > 0 { armed.count = n }
        }
        return armed
    }

    private final class Counter: @unchecked Sendable {
        let lock = NSLock()
        var reached = 0
    }

    private static let counter = Counter()

    /// Marks `point` as reached; on the armed point's n-th time runs `before` (e.g. writes half a
    /// line) and then kills the process (or pauses this thread).
    public static func reached(_ point: String, before: () -> Void = {}) {
        guard let armed, armed.point == point else { return }
        let fire = counter.lock.withLock { () -> Bool in
            counter.reached += 1
            return counter.reached == armed.count
        }
        guard fire else { return }
        before()
        guard armed.pause, let file = ProcessInfo.processInfo.environment["ALTI_CRASH_PAUSE_FILE"] else {
            kill(getpid(), SIGKILL)
            return
        }
        let fd = open(file, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        if fd >= 0 { close(fd) }
        while access(file, F_OK) == 0 { usleep(5_000) }
    }
}
