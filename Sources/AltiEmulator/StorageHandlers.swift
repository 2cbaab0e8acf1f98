import AltiCrypto
import AltiSigning
import Foundation
import Hummingbird

/// Mints the emulator's pre-signed S3 PUT URLs with AltiSigning (`content-type;host` signed).
struct AltiSigningURLSigner: StorageURLSigner {
    func presignS3Put(baseURL: String, path: String, contentType: String, credentials: S3Credentials,
                      region: String, date: Date, expires: Int) -> String {
        let scheme = baseURL.hasPrefix("https://") ? "https" : "http"
        let host = String(baseURL.dropFirst(scheme.count + 3))
        return S3QueryAuth.presign(S3PresignRequest(
            method: "PUT", scheme: scheme, host: host, path: S3QueryAuth.encodePath(path),
            accessKeyId: credentials.accessKeyID, secretAccessKey: credentials.secret, region: region,
            date: date, expires: min(expires, S3QueryAuth.maxExpires), signedHeaders: ["content-type": contentType]
        )).url
    }
}

/// What a storage PUT handler decided: the response, plus the outcome label for the counters.
struct StorageOutcome {
    var response: Response
    var outcome: String
    var imageID: String?
    var bytes: Int = 0
}

/// A storage refusal as S3 sends it: the body is drained first (so the client sees the
/// answer, not a reset), then the XML error with the store's request-id header.
private func refusal(_ rejection: SigningRejection, draining incoming: IncomingRequest, requestID: String,
                     header: String) async -> StorageOutcome {
    await drain(incoming)
    let xml = rejection.xmlBody(requestId: requestID, hostId: "alti-emulator")
    return StorageOutcome(
        response: .text(rejection.status, xml, contentType: "application/xml", extraHeaders: [(header, requestID)]),
        outcome: rejection.code)
}

/// `PUT /s3/<bucket>/<pid>/<filename>?X-Amz-...`: verified as S3 verifies a pre-signed PUT.
struct S3PutHandler: Sendable {
    let state: EmulatorState

    func handle(_ incoming: IncomingRequest, bodyMode: BodyMode) async throws -> StorageOutcome {
        let requestID = randomHex(8).uppercased()
        func refuse(_ rejection: SigningRejection) async -> StorageOutcome {
            await refusal(rejection, draining: incoming, requestID: requestID, header: "x-amz-request-id")
        }
        guard incoming.method == "PUT" else {
            return await refuse(SigningRejection(status: 405, code: "MethodNotAllowed",
                                                 message: "The specified method is not allowed against this resource."))
        }
        if incoming.isChunked {
            return await refuse(SigningRejection(
                status: 501, code: "NotImplemented",
                message: "A header you provided implies functionality that is not implemented",
                fields: [.init("Header", "Transfer-Encoding")]))
        }
        guard let length = incoming.contentLength else {
            return await refuse(SigningRejection(status: 411, code: "MissingContentLength",
                                                 message: "You must provide the Content-Length HTTP header."))
        }
        let credentials = await state.s3Credentials
        let verification = S3QueryAuth.verify(
            S3IncomingRequest(method: incoming.method, rawPath: incoming.rawPath, rawQuery: incoming.rawQuery,
                              headers: incoming.signingHeaders),
            now: state.now(),
            secretForAccessKey: { $0 == credentials.accessKeyID ? credentials.secret : nil })
        if case .failure(let rejection) = verification { return await refuse(rejection) }
        if length > state.configuration.maxObjectSize {
            return await refuse(SigningRejection(
                status: 400, code: "EntityTooLarge", message: "Your proposed upload exceeds the maximum allowed size"))
        }
        let key = "s3/" + SigningEncoding.percentDecode(String(incoming.rawPath.dropFirst(S3Paths.prefix.count)))
        let bytes: [UInt8]
        do {
            bytes = try await readBody(incoming, limit: state.configuration.maxObjectSize, mode: bodyMode, counting: state)
        } catch BodyReadError.tooLarge {
            return await refuse(SigningRejection(
                status: 400, code: "EntityTooLarge", message: "Your proposed upload exceeds the maximum allowed size"))
        }
        guard bytes.count == length else {
            return await refuse(SigningRejection(
                status: 400, code: "IncompleteBody",
                message: "You did not provide the number of bytes specified by the Content-Length HTTP header"))
        }
        let stored = try await state.storeObject(key: key, bytes: bytes)
        let etag = "\"\(Digest.hash(.md5, stored.bytes).hexString)\""
        return StorageOutcome(
            response: .text(200, "", extraHeaders: [("ETag", etag), ("x-amz-request-id", requestID)]),
            outcome: "ok", imageID: stored.imageID, bytes: bytes.count)
    }
}

/// Reads and discards what is left of a request body (so the connection stays usable); nothing
/// when a handler already read it.
func drain(_ incoming: IncomingRequest) async {
    guard incoming.bodyIteration.begin() else { return }
    do {
        for try await _ in incoming.request.body {}
    } catch {}
}

/// The XML error S3 or OSS sends for an emulated 5xx.
func storageFault(status: Int, s3: Bool) -> Response {
    let code = status == 503 ? (s3 ? "ServiceUnavailable" : "ServiceUnavailable") : "InternalError"
    let message = status == 503 ? "Please reduce your request rate." : "We encountered an internal error. Please try again."
    let rejection = SigningRejection(status: status, code: code, message: message)
    return .text(status, rejection.xmlBody(requestId: randomHex(8).uppercased(), hostId: "alti-emulator"),
                 contentType: "application/xml")
}
