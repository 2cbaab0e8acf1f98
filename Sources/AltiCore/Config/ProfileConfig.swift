import Foundation

/// One profile of the config file: where the API is and who we are there. Every field is
/// optional (a profile may hold only an endpoint; the key and token then come from elsewhere).
public struct ConnectionProfile: Codable, Sendable, Equatable {
    public var endpoint: String?
    public var key: String?
    public var token: String?

    public init(endpoint: String? = nil, key: String? = nil, token: String? = nil) {
        self.endpoint = endpoint
        self.key = key
        self.token = token
    }

    /// The secrets this profile holds (for masking a value typed in the wrong place).
    public var secrets: [String?] { [key, token] }
}

/// The config file (`$XDG_CONFIG_HOME/alti/config.json`): named profiles and the current one.
///
/// Written as `{"current": "cn", "profiles": {"default": {...}, "cn": {...}}}`. The flat file of
/// earlier versions (`{"endpoint", "key", "token"}`) is read as one profile named `default`,
/// current; it is rewritten in the new format only when a `config` command changes the file.
public struct ProfileConfig: Sendable, Equatable {
    /// The profile used when neither `--profile` nor `ALTI_PROFILE` names one.
    public var current: String?
    public var profiles: [String: ConnectionProfile]

    public static let defaultName = "default"

    public init(current: String? = nil, profiles: [String: ConnectionProfile] = [:]) {
        self.current = current
        self.profiles = profiles
    }

    /// Profile names: a letter or digit, then letters, digits, `.`, `_`, `-`; at most 64.
    /// They appear in commands and messages, so they must never need quoting.
    public static func isValidName(_ name: String) -> Bool {
        guard let first = name.unicodeScalars.first, name.unicodeScalars.count <= 64,
              isNameScalar(first), first != ".", first != "_", first != "-" else { return false }
        return name.unicodeScalars.allSatisfy(isNameScalar)
    }

    private static func isNameScalar(_ s: Unicode.Scalar) -> Bool {
        ("a"..."z").contains(s) || ("A"..."Z").contains(s) || ("0"..."9").contains(s) || s == "." || s == "_" || s == "-"
    }

    public static func checkName(_ name: String) throws(AltiError) {
        guard isValidName(name) else {
            throw AltiError(.usage, "profile name '\(SecretMask.shown(name))' is not valid: use letters, digits, '.', '_' or '-' (at most 64, e.g. cn or field-team)")
        }
    }

    /// Names in order, for lists and messages.
    public var names: [String] { profiles.keys.sorted() }

    /// The profile a command uses when none is named: `current`, else `default` when present.
    /// A `current` that names no profile (a hand edit) is returned as it is, so the caller
    /// reports it rather than silently using another.
    public var currentName: String? {
        if let current { return current }
        return profiles[Self.defaultName] != nil ? Self.defaultName : nil
    }

    // MARK: Changes (the `config` commands)

    /// Creates or updates `name` with the given fields (nil: keep; empty: remove the field).
    /// The first profile of a file becomes current.
    public mutating func set(_ name: String, endpoint: String?, key: String?, token: String?) {
        var profile = profiles[name] ?? ConnectionProfile()
        func apply(_ value: String?, to field: inout String?) {
            guard let value else { return }
            field = value.isEmpty ? nil : value
        }
        apply(endpoint, to: &profile.endpoint)
        apply(key, to: &profile.key)
        apply(token, to: &profile.token)
        profiles[name] = profile
        if currentName == nil { current = name }
    }

    /// Removes `name`; when it was current, no profile is current any more (commands then use
    /// `default` if there is one). Returns whether it was current.
    @discardableResult
    public mutating func remove(_ name: String) -> Bool {
        profiles[name] = nil
        let wasCurrent = current == name
        if wasCurrent { current = nil }
        return wasCurrent
    }

    // MARK: File format

    private struct Stored: Codable {
        var current: String?
        var profiles: [String: ConnectionProfile]?
        var endpoint: String?
        var key: String?
        var token: String?
    }

    /// The config as read from `data` (either format); `path` names the file in errors (78).
    public static func decode(_ data: Data, path: String) throws(AltiError) -> ProfileConfig {
        let stored: Stored
        do {
            stored = try JSONDecoder().decode(Stored.self, from: data)
        } catch {
            throw AltiError(.config, "the config file \(path) is not valid JSON ({\"current\": NAME, \"profiles\": {NAME: {\"endpoint\", \"key\", \"token\"}}}); fix it, or remove it and run alti config set")
        }
        let flat = stored.endpoint != nil || stored.key != nil || stored.token != nil
        guard let profiles = stored.profiles else {
            if stored.current != nil {
                throw AltiError(.config, "the config file \(path) has \"current\" but no \"profiles\"; fix it, or remove it and run alti config set")
            }
            // The flat format of earlier versions: one profile, `default`, current.
            let only = ConnectionProfile(endpoint: stored.endpoint, key: stored.key, token: stored.token)
            return flat ? ProfileConfig(current: defaultName, profiles: [defaultName: only]) : ProfileConfig()
        }
        if flat {
            throw AltiError(.config, "the config file \(path) has both \"profiles\" and a top-level \"endpoint\", \"key\" or \"token\"; move them into a profile (alti config set NAME ...)")
        }
        for name in profiles.keys where !isValidName(name) {
            throw AltiError(.config, "the config file \(path) has a profile named '\(SecretMask.shown(name))', which is not a valid name (letters, digits, '.', '_', '-'); rename it in the file")
        }
        return ProfileConfig(current: stored.current, profiles: profiles)
    }

    /// The file's bytes: pretty-printed, sorted keys, trailing newline.
    public func encoded() -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        // Nil fields are left out (the synthesized encoder uses encodeIfPresent).
        var data = (try? encoder.encode(Stored(current: current, profiles: profiles))) ?? Data("{}".utf8)
        data.append(0x0A)
        return data
    }
}

/// `show`'s view of a secret: enough to tell two apart, never enough to use one.
public enum SecretPreview {
    /// A secret shorter than this shows no characters at all (4 of 10 would be a large part).
    public static let minimumLengthForPrefix = 16

    /// `abcd… (40 characters)`, or `… (8 characters)` for a short one, or `not set`.
    public static func describe(_ secret: String?) -> String {
        guard let secret, !secret.isEmpty else { return "not set" }
        let prefix = secret.count >= minimumLengthForPrefix ? String(secret.prefix(4)) : ""
        return "\(prefix)… (\(secret.count) characters)"
    }
}
