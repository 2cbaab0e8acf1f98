import AltiEmulator
import AltiTestSupport
import Foundation
import Testing

@Suite("Persistence with a data directory")
struct PersistenceTests {
    @Test func stopAndResume() async throws {
        let tree = try TempTree("emu-data")
        var config = testEmulatorConfiguration()
        config.dataDirectory = tree.path("data")
        let bytes = jpegBytes("persist")
        let (imageID, created) = try await withEmulator(config) { emu in
            let reg = try await registerS3(emu, name: "p.jpg", checksum: sha1(bytes))
            #expect(try await putS3(emu, reg, bytes).status == 200)
            #expect(try await waitForFinalState(emu, reg.imageID).0 == "Ready")
            let created = try await gql(emu, #"mutation { createProject(name: "Kept") { id } }"#)
            return (reg.imageID, try #require(created.data("createProject", "id") as? String))
        }
        #expect(FileManager.default.fileExists(atPath: tree.path("data/state.json")))
        try await withEmulator(config) { emu in
            let has = try await gql(emu, "mutation hasImage($p: ID!, $c: String!) { hasImage(pid: $p, checksum: $c) { id state } }",
                                    ["p": samplePID, "c": sha1(bytes)])
            #expect(has.data("hasImage", "id") as? String == imageID)
            #expect(has.data("hasImage", "state") as? String == "Ready")
            #expect(await emu.state.objectBytes(imageID: imageID) == bytes)
            #expect(await emu.state.project(created)?.name == "Kept")
        }
    }

    @Test func memoryByDefault() async throws {
        let bytes = jpegBytes("volatile")
        try await withEmulator(testEmulatorConfiguration()) { emu in
            _ = try await registerS3(emu, name: "v.jpg", checksum: sha1(bytes))
        }
        try await withEmulator(testEmulatorConfiguration()) { emu in
            #expect(await emu.state.image(projectID: samplePID, checksum: sha1(bytes)) == nil)
        }
    }
}
