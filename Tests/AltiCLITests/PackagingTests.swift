import AltiCore
import AltiTestSupport
import Foundation
import Testing

/// What the Debian package ships besides the binary, checked on the built `alti`: the version line
/// with the commit stamped at build time, the three completion scripts and the man page, all
/// generated from the argument parser (scripts/package installs them; scripts/check-package checks
/// the installed package in CI).
@Suite("packaging: --version, completions, man page")
struct PackagingTests {
    /// The short commit git gives for the package folder, or nil outside a git clone.
    func gitHead() throws -> String? {
        let result = try Run.process("git", ["-C", Run.packageRoot.path, "rev-parse", "--short", "HEAD"])
        let commit = result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        return result.exitCode == 0 && !commit.isEmpty ? commit : nil
    }

    @Test func versionNamesTheCommitItWasBuiltFrom() throws {
        let result = try Run.alti(["--version"])
        #expect(result.exitCode == 0, "\(result.stderr)")
        #expect(result.stderr == "")
        // The StampCommit plugin runs `git rev-parse --short HEAD` before every build; outside a
        // clone (a source tarball) the documented fallback is `unknown`.
        let commit = try gitHead() ?? "unknown"
        let clean = "alti \(AltiVersion.version) (\(commit))\n"
        let dirty = "alti \(AltiVersion.version) (\(commit)-dirty)\n"
        #expect(result.stdout == clean || result.stdout == dirty,
                "got \(result.stdout.debugDescription); a build older than HEAD? run swift build")
        #expect(commit == "unknown" || commit.allSatisfy(\.isHexDigit))
    }

    @Test(arguments: ["bash", "zsh", "fish"])
    func completionScriptsKnowEveryCommandAndSyncsOptions(shell: String) throws {
        let result = try Run.alti(["--generate-completion-script", shell])
        #expect(result.exitCode == 0, "\(result.stderr)")
        let script = result.stdout
        for word in ["scan", "sync", "status", "project", "bwlimit", "keep-trying", "manifest"] {
            #expect(script.contains(word), "the \(shell) completion lacks \(word)")
        }
        switch shell {
        case "zsh": #expect(script.hasPrefix("#compdef alti"))
        case "fish": #expect(script.contains("complete -c 'alti'") || script.contains("complete -c alti"))
        default:
            #expect(script.contains("complete -o filenames -F _alti alti") || script.contains("-F _alti alti"))
            let check = try Run.process("bash", ["-n", "-c", script])
            #expect(check.exitCode == 0, "bash cannot parse its completion: \(check.stderr)")
        }
    }

    /// scripts/manpage on the built binary: every option `alti sync` declares is in the page (it
    /// comes from the parser's own description), and so are README's exit codes and the
    /// environment variables.
    @Test func manPageIsGeneratedFromTheParserAndTheReadme() throws {
        let alti = try Run.altiBinary().path
        let root = Run.packageRoot
        let page = try Run.process(TestPython.interpreter, [
            root.appendingPathComponent("scripts/manpage").path, alti,
            root.appendingPathComponent("README.md").path,
        ])
        #expect(page.exitCode == 0, "\(page.stderr)")
        let roff = page.stdout
        #expect(roff.contains(".TH ALTI 1 "))
        let version = try Run.alti(["--version"]).stdout.trimmingCharacters(in: .newlines)
        #expect(roff.contains("\"\(version.replacingOccurrences(of: "-", with: "\\-"))\" \"User Commands\""))
        for command in ["scan", "sync", "status"] {
            #expect(roff.contains(".SS \"alti \(command)\""), "no section for alti \(command)")
        }

        let dump = try Run.alti(["--experimental-dump-help"])
        let json = try #require(try JSONSerialization.jsonObject(with: Data(dump.stdout.utf8)) as? [String: Any])
        let rootCommand = try #require(json["command"] as? [String: Any])
        let subcommands = try #require(rootCommand["subcommands"] as? [[String: Any]])
        let sync = try #require(subcommands.first { $0["commandName"] as? String == "sync" })
        let arguments = try #require(sync["arguments"] as? [[String: Any]])
        var longNames: [String] = []
        for argument in arguments where argument["shouldDisplay"] as? Bool ?? true {
            let names = argument["names"] as? [[String: Any]] ?? []
            for name in names where name["kind"] as? String == "long" {
                if let text = name["name"] as? String, text != "help" { longNames.append(text) }
            }
        }
        #expect(longNames.count > 15)
        for name in longNames {
            #expect(roff.contains("\\fB\\-\\-\(name.replacingOccurrences(of: "-", with: "\\-"))\\fR"),
                    "the man page lacks sync's --\(name)")
        }

        let exitStatus = try #require(roff.range(of: ".SH EXIT STATUS\n"))
        let environment = try #require(roff.range(of: ".SH ENVIRONMENT\n"))
        let codes = roff[exitStatus.upperBound..<environment.lowerBound]
        for code in [0, 1, 64, 65, 66, 67, 69, 70, 73, 74, 75, 76, 77, 78, 79, 130] {
            #expect(codes.contains(".TP\n\\fB\(code)\\fR\n"), "exit code \(code) is not in the man page")
        }
        #expect(codes.contains("the server refused the key or token"))
        for variable in ["ALTI_ENDPOINT", "ALTI_KEY", "ALTI_TOKEN", "HTTPS_PROXY", "NO_PROXY"] {
            #expect(roff[environment.upperBound...].contains(variable))
        }
    }
}
