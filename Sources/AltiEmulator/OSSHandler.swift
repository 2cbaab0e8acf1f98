import AltiCrypto
import AltiSigning
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// The OSS operation a request asks for, told from its method and sub-resources (query).
enum OSSOperation: Equatable {
    case putObject
    case initiateMultipartUpload
    case uploadPart(uploadID: String, partNumber: String)
    case completeMultipartUpload(uploadID: String)
    case abortMultipartUpload(uploadID: String)
    case listParts(uploadID: String)
    /// An operation the write-only STS policy does not grant (GetObject, HeadObject, DeleteObject,
    /// PostObject, PUT of another sub-resource such as `?acl`), named as OSS names it.
    case notGranted(name: String)
    /// A PUT carrying only one of `uploadId` and `partNumber`.
    case incompleteUploadPart(missing: String)

    init(method: String, query: [(name: String, value: String)]) {
        var params: [String: String] = [:]
        for p in query where params[p.name] == nil { params[p.name] = p.value }
        let uploadID = params["uploadId"]
        switch method {
        case "PUT":
            if let uploadID, let partNumber = params["partNumber"] {
                self = .uploadPart(uploadID: uploadID, partNumber: partNumber)
            } else if uploadID != nil {
                self = .incompleteUploadPart(missing: "partNumber")
            } else if params["partNumber"] != nil {
                self = .incompleteUploadPart(missing: "uploadId")
            } else if let other = query.first(where: { OSSSigner.v1SignedSubResources.contains($0.name) }) {
                self = .notGranted(name: "PUT ?\(other.name)")
            } else {
                self = .putObject
            }
        case "POST":
            if params["uploads"] != nil {
                self = .initiateMultipartUpload
            } else if let uploadID {
                self = .completeMultipartUpload(uploadID: uploadID)
            } else {
                self = .notGranted(name: params["append"] != nil ? "AppendObject" : "PostObject")
            }
        case "DELETE":
            self = uploadID.map { .abortMultipartUpload(uploadID: $0) } ?? .notGranted(name: "DeleteObject")
        case "GET":
            self = uploadID.map { .listParts(uploadID: $0) } ?? .notGranted(name: "GetObject")
        default:
            self = .notGranted(name: method == "HEAD" ? "HeadObject" : method)
        }
    }

    /// The name in `EmulatorStats.ossOperations`.
    var name: String {
        switch self {
        case .putObject: return "PutObject"
        case .initiateMultipartUpload: return "InitiateMultipartUpload"
        case .uploadPart, .incompleteUploadPart: return "UploadPart"
        case .completeMultipartUpload: return "CompleteMultipartUpload"
        case .abortMultipartUpload: return "AbortMultipartUpload"
        case .listParts: return "ListParts"
        case .notGranted(let name): return name
        }
    }
}

/// The OSS storage, path style: `/<ossBucket>/<pid>/<filename>` (`%2F` in the key is a `/`).
/// Every request is verified like PutObject: OSS V1 or V4 header signature with the STS token, the
/// STS's expiry and its own project prefix, by the OSS clock (`EmulatorState.ossNow`). Then:
/// PutObject, and multipart upload (initiate, parts, complete, abort). The STS policy is
/// write-only: ListParts and every read or delete are AccessDenied.
struct OSSHandler: Sendable {
    let state: EmulatorState

    /// What a refused request gets: `AccessDenied` as the STS token's policy refuses it.
    static func notGrantedByPolicy() -> SigningRejection {
        SigningRejection(status: 403, code: "AccessDenied", message: "Access denied by authorizer's policy.",
                         fields: [.init("EC", "0003-00000301")])
    }

    static func noSuchUpload(_ uploadID: String, ec: String) -> SigningRejection {
        SigningRejection(
            status: 404, code: "NoSuchUpload",
            message: "The specified upload does not exist. The upload ID may be invalid, or the upload may have "
                + "been aborted or completed.",
            fields: [.init("UploadId", uploadID), .init("EC", ec)])
    }

    static let malformedXML = SigningRejection(
        status: 400, code: "MalformedXML",
        message: "The XML you provided was not well-formed or did not validate against our published schema.")

    static let entityTooLarge = SigningRejection(
        status: 400, code: "EntityTooLarge", message: "Your proposed upload exceeds the maximum allowed size.")

    /// The largest CompleteMultipartUpload body read (10000 parts take about 1 MB).
    static let completeBodyLimit = 4 << 20

    func handle(_ incoming: IncomingRequest, bodyMode: BodyMode) async throws -> StorageOutcome {
        let requestID = randomHex(12).uppercased()
        let isHead = incoming.method == "HEAD"
        func refuse(_ rejection: SigningRejection) async -> StorageOutcome {
            await drain(incoming)
            await state.countOSSRefusal(code: rejection.code)
            let xml = rejection.xmlBody(requestId: requestID, hostId: "alti-emulator")
            if isHead {
                // A HEAD answer has no body: OSS puts the error document, base64, in x-oss-err.
                return StorageOutcome(
                    response: .bytes(rejection.status, [], contentType: "application/xml",
                                     extraHeaders: [("x-oss-request-id", requestID),
                                                    ("x-oss-err", Data(xml.utf8).base64EncodedString())]),
                    outcome: rejection.code)
            }
            return StorageOutcome(
                response: .text(rejection.status, xml, contentType: "application/xml",
                                 extraHeaders: [("x-oss-request-id", requestID)]),
                outcome: rejection.code)
        }

        let request = OSSIncomingRequest(method: incoming.method, pathStyleRawPath: incoming.rawPath,
                                         rawQuery: incoming.rawQuery, headers: incoming.signingHeaders)
        guard request.bucket == state.configuration.ossBucket else {
            return await refuse(SigningRejection(status: 404, code: "NoSuchBucket",
                                                 message: "The specified bucket does not exist.",
                                                 fields: [.init("BucketName", request.bucket ?? "")]))
        }
        guard ["PUT", "POST", "DELETE", "GET", "HEAD"].contains(incoming.method) else {
            return await refuse(SigningRejection(status: 405, code: "MethodNotAllowed",
                                                 message: "The specified method is not allowed against this resource."))
        }
        guard let key = request.key, !key.isEmpty else {
            return await refuse(SigningRejection(status: 400, code: "InvalidObjectName",
                                                 message: "The specified object is not valid."))
        }
        let operation = OSSOperation(method: incoming.method, query: request.query)
        await state.countOSS(operation: operation.name)
        if case .failure(let rejection) = await authorize(request, incoming: incoming, key: key) {
            return await refuse(rejection)
        }
        let bucket = state.configuration.ossBucket
        switch operation {
        case .putObject:
            return try await putObject(incoming, bucket: bucket, key: key, bodyMode: bodyMode, requestID: requestID,
                                       refuse: { await refuse($0) })
        case .initiateMultipartUpload:
            await drain(incoming)
            let record = await state.initiateMultipartUpload(bucket: bucket, key: key)
            let encodeKeys = request.query.contains { $0.name == "encoding-type" && $0.value == "url" }
            var xml = Self.xmlDeclaration + "<InitiateMultipartUploadResult>"
            if encodeKeys { xml += "<EncodingType>url</EncodingType>" }
            xml += "<Bucket>\(Self.xmlText(bucket))</Bucket>"
                + "<Key>\(Self.xmlText(encodeKeys ? SigningEncoding.uriEncode(key) : key))</Key>"
                + "<UploadId>\(record.uploadID)</UploadId></InitiateMultipartUploadResult>\n"
            return StorageOutcome(
                response: .text(200, xml, contentType: "application/xml",
                                extraHeaders: [("x-oss-request-id", requestID)]),
                outcome: "ok")
        case .uploadPart(let uploadID, let partNumberText):
            return try await uploadPart(incoming, bucket: bucket, key: key, uploadID: uploadID,
                                        partNumberText: partNumberText, bodyMode: bodyMode, requestID: requestID,
                                        refuse: { await refuse($0) })
        case .completeMultipartUpload(let uploadID):
            return try await completeMultipartUpload(
                incoming, bucket: bucket, key: key, uploadID: uploadID,
                encodeKeys: request.query.contains { $0.name == "encoding-type" && $0.value == "url" },
                requestID: requestID, refuse: { await refuse($0) })
        case .abortMultipartUpload(let uploadID):
            await drain(incoming)
            guard await state.abortMultipartUpload(uploadID: uploadID, bucket: bucket, key: key) else {
                return await refuse(Self.noSuchUpload(uploadID, ec: "0042-00000002"))
            }
            var headers = HTTPFields()
            if let requestIDField = HTTPField.Name("x-oss-request-id") { headers[requestIDField] = requestID }
            return StorageOutcome(response: Response(status: .noContent, headers: headers), outcome: "ok")
        case .listParts, .notGranted:
            return await refuse(Self.notGrantedByPolicy())
        case .incompleteUploadPart(let missing):
            return await refuse(SigningRejection(
                status: 400, code: "InvalidArgument", message: "Unexpected query string parameter",
                fields: [.init("ArgumentName", "ResourceType"), .init("ArgumentValue", missing)]))
        }
    }

    /// Signature (V1 or V4, by the OSS clock), STS known and unexpired, key under its project.
    private func authorize(_ request: OSSIncomingRequest, incoming: IncomingRequest,
                           key: String) async -> Result<STSRecord, SigningRejection> {
        let now = await state.ossNow()
        // Snapshot the STS record: the verifier's lookup is synchronous.
        let accessKeyID = Self.accessKeyID(fromAuthorization: incoming.header("authorization") ?? "")
        let sts = accessKeyID.isEmpty ? nil : await state.sts(accessKeyID: accessKeyID)
        let verification = OSSVerifier.verify(request, now: now, keyRecord: { id in
            guard let sts, sts.accessKeyID == id else { return nil }
            return OSSKeyRecord(accessKeySecret: sts.secret, securityToken: sts.token)
        })
        if case .failure(let rejection) = verification { return .failure(rejection) }
        guard let sts else {
            return .failure(SigningRejection(
                status: 403, code: "InvalidAccessKeyId",
                message: "The OSS Access Key Id you provided does not exist in our records."))
        }
        // storage-protocols a.6: the expiry code is seen as SecurityTokenExpired with this message
        // (EC 0002-00000007 "get new temporary credentials and retry"); docs/EMULATOR.md says why.
        if now >= sts.expiresAt {
            return .failure(SigningRejection(
                status: 403, code: "SecurityTokenExpired", message: "The security token you provided has expired.",
                fields: [.init("EC", "0002-00000007")]))
        }
        // The STS policy covers `<bucket>/<pid>/*` only.
        guard sts.bucket == request.bucket, key.hasPrefix(sts.projectID + "/") else {
            return .failure(Self.notGrantedByPolicy())
        }
        return .success(sts)
    }

    // MARK: PutObject and UploadPart

    /// Reads a body that will be stored: size limit, Content-Length kept, Content-MD5 when sent.
    private func readStoredBody(_ incoming: IncomingRequest, bodyMode: BodyMode) async throws
        -> Result<[UInt8], SigningRejection>
    {
        let limit = state.configuration.maxObjectSize
        if let length = incoming.contentLength, length > limit { return .failure(Self.entityTooLarge) }
        let bytes: [UInt8]
        do {
            bytes = try await readBody(incoming, limit: limit, mode: bodyMode, counting: state)
        } catch BodyReadError.tooLarge {
            return .failure(Self.entityTooLarge)
        }
        if let length = incoming.contentLength, bytes.count != length {
            return .failure(SigningRejection(status: 400, code: "IncompleteBody",
                                             message: "The request body is shorter than Content-Length."))
        }
        // OSS checks a Content-MD5 the client sent against the bytes it received.
        if let contentMD5 = incoming.header("content-md5") {
            let received = Data(Digest.hash(.md5, bytes)).base64EncodedString()
            guard contentMD5.trimmingCharacters(in: .whitespaces) == received else {
                return .failure(SigningRejection(status: 400, code: "InvalidDigest",
                                                 message: "The Content-MD5 you specified was invalid.",
                                                 fields: [.init("Content-MD5", contentMD5)]))
            }
        }
        return .success(bytes)
    }

    private func putObject(_ incoming: IncomingRequest, bucket: String, key: String, bodyMode: BodyMode,
                           requestID: String,
                           refuse: (SigningRejection) async -> StorageOutcome) async throws -> StorageOutcome {
        let bytes: [UInt8]
        switch try await readStoredBody(incoming, bodyMode: bodyMode) {
        case .failure(let rejection): return await refuse(rejection)
        case .success(let body): bytes = body
        }
        let stored = try await state.storeObject(key: "oss/\(bucket)/\(key)", bytes: bytes)
        let etag = "\"\(Digest.hash(.md5, stored.bytes).hexString.uppercased())\""
        return StorageOutcome(
            response: .text(200, "", extraHeaders: [
                ("ETag", etag), ("x-oss-hash-crc64ecma", String(CRC64.checksum(stored.bytes))),
                ("x-oss-request-id", requestID),
            ]),
            outcome: "ok", imageID: stored.imageID, bytes: bytes.count)
    }

    private func uploadPart(_ incoming: IncomingRequest, bucket: String, key: String, uploadID: String,
                            partNumberText: String, bodyMode: BodyMode, requestID: String,
                            refuse: (SigningRejection) async -> StorageOutcome) async throws -> StorageOutcome {
        guard let number = Int(partNumberText), MultipartUploads.partNumbers.contains(number) else {
            return await refuse(SigningRejection(
                status: 400, code: "InvalidArgument",
                message: "Part number must be an integer between 1 and 10000, inclusive.",
                fields: [.init("ArgumentName", "PartNumber"), .init("ArgumentValue", partNumberText)]))
        }
        guard await state.multipartUpload(uploadID, bucket: bucket, key: key) != nil else {
            return await refuse(Self.noSuchUpload(uploadID, ec: "0017-00000244"))
        }
        let bytes: [UInt8]
        switch try await readStoredBody(incoming, bodyMode: bodyMode) {
        case .failure(let rejection): return await refuse(rejection)
        case .success(let body): bytes = body
        }
        // OSS does not check part sizes here: only Complete knows which part is the last.
        guard let part = try await state.storePart(uploadID: uploadID, bucket: bucket, key: key, number: number,
                                                   bytes: bytes) else {
            // Aborted or completed while the body was on its way.
            return await refuse(Self.noSuchUpload(uploadID, ec: "0017-00000244"))
        }
        return StorageOutcome(
            response: .text(200, "", extraHeaders: [
                ("ETag", "\"\(part.md5)\""), ("x-oss-hash-crc64ecma", String(part.crc64)),
                ("x-oss-request-id", requestID),
            ]),
            outcome: "ok", bytes: bytes.count)
    }

    // MARK: CompleteMultipartUpload

    /// The `(PartNumber, ETag)` list of a `<CompleteMultipartUpload>` body, or nil when it is not
    /// one: not well-formed, another root, anything but `<Part>` elements under it (none at all
    /// included), a part without exactly one `PartNumber` (an integer) and one `ETag`.
    static func partList(fromCompleteBody body: [UInt8]) -> [(number: Int, etag: String)]? {
        guard let root = XMLBodyReader.parse(body), root.name == "CompleteMultipartUpload",
              !root.children.isEmpty, root.children.allSatisfy({ $0.name == "Part" }),
              root.text.allSatisfy(\.isWhitespace) else { return nil }
        var parts: [(number: Int, etag: String)] = []
        for part in root.children {
            let numbers = part.children(named: "PartNumber"), etags = part.children(named: "ETag")
            guard numbers.count == 1, etags.count == 1, part.children.count == 2,
                  part.text.allSatisfy(\.isWhitespace), numbers[0].children.isEmpty, etags[0].children.isEmpty,
                  let number = Int(numbers[0].text) else { return nil }
            // Taken as written: OSS's exact tolerance for whitespace inside these elements is not
            // known, and the emulator must not accept what OSS might refuse.
            parts.append((number, etags[0].text))
        }
        return parts
    }

    private func completeMultipartUpload(
        _ incoming: IncomingRequest, bucket: String, key: String, uploadID: String, encodeKeys: Bool,
        requestID: String, refuse: (SigningRejection) async -> StorageOutcome
    ) async throws -> StorageOutcome {
        let body: [UInt8]
        do {
            body = try await readBody(incoming, limit: Self.completeBodyLimit, mode: .normal)
        } catch BodyReadError.tooLarge {
            return await refuse(Self.malformedXML)
        }
        guard await state.multipartUpload(uploadID, bucket: bucket, key: key) != nil else {
            return await refuse(Self.noSuchUpload(uploadID, ec: "0042-00000002"))
        }
        guard let listed = Self.partList(fromCompleteBody: body) else { return await refuse(Self.malformedXML) }
        let completion = try await state.completeMultipartUpload(uploadID: uploadID, bucket: bucket, key: key,
                                                                 listed: listed)
        let completed: CompletedMultipartObject
        switch completion {
        case nil:
            return await refuse(Self.noSuchUpload(uploadID, ec: "0042-00000002"))
        case .failure(let refusal)?:
            return await refuse(Self.rejection(refusal, uploadID: uploadID))
        case .success(let object)?:
            completed = object
        }
        let etag = "\"\(completed.etag)\""
        let location = await state.baseURL + SigningEncoding.uriEncode("/\(bucket)/\(key)", keepSlash: true)
        var xml = Self.xmlDeclaration + "<CompleteMultipartUploadResult>"
        if encodeKeys { xml += "<EncodingType>url</EncodingType>" }
        xml += "<Location>\(Self.xmlText(location))</Location><Bucket>\(Self.xmlText(bucket))</Bucket>"
            + "<Key>\(Self.xmlText(encodeKeys ? SigningEncoding.uriEncode(key) : key))</Key>"
            + "<ETag>\(Self.xmlText(etag))</ETag></CompleteMultipartUploadResult>\n"
        return StorageOutcome(
            response: .text(200, xml, contentType: "application/xml", extraHeaders: [
                ("ETag", etag), ("x-oss-hash-crc64ecma", String(completed.crc64)), ("x-oss-request-id", requestID),
            ]),
            outcome: "ok", imageID: completed.imageID, bytes: body.count)
    }

    static func rejection(_ refusal: MultipartCompletionRefusal, uploadID: String) -> SigningRejection {
        switch refusal {
        case .partOrder:
            return SigningRejection(
                status: 400, code: "InvalidPartOrder",
                message: "The list of parts was not in ascending order. The parts list must be specified in "
                    + "order by part number.",
                fields: [.init("UploadId", uploadID), .init("EC", "0042-00000209")])
        case .invalidPart(let number, let etag):
            return SigningRejection(
                status: 400, code: "InvalidPart",
                message: "One or more of the specified parts could not be found or the specified entity tag "
                    + "might not have matched the part's entity tag.",
                fields: [.init("UploadId", uploadID), .init("PartNumber", String(number)), .init("ETag", etag)])
        case .tooSmall(let number, let size):
            return SigningRejection(
                status: 400, code: "EntityTooSmall",
                message: "Your proposed upload is smaller than the minimum allowed size.",
                fields: [.init("MinSizeAllowed", String(MultipartUploads.minimumPartSize)),
                         .init("ProposedSize", String(size)), .init("PartNumber", String(number)),
                         .init("EC", "0042-00000213")])
        }
    }

    // MARK: Helpers

    static let xmlDeclaration = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"

    /// Escapes `& < >` (quotes stay as they are, as OSS writes its ETags).
    static func xmlText(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;")
    }

    /// The access key id of an `OSS <id>:<sig>` or `OSS4-HMAC-SHA256 Credential=<id>/...` header.
    static func accessKeyID(fromAuthorization header: String) -> String {
        let value = header.trimmingCharacters(in: .whitespaces)
        if value.hasPrefix("OSS4-HMAC-SHA256") {
            guard let range = value.range(of: "Credential=") else { return "" }
            return String(value[range.upperBound...].prefix { $0 != "/" && $0 != "," })
        }
        if value.hasPrefix("OSS ") {
            return String(value.dropFirst(4).prefix { $0 != ":" }).trimmingCharacters(in: .whitespaces)
        }
        return ""
    }
}
