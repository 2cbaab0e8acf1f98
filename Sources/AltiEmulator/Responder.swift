import AltiSigning
import Foundation
import GraphQL
import HTTPTypes
import Hummingbird

/// Routes every request: `/graphql`, `/_emulator/...` (admin), `PUT /s3/...` and the OSS storage
/// (any method under `/<ossBucket>/`, and any PUT, POST or DELETE elsewhere, which OSS answers
/// NoSuchBucket); applies faults per request class and writes the request log.
struct EmulatorResponder: HTTPResponder {
    typealias Context = EmulatorRequestContext

    let state: EmulatorState
    let graphQL: GraphQLHandler
    let s3: S3PutHandler
    let oss: OSSHandler
    let admin: AdminHandler

    init(state: EmulatorState, schema: GraphQLSchema, signer: any StorageURLSigner) {
        self.state = state
        graphQL = GraphQLHandler(state: state, schema: schema, signer: signer)
        s3 = S3PutHandler(state: state)
        oss = OSSHandler(state: state)
        admin = AdminHandler(state: state)
    }

    func respond(to request: Request, context: Context) async throws -> Response {
        let incoming = IncomingRequest(request, context)
        if incoming.rawPath.hasPrefix("/_emulator/") || incoming.rawPath == "/_emulator" {
            return await admin.handle(incoming)
        }
        if incoming.rawPath == "/graphql" {
            return try await handleGraphQL(incoming)
        }
        if incoming.rawPath.hasPrefix(S3Paths.prefix) {
            return try await handleStorage(incoming, s3: true)
        }
        if ["PUT", "POST", "DELETE"].contains(incoming.method)
            || incoming.rawPath.hasPrefix("/\(state.configuration.ossBucket)/") {
            return try await handleStorage(incoming, s3: false)
        }
        await drain(incoming)
        let response = Response.text(404, "Not Found: \(incoming.method) \(incoming.rawPath)\n")
        await log(incoming, requestClass: nil, status: 404)
        return response
    }

    private func handleGraphQL(_ incoming: IncomingRequest) async throws -> Response {
        await state.countGraphQLRequest()
        let (action, latency) = await state.decideFault(.graphql)
        await sleep(milliseconds: latency)
        let body: [UInt8]
        do {
            switch action {
            case .reset:
                await log(incoming, requestClass: .graphql, status: 0, outcome: "fault-reset")
                _ = try await readBody(incoming, limit: 16 << 20, mode: .resetHalfway)
                throw ConnectionCut()
            case .trickle(let rate):
                body = try await readBody(incoming, limit: 16 << 20, mode: .trickle(bytesPerSecond: rate))
            default:
                body = try await readBody(incoming, limit: 16 << 20, mode: .normal)
            }
        } catch BodyReadError.tooLarge {
            await log(incoming, requestClass: .graphql, status: 413)
            return .graphQLRequestError(413, "Request body too large.")
        }
        switch action {
        case .fail(let status):
            await log(incoming, requestClass: .graphql, status: status, outcome: action.label, bytes: body.count)
            return .text(status, status == 503 ? "Service Unavailable\n" : "Internal Server Error\n")
        case .hang(let seconds):
            await log(incoming, requestClass: .graphql, status: 0, outcome: action.label, bytes: body.count)
            try await hang(seconds: seconds, state: state, channel: incoming.context.channel)
        default:
            break
        }
        let outcome = await graphQL.handle(incoming, body: body)
        await log(incoming, requestClass: .graphql, status: Int(outcome.response.status.code),
                  fields: outcome.fields, operationName: outcome.operationName, bytes: body.count)
        return outcome.response
    }

    private func handleStorage(_ incoming: IncomingRequest, s3 isS3: Bool) async throws -> Response {
        var response = try await storageResponse(incoming, s3: isS3)
        // The storage's own clock goes out in `Date` (StorageDateHeader): the emulator clock for
        // S3, the OSS clock (skew included) for OSS.
        let now = isS3 ? state.now() : await state.ossNow()
        response.headers[StorageDateHeader.name] = SigningTime.rfc1123(now)
        return response
    }

    private func storageResponse(_ incoming: IncomingRequest, s3 isS3: Bool) async throws -> Response {
        let (action, latency) = await state.decideFault(.put)
        await sleep(milliseconds: latency)
        var mode = BodyMode.normal
        switch action {
        case .fail(let status):
            await drain(incoming)
            await finishPut(incoming, status: status, outcome: action.label ?? "fault")
            return storageFault(status: status, s3: isS3)
        case .reset:
            await finishPut(incoming, status: 0, outcome: "fault-reset")
            _ = try await readBody(incoming, limit: Int.max, mode: .resetHalfway)
            // A request without a body (Initiate, Abort) is cut after its head.
            try await cutConnection(incoming.context.channel)
        case .hang(let seconds):
            await drain(incoming)
            await finishPut(incoming, status: 0, outcome: "fault-hang")
            try await hang(seconds: seconds, state: state, channel: incoming.context.channel)
        case .trickle(let rate):
            mode = .trickle(bytesPerSecond: rate)
        case .none:
            break
        }
        let result = isS3 ? try await s3.handle(incoming, bodyMode: mode) : try await oss.handle(incoming, bodyMode: mode)
        await finishPut(incoming, status: Int(result.response.status.code), outcome: result.outcome,
                        imageID: result.imageID, bytes: result.bytes)
        return result.response
    }

    private func finishPut(_ incoming: IncomingRequest, status: Int, outcome: String, imageID: String? = nil,
                           bytes: Int = 0) async {
        await state.countPut(outcome: outcome)
        var imageID = imageID
        if imageID == nil {
            // Name the image a refused PUT was aimed at, when the path says.
            let decoded = incoming.rawPath.removingPercentEncoding ?? incoming.rawPath
            let key = decoded.hasPrefix(S3Paths.prefix) ? "s3/" + decoded.dropFirst(S3Paths.prefix.count)
                                                         : "oss" + decoded
            imageID = await state.imageID(forObjectKey: key)
        }
        await log(incoming, requestClass: .put, status: status, outcome: outcome, imageID: imageID, bytes: bytes)
    }

    private func log(_ incoming: IncomingRequest, requestClass: RequestClass?, status: Int, outcome: String? = nil,
                     fields: [String] = [], operationName: String? = nil, imageID: String? = nil,
                     bytes: Int = 0) async {
        let entry = RequestLogEntry(
            sequence: 0, time: state.now(), method: incoming.method, path: incoming.rawPath,
            requestClass: requestClass?.rawValue, graphqlFields: fields, operationName: operationName,
            status: status, outcome: outcome, imageID: imageID, bytes: bytes)
        await state.appendLog(entry)
        if state.configuration.logRequests {
            var line = "\(entry.method) \(entry.path) -> \(status == 0 ? "(no answer)" : String(status))"
            if !fields.isEmpty { line += " [\(fields.joined(separator: ","))]" }
            if let outcome { line += " \(outcome)" }
            FileHandle.standardOutput.write(Data((line + "\n").utf8))
        }
    }
}

/// `/_emulator/...`: test and demo controls. Not part of the Altizure API; no auth.
struct AdminHandler: Sendable {
    let state: EmulatorState

    func handle(_ incoming: IncomingRequest) async -> Response {
        let path = incoming.rawPath
        switch (incoming.method, path) {
        case ("GET", "/_emulator/health"):
            await drain(incoming)
            return .json(200, ["status": "ok"])
        case ("GET", "/_emulator/stats"):
            await drain(incoming)
            return .json(200, await state.stats())
        case ("GET", "/_emulator/requests"):
            await drain(incoming)
            return .json(200, await state.requestLog())
        case ("POST", "/_emulator/reset"):
            await drain(incoming)
            await state.reset()
            return .json(200, ["status": "reset"])
        case ("GET", "/_emulator/faults"):
            await drain(incoming)
            return .json(200, await state.faults)
        case ("POST", "/_emulator/faults"), ("PUT", "/_emulator/faults"):
            guard let body = try? await readBody(incoming, limit: 1 << 20, mode: .normal) else {
                return .json(400, ["error": "cannot read body"])
            }
            let settings: FaultSettings
            do {
                settings = try JSONDecoder().decode(FaultSettings.self, from: Data(body))
            } catch {
                return .json(400, ["error": "invalid fault settings: \(error)"])
            }
            if let message = settings.validationError() { return .json(400, ["error": message]) }
            await state.setFaults(settings)
            return .json(200, settings)
        default:
            if incoming.method == "DELETE", path.hasPrefix("/_emulator/images/") {
                await drain(incoming)
                let id = String(path.dropFirst("/_emulator/images/".count))
                guard await state.removeImage(id: id) else { return .json(404, ["error": "no image \(id)"]) }
                return .json(200, ["removed": id])
            }
            if incoming.method == "GET", path.hasPrefix("/_emulator/objects/") {
                await drain(incoming)
                let key = String(path.dropFirst("/_emulator/objects/".count)).removingPercentEncoding ?? ""
                guard let bytes = await state.object(key: key) else { return .text(404, "no such object\n") }
                return .bytes(200, bytes, contentType: "application/octet-stream")
            }
            await drain(incoming)
            return .json(404, ["error": "unknown admin endpoint \(incoming.method) \(path)"])
        }
    }
}
