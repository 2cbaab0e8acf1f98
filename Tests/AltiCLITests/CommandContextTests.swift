@testable import AltiCLI
import AltiEmulator
import AltiTestSupport
import ArgumentParser
import Foundation
import Testing

@testable import AltiCore

/// Commands run in-process against a context: what they print, the exit code, and what they
/// asked of the world. A context whose server fails loudly proves the offline commands need none.
@Suite struct CommandContextTests {
    final class Captured: @unchecked Sendable {
        private let lock = NSLock()
        private var out = ""
        private var err = ""
        private(set) var connections = 0
        func writeOut(_ s: String) { lock.withLock { out += s } }
        func writeErr(_ s: String) { lock.withLock { err += s } }
        func connected() { lock.withLock { connections += 1 } }
        var stdout: String { lock.withLock { out } }
        var stderr: String { lock.withLock { err } }
    }

    static func context(_ env: [String: String], _ captured: Captured, offline: Bool = false) -> CommandContext {
        CommandContext(
            environment: Run.testDefaults.merging(env) { _, new in new }, standardOutput: { captured.writeOut($0) }, standardError: { captured.writeErr($0) },
            standardErrorIsTerminal: false,
            connect: { connection in
                captured.connected()
                if offline { throw AltiError(.software, "this command must not reach a server") }
                return try RemoteServices.live(connection)
            })
    }

    /// A real JPEG of the bundled sample survey.
    static func sample(_ n: Int) -> String {
        let flight = n <= 12 ? "flight1" : "flight2"
        return Run.packageRoot.appendingPathComponent("samples/sample-survey/\(flight)/DJI_\(String(format: "%04d", n)).JPG").path
    }

    static func run(_ args: [String], _ env: [String: String] = [:], offline: Bool = false) async -> (code: Int32, out: String, err: String, connections: Int) {
        let captured = Captured()
        let code = await AltiCommand.execute(args, context: context(env, captured, offline: offline))
        return (code, captured.stdout, captured.stderr, captured.connections)
    }

    @Test func scanRunsInProcessWithoutAServer() async throws {
        let tree = try TempTree("ctx-scan")
        defer { tree.remove() }
        try tree.copy(Self.sample(1), to: "a.jpg")
        let result = await Self.run(["scan", tree.path, "--format", "json"], offline: true)
        #expect(result.code == 0, "\(result.err)")
        #expect(result.connections == 0)
        let object = try JSONSerialization.jsonObject(with: Data(result.out.utf8)) as? [String: Any]
        let sources = try #require(object?["sources"] as? [[String: Any]])
        #expect(sources.first?["filesHashed"] as? Int == 1)
        #expect(FileManager.default.fileExists(atPath: tree.path(".alti/manifest.json")))
    }

    @Test func syncRunsInProcessAgainstTheEmulator() async throws {
        let tree = try TempTree("ctx-sync")
        defer { tree.remove() }
        for i in 1...5 { try tree.copy(Self.sample(i), to: "IMG_\(i).JPG") }
        try tree.ageAllFiles()
        try await withEmulator(testEmulatorConfiguration()) { emu in
            let env = ["ALTI_ENDPOINT": emu.baseURL, "ALTI_KEY": "alti-demo-key", "ALTI_TOKEN": "alti-demo-token",
                       "ALTI_RETRY_BASE_MS": "10", "XDG_CONFIG_HOME": "/nonexistent-alti-config"]
            let result = await Self.run(["sync", tree.path, "--project", ProjectSeed.sample.id, "--format", "json"], env)
            #expect(result.code == 0, "\(result.err)")
            #expect(result.connections == 1)
            let stats = await emu.state.stats()
            #expect(stats.putsByImage.count == 5)
            let report = try #require(try JSONSerialization.jsonObject(with: Data(result.out.utf8)) as? [String: Any])
            let requests = try #require(report["requests"] as? [String: Int])
            #expect(requests["put"] == 5)
            #expect(requests["graphql"] == stats.graphqlRequests)
            #expect((report["ready"] as? [String])?.count == 5)
            #expect(!result.out.contains("alti-demo-key") && !result.err.contains("alti-demo-token"))
        }
    }

    @Test func everyErrorKindMapsToItsDocumentedExitCode() {
        let table: [(AltiError.Kind, Int32)] = [
            (.usage, 64), (.dataError, 65), (.noInput, 66), (.notFound, 67), (.unavailable, 69), (.software, 70),
            (.cannotWrite, 73), (.ioError, 74), (.incomplete, 75), (.protocolError, 76), (.auth, 77), (.config, 78),
            (.interrupted, 130),
        ]
        for (kind, code) in table {
            let outcome = AltiCommand.outcome(of: AltiError(kind, "what happened"))
            #expect(outcome.code == code, "\(kind)")
            #expect(outcome.message == "alti: what happened")
        }
        #expect(AltiCommand.outcome(of: ExitCode(75)) == (75, nil))
        let validation = AltiCommand.outcome(of: ValidationError("--transfers must be between 1 and 64"))
        #expect(validation.code == 64)
        #expect(validation.message?.contains("--transfers must be between 1 and 64") == true)
    }

    @Test func syncOutcomesMapToExitCodes() {
        func summary(_ change: (inout SyncReport) -> Void, dryRun: Bool = false, waited: Bool = true) -> SyncSummary {
            var report = SyncReport()
            report.total = 2
            report.ready = ["a", "b"]
            change(&report)
            return SyncSummary(endpoint: "e", project: nil, cloud: "S3", bucket: "b", sources: [], manifests: [], report: report,
                               pathsBySHA1: [:], metrics: SyncMetrics.Snapshot(), dryRun: dryRun, waited: waited,
                               offlinePlan: false, seconds: 0)
        }
        #expect(SyncRenderer.exitCode(summary { _ in }) == nil)
        #expect(SyncRenderer.exitCode(summary { $0.phase = .interrupted }) == 130)
        #expect(SyncRenderer.exitCode(summary { $0.failed = ["b": "refused"] }) == 75)
        #expect(SyncRenderer.exitCode(summary { $0.invalid = ["b": ["bad"]] }) == 75)
        #expect(SyncRenderer.exitCode(summary { $0.processing = ["b"] }) == 75)
        #expect(SyncRenderer.exitCode(summary({ $0.processing = ["b"] }, waited: false)) == nil)
        #expect(SyncRenderer.exitCode(summary({ $0.notSent = ["b"] }, waited: false)) == 75)
        #expect(SyncRenderer.exitCode(summary({ $0.failed = ["b": "x"] }, dryRun: true)) == nil)
        #expect(SyncRenderer.exitCode(summary { $0.reconstruction = ReconstructionOutcome(errorCode: 3, errorMessage: "no") }) == 75)
    }
}
