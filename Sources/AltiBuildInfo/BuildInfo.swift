/// What the build knows about itself, for `alti --version`.
public enum BuildInfo {
    /// The short git commit the binary was built from, stamped by the `StampCommit` build-tool
    /// plugin before every build (`GeneratedCommit.swift`): `4dfd698`, `4dfd698-dirty` when
    /// tracked files differed from that commit, `unknown` when built outside a git clone or
    /// without git.
    public static let commit: String = stampedCommit
}
