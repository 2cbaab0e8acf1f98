import AltiCore
import Foundation

/// What a run has said so far, folded into the `ProgressState` the displays draw: the scan's
/// progress callbacks, the recorder's events (phase, plan, each journaled fact) and the metrics
/// (bytes on the wire, retries, uploads in flight). It polls nothing in the recorder.
final class ProgressModel: @unchecked Sendable {
    private let lock = NSLock()
    private var scan: ScanProgress?
    private var phase: SyncPhase?
    private var plannedImages = 0
    private var plannedBytes: Int64 = 0
    private var stored = 0
    private var failed = 0
    private var awaiting = 0
    private var answered = 0
    private var metrics: SyncMetrics?
    private var window = RateWindow()
    private var windowStage: ProgressState.Stage?
    private let clock: @Sendable () -> Double

    init(clock: @escaping @Sendable () -> Double = { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }) {
        self.clock = clock
    }

    func scanned(_ progress: ScanProgress) { lock.withLock { scan = progress } }

    func follow(_ metrics: SyncMetrics) { lock.withLock { self.metrics = metrics } }

    func apply(_ event: SyncEvent) {
        lock.withLock {
            switch event {
            case .phase(let next): phase = next
            case .planned(let images, let bytes):
                // Each pass (--keep-trying runs the engine again) plans afresh.
                plannedImages = images
                plannedBytes = bytes
                stored = 0
                failed = 0
            case .awaiting(let images):
                awaiting = images
                answered = 0
            case .recorded(let e) where e.kind == .state && phase == .waiting:
                if let state = e.state, !state.isInProgress { answered += 1 }
            case .recorded(let e) where e.kind == .stored: stored += 1
            case .recorded(let e) where e.kind == .failed: failed += 1
            default: break
            }
        }
    }

    /// The state now, or nil when there is nothing to show (before the scan's first file,
    /// after the run).
    func snapshot() -> ProgressState? {
        let now = clock()
        return lock.withLock { () -> ProgressState? in
            let m = metrics?.snapshot ?? SyncMetrics.Snapshot()
            var state: ProgressState
            switch phase {
            case nil, .scanning?:
                guard let scan else { return nil }
                state = ProgressState(stage: .hashing, done: scan.filesDone, total: scan.filesTotal,
                                      bytesDone: scan.bytesDone, bytesTotal: scan.bytesTotal)
            case .checking?:
                state = ProgressState(stage: .checking, total: scan?.filesTotal ?? 0)
            case .uploading?:
                state = ProgressState(stage: .uploading, done: stored, total: plannedImages,
                                      bytesDone: min(max(m.bytesInFlight, 0), plannedBytes), bytesTotal: plannedBytes)
                state.inFlight = Array(m.inFlight.values)
            case .waiting?:
                state = ProgressState(stage: .waiting, total: awaiting)
                state.answered = answered
            case .done?:
                return nil
            }
            state.retries = m.retries
            state.failed = failed
            if windowStage != state.stage {
                window.reset()
                windowStage = state.stage
            }
            window.add(at: now, bytes: state.bytesDone)
            state.rate = window.rate
            return state
        }
    }
}

/// How progress reaches stderr: a live frame on a terminal, a plain line every few seconds on a
/// log or a pipe, or nothing (`--quiet`, `--json`, `--events`).
enum ProgressMode: Sendable, Equatable {
    case live(width: Int)
    case plain(every: Double)
    case none
}

/// The terminal side of the live display, kept thin: each frame is composed whole and written
/// in one `write` (cursor up to the frame's first line, then `\r ESC[K` and the text per line,
/// `ESC[J` for what a longer previous frame left below), at most 4 times a second. Messages
/// (Ctrl-C, `--keep-trying` waits, `--verbose` lines) erase the frame first, so they never land
/// inside it; the next tick draws it again below them. `stop()` erases it before the summary.
final class ProgressReporter: @unchecked Sendable {
    static let tick: Duration = .milliseconds(250)
    /// `--events`: a `progress` object at most this often.
    static let eventInterval = 0.5

    private let mode: ProgressMode
    private let palette: Palette
    private let write: @Sendable (String) -> Void
    private let events: EventLog?
    private let model: ProgressModel
    private let lock = NSLock()
    private var linesOnScreen = 0
    /// The drawing thread's stop signal and its end (`stop()` waits for the last draw).
    private let stopping = NSCondition()
    private var stopRequested = false
    private var loopEnded: DispatchSemaphore?

    init(mode: ProgressMode, palette: Palette, write: @escaping @Sendable (String) -> Void, events: EventLog?,
         model: ProgressModel) {
        self.mode = mode
        self.palette = palette
        self.write = write
        self.events = events
        self.model = model
    }

    /// Whether anything is drawn or emitted at all.
    var isActive: Bool { mode != .none || events != nil }

    /// Draws on a thread of its own, not a task: hashing and transfers may keep every thread of
    /// Swift's cooperative pool busy (2 on a 2-core laptop), and a display that waits for one
    /// freezes exactly when the run is busiest.
    func start() {
        guard isActive else { return }
        let started = Date()
        let ended = DispatchSemaphore(value: 0)
        loopEnded = ended
        let thread = Thread { [self] in
            var lastPlain = Date()
            var lastEvent = Date.distantPast
            while waitForTick() {
                guard let state = model.snapshot() else { continue }
                switch mode {
                // One column short of the width: a line that fills the last column wraps on some terminals.
                case .live(let width): draw(LiveFrame.lines(state).map { $0.rendered(width: width - 1, palette: palette) })
                case .plain(let every):
                    if Date().timeIntervalSince(lastPlain) >= every {
                        lastPlain = Date()
                        write(LiveFrame.plainLine(state) + "\n")
                    }
                case .none: break
                }
                if let events, Date().timeIntervalSince(lastEvent) >= Self.eventInterval {
                    lastEvent = Date()
                    events.progress(state, elapsed: Date().timeIntervalSince(started))
                }
            }
            ended.signal()
        }
        thread.name = "alti progress"
        thread.start()
    }

    private func requestStop() {
        stopping.lock()
        stopRequested = true
        stopping.broadcast()
        stopping.unlock()
    }

    /// Sleeps one tick; false when `stop()` asked the loop to end (at once, not after the tick).
    private func waitForTick() -> Bool {
        stopping.lock()
        defer { stopping.unlock() }
        let until = Date().addingTimeInterval(Double(Self.tick.components.attoseconds) / 1e18
                                              + Double(Self.tick.components.seconds))
        while !stopRequested, stopping.wait(until: until) {}
        return !stopRequested
    }

    /// One frame, in one write.
    private func draw(_ lines: [String]) {
        lock.withLock {
            write(Self.frame(lines, replacing: linesOnScreen))
            linesOnScreen = lines.count
        }
    }

    /// A line for stderr while the display runs: the frame is erased first.
    func message(_ text: String) {
        lock.withLock {
            write(Self.erase(linesOnScreen) + text)
            linesOnScreen = 0
        }
    }

    /// Stops drawing and erases the frame (before the summary, an error line, or an exit).
    func stop() async {
        requestStop()
        if let ended = loopEnded {
            // The loop may be inside a draw: wait for it off the cooperative pool.
            await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
                DispatchQueue.global().async { ended.wait(); done.resume() }
            }
            loopEnded = nil
        }
        lock.withLock {
            if linesOnScreen > 0 { write(Self.erase(linesOnScreen)) }
            linesOnScreen = 0
        }
    }

    /// The bytes that replace a frame of `previous` lines (the cursor at the end of its last
    /// line) with `lines`, leaving the cursor at the end of the new last line.
    static func frame(_ lines: [String], replacing previous: Int) -> String {
        var out = previous > 1 ? "\u{1B}[\(previous - 1)A" : ""
        out += lines.map { "\r\u{1B}[K" + $0 }.joined(separator: "\n")
        return out + "\u{1B}[J"
    }

    /// The bytes that erase a frame of `previous` lines and leave the cursor where it began.
    static func erase(_ previous: Int) -> String {
        guard previous > 0 else { return "" }
        return (previous > 1 ? "\u{1B}[\(previous - 1)A" : "") + "\r\u{1B}[J"
    }

    /// The terminal's width in columns (80 when it cannot be read).
    static func terminalWidth(_ fd: Int32 = STDERR_FILENO) -> Int {
        var size = winsize()
        if ioctl(fd, UInt(TIOCGWINSZ), &size) == 0, size.ws_col > 0 { return Int(size.ws_col) }
        return 80
    }
}
