import AltiCore
import ArgumentParser
import Foundation

/// `alti config remove NAME`: deletes a profile (its key and token with it). Removing the current
/// profile leaves none current; commands then use `default` if there is one.
struct ConfigRemove: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "remove",
        abstract: "Remove a profile and its key and token from the config file.")

    @Argument(help: ArgumentHelp("Profile name (see alti config list).", valueName: "name"))
    var name: String

    func run() async throws {
        let access = ConfigFileAccess()
        var config = try access.load()
        _ = try access.profile(name, in: config)
        let wasCurrent = config.remove(name)
        try access.store.save(config)
        var text = "removed profile \(name) from \(access.store.path)\n"
        if wasCurrent {
            text += config.currentName.map { "it was current; commands now use \($0)\n" }
                ?? "it was current; no profile is current now: choose one with alti config use NAME\n"
        }
        access.context.standardOutput(text)
    }
}
