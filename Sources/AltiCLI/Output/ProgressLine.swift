import AltiCore
import Foundation

/// One self-overwriting progress line on a terminal's stderr, at most 4 times a second:
/// files and bytes done of total, MB/s, ETA. Nothing at all when stderr is not a terminal.
final class ProgressLine: @unchecked Sendable {
    private let lock = NSLock()
    private let started = DispatchTime.now().uptimeNanoseconds
    private var lastDraw: UInt64 = 0
    private var drawn = false
    private static let interval: UInt64 = 250_000_000
    private let write: @Sendable (String) -> Void

    /// `write` goes to a terminal: the line is redrawn in place.
    init(write: @escaping @Sendable (String) -> Void) { self.write = write }

    func update(_ p: ScanProgress) {
        let now = DispatchTime.now().uptimeNanoseconds
        let line: String? = lock.withLock {
            guard now - lastDraw >= Self.interval || p.filesDone == p.filesTotal else { return nil }
            lastDraw = now
            drawn = true
            return Self.format(p, elapsedNs: now - started)
        }
        if let line { write("\r\u{1B}[K" + line) }
    }

    func finish() {
        let clear = lock.withLock { () -> Bool in
            defer { drawn = false }
            return drawn
        }
        if clear { write("\r\u{1B}[K") }
    }

    static func format(_ p: ScanProgress, elapsedNs: UInt64) -> String {
        let seconds = max(Double(elapsedNs) / 1e9, 0.001)
        let rate = Double(p.bytesDone) / seconds
        var eta = "--:--"
        if rate > 0, p.bytesTotal > p.bytesDone {
            let left = Int(Double(p.bytesTotal - p.bytesDone) / rate)
            eta = String(format: "%d:%02d", left / 60, left % 60)
        }
        return String(format: "hashing %d/%d files, %@ of %@, %.0f MB/s, ETA %@", p.filesDone, p.filesTotal,
                      ScanRenderer.bytes(p.bytesDone), ScanRenderer.bytes(p.bytesTotal), rate / 1e6, eta)
    }
}
