import Foundation

/// The official CLI's `~/.altizure/config.yaml` (alti-cli, altizure-api.md §8): scopes keyed by
/// origin with `.` written `*`, each `{endpoint, profiles: [{id, name, email, key, token}]}`, and
/// `active: <profile id>`. Read through `YAMLSubset`; every key outside that shape is refused
/// with its line, so a file alti does not understand is never half-imported.
public struct OfficialConfig: Equatable, Sendable {
    public struct Profile: Equatable, Sendable {
        public var id: String
        public var name: String?
        public var email: String?
        public var endpoint: String
        public var key: String?
        public var token: String?
        /// The line of the profile's `- id:` (for messages).
        public var line: Int
    }

    public var active: String?
    public var profiles: [Profile]

    public static let defaultPathInHome = "/.altizure/config.yaml"

    /// Parses `text`; a failure is one line naming `path` and the line (78).
    public static func parse(_ text: String, path: String) throws(AltiError) -> OfficialConfig {
        func fail(_ line: Int, _ reason: String) -> AltiError {
            AltiError(.config, "\(path) line \(line): \(reason); alti reads the config.yaml that alti-cli writes (scopes, active), fix the file or give another one")
        }
        let root: YAMLSubset.Node
        do {
            root = try YAMLSubset.parse(text)
        } catch {
            throw fail(error.line, error.reason)
        }
        guard case .mapping(let top, _) = root else { throw fail(root.line, "expected 'scopes:' and 'active:' at the top") }
        var config = OfficialConfig(active: nil, profiles: [])
        var seenIDs: [String: Int] = [:]
        for entry in top {
            switch entry.key {
            case "active":
                guard case .scalar(let id, _) = entry.value else { throw fail(entry.line, "'active' must be a profile id") }
                config.active = id.isEmpty ? nil : id
            case "scopes":
                guard case .mapping(let scopes, _) = entry.value else {
                    if case .scalar("", _) = entry.value { continue }
                    throw fail(entry.value.line, "'scopes' must be a mapping of origins")
                }
                for scope in scopes {
                    guard case .mapping(let fields, _) = scope.value else {
                        throw fail(scope.line, "the scope '\(scope.key)' must have 'endpoint' and 'profiles'")
                    }
                    var endpoint: String?
                    var profileNodes: [YAMLSubset.Node] = []
                    for field in fields {
                        switch (field.key, field.value) {
                        case ("endpoint", .scalar(let value, _)): endpoint = value
                        case ("profiles", .sequence(let items, _)): profileNodes = items
                        case ("profiles", .scalar("", _)): profileNodes = []
                        case ("endpoint", _), ("profiles", _):
                            throw fail(field.line, "'\(field.key)' has the wrong shape (endpoint: URL, profiles: a list)")
                        default:
                            throw fail(field.line, "unknown key '\(field.key)' in a scope (expected endpoint, profiles)")
                        }
                    }
                    guard let endpoint, !endpoint.isEmpty else {
                        throw fail(scope.line, "the scope '\(scope.key)' has no endpoint")
                    }
                    for node in profileNodes {
                        let profile = try Self.profile(node, endpoint: endpoint, fail: fail)
                        if let earlier = seenIDs[profile.id] {
                            throw fail(profile.line, "the profile id '\(profile.id)' appears twice (also on line \(earlier))")
                        }
                        seenIDs[profile.id] = profile.line
                        config.profiles.append(profile)
                    }
                }
            default:
                throw fail(entry.line, "unknown key '\(entry.key)' (expected scopes, active)")
            }
        }
        return config
    }

    private static func profile(_ node: YAMLSubset.Node, endpoint: String,
                                fail: (Int, String) -> AltiError) throws(AltiError) -> Profile {
        guard case .mapping(let fields, let line) = node else { throw fail(node.line, "a profile must be 'id: ...' with name, email, key, token") }
        var values: [String: String] = [:]
        for field in fields {
            guard ["id", "name", "email", "key", "token"].contains(field.key) else {
                throw fail(field.line, "unknown key '\(field.key)' in a profile (expected id, name, email, key, token)")
            }
            guard case .scalar(let value, _) = field.value else { throw fail(field.line, "'\(field.key)' must be a single value") }
            values[field.key] = value
        }
        guard let id = values["id"], !id.isEmpty else { throw fail(line, "a profile without an id") }
        guard ProfileConfig.isValidName(id) else {
            throw fail(line, "the profile id '\(SecretMask.shown(id))' cannot be an alti profile name (letters, digits, '.', '_', '-')")
        }
        func nonEmpty(_ field: String) -> String? { values[field].flatMap { $0.isEmpty ? nil : $0 } }
        return Profile(id: id, name: nonEmpty("name"), email: nonEmpty("email"), endpoint: endpoint,
                       key: nonEmpty("key"), token: nonEmpty("token"), line: line)
    }
}

extension ProfileConfig {
    /// What `import` did with one profile of the official file.
    public enum ImportOutcome: Equatable, Sendable {
        case added(String)
        case replaced(String)
        /// A profile of that name exists and `replace` was not asked for.
        case kept(String)
    }

    /// Adds the official profiles, each named by its id (what `active` and alti-cli name it by).
    /// An existing alti profile of the same name is kept unless `replace`. When alti had no
    /// profile yet, the official `active` one becomes current. Endpoints must already be
    /// checked (`checkEndpoint` gives the origin to store, or throws naming the line).
    public mutating func importing(_ official: OfficialConfig, replace: Bool,
                                   checkEndpoint: (OfficialConfig.Profile) throws(AltiError) -> String)
        throws(AltiError) -> [ImportOutcome] {
        let wasEmpty = profiles.isEmpty
        var outcomes: [ImportOutcome] = []
        for profile in official.profiles {
            let endpoint = try checkEndpoint(profile)
            let exists = profiles[profile.id] != nil
            if exists, !replace {
                outcomes.append(.kept(profile.id))
                continue
            }
            profiles[profile.id] = ConnectionProfile(endpoint: endpoint, key: profile.key, token: profile.token)
            outcomes.append(exists ? .replaced(profile.id) : .added(profile.id))
        }
        if wasEmpty, let active = official.active, profiles[active] != nil {
            current = active
        } else if current == nil, currentName == nil, let first = outcomes.first {
            if case .added(let name) = first { current = name }
        }
        return outcomes
    }
}
