import AltiCore
import Foundation
import Testing

@testable import AltiAPI

/// `AltizureCatalog.reconstructionTask(project:)` over a closure transport: one query, the
/// project id as a variable, the task state decoded (nil without a task).
@Suite struct ReconstructionTaskTests {
    typealias Recorder = GraphQLClientTests.Recorder

    static let project = "5e8f2a6b1c9d4e3f2a1b0c9d"

    @Test func readsTheTaskStateWithOneQuery() async throws {
        let recorder = Recorder([(200, #"{"data":{"project":{"id":"5e8f2a6b1c9d4e3f2a1b0c9d","taskState":"Processing"}}}"#)])
        let task = try await AltizureCatalog(client: GraphQLClientTests.client(recorder)).reconstructionTask(project: Self.project)
        #expect(task == ReconstructionOutcome(taskID: nil, taskState: "Processing"))

        #expect(recorder.requests.count == 1)
        let request = try #require(recorder.requests.first)
        #expect(request.body["query"] as? String
            == "query reconstructionTask($id: ID!) { project(id: $id) { id taskState } }")
        #expect(request.body["operationName"] as? String == "reconstructionTask")
        #expect(request.body["variables"] as? [String: String] == ["id": Self.project])
        #expect(request.headers.contains { $0.0 == "altitoken" && $0.1 == "T" })
    }

    @Test(arguments: [#""taskState":null"#, #""taskState":"""#, ""])
    func noTaskIsNil(taskState: String) async throws {
        let separator = taskState.isEmpty ? "" : ","
        let body = #"{"data":{"project":{"id":"5e8f2a6b1c9d4e3f2a1b0c9d""# + separator + taskState + "}}}"
        let recorder = Recorder([(200, body)])
        #expect(try await AltizureCatalog(client: GraphQLClientTests.client(recorder)).reconstructionTask(project: Self.project) == nil)
    }

    @Test func anUnknownProjectIsNotFound() async throws {
        let recorder = Recorder([(200, #"{"data":{"project":null}}"#)])
        do {
            _ = try await AltizureCatalog(client: GraphQLClientTests.client(recorder)).reconstructionTask(project: Self.project)
            Issue.record("expected notFound")
        } catch let error as AltiError {
            #expect(error.kind == .notFound)
            #expect(error.message.contains(Self.project))
        }
    }

    @Test func aGraphQLErrorIsReported() async throws {
        let recorder = Recorder([(200, #"{"errors":[{"message":"Cannot query field \"taskState\"","locations":[{"line":1,"column":50}]}]}"#)])
        do {
            _ = try await AltizureCatalog(client: GraphQLClientTests.client(recorder)).reconstructionTask(project: Self.project)
            Issue.record("expected an error")
        } catch let error as AltiError {
            #expect(error.kind == .protocolError)
            #expect(error.message.contains("taskState"))
        }
    }
}
