import Dispatch
import Foundation

/// Ctrl-C and SIGTERM stop a sync cleanly: the first one cancels the work task (in-flight
/// requests are abandoned at their next progress callback, everything recorded is already in the
/// journal, and the summary says what is left); a second one exits at once with 130.
final class Interruption: @unchecked Sendable {
    private var sources: [any DispatchSourceSignal] = []
    private let lock = NSLock()
    private var count = 0
    private var onFirst: (@Sendable () -> Void)?
    private let write: @Sendable (String) -> Void

    /// Installs the handlers; `onFirst` runs once, on the first signal; `write` prints to stderr.
    init(write: @escaping @Sendable (String) -> Void, onFirst: @escaping @Sendable () -> Void) {
        self.onFirst = onFirst
        self.write = write
        for signo in [SIGINT, SIGTERM] {
            signal(signo, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: signo, queue: .global())
            source.setEventHandler { [weak self] in self?.received(signo) }
            source.resume()
            sources.append(source)
        }
    }

    private func received(_ signo: Int32) {
        let (n, action) = lock.withLock { () -> (Int, (@Sendable () -> Void)?) in
            count += 1
            defer { onFirst = nil }
            return (count, onFirst)
        }
        if n == 1 {
            let name = signo == SIGINT ? "Ctrl-C" : "SIGTERM"
            write("\nalti: \(name): stopping, saving what is recorded (press Ctrl-C again to quit at once)\n")
            action?()
        } else {
            _exit(130)
        }
    }

    var wasInterrupted: Bool { lock.withLock { count > 0 } }

    /// Restores the default dispositions.
    func remove() {
        for source in sources { source.cancel() }
        signal(SIGINT, SIG_DFL)
        signal(SIGTERM, SIG_DFL)
    }
}
