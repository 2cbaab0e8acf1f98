import AltiCore
import ArgumentParser
import Foundation

/// `alti config import [FILE] [--replace]`: the profiles of the official CLI's
/// `~/.altizure/config.yaml`, each under its id; the official active profile becomes current
/// when alti had none.
struct ConfigImport: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import",
        abstract: "Import the profiles of the official alti-cli's config.yaml (default ~/.altizure/config.yaml).",
        discussion: """
            Each profile becomes an alti profile named by its id (the 'default' one stays 'default'), \
            with its scope's endpoint, key and token. A profile of the same name already in alti's \
            file is kept unless --replace. When alti had no profiles, the file's active profile \
            becomes the current one. A file that is not exactly the YAML alti-cli writes is refused \
            with its line (78), and nothing is imported.
            """)

    @Argument(help: ArgumentHelp("The official CLI's config file (default: ~/.altizure/config.yaml).", valueName: "file"))
    var file: String?

    @Flag(name: .long, help: "Overwrite alti profiles that have the same name.")
    var replace = false

    func run() async throws {
        let access = ConfigFileAccess()
        let home = access.context.environment["HOME"] ?? NSHomeDirectory()
        let path = file ?? home + OfficialConfig.defaultPathInHome
        guard let data = FileManager.default.contents(atPath: path) else {
            let reason = FileManager.default.fileExists(atPath: path) ? "cannot be read" : "does not exist"
            throw AltiError(.noInput, "\(path) \(reason); give the official CLI's config file: alti config import FILE")
        }
        guard let yaml = String(data: data, encoding: .utf8) else {
            throw AltiError(.config, "\(path) is not UTF-8 text; alti reads the config.yaml that alti-cli writes")
        }
        let official = try OfficialConfig.parse(yaml, path: path)
        var config = try access.load()
        let secrets = official.profiles.flatMap { [$0.key, $0.token] }
        let outcomes = try config.importing(official, replace: replace) { (profile: OfficialConfig.Profile) throws(AltiError) -> String in
            do {
                return try ConnectionOptions.origin(profile.endpoint, secrets: secrets)
            } catch {
                let reason = (error as? AltiError)?.message ?? "\(error)"
                throw AltiError(.config, "\(path) line \(profile.line): profile \(profile.id): \(reason)")
            }
        }
        guard !outcomes.isEmpty else {
            access.context.standardOutput("no profiles in \(path); nothing imported\n")
            return
        }
        try access.store.save(config)
        var text = ""
        for outcome in outcomes {
            switch outcome {
            case .added(let name): text += "imported \(name): \(ConfigFileAccess.summary(config.profiles[name]!))\n"
            case .replaced(let name): text += "replaced \(name): \(ConfigFileAccess.summary(config.profiles[name]!))\n"
            case .kept(let name): text += "kept \(name): alti already has a profile of that name (--replace overwrites it)\n"
            }
        }
        text += "current profile: \(config.currentName ?? "none (choose one with alti config use NAME)"); file \(access.store.path)\n"
        access.context.standardOutput(text)
    }
}
