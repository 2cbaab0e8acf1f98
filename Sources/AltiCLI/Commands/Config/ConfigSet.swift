import AltiCore
import ArgumentParser
import Foundation

/// `alti config set NAME [--endpoint URL] [--key K | --key-stdin] [--token T | --token-stdin]
/// [--from-env]`: creates or updates a profile; only the values given change. The secrets can
/// come from standard input or the environment so they never appear in `ps` or shell history.
struct ConfigSet: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "set",
        abstract: "Create or update a profile (only the values given change).",
        discussion: """
            Keep the key and token out of `ps` and the shell history: read -rs T; printf '%s\\n' "$T" | \
            alti config set NAME --token-stdin. With --key-stdin and --token-stdin together, the first \
            line is the key and the second the token. --from-env takes ALTI_ENDPOINT, ALTI_KEY and \
            ALTI_TOKEN (those set) from the environment. An empty value (--token '') removes it from \
            the profile. The first profile of the file becomes the current one.
            """)

    @Argument(help: ArgumentHelp("Profile name: letters, digits, '.', '_', '-' (e.g. cn, field-team).", valueName: "name"))
    var name: String

    @Option(name: .long, help: ArgumentHelp("API origin: com (https://api.altizure.com), cn (https://api.altizure.cn), or a private server's http(s) origin.", valueName: "url"))
    var endpoint: String?

    @Option(name: .long, help: ArgumentHelp("App key (visible in `ps`: prefer --key-stdin or --from-env).", valueName: "key"))
    var key: String?

    @Option(name: .long, help: ArgumentHelp("User token (visible in `ps`: prefer --token-stdin or --from-env).", valueName: "token"))
    var token: String?

    @Flag(name: .long, help: "Read the app key from standard input (its first line).")
    var keyStdin = false

    @Flag(name: .long, help: "Read the user token from standard input (its first line; the second with --key-stdin).")
    var tokenStdin = false

    @Flag(name: .long, help: "Take ALTI_ENDPOINT, ALTI_KEY and ALTI_TOKEN from the environment (those set).")
    var fromEnv = false

    func validate() throws {
        if key != nil, keyStdin { throw ValidationError("--key and --key-stdin both give the key: use one") }
        if token != nil, tokenStdin { throw ValidationError("--token and --token-stdin both give the token: use one") }
    }

    func run() async throws {
        try ProfileConfig.checkName(name)
        let access = ConfigFileAccess()
        let environment = access.context.environment
        var (endpoint, key, token) = (self.endpoint, self.key, self.token)
        if keyStdin || tokenStdin {
            var lines = String(decoding: access.context.readStandardInput(), as: UTF8.self)
                .split(separator: "\n", omittingEmptySubsequences: false)
                .map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }
            func next(_ what: String) throws -> String {
                guard !lines.isEmpty, !lines[0].isEmpty else {
                    throw AltiError(.usage, "no \(what) on standard input: give it on \(keyStdin && tokenStdin && what == "user token" ? "the second line" : "the first line")")
                }
                return lines.removeFirst()
            }
            if keyStdin { key = try next("app key") }
            if tokenStdin { token = try next("user token") }
        }
        if fromEnv {
            func env(_ name: String) -> String? { environment[name].flatMap { $0.isEmpty ? nil : $0 } }
            endpoint = endpoint ?? env("ALTI_ENDPOINT")
            key = key ?? env("ALTI_KEY")
            token = token ?? env("ALTI_TOKEN")
        }
        var config = try access.load()
        let exists = config.profiles[name] != nil
        if exists, endpoint == nil, key == nil, token == nil {
            throw AltiError(.usage, "nothing to set for profile \(name): give --endpoint, --key-stdin, --token-stdin or --from-env")
        }
        if let given = endpoint, !given.isEmpty {
            endpoint = try ConnectionOptions.origin(given, secrets: [key, token] + config.profiles.values.flatMap(\.secrets))
        } else if !exists {
            endpoint = ResolvedConnection.defaultEndpoint
        }
        config.set(name, endpoint: endpoint, key: key, token: token)
        try access.store.save(config)
        if self.key != nil || self.token != nil {
            access.context.standardError("alti: note: a key or token given as a flag is visible to other users in ps and stays in the shell history; --key-stdin/--token-stdin or --from-env avoid that\n")
        }
        let current = config.currentName == name ? " (current)" : ""
        access.context.standardOutput("\(exists ? "updated" : "created") profile \(name)\(current): \(ConfigFileAccess.summary(config.profiles[name]!)); file \(access.store.path)\n")
    }
}
