import AltiCrypto
import Foundation

/// Aliyun OSS credentials: a long-lived key pair, or STS temporary credentials with a token.
public struct OSSCredentials: Sendable, Equatable {
    public var accessKeyId: String
    public var accessKeySecret: String
    /// The STS security token; sent as `x-oss-security-token` and signed.
    public var securityToken: String?

    public init(accessKeyId: String, accessKeySecret: String, securityToken: String? = nil) {
        self.accessKeyId = accessKeyId
        self.accessKeySecret = accessKeySecret
        self.securityToken = securityToken
    }
}

/// Which OSS signature to produce.
public enum OSSSignatureVersion: Sendable, Equatable {
    /// `OSS <ak>:<base64 HMAC-SHA1>`.
    case v1
    /// `OSS4-HMAC-SHA256 Credential=...`; `region` is the bare region id, e.g. `cn-hangzhou`.
    case v4(region: String)
}

/// An OSS request, as the signers see it. Bucket and key are DECODED (raw UTF-8): both signature
/// versions canonicalise `/<bucket>/<key>` whatever the host form and wire encoding.
public struct OSSRequest: Sendable {
    public var method: String
    public var bucket: String?
    public var key: String?
    /// Request headers (any case, in order); repeated names are joined with "," when signing.
    public var headers: [SigningHeader]
    /// Decoded query parameters; an empty value is a bare parameter (`?acl`).
    public var query: [(name: String, value: String)]

    public init(method: String, bucket: String?, key: String?, headers: [SigningHeader] = [],
                query: [(name: String, value: String)] = []) {
        self.method = method
        self.bucket = bucket
        self.key = key
        self.headers = headers
        self.query = query
    }

    /// The value of header `name` (case-insensitive); repeated headers joined with ",".
    public func header(_ name: String) -> String? { SigningUtil.headerMap(headers)[name.lowercased()] }

    /// Replaces every header called `name` (case-insensitive) by one `name: value`.
    public mutating func setHeader(_ name: String, _ value: String) {
        headers.removeAll { $0.name.lowercased() == name.lowercased() }
        headers.append((name, value))
    }
}

/// The outcome of signing: the request headers to send and what the signature covered.
public struct OSSSignedRequest: Sendable {
    /// The caller's headers plus those the signer set (`Date`, `x-oss-date`,
    /// `x-oss-security-token`, `x-oss-content-sha256`, `Authorization`).
    public let headers: [SigningHeader]
    public let authorization: String
    public let stringToSign: String
    /// V4 only ("" for V1).
    public let canonicalRequest: String
}

/// OSS request signing, V1 (HMAC-SHA1) and V4 (OSS4-HMAC-SHA256). Pure: the time is injected.
public enum OSSSigner {
    public static let v4Algorithm = "OSS4-HMAC-SHA256"
    static let unsignedPayload = "UNSIGNED-PAYLOAD"

    /// Query parameters V1 signs in the canonical resource (besides any `x-oss-*` parameter).
    public static let v1SignedSubResources: Set<String> = [
        "acl", "bucketInfo", "location", "stat", "delete", "append", "tagging", "objectMeta", "uploads",
        "uploadId", "partNumber", "security-token", "position", "response-content-type",
        "response-content-language", "response-expires", "response-cache-control",
        "response-content-disposition", "response-content-encoding", "restore", "callback", "callback-var",
        "versions", "versioning", "versionId", "sequential", "continuation-token", "regionList", "cloudboxes",
        "symlink",
    ]

    /// Signs `request` in the `Authorization` header.
    ///
    /// V1 sets `Date` (RFC 1123 of `date`) and, for STS, `x-oss-security-token`; the date slot of
    /// the StringToSign is `x-oss-date` when the caller set one, else `Date`.
    /// V4 sets `x-oss-date` (ISO 8601 basic), `Date`, `x-oss-content-sha256: UNSIGNED-PAYLOAD` and,
    /// for STS, `x-oss-security-token`; `additionalHeaders` (names, any case) are signed too when
    /// present and not already signed by default.
    public static func sign(_ request: OSSRequest, credentials: OSSCredentials, version: OSSSignatureVersion,
                            date: Date, additionalHeaders: [String] = []) -> OSSSignedRequest {
        var r = request
        switch version {
        case .v1:
            r.setHeader("Date", SigningTime.rfc1123(date))
            if let token = credentials.securityToken { r.setHeader("x-oss-security-token", token) }
            let slot = r.header("x-oss-date") ?? r.header("Date") ?? ""
            let sts = v1StringToSign(r, dateSlot: slot)
            let auth = "OSS \(credentials.accessKeyId):\(v1Signature(secret: credentials.accessKeySecret, stringToSign: sts))"
            r.setHeader("Authorization", auth)
            return OSSSignedRequest(headers: r.headers, authorization: auth, stringToSign: sts, canonicalRequest: "")
        case .v4(let region):
            let datetime = SigningTime.iso8601Basic(date)
            let day = SigningTime.yyyymmdd(date)
            r.setHeader("x-oss-date", datetime)
            r.setHeader("Date", SigningTime.rfc1123(date))
            if let token = credentials.securityToken { r.setHeader("x-oss-security-token", token) }
            r.setHeader("x-oss-content-sha256", unsignedPayload)
            let present = Set(r.headers.map { $0.name.lowercased() })
            let additional = Set(additionalHeaders.map { $0.lowercased() })
                .filter { !isV4DefaultSigned($0) && present.contains($0) }.sorted()
            let canonical = v4CanonicalRequest(r, additionalHeaders: additional)
            let scope = v4Scope(date: day, region: region)
            let sts = v4StringToSign(datetime: datetime, scope: scope, canonicalRequest: canonical)
            let signature = v4Signature(secret: credentials.accessKeySecret, date: day, region: region,
                                        stringToSign: sts)
            var auth = "\(v4Algorithm) Credential=\(credentials.accessKeyId)/\(scope)"
            if !additional.isEmpty { auth += ",AdditionalHeaders=" + additional.joined(separator: ";") }
            auth += ",Signature=" + signature
            r.setHeader("Authorization", auth)
            return OSSSignedRequest(headers: r.headers, authorization: auth, stringToSign: sts,
                                    canonicalRequest: canonical)
        }
    }

    // MARK: V1

    /// `VERB\nContent-MD5\nContent-Type\n<dateSlot>\n` + CanonicalizedOSSHeaders + CanonicalizedResource.
    public static func v1StringToSign(_ r: OSSRequest, dateSlot: String) -> String {
        let map = SigningUtil.headerMap(r.headers)
        let ossHeaders = map.keys.filter { $0.hasPrefix("x-oss-") }.sorted()
            .map { "\($0):\(map[$0] ?? "")\n" }.joined()
        return "\(r.method)\n\(map["content-md5"] ?? "")\n\(map["content-type"] ?? "")\n\(dateSlot)\n"
            + ossHeaders + v1CanonicalResource(r)
    }

    /// `/<bucket>/<key>` (raw UTF-8) + `?` + the signed sub-resources, sorted, `k` or `k=v`.
    public static func v1CanonicalResource(_ r: OSSRequest) -> String {
        var resource = "/"
        if let bucket = r.bucket { resource += bucket + "/" }
        if let key = r.key { resource += key }
        var seen = Set<String>()
        var params: [(String, String)] = []
        for p in r.query where v1SignedSubResources.contains(p.name) || p.name.hasPrefix("x-oss-") {
            if seen.insert(p.name).inserted { params.append((p.name, p.value)) }
        }
        let sub = params.sorted { $0.0 < $1.0 }.map { $0.1.isEmpty ? $0.0 : "\($0.0)=\($0.1)" }
            .joined(separator: "&")
        return sub.isEmpty ? resource : resource + "?" + sub
    }

    /// base64(HMAC-SHA1(secret, stringToSign)).
    public static func v1Signature(secret: String, stringToSign: String) -> String {
        SigningUtil.base64(Digest.hmac(.sha1, key: Array(secret.utf8), string: stringToSign))
    }

    /// A V1 pre-signed (query) request: `Expires` (Unix seconds) takes the date slot; returns the
    /// encoded query string to append after `?` (the request's own parameters, `security-token`
    /// for STS, `Expires`, `OSSAccessKeyId`, `Signature`, sorted by name) and the StringToSign.
    public static func presignV1(_ request: OSSRequest, credentials: OSSCredentials,
                                 expires: Date) -> (query: String, stringToSign: String) {
        var r = request
        if let token = credentials.securityToken { r.query.append(("security-token", token)) }
        let expiresText = String(Int64(expires.timeIntervalSince1970.rounded(.down)))
        let sts = v1StringToSign(r, dateSlot: expiresText)
        let signature = v1Signature(secret: credentials.accessKeySecret, stringToSign: sts)
        let all = r.query + [("Expires", expiresText), ("OSSAccessKeyId", credentials.accessKeyId),
                             ("Signature", signature)]
        let query = all.map { (SigningEncoding.uriEncode($0.0), SigningEncoding.uriEncode($0.1)) }
            .sorted { $0.0 < $1.0 }
            .map { "\($0.0)=\($0.1)" }.joined(separator: "&")
        return (query, sts)
    }

    // MARK: V4

    static func isV4DefaultSigned(_ lowerName: String) -> Bool {
        lowerName.hasPrefix("x-oss-") || lowerName == "content-type" || lowerName == "content-md5"
    }

    /// `date/region/oss/aliyun_v4_request`.
    public static func v4Scope(date: String, region: String) -> String { "\(date)/\(region)/oss/aliyun_v4_request" }

    /// VERB, CanonicalURI, CanonicalQuery, CanonicalHeaders, AdditionalHeaders, HashedPayload,
    /// separated by `\n`. `additionalHeaders` are lower-case names, in the order given.
    /// HashedPayload is the request's `x-oss-content-sha256` (`UNSIGNED-PAYLOAD` when absent, for
    /// building blocks only: `sign` always sets the header and `OSSVerifier` refuses a V4 request
    /// without it before it gets here).
    public static func v4CanonicalRequest(_ r: OSSRequest, additionalHeaders: [String]) -> String {
        var uri = "/"
        if let bucket = r.bucket { uri += bucket + "/" }
        if let key = r.key { uri += key }
        let canonicalURI = SigningEncoding.uriEncode(uri, keepSlash: true)
        let encoded: [(name: String, value: String)] = r.query.map {
            (SigningEncoding.uriEncode($0.name), SigningEncoding.uriEncode($0.value))
        }
        let sortedQuery = encoded.sorted { a, b in a.name != b.name ? a.name < b.name : a.value < b.value }
        let canonicalQuery = sortedQuery.map { p -> String in p.value.isEmpty ? p.name : p.name + "=" + p.value }
            .joined(separator: "&")
        let map = SigningUtil.headerMap(r.headers)
        let additional = Set(additionalHeaders)
        let signedNames = map.keys.filter { isV4DefaultSigned($0) || additional.contains($0) }.sorted()
        let canonicalHeaders = signedNames.map { "\($0):\(map[$0] ?? "")\n" }.joined()
        let payload = map["x-oss-content-sha256"].flatMap { $0.isEmpty ? nil : $0 } ?? unsignedPayload
        return "\(r.method)\n\(canonicalURI)\n\(canonicalQuery)\n\(canonicalHeaders)\n"
            + "\(additionalHeaders.joined(separator: ";"))\n\(payload)"
    }

    /// `OSS4-HMAC-SHA256\n<datetime>\n<scope>\n` + hex(SHA-256(canonicalRequest)).
    public static func v4StringToSign(datetime: String, scope: String, canonicalRequest: String) -> String {
        "\(v4Algorithm)\n\(datetime)\n\(scope)\n\(Digest.sha256Hex(Array(canonicalRequest.utf8)))"
    }

    /// hex(HMAC(k4, stringToSign)), k1 = HMAC("aliyun_v4" + secret, date), k2 = HMAC(k1, region),
    /// k3 = HMAC(k2, "oss"), k4 = HMAC(k3, "aliyun_v4_request").
    public static func v4Signature(secret: String, date: String, region: String, stringToSign: String) -> String {
        var key = Digest.hmac(.sha256, key: Array("aliyun_v4\(secret)".utf8), string: date)
        key = Digest.hmac(.sha256, key: key, string: region)
        key = Digest.hmac(.sha256, key: key, string: "oss")
        key = Digest.hmac(.sha256, key: key, string: "aliyun_v4_request")
        return Digest.hmac(.sha256, key: key, string: stringToSign).hexString
    }
}
