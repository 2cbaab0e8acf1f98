import AltiCore
import AltiNet
import ArgumentParser
import Foundation

/// Where the API is and who we are. Per value, the first that is set wins:
/// 1. the flags `--endpoint`, `--key`, `--token`;
/// 2. the profile named by `--profile` (a flag too, so it beats the environment);
/// 3. the environment, `ALTI_ENDPOINT`, `ALTI_KEY`, `ALTI_TOKEN` (the variables the official CLI reads);
/// 4. the profile named by `ALTI_PROFILE`, else the config file's current profile, else its `default`.
/// The config file is `$XDG_CONFIG_HOME/alti/config.json`, else `~/.config/alti/config.json`
/// (`ConfigStore`); a profile named but not in it is one line listing the known ones (78).
public struct ConnectionOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("API origin: https://api.altizure.com (default), cn for https://api.altizure.cn, or a private server's origin (env ALTI_ENDPOINT).", valueName: "url"))
    var endpoint: String?

    @Option(name: .long, help: ArgumentHelp("App key (env ALTI_KEY). Prefer a profile (alti config set NAME --key-stdin) or the environment: flags are visible in `ps`.", valueName: "key"))
    var key: String?

    @Option(name: .long, help: ArgumentHelp("User token (env ALTI_TOKEN). Prefer a profile (alti config set NAME --token-stdin) or the environment.", valueName: "token"))
    var token: String?

    @Option(name: .long, help: ArgumentHelp("Profile of the config file to connect with (env ALTI_PROFILE; default: the current one, see alti config list).", valueName: "name"))
    var profile: String?

    public init() {}

    /// Resolves the connection; `warn` gets the config file's one warning line, if any (a file
    /// that others can read).
    public func resolve(environment: [String: String] = ProcessInfo.processInfo.environment,
                        warn: (String) -> Void = { _ in }) throws -> ResolvedConnection {
        let store = ConfigStore(environment: environment)
        let config = try store.load(warn: warn)
        let selection = try ProfileSelection.select(flag: profile, environment: environment, config: config, path: store.path)
        let byFlag = selection?.source == .flag ? selection?.profile : nil
        let byDefault = selection?.source == .flag ? nil : selection?.profile
        enum Source { case flag, flagProfile, environment, profile }
        func pick(_ flag: String?, _ flagProfile: String?, _ env: String, _ profile: String?) -> (String, Source)? {
            if let flag, !flag.isEmpty { return (flag, .flag) }
            if let flagProfile, !flagProfile.isEmpty { return (flagProfile, .flagProfile) }
            if let value = environment[env], !value.isEmpty { return (value, .environment) }
            if let profile, !profile.isEmpty { return (profile, .profile) }
            return nil
        }
        let key = pick(key, byFlag?.key, "ALTI_KEY", byDefault?.key)?.0
        let token = pick(token, byFlag?.token, "ALTI_TOKEN", byDefault?.token)?.0
        let endpoint: String
        if let picked = pick(self.endpoint, byFlag?.endpoint, "ALTI_ENDPOINT", byDefault?.endpoint) {
            do {
                endpoint = try Self.origin(picked.0, secrets: [key, token])
            } catch let error as AltiError where picked.1 == .flagProfile || picked.1 == .profile {
                // A bad endpoint stored in a profile is the config file's fault, not the command line's.
                let name = selection?.name ?? ""
                throw AltiError(.config, "profile \(name) in \(store.path): \(error.message.replacingOccurrences(of: "; use e.g. --endpoint", with: "; fix it with alti config set \(name) --endpoint"))")
            }
        } else {
            endpoint = ResolvedConnection.defaultEndpoint
        }
        return ResolvedConnection(endpoint: endpoint, key: key, token: token, configPath: store.path, profile: selection?.name)
    }

    /// Short names for the two public services. A bare host (`api.altizure.com`) stays an error:
    /// it may be a typo for another server, and the message shows the form to use.
    static let endpointPresets: [String: String] = ["com": "https://api.altizure.com", "cn": "https://api.altizure.cn"]

    /// `value` as the origin alti stores and talks to (a preset expanded, no trailing slash), or a
    /// usage error naming it (masked when it looks like a credential given by mistake).
    static func origin(_ value: String, secrets: [String?]) throws -> String {
        let endpoint = endpointPresets[value.lowercased()] ?? value
        guard let url = URLComponents(string: endpoint), let scheme = url.scheme, ["http", "https"].contains(scheme.lowercased()),
              url.host?.isEmpty == false
        else {
            let shown = SecretMask.shown(URLRedactor.redact(endpoint), secrets: secrets)
            throw AltiError(.usage, "endpoint '\(shown)' is not an http(s) origin; use e.g. --endpoint https://api.altizure.com")
        }
        if url.user != nil || url.password != nil {
            // It would be stored in the manifest and printed in messages.
            throw AltiError(.usage, "the endpoint must not carry a user or password; give the key and token with ALTI_KEY/ALTI_TOKEN")
        }
        if url.query != nil || (url.path != "" && url.path != "/") {
            throw AltiError(.usage, "the endpoint is an origin only (e.g. https://api.altizure.com), without a path or query")
        }
        return endpoint.hasSuffix("/") ? String(endpoint.dropLast()) : endpoint
    }
}

/// Which profile of the config file a command uses, and who chose it.
struct ProfileSelection {
    enum Source { case flag, environment, file }
    var name: String
    var profile: ConnectionProfile
    var source: Source

    /// `--profile`, else `ALTI_PROFILE`, else the file's current profile (or `default`); nil when
    /// none is named and the file has no current one. A name the file does not have is 78.
    static func select(flag: String?, environment: [String: String], config: ProfileConfig?, path: String) throws -> ProfileSelection? {
        let named: (String, Source)?
        if let flag, !flag.isEmpty {
            named = (flag, .flag)
        } else if let env = environment["ALTI_PROFILE"], !env.isEmpty {
            named = (env, .environment)
        } else if let current = config?.currentName {
            named = (current, .file)
        } else {
            named = nil
        }
        guard let named else { return nil }
        let (name, source) = named
        if let profile = config?.profiles[name] { return ProfileSelection(name: name, profile: profile, source: source) }
        throw unknownProfile(name, source: source, config: config, path: path)
    }

    static func unknownProfile(_ name: String, source: Source?, config: ProfileConfig?, path: String) -> AltiError {
        let shown = SecretMask.shown(name)
        let from = switch source {
        case .flag: " (--profile)"
        case .environment: " (ALTI_PROFILE)"
        case .file: " (the current profile of the file)"
        case nil: ""
        }
        guard let config, !config.profiles.isEmpty else {
            return AltiError(.config, "no profile '\(shown)'\(from): \(path) has no profiles; create it with alti config set \(shown) --endpoint URL")
        }
        return AltiError(.config, "no profile '\(shown)'\(from) in \(path); known: \(config.names.joined(separator: ", ")) (alti config list)")
    }
}

public struct ResolvedConnection: Sendable {
    public static let defaultEndpoint = "https://api.altizure.com"
    public var endpoint: String
    public var key: String?
    public var token: String?
    /// Where the config file is looked for (named in the "no key" messages).
    public var configPath: String
    /// The profile the values were taken from, if any.
    public var profile: String?

    /// Both secrets, or an error that says where to put them.
    public func requireCredentials() throws -> (key: String, token: String) {
        let name = profile ?? "NAME"
        guard let key else {
            throw AltiError(.auth, "no app key: set ALTI_KEY, save it in a profile (alti config set \(name) --key-stdin; file \(configPath)), or pass --key")
        }
        guard let token else {
            throw AltiError(.auth, "no user token: set ALTI_TOKEN, save it in a profile (alti config set \(name) --token-stdin; file \(configPath)), or pass --token")
        }
        return (key, token)
    }
}
