import AltiCrypto
import Foundation

/// What to pre-sign: an S3 request authenticated by AWS Signature V4 in the query string, with
/// an `UNSIGNED-PAYLOAD` body.
public struct S3PresignRequest: Sendable {
    /// `PUT`, `GET`, ...
    public var method: String
    /// `http` or `https`.
    public var scheme: String
    /// `host` or `host:port`, exactly as the client will send it in `Host`.
    public var host: String
    /// The path as it will go on the wire, already percent-encoded (see `S3QueryAuth.encodePath`).
    /// S3 does not normalise paths: this string is also the canonical URI.
    public var path: String
    public var accessKeyId: String
    public var secretAccessKey: String
    public var region: String
    /// The credential-scope service, `s3`.
    public var service: String
    /// The signing time (`X-Amz-Date`).
    public var date: Date
    /// Lifetime in seconds (`X-Amz-Expires`), at most `S3QueryAuth.maxExpires`.
    public var expires: Int
    /// Headers signed besides `host` (e.g. `["content-type": "image/jpeg"]`); names any case.
    public var signedHeaders: [String: String]
    /// The STS session token (`X-Amz-Security-Token`), for temporary credentials.
    public var sessionToken: String?

    public init(method: String, scheme: String = "https", host: String, path: String, accessKeyId: String,
                secretAccessKey: String, region: String, service: String = "s3", date: Date, expires: Int,
                signedHeaders: [String: String] = [:], sessionToken: String? = nil) {
        self.method = method
        self.scheme = scheme
        self.host = host
        self.path = path
        self.accessKeyId = accessKeyId
        self.secretAccessKey = secretAccessKey
        self.region = region
        self.service = service
        self.date = date
        self.expires = expires
        self.signedHeaders = signedHeaders
        self.sessionToken = sessionToken
    }
}

/// A pre-signed URL and what the client must send with it.
public struct S3PresignedURL: Sendable {
    /// `scheme://host/path?X-Amz-...&X-Amz-Signature=...`: send it byte for byte.
    public let url: String
    /// The signed headers other than `host`, lower-case names, with the exact values to send.
    public let headers: [SigningHeader]
    /// `X-Amz-Date + X-Amz-Expires`.
    public let expiresAt: Date
    public let canonicalRequest: String
    public let stringToSign: String
    /// The hex `X-Amz-Signature`.
    public let signature: String
}

/// An incoming request to verify, as received on the wire.
public struct S3IncomingRequest: Sendable {
    public var method: String
    /// The path exactly as received (still percent-encoded), without the query.
    public var rawPath: String
    /// The query exactly as received, without `?` ("" when none).
    public var rawQuery: String
    /// All request headers, including `Host`.
    public var headers: [SigningHeader]

    public init(method: String, rawPath: String, rawQuery: String, headers: [SigningHeader]) {
        self.method = method
        self.rawPath = rawPath
        self.rawQuery = rawQuery
        self.headers = headers
    }
}

/// A request whose pre-signed query authentication checked out.
public struct S3VerifiedRequest: Sendable, Equatable {
    public let accessKeyId: String
    public let region: String
    /// `X-Amz-Date`.
    public let signedAt: Date
    /// `X-Amz-Date + X-Amz-Expires`.
    public let expiresAt: Date
    /// Lower-case names from `X-Amz-SignedHeaders`.
    public let signedHeaders: [String]
    /// `X-Amz-Security-Token`, if the URL carries one (the caller decides whether it is still valid).
    public let sessionToken: String?
}

/// S3 SigV4 query authentication (pre-signed URLs): pure functions, the time is always injected.
public enum S3QueryAuth {
    public static let algorithm = "AWS4-HMAC-SHA256"
    /// The longest `X-Amz-Expires` S3 accepts: 7 days.
    public static let maxExpires = 604_800
    static let unsignedPayload = "UNSIGNED-PAYLOAD"

    /// Percent-encodes a decoded object path the way S3 clients do (each byte but
    /// `A-Za-z0-9-._~` and `/`), e.g. `/bucket/a b+c.jpg` -> `/bucket/a%20b%2Bc.jpg`.
    public static func encodePath(_ decodedPath: String) -> String {
        SigningEncoding.uriEncode(decodedPath, keepSlash: true)
    }

    // MARK: Signing

    /// Builds a pre-signed URL. The query parameters come out in canonical (sorted) order,
    /// followed by `X-Amz-Signature`.
    public static func presign(_ r: S3PresignRequest) -> S3PresignedURL {
        let amzDate = SigningTime.iso8601Basic(r.date)
        let scope = "\(SigningTime.yyyymmdd(r.date))/\(r.region)/\(r.service)/aws4_request"
        var headers: [String: String] = ["host": r.host]
        for (name, value) in r.signedHeaders { headers[name.lowercased()] = value }
        let signedNames = headers.keys.sorted()
        var query: [(name: String, value: String)] = [
            ("X-Amz-Algorithm", algorithm),
            ("X-Amz-Credential", "\(r.accessKeyId)/\(scope)"),
            ("X-Amz-Date", amzDate),
            ("X-Amz-Expires", String(r.expires)),
            ("X-Amz-SignedHeaders", signedNames.joined(separator: ";")),
        ]
        if let token = r.sessionToken { query.append(("X-Amz-Security-Token", token)) }
        let canonicalQuery = canonicalQueryString(query)
        let canonicalRequest = makeCanonicalRequest(
            method: r.method, canonicalURI: r.path, canonicalQuery: canonicalQuery,
            headers: signedNames.map { ($0, SigningUtil.trimAll(headers[$0] ?? "")) })
        let stringToSign = makeStringToSign(amzDate: amzDate, scope: scope, canonicalRequest: canonicalRequest)
        let signature = signatureHex(secret: r.secretAccessKey, date: SigningTime.yyyymmdd(r.date),
                                     region: r.region, service: r.service, stringToSign: stringToSign)
        let url = "\(r.scheme)://\(r.host)\(r.path)?\(canonicalQuery)&X-Amz-Signature=\(signature)"
        return S3PresignedURL(
            url: url, headers: signedNames.filter { $0 != "host" }.map { ($0, headers[$0] ?? "") },
            expiresAt: r.date.addingTimeInterval(TimeInterval(r.expires)),
            canonicalRequest: canonicalRequest, stringToSign: stringToSign, signature: signature)
    }

    static func canonicalQueryString(_ pairs: [(name: String, value: String)]) -> String {
        pairs.map { (SigningEncoding.uriEncode($0.name), SigningEncoding.uriEncode($0.value)) }
            .sorted { $0.0 != $1.0 ? $0.0 < $1.0 : $0.1 < $1.1 }
            .map { "\($0.0)=\($0.1)" }
            .joined(separator: "&")
    }

    static func makeCanonicalRequest(method: String, canonicalURI: String, canonicalQuery: String,
                                     headers: [(String, String)]) -> String {
        let canonicalHeaders = headers.map { "\($0.0):\($0.1)\n" }.joined()
        let signed = headers.map(\.0).joined(separator: ";")
        return "\(method)\n\(canonicalURI)\n\(canonicalQuery)\n\(canonicalHeaders)\n\(signed)\n\(unsignedPayload)"
    }

    static func makeStringToSign(amzDate: String, scope: String, canonicalRequest: String) -> String {
        "\(algorithm)\n\(amzDate)\n\(scope)\n\(Digest.sha256Hex(Array(canonicalRequest.utf8)))"
    }

    /// hex(HMAC(kSigning, stringToSign)) with kSigning derived from `AWS4` + secret.
    public static func signatureHex(secret: String, date: String, region: String, service: String,
                                    stringToSign: String) -> String {
        var key = Digest.hmac(.sha256, key: Array("AWS4\(secret)".utf8), string: date)
        key = Digest.hmac(.sha256, key: key, string: region)
        key = Digest.hmac(.sha256, key: key, string: service)
        key = Digest.hmac(.sha256, key: key, string: "aws4_request")
        return Digest.hmac(.sha256, key: key, string: stringToSign).hexString
    }

    // MARK: Verification

    static func queryError(_ message: String, _ fields: [SigningRejection.Field] = []) -> SigningRejection {
        SigningRejection(status: 403, code: "AuthorizationQueryParametersError", message: message, fields: fields)
    }

    /// Verifies a pre-signed request as S3 does.
    ///
    /// - Parameters:
    ///   - request: method, raw path, raw query and headers as received.
    ///   - now: the server's clock.
    ///   - region: when set, a credential scoped to another region is refused.
    ///   - service: the expected credential-scope service.
    ///   - secretForAccessKey: the secret of an access key id, nil if unknown.
    /// - Returns: the verified request, or the rejection S3 would send (status, code, message,
    ///   extra XML fields), checked in this order: missing/malformed parameters
    ///   (`AuthorizationQueryParametersError`), unknown key (`InvalidAccessKeyId`), expiry
    ///   (`AccessDenied` "Request has expired"), unsigned `x-amz-*` headers (`AccessDenied`),
    ///   signature (`SignatureDoesNotMatch`).
    public static func verify(_ request: S3IncomingRequest, now: Date, region: String? = nil, service: String = "s3",
                              secretForAccessKey: (String) -> String?) -> Result<S3VerifiedRequest, SigningRejection> {
        let pairs = SigningEncoding.parseQuery(request.rawQuery)
        func param(_ name: String) -> String? { pairs.first { $0.name == name }?.value }
        let required = ["X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Signature", "X-Amz-Date",
                        "X-Amz-SignedHeaders", "X-Amz-Expires"]
        guard required.allSatisfy({ param($0) != nil }),
              let algo = param("X-Amz-Algorithm"), let credential = param("X-Amz-Credential"),
              let provided = param("X-Amz-Signature"), let amzDate = param("X-Amz-Date"),
              let signedHeadersParam = param("X-Amz-SignedHeaders"), let expiresText = param("X-Amz-Expires")
        else {
            return .failure(queryError(
                "Query-string authentication version 4 requires the X-Amz-Algorithm, X-Amz-Credential, "
                    + "X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and X-Amz-Expires parameters."))
        }
        guard algo == algorithm else {
            return .failure(queryError("X-Amz-Algorithm only supports \"AWS4-HMAC-SHA256\""))
        }
        guard let expires = Int(expiresText), expires >= 0, expiresText.allSatisfy(\.isNumber) else {
            return .failure(queryError("X-Amz-Expires should be a number"))
        }
        guard expires <= maxExpires else {
            return .failure(queryError(
                "X-Amz-Expires must be less than a week (in seconds) that is; the given X-Amz-Expires "
                    + "must be less than 604800 seconds",
                [.init("X-Amz-Expires", expiresText)]))
        }
        guard let signedAt = SigningTime.parseISO8601Basic(amzDate) else {
            return .failure(queryError(
                "X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\""))
        }
        let scopeParts = credential.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        guard scopeParts.count == 5, !scopeParts[0].isEmpty, scopeParts[4] == "aws4_request" else {
            return .failure(queryError(
                "Error parsing the X-Amz-Credential parameter; the Credential is mal-formed; expecting "
                    + "\"<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request\"."))
        }
        let (accessKeyId, scopeDate, scopeRegion, scopeService) = (scopeParts[0], scopeParts[1], scopeParts[2],
                                                                     scopeParts[3])
        guard scopeDate == SigningTime.yyyymmdd(signedAt) else {
            return .failure(queryError(
                "Invalid credential date \"\(scopeDate)\". This date is not the same as X-Amz-Date: \"\(amzDate.prefix(8))\"."))
        }
        guard scopeService == service else {
            return .failure(queryError(
                "Error parsing the X-Amz-Credential parameter; incorrect service \"\(scopeService)\". "
                    + "This endpoint belongs to \"\(service)\"."))
        }
        if let region, scopeRegion != region {
            return .failure(queryError(
                "Error parsing the X-Amz-Credential parameter; the region '\(scopeRegion)' is wrong; "
                    + "expecting '\(region)'",
                [.init("Region", region)]))
        }
        let signedNames = signedHeadersParam.split(separator: ";", omittingEmptySubsequences: false)
            .map { $0.lowercased() }
        guard signedNames.contains("host"), !signedNames.contains("") else {
            return .failure(queryError("X-Amz-SignedHeaders must contain host"))
        }
        guard let secret = secretForAccessKey(accessKeyId) else {
            return .failure(SigningRejection(
                status: 403, code: "InvalidAccessKeyId",
                message: "The AWS Access Key Id you provided does not exist in our records.",
                fields: [.init("AWSAccessKeyId", accessKeyId)]))
        }
        let expiresAt = signedAt.addingTimeInterval(TimeInterval(expires))
        if now > expiresAt {
            return .failure(SigningRejection(
                status: 403, code: "AccessDenied", message: "Request has expired",
                fields: [.init("X-Amz-Expires", expiresText),
                         .init("Expires", SigningTime.iso8601Extended(expiresAt)),
                         .init("ServerTime", SigningTime.iso8601Extended(now))]))
        }
        let headerMap = SigningUtil.headerMap(request.headers)
        var unsigned: [String] = []
        for h in request.headers {
            let name = h.name.lowercased()
            if name.hasPrefix("x-amz-"), !signedNames.contains(name), !unsigned.contains(name) {
                unsigned.append(name)
            }
        }
        if !unsigned.isEmpty {
            return .failure(SigningRejection(
                status: 403, code: "AccessDenied",
                message: "There were headers present in the request which were not signed",
                fields: [.init("HeadersNotSigned", unsigned.joined(separator: ", "))]))
        }
        let canonicalQuery = canonicalQueryString(pairs.filter { $0.name != "X-Amz-Signature" })
        let canonicalRequest = makeCanonicalRequest(
            method: request.method, canonicalURI: request.rawPath, canonicalQuery: canonicalQuery,
            headers: signedNames.map { ($0, SigningUtil.trimAll(headerMap[$0] ?? "")) })
        let scope = "\(scopeDate)/\(scopeRegion)/\(scopeService)/aws4_request"
        let stringToSign = makeStringToSign(amzDate: amzDate, scope: scope, canonicalRequest: canonicalRequest)
        let expected = signatureHex(secret: secret, date: scopeDate, region: scopeRegion, service: scopeService,
                                    stringToSign: stringToSign)
        // Exactly as sent: the signature is lower-case hex, an upper-cased one is another string to S3.
        guard SigningUtil.constantTimeEqual(expected, provided) else {
            return .failure(SigningRejection(
                status: 403, code: "SignatureDoesNotMatch",
                message: "The request signature we calculated does not match the signature you provided. "
                    + "Check your key and signing method.",
                fields: [.init("AWSAccessKeyId", accessKeyId),
                         .init("StringToSign", stringToSign),
                         .init("SignatureProvided", provided),
                         .init("StringToSignBytes", SigningUtil.spacedHex(stringToSign)),
                         .init("CanonicalRequest", canonicalRequest),
                         .init("CanonicalRequestBytes", SigningUtil.spacedHex(canonicalRequest))]))
        }
        return .success(S3VerifiedRequest(
            accessKeyId: accessKeyId, region: scopeRegion, signedAt: signedAt, expiresAt: expiresAt,
            signedHeaders: signedNames, sessionToken: param("X-Amz-Security-Token")))
    }
}
