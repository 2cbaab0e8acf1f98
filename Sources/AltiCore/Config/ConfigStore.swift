import Foundation

/// Where the config file lives and how it is read and written. It holds the app key and user
/// token, so it is created 0600 in a folder created 0700, written atomically (temp file, fsync,
/// rename, fsync of the folder, as `ManifestStore.save`), and a copy that group or others can
/// read is warned about on every load (once per command) rather than refused: refusing would
/// break a working set-up, and the warning says the one command that fixes it.
public struct ConfigStore: Sendable {
    /// `$XDG_CONFIG_HOME/alti/config.json` when that is an absolute path, else
    /// `~/.config/alti/config.json`.
    public let path: String

    public init(path: String) {
        self.path = path
    }

    public init(environment: [String: String]) {
        self.path = Self.defaultPath(environment: environment)
    }

    public static func defaultPath(environment: [String: String]) -> String {
        if let xdg = environment["XDG_CONFIG_HOME"], xdg.hasPrefix("/") { return xdg + "/alti/config.json" }
        let home = environment["HOME"] ?? NSHomeDirectory()
        return home + "/.config/alti/config.json"
    }

    /// Permission bits that let group or others read the file.
    static let readableByOthers: mode_t = 0o044

    /// The config, or nil when there is no file. `warn` gets one line if group or others can
    /// read it. An unreadable or invalid file is 78, naming it.
    public func load(warn: (String) -> Void) throws(AltiError) -> ProfileConfig? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 {
            let code = errno
            if code == ENOENT || code == ENOTDIR { return nil }
            throw AltiError(.config, "cannot read the config file \(path): \(String(cString: strerror(code))); check its permissions (chmod 600 \(path))")
        }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else {
            throw AltiError(.config, "the config file \(path) is not a regular file; remove it or point XDG_CONFIG_HOME elsewhere")
        }
        if info.st_mode & Self.readableByOthers != 0 {
            let mode = String(info.st_mode & 0o777, radix: 8)
            warn("alti: warning: the config file \(path) holds secrets and can be read by other users (mode \(mode)); run chmod 600 \(path)\n")
        }
        var data = Data()
        var buffer = [UInt8](repeating: 0, count: 16_384)
        while true {
            let n = read(fd, &buffer, buffer.count)
            if n < 0 {
                if errno == EINTR { continue }
                throw AltiError(.config, "cannot read the config file \(path): \(String(cString: strerror(errno)))")
            }
            if n == 0 { break }
            data.append(contentsOf: buffer[0..<n])
        }
        return try ProfileConfig.decode(data, path: path)
    }

    /// Writes `config` atomically with mode 0600 (never wider, whatever the umask or the old
    /// file's mode), creating missing folders 0700. A failure leaves the old file as it was (73).
    public func save(_ config: ProfileConfig) throws(AltiError) {
        // A config file that is a symlink (a dotfiles repository) is replaced where it points.
        let target = (try? FileManager.default.destinationOfSymbolicLink(atPath: path)).map { link in
            link.hasPrefix("/") ? link : ((path as NSString).deletingLastPathComponent as NSString).appendingPathComponent(link)
        } ?? path
        let folder = (target as NSString).deletingLastPathComponent
        try Self.makePrivateFolders(folder)
        do {
            try DurableFile.replace(target, with: config.encoded(), mode: 0o600)
        } catch where error.renamed {
            // Best effort: the new file is whole either way.
        } catch {
            throw AltiError.writeFailed(target, doing: "write the config file", code: error.code,
                                        kept: "the previous config file is intact")
        }
    }

    /// Creates every missing folder of `folder` with mode 0700 (the XDG base directory rule for
    /// the config home); folders that exist are left as they are.
    static func makePrivateFolders(_ folder: String) throws(AltiError) {
        var missing: [String] = []
        var cursor = folder
        while cursor != "/", !cursor.isEmpty, !FileManager.default.fileExists(atPath: cursor) {
            missing.append(cursor)
            cursor = (cursor as NSString).deletingLastPathComponent
        }
        for path in missing.reversed() {
            if mkdir(path, 0o700) != 0, errno != EEXIST {
                throw AltiError.writeFailed(path, doing: "create the config folder", code: errno, kept: "nothing was changed")
            }
            // As with the file: exactly 0700 whatever the umask.
            chmod(path, 0o700)
        }
    }
}
