import AltiCore
import ArgumentParser
import Foundation

/// `alti config use NAME`: makes NAME the current profile (what commands use when neither
/// `--profile` nor `ALTI_PROFILE` names one).
struct ConfigUse: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "use",
        abstract: "Make a profile the current one.")

    @Argument(help: ArgumentHelp("Profile name (see alti config list).", valueName: "name"))
    var name: String

    func run() async throws {
        let access = ConfigFileAccess()
        var config = try access.load()
        let profile = try access.profile(name, in: config)
        config.current = name
        try access.store.save(config)
        var text = "current profile: \(name) (\(ConfigFileAccess.summary(profile))) in \(access.store.path)\n"
        text += access.overrides(for: name).map { "note: " + $0 + "\n" }.joined()
        access.context.standardOutput(text)
    }
}
