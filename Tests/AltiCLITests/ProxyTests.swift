import AltiEmulator
import AltiTestSupport
import Foundation
import Testing

@testable import AltiCore

/// `HTTP_PROXY`/`HTTPS_PROXY`/`ALL_PROXY`/`NO_PROXY`: a real forwarding proxy
/// (`scripts/forwarding-proxy.py`, standard-library Python) between `alti` and the emulator, and
/// its log of requests compared with what the emulator received.
@Suite(.serialized) struct ProxyTests {
    /// Runs a sync of the sample through `proxyEnvironment` and checks that every request the
    /// emulator answered (GraphQL POSTs and storage PUTs) is in the proxy's log, and nothing else.
    private func syncGoesThroughTheProxy(_ proxy: ForwardingProxy, cloud: String, _ proxyEnvironment: [String: String]) async throws {
        let tree = try SyncEndToEndTests.survey()
        defer { tree.remove() }
        let before = try proxy.requests().count
        try await withEmulator(testEmulatorConfiguration()) { emu in
            let run = try await SyncEndToEndTests.alti(
                ["sync", tree.path, "--project", SyncEndToEndTests.project, "--cloud", cloud, "--no-wait"],
                SyncEndToEndTests.env(emu, proxyEnvironment))
            #expect(run.exitCode == 0, "\(run.stderr)")
            let stats = await emu.state.stats()
            #expect(stats.putsByImage.count == 24 && stats.putsByImage.values.allSatisfy { $0 == 1 })
            let logged = Array(try proxy.requests().dropFirst(before))
            let graphql = logged.filter { $0 == "POST \(emu.baseURL)/graphql" }.count
            let puts = logged.filter { $0.hasPrefix("PUT \(emu.baseURL)/") }.count
            #expect(graphql == stats.graphqlRequests && graphql > 0, "\(logged)")
            #expect(puts == stats.puts && puts >= 24, "\(logged)")
            #expect(logged.count == graphql + puts, "\(logged)")
            // The proxy logs URLs without their query: nothing signed leaks into this test's log
            // either way, but the request lines it received did carry the signature.
            #expect(!logged.contains { $0.contains("?") })
        }
    }

    /// Upper-case HTTP_PROXY (libcurl alone ignores it; alti honours it), S3 pre-signed PUTs.
    @Test func theAPIAndS3UploadsGoThroughHTTPProxy() async throws {
        let proxy = try await ForwardingProxy()
        defer { proxy.stop() }
        try await syncGoesThroughTheProxy(proxy, cloud: "s3", ["HTTP_PROXY": proxy.url])
    }

    /// Lower-case all_proxy as the only setting, OSS signed PUTs.
    @Test func theAPIAndOSSUploadsGoThroughALLPROXY() async throws {
        let proxy = try await ForwardingProxy()
        defer { proxy.stop() }
        try await syncGoesThroughTheProxy(proxy, cloud: "oss", ["all_proxy": proxy.url])
    }

    /// A proxy that is not there: the run stops as offline (69) with the proxy named (without its
    /// password) as the thing to check, and nothing was sent.
    @Test func aDeadProxyIsNamedAsTheProblem() async throws {
        let tree = try SyncEndToEndTests.survey()
        defer { tree.remove() }
        try await withEmulator(testEmulatorConfiguration()) { emu in
            // Port 1 on loopback: nothing listens there.
            let run = try await SyncEndToEndTests.alti(
                ["sync", tree.path, "--project", SyncEndToEndTests.project, "--no-wait"],
                SyncEndToEndTests.env(emu, ["HTTP_PROXY": "http://surveyor:pr0xy-s3cret@127.0.0.1:1"]))
            #expect(run.exitCode == 69)
            #expect(run.stderr.contains("the proxy http://127.0.0.1:1 from HTTP_PROXY"), "\(run.stderr)")
            #expect(!run.stderr.contains("pr0xy-s3cret") && !run.stdout.contains("pr0xy-s3cret"))
            #expect(run.stderr.split(separator: "\n").count == 1, "\(run.stderr)")
            let stats = await emu.state.stats()
            #expect(stats.graphqlRequests == 0 && stats.puts == 0)
        }
    }

    /// NO_PROXY naming the emulator's host: straight there, the proxy sees nothing.
    @Test func noProxyBypassesTheProxy() async throws {
        let proxy = try await ForwardingProxy()
        defer { proxy.stop() }
        let tree = try SyncEndToEndTests.survey()
        defer { tree.remove() }
        try await withEmulator(testEmulatorConfiguration()) { emu in
            let run = try await SyncEndToEndTests.alti(
                ["sync", tree.path, "--project", SyncEndToEndTests.project, "--no-wait"],
                SyncEndToEndTests.env(emu, ["HTTP_PROXY": proxy.url, "NO_PROXY": "localhost,127.0.0.1"]))
            #expect(run.exitCode == 0, "\(run.stderr)")
            #expect(await emu.state.stats().putsByImage.count == 24)
            #expect(try proxy.requests().isEmpty)
        }
    }
}

/// A running forwarding proxy and the file it logs each request to.
final class ForwardingProxy {
    let process = Process()
    let folder: String
    let port: Int

    /// Starts the proxy and waits (at most 10 s) for the port file it writes once it listens.
    init() async throws {
        folder = NSTemporaryDirectory() + "alti-proxy-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [TestPython.interpreter, Run.packageRoot.appendingPathComponent("scripts/forwarding-proxy.py").path,
                             "--log", folder + "/requests.log", "--port-file", folder + "/port"]
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        var port: Int?
        for _ in 0..<200 where port == nil {
            port = (try? String(contentsOfFile: folder + "/port", encoding: .utf8)).flatMap { Int($0) }
            if port == nil {
                guard process.isRunning else { throw RunError("the forwarding proxy exited before listening") }
                try await Task.sleep(for: .milliseconds(50))
            }
        }
        guard let port else { throw RunError("the forwarding proxy did not listen within 10 s") }
        self.port = port
    }

    var url: String { "http://127.0.0.1:\(port)" }

    /// The logged requests, `METHOD URL-without-query` each.
    func requests() throws -> [String] {
        let text = (try? String(contentsOfFile: folder + "/requests.log", encoding: .utf8)) ?? ""
        return text.split(separator: "\n").map(String.init)
    }

    func stop() {
        // SIGKILL, not `terminate()`: the child inherits the test runner's blocked signal mask
        // (libdispatch blocks SIGTERM in its threads), so a SIGTERM would wait forever.
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        try? FileManager.default.removeItem(atPath: folder)
    }
}
