import AltiCore
import ArgumentParser
import Foundation

/// `alti config show [NAME]`: one profile (default: the one commands use) with its key and token
/// masked (`abcd… (40 characters)`), and what in the environment overrides it.
struct ConfigShow: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "show",
        abstract: "Show a profile (default: the one in use) with its key and token masked.")

    @Argument(help: ArgumentHelp("Profile name (default: ALTI_PROFILE, else the current profile).", valueName: "name"))
    var name: String?

    func run() async throws {
        let access = ConfigFileAccess()
        let config = try access.load()
        let path = access.store.path
        let chosen: String
        if let name {
            chosen = name
        } else if let selection = try ProfileSelection.select(flag: nil, environment: access.context.environment, config: config, path: path) {
            chosen = selection.name
        } else if config.profiles.isEmpty {
            throw AltiError(.config, "no profiles in \(path); create one with alti config set NAME --endpoint URL --token-stdin")
        } else {
            throw AltiError(.config, "no profile is current in \(path); name one (alti config show NAME) or choose one with alti config use NAME; known: \(config.names.joined(separator: ", "))")
        }
        let profile = try access.profile(chosen, in: config)
        var lines = [
            "profile   \(chosen)\(chosen == config.currentName ? " (current)" : "")",
            "endpoint  \(profile.endpoint ?? ResolvedConnection.defaultEndpoint + " (default)")",
            "key       \(SecretPreview.describe(profile.key))",
            "token     \(SecretPreview.describe(profile.token))",
            "file      \(path)",
        ]
        lines += access.overrides(for: chosen).map { "note: " + $0 }
        access.context.standardOutput(lines.joined(separator: "\n") + "\n")
    }
}
