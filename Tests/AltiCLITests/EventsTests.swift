import AltiEmulator
import AltiTestSupport
import Foundation
import Testing

/// `--events` of scan, sync (with injected faults, so retries happen) and status, run from the
/// built binary against the in-process emulator: every line validated against
/// `manifests/events.schema.json` with Python's `jsonschema`, then the counts, the summary
/// against `--json`'s figures, the progress rate bound and the absence of secrets. Also
/// `--quiet` and `--verbose`.
@Suite(.serialized) struct EventsTests {
    static var schemaPath: String { Run.packageRoot.appendingPathComponent("manifests/events.schema.json").path }


    /// The events of `stdout`, each line validated against the schema; throws when the validator
    /// cannot run, records an issue per invalid line.
    static func events(_ stdout: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> [[String: Any]] {
        #expect(stdout.hasSuffix("\n") && !stdout.isEmpty, "not newline-terminated lines", sourceLocation: sourceLocation)
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("alti-events-\(UUID().uuidString).ndjson")
        try Data(stdout.utf8).write(to: file)
        defer { try? FileManager.default.removeItem(at: file) }
        let invalid = try JSONSchemaCheck.errors(schema: schemaPath, files: [file.path], linesAreDocuments: true)
        if !invalid.isEmpty {
            Issue.record("events not valid: \(invalid.joined(separator: "\n").prefix(3000))", sourceLocation: sourceLocation)
        }
        return try stdout.split(separator: "\n").map {
            try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
        }
    }

    static func of(_ events: [[String: Any]], _ type: String) -> [[String: Any]] { events.filter { $0["type"] as? String == type } }

    static func json(_ text: String) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
    }

    /// A JSON value written with sorted keys: two objects with the same content give the same text.
    static func canonical(_ object: Any) throws -> String {
        String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self)
    }

    static func time(_ event: [String: Any]) throws -> Date {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        let text = try #require(event["time"] as? String)
        return try #require(formatter.date(from: text))
    }

    /// Secrets of the test set-up that must never reach an event.
    static func expectNoSecret(_ text: String, sourceLocation: SourceLocation = #_sourceLocation) {
        for secret in [SyncEndToEndTests.key, SyncEndToEndTests.token, "X-Amz-Signature", "X-Amz-Credential", "Signature=",
                       "security-token", "OSSAccessKeyId", "AccessKeySecret", "accessKeySecret"] {
            #expect(!text.contains(secret), "\(secret) in the events", sourceLocation: sourceLocation)
        }
    }

    /// The run's order: start first, summary (or error) last, images before the summary.
    static func expectShape(_ events: [[String: Any]], command: String, last: String = "summary",
                            sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(events.first?["type"] as? String == "start", sourceLocation: sourceLocation)
        #expect(events.first?["command"] as? String == command, sourceLocation: sourceLocation)
        #expect(events.last?["type"] as? String == last, sourceLocation: sourceLocation)
        #expect(events.allSatisfy { $0["v"] as? Int == 1 }, sourceLocation: sourceLocation)
        #expect(of(events, "start").count == 1 && of(events, last).count == 1, sourceLocation: sourceLocation)
    }

    /// A sync with the first two PUTs refused (503): retried, all Ready.
    static func faultyConfiguration() -> EmulatorConfiguration {
        var config = testEmulatorConfiguration()
        config.faults.put.failNext = 2
        return config
    }

    @Test func scanEventsAreValidOnePerFileAndTheSummaryIsTheJSONReport() async throws {
        let tree = try SyncEndToEndTests.survey()
        defer { tree.remove() }
        let run = try Run.alti(["scan", tree.path, "--events"], environment: ["XDG_STATE_HOME": NSTemporaryDirectory()])
        #expect(run.exitCode == 0, "\(run.stderr)")
        let events = try Self.events(run.stdout)
        Self.expectShape(events, command: "scan")
        let images = Self.of(events, "image")
        #expect(images.count == 24)
        #expect(images.allSatisfy { $0["state"] as? String == "recorded" && ($0["sha1"] as? String)?.count == 40 })
        #expect(Set(images.compactMap { $0["path"] as? String }).count == 24)
        // The figures of --json: a second scan of the same tree (nothing hashed again) agrees on
        // everything but the work done and its time.
        let again = try Run.alti(["scan", tree.path, "--json"], environment: ["XDG_STATE_HOME": NSTemporaryDirectory()])
        let summary = try #require(Self.of(events, "summary").first)
        var report = try #require((summary["report"] as? [String: Any])?["sources"] as? [[String: Any]]).first!
        var json = try #require(try Self.json(again.stdout)["sources"] as? [[String: Any]]).first!
        for key in ["filesHashed", "filesReused", "bytesHashed", "seconds"] {
            report[key] = nil
            json[key] = nil
        }
        #expect(try Self.canonical(report) == Self.canonical(json))
        #expect(summary["exitCode"] as? Int == 0)
    }

    @Test func syncEventsCountEveryImageEveryRetryAndMatchTheJSONReport() async throws {
        let tree = try SyncEndToEndTests.survey()
        defer { tree.remove() }
        let run = try await withEmulator(Self.faultyConfiguration()) { emu in
            try await SyncEndToEndTests.alti(["sync", tree.path, "--project", SyncEndToEndTests.project, "--transfers", "2",
                                              "--bwlimit", "600k", "--events"], SyncEndToEndTests.env(emu))
        }
        #expect(run.exitCode == 0, "\(run.stderr)")
        #expect(run.stderr.isEmpty, "\(run.stderr)")  // no progress text beside the events
        let events = try Self.events(run.stdout)
        Self.expectShape(events, command: "sync")
        Self.expectNoSecret(run.stdout)
        #expect(events.first?["project"] as? String == SyncEndToEndTests.project)
        // One image event per image, each Ready with the server's id.
        let images = Self.of(events, "image")
        #expect(images.count == 24)
        #expect(images.allSatisfy { $0["state"] as? String == "Ready" && ($0["serverId"] as? String)?.count == 24 })
        #expect(images.reduce(0) { $0 + ($1["size"] as? Int ?? 0) } == 1_935_119)
        // The two refused PUTs: two retries, named, with a delay and the reason.
        let retries = Self.of(events, "retry")
        #expect(retries.count == 2, "\(retries)")
        for retry in retries {
            #expect((retry["what"] as? String)?.hasPrefix("upload of flight") == true, "\(retry)")
            #expect((retry["reason"] as? String)?.contains("503") == true, "\(retry)")
        }
        // Two 503s in a row may both hit one image (its retry is the next PUT when the others are
        // done): then its attempts are 2 and 3; otherwise two images each retry once (2 and 2).
        let attempts = retries.compactMap { $0["attempt"] as? Int }.sorted()
        #expect(attempts == [2, 2] || attempts == [2, 3], "\(attempts)")
        // Phases in order.
        let phases = Self.of(events, "phase").compactMap { $0["phase"] as? String }
        #expect(phases == ["scanning", "checking", "uploading", "waiting", "done"], "\(phases)")
        // Progress at most 2 a second, and it moves.
        let progress = Self.of(events, "progress")
        #expect(progress.count >= 3, "\(progress.count) progress events")
        let times = try progress.map(Self.time)
        for (a, b) in zip(times, times.dropFirst()) { #expect(b.timeIntervalSince(a) >= 0.45, "progress \(a) then \(b)") }
        #expect(progress.contains { $0["phase"] as? String == "uploading" && ($0["bytesDone"] as? Int ?? 0) > 0 })
        #expect(progress.allSatisfy { ($0["bytesDone"] as? Int ?? 0) <= ($0["bytesTotal"] as? Int ?? 0) })
        // The summary holds the --json report: the same run with --json, on a fresh emulator with
        // the same faults, has the same figures (only paths, port and time differ).
        let summary = try #require(Self.of(events, "summary").first)
        #expect(summary["exitCode"] as? Int == 0)
        let report = try #require(summary["report"] as? [String: Any])
        let other = try SyncEndToEndTests.survey()
        defer { other.remove() }
        let jsonRun = try await withEmulator(Self.faultyConfiguration()) { emu in
            try await SyncEndToEndTests.alti(["sync", other.path, "--project", SyncEndToEndTests.project, "--transfers", "2", "--json"],
                                             SyncEndToEndTests.env(emu))
        }
        let json = try Self.json(jsonRun.stdout)
        for key in ["images", "alreadyReady", "bytesSent", "imagesStored", "filesHashed", "exitCode", "phase", "bytesToSend",
                    "project", "cloud", "bucket", "dryRun", "offline"] {
            #expect(String(describing: report[key] ?? "nil") == String(describing: json[key] ?? "nil"), "\(key)")
        }
        #expect((report["ready"] as? [String])?.count == 24 && (json["ready"] as? [String])?.count == 24)
        #expect(try Self.canonical(report["requests"] ?? [:]) == Self.canonical(json["requests"] ?? [:]))
        #expect(Set(report.keys) == Set(json.keys))
    }

    @Test func anOSSSyncWithRetriesLeaksNoCredential() async throws {
        let tree = try SyncEndToEndTests.survey()
        defer { tree.remove() }
        let run = try await withEmulator(Self.faultyConfiguration()) { emu in
            try await SyncEndToEndTests.alti(["sync", tree.path, "--project", SyncEndToEndTests.project, "--cloud", "oss", "--events"],
                                             SyncEndToEndTests.env(emu))
        }
        #expect(run.exitCode == 0, "\(run.stderr)")
        let events = try Self.events(run.stdout)
        Self.expectShape(events, command: "sync")
        Self.expectNoSecret(run.stdout)
        #expect(Self.of(events, "retry").count == 2)
        #expect(Self.of(events, "image").count == 24)
    }

    @Test func statusEventsMatchStatusJSONExactly() async throws {
        let tree = try SyncEndToEndTests.survey()
        defer { tree.remove() }
        try await withEmulator(testEmulatorConfiguration()) { emu in
            let env = SyncEndToEndTests.env(emu)
            let sync = try await SyncEndToEndTests.alti(["sync", tree.path, "--project", SyncEndToEndTests.project], env)
            #expect(sync.exitCode == 0, "\(sync.stderr)")
            let run = try await SyncEndToEndTests.alti(["status", tree.path, "--events"], env)
            #expect(run.exitCode == 0, "\(run.stderr)")
            let events = try Self.events(run.stdout)
            Self.expectShape(events, command: "status")
            let images = Self.of(events, "image")
            #expect(images.count == 24)
            #expect(images.allSatisfy { $0["state"] as? String == "ready" && ($0["serverId"] as? String)?.count == 24 })
            let json = try await SyncEndToEndTests.alti(["status", tree.path, "--json"], env)
            let report = try #require(Self.of(events, "summary").first?["report"] as? [String: Any])
            #expect(try Self.canonical(report) == Self.canonical(try Self.json(json.stdout)))
            // --refresh asks the server: its phase is said, the figures are the refreshed ones.
            let refreshed = try await SyncEndToEndTests.alti(["status", tree.path, "--refresh", "--events"], env)
            #expect(refreshed.exitCode == 0, "\(refreshed.stderr)")
            let refreshEvents = try Self.events(refreshed.stdout)
            #expect(Self.of(refreshEvents, "phase").compactMap { $0["phase"] as? String } == ["reading", "refreshing"])
            Self.expectNoSecret(refreshed.stdout)
        }
    }

    @Test func aFailedSyncEndsWithAnErrorEvent() async throws {
        let tree = try SyncEndToEndTests.survey()
        defer { tree.remove() }
        let run = try await SyncEndToEndTests.alti(
            ["sync", tree.path, "--project", SyncEndToEndTests.project, "--events"],
            ["ALTI_ENDPOINT": "http://127.0.0.1:9", "ALTI_KEY": SyncEndToEndTests.key, "ALTI_TOKEN": SyncEndToEndTests.token,
             "ALTI_RETRY_BASE_MS": "10", "XDG_CONFIG_HOME": "/nonexistent-alti-config", "XDG_STATE_HOME": NSTemporaryDirectory()])
        #expect(run.exitCode == 69, "\(run.stderr)")
        let events = try Self.events(run.stdout)
        Self.expectShape(events, command: "sync", last: "error")
        let error = try #require(events.last)
        #expect(error["exitCode"] as? Int == 69)
        #expect((error["message"] as? String)?.hasPrefix("offline: cannot reach http://127.0.0.1:9") == true, "\(error)")
        // The same line on stderr, once.
        #expect(run.stderr.split(separator: "\n").count == 1 && run.stderr.hasPrefix("alti: offline: "), "\(run.stderr)")
        Self.expectNoSecret(run.stdout)
    }

    /// The documented example stays valid as the schema changes.
    @Test func theExampleInManifestsIsValid() throws {
        let example = try String(contentsOf: Run.packageRoot.appendingPathComponent("manifests/examples/sync-events.ndjson"),
                                 encoding: .utf8)
        let events = try Self.events(example)
        Self.expectShape(events, command: "sync")
        #expect(Set(events.compactMap { $0["type"] as? String }) == ["start", "phase", "progress", "retry", "image", "summary"])
    }

    @Test func eventsAndJSONTogetherAreAUsageError() async throws {
        for command in [["scan", "."], ["sync", ".", "--project", "x"], ["status"]] {
            let run = try Run.alti(command + ["--events", "--json"])
            #expect(run.exitCode == 64)
            #expect(run.stderr.contains("--events and --json exclude each other"), "\(run.stderr)")
            #expect(run.stdout.isEmpty)
        }
        let both = try Run.alti(["scan", ".", "--quiet", "--verbose"])
        #expect(both.exitCode == 64 && both.stderr.contains("--quiet and --verbose exclude each other"))
    }

    /// `--quiet`: the one-line outcome and nothing else; `--verbose`: a line per image and per retry.
    @Test func quietSaysOneLineAndVerboseSaysEveryImageAndRetry() async throws {
        let tree = try SyncEndToEndTests.survey()
        defer { tree.remove() }
        try await withEmulator(Self.faultyConfiguration()) { emu in
            let env = SyncEndToEndTests.env(emu, ["ALTI_PROGRESS_INTERVAL": "0.2"])
            let verbose = try await SyncEndToEndTests.alti(["sync", tree.path, "--project", SyncEndToEndTests.project, "--verbose"], env)
            #expect(verbose.exitCode == 0, "\(verbose.stderr)")
            let retryLines = verbose.stderr.split(separator: "\n").filter { $0.hasPrefix("alti: retry: upload of flight") }
            #expect(retryLines.count == 2, "\(verbose.stderr)")
            // Two refused PUTs: two retries of one upload each, or one upload refused twice when
            // its retry reaches the store before any other upload (a loaded machine): try 2 and 3.
            #expect(retryLines.allSatisfy { ($0.contains(", try 2 in ") || $0.contains(", try 3 in ")) && $0.contains("503") },
                    "\(retryLines)")
            let imageLines = verbose.stdout.split(separator: "\n").filter { $0.hasPrefix("  Ready ") && $0.hasSuffix(".JPG") }
            #expect(imageLines.count == 24, "\(verbose.stdout)")
            #expect(verbose.stdout.contains("All 24 images Ready."))

            let quiet = try await SyncEndToEndTests.alti(["sync", tree.path, "--project", SyncEndToEndTests.project, "--quiet"], env)
            #expect(quiet.exitCode == 0)
            #expect(quiet.stdout == "All 24 images Ready. Start the reconstruction with --start-reconstruction.\n", "\(quiet.stdout)")
            #expect(quiet.stderr.isEmpty, "\(quiet.stderr)")
            let quietScan = try Run.alti(["scan", tree.path, "-q"], environment: env)
            #expect(quietScan.stdout == "Scanned 24 images (1.9 MB) in 1 source.\n" && quietScan.stderr.isEmpty, "\(quietScan.stdout)")
        }
    }
}
