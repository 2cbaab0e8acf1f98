import AltiEmulator
import AltiTestSupport
import Foundation
import Testing

/// A project has at most one reconstruction task; a second start is refused with the payload's
/// `error`, and the task's state is readable (`project.taskState`) and moves with the clock.
@Suite("Reconstruction tasks over a real socket")
struct ReconstructionTests {
    static let start = """
        mutation start($id: ID!) { startReconstructionWithError(id: $id) {
          error { code message } task { id taskType state startDate endDate queueing } } }
        """
    static let preStart = """
        mutation preStart($id: ID!) { preStartReconstruction(id: $id) { error { code message } task { id state } } }
        """
    /// The document `AltizureCatalog.reconstructionTask(project:)` sends.
    static let taskState = "query reconstructionTask($id: ID!) { project(id: $id) { id taskState } }"

    /// A clock-driven emulator: each task phase lasts `phase` seconds of `clock` time.
    static func configuration(phase: TimeInterval = 60) -> EmulatorConfiguration {
        var config = testEmulatorConfiguration()
        config.reconstructionPhase = phase
        return config
    }

    /// Uploads one image and waits until it is Ready (a start needs a Ready image).
    static func uploadReadyImage(_ emu: RunningEmulator, _ name: String) async throws {
        let bytes = jpegBytes(name)
        let reg = try await registerS3(emu, name: name, checksum: sha1(bytes))
        try await startUpload(emu, reg.imageID)
        #expect(try await putS3(emu, reg, bytes).status == 200)
        #expect(try await waitForFinalState(emu, reg.imageID).0 == "Ready")
    }

    static func taskState(_ emu: RunningEmulator) async throws -> String? {
        let r = try await gql(emu, taskState, ["id": samplePID])
        #expect(r.status == 200 && r.errorMessages.isEmpty, "\(r.text)")
        return r.data("project", "taskState") as? String
    }

    @Test func aSecondStartIsRefusedWithThePayloadErrorAndMakesNoSecondTask() async throws {
        try await withEmulator(Self.configuration(), clock: ManualEmulatorClock()) { emu in
            try await Self.uploadReadyImage(emu, "a.jpg")
            #expect(try await Self.taskState(emu) == nil, "no task before the first start")

            let first = try await gql(emu, Self.start, ["id": samplePID])
            #expect(first.status == 200 && first.errorMessages.isEmpty)
            #expect(first.data("startReconstructionWithError", "error") == nil)
            let taskID = try #require(first.data("startReconstructionWithError", "task", "id") as? String)
            #expect(first.data("startReconstructionWithError", "task", "state") as? String == "Pending")
            #expect(first.data("startReconstructionWithError", "task", "taskType") as? String == "Native")
            #expect(first.data("startReconstructionWithError", "task", "startDate") is String)
            #expect(first.data("startReconstructionWithError", "task", "endDate") == nil)

            // Refused the way this mutation reports failures: HTTP 200, no GraphQL error, the
            // payload's error object, task null.
            let second = try await gql(emu, Self.start, ["id": samplePID])
            #expect(second.status == 200)
            #expect(second.errorMessages.isEmpty)
            #expect(second.data("startReconstructionWithError", "task") == nil)
            #expect(second.data("startReconstructionWithError", "error", "code") as? Int == 1002)
            let message = try #require(second.data("startReconstructionWithError", "error", "message") as? String)
            #expect(message == "the project already has a reconstruction task (\(taskID), Pending)")

            // preStartReconstruction does not add one either.
            let pre = try await gql(emu, Self.preStart, ["id": samplePID])
            #expect(pre.data("preStartReconstruction", "task") == nil)
            #expect(pre.data("preStartReconstruction", "error", "code") as? Int == 1002)

            let stats = await emu.stats()
            #expect(stats.tasks.map { [$0.id, $0.projectID, $0.taskType, $0.state.rawValue] }
                == [[taskID, samplePID, "Native", "Pending"]])
            #expect(stats.count("startReconstructionWithError") == 2)
            #expect(await emu.state.project(samplePID)?.tasks.count == 1)
            #expect(try await Self.taskState(emu) == "Pending")
        }
    }

    @Test func concurrentStartsMakeOneTask() async throws {
        try await withEmulator(Self.configuration(), clock: ManualEmulatorClock()) { emu in
            try await Self.uploadReadyImage(emu, "b.jpg")
            let answers = try await withThrowingTaskGroup(of: RawHTTPResponse.self) { group in
                for _ in 0..<4 { group.addTask { try await gql(emu, Self.start, ["id": samplePID]) } }
                return try await group.reduce(into: [RawHTTPResponse]()) { $0.append($1) }
            }
            #expect(answers.filter { $0.data("startReconstructionWithError", "task", "id") != nil }.count == 1)
            #expect(answers.compactMap { $0.data("startReconstructionWithError", "error", "code") as? Int } == [1002, 1002, 1002])
            #expect(await emu.stats().tasks.count == 1)
        }
    }

    @Test func theTaskMovesFromPendingToProcessingToDoneWithTheClock() async throws {
        let clock = ManualEmulatorClock()
        try await withEmulator(Self.configuration(phase: 60), clock: clock) { emu in
            try await Self.uploadReadyImage(emu, "c.jpg")
            let first = try await gql(emu, Self.start, ["id": samplePID])
            let taskID = try #require(first.data("startReconstructionWithError", "task", "id") as? String)

            clock.advance(by: 59)
            #expect(try await Self.taskState(emu) == "Pending")
            clock.advance(by: 1)
            #expect(try await Self.taskState(emu) == "Processing")
            clock.advance(by: 60)
            #expect(try await Self.taskState(emu) == "Done")
            let task = try #require(await emu.state.project(samplePID)?.tasks.last)
            #expect(task.endDate == task.startDate.addingTimeInterval(120))

            // A reconstructed project is not started again.
            let again = try await gql(emu, Self.start, ["id": samplePID])
            #expect(again.data("startReconstructionWithError", "error", "message") as? String
                == "the project already has a reconstruction task (\(taskID), Done)")
            #expect(await emu.stats().tasks.map(\.state) == [.done])
        }
    }

    @Test func aScheduledTaskStartsOnceItsImagesAreProcessed() async throws {
        let clock = ManualEmulatorClock()
        try await withEmulator(Self.configuration(phase: 60), clock: clock) { emu in
            let pre = try await gql(emu, Self.preStart, ["id": samplePID])
            #expect(pre.data("preStartReconstruction", "task", "state") as? String == "Scheduled")
            clock.advance(by: 600)
            #expect(try await Self.taskState(emu) == "Scheduled", "waits for images, however long")
            let refused = try await gql(emu, Self.start, ["id": samplePID])
            #expect(refused.data("startReconstructionWithError", "error", "code") as? Int == 1002)

            try await Self.uploadReadyImage(emu, "d.jpg")
            #expect(try await Self.taskState(emu) == "Pending")
            clock.advance(by: 60)
            #expect(try await Self.taskState(emu) == "Processing")
            #expect(await emu.stats().tasks.count == 1)
        }
    }

    @Test func aStoppedTaskMakesRoomForANewOne() async throws {
        try await withEmulator(Self.configuration(), clock: ManualEmulatorClock()) { emu in
            try await Self.uploadReadyImage(emu, "e.jpg")
            _ = try await gql(emu, Self.start, ["id": samplePID])
            let stop = try await gql(emu, "mutation ($id: ID!) { stopReconstruction(id: $id) { id state endDate } }",
                                     ["id": samplePID])
            #expect(stop.data("stopReconstruction", "state") as? String == "Stopped")
            #expect(stop.data("stopReconstruction", "endDate") is String)
            #expect(try await Self.taskState(emu) == "Stopped")

            let restart = try await gql(emu, Self.start, ["id": samplePID])
            #expect(restart.data("startReconstructionWithError", "task", "state") as? String == "Pending")
            #expect(await emu.stats().tasks.map(\.state) == [.stopped, .pending])
            #expect(try await Self.taskState(emu) == "Pending")
        }
    }
}
