import Foundation
import GraphQL
import Hummingbird

/// `POST /graphql`: JSON `{query, variables, operationName}` or a form-encoded `query=` body;
/// any other Content-Type (or none) answers 400 "Must provide query string.".
/// Parse and validation errors answer 400 with `errors` only (no `data`); field errors (for
/// example `Authentication Error`) answer 200 with that field null and an `errors` entry.
struct GraphQLHandler: Sendable {
    let state: EmulatorState
    let schema: GraphQLSchema
    let signer: any StorageURLSigner
    /// Shared by every request (the handler is copied into each).
    let validatedDocuments = ValidatedDocuments()

    struct Outcome {
        var response: Response
        var fields: [String] = []
        var operationName: String?
    }

    func handle(_ incoming: IncomingRequest, body: [UInt8]) async -> Outcome {
        guard incoming.method == "POST" else {
            return Outcome(response: .graphQLRequestError(405, "GraphQL only supports POST requests."))
        }
        let query: String
        var variables: [String: Map] = [:]
        var operationName: String?
        // The media type without parameters (`; charset=utf-8`); media types are case-insensitive.
        let mediaType = (incoming.header("content-type") ?? "").split(separator: ";", maxSplits: 1,
                                                                      omittingEmptySubsequences: false)
            .first.map { String($0).trimmingCharacters(in: .whitespaces).lowercased() } ?? ""
        guard mediaType == "application/json" || mediaType == "application/x-www-form-urlencoded" else {
            // graphql-http/express-graphql read no body of another type, so no query is found.
            return Outcome(response: .graphQLRequestError(400, "Must provide query string."))
        }
        if mediaType == "application/x-www-form-urlencoded" {
            let form = Self.parseForm(String(decoding: body, as: UTF8.self))
            guard let q = form["query"], !q.isEmpty else {
                return Outcome(response: .graphQLRequestError(400, "Must provide query string."))
            }
            query = q
            operationName = form["operationName"].flatMap { $0.isEmpty ? nil : $0 }
            if let text = form["variables"], !text.isEmpty {
                guard let parsed = try? JSONDecoder().decode(Map.self, from: Data(text.utf8)) else {
                    return Outcome(response: .graphQLRequestError(400, "Variables are invalid JSON."))
                }
                switch parsed {
                case .dictionary(let dict): variables = Dictionary(uniqueKeysWithValues: dict.map { ($0.key, $0.value) })
                case .null, .undefined: break
                default: return Outcome(response: .graphQLRequestError(400, "Variables must be an object."))
                }
            }
        } else {
            guard let parsed = try? JSONDecoder().decode(Map.self, from: Data(body)),
                  case .dictionary(let object) = parsed else {
                return Outcome(response: .graphQLRequestError(400, "POST body is not a JSON object."))
            }
            guard case .string(let q)? = object["query"], !q.isEmpty else {
                return Outcome(response: .graphQLRequestError(400, "Must provide query string."))
            }
            query = q
            switch object["operationName"] {
            case .string(let name)?: operationName = name.isEmpty ? nil : name
            case .null?, .undefined?, nil: break
            default: return Outcome(response: .graphQLRequestError(400, "operationName must be a string."))
            }
            switch object["variables"] {
            case .dictionary(let dict)?: variables = Dictionary(uniqueKeysWithValues: dict.map { ($0.key, $0.value) })
            case .null?, .undefined?, nil: break
            case .string(let text)?:
                // Some clients send variables as a JSON string.
                guard let inner = try? JSONDecoder().decode(Map.self, from: Data(text.utf8)),
                      case .dictionary(let dict) = inner else {
                    return Outcome(response: .graphQLRequestError(400, "Variables are invalid JSON."))
                }
                variables = Dictionary(uniqueKeysWithValues: dict.map { ($0.key, $0.value) })
            default: return Outcome(response: .graphQLRequestError(400, "Variables must be an object."))
            }
        }

        let document: Document
        if let validated = validatedDocuments.document(for: query) {
            document = validated
            await state.countDocumentReused()
        } else {
            do {
                document = try parse(source: Source(body: query, name: "GraphQL request"))
            } catch let error as GraphQLError {
                return Outcome(response: encode(400, GraphQLResult(errors: [error])), operationName: operationName)
            } catch {
                return Outcome(response: .graphQLRequestError(400, "Syntax Error: \(error)"), operationName: operationName)
            }
            let validationErrors = validate(schema: schema, ast: document)
            guard validationErrors.isEmpty else {
                return Outcome(response: encode(400, GraphQLResult(errors: validationErrors)), operationName: operationName)
            }
            validatedDocuments.keep(document, for: query)
        }
        let (fields, operation) = rootFieldNames(document: document, operationName: operationName)
        for field in fields { await state.countField(field) }

        let keyValid = incoming.header("key") == state.configuration.key
        let tokenValid = incoming.header("altitoken") == state.configuration.token
        let context = ResolverContext(state: state, keyValid: keyValid, tokenValid: tokenValid,
                                      baseURL: await state.baseURL, signer: signer)
        var result: GraphQLResult
        do {
            result = try await execute(schema: schema, documentAST: document, rootValue: (), context: context,
                                       variableValues: variables, operationName: operationName)
        } catch {
            result = GraphQLResult(errors: [GraphQLError(error)])
        }
        if !keyValid, let operation { result = Self.denyIntrospection(result, operation: operation) }
        var unique: [String] = []
        for field in fields where !unique.contains(field) { unique.append(field) }
        return Outcome(response: encode(result.data == nil ? 400 : 200, result), fields: unique,
                       operationName: operationName ?? operation?.name?.value)
    }

    /// Introspection (`__type`, `__schema`) needs the app key too: null it and add the error.
    static func denyIntrospection(_ result: GraphQLResult, operation: OperationDefinition) -> GraphQLResult {
        guard case .dictionary(var data)? = result.data else { return result }
        var errors = result.errors
        for selection in operation.selectionSet.selections {
            guard let field = selection as? Field, field.name.value == "__type" || field.name.value == "__schema"
            else { continue }
            let key = field.alias?.value ?? field.name.value
            data[key] = .null
            errors.append(GraphQLError(message: "Authentication Error: missing or invalid app key",
                                       path: IndexPath([key])))
        }
        return GraphQLResult(data: .dictionary(data), errors: errors)
    }

    static let encoder: GraphQLJSONEncoder = {
        let encoder = GraphQLJSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes]
        return encoder
    }()

    func encode(_ status: Int, _ result: GraphQLResult) -> Response {
        let data = (try? Self.encoder.encode(result)) ?? Data(#"{"errors":[{"message":"encoding failed"}]}"#.utf8)
        return .bytes(status, Array(data), contentType: "application/json; charset=utf-8")
    }

    /// `application/x-www-form-urlencoded` (`+` is a space).
    static func parseForm(_ body: String) -> [String: String] {
        var out: [String: String] = [:]
        for pair in body.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1)
            func decode(_ s: Substring) -> String {
                String(s).replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? String(s)
            }
            guard let name = parts.first else { continue }
            out[decode(name)] = parts.count > 1 ? decode(parts[1]) : ""
        }
        return out
    }
}
