import HTTPTypes
import NIOCore
import NIOHTTPTypes

/// Storage answers carry the storage's clock in `Date`, the way OSS reports its time: the Go v2
/// SDK corrects its clock offset from the `Date` of a `RequestTimeTooSkewed` answer, so an
/// emulated skew (`ossClockSkewSeconds`) or an injected test clock must show there. Hummingbird
/// stamps every response with the wall clock after the responder returns, so the responder puts
/// the wanted value in this private header and `StorageDateHeaderHandler` moves it into `Date`
/// on the way out.
enum StorageDateHeader {
    static let name = HTTPField.Name("x-alti-emulator-date")!
}

/// Moves `StorageDateHeader` into `Date` in outgoing response heads (added to every connection's
/// pipeline after the HTTP/1 codec).
final class StorageDateHeaderHandler: ChannelOutboundHandler, RemovableChannelHandler {
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        var part = unwrapOutboundIn(data)
        if case .head(var head) = part, let date = head.headerFields[StorageDateHeader.name] {
            head.headerFields[StorageDateHeader.name] = nil
            head.headerFields[.date] = date
            part = .head(head)
        }
        context.write(wrapOutboundOut(part), promise: promise)
    }
}
