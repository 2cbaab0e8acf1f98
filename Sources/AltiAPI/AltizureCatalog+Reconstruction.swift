import AltiCore

extension AltizureCatalog {
    /// The project's current reconstruction task, read with one query before starting one (a
    /// project has at most one: a second `startReconstructionWithError` is refused).
    ///
    /// The schema has no query that returns the task itself: `Project.taskState` is all it
    /// offers (only the mutations return a `Task`). So `taskID` is always nil here; `taskState` is
    /// the current task's state (`Pending`, `Processing`, `Done`, ...). Nil when the project has
    /// no task (`taskState` null or ""). Throws `AltiError(.notFound)` when the project is gone.
    public func reconstructionTask(project: String) async throws -> ReconstructionOutcome? {
        let response = try await client.execute(
            "query reconstructionTask($id: ID!) { project(id: $id) { id taskState } }",
            variables: ["id": .string(project)], operationName: "reconstructionTask", withToken: true)
        try failOnErrors(response, doing: "read the reconstruction state of project \(project)")
        guard let projectData = response.data["project"], projectData["id"]?.nonEmptyString != nil else {
            throw AltiError(.notFound, "project \(project) does not exist at \(client.credentials.origin) or is not yours; check --project")
        }
        guard let state = projectData["taskState"]?.nonEmptyString else { return nil }
        return ReconstructionOutcome(taskState: state)
    }
}
