import Foundation
import PackagePlugin

/// Stamps the git commit the package is built from into the target it is applied to
/// (`AltiBuildInfo`), for `alti --version`: before every build a shell runs
/// `git rev-parse --short HEAD` in the package folder and writes `GeneratedCommit.swift`
/// (`let stampedCommit = "4dfd698"`, `-dirty` appended when tracked files differ from HEAD, and
/// `unknown` with no git or outside a clone). The file is rewritten only when its text changes,
/// so an unchanged commit rebuilds nothing.
@main
struct StampCommit: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: any Target) async throws -> [Command] {
        let outputs = context.pluginWorkDirectoryURL.appending(path: "Generated")
        let file = outputs.appending(path: "GeneratedCommit.swift")
        return [
            .prebuildCommand(
                displayName: "Stamping the git commit into \(target.name)",
                executable: URL(filePath: "/bin/sh"),
                arguments: ["-c", Self.script, "stamp-commit",
                            context.package.directoryURL.path(percentEncoded: false),
                            file.path(percentEncoded: false)],
                outputFilesDirectory: outputs),
        ]
    }

    // $1: the package folder, $2: the file to write. GIT_OPTIONAL_LOCKS=0: `git status` never
    // takes the index lock, so a build cannot make a concurrent `git commit` fail.
    static let script = #"""
        commit=$(cd "$1" 2>/dev/null && git rev-parse --short HEAD 2>/dev/null) || commit=""
        if [ -z "$commit" ]; then
          commit=unknown
        elif [ -n "$(cd "$1" && GIT_OPTIONAL_LOCKS=0 git status --porcelain --untracked-files=no 2>/dev/null)" ]; then
          commit="$commit-dirty"
        fi
        text="// Generated before each build by Plugins/StampCommit; not in git.
        let stampedCommit = \"$commit\""
        mkdir -p "$(dirname "$2")"
        [ -f "$2" ] && [ "$(cat "$2")" = "$text" ] || printf '%s\n' "$text" > "$2"
        """#
}
