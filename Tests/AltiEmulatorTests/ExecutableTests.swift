import AltiTestSupport
import Foundation
import Testing

/// The built `alti-emulator` binary: next to the test bundle, else `.build/debug`.
func emulatorBinary() throws -> String {
    var candidates: [String] = []
    if let exe = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
        var dir = URL(fileURLWithPath: exe).deletingLastPathComponent()
        if dir.pathExtension == "xctest" { dir = dir.deletingLastPathComponent() }
        candidates.append(dir.appendingPathComponent("alti-emulator").path)
    }
    candidates.append(Run.packageRoot.appendingPathComponent(".build/debug/alti-emulator").path)
    guard let found = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
        throw TestFailure("alti-emulator is not built (looked at \(candidates)); run `swift build` first")
    }
    return found
}

@Suite("alti-emulator executable")
struct ExecutableTests {
    @Test func helpDocumentsEveryFlag() async throws {
        let result = try await runProcessOffPool(try emulatorBinary(), ["--help"])
        #expect(result.exitCode == 0)
        for flag in ["--port", "--port-file", "--key", "--token", "--project", "--data", "--processing-delay",
                     "--url-lifetime", "--sts-lifetime", "--pending-timeout", "--reconstruction-phase",
                     "--oss-bucket", "--log-requests",
                     "--graphql-latency", "--put-latency", "--graphql-fail-rate", "--put-fail-rate", "--fail-status",
                     "--graphql-reset-rate", "--put-reset-rate", "--put-trickle-rate", "--trickle-bytes-per-second",
                     "--graphql-hang-rate", "--put-hang-rate", "--hang-seconds", "--force-invalid", "--read-only",
                     "--bandwidth"] {
            #expect(result.stdout.contains(flag), "--help does not mention \(flag)")
        }
    }

    @Test func badFlagsAreUsageErrors() async throws {
        let result = try await runProcessOffPool(try emulatorBinary(), ["--project", "not-an-id"])
        #expect(result.exitCode == 64)
        #expect(result.stderr.contains("24-hex-character"))
        let rate = try await runProcessOffPool(try emulatorBinary(), ["--bandwidth", "fast"])
        #expect(rate.exitCode == 64)
        #expect(rate.stderr.contains("--bandwidth fast is not a rate"), "\(rate.stderr)")
    }

    @Test func listensPrintsURLWritesPortFileAndStopsOnSIGTERM() async throws {
        let tree = try TempTree("emu-exe")
        let portFile = tree.path("port")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try emulatorBinary())
        process.arguments = ["--port", "0", "--port-file", portFile, "--project", "cccccccccccccccccccccccc=Extra"]
        let out = Pipe()
        process.standardOutput = out
        process.standardError = FileHandle.nullDevice
        try process.run()
        defer { if process.isRunning { process.terminate() } }
        let line: String = try await withCheckedThrowingContinuation { continuation in
            Thread {
                var data = Data()
                while !data.contains(10) {
                    let chunk = out.fileHandleForReading.availableData
                    if chunk.isEmpty { break }
                    data.append(chunk)
                }
                continuation.resume(returning: String(decoding: data, as: UTF8.self))
            }.start()
        }
        let port = try #require(Int(try String(contentsOfFile: portFile, encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines)))
        #expect(line == "alti-emulator listening on http://127.0.0.1:\(port)\n")
        let r = try await RawHTTP.graphQL(port: port, query: #"{ search { projectID(id: "cccc", limit: 1) { name } } }"#)
        #expect(r.data("search", "projectID", "0", "name") as? String == "Extra")
        process.terminate()  // SIGTERM
        let status: Int32 = try await withCheckedThrowingContinuation { continuation in
            Thread {
                process.waitUntilExit()
                continuation.resume(returning: process.terminationStatus)
            }.start()
        }
        #expect(status == 0)
        #expect(process.terminationReason == .exit)
    }
}
