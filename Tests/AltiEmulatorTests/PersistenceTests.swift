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
            try await startUpload(emu, reg.imageID)
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

    /// startImageUpload is remembered across a restart (and a state.json without the flag loads).
    @Test func startedFlagSurvivesRestart() async throws {
        let tree = try TempTree("emu-started")
        var config = testEmulatorConfiguration()
        config.dataDirectory = tree.path("data")
        let bytes = jpegBytes("started")
        // OSS: STS and the path-style PUT do not depend on the port (an S3 URL signs the Host).
        let (sts, image) = try await withEmulator(config) { emu in
            let sts = try await getSTS(emu)
            let image = try await registerOSS(emu, name: "s.jpg", checksum: sha1(bytes))
            try await startUpload(emu, image.id)
            return (sts, image)
        }
        try await withEmulator(config) { emu in
            #expect(await emu.state.image(id: image.id)?.uploadStarted == true)
            let put = try await putOSS(emu, sts: sts, key: "\(samplePID)/\(image.filename)", bytes: bytes)
            #expect(put.status == 200)
            #expect(try await doneUpload(emu, image.id) == "Uploaded")
            #expect(try await waitForFinalState(emu, image.id).0 == "Ready")
        }
        // A snapshot of an earlier build has no uploadStarted: it loads as false.
        let path = tree.path("data/state.json")
        var snapshot = try #require(
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any])
        var images = try #require(snapshot["images"] as? [[String: Any]])
        #expect(images.count == 1 && images[0]["uploadStarted"] as? Bool == true)
        images[0]["uploadStarted"] = nil
        snapshot["images"] = images
        try JSONSerialization.data(withJSONObject: snapshot).write(to: URL(fileURLWithPath: path))
        try await withEmulator(config) { emu in
            #expect(await emu.state.image(id: image.id)?.uploadStarted == false)
            #expect(await emu.state.image(id: image.id)?.state == .ready)
        }
    }

    /// A task outlives a restart (a second start is still refused), and a state.json of an
    /// earlier build (stored `taskState`, tasks without `queuedAt`/`endDate`) loads.
    @Test func reconstructionTaskSurvivesRestart() async throws {
        let tree = try TempTree("emu-task")
        var config = testEmulatorConfiguration()
        config.dataDirectory = tree.path("data")
        config.reconstructionPhase = 3600
        let start = "mutation ($id: ID!) { startReconstructionWithError(id: $id) { error { code } task { id } } }"
        let taskID = try await withEmulator(config) { emu in
            let bytes = jpegBytes("task")
            let reg = try await registerS3(emu, name: "t.jpg", checksum: sha1(bytes))
            try await startUpload(emu, reg.imageID)
            #expect(try await putS3(emu, reg, bytes).status == 200)
            #expect(try await waitForFinalState(emu, reg.imageID).0 == "Ready")
            let started = try await gql(emu, start, ["id": samplePID])
            return try #require(started.data("startReconstructionWithError", "task", "id") as? String)
        }
        try await withEmulator(config) { emu in
            let again = try await gql(emu, start, ["id": samplePID])
            #expect(again.data("startReconstructionWithError", "error", "code") as? Int == 1002)
            #expect(await emu.state.project(samplePID)?.tasks.map(\.id) == [taskID])
        }
        let path = tree.path("data/state.json")
        var snapshot = try #require(
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any])
        var projects = try #require(snapshot["projects"] as? [[String: Any]])
        let index = try #require(projects.firstIndex { $0["id"] as? String == samplePID })
        var tasks = try #require(projects[index]["tasks"] as? [[String: Any]])
        tasks[0]["queuedAt"] = nil
        tasks[0]["endDate"] = nil
        projects[index]["tasks"] = tasks
        projects[index]["taskState"] = "Pending"
        snapshot["projects"] = projects
        try JSONSerialization.data(withJSONObject: snapshot).write(to: URL(fileURLWithPath: path))
        try await withEmulator(config) { emu in
            #expect(await emu.state.project(samplePID)?.taskState == "Pending")
            #expect(await emu.stats().tasks.map(\.id) == [taskID])
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
