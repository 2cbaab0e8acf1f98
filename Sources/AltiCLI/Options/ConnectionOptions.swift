import AltiCore
import AltiNet
import ArgumentParser
import Foundation

/// Where the API is and who we are. Flags beat the environment (`ALTI_ENDPOINT`, `ALTI_KEY`,
/// `ALTI_TOKEN`, the variables the official CLI reads) which beats the config file
/// (`$XDG_CONFIG_HOME/alti/config.json`, else `~/.config/alti/config.json`).
public struct ConnectionOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("API origin, e.g. https://api.altizure.com (env ALTI_ENDPOINT).", valueName: "url"))
    var endpoint: String?

    @Option(name: .long, help: ArgumentHelp("App key (env ALTI_KEY). Prefer the environment or the config file: flags are visible in `ps`.", valueName: "key"))
    var key: String?

    @Option(name: .long, help: ArgumentHelp("User token (env ALTI_TOKEN). Prefer the environment or the config file.", valueName: "token"))
    var token: String?

    public init() {}

    public func resolve(environment: [String: String] = ProcessInfo.processInfo.environment) throws -> ResolvedConnection {
        let file = try ConfigFile.load(environment: environment)
        func pick(_ flag: String?, _ env: String, _ fromFile: String?) -> String? {
            if let flag, !flag.isEmpty { return flag }
            if let value = environment[env], !value.isEmpty { return value }
            if let fromFile, !fromFile.isEmpty { return fromFile }
            return nil
        }
        let endpoint = pick(self.endpoint, "ALTI_ENDPOINT", file?.endpoint) ?? ResolvedConnection.defaultEndpoint
        let key = pick(key, "ALTI_KEY", file?.key)
        let token = pick(token, "ALTI_TOKEN", file?.token)
        guard let url = URLComponents(string: endpoint), let scheme = url.scheme, ["http", "https"].contains(scheme.lowercased()),
              url.host?.isEmpty == false
        else {
            // A key or token given as the endpoint by mistake is not echoed.
            let shown = SecretMask.shown(URLRedactor.redact(endpoint), secrets: [key, token])
            throw AltiError(.usage, "endpoint '\(shown)' is not an http(s) origin; use e.g. --endpoint https://api.altizure.com")
        }
        if url.user != nil || url.password != nil {
            // It would be stored in the manifest and printed in messages.
            throw AltiError(.usage, "the endpoint must not carry a user or password; give the key and token with ALTI_KEY/ALTI_TOKEN")
        }
        if url.query != nil || (url.path != "" && url.path != "/") {
            throw AltiError(.usage, "the endpoint is an origin only (e.g. https://api.altizure.com), without a path or query")
        }
        return ResolvedConnection(
            endpoint: endpoint.hasSuffix("/") ? String(endpoint.dropLast()) : endpoint,
            key: key,
            token: token,
            configPath: ConfigFile.defaultPath(environment: environment))
    }
}

public struct ResolvedConnection: Sendable {
    public static let defaultEndpoint = "https://api.altizure.com"
    public var endpoint: String
    public var key: String?
    public var token: String?
    /// Where the config file is looked for (named in the "no key" messages).
    public var configPath: String

    /// Both secrets, or an error that says where to put them.
    public func requireCredentials() throws -> (key: String, token: String) {
        guard let key else {
            throw AltiError(.auth, "no app key: set ALTI_KEY, add \"key\" to \(configPath), or pass --key")
        }
        guard let token else {
            throw AltiError(.auth, "no user token: set ALTI_TOKEN, add \"token\" to \(configPath), or pass --token")
        }
        return (key, token)
    }
}

/// `config.json`: `{"endpoint": "...", "key": "...", "token": "..."}`; every field optional.
public struct ConfigFile: Codable, Sendable {
    public var endpoint: String?
    public var key: String?
    public var token: String?

    public static func defaultPath(environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        if let xdg = environment["XDG_CONFIG_HOME"], xdg.hasPrefix("/") { return xdg + "/alti/config.json" }
        let home = environment["HOME"] ?? NSHomeDirectory()
        return home + "/.config/alti/config.json"
    }

    static func load(environment: [String: String]) throws -> ConfigFile? {
        let path = defaultPath(environment: environment)
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        do {
            return try JSONDecoder().decode(ConfigFile.self, from: data)
        } catch {
            throw AltiError(.config, "the config file \(path) is not valid JSON ({\"endpoint\": ..., \"key\": ..., \"token\": ...}); fix or remove it")
        }
    }
}

