import AltiEmulator
import AltiTestSupport
import Foundation
import Testing

@testable import AltiCore

/// The fault matrix of issue 11: the built `alti` against the in-process emulator with one fault
/// switched on per case. Each case asserts what the emulator stored and counted (objects per
/// image, bytes, registrations, GraphQL requests), what the manifest recorded, and the exit code.
/// Retries and backoffs are shortened through the environment (`ALTI_RETRY_BASE_MS`,
/// `ALTI_LOW_SPEED_TIME`, ...) so the whole matrix stays within seconds per case. The server
/// going away mid-run with `--keep-trying` is `SyncEndToEndTests.keepTryingFinishesOneRunAcrossAServerOutage`.
@Suite(.serialized) struct FaultMatrixTests {
    static let project = ProjectSeed.sample.id

    static func env(_ emu: RunningEmulator, _ extra: [String: String] = [:]) -> [String: String] {
        SyncEndToEndTests.env(emu, extra)
    }

    static func alti(_ args: [String], _ env: [String: String]) async throws -> ProcessResult {
        try await SyncEndToEndTests.alti(args, env)
    }

    static func sync(_ tree: TempTree, _ extra: [String] = []) -> [String] {
        ["sync", tree.path, "--project", project] + extra
    }

    /// The total size of the survey's image files: what the store must hold once each.
    static func surveyBytes(_ tree: TempTree) throws -> Int {
        try tree.files().filter { !$0.hasPrefix(".alti") }.reduce(0) { total, file in
            total + ((try FileManager.default.attributesOfItem(atPath: tree.path(file))[.size] as? Int) ?? 0)
        }
    }

    /// Every image of the survey is Ready on the server and in the manifest, stored exactly once
    /// (one object per image, the survey's bytes once), with the manifest's ids the server's.
    static func expectAllReadyStoredOnce(_ tree: TempTree, _ emu: RunningEmulator, images: Int,
                                         sourceLocation: SourceLocation = #_sourceLocation) async throws {
        let stats = await emu.state.stats()
        #expect(stats.imagesByState == ["Ready": images], "\(stats.imagesByState)", sourceLocation: sourceLocation)
        #expect(stats.putsByImage.count == images, sourceLocation: sourceLocation)
        #expect(stats.putsByImage.values.allSatisfy { $0 == 1 }, "\(stats.putsByImage.values.sorted())",
                sourceLocation: sourceLocation)
        #expect(stats.images.allSatisfy { $0.putCount == 1 }, sourceLocation: sourceLocation)
        #expect(stats.bytesStored == (try surveyBytes(tree)), sourceLocation: sourceLocation)
        let manifest = try SyncEndToEndTests.manifest(tree)
        #expect(manifest.entries.count == images, sourceLocation: sourceLocation)
        let serverIDs = Set(stats.images.map(\.id))
        for entry in manifest.entries {
            #expect(entry.server?.state == .ready, "\(entry.path): \(String(describing: entry.server?.state))",
                    sourceLocation: sourceLocation)
            #expect(serverIDs.contains(entry.server?.imageID ?? ""), "\(entry.path)", sourceLocation: sourceLocation)
        }
        #expect(!FileManager.default.fileExists(atPath: tree.path(".alti/manifest.json.journal")),
                sourceLocation: sourceLocation)
        #expect(try ManifestSchema.errors([tree.path(".alti/manifest.json")]) == [], sourceLocation: sourceLocation)
    }

    /// A run that did not finish says what is left: exit 75 with the summary's "run the same
    /// command again" line, or exit 69 with one line on stderr saying what is still to send.
    static func expectSaysWhatIsLeft(_ run: ProcessResult, sourceLocation: SourceLocation = #_sourceLocation) {
        switch run.exitCode {
        case 75:
            #expect(run.stdout.contains("run the same command again"), "\(run.stdout)", sourceLocation: sourceLocation)
        case 69:
            let lines = run.stderr.split(separator: "\n")
            #expect(lines.count == 1, "\(run.stderr)", sourceLocation: sourceLocation)
            #expect(run.stderr.hasPrefix("alti: ") && run.stderr.contains("still to send"), "\(run.stderr)",
                    sourceLocation: sourceLocation)
        default:
            Issue.record("exit \(run.exitCode), not 69 or 75: \(run.stdout) \(run.stderr)", sourceLocation: sourceLocation)
        }
    }

    /// Runs the same sync until it exits 0 (at most `runs` times); every run before the last
    /// must have said what was left. Returns the runs.
    static func syncUntilDone(_ args: [String], _ env: [String: String], runs: Int,
                              sourceLocation: SourceLocation = #_sourceLocation) async throws -> [ProcessResult] {
        var results: [ProcessResult] = []
        for _ in 0..<runs {
            let run = try await alti(args, env)
            results.append(run)
            if run.exitCode == 0 { return results }
            expectSaysWhatIsLeft(run, sourceLocation: sourceLocation)
        }
        Issue.record("still not finished after \(runs) runs", sourceLocation: sourceLocation)
        return results
    }

    /// The GraphQL requests the emulator answered with an injected fault.
    static func graphqlFaults(_ emu: RunningEmulator, _ outcome: String) async -> Int {
        await emu.requestLog().filter { $0.requestClass == "graphql" && $0.outcome == outcome }.count
    }

    /// Starts alti and waits for it; a run still going after `guardSeconds` is killed and
    /// reported as hung (a guard against hanging forever, not a speed limit).
    static func runGuarded(_ args: [String], _ env: [String: String], guardSeconds: Int = 90)
        async throws -> (result: ProcessResult, hung: Bool) {
        let (process, out, err) = try SyncEndToEndTests.launch(args, env)
        var hung = false
        for step in 0... {
            if !process.isRunning { break }
            if step >= guardSeconds * 20 {
                kill(process.processIdentifier, SIGKILL)
                hung = true
                break
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        process.waitUntilExit()
        let stdout = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        return (ProcessResult(stdout: stdout, stderr: stderr, exitCode: process.terminationStatus), hung)
    }

    // MARK: 503s

    /// Half of all requests (GraphQL and storage) answer 503. With the default budget of 6 tries
    /// the run ends all Ready (or, when one request fails 6 times in a row, stops saying what is
    /// left and the re-run finishes); with a budget of 2 tries the first run stops and a re-run
    /// against the healed server finishes. Either way each image is stored exactly once.
    @Test func halfOfAllRequestsFailingWith503() async throws {
        let tree = try SyncEndToEndTests.survey()
        defer { tree.remove() }
        var config = testEmulatorConfiguration()
        config.faults.graphql.failRate = 0.5
        config.faults.put.failRate = 0.5
        config.faults.graphql.failNext = 2  // the faults happen for certain, not only probably
        config.faults.put.failNext = 2
        try await withEmulator(config) { emu in
            let runs = try await Self.syncUntilDone(Self.sync(tree), Self.env(emu), runs: 5)
            try await Self.expectAllReadyStoredOnce(tree, emu, images: 24)
            // The faults happened (so each was retried, in the run or the re-run): every refused
            // PUT stored nothing, every image is stored once.
            let stats = await emu.state.stats()
            #expect(stats.puts("fault-503") >= 2)
            #expect(stats.puts == 24 + stats.puts("fault-503"), "\(stats.putsByOutcome)")
            #expect(await Self.graphqlFaults(emu, "fault-503") >= 2)
            print("fault matrix, 50 % 503: \(runs.count) run(s), \(stats.puts) storage requests "
                  + "(\(stats.puts("fault-503")) refused), \(stats.graphqlRequests) GraphQL requests")
        }

        // A budget of 2 tries; one worker, so the first image's PUT meets both forced 503s.
        let small = try SyncEndToEndTests.survey()
        defer { small.remove() }
        config.faults.graphql.failNext = 0
        config.faults.put.failNext = 2
        try await withEmulator(config) { emu in
            let env = Self.env(emu, ["ALTI_RETRY_ATTEMPTS": "2"])
            let first = try await Self.alti(Self.sync(small, ["--transfers", "1"]), env)
            #expect(first.exitCode != 0, "two 503s in a row on a budget of two tries: \(first.stdout)")
            Self.expectSaysWhatIsLeft(first)
            // The scan and what was learnt are kept; no journal is left behind.
            #expect(try SyncEndToEndTests.manifest(small).entries.count == 24)
            #expect(!FileManager.default.fileExists(atPath: small.path(".alti/manifest.json.journal")))
            let storedByFirst = await emu.state.stats().putsByImage
            await emu.setFaults(FaultSettings())
            let rerun = try await Self.alti(Self.sync(small), env)
            #expect(rerun.exitCode == 0, "\(rerun.stdout) \(rerun.stderr)")
            try await Self.expectAllReadyStoredOnce(small, emu, images: 24)
            print("fault matrix, 50 % 503 on 2 tries: first run exit \(first.exitCode) after storing "
                  + "\(storedByFirst.count) images")
        }
    }

    // MARK: Connection resets

    /// 30 % of storage requests are cut in the middle of their body (TCP reset): retried, all
    /// Ready, one stored object per image (a cut body stores nothing).
    @Test func connectionResetsInTheMiddleOfPutBodies() async throws {
        let tree = try SyncEndToEndTests.survey()
        defer { tree.remove() }
        var config = testEmulatorConfiguration()
        config.faults.put.resetRate = 0.3
        config.faults.put.resetNext = 2
        try await withEmulator(config) { emu in
            let runs = try await Self.syncUntilDone(Self.sync(tree), Self.env(emu), runs: 3)
            try await Self.expectAllReadyStoredOnce(tree, emu, images: 24)
            let stats = await emu.state.stats()
            #expect(stats.puts("fault-reset") >= 2)
            #expect(stats.puts("ok") == 24)
            #expect(stats.puts == 24 + stats.puts("fault-reset"), "\(stats.putsByOutcome)")
            print("fault matrix, 30 % resets: \(runs.count) run(s), \(stats.puts("fault-reset")) bodies cut")
        }
    }

    // MARK: Stalls

    /// Two PUTs hang after their body (no answer for 30 s): with `ALTI_LOW_SPEED_TIME=1` each is
    /// abandoned after about a second and retried; the run ends Ready and does not hang. (A
    /// trickle is not used here: on loopback the whole body sits in the socket buffers, so a
    /// server still reading it slowly after the client gave up would store it once more, as a
    /// real server would; that is a lost answer, not a stall.)
    @Test func aStalledPutIsAbandonedAndRetried() async throws {
        let tree = try SyncEndToEndTests.survey()
        defer { tree.remove() }
        var config = testEmulatorConfiguration()
        config.faults.put.hangNext = 2
        config.faults.put.hangSeconds = 30
        try await withEmulator(config) { emu in
            let started = Date()
            let (run, hung) = try await Self.runGuarded(
                Self.sync(tree, ["--json"]),
                Self.env(emu, ["ALTI_LOW_SPEED_TIME": "1"]))
            #expect(!hung, "alti hung on a stalled PUT")
            #expect(run.exitCode == 0, "\(run.stdout) \(run.stderr)")
            try await Self.expectAllReadyStoredOnce(tree, emu, images: 24)
            let stats = await emu.state.stats()
            #expect(stats.puts("fault-hang") == 2)
            #expect(stats.puts("ok") == 24)
            #expect(stats.puts == 26, "\(stats.putsByOutcome)")
            let requests = try #require(try SyncEndToEndTests.json(run)["requests"] as? [String: Int])
            #expect((requests["putRetries"] ?? 0) >= 2, "\(requests)")
            print("fault matrix, 2 hung PUTs: the run took \(String(format: "%.1f", Date().timeIntervalSince(started))) s")
        }
    }

    // MARK: Latency

    /// 500 ms on every request: all Ready, and latency alone causes no extra request: no retry,
    /// one PUT per image, and the emulator counts exactly the GraphQL requests the client made.
    @Test func halfASecondOfLatencyOnEveryRequest() async throws {
        let tree = try SyncEndToEndTests.survey()
        defer { tree.remove() }
        var config = testEmulatorConfiguration()
        config.faults.graphql.latencyMilliseconds = 500
        config.faults.put.latencyMilliseconds = 500
        try await withEmulator(config) { emu in
            let run = try await Self.alti(Self.sync(tree, ["--json"]), Self.env(emu))
            #expect(run.exitCode == 0, "\(run.stdout) \(run.stderr)")
            try await Self.expectAllReadyStoredOnce(tree, emu, images: 24)
            let stats = await emu.state.stats()
            #expect(stats.puts == 24)
            let requests = try #require(try SyncEndToEndTests.json(run)["requests"] as? [String: Int])
            #expect(requests["graphqlRetries"] == 0 && requests["putRetries"] == 0, "\(requests)")
            #expect(requests["put"] == 24)
            #expect(requests["graphql"] == stats.graphqlRequests, "\(requests) vs \(stats.graphqlRequests)")
            // 1 preflight (project, support, getGeoIPInfo) + 1 hasImage + 2 windows x (register +
            // start) and polls: the poll interval doubles, so a slow link means fewer polls, not more.
            #expect(stats.registrations == 24)
            #expect(stats.count("hasImage") == 24)
            // Without latency the same sync makes 7 requests; allow three more polls for a loaded
            // machine.
            #expect(stats.graphqlRequests <= 10, "\(stats.graphqlFields)")
            print("fault matrix, 500 ms latency: \(stats.graphqlRequests) GraphQL requests \(stats.graphqlFields)")
        }
    }

    // MARK: Expiring URLs and credentials

    /// Pre-signed URLs live 3 s (2 s on the client's clock, which discounts X-Amz-Date's whole
    /// seconds; replaced with 0.5 s left) while each PUT body is read at ~300 KB/s by one worker:
    /// URLs registered in a window of 16 go stale in the queue and are refreshed before use; none
    /// reaches the store expired; at most one refresh per image, one registration per refresh.
    @Test func s3URLsExpiringDuringALongUpload() async throws {
        let tree = try SyncEndToEndTests.survey()
        defer { tree.remove() }
        var config = testEmulatorConfiguration()
        config.urlLifetime = 3
        config.faults.put.trickleRate = 1
        config.faults.put.trickleBytesPerSecond = 300_000
        try await withEmulator(config) { emu in
            let run = try await Self.alti(Self.sync(tree, ["--transfers", "1", "--json"]), Self.env(emu))
            #expect(run.exitCode == 0, "\(run.stdout) \(run.stderr)")
            try await Self.expectAllReadyStoredOnce(tree, emu, images: 24)
            let stats = await emu.state.stats()
            #expect(stats.puts("AccessDenied") == 0, "an expired URL was used: \(stats.putsByOutcome)")
            #expect(stats.puts == 24)
            let requests = try #require(try SyncEndToEndTests.json(run)["requests"] as? [String: Int])
            let refreshes = requests["urlRefreshes"] ?? 0
            #expect(refreshes > 0, "\(requests)")
            #expect(refreshes <= 24, "at most one refresh per image here: \(requests)")
            // A refresh is one registration of that image; nothing else registers again.
            #expect(stats.registrations == 24 + refreshes, "\(stats.registrations) registrations")
            print("fault matrix, 3 s URLs: \(refreshes) refreshes, \(stats.registrations) registrations")
        }
    }

    /// An STS credential lives 2 s while a 3 MB image goes up in 12 parts of 0.25 MiB, each
    /// delayed 300 ms: the credential is renewed during the multipart upload (not once per part),
    /// no part is stored twice, the upload completes once and the image ends Ready.
    @Test func ossCredentialsExpiringDuringALongMultipartUpload() async throws {
        let tree = try TempTree("fault-sts")
        defer { tree.remove() }
        try tree.write("pano/PANO_0001.JPG", try OSSMultipartTests.bigJPEG(size: 3_000_000))
        try tree.ageAllFiles()
        var config = testEmulatorConfiguration()
        config.faults.stsLifetimeSeconds = 2
        config.faults.put.latencyMilliseconds = 300
        try await withEmulator(config) { emu in
            let started = Date()
            let run = try await Self.alti(
                Self.sync(tree, ["--cloud", "oss", "--multipart-threshold", "1", "--part-size", "0.25", "--transfers", "1"]),
                Self.env(emu))
            let seconds = Date().timeIntervalSince(started)
            #expect(run.exitCode == 0, "\(run.stdout) \(run.stderr)")
            let stats = await emu.state.stats()
            #expect(stats.imagesByState == ["Ready": 1])
            #expect(stats.registrations == 1)
            #expect(stats.multipartInitiated == 1 && stats.multipartCompleted == 1)
            let parts = try #require(stats.partsByKey.values.first)
            #expect(parts.count == 12 && parts.values.allSatisfy { $0 == 1 }, "\(parts)")
            #expect(stats.bytesStored == 3_000_000)
            // 12 parts of >= 0.3 s with 2 s credentials renewed with a fifth left: about one
            // credential per 1.6 s, never one per part; a refusal is followed by one renewal.
            #expect(stats.stsIssued >= 2, "\(stats.stsIssued) credentials in \(seconds) s")
            #expect(stats.stsIssued <= Int(seconds / 1.6) + 2, "\(stats.stsIssued) credentials in \(seconds) s")
            #expect(stats.stsIssued < 12)
            #expect(stats.ossRefusals.values.reduce(0, +) <= stats.stsIssued, "\(stats.ossRefusals)")
            let manifest = try SyncEndToEndTests.manifest(tree)
            #expect(manifest.entries.first?.server?.state == .ready)
            #expect(manifest.entries.first?.server?.multipart == nil)
            print("fault matrix, 2 s STS: \(stats.stsIssued) credentials over 12 parts in "
                  + "\(String(format: "%.1f", seconds)) s, refusals \(stats.ossRefusals)")
        }
    }

    // MARK: Invalid

    /// The server's processing marks one image Invalid (`forceInvalid`): exit 75, the image named
    /// with the server's reason, Invalid and the reason recorded in the manifest, the rest Ready.
    @Test func theServerAnsweringInvalid() async throws {
        let tree = try SyncEndToEndTests.survey()
        defer { tree.remove() }
        var config = testEmulatorConfiguration()
        config.faults.forceInvalid = ["DJI_0020.JPG"]
        let reason = "forced Invalid by the emulator (forceInvalid)"
        try await withEmulator(config) { emu in
            let run = try await Self.alti(Self.sync(tree), Self.env(emu))
            #expect(run.exitCode == 75, "\(run.stdout) \(run.stderr)")
            // (One source: the summary names files by their full path.)
            #expect(run.stdout.contains("    Invalid: \(tree.path("flight2/DJI_0020.JPG")): \(reason)\n"), "\(run.stdout)")
            let stats = await emu.state.stats()
            #expect(stats.imagesByState == ["Ready": 23, "Invalid": 1])
            let manifest = try SyncEndToEndTests.manifest(tree)
            let invalid = try #require(manifest.entries.first { $0.path == "flight2/DJI_0020.JPG" }?.server)
            #expect(invalid.state == .invalid)
            #expect(invalid.errors == [reason])
            #expect(manifest.entries.filter { $0.server?.state == .ready }.count == 23)
            // Every Ready image stored once; the Invalid one at least once (how often a run sends
            // an image the server keeps refusing is the Invalid-loop part of issue 11).
            let invalidID = invalid.imageID
            #expect(stats.putsByImage.filter { $0.key != invalidID }.values.allSatisfy { $0 == 1 })
            #expect((stats.putsByImage[invalidID] ?? 0) >= 1)
            #expect(try ManifestSchema.errors([tree.path(".alti/manifest.json")]) == [])
        }
    }

    // MARK: Refusals before any upload

    /// ReadOnly system mode: the run stops before registering anything, says so on one line,
    /// exits 69, and keeps the scan's manifest (every image hashed, none registered).
    @Test func readOnlySystemModeStopsAtOnceAndKeepsTheScan() async throws {
        let tree = try SyncEndToEndTests.survey()
        defer { tree.remove() }
        var config = testEmulatorConfiguration()
        config.faults.systemMode = .readOnly
        try await withEmulator(config) { emu in
            let run = try await Self.alti(Self.sync(tree), Self.env(emu))
            #expect(run.exitCode == 69, "\(run.stdout) \(run.stderr)")
            #expect(run.stderr.split(separator: "\n").count == 1, "\(run.stderr)")
            // Not "offline": the server answered; it only takes no uploads for now.
            #expect(run.stderr == "alti: the server is in ReadOnly mode and accepts no uploads now; run again later; "
                    + "24 images (1.9 MB) still to send; or add --keep-trying to wait until it accepts uploads "
                    + "and resume in this run\n", "\(run.stderr)")
            let stats = await emu.state.stats()
            #expect(stats.registrations == 0)
            #expect(stats.count("uploadImageS3") == 0 && stats.count("startImageUpload") == 0)
            #expect(stats.puts == 0)
            let manifest = try SyncEndToEndTests.manifest(tree)
            #expect(manifest.entries.count == 24)
            #expect(manifest.entries.allSatisfy { $0.sha1?.count == 40 })
            #expect(manifest.entries.allSatisfy { $0.server?.imageID.isEmpty ?? true })
            #expect(!FileManager.default.fileExists(atPath: tree.path(".alti/manifest.json.journal")))
        }
    }

    /// A wrong token fails fast: exit 77, one line that names the token without echoing it, at
    /// most two GraphQL requests (nothing retried), nothing registered, the scan kept.
    @Test func aWrongTokenFailsFastWithNothingRetried() async throws {
        let tree = try SyncEndToEndTests.survey()
        defer { tree.remove() }
        try await withEmulator(testEmulatorConfiguration()) { emu in
            let wrong = "Wr0ngTokenWr0ngTokenWr0ng"
            // The default retry budget and backoff: a retried auth failure would show in the count.
            var env = Self.env(emu, ["ALTI_TOKEN": wrong])
            env["ALTI_RETRY_BASE_MS"] = nil
            let run = try await Self.alti(Self.sync(tree), env)
            #expect(run.exitCode == 77, "\(run.stdout) \(run.stderr)")
            #expect(run.stderr.split(separator: "\n").count == 1, "\(run.stderr)")
            #expect(run.stderr.contains("token"))
            #expect(!run.stderr.contains(wrong) && !run.stdout.contains(wrong))
            let stats = await emu.state.stats()
            #expect(stats.graphqlRequests >= 1 && stats.graphqlRequests <= 2, "\(stats.graphqlRequests)")
            print("fault matrix, wrong token: \(stats.graphqlRequests) GraphQL request(s)")
            #expect(stats.registrations == 0 && stats.puts == 0)
            let manifest = try SyncEndToEndTests.manifest(tree)
            #expect(manifest.entries.count == 24 && manifest.entries.allSatisfy { $0.sha1 != nil })
        }
    }

    /// A project id that does not exist: exit 67, one line naming it, nothing registered, the
    /// scan kept and the manifest bound to no project.
    @Test func aProjectThatDoesNotExist() async throws {
        let tree = try SyncEndToEndTests.survey()
        defer { tree.remove() }
        try await withEmulator(testEmulatorConfiguration()) { emu in
            let missing = "0123456789abcdef01234567"
            let run = try await Self.alti(["sync", tree.path, "--project", missing], Self.env(emu))
            #expect(run.exitCode == 67, "\(run.stdout) \(run.stderr)")
            #expect(run.stderr.split(separator: "\n").count == 1, "\(run.stderr)")
            #expect(run.stderr.contains(missing))
            let stats = await emu.state.stats()
            #expect(stats.registrations == 0 && stats.puts == 0 && stats.count("hasImage") == 0)
            let manifest = try SyncEndToEndTests.manifest(tree)
            #expect(manifest.entries.count == 24)
            #expect(manifest.remote.projectID.isEmpty)
        }
    }

    // MARK: The server going away

    /// The server goes away in the middle of the uploads (its state kept on disk). Without
    /// `--keep-trying` the run stops with 69 and what is left; the plain re-run against the
    /// server back on the same port finishes, and no image is stored twice (the emulator's
    /// per-image store count survives the restart).
    @Test func theServerGoingAwayMidRunThenARerunFinishes() async throws {
        let tree = try SyncEndToEndTests.survey()
        defer { tree.remove() }
        let data = try TempTree("fault-outage-data")
        defer { data.remove() }
        var config = testEmulatorConfiguration()
        config.dataDirectory = data.path
        config.faults.put.latencyMilliseconds = 150
        var port = 0
        var launched: (Process, Pipe, Pipe)?
        var storedBefore: [String: Int] = [:]
        try await withEmulator(config) { emu in
            port = emu.port
            launched = try SyncEndToEndTests.launch(Self.sync(tree, ["--transfers", "2"]), Self.env(emu))
            try await SyncEndToEndTests.waitForStoredPuts(4, emu)
            storedBefore = await emu.state.stats().putsByImage
        }  // the server goes away mid-run
        let (process, out, err) = try #require(launched)
        for _ in 0..<1200 where process.isRunning { try await Task.sleep(for: .milliseconds(50)) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
        let stdout = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(process.terminationStatus == 69, "\(stdout) \(stderr)")
        #expect(stderr.split(separator: "\n").count == 1, "\(stderr)")
        #expect(stderr.hasPrefix("alti: offline: cannot reach") && stderr.contains("still to send"), "\(stderr)")
        // What the stopped run learnt is in the manifest, no journal left.
        let recorded = Set(try SyncEndToEndTests.manifest(tree).entries.compactMap { $0.server?.imageID }.filter { !$0.isEmpty })
        #expect(Set(storedBefore.keys).isSubset(of: recorded))
        #expect(!FileManager.default.fileExists(atPath: tree.path(".alti/manifest.json.journal")))

        config.port = port
        config.faults = FaultSettings()
        try await withEmulator(config) { emu in
            let rerun = try await Self.alti(Self.sync(tree), Self.env(emu))
            #expect(rerun.exitCode == 0, "\(rerun.stdout) \(rerun.stderr)")
            let stats = await emu.state.stats()
            #expect(stats.imagesByState == ["Ready": 24])
            #expect(Set(storedBefore.keys).isDisjoint(with: stats.putsByImage.keys), "stored before the outage and again")
            #expect(stats.images.allSatisfy { $0.putCount == 1 }, "\(stats.images.map(\.putCount))")
            #expect(try SyncEndToEndTests.manifest(tree).entries.allSatisfy { $0.server?.state == .ready })
        }
    }

    /// The server is restarted with its images lost (same port, empty data): the next plain sync
    /// asks `hasImage` for the images the manifest holds as Ready, sends them all again and says
    /// how many the server had lost (`lostOnServer`); a later loss of 3 is named in the text.
    @Test func theServerRestartedWithItsImagesLost() async throws {
        let tree = try SyncEndToEndTests.survey()
        defer { tree.remove() }
        var config = testEmulatorConfiguration()
        var port = 0
        try await withEmulator(config) { emu in
            port = emu.port
            let first = try await Self.alti(Self.sync(tree), Self.env(emu))
            #expect(first.exitCode == 0, "\(first.stdout) \(first.stderr)")
        }
        config.port = port
        try await withEmulator(config) { emu in
            #expect(await emu.state.stats().images.isEmpty)
            let run = try await Self.alti(Self.sync(tree, ["--json"]), Self.env(emu))
            #expect(run.exitCode == 0, "\(run.stdout) \(run.stderr)")
            let report = try SyncEndToEndTests.json(run)
            #expect((report["lostOnServer"] as? [String])?.count == 24)
            try await Self.expectAllReadyStoredOnce(tree, emu, images: 24)
            #expect(await emu.state.stats().count("hasImage") == 24)

            let lost = Array(await emu.state.images(ofProject: Self.project).prefix(3))
            for image in lost { #expect(await emu.state.removeImage(id: image.id)) }
            let text = try await Self.alti(Self.sync(tree), Self.env(emu))
            #expect(text.exitCode == 0, "\(text.stdout) \(text.stderr)")
            #expect(text.stdout.contains("the server had lost 3 images the manifest held as Ready"), "\(text.stdout)")
            let stats = await emu.state.stats()
            #expect(stats.puts == 27)
            #expect(stats.imagesByState == ["Ready": 24])
        }
    }
}
