import AltiCore
import Foundation

/// Temporary OSS credentials (`uploadImageOSS { sts { ... } }`): valid about an hour, write-only
/// under `<pid>/`. The secret and the token are never printed, logged or stored.
public struct STSCredential: Sendable, Equatable, CustomStringConvertible {
    public var accessKeyID: String
    public var accessKeySecret: String
    public var securityToken: String
    /// The OSS bucket the objects go to (not the API's BucketOSS name).
    public var bucket: String
    /// The OSS endpoint: a host (`oss-cn-shenzhen.aliyuncs.com`) or an origin (`http://127.0.0.1:8082`).
    public var endpoint: String
    public var expiresAt: Date

    public init(accessKeyID: String, accessKeySecret: String, securityToken: String, bucket: String, endpoint: String,
                expiresAt: Date) {
        self.accessKeyID = accessKeyID
        self.accessKeySecret = accessKeySecret
        self.securityToken = securityToken
        self.bucket = bucket
        self.endpoint = endpoint
        self.expiresAt = expiresAt
    }

    /// Without the secrets, so a stray interpolation cannot leak them.
    public var description: String { "STS \(bucket) at \(endpoint) until \(expiresAt)" }

    /// `expire` as the API writes it: `2006-01-02T15:04:05Z` (UTC), fractional seconds allowed.
    public static func parseExpire(_ text: String) -> Date? {
        let plain = ISO8601DateFormatter()
        plain.formatOptions = [.withInternetDateTime]
        if let date = plain.date(from: text) { return date }
        let fractional = ISO8601DateFormatter()
        fractional.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return fractional.date(from: text)
    }
}

/// `uploadImageOSS` for a window of images in one aliased request.
public struct OSSRegistration: Sendable {
    /// Present when asked for (the client held no credential still valid).
    public var sts: STSCredential?
    /// Keyed by sha1; a per-image refusal is a `.failure`.
    public var images: [String: Result<RemoteImage, AltiError>]
}

extension AltizureCatalog {
    static let stsFields = "sts { id secret token bucket endpoint expire }"

    /// Registers `images` with `uploadImageOSS` (one aliased field each, `image` only) and, when
    /// `withSTS`, asks for the STS fields once, on the first field: the upload guide asks for the
    /// credential only when the client holds none still valid. With no image and `withSTS`, one
    /// STS-only field (a random 16-hex filename, no type or checksum: it creates no image), as
    /// the official CLI does.
    public func registerOSS(project: String, bucket: String, images: [ImageRegistration], withSTS: Bool) async throws
        -> OSSRegistration
    {
        precondition(images.count <= batchLimit)
        guard !images.isEmpty || withSTS else { return OSSRegistration(sts: nil, images: [:]) }
        var batch = AliasedDocument()
        batch.declare("pid", "ID!", .string(project))
        batch.declare("bucket", "BucketOSS!", .string(bucket))
        if images.isEmpty {
            let name = (0..<16).map { _ in String(UInt8.random(in: 0..<16), radix: 16) }.joined()
            batch.declare("f0", "String!", .string(name))
            batch.field("r0: uploadImageOSS(pid: $pid, bucket: $bucket, filename: $f0) { \(Self.stsFields) }")
        }
        for (i, image) in images.enumerated() {
            batch.declare("f\(i)", "String!", .string(image.filename))
            batch.declare("t\(i)", "IMAGE_TYPE", .string(image.imageType))
            batch.declare("c\(i)", "String", .string(image.sha1))
            let sts = withSTS && i == 0 ? " \(Self.stsFields)" : ""
            batch.field(
                "r\(i): uploadImageOSS(pid: $pid, bucket: $bucket, filename: $f\(i), type: $t\(i), checksum: $c\(i)) { image { id state name filename }\(sts) }")
        }
        let response = try await client.execute(
            batch.document("mutation", "uploadImageOSS"), variables: batch.variables, operationName: "uploadImageOSS",
            withToken: true)
        if let error = response.errors.first(where: { $0.alias == nil && $0.message.contains("BucketOSS") }) {
            throw AltiError(.usage, "the server does not know the OSS bucket '\(bucket)' (\(error.message)); leave --bucket out to use the nearest one")
        }
        try failOnWholeRequestErrors(response, doing: "register images in OSS bucket \(bucket)")
        var sts: STSCredential?
        if withSTS {
            if let error = response.errors.first(where: { $0.alias == "r0" }), images.isEmpty {
                throw Self.mapError(error, doing: "get OSS credentials for project \(project)")
            }
            sts = try Self.decodeSTS(response.data["r0"]?["sts"], project: project)
        }
        var result: [String: Result<RemoteImage, AltiError>] = [:]
        for (i, image) in images.enumerated() {
            let alias = "r\(i)"
            if let error = response.errors.first(where: { $0.alias == alias }) {
                result[image.sha1] = .failure(AltiError(.protocolError, "the server refused to register \(image.filename): \(error.message)"))
            } else if let registered = Self.decodeImage(response.data[alias]?["image"]) {
                result[image.sha1] = .success(registered)
            } else {
                result[image.sha1] = .failure(AltiError(.protocolError, "the server registered \(image.filename) without an image id"))
            }
        }
        return OSSRegistration(sts: sts, images: result)
    }

    static func decodeSTS(_ value: JSONValue?, project: String) throws -> STSCredential {
        guard let value, let id = value["id"]?.nonEmptyString, let secret = value["secret"]?.nonEmptyString,
              let token = value["token"]?.nonEmptyString, let bucket = value["bucket"]?.nonEmptyString,
              let endpoint = value["endpoint"]?.nonEmptyString
        else {
            throw AltiError(.protocolError, "the server gave no usable OSS credentials for project \(project) (sts missing or incomplete)")
        }
        let expireText = value["expire"]?.string ?? ""
        guard let expires = STSCredential.parseExpire(expireText) else {
            throw AltiError(.protocolError, "the server's OSS credentials have an expiry alti cannot read ('\(expireText)')")
        }
        return STSCredential(accessKeyID: id, accessKeySecret: secret, securityToken: token, bucket: bucket,
                             endpoint: endpoint, expiresAt: expires)
    }

    /// `doneImageUpload` for each image id (OSS: the bytes are stored; verify them); keyed by id.
    public func doneUpload(imageIDs: [String]) async throws -> [String: RemoteImage] {
        try await perImageMutation("doneImageUpload", imageIDs: imageIDs)
    }
}
