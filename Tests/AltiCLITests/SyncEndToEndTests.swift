import AltiEmulator
import AltiTestSupport
import Foundation
import Testing

@testable import AltiCore

/// End-to-end: the built `alti` binary against an in-process emulator on a real socket.
/// Assertions are on what the emulator stored and counted, on the manifest and on exit codes.
@Suite(.serialized) struct SyncEndToEndTests {
    static let project = ProjectSeed.sample.id
    static let key = "alti-demo-key"
    static let token = "alti-demo-token"

    /// A copy of the bundled sample survey (24 real JPEGs), aged so the racy guard stays out of
    /// the way, optionally with `extra` more unique JPEGs (a sample with a distinct COM segment).
    static func survey(extra: Int = 0) throws -> TempTree {
        let tree = try TempTree("sync-e2e")
        let samples = Run.packageRoot.appendingPathComponent("samples/sample-survey")
        for flight in ["flight1", "flight2"] {
            for name in try FileManager.default.contentsOfDirectory(atPath: samples.appendingPathComponent(flight).path) {
                try tree.copy(samples.appendingPathComponent("\(flight)/\(name)").path, to: "\(flight)/\(name)")
            }
        }
        if extra > 0 {
            let base = [UInt8](try Data(contentsOf: samples.appendingPathComponent("flight1/DJI_0001.JPG")))
            for i in 0..<extra {
                let comment = Array("alti test image \(i)".utf8)
                let length = UInt16(comment.count + 2)
                let jpeg = [0xFF, 0xD8, 0xFF, 0xFE, UInt8(length >> 8), UInt8(length & 0xFF)] + comment + base.dropFirst(2)
                _ = try tree.write("extra/IMG_\(String(format: "%04d", i)).JPG", jpeg)
            }
        }
        try tree.ageAllFiles()
        return tree
    }

    static func env(_ emu: RunningEmulator, _ extra: [String: String] = [:]) -> [String: String] {
        ["ALTI_ENDPOINT": emu.baseURL, "ALTI_KEY": key, "ALTI_TOKEN": token, "ALTI_RETRY_BASE_MS": "10",
         "XDG_CONFIG_HOME": "/nonexistent-alti-config", "XDG_STATE_HOME": NSTemporaryDirectory()].merging(extra) { _, new in new }
    }

    static func alti(_ args: [String], _ env: [String: String]) async throws -> ProcessResult {
        try await runProcessOffPool(try Run.altiBinary().path, args, environment: env)
    }

    /// Starts the built alti without waiting for it (to signal it mid-run).
    static func launch(_ args: [String], _ env: [String: String]) throws -> (Process, Pipe, Pipe) {
        let process = Process()
        process.executableURL = try Run.altiBinary()
        process.arguments = args
        process.environment = Run.environment(env)
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        return (process, out, err)
    }

    /// Waits (at most ~12 s) until the emulator has stored `count` PUTs.
    static func waitForStoredPuts(_ count: Int, _ emu: RunningEmulator) async throws {
        for _ in 0..<600 {
            if await emu.state.stats().puts("ok") >= count { return }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw RunError("the emulator never stored \(count) PUTs")
    }

    static func json(_ result: ProcessResult) throws -> [String: Any] {
        let data = Data(result.stdout.utf8)
        guard let object = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw RunError("not a JSON object: \(result.stdout)\n\(result.stderr)")
        }
        return object
    }

    static func manifest(_ tree: TempTree) throws -> Manifest {
        try JSONDecoder().decode(Manifest.self, from: Data(contentsOf: tree.url(".alti/manifest.json")))
    }

    @Test func aSurveyEndsReadyWithOnePutEachAndARerunSendsNothing() async throws {
        let tree = try Self.survey(extra: 126)  // 150 images: two hasImage batches
        defer { tree.remove() }
        try await withEmulator(testEmulatorConfiguration()) { emu in
            let first = try await Self.alti(["sync", tree.path, "--project", String(Self.project.prefix(8)), "--json"], Self.env(emu))
            #expect(first.exitCode == 0, "\(first.stderr)")
            let stats = await emu.state.stats()
            #expect(stats.putsByImage.count == 150)
            #expect(stats.putsByImage.values.allSatisfy { $0 == 1 })
            // Every image was signalled with startImageUpload before its bytes (the upload guide).
            #expect(Set(stats.startsByImage.keys) == Set(stats.putsByImage.keys))
            #expect(stats.count("hasImage") == 150)
            #expect(stats.imagesByState["Ready"] == 150)
            let manifest = try Self.manifest(tree)
            #expect(manifest.remote.projectID == Self.project)
            #expect(manifest.remote.endpoint == emu.baseURL)
            let serverImages = await emu.state.images(ofProject: Self.project)
            for entry in manifest.entries {
                let server = try #require(entry.server, "\(entry.path) has no server facts")
                #expect(server.state == "Ready")
                let image = try #require(serverImages.first { $0.id == server.imageID })
                #expect(image.filename == server.filename)
                #expect(image.checksum == entry.sha1)
            }
            #expect(!FileManager.default.fileExists(atPath: tree.path(".alti/manifest.json.journal")))
            #expect(try ManifestSchema.errors([tree.path(".alti/manifest.json")]) == [])

            // The re-run: nothing hashed, registered or sent; at most ceil(N/100)+3 requests.
            let before = await emu.state.stats()
            let second = try await Self.alti(["sync", tree.path, "--project", Self.project, "--json"], Self.env(emu))
            #expect(second.exitCode == 0, "\(second.stderr)")
            let after = await emu.state.stats()
            #expect(after.puts == before.puts)
            #expect(after.registrations == before.registrations)
            #expect(after.graphqlRequests - before.graphqlRequests <= 2 + 3)
            // The server's truth: every image the manifest holds as Ready is checked again.
            #expect(after.count("hasImage") - before.count("hasImage") == 150)
            let report = try Self.json(second)
            #expect(report["filesHashed"] as? Int == 0)
            #expect((report["ready"] as? [String])?.count == 150)
            #expect((report["lostOnServer"] as? [String])?.isEmpty == true)

            // Five images deleted in the web app: the next plain sync notices and sends them again.
            let deleted = Array(serverImages.prefix(5))
            for image in deleted { #expect(await emu.state.removeImage(id: image.id)) }
            let third = try await Self.alti(["sync", tree.path, "--project", Self.project, "--json"], Self.env(emu))
            #expect(third.exitCode == 0, "\(third.stderr)")
            let final = await emu.state.stats()
            #expect(final.puts - after.puts == 5)
            #expect(final.imagesByState["Ready"] == 150)
            let lost = try Self.json(third)["lostOnServer"] as? [String]
            #expect(lost?.count == 5)
            let text = try await Self.alti(["sync", tree.path, "--project", Self.project], Self.env(emu))
            #expect(text.stdout.contains("the server had lost") == false)
        }
    }

    @Test func imagesFromAnotherClientAreSkippedInvalidOnesResentDuplicatesSentOnce() async throws {
        let tree = try Self.survey()
        defer { tree.remove() }
        // Another laptop already uploaded flight1.
        let other = try TempTree("sync-other")
        defer { other.remove() }
        for name in try FileManager.default.contentsOfDirectory(atPath: tree.path("flight1")) {
            try other.copy(tree.path("flight1/\(name)"), to: name)
        }
        try other.ageAllFiles()
        // A duplicate inside the survey.
        try tree.copy(tree.path("flight2/DJI_0013.JPG"), to: "copies/same-as-13.jpg")
        try tree.ageAllFiles()

        var config = testEmulatorConfiguration()
        config.faults.forceInvalid = ["DJI_0020.JPG"]
        try await withEmulator(config) { emu in
            let pre = try await Self.alti(["sync", other.path, "--project", Self.project], Self.env(emu))
            #expect(pre.exitCode == 0, "\(pre.stderr)")
            let flight1IDs = Set(await emu.state.stats().putsByImage.keys)
            #expect(flight1IDs.count == 12)

            let first = try await Self.alti(["sync", tree.path, "--project", Self.project, "--json"], Self.env(emu))
            #expect(first.exitCode == 75, "one image is Invalid: \(first.stdout) \(first.stderr)")
            var stats = await emu.state.stats()
            #expect(stats.putsByImage.count == 24)  // 12 earlier + 12 of flight2; the duplicate shares one
            #expect(flight1IDs.allSatisfy { stats.putsByImage[$0] == 1 })
            let report = try Self.json(first)
            let invalid = try #require(report["invalid"] as? [String: [String]])
            #expect(invalid.keys.map { ($0 as NSString).lastPathComponent } == ["DJI_0020.JPG"])
            #expect(invalid.values.first?.isEmpty == false)
            let manifest = try Self.manifest(tree)
            #expect(manifest.entries.first { $0.path == "flight2/DJI_0020.JPG" }?.server?.state == "Invalid")
            let duplicate = try #require(manifest.entries.first { $0.path == "copies/same-as-13.jpg" })
            #expect(duplicate.duplicateOf == "flight2/DJI_0013.JPG" || duplicate.server?.imageID
                == manifest.entries.first { $0.path == "flight2/DJI_0013.JPG" }?.server?.imageID)

            // The server stops refusing it: the next run sends the Invalid image again, only it.
            await emu.setFaults(FaultSettings())
            let invalidID = try #require(manifest.entries.first { $0.path == "flight2/DJI_0020.JPG" }?.server?.imageID)
            let putsBefore = stats.puts
            let second = try await Self.alti(["sync", tree.path, "--project", Self.project], Self.env(emu))
            #expect(second.exitCode == 0, "\(second.stdout) \(second.stderr)")
            stats = await emu.state.stats()
            #expect(stats.puts == putsBefore + 1)
            #expect(stats.putsByImage[invalidID] == 2)
            #expect(try Self.manifest(tree).entries.allSatisfy { $0.server?.state == "Ready" })
        }
    }

    @Test func twentyPercentFailuresStillEndReady() async throws {
        let tree = try Self.survey(extra: 26)
        defer { tree.remove() }
        var config = testEmulatorConfiguration()
        config.faults.graphql.failRate = 0.2
        config.faults.put.failRate = 0.2
        // A first sync of 50 images is only ~10 GraphQL requests, which a 20 % rate can miss
        // entirely (0.8^10 = 11 %): the first two of each class fail for certain.
        config.faults.graphql.failNext = 2
        config.faults.put.failNext = 2
        try await withEmulator(config) { emu in
            let result = try await Self.alti(["sync", tree.path, "--project", Self.project, "--json"], Self.env(emu))
            #expect(result.exitCode == 0, "\(result.stdout) \(result.stderr)")
            let stats = await emu.state.stats()
            #expect(stats.imagesByState["Ready"] == 50)
            #expect(stats.putsByImage.count == 50)
            #expect(stats.putsByImage.values.allSatisfy { $0 == 1 })
            #expect((stats.putsByOutcome["fault-503"] ?? 0) > 0)  // the faults really happened
            let report = try Self.json(result)
            #expect(((report["requests"] as? [String: Int])?["graphqlRetries"] ?? 0) > 0)
        }
    }

    @Test func shortLivedURLsAreRefreshedBeforeUseNotRetried() async throws {
        let tree = try Self.survey()
        defer { tree.remove() }
        var config = testEmulatorConfiguration()
        config.urlLifetime = 4  // margin 1 s (a quarter), 3x the PUT latency: headroom on a loaded machine
        config.faults.put.latencyMilliseconds = 300
        try await withEmulator(config) { emu in
            let result = try await Self.alti(["sync", tree.path, "--project", Self.project, "--jobs", "1", "--json"], Self.env(emu))
            #expect(result.exitCode == 0, "\(result.stdout) \(result.stderr)")
            let stats = await emu.state.stats()
            #expect(stats.imagesByState["Ready"] == 24)
            #expect(stats.putsByOutcome["AccessDenied"] == nil, "a stale URL was used: \(stats.putsByOutcome)")
            #expect(stats.putsByImage.values.allSatisfy { $0 == 1 })
            let report = try Self.json(result)
            #expect(((report["requests"] as? [String: Int])?["urlRefreshes"] ?? 0) > 0)
        }
    }

    @Test func killedMidUploadResumesWithoutResendingAndLeaksNoSecret() async throws {
        let tree = try Self.survey()
        defer { tree.remove() }
        var config = testEmulatorConfiguration()
        config.faults.put.latencyMilliseconds = 250
        try await withEmulator(config) { emu in
            let (process, out, err) = try Self.launch(["sync", tree.path, "--project", Self.project, "--jobs", "2"], Self.env(emu))
            try await Self.waitForStoredPuts(6, emu)
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            #expect(process.terminationReason == .uncaughtSignal)

            let journalPath = tree.path(".alti/manifest.json.journal")
            let journalText = (try? String(contentsOfFile: journalPath, encoding: .utf8)) ?? ""
            let recorded = try SyncJournal.read(path: journalPath).filter { $0.kind == .stored }.compactMap(\.imageID)
            #expect(recorded.count >= 1, "the killed run journaled its completed PUTs")
            // Its first line binds it to the manifest's endpoint and project.
            let header = try SyncJournal.contents(path: journalPath).header
            #expect(header?.projectID == Self.project && header?.endpoint == emu.baseURL)
            #expect(header?.manifest == tree.path(".alti/manifest.json"))
            _ = try Self.manifest(tree)  // still parses

            await emu.setFaults(FaultSettings())
            let rerun = try await Self.alti(["sync", tree.path, "--project", Self.project], Self.env(emu))
            #expect(rerun.exitCode == 0, "\(rerun.stdout) \(rerun.stderr)")
            let stats = await emu.state.stats()
            #expect(stats.imagesByState["Ready"] == 24)
            #expect(stats.putsByImage.count == 24)
            // A PUT in flight when the process died may still land on the server after the re-run
            // asked hasImage, so that one image can arrive twice; a PUT that completed AND was
            // recorded is never sent again.
            for id in recorded { #expect(stats.putsByImage[id] == 1, "recorded image \(id) was sent again") }
            #expect(stats.putsByImage.values.allSatisfy { $0 <= 2 })
            #expect(stats.putsByImage.values.filter { $0 == 2 }.count <= 2, "only in-flight PUTs (jobs 2) may repeat")

            // Secrets: nowhere in what alti wrote or printed.
            let manifestText = try String(contentsOfFile: tree.path(".alti/manifest.json"), encoding: .utf8)
            let killedOutput = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
                + String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            for text in [rerun.stdout, rerun.stderr, manifestText, journalText, killedOutput] {
                for secret in [Self.key, Self.token, "X-Amz-Signature", "X-Amz-Credential", "Signature="] {
                    #expect(!text.contains(secret), "\(secret) leaked")
                }
            }
        }
    }

    @Test func ctrlCStopsCleanlySavesProgressAndSaysWhatIsLeft() async throws {
        let tree = try Self.survey()
        defer { tree.remove() }
        var config = testEmulatorConfiguration()
        config.faults.put.latencyMilliseconds = 300
        try await withEmulator(config) { emu in
            let (process, out, err) = try Self.launch(["sync", tree.path, "--project", Self.project, "--jobs", "1"], Self.env(emu))
            try await Self.waitForStoredPuts(3, emu)
            kill(process.processIdentifier, SIGINT)
            let stdout = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            process.waitUntilExit()
            #expect(process.terminationStatus == 130, "\(stdout) \(stderr)")
            #expect(stdout.contains("Interrupted"), "\(stdout)")
            #expect(stdout.contains("run the same command again"))
            // The progress is in the manifest (folded), not left in a journal.
            let manifest = try Self.manifest(tree)
            let stored = await emu.state.stats().putsByImage.keys
            let recorded = Set(manifest.entries.compactMap { $0.server?.imageID }.filter { !$0.isEmpty })
            #expect(stored.allSatisfy { recorded.contains($0) }, "every image the store has is recorded")
            #expect(stored.count < 24)
            #expect(!FileManager.default.fileExists(atPath: tree.path(".alti/manifest.json.journal")))

            await emu.setFaults(FaultSettings())
            let rerun = try await Self.alti(["sync", tree.path, "--project", Self.project], Self.env(emu))
            #expect(rerun.exitCode == 0, "\(rerun.stdout) \(rerun.stderr)")
            #expect(await emu.state.stats().putsByImage.values.allSatisfy { $0 == 1 })
        }
    }

    @Test func noWaitThenStartReconstructionOnceAllAreReady() async throws {
        let tree = try Self.survey()
        defer { tree.remove() }
        try await withEmulator(testEmulatorConfiguration(processingDelay: 1.5)) { emu in
            // --no-wait: uploaded and exit 0 while the server still verifies; nothing polled.
            let quick = try await Self.alti(["sync", tree.path, "--project", Self.project, "--no-wait", "--json"], Self.env(emu))
            #expect(quick.exitCode == 0, "\(quick.stdout) \(quick.stderr)")
            let report = try Self.json(quick)
            #expect((report["processing"] as? [String])?.count == 24)
            #expect(await emu.state.stats().count("image") == 0)
            #expect(try Self.manifest(tree).entries.allSatisfy { $0.server?.state == "Uploaded" })

            // The next run waits for the processing it finds and then starts the reconstruction.
            let start = try await Self.alti(["sync", tree.path, "--project", Self.project, "--start-reconstruction", "--json"], Self.env(emu))
            #expect(start.exitCode == 0, "\(start.stdout) \(start.stderr)")
            let started = try Self.json(start)
            #expect((started["ready"] as? [String])?.count == 24)
            #expect((started["reconstruction"] as? [String: String])?["taskID"]?.isEmpty == false)
            let stats = await emu.state.stats()
            #expect(stats.count("startReconstructionWithError") == 1)
            #expect(stats.puts == 24)

            // Re-running the same command (a dropped link, a second try) starts nothing more: the
            // project's task is checked first. --start-anyway likewise.
            let again = try await Self.alti(["sync", tree.path, "--project", Self.project, "--start-reconstruction", "--json"], Self.env(emu))
            #expect(again.exitCode == 0, "\(again.stdout) \(again.stderr)")
            let underway = try #require(try Self.json(again)["reconstruction"] as? [String: String])
            #expect(underway["alreadyUnderway"] == "true")
            let anyway = try await Self.alti(["sync", tree.path, "--project", Self.project, "--start-anyway"], Self.env(emu))
            #expect(anyway.exitCode == 0, "\(anyway.stdout) \(anyway.stderr)")
            #expect(anyway.stdout.contains("reconstruction already started earlier"))
            let after = await emu.state.stats()
            #expect(after.count("startReconstructionWithError") == 1)
            #expect(after.count("preStartReconstruction") == 0)
            #expect(after.tasks.count == 1)
        }
    }

    @Test func aFailedSyncBindsTheManifestSoAnotherProjectIsRefused() async throws {
        let tree = try Self.survey()
        defer { tree.remove() }
        let other = "bbbbbbbbbbbbbbbbbbbbbbbb"
        var config = testEmulatorConfiguration()
        config.projects.append(ProjectSeed(id: other, name: "B"))
        config.faults.systemMode = .readOnly
        try await withEmulator(config) { emu in
            // hasImage answers, then the read-only server refuses uploads: exit 69 after answers
            // were journaled.
            let refused = try await Self.alti(["sync", tree.path, "--project", Self.project], Self.env(emu))
            #expect(refused.exitCode == 69, "\(refused.stderr)")
            #expect(refused.stderr.contains("ReadOnly"))
            let manifest = try Self.manifest(tree)
            #expect(manifest.remote.projectID == Self.project)
            #expect(manifest.entries.allSatisfy { $0.server?.state == "Absent" })
            #expect(!FileManager.default.fileExists(atPath: tree.path(".alti/manifest.json.journal")))

            await emu.setFaults(FaultSettings())
            let elsewhere = try await Self.alti(["sync", tree.path, "--project", other], Self.env(emu))
            #expect(elsewhere.exitCode == 67, "\(elsewhere.stdout) \(elsewhere.stderr)")
            #expect(elsewhere.stderr.contains(Self.project))
            #expect(await emu.state.stats().puts == 0)
        }
    }

    @Test func aTornJournalFragmentFromACrashDoesNotBreakLaterSyncs() async throws {
        let tree = try Self.survey()
        defer { tree.remove() }
        try await withEmulator(testEmulatorConfiguration()) { emu in
            let scan = try await Self.alti(["scan", tree.path], Self.env(emu))
            #expect(scan.exitCode == 0)
            _ = try tree.write(".alti/manifest.json.journal", #"{"at":"2026-11-25T00:00:00.000Z","kind":"sta"#)
            for _ in 0..<2 {
                let run = try await Self.alti(["sync", tree.path, "--project", Self.project], Self.env(emu))
                #expect(run.exitCode == 0, "\(run.stdout) \(run.stderr)")
            }
            #expect(try Self.manifest(tree).entries.allSatisfy { $0.server?.state == "Ready" })
            #expect(await emu.state.stats().putsByImage.count == 24)
        }
    }

    @Test func ctrlCAbandonsAHungRegistrationAndSendsNothingAfter() async throws {
        let tree = try Self.survey()
        defer { tree.remove() }
        var config = testEmulatorConfiguration()
        config.faults.put.latencyMilliseconds = 150
        try await withEmulator(config) { emu in
            let (process, out, _) = try Self.launch(
                ["sync", tree.path, "--project", Self.project, "--jobs", "1"], Self.env(emu, ["ALTI_LOW_SPEED_TIME": "60"]))
            try await Self.waitForStoredPuts(2, emu)
            // Every GraphQL request from now on hangs (the next window's registration, the polls).
            await emu.updateFaults { $0.graphql.hangRate = 1; $0.graphql.hangSeconds = 120 }
            try await Task.sleep(for: .milliseconds(2500))
            let logBefore = await emu.state.requestLog().filter { $0.requestClass == "graphql" }.count
            kill(process.processIdentifier, SIGINT)
            // A guard against hanging, not a speed limit: the hung request would hold a client
            // that ignores Ctrl-C for 60 s (its low-speed limit here) or 120 s (the hang).
            var exited = false
            for _ in 0..<1500 where !exited {
                try await Task.sleep(for: .milliseconds(20))
                exited = !process.isRunning
            }
            if !exited { kill(process.processIdentifier, SIGKILL) }
            #expect(exited, "alti did not stop within 30 s of Ctrl-C")
            process.waitUntilExit()
            #expect(process.terminationStatus == 130)
            let stdout = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            #expect(stdout.contains("Interrupted"), "\(stdout)")
            let logAfter = await emu.state.requestLog().filter { $0.requestClass == "graphql" }.count
            #expect(logAfter == logBefore, "requests were sent after Ctrl-C")
        }
    }

    @Test func badInputsGiveOneLineAndTheirExitCode() async throws {
        let tree = try Self.survey()
        defer { tree.remove() }
        try await withEmulator(testEmulatorConfiguration()) { emu in
            let badToken = try await Self.alti(["sync", tree.path, "--project", Self.project], Self.env(emu, ["ALTI_TOKEN": "wrong"]))
            #expect(badToken.exitCode == 77)
            #expect(badToken.stderr.contains("token"))
            #expect(!badToken.stderr.contains("wrong"))

            let noProject = try await Self.alti(["sync", tree.path, "--project", "ffffffffffffffffffffffff"], Self.env(emu))
            #expect(noProject.exitCode == 67)
            #expect(noProject.stderr.contains("ffffffffffffffffffffffff"))

            let missing = try await Self.alti(["sync", tree.path("nope"), "--project", Self.project], Self.env(emu))
            #expect(missing.exitCode == 66)

            // Nothing listens on port 9 of loopback: offline, exit 69 (within three quick tries, the
            // default budget kept), one line with what is left, and the scan is kept.
            let offline = try await Self.alti(["sync", tree.path, "--project", Self.project],
                                              Self.env(emu, ["ALTI_ENDPOINT": "http://127.0.0.1:9"]))
            #expect(offline.exitCode == 69, "\(offline.stderr)")
            #expect(offline.stderr.split(separator: "\n").count == 1)
            #expect(offline.stderr.hasPrefix("alti: offline: cannot reach http://127.0.0.1:9"), "\(offline.stderr)")
            #expect(offline.stderr.contains("; 24 images (") && offline.stderr.contains(" still to send: run alti sync again when online"),
                    "\(offline.stderr)")
            // --json prints an object even when the run stops early.
            let offlineJSON = try await Self.alti(["sync", tree.path, "--project", Self.project, "--json"],
                                                  Self.env(emu, ["ALTI_ENDPOINT": "http://127.0.0.1:9"]))
            #expect(offlineJSON.exitCode == 69)
            let failure = try Self.json(offlineJSON)
            #expect(failure["phase"] as? String == "failed" && failure["exitCode"] as? Int == 69)
            #expect((failure["error"] as? String)?.hasPrefix("offline: cannot reach") == true)
            #expect(try Self.manifest(tree).entries.count == 24)

            // A corrupt manifest is refused and left as it was.
            let garbage = Array("{\"schemaVersion\": 1, \"entries\": [".utf8)
            _ = try tree.write(".alti/manifest.json", garbage)
            let corrupt = try await Self.alti(["sync", tree.path, "--project", Self.project], Self.env(emu))
            #expect(corrupt.exitCode == 65)
            #expect(corrupt.stderr.contains("manifest.json"))
            #expect(try tree.read(".alti/manifest.json") == garbage)
            #expect(await emu.state.stats().puts == 0)
        }
    }

    /// `--keep-trying`: the server goes away in the middle of the uploads and comes back (its
    /// state kept on disk); the same run waits, probes, resumes and ends with every image Ready,
    /// nothing stored twice. Without it the run stops as offline (the test above).
    @Test func keepTryingFinishesOneRunAcrossAServerOutage() async throws {
        let tree = try Self.survey()
        defer { tree.remove() }
        let data = try TempTree("keep-trying-data")
        defer { data.remove() }
        var config = testEmulatorConfiguration()
        config.dataDirectory = data.path
        config.faults.put.latencyMilliseconds = 150
        var port = 0
        var launched: (Process, Pipe, Pipe)?
        var storedBefore: [String: Int] = [:]
        try await withEmulator(config) { emu in
            port = emu.port
            launched = try Self.launch(["sync", tree.path, "--project", Self.project, "--keep-trying=5m", "--transfers", "2"],
                                       Self.env(emu, ["ALTI_KEEP_TRYING_BASE_MS": "1000"]))
            try await Self.waitForStoredPuts(4, emu)
            storedBefore = await emu.state.stats().putsByImage
        }  // the server goes away mid-run
        let (process, _, err) = try #require(launched)
        // A minute without a server (the issue's "outage of a minute"): waits of 1, 2, 4, 8, 8, ...
        // seconds (with these test timings; 5 s up to 5 min by default), one cheap probe after each.
        try await Task.sleep(for: .seconds(60))
        #expect(process.isRunning, "alti gave up while the server was away")
        config.port = port
        config.faults = FaultSettings()
        try await withEmulator(config) { emu in
            for _ in 0..<600 where process.isRunning { try await Task.sleep(for: .milliseconds(100)) }
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
            process.waitUntilExit()
            let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            #expect(process.terminationStatus == 0, "\(stderr)")
            #expect(stderr.contains("waiting for the link (offline: cannot reach"), "\(stderr)")
            // Patient but not busy: one line and one probe per wait, a handful over the minute.
            let waits = stderr.components(separatedBy: "waiting for the link").count - 1
            #expect((5...30).contains(waits), "\(waits) waits: \(stderr)")
            let stats = await emu.state.stats()
            #expect(stats.imagesByState["Ready"] == 24)
            // Stored before the outage or after it, never both.
            #expect(Set(storedBefore.keys).isDisjoint(with: stats.putsByImage.keys))
            #expect(stats.putsByImage.values.allSatisfy { $0 == 1 })
            #expect(try Self.manifest(tree).entries.allSatisfy { $0.server?.state == .ready })
        }
    }

    @Test func dryRunChangesNothingAndWorksOffline() async throws {
        let tree = try Self.survey()
        defer { tree.remove() }
        try await withEmulator(testEmulatorConfiguration()) { emu in
            let plan = try await Self.alti(["sync", tree.path, "--project", Self.project, "--dry-run", "--json"], Self.env(emu))
            #expect(plan.exitCode == 0, "\(plan.stderr)")
            let report = try Self.json(plan)
            #expect((report["toSend"] as? [String])?.count == 24)
            let stats = await emu.state.stats()
            #expect(stats.registrations == 0)
            #expect(stats.puts == 0)
            #expect(stats.count("uploadImageS3") == 0)

            let offline = try await Self.alti(["sync", tree.path, "--project", Self.project, "--dry-run"],
                                              Self.env(emu, ["ALTI_ENDPOINT": "http://127.0.0.1:9", "ALTI_RETRY_ATTEMPTS": "1"]))
            #expect(offline.exitCode == 0, "\(offline.stderr)")
            #expect(offline.stdout.contains("offline"))
            #expect(offline.stdout.contains("to send: 24 images"))
        }
    }
}
