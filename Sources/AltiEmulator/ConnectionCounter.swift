import Foundation
import NIOCore
import NIOHTTPTypes

/// Counts the TCP connections the emulator accepted and those that ended (either side closing),
/// so a test can see connections dropped by the idle timeout while a client was suspended.
/// Lock-based: NIO's event loops update it, `EmulatorState.stats()` reads it.
public final class ConnectionCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var openedCount = 0
    private var closedCount = 0

    public init() {}

    func opened() { lock.withLock { openedCount += 1 } }
    func closed() { lock.withLock { closedCount += 1 } }
    var counts: (opened: Int, closed: Int) { lock.withLock { (openedCount, closedCount) } }
}

/// Added to every connection's pipeline: one `opened` when it joins, one `closed` when the
/// connection ends. Passes everything else through untouched.
final class ConnectionCountingHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    let counter: ConnectionCounter
    private var counted = false

    init(_ counter: ConnectionCounter) { self.counter = counter }

    func handlerAdded(context: ChannelHandlerContext) {
        counted = true
        counter.opened()
    }

    func channelInactive(context: ChannelHandlerContext) {
        if counted { counter.closed() }
        counted = false
        context.fireChannelInactive()
    }
}
