import Foundation
import GraphQL

/// Per-request facts every resolver needs.
struct ResolverContext: Sendable {
    let state: EmulatorState
    /// The `key` header matched.
    let keyValid: Bool
    /// The `altitoken` header matched.
    let tokenValid: Bool
    /// `http://127.0.0.1:PORT`.
    let baseURL: String
    let signer: any StorageURLSigner

    func requireKey() throws {
        guard keyValid else { throw APIError("Authentication Error: missing or invalid app key") }
    }

    func requireToken() throws {
        try requireKey()
        guard tokenValid else { throw APIError("Authentication Error: missing or invalid altitoken") }
    }

    func requireWritable() async throws {
        if await state.faults.systemMode == .readOnly {
            throw APIError("System is in ReadOnly mode: try again later")
        }
    }
}

/// An error a resolver reports; the executor turns it into a GraphQL error with the field's
/// location and path (its `description` is the message).
struct APIError: Error, CustomStringConvertible {
    let description: String
    init(_ message: String) { description = message }
}

/// Mints what the storage mutations hand out; the real one is backed by AltiSigning.
protocol StorageURLSigner: Sendable {
    /// A pre-signed S3 PUT URL on the emulator for `path` (already percent-encoded).
    func presignS3Put(baseURL: String, path: String, contentType: String, credentials: S3Credentials,
                      region: String, date: Date, expires: Int) -> String
}

typealias Resolver = @Sendable (_ source: any Sendable, _ args: Map, _ context: ResolverContext,
                                _ info: GraphQLResolveInfo) async throws -> (any Sendable)?

/// A JSON-like object for default field resolution: nil values are dropped (they resolve to null).
func object(_ pairs: KeyValuePairs<String, (any Sendable)?>) -> [String: any Sendable] {
    var out: [String: any Sendable] = [:]
    for (key, value) in pairs {
        if let value { out[key] = value }
    }
    return out
}

extension Map {
    /// A non-empty string argument, or nil for absent/null/"".
    var nonEmptyString: String? {
        guard let s = string, !s.isEmpty else { return nil }
        return s
    }
}

enum EmulatorSchema {
    /// The bundled SDL (`Resources/altizure.graphql`).
    static func sdl() throws -> String {
        guard let url = Bundle.module.url(forResource: "altizure", withExtension: "graphql") else {
            throw GraphQLError(message: "altizure.graphql is missing from the AltiEmulator bundle")
        }
        return try String(contentsOf: url, encoding: .utf8)
    }

    /// Builds the schema from the SDL and attaches resolvers. Every resolver must name a real
    /// field (checked here, so a typo fails at start-up, not at request time).
    static func build(resolvers: [String: [String: Resolver]]) throws -> GraphQLSchema {
        let schema = try buildSchema(source: sdl())
        for (typeName, fieldResolvers) in resolvers {
            guard let type = schema.getType(name: typeName) as? GraphQLObjectType else {
                throw GraphQLError(message: "schema has no object type \(typeName)")
            }
            let existing = try type.fields()
            for name in fieldResolvers.keys where existing[name] == nil {
                throw GraphQLError(message: "schema has no field \(typeName).\(name)")
            }
            let original = type.fields
            type.fields = {
                let map = try original()
                for (name, resolver) in fieldResolvers {
                    map[name]?.resolve = { source, args, context, info in
                        guard let context = context as? ResolverContext else {
                            throw GraphQLError(message: "internal error: no resolver context")
                        }
                        return try await resolver(source, args, context, info)
                    }
                }
                return map
            }
        }
        return schema
    }
}

/// The root fields an operation selects, through fragments, in document order.
func rootFieldNames(document: Document, operationName: String?) -> (names: [String], operation: OperationDefinition?) {
    var fragments: [String: FragmentDefinition] = [:]
    var operations: [OperationDefinition] = []
    for definition in document.definitions {
        if let op = definition as? OperationDefinition { operations.append(op) }
        if let fragment = definition as? FragmentDefinition { fragments[fragment.name.value] = fragment }
    }
    let operation: OperationDefinition?
    if let operationName {
        operation = operations.first { $0.name?.value == operationName }
    } else {
        operation = operations.count == 1 ? operations[0] : nil
    }
    guard let operation else { return ([], nil) }
    var names: [String] = []
    var visited = Set<String>()
    func walk(_ set: SelectionSet) {
        for selection in set.selections {
            if let field = selection as? Field {
                names.append(field.name.value)
            } else if let inline = selection as? InlineFragment {
                walk(inline.selectionSet)
            } else if let spread = selection as? FragmentSpread, !visited.contains(spread.name.value),
                      let fragment = fragments[spread.name.value] {
                visited.insert(spread.name.value)
                walk(fragment.selectionSet)
            }
        }
    }
    walk(operation.selectionSet)
    return (names, operation)
}

/// The field names directly selected under the resolving field (through inline fragments and
/// fragment spreads).
func selectedSubfields(_ info: GraphQLResolveInfo) -> Set<String> {
    var out = Set<String>()
    func walk(_ set: SelectionSet?) {
        guard let set else { return }
        for selection in set.selections {
            if let field = selection as? Field {
                out.insert(field.name.value)
            } else if let inline = selection as? InlineFragment {
                walk(inline.selectionSet)
            } else if let spread = selection as? FragmentSpread {
                walk(info.fragments[spread.name.value]?.selectionSet)
            }
        }
    }
    for field in info.fieldASTs { walk(field.selectionSet) }
    return out
}
