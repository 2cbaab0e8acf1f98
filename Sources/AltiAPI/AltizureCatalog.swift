import AltiCore
import Foundation

/// `RemoteCatalog` over the Altizure GraphQL API. Batches are single documents with one aliased
/// field per item (`h0: hasImage(...) h1: hasImage(...)`), so N checksums cost ceil(N/100)
/// requests instead of N. Variables carry every value: nothing user-supplied is spliced into a
/// document.
public struct AltizureCatalog: RemoteCatalog {
    public let client: GraphQLClient
    public let batchLimit: Int

    public init(client: GraphQLClient, batchLimit: Int = 100) {
        self.client = client
        self.batchLimit = batchLimit
    }

    static let imageFields = "id state name filename error"

    /// The key-only fields that tell the server's mode, clouds and nearest buckets.
    static let serverInfoFields =
        "support { systemMode supportedCloud(kind: image) } getGeoIPInfo { nearestBuckets { cloud bucket display } }"

    public func serverInfo() async throws -> ServerInfo {
        let response = try await client.execute(
            "query serverInfo { \(Self.serverInfoFields) }", operationName: "serverInfo", withToken: false)
        try failOnErrors(response, doing: "read the server's mode and buckets")
        return Self.decodeServerInfo(response.data)
    }

    static func decodeServerInfo(_ data: JSONValue) -> ServerInfo {
        let support = data["support"]
        let buckets = (data["getGeoIPInfo"]?["nearestBuckets"]?.array ?? []).compactMap { item -> BucketSuggestion? in
            guard let cloud = item["cloud"]?.nonEmptyString, let bucket = item["bucket"]?.nonEmptyString else { return nil }
            return BucketSuggestion(cloud: cloud, bucket: bucket, display: item["display"]?.string)
        }
        return ServerInfo(
            systemMode: support?["systemMode"]?.string ?? "",
            supportedClouds: (support?["supportedCloud"]?.array ?? []).compactMap(\.string),
            nearestBuckets: buckets)
    }

    public func project(_ idOrPrefix: String) async throws -> RemoteProject {
        try await hidingSecrets(idOrPrefix) { try await lookUpProject(idOrPrefix, withServerInfo: false).project }
    }

    /// The sync's preflight in ONE request: the project lookup and the key-only `support` and
    /// `getGeoIPInfo` fields side by side in one query (root fields of one operation; the
    /// token a project needs does no harm to the others). The server facts are nil when their
    /// fields failed: `serverInfo()` asks again when something must be sent, and reports it.
    public func projectAndServerInfo(_ idOrPrefix: String) async throws -> (project: RemoteProject, server: ServerInfo?) {
        try await hidingSecrets(idOrPrefix) { try await lookUpProject(idOrPrefix, withServerInfo: true) }
    }

    /// A key or token given as --project by mistake is never echoed, neither in our messages
    /// nor where the server's own message quotes it; a project id or prefix is.
    func hidingSecrets<T>(_ idOrPrefix: String, _ body: () async throws -> T) async throws -> T {
        let secrets = [client.credentials.key, client.credentials.token]
        do {
            return try await body()
        } catch let error as AltiError where SecretMask.looksLikeSecret(idOrPrefix, secrets: secrets) {
            let hint = error.kind == .notFound ? " (the value given looks like a key or token, not a project id)" : ""
            throw AltiError(error.kind, SecretMask.scrub(error.message, of: idOrPrefix, secrets: secrets) + hint)
        }
    }

    func lookUpProject(_ idOrPrefix: String, withServerInfo: Bool) async throws -> (project: RemoteProject, server: ServerInfo?) {
        let fields = "id name numImage gigaPixel"
        let serverFields = withServerInfo ? " \(Self.serverInfoFields)" : ""
        if Self.looksLikeFullID(idOrPrefix) {
            let response = try await client.execute(
                "query project($id: ID!) { project(id: $id) { \(fields) }\(serverFields) }",
                variables: ["id": .string(idOrPrefix)], operationName: "project", withToken: true)
            try failOnErrors(response, exceptIn: Self.serverInfoRoots, doing: "look up project \(idOrPrefix)")
            if let project = Self.decodeProject(response.data["project"]) {
                return (project, Self.preflightServerInfo(in: response, asked: withServerInfo))
            }
            throw AltiError(.notFound, "project \(idOrPrefix) does not exist at \(client.credentials.origin) or is not yours; check --project")
        }
        // A prefix, as the official CLI allows: ask for two matches so an ambiguous prefix is an
        // error rather than a silent pick.
        let response = try await client.execute(
            "query searchProject($id: String, $limit: Int, $mine: Boolean) { search { projectID(id: $id, limit: $limit, myProject: $mine) { \(fields) } }\(serverFields) }",
            variables: ["id": .string(idOrPrefix), "limit": 2, "mine": true], operationName: "searchProject", withToken: true)
        try failOnErrors(response, exceptIn: Self.serverInfoRoots, doing: "search for project \(idOrPrefix)")
        let matches = (response.data["search"]?["projectID"]?.array ?? []).compactMap(Self.decodeProject)
        let server = Self.preflightServerInfo(in: response, asked: withServerInfo)
        if let exact = matches.first(where: { $0.id == idOrPrefix }) { return (exact, server) }
        switch matches.count {
        case 0:
            throw AltiError(.notFound, "no project of yours starts with \(idOrPrefix) at \(client.credentials.origin); check --project")
        case 1:
            return (matches[0], server)
        default:
            throw AltiError(.usage, "project prefix \(idOrPrefix) matches several projects (\(matches.map(\.id).joined(separator: ", "))); give more characters of --project")
        }
    }

    /// The root fields of `serverInfoFields`: their errors do not fail a project lookup.
    static let serverInfoRoots: Set<String> = ["support", "getGeoIPInfo"]

    /// The server facts of a preflight, nil when not asked or when one of their fields failed.
    static func preflightServerInfo(in response: GraphQLResponse, asked: Bool) -> ServerInfo? {
        guard asked, !response.errors.contains(where: { error in error.alias.map { serverInfoRoots.contains($0) } ?? false }),
              let support = response.data["support"], !support.isNull else { return nil }
        return decodeServerInfo(response.data)
    }

    public func hasImages(project: String, checksums: [String]) async throws -> [String: RemoteImage] {
        precondition(checksums.count <= batchLimit)
        guard !checksums.isEmpty else { return [:] }
        var batch = AliasedDocument()
        batch.declare("pid", "ID!", .string(project))
        for (i, checksum) in checksums.enumerated() {
            batch.declare("c\(i)", "String!", .string(checksum))
            batch.field("h\(i): hasImage(pid: $pid, checksum: $c\(i)) { \(Self.imageFields) }")
        }
        let response = try await client.execute(
            batch.document("mutation", "hasImage"), variables: batch.variables, operationName: "hasImage", withToken: true)
        try failOnErrors(response, doing: "ask which images project \(project) has")
        var result: [String: RemoteImage] = [:]
        for (i, checksum) in checksums.enumerated() {
            if let image = Self.decodeImage(response.data["h\(i)"]) { result[checksum] = image }
        }
        return result
    }

    /// `uploadImageS3` for each image (one aliased request); keyed by sha1, with the pre-signed
    /// PUT URL (a secret). A per-image refusal is a `.failure`.
    public func registerS3(project: String, bucket: String, images: [ImageRegistration]) async throws
        -> [String: Result<S3Registration, AltiError>]
    {
        precondition(images.count <= batchLimit)
        guard !images.isEmpty else { return [:] }
        var batch = AliasedDocument()
        batch.declare("pid", "ID!", .string(project))
        batch.declare("bucket", "BucketS3!", .string(bucket))
        for (i, image) in images.enumerated() {
            batch.declare("f\(i)", "String!", .string(image.filename))
            batch.declare("t\(i)", "IMAGE_TYPE", .string(image.imageType))
            batch.declare("c\(i)", "String", .string(image.sha1))
            batch.field(
                "r\(i): uploadImageS3(pid: $pid, bucket: $bucket, filename: $f\(i), type: $t\(i), checksum: $c\(i)) { url image { id state name filename } }")
        }
        let response = try await client.execute(
            batch.document("mutation", "uploadImageS3"), variables: batch.variables, operationName: "uploadImageS3", withToken: true)
        if let error = response.errors.first(where: { $0.alias == nil && $0.message.contains("BucketS3") }) {
            throw AltiError(.usage, "the server does not know the S3 bucket '\(bucket)' (\(error.message)); leave --bucket out to use the nearest one")
        }
        try failOnWholeRequestErrors(response, doing: "register images in bucket \(bucket)")
        var result: [String: Result<S3Registration, AltiError>] = [:]
        for (i, image) in images.enumerated() {
            let alias = "r\(i)"
            let answer = response.data[alias]
            if let error = response.errors.first(where: { $0.alias == alias }) {
                result[image.sha1] = .failure(AltiError(.protocolError, "the server refused to register \(image.filename): \(error.message)"))
            } else if let registered = Self.decodeImage(answer?["image"]), let url = answer?["url"]?.nonEmptyString {
                result[image.sha1] = .success(S3Registration(image: registered, uploadURL: url))
            } else {
                result[image.sha1] = .failure(AltiError(.protocolError, "the server registered \(image.filename) without an image id or upload URL"))
            }
        }
        return result
    }

    public func startUpload(imageIDs: [String]) async throws -> [String: RemoteImage] {
        try await perImageMutation("startImageUpload", imageIDs: imageIDs)
    }

    func perImageMutation(_ field: String, imageIDs: [String]) async throws -> [String: RemoteImage] {
        precondition(imageIDs.count <= batchLimit)
        guard !imageIDs.isEmpty else { return [:] }
        var batch = AliasedDocument()
        for (i, id) in imageIDs.enumerated() {
            batch.declare("i\(i)", "ID!", .string(id))
            batch.field("s\(i): \(field)(id: $i\(i)) { id state }")
        }
        let response = try await client.execute(
            batch.document("mutation", field), variables: batch.variables, operationName: field, withToken: true)
        try failOnWholeRequestErrors(response, doing: "signal \(field)")
        var result: [String: RemoteImage] = [:]
        for (i, id) in imageIDs.enumerated() {
            if let image = Self.decodeImage(response.data["s\(i)"]) { result[id] = image }
        }
        return result
    }

    public func imageStates(project: String, imageIDs: [String]) async throws -> [String: RemoteImage] {
        precondition(imageIDs.count <= batchLimit)
        guard !imageIDs.isEmpty else { return [:] }
        var batch = AliasedDocument()
        batch.declare("pid", "ID!", .string(project))
        for (i, id) in imageIDs.enumerated() {
            batch.declare("i\(i)", "ID!", .string(id))
            batch.field("i\(i): image(id: $i\(i)) { \(Self.imageFields) }")
        }
        let response = try await client.execute(
            batch.document("query", "imageStates", inside: "project(id: $pid)"), variables: batch.variables,
            operationName: "imageStates", withToken: true)
        try failOnWholeRequestErrors(response, doing: "read image states")
        guard let projectData = response.data["project"], !projectData.isNull else {
            throw AltiError(.notFound, "project \(project) no longer exists at \(client.credentials.origin)")
        }
        var result: [String: RemoteImage] = [:]
        for (i, id) in imageIDs.enumerated() {
            if let image = Self.decodeImage(projectData["i\(i)"]) { result[id] = image }
        }
        return result
    }

    public func startReconstruction(project: String) async throws -> ReconstructionOutcome {
        try await reconstruction("startReconstructionWithError", project: project)
    }

    public func preStartReconstruction(project: String) async throws -> ReconstructionOutcome {
        try await reconstruction("preStartReconstruction", project: project)
    }

    func reconstruction(_ field: String, project: String) async throws -> ReconstructionOutcome {
        let query = "mutation \(field)($id: ID!) { \(field)(id: $id) { error { code message } task { id state } } }"
        let response = try await client.execute(query, variables: ["id": .string(project)], operationName: field, withToken: true)
        try failOnErrors(response, doing: field)
        let answer = response.data[field]
        return ReconstructionOutcome(
            taskID: answer?["task"]?["id"]?.nonEmptyString, taskState: answer?["task"]?["state"]?.string,
            errorCode: answer?["error"]?["code"]?.int, errorMessage: answer?["error"]?["message"]?.nonEmptyString)
    }

    // MARK: Decoding

    static func looksLikeFullID(_ s: String) -> Bool {
        s.count == 24 && s.allSatisfy(\.isHexDigit)
    }

    static func decodeProject(_ value: JSONValue?) -> RemoteProject? {
        guard let value, let id = value["id"]?.nonEmptyString else { return nil }
        return RemoteProject(
            id: id, name: value["name"]?.string ?? "", numImage: value["numImage"]?.int ?? 0,
            gigaPixel: value["gigaPixel"]?.double ?? 0)
    }

    static func decodeImage(_ value: JSONValue?) -> RemoteImage? {
        guard let value, let id = value["id"]?.nonEmptyString else { return nil }
        return RemoteImage(
            id: id, state: ImageState(value["state"]?.string ?? ""), name: value["name"]?.string,
            filename: value["filename"]?.string, errors: (value["error"]?.array ?? []).compactMap(\.string))
    }

    func failOnErrors(_ response: GraphQLResponse, exceptIn roots: Set<String> = [], doing what: String) throws {
        if let first = response.errors.first(where: { error in !(error.alias.map { roots.contains($0) } ?? false) }) {
            throw Self.mapError(first, doing: what)
        }
    }

    /// In a batch, an error with a path belongs to one alias and is handled per item; one
    /// without a path (a validation error) fails the request.
    func failOnWholeRequestErrors(_ response: GraphQLResponse, doing what: String) throws {
        if let first = response.errors.first(where: { $0.alias == nil }) {
            throw Self.mapError(first, doing: what)
        }
        if response.data.isNull, let first = response.errors.first {
            throw Self.mapError(first, doing: what)
        }
    }

    static func mapError(_ error: GraphQLFieldError, doing what: String) -> AltiError {
        let lower = error.message.lowercased()
        if lower.contains("read-only") || lower.contains("readonly") {
            return AltiError(.unavailable, "\(SyncService.serverModePrefix)read-only mode and refused to \(what); try again later")
        }
        return AltiError(.protocolError, "the server could not \(what): \(error.message)")
    }
}

/// An `uploadImageS3` answer: the image and its pre-signed PUT URL (never logged, never stored).
public struct S3Registration: Sendable, Equatable {
    public var image: RemoteImage
    public var uploadURL: String

    public init(image: RemoteImage, uploadURL: String) {
        self.image = image
        self.uploadURL = uploadURL
    }
}

/// A GraphQL document with one aliased field per item and every value passed as a variable:
/// `mutation hasImage($pid: ID!, $c0: String!, ...) { h0: hasImage(pid: $pid, checksum: $c0) {...} ... }`.
struct AliasedDocument {
    private(set) var variables: [String: JSONValue] = [:]
    private var declarations: [String] = []
    private var fields: [String] = []

    mutating func declare(_ name: String, _ type: String, _ value: JSONValue) {
        declarations.append("$\(name): \(type)")
        variables[name] = value
    }

    mutating func field(_ selection: String) { fields.append(selection) }

    /// `inside` wraps the fields in a parent selection, e.g. `project(id: $pid)`.
    func document(_ operation: String, _ name: String, inside parent: String? = nil) -> String {
        var body = fields.joined(separator: " ")
        if let parent { body = "\(parent) { \(body) }" }
        return "\(operation) \(name)(\(declarations.joined(separator: ", "))) { \(body) }"
    }
}
