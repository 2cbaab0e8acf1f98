import AltiCore
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
            let response: HTTPResponse
            do {
                response = try await transport.send(request)
            } catch let error as HTTPTransportError where error.kind == .cancelled {
                throw CancellationError()
            }
            if let portal = CaptivePortal.recognise(response, url: url) { throw portal }
            return (response.status, response.body)
        }
    }
}

/// A hotel or airport network that answers every request itself until the user signs in: a
/// redirect to its login page, or its HTML page with status 200. Recognised as "not the API" (and,
/// for an upload, as "not stored") and never parsed as data; the run stops as offline (nothing is
/// lost) and names where it pointed.
public enum CaptivePortal {
    public static func recognise(_ response: HTTPResponse, url: String) -> AltiError? {
        let host = URLComponents(string: url)?.host ?? url
        if (300...399).contains(response.status) {
            let location = response.header("Location").flatMap { URLComponents(string: $0)?.host } ?? "another address"
            return AltiError(.unavailable, "offline: the network answered for \(host) with a redirect to \(location) "
                + "(a Wi-Fi login page?); sign in to the network, then run the same command again")
        }
        let type = (response.header("Content-Type") ?? "").lowercased()
        let head = String(decoding: response.body.prefix(512), as: UTF8.self).lowercased()
        if type.contains("text/html") || head.contains("<html") || head.contains("<!doctype html") {
            return AltiError(.unavailable, "offline: \(host) answered with a web page (HTTP \(response.status)), not the API "
                + "(a Wi-Fi login page?); sign in to the network, then run the same command again")
        }
        return nil
    }
}
