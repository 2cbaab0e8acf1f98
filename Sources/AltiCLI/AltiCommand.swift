import ArgumentParser
import AltiCore
import Foundation

/// The root command. Its custom `main()` renders an `AltiError` as one `alti: ...` line on
/// stderr and exits with the error's documented code.
public struct AltiCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "alti",
        abstract: "Get survey images from a field laptop into an Altizure project, resumably.",
        subcommands: [Scan.self, Sync.self])

    public init() {}

    public static func main() async {
        do {
            var command = try parseAsRoot()
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch let error as AltiError {
            FileHandle.standardError.write(Data("alti: \(error.message)\n".utf8))
            Foundation.exit(error.exitCode)
        } catch {
            exit(withError: error)
        }
    }
}
