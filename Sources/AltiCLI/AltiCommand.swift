import AltiBuildInfo
import AltiCore
import ArgumentParser
import Foundation

/// The root command. `main()` runs `execute` with the live context and exits with its code;
/// tests call `execute` in-process with a context of their own.
public struct AltiCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "alti",
        abstract: "Get survey images from a field laptop into an Altizure project, resumably.",
        version: AltiCommand.versionLine,
        subcommands: [Scan.self, Sync.self, Status.self, Report.self, Config.self])

    public init() {}

    /// What `alti --version` prints: `alti 0.1.0 (4dfd698)`, the commit stamped at build time
    /// (`BuildInfo.commit`: `-dirty` for a tree with uncommitted changes, `unknown` outside git).
    public static let versionLine = "alti \(AltiVersion.version) (\(BuildInfo.commit))"

    public static func main() async {
        MemoryRelease.limitArenas()
        let code = await execute(Array(CommandLine.arguments.dropFirst()))
        // Everything durable is already fsynced and all output went out through unbuffered
        // writes; what `exit` would add is libc's atexit handlers (OpenSSL's and GnuTLS's global
        // cleanups), which can race with a libcurl transfer thread that is still freeing its
        // handle after Ctrl-C and abort the process with a double free. `_exit` skips them.
        fflush(nil)  // every C stdio stream (ArgumentParser's `print`, if any)
        _exit(code)
    }

    /// Parses and runs one command line in `context`; returns the exit code, having written the
    /// result to the context's stdout and any error as one line on its stderr.
    static func execute(_ arguments: [String], context: CommandContext = .current) async -> Int32 {
        await CommandContext.$current.withValue(context) {
            do {
                // A bare --keep-trying (no =DURATION): ArgumentParser has no optional-value option.
                let arguments = arguments.map { $0 == "--keep-trying" ? "--keep-trying=always" : $0 }
                if let mistake = ArgumentCheck.check(arguments) { throw mistake }
                var command = try parseAsRoot(arguments)
                if var asyncCommand = command as? any AsyncParsableCommand {
                    try await asyncCommand.run()
                } else {
                    try command.run()
                }
                return 0
            } catch {
                let outcome = Self.outcome(of: error)
                if let message = outcome.message {
                    (outcome.code == 0 ? context.standardOutput : context.standardError)(message + "\n")
                }
                return outcome.code
            }
        }
    }

    /// The one mapping from a failure to what the user sees and the exit code (README "Exit
    /// codes"): an `AltiError` is one `alti: ...` line and its kind's code; argument errors are
    /// ArgumentParser's message (and help) with 64; `ExitCode` is a code with nothing printed.
    static func outcome(of error: any Error) -> (code: Int32, message: String?) {
        if let error = error as? AltiError { return (error.exitCode, "alti: \(error.message)") }
        if let exit = error as? ExitCode { return (exit.rawValue, nil) }
        let code = exitCode(for: error).rawValue
        let message = fullMessage(for: error)
        return (code, message.isEmpty ? nil : message)
    }
}
