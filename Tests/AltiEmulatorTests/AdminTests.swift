import AltiEmulator
import AltiTestSupport
import Foundation
import Testing

@Suite("Admin endpoints and inspection")
struct AdminTests {
    @Test func faultsOverHTTP() async throws {
        try await withEmulator(testEmulatorConfiguration()) { emu in
            let set = try await RawHTTP.send(port: emu.port, method: "POST", target: "/_emulator/faults",
                                             headers: [("Content-Type", "application/json")],
                                             body: Array(#"{"put":{"failNext":1,"failStatus":500},"systemMode":"ReadOnly"}"#.utf8))
            #expect(set.status == 200)
            let faults = await emu.state.faults
            #expect(faults.put.failNext == 1)
            #expect(faults.put.failStatus == 500)
            #expect(faults.systemMode == .readOnly)
            #expect(faults.graphql == RequestFaults())
            let bad = try await RawHTTP.send(port: emu.port, method: "POST", target: "/_emulator/faults",
                                             body: Array(#"{"graphql":{"failRate":2}}"#.utf8))
            #expect(bad.status == 400)
            #expect(bad.text.contains("graphql.failRate"))
            let get = try await RawHTTP.send(port: emu.port, method: "GET", target: "/_emulator/faults")
            #expect((get.json?["systemMode"] as? String) == "ReadOnly")
        }
    }

    @Test func statsRequestLogAndReset() async throws {
        try await withEmulator(testEmulatorConfiguration()) { emu in
            let bytes = jpegBytes("admin")
            let reg = try await registerS3(emu, name: "a.jpg", checksum: sha1(bytes))
            try await startUpload(emu, reg.imageID)
            #expect(try await putS3(emu, reg, bytes).status == 200)
            _ = try await waitForFinalState(emu, reg.imageID)

            let stats = try await RawHTTP.send(port: emu.port, method: "GET", target: "/_emulator/stats")
            #expect(stats.status == 200)
            let json = try #require(stats.json)
            #expect((json["putsByImage"] as? [String: Int])?[reg.imageID] == 1)
            #expect((json["graphqlFields"] as? [String: Int])?["uploadImageS3"] == 1)
            #expect((json["imagesByState"] as? [String: Int])?["Ready"] == 1)
            #expect(json["bytesStored"] as? Int == bytes.count)

            let log = try await RawHTTP.send(port: emu.port, method: "GET", target: "/_emulator/requests")
            let entries = try #require((try? JSONSerialization.jsonObject(with: Data(log.body))) as? [[String: Any]])
            #expect(entries.first?["graphqlFields"] as? [String] == ["uploadImageS3"])
            let put = try #require(entries.first { $0["requestClass"] as? String == "put" })
            #expect(put["path"] as? String == "/s3/alti-emu-s3-hongkong/\(samplePID)/\(reg.filename)")
            #expect(put["outcome"] as? String == "ok")
            #expect(put["imageID"] as? String == reg.imageID)
            // No secrets and no query strings in the log.
            for secret in ["alti-demo-key", "alti-demo-token", "X-Amz-Signature", "?"] {
                #expect(!log.text.contains(secret))
            }

            let reset = try await RawHTTP.send(port: emu.port, method: "POST", target: "/_emulator/reset")
            #expect(reset.status == 200)
            let after = await emu.stats()
            #expect(after.images.isEmpty && after.graphqlRequests == 0 && after.puts == 0)
            #expect(await emu.requestLog().isEmpty)
            #expect(await emu.state.project(samplePID) != nil)
        }
    }

    /// An image deleted as in the web app: hasImage answers null, its object is gone, the id is unknown.
    @Test func removeAnImage() async throws {
        try await withEmulator(testEmulatorConfiguration()) { emu in
            let bytes = jpegBytes("removed")
            let reg = try await registerS3(emu, name: "gone.jpg", checksum: sha1(bytes))
            try await startUpload(emu, reg.imageID)
            #expect(try await putS3(emu, reg, bytes).status == 200)
            #expect(try await waitForFinalState(emu, reg.imageID).0 == "Ready")
            let objectPath = "/_emulator/objects/s3/alti-emu-s3-hongkong/\(samplePID)/\(reg.filename)"
            #expect(try await RawHTTP.send(port: emu.port, method: "GET", target: objectPath).status == 200)

            let removed = try await RawHTTP.send(port: emu.port, method: "DELETE", target: "/_emulator/images/\(reg.imageID)")
            #expect(removed.status == 200)
            #expect(removed.json?["removed"] as? String == reg.imageID)
            let has = try await gql(emu, "mutation hasImage($p: ID!, $c: String!) { hasImage(pid: $p, checksum: $c) { id state } }",
                                    ["p": samplePID, "c": sha1(bytes)])
            #expect(has.status == 200)
            #expect((has.json?["data"] as? [String: Any])?["hasImage"] is NSNull, "\(has.text)")
            #expect(try await RawHTTP.send(port: emu.port, method: "GET", target: objectPath).status == 404)
            #expect(await emu.state.images(ofProject: samplePID).isEmpty)
            #expect(try await RawHTTP.send(port: emu.port, method: "DELETE", target: "/_emulator/images/\(reg.imageID)").status == 404)
        }
    }

    /// The counters a sync test relies on: N images -> N PUTs; a re-run -> 0 PUTs, 0 registrations.
    @Test func rerunProof() async throws {
        try await withEmulator(testEmulatorConfiguration()) { emu in
            let files = (0..<3).map { jpegBytes("rerun\($0)") }
            func run() async throws {
                for (i, bytes) in files.enumerated() {
                    let has = try await gql(emu, "mutation hasImage($p: ID!, $c: String!) { hasImage(pid: $p, checksum: $c) { id state } }",
                                            ["p": samplePID, "c": sha1(bytes)])
                    if has.data("hasImage", "state") as? String == "Ready" { continue }
                    let reg = try await registerS3(emu, name: "IMG_\(i).JPG", checksum: sha1(bytes))
                    try await startUpload(emu, reg.imageID)
                    #expect(try await putS3(emu, reg, bytes).status == 200)
                    _ = try await waitForFinalState(emu, reg.imageID)
                }
            }
            try await run()
            let first = await emu.stats()
            #expect(first.puts == 3 && first.registrations == 3)
            #expect(Set(first.putsByImage.values) == [1])
            try await run()
            let second = await emu.stats()
            #expect(second.puts == 3 && second.registrations == 3)
            #expect(second.graphqlRequests - first.graphqlRequests == 3)
        }
    }
}
