import AltiCore
import ArgumentParser
import Foundation

/// `alti config list [--json]`: every profile's name and endpoint, whether its key and token are
/// set, and which is current. Never a secret.
struct ConfigList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list",
        abstract: "List the profiles: name, endpoint, whether a key and token are set, the current one (*).")

    @Flag(name: .long, help: "One JSON object: {file, current, profiles: [{name, endpoint, key, token}]} (key and token: whether set).")
    var json = false

    func run() async throws {
        let access = ConfigFileAccess()
        let config = try access.load()
        let context = access.context
        if json {
            let profiles: [[String: Any]] = config.names.map { name in
                let profile = config.profiles[name]!
                return ["name": name, "endpoint": profile.endpoint ?? ResolvedConnection.defaultEndpoint,
                        "key": profile.key != nil, "token": profile.token != nil]
            }
            let object: [String: Any] = ["file": access.store.path, "current": config.currentName.map { $0 as Any } ?? NSNull(), "profiles": profiles]
            let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
            context.standardOutput(String(decoding: data, as: UTF8.self) + "\n")
            return
        }
        guard !config.profiles.isEmpty else {
            context.standardOutput("no profiles in \(access.store.path); create one with alti config set NAME --endpoint URL --token-stdin\n")
            return
        }
        let rows = config.names.map { name -> [String] in
            let profile = config.profiles[name]!
            return [name == config.currentName ? "*" : " ", name, profile.endpoint ?? ResolvedConnection.defaultEndpoint,
                    profile.key == nil ? "-" : "set", profile.token == nil ? "-" : "set"]
        }
        let header = [" ", "NAME", "ENDPOINT", "KEY", "TOKEN"]
        let widths = (0..<header.count).map { column in ([header] + rows).map { $0[column].count }.max() ?? 0 }
        var text = ""
        for row in [header] + rows {
            let cells = row.enumerated().map { column, cell in
                column == row.count - 1 ? cell : cell.padding(toLength: widths[column], withPad: " ", startingAt: 0)
            }
            text += cells.joined(separator: " ") + "\n"
        }
        text += "(* current; file \(access.store.path))\n"
        if let selected = context.environment["ALTI_PROFILE"], !selected.isEmpty {
            text += "ALTI_PROFILE=\(SecretMask.shown(selected)) is set: commands in this shell use that profile\n"
        }
        context.standardOutput(text)
    }
}
