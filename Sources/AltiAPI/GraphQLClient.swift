import AltiCore
import AltiNet
import Foundation

/// One HTTP POST as the GraphQL client needs it. Production wires this to libcurl (AltiNet);
/// unit tests pass a closure. The closure throws for transport failures (no answer at all).
public typealias GraphQLPost = @Sendable (_ url: String, _ headers: [(String, String)], _ body: [UInt8]) async throws
    -> (status: Int, body: [UInt8])

/// Where and as whom: the origin (`https://api.altizure.com`, or the emulator's
/// `http://127.0.0.1:PORT`), the app key and the user token. Never printed.
public struct APICredentials: Sendable {
    public var origin: String
    public var key: String
    public var token: String

    public init(origin: String, key: String, token: String) {
        self.origin = origin.hasSuffix("/") ? String(origin.dropLast()) : origin
        self.key = key
        self.token = token
    }

    public var graphQLURL: String { origin + "/graphql" }
}

/// A GraphQL error as the server reports it. `alias` is the first element of its path, which
/// tells which aliased field of a batch it belongs to.
public struct GraphQLFieldError: Sendable, Equatable {
    public var message: String
    public var alias: String?
}

/// A decoded answer: `data` (possibly partial) and the errors.
public struct GraphQLResponse: Sendable {
    public var data: JSONValue
    public var errors: [GraphQLFieldError]

    /// Errors that concern the whole request (no path) or the given alias.
    public func errors(for alias: String) -> [GraphQLFieldError] {
        errors.filter { $0.alias == alias || $0.alias == nil }
    }
}

/// The GraphQL client: JSON POSTs to `<origin>/graphql` with the `key` and (for project and image
/// operations) `altitoken` headers, bounded retries with full jitter on transport errors, 429 and
/// 5xx, and a one-line `AltiError` for everything a user can act on.
public struct GraphQLClient: Sendable {
    public let credentials: APICredentials
    let post: GraphQLPost
    let retry: RetryPolicy
    let sleep: @Sendable (Duration) async throws -> Void
    /// Requests and retries are counted here (shared with the storages and the engine).
    public let metrics: SyncMetrics

    public init(
        credentials: APICredentials, retry: RetryPolicy = RetryPolicy(), metrics: SyncMetrics = SyncMetrics(),
        sleep: @escaping @Sendable (Duration) async throws -> Void = { try await Task.sleep(for: $0) },
        post: @escaping GraphQLPost
    ) {
        self.credentials = credentials
        self.post = post
        self.retry = retry
        self.sleep = sleep
        self.metrics = metrics
    }

    /// Sends one document. `withToken` adds `altitoken` (project and image operations).
    /// Throws `AltiError`: `.auth` for an Authentication Error, `.unavailable` when the server
    /// cannot be reached after the retries, `.protocolError` for answers that are not GraphQL.
    public func execute(
        _ query: String, variables: [String: JSONValue] = [:], operationName: String? = nil, withToken: Bool
    ) async throws -> GraphQLResponse {
        var object: [String: JSONValue] = ["query": .string(query), "variables": variables.isEmpty ? .null : .object(variables)]
        if let operationName { object["operationName"] = .string(operationName) }
        let body = try Array(JSONEncoder().encode(JSONValue.object(object)))
        var headers: [(String, String)] = [
            ("Content-Type", "application/json; charset=utf-8"),
            ("Accept", "application/json; charset=utf-8"),
            ("key", credentials.key),
        ]
        if withToken { headers.append(("altitoken", credentials.token)) }

        let metrics = self.metrics
        do {
            return try await retry.run(sleep: sleep, onRetryNote: { attempt, delay, reason in
                metrics.countAPIRetry(RetryNote(what: "API request\(operationName.map { " " + $0 } ?? "")", attempt: attempt,
                                                delay: delay, reason: URLRedactor.redactMessage(reason)))
            }) { number in
                let status: Int
                let responseBody: [UInt8]
                do {
                    metrics.countAPIRequest()
                    (status, responseBody) = try await post(credentials.graphQLURL, headers, body)
                } catch let error as CancellationError {
                    throw error
                } catch let error as AltiError {
                    throw error
                } catch let error as HTTPTransportError where error.kind == .cannotResolve || error.kind == .cannotConnect {
                    // No network (DNS fails, nothing answers): say so within a few seconds, not
                    // after the whole retry budget. A mid-run blip gets two more quick tries.
                    if number >= Self.offlineAttempts - 1 {
                        throw AltiError(.unavailable, "offline: cannot reach \(credentials.origin) (\(error.message))")
                    }
                    return .retry(because: "\(error.kind.rawValue): \(error.message)")
                } catch let error as HTTPTransportError where !error.isTransient {
                    // A TLS failure or a malformed request will not heal with a retry.
                    throw AltiError(
                        .unavailable,
                        "cannot talk to \(credentials.origin): \(error.message) (\(error.kind.rawValue)); check --endpoint and the system's CA certificates")
                } catch {
                    return .retry(because: "\(error)")
                }
                if RetryPolicy.isTransient(status: status) { return .retry(because: "HTTP \(status)") }
                return .finished(try decode(status: status, body: responseBody))
            }
        } catch let exhausted as RetriesExhausted {
            throw AltiError(
                .unavailable,
                "cannot reach \(credentials.origin) (\(exhausted.lastProblem)) after \(exhausted.attempts) tries; "
                    + "nothing recorded was lost: run the same command again when the network is back")
        }
    }

    /// Tries of a request that finds no network at all (DNS failure, connection refused).
    static let offlineAttempts = 3

    func decode(status: Int, body: [UInt8]) throws -> GraphQLResponse {
        guard let json = try? JSONDecoder().decode(JSONValue.self, from: Data(body)), case .object = json else {
            throw AltiError(
                .protocolError,
                "\(credentials.graphQLURL) answered HTTP \(status) with a body that is not GraphQL JSON; "
                    + "check --endpoint (it must be the API origin, e.g. https://api.altizure.com)")
        }
        var errors: [GraphQLFieldError] = []
        for item in json["errors"]?.array ?? [] {
            // Errors are shown on one line: a server message may hold newlines.
            let message = (item["message"]?.string ?? "unknown error")
                .split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.joined(separator: " ")
            let alias = item["path"]?.array?.first?.string
            errors.append(GraphQLFieldError(message: message, alias: alias))
        }
        if let auth = errors.first(where: { $0.message.localizedCaseInsensitiveContains("Authentication Error") }) {
            throw AltiError(
                .auth,
                "the server refused the app key or user token (\(auth.message)); "
                    + "set ALTI_KEY/ALTI_TOKEN or --key/--token to valid values")
        }
        return GraphQLResponse(data: json["data"] ?? .null, errors: errors)
    }
}
