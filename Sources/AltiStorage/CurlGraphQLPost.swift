import AltiNet
import Foundation

/// Adapts an `HTTPTransport` to the GraphQL client's POST closure. GraphQL answers are small,
/// so a total timeout bounds a hung server; the low-speed limit covers stalls.
public enum GraphQLOverHTTP {
    public static func post(using transport: any HTTPTransport, limits: HTTPLimits = HTTPLimits(totalTimeout: 120))
        -> @Sendable (_ url: String, _ headers: [(String, String)], _ body: [UInt8]) async throws -> (status: Int, body: [UInt8])
    {
        return { url, headers, body in
            let request = HTTPRequest(
                method: "POST", url: url, headers: headers.map { (name: $0.0, value: $0.1) }, body: .bytes(body), limits: limits)
            do {
                let response = try await transport.send(request)
                return (response.status, response.body)
            } catch let error as HTTPTransportError where error.kind == .cancelled {
                throw CancellationError()
            }
        }
    }
}
