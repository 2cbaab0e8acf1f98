import Foundation

/// A unique temporary folder for one test, removed by `remove()` (or left for inspection when
/// `KEEP_TEMP=1`). Tests run in parallel, so every tree has its own random name.
public final class TempTree: @unchecked Sendable {
    public let root: URL
    public var path: String { root.path }

    public init(_ label: String = "tree") throws {
        let name = "alti-\(label)-\(getpid())-\(UUID().uuidString.prefix(8))"
        root = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent(name)
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
    }

    deinit { remove() }

    public func remove() {
        if ProcessInfo.processInfo.environment["KEEP_TEMP"] == "1" { return }
        // Make everything writable again first, so a test's chmod cannot leave junk behind.
        if let walker = FileManager.default.enumerator(atPath: path) {
            for case let relative as String in walker {
                chmod(path + "/" + relative, 0o755)
            }
        }
        try? FileManager.default.removeItem(at: root)
    }

    /// The absolute path of `relative` inside the tree.
    public func url(_ relative: String) -> URL { root.appendingPathComponent(relative) }
    public func path(_ relative: String) -> String { url(relative).path }

    /// Writes `bytes` to `relative`, creating folders; returns the absolute path.
    @discardableResult
    public func write(_ relative: String, _ bytes: [UInt8]) throws -> String {
        let url = url(relative)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data(bytes).write(to: url)
        return url.path
    }

    @discardableResult
    public func write(_ relative: String, _ text: String) throws -> String {
        try write(relative, Array(text.utf8))
    }

    /// Copies a file or folder into the tree.
    public func copy(_ source: String, to relative: String) throws {
        let url = url(relative)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: source, toPath: url.path)
    }

    public func symlink(_ relative: String, to target: String) throws {
        let url = url(relative)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: url.path, withDestinationPath: target)
    }

    public func read(_ relative: String) throws -> [UInt8] {
        [UInt8](try Data(contentsOf: url(relative)))
    }

    /// Sets the mtime of `relative` (ns since the epoch), leaving atime alone.
    public func setMtime(_ relative: String, ns: Int64) throws {
        var times = [timespec(tv_sec: 0, tv_nsec: (1 << 30) - 2),  // UTIME_OMIT: leave atime
                     timespec(tv_sec: Int(ns / 1_000_000_000), tv_nsec: Int(ns % 1_000_000_000))]
        if utimensat(AT_FDCWD, path(relative), &times, AT_SYMLINK_NOFOLLOW) != 0 {
            throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO)
        }
    }

    /// Sets the mtime of every regular file in the tree `secondsAgo` into the past, so that the
    /// racy-clean guard does not apply to them.
    public func ageAllFiles(secondsAgo: Int64 = 3600) throws {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        let ns = (Int64(ts.tv_sec) - secondsAgo) * 1_000_000_000
        for relative in try files() { try setMtime(relative, ns: ns) }
    }

    /// Relative paths of all regular files, hidden ones included, sorted.
    public func files() throws -> [String] {
        var out: [String] = []
        guard let walker = FileManager.default.enumerator(atPath: path) else { return [] }
        for case let relative as String in walker {
            var st = stat()
            if lstat(path(relative), &st) == 0, (st.st_mode & S_IFMT) == S_IFREG { out.append(relative) }
        }
        return out.sorted()
    }
}

/// The result of running a process.
public struct ProcessResult: Sendable {
    public var stdout: String
    public var stderr: String
    public var exitCode: Int32

    public init(stdout: String, stderr: String, exitCode: Int32) {
        self.stdout = stdout
        self.stderr = stderr
        self.exitCode = exitCode
    }
}

/// Runs programs for end-to-end tests.
public enum Run {
    /// The environment every alti a test runs starts from: no plain progress lines. On a pipe
    /// alti prints one every 5 s, so a run slowed down by a loaded machine would grow an extra
    /// stderr line that a quick run does not have. Tests about those lines set
    /// `ALTI_PROGRESS_INTERVAL` themselves (the caller's environment wins).
    public static let testDefaults = ["ALTI_PROGRESS_INTERVAL": "3600"]

    /// The environment of a process a test starts: this process's, then `testDefaults`, then `extra`.
    public static func environment(_ extra: [String: String]) -> [String: String] {
        ProcessInfo.processInfo.environment.merging(testDefaults) { _, new in new }.merging(extra) { _, new in new }
    }

    /// The package root (the folder holding Package.swift), from this file's location.
    public static var packageRoot: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    }

    /// The built `alti` binary: `$ALTI_BIN`, else next to the running test bundle, else
    /// `.build/debug/alti`. Throws a clear message when it has not been built.
    public static func altiBinary() throws -> URL {
        if let env = ProcessInfo.processInfo.environment["ALTI_BIN"], !env.isEmpty {
            return URL(fileURLWithPath: env)
        }
        var candidates: [URL] = []
        if let exe = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
            var dir = URL(fileURLWithPath: exe).deletingLastPathComponent()
            // Inside an .xctest bundle on Linux the test binary is the bundle itself.
            if dir.pathExtension == "xctest" { dir = dir.deletingLastPathComponent() }
            candidates.append(dir.appendingPathComponent("alti"))
        }
        candidates.append(packageRoot.appendingPathComponent(".build/debug/alti"))
        for candidate in candidates where FileManager.default.isExecutableFile(atPath: candidate.path) {
            return candidate
        }
        throw RunError("the alti binary is not built (looked at \(candidates.map(\.path))); run `swift build` first, or set ALTI_BIN")
    }

    /// Runs the built `alti` with `arguments`, extra environment and working directory.
    public static func alti(_ arguments: [String], environment: [String: String] = [:],
                            currentDirectory: String? = nil) throws -> ProcessResult {
        try process(try altiBinary().path, arguments, environment: environment, currentDirectory: currentDirectory)
    }

    /// Runs `executable` (a path, or a name looked up in PATH) and captures stdout, stderr, exit code.
    public static func process(_ executable: String, _ arguments: [String], environment: [String: String] = [:],
                               currentDirectory: String? = nil, stdin: Data? = nil) throws -> ProcessResult {
        let process = Process()
        if executable.contains("/") {
            process.executableURL = URL(fileURLWithPath: executable)
            process.arguments = arguments
        } else {
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = [executable] + arguments
        }
        process.environment = Run.environment(environment)
        if let currentDirectory { process.currentDirectoryURL = URL(fileURLWithPath: currentDirectory) }
        let out = Pipe()
        let err = Pipe()
        let input = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = input
        try process.run()
        if let stdin { input.fileHandleForWriting.write(stdin) }
        try? input.fileHandleForWriting.close()
        // Drain both pipes concurrently so a chatty child cannot block on a full pipe.
        let box = OutputBox()
        let group = DispatchGroup()
        group.enter()
        DispatchQueue.global().async {
            box.setErr(err.fileHandleForReading.readDataToEndOfFile())
            group.leave()
        }
        let stdoutData = out.fileHandleForReading.readDataToEndOfFile()
        group.wait()
        process.waitUntilExit()
        return ProcessResult(stdout: String(decoding: stdoutData, as: UTF8.self),
                             stderr: String(decoding: box.err, as: UTF8.self),
                             exitCode: process.terminationStatus)
    }
}

private final class OutputBox: @unchecked Sendable {
    private let lock = NSLock()
    private var data = Data()
    func setErr(_ d: Data) { lock.withLock { data = d } }
    var err: Data { lock.withLock { data } }
}

/// A test-harness failure with a message (a missing binary, a missing tool).
public struct RunError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// The Python interpreter of the test oracles (jsonschema, oss2): `$ALTI_TEST_PYTHON` when set
/// (scripts/test sets it to the virtual environment `scripts/bootstrap --test` makes in
/// `.build/test-venv`), else `python3` from PATH. A missing interpreter or package is an error, never a skip.
public enum TestPython {
    public static var interpreter: String {
        if let env = ProcessInfo.processInfo.environment["ALTI_TEST_PYTHON"], !env.isEmpty { return env }
        return "python3"
    }
}

/// Validates JSON documents against a JSON Schema (Draft 2020-12) with Python's `jsonschema`, run
/// by `TestPython.interpreter`: manifests (`manifests/manifest.schema.json`) and `--events` lines
/// (`manifests/events.schema.json`). Missing Python or jsonschema is an error, never a skip.
public enum JSONSchemaCheck {
    static let script = """
        import json, sys
        try:
            import jsonschema
        except ImportError:
            print("%s has no jsonschema package: run scripts/bootstrap --test and set ALTI_TEST_PYTHON to the interpreter it prints (scripts/test does)" % sys.executable)
            sys.exit(3)
        mode, schema = sys.argv[1], json.load(open(sys.argv[2]))
        jsonschema.Draft202012Validator.check_schema(schema)
        v = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
        bad = 0
        for p in sys.argv[3:]:
            # ndjson: every line is a document, named FILE:LINE in the errors.
            docs = [("%s:%d" % (p, n), json.loads(l)) for n, l in enumerate(open(p), 1)] if mode == "ndjson" else [(p, json.load(open(p)))]
            for where, doc in docs:
                for e in v.iter_errors(doc):
                    bad += 1
                    print("%s: /%s: %s" % (where, "/".join(map(str, e.absolute_path)), e.message[:300]))
        sys.exit(1 if bad else 0)
        """

    /// The validation errors of `files` against `schema` (empty when all are valid); with
    /// `linesAreDocuments`, each line of a file is one document (NDJSON). Throws when the
    /// validator itself cannot run.
    public static func errors(schema: String, files: [String], linesAreDocuments: Bool = false) throws -> [String] {
        let result = try Run.process(TestPython.interpreter, ["-c", script, linesAreDocuments ? "ndjson" : "json", schema] + files)
        switch result.exitCode {
        case 0: return []
        case 1: return result.stdout.split(separator: "\n").map(String.init)
        default:
            throw RunError("cannot validate against \(schema) (exit \(result.exitCode)): \(result.stdout)\(result.stderr)")
        }
    }
}

/// Manifests against `manifests/manifest.schema.json`.
public enum ManifestSchema {
    public static var schemaPath: String { Run.packageRoot.appendingPathComponent("manifests/manifest.schema.json").path }

    /// The validation errors of `files` (empty when all are valid).
    public static func errors(_ files: [String]) throws -> [String] {
        try JSONSchemaCheck.errors(schema: schemaPath, files: files)
    }
}
