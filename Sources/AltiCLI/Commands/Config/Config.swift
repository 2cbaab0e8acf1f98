import AltiCore
import ArgumentParser
import Foundation

/// `alti config list|show|set|use|remove|import`: the profiles of the config file. Each
/// subcommand is one file; they share `ConfigFileAccess` (load with the permission warning,
/// the unknown-profile message). Nothing here ever prints a key or token.
struct Config: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Manage connection profiles (endpoint, app key, user token) in the config file.",
        discussion: """
            Profiles live in $XDG_CONFIG_HOME/alti/config.json (else ~/.config/alti/config.json), \
            written 0600. A command that connects uses, per value: --endpoint/--key/--token, then the \
            profile named by --profile, then ALTI_ENDPOINT/ALTI_KEY/ALTI_TOKEN, then the profile named \
            by ALTI_PROFILE, else the current profile (alti config use), else the one named default. \
            Keys and tokens are never printed: show masks them. Exit codes: 0 done; 64 bad flags, \
            name or endpoint; 66 (import) no such file; 73 the config file cannot be written; \
            78 the config file or the imported file is not valid, or no such profile.
            """,
        subcommands: [ConfigList.self, ConfigShow.self, ConfigSet.self, ConfigUse.self, ConfigRemove.self, ConfigImport.self],
        defaultSubcommand: ConfigList.self)
}

/// What every `config` subcommand needs: the store of this context's environment, and the file
/// loaded through it with its warning on stderr.
struct ConfigFileAccess {
    let context: CommandContext
    let store: ConfigStore

    init(_ context: CommandContext = .current) {
        self.context = context
        self.store = ConfigStore(environment: context.environment)
    }

    /// The file's profiles (none when there is no file yet).
    func load() throws -> ProfileConfig {
        try store.load(warn: context.standardError) ?? ProfileConfig()
    }

    /// The profile `name`, or the unknown-profile line (78) listing the known ones.
    func profile(_ name: String, in config: ProfileConfig) throws -> ConnectionProfile {
        guard let profile = config.profiles[name] else {
            throw ProfileSelection.unknownProfile(name, source: nil, config: config, path: store.path)
        }
        return profile
    }

    /// A note when the environment overrides what the file says, for the messages of `use` and `show`.
    func overrides(for name: String) -> [String] {
        var notes: [String] = []
        if let selected = context.environment["ALTI_PROFILE"], !selected.isEmpty, selected != name {
            notes.append("ALTI_PROFILE=\(SecretMask.shown(selected)) is set: commands in this shell use that profile unless run with --profile")
        }
        let set = ["ALTI_ENDPOINT", "ALTI_KEY", "ALTI_TOKEN"].filter { !(context.environment[$0] ?? "").isEmpty }
        if !set.isEmpty {
            notes.append("\(set.joined(separator: ", ")) \(set.count == 1 ? "is" : "are") set: commands use \(set.count == 1 ? "it" : "them") instead of this profile's values unless run with --profile \(name)")
        }
        return notes
    }

    /// `https://api.altizure.com, key set, token not set`: a profile in one line, no secret.
    static func summary(_ profile: ConnectionProfile) -> String {
        let endpoint = profile.endpoint ?? ResolvedConnection.defaultEndpoint
        return "\(endpoint), key \(profile.key == nil ? "not set" : "set"), token \(profile.token == nil ? "not set" : "set")"
    }
}
