import AltiCrypto
import Foundation

/// Where a source's manifest lives.
public struct ManifestLocation: Sendable, Equatable {
    /// The manifest file.
    public var file: URL
    /// True when the scanned folder was not writable and the manifest lives under the state dir.
    public var isFallback: Bool

    /// A read-only manifest to start from when `file` does not exist yet: the card's own
    /// `.alti/manifest.json` when the card is now mounted read-only.
    public var seed: URL?

    public init(file: URL, isFallback: Bool, seed: URL? = nil) {
        self.file = file
        self.isFallback = isFallback
        self.seed = seed
    }

    /// The sibling lock file held (flock) while a command works on the manifest.
    public var lockFile: URL { URL(fileURLWithPath: file.path + ".lock") }
}

/// An exclusive `flock` on a manifest's lock file; released by `release()` or `deinit`.
public final class ManifestLock: @unchecked Sendable {
    private var fd: Int32
    public let path: String

    init(fd: Int32, path: String) {
        self.fd = fd
        self.path = path
    }

    public func release() {
        guard fd >= 0 else { return }
        flock(fd, LOCK_UN)
        close(fd)
        fd = -1
    }

    deinit { release() }
}

/// Who holds a manifest's lock, written into the lock file once the lock is taken, so the
/// second alti can name the first ("pid 4242, alti sync, since 2026-12-02T11:02:03Z"). Only
/// for the message: the flock is the lock (a crash releases it; a stale holder line of a dead
/// process is overwritten by the next holder and never read while no one holds the lock).
struct LockHolder: Codable, Equatable {
    var pid: Int32
    var command: String
    var since: String

    static func current() -> LockHolder {
        let arguments = CommandLine.arguments
        let program = arguments.first.map { URL(fileURLWithPath: $0).lastPathComponent } ?? "alti"
        // The subcommand only: later arguments may hold a token typed in the wrong place.
        let subcommand = arguments.dropFirst().first.flatMap { $0.hasPrefix("-") ? nil : SecretMask.shown($0) }
        let command = [program, subcommand].compactMap { $0 }.joined(separator: " ")
        return LockHolder(pid: getpid(), command: command,
                          since: RFC3339.string(fromNanoseconds: RFC3339.nowNanoseconds()))
    }

    var description: String { "pid \(pid), \(command), since \(since)" }

    /// Best effort: a lock file that cannot be written still locks.
    func write(to fd: Int32) {
        guard var line = try? JSONEncoder().encode(self) else { return }
        line.append(0x0A)
        _ = ftruncate(fd, 0)
        _ = line.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
    }

    /// The holder recorded in the lock file at `path`, if it reads as one.
    static func read(_ path: String) -> LockHolder? {
        guard let handle = FileHandle(forReadingAtPath: path) else { return nil }
        defer { try? handle.close() }
        guard let data = try? handle.read(upToCount: 4096), !data.isEmpty else { return nil }
        guard let holder = try? JSONDecoder().decode(LockHolder.self, from: data) else { return nil }
        // A line left by a process that is gone (the lock is held by someone who wrote none):
        // naming it would mislead.
        if kill(holder.pid, 0) != 0 && errno == ESRCH { return nil }
        return holder
    }
}

/// Finds, locks, loads and saves manifests. The ONLY code that writes a manifest file is
/// `save(_:to:)`: temp file in the same folder, fsync, rename, fsync the folder.
public struct ManifestStore: Sendable {
    /// The default manifest path inside a scanned folder.
    public static let folderRelativePath = ".alti/manifest.json"
    /// The manifest of an archive PATH is the archive's path with this appended.
    public static let archiveSuffix = ".alti.json"

    public var environment: [String: String]
    /// Whether a folder can take a `.alti/` subfolder; injectable so tests can simulate a
    /// read-only SD card (root can write through permission bits).
    public var canWrite: @Sendable (String) -> Bool

    public init(environment: [String: String] = ProcessInfo.processInfo.environment,
                canWrite: @escaping @Sendable (String) -> Bool = { access($0, W_OK) == 0 }) {
        self.environment = environment
        self.canWrite = canWrite
    }

    // MARK: Locate

    /// The state folder for manifests of read-only sources: `$XDG_STATE_HOME/alti` (if absolute),
    /// else `~/.local/state/alti`.
    public var stateDirectory: URL {
        if let xdg = environment["XDG_STATE_HOME"], xdg.hasPrefix("/") {
            return URL(fileURLWithPath: xdg).appendingPathComponent("alti")
        }
        let home = environment["HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? NSHomeDirectory()
        return URL(fileURLWithPath: home).appendingPathComponent(".local/state/alti")
    }

    /// `<folder name>-<first 8 hex of sha1(absolute root)>.json`, so two `DCIM` folders do not collide.
    public static func fallbackName(root: String) -> String {
        let base = (root as NSString).lastPathComponent
        let safe = base.isEmpty || base == "/" ? "root" : base.replacingOccurrences(of: "/", with: "_")
        return "\(safe)-\(Digest.sha1Hex(Array(root.utf8)).prefix(8)).json"
    }

    /// The manifest of `root` (absolute): `--manifest FILE` if given; else an existing, writable
    /// `.alti/manifest.json`; else an existing fallback file; else, if `.alti/manifest.json` exists
    /// but cannot be written (a card scanned before, now read-only), the fallback seeded from it;
    /// else `.alti/manifest.json` if the folder is writable; else the fallback.
    public func locate(root: String, override: String?) -> ManifestLocation {
        if let override {
            let url = override.hasPrefix("/")
                ? URL(fileURLWithPath: override)
                : URL(fileURLWithPath: FileManager.default.currentDirectoryPath).appendingPathComponent(override)
            return ManifestLocation(file: url.standardizedFileURL, isFallback: false)
        }
        let fm = FileManager.default
        var isDirectory: ObjCBool = true
        let isArchive = fm.fileExists(atPath: root, isDirectory: &isDirectory) && !isDirectory.boolValue
        // A folder keeps its manifest inside (`.alti/manifest.json`); an archive beside itself
        // (`survey.zip.alti.json`): nothing is ever written into an archive.
        let inFolder = isArchive ? URL(fileURLWithPath: root + Self.archiveSuffix)
                                 : URL(fileURLWithPath: root).appendingPathComponent(Self.folderRelativePath)
        let fallback = stateDirectory.appendingPathComponent(Self.fallbackName(root: root))
        let altiDir = inFolder.deletingLastPathComponent().path
        let inFolderExists = fm.fileExists(atPath: inFolder.path)
        if inFolderExists, canWrite(altiDir) { return ManifestLocation(file: inFolder, isFallback: false) }
        if fm.fileExists(atPath: fallback.path) { return ManifestLocation(file: fallback, isFallback: true) }
        if inFolderExists { return ManifestLocation(file: fallback, isFallback: true, seed: inFolder) }
        let writable = fm.fileExists(atPath: altiDir) ? canWrite(altiDir) : canWrite(root)
        return writable ? ManifestLocation(file: inFolder, isFallback: false)
                        : ManifestLocation(file: fallback, isFallback: true)
    }

    // MARK: Lock

    /// Takes the exclusive lock, creating the manifest's folder if needed. A second alti on the
    /// same manifest fails at once with `cannotWrite` (73, as the README's exit-code table says:
    /// the manifest cannot be written now because another alti is working on it).
    public func lock(_ location: ManifestLocation) throws(AltiError) -> ManifestLock {
        try Self.makeDirectory(location.file.deletingLastPathComponent())
        let path = location.lockFile.path
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        if fd < 0 {
            throw AltiError(.cannotWrite, "cannot create lock file \(path): \(OSError.current("open").message)")
        }
        if flock(fd, LOCK_EX | LOCK_NB) != 0 {
            let error = OSError.current("flock")
            close(fd)
            if error.code == EWOULDBLOCK {
                let holder = LockHolder.read(path).map { " (\($0.description))" } ?? ""
                throw AltiError(.cannotWrite,
                                "\(location.file.path) is in use by another alti\(holder); wait for it to finish and run again (lock \(path))")
            }
            throw AltiError(.cannotWrite, "cannot lock \(path): \(error.message)")
        }
        LockHolder.current().write(to: fd)
        return ManifestLock(fd: fd, path: path)
    }

    // MARK: Load

    /// The manifest at `url`, or nil if there is none. A file that does not parse, has the wrong
    /// shape or a newer `schemaVersion` is refused with `dataError` (65) naming the file, the
    /// position and what is wrong; it is never modified.
    public func load(_ url: URL) throws(AltiError) -> Manifest? {
        let data: Data
        do {
            data = try Data(contentsOf: url)
        } catch let error as CocoaError where error.code == .fileReadNoSuchFile {
            return nil
        } catch {
            if !FileManager.default.fileExists(atPath: url.path) { return nil }
            throw AltiError(.ioError, "cannot read manifest \(url.path): \(error.localizedDescription)")
        }
        return try Self.decode(data, file: url.path)
    }

    /// How the refusal of a manifest written by a newer alti reads: it is not corrupt, so neither
    /// "fix it" nor `--rebuild` (which would move the newer alti's facts aside) is the answer.
    static let newerRefusal = "is newer than this alti understands"

    /// True for the refusal of a manifest of a newer `schemaVersion`.
    public static func isNewerRefusal(_ error: AltiError) -> Bool {
        error.kind == .dataError && error.message.contains(newerRefusal)
    }

    /// Decodes a manifest; see `load(_:)` for the errors.
    public static func decode(_ data: Data, file: String) throws(AltiError) -> Manifest {
        // The fast reader takes what alti writes; anything it does not take (corrupt, newer, or
        // merely unusual JSON) is judged by JSONDecoder, whose verdicts and messages stand.
        if let manifest = ManifestJSONReader.decode(data) { return manifest }
        return try decodeWithFoundation(data, file: file)
    }

    /// `decode` through `JSONDecoder` and the `Codable` conformances only: the reference the fast
    /// reader is held to, and the judge of what it does not take.
    static func decodeWithFoundation(_ data: Data, file: String) throws(AltiError) -> Manifest {
        do {
            return try JSONDecoder().decode(Manifest.self, from: data)
        } catch let error as Manifest.SchemaVersionError {
            switch error {
            case .missing:
                throw AltiError(.dataError, "\(file): not an alti manifest (no schemaVersion)")
            case .newer(let version):
                throw AltiError(.dataError, "\(file): schemaVersion \(version) \(newerRefusal) (\(Manifest.currentSchemaVersion)); upgrade alti")
            }
        } catch {
            throw AltiError(.dataError, "\(file): \(describe(error, data: data))")
        }
    }

    /// One line: where (line/column or JSON path) and what.
    static func describe(_ error: any Error, data: Data) -> String {
        func path(_ codingPath: [any CodingKey]) -> String {
            var out = ""
            for key in codingPath {
                if let index = key.intValue { out += "[\(index)]" } else { out += (out.isEmpty ? "" : ".") + key.stringValue }
            }
            return out.isEmpty ? "top level" : out
        }
        func flat(_ s: String) -> String { s.replacingOccurrences(of: "\n", with: " ") }
        guard let decoding = error as? DecodingError else { return flat("\(error)") }
        switch decoding {
        case .dataCorrupted(let context):
            if context.codingPath.isEmpty { return syntaxError(data) ?? flat(context.debugDescription) }
            return "at \(path(context.codingPath)): \(flat(context.debugDescription))"
        case .keyNotFound(let key, let context):
            return "at \(path(context.codingPath + [key])): required key \"\(key.stringValue)\" is missing"
        case .typeMismatch(_, let context) where context.codingPath.isEmpty:
            return "not an alti manifest (expected a JSON object at the top level)"
        case .typeMismatch(let type, let context):
            return "at \(path(context.codingPath)): expected \(type) (\(flat(context.debugDescription)))"
        case .valueNotFound(let type, let context):
            return "at \(path(context.codingPath)): expected \(type), found null"
        @unknown default:
            return flat("\(error)")
        }
    }

    /// "invalid JSON at line L, column C: what" for data that does not parse. JSONDecoder gives no
    /// position; JSONSerialization names a byte offset ("around character N"), turned into a line
    /// and column here.
    static func syntaxError(_ data: Data) -> String? {
        if data.isEmpty { return "invalid JSON: the file is empty" }
        let message: String
        do {
            _ = try JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed])
            return nil
        } catch {
            message = ((error as NSError).userInfo[NSDebugDescriptionErrorKey] as? String) ?? "\(error)"
        }
        let bytes = [UInt8](data)
        var what = message.replacingOccurrences(of: "\n", with: " ")
        let offset: Int
        if let marker = message.range(of: "around character ") {
            offset = Int(message[marker.upperBound...].prefix { $0.isNumber }) ?? 0
            what = String(message[..<marker.lowerBound]).trimmingCharacters(in: .whitespaces)
        } else if message.lowercased().contains("end of file") {
            offset = bytes.count
            what = "the file ends in the middle of the JSON"
        } else {
            return "invalid JSON: " + what
        }
        let clamped = min(max(offset, 0), bytes.count)
        let line = bytes[..<clamped].reduce(1) { $1 == 0x0A ? $0 + 1 : $0 }
        let lineStart = bytes[..<clamped].lastIndex(of: 0x0A).map { $0 + 1 } ?? 0
        let column = clamped - lineStart + 1
        return "invalid JSON at line \(line), column \(column) (byte \(offset)): \(what.isEmpty ? "syntax error" : what)"
    }

    /// Moves an unreadable manifest aside to `manifest.json.corrupt-<UTC timestamp>` and returns
    /// the new path. Nothing is deleted.
    public func moveAside(_ url: URL, nowNs: Int64 = RFC3339.nowNanoseconds()) throws(AltiError) -> URL {
        let stamp = RFC3339.string(fromNanoseconds: nowNs)
            .replacingOccurrences(of: "-", with: "").replacingOccurrences(of: ":", with: "")
            .replacingOccurrences(of: ".", with: "")
        var target = URL(fileURLWithPath: url.path + ".corrupt-" + stamp)
        var n = 1
        while FileManager.default.fileExists(atPath: target.path) {
            n += 1
            target = URL(fileURLWithPath: url.path + ".corrupt-" + stamp + "-\(n)")
        }
        if rename(url.path, target.path) != 0 {
            throw AltiError(.cannotWrite, "cannot move \(url.path) aside: \(OSError.current("rename").message)")
        }
        return target
    }

    // MARK: Save

    /// The bytes of a manifest as saved: pretty-printed, sorted keys, trailing newline.
    public static func encode(_ manifest: Manifest) throws -> Data {
        var bytes = ManifestJSON.encode(manifest)
        bytes.append(0x0A)
        return Data(bytes)
    }

    /// Saves atomically and durably: entries normalized (sorted, duplicates linked), `writtenAt`
    /// stamped with `nowNs()` just before the write, temp file in the same folder, fsync, rename,
    /// fsync the folder. Returns the manifest as written. Any failure before the rename (a full
    /// disk, most often) leaves the previous manifest byte for byte and removes the temp file.
    /// - Parameter crashPoint: names this save for the test hook (`CrashPoint`): `<name>-temp-written`
    ///   is reached after the temp file is fsynced and before the rename.
    @discardableResult
    public func save(_ manifest: Manifest, to url: URL, crashPoint: String? = nil,
                     nowNs: () -> Int64 = RFC3339.nowNanoseconds) throws(AltiError) -> Manifest {
        var manifest = manifest
        manifest.normalize()
        manifest.schemaVersion = Manifest.currentSchemaVersion
        manifest.writtenAtNs = nowNs()
        manifest.writtenAt = RFC3339.string(fromNanoseconds: manifest.writtenAtNs)
        let folder = url.deletingLastPathComponent()
        try Self.makeDirectory(folder)
        do {
            // Written in pieces of 1 MiB as they are encoded: a 100,000-entry manifest (tens of
            // MB) is never held whole.
            try DurableFile.replace(url.path, mode: 0o644, beforeRename: {
                if let crashPoint { CrashPoint.reached(crashPoint + "-temp-written") }
            }, producing: { write in
                ManifestJSON.encode(manifest, chunk: 1 << 20, sink: write) && [UInt8(0x0A)].withUnsafeBytes(write)
            })
        } catch {
            throw AltiError.writeFailed(url.path, doing: "write manifest", code: error.code,
                                        kept: error.renamed ? "it was renamed into place, but fsync of its folder failed"
                                                            : "the previous manifest is intact")
        }
        return manifest
    }

    /// How old a save's temp file must be before a start takes it for a killed save's, when the
    /// process named in it may still be alive (pids are reused). A save writes its temp file and
    /// renames it within an fsync or two; seconds are plenty even on a slow SD card.
    public static let staleTemporaryAgeNs: Int64 = 10_000_000_000

    /// The prefix of `save`'s temp files for the manifest `url`: `.<name>.tmp-`.
    static func temporaryPrefix(of url: URL) -> String { ".\(url.lastPathComponent).tmp-" }

    /// Removes the temp files a save of `url` left when it was killed between creating and
    /// renaming them (`.<name>.tmp-<pid>-<random>`): those whose process is gone, or older than
    /// `staleTemporaryAgeNs`. Call it holding the manifest's lock: every save of this manifest
    /// runs under that lock, so no temp file found then is one a writer is still using. Only this
    /// manifest's temp files are looked at (a state folder holds many manifests). Returns the
    /// names removed; a file that cannot be removed is left for the next start.
    @discardableResult
    public func removeStaleTemporaryFiles(of url: URL,
                                          nowNs: Int64 = RFC3339.nowNanoseconds()) -> [String] {
        let folder = url.deletingLastPathComponent().path
        let prefix = Self.temporaryPrefix(of: url)
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: folder) else { return [] }
        var removed: [String] = []
        for name in names where name.hasPrefix(prefix) {
            let path = folder + "/" + name
            var st = SystemStat()
            guard lstat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { continue }
            let mtimeNs = FileStat(st).mtimeNs
            let writerGone = Self.pid(inTemporaryName: name, prefix: prefix).map { kill($0, 0) != 0 && errno == ESRCH } ?? false
            guard writerGone || nowNs - mtimeNs > Self.staleTemporaryAgeNs else { continue }
            if unlink(path) == 0 { removed.append(name) }
        }
        return removed
    }

    /// The pid `save` put in a temp file's name (`<prefix><pid>-<random>`), if it has one.
    static func pid(inTemporaryName name: String, prefix: String) -> pid_t? {
        let rest = name.dropFirst(prefix.count)
        guard let dash = rest.firstIndex(of: "-"), let pid = pid_t(rest[..<dash]), pid > 1 else { return nil }
        return pid
    }

    /// Creates `url` (and missing parents). A new folder is an entry of its parent: each parent
    /// that gained one is fsynced, so a power cut cannot lose the folder (and the fsynced
    /// manifest inside it).
    static func makeDirectory(_ url: URL) throws(AltiError) {
        let fm = FileManager.default
        var created: [String] = []
        var cursor = url.standardizedFileURL
        while cursor.path != "/", !fm.fileExists(atPath: cursor.path) {
            created.append(cursor.path)
            cursor = cursor.deletingLastPathComponent()
        }
        guard !created.isEmpty else { return }
        do {
            try fm.createDirectory(at: url, withIntermediateDirectories: true)
        } catch {
            throw AltiError(.cannotWrite, "cannot create folder \(url.path): \(error.localizedDescription)")
        }
        for folder in created {
            let parent = open((folder as NSString).deletingLastPathComponent, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            guard parent >= 0 else { continue }
            _ = fsync(parent)  // best effort: the folder exists; only its durability is at stake
            close(parent)
        }
    }
}
