import Foundation

/// An incoming OSS request as the verifier needs it. Bucket and key are DECODED.
public struct OSSIncomingRequest: Sendable {
    public var method: String
    public var bucket: String?
    public var key: String?
    /// Decoded query parameters.
    public var query: [(name: String, value: String)]
    /// All request headers, including `Authorization`.
    public var headers: [SigningHeader]

    public init(method: String, bucket: String?, key: String?, query: [(name: String, value: String)] = [],
                headers: [SigningHeader]) {
        self.method = method
        self.bucket = bucket
        self.key = key
        self.query = query
        self.headers = headers
    }

    /// A path-style request, `/<bucket>/<key>` as received (percent-encoded; `%2F` inside the key
    /// is a `/`), with its raw query.
    public init(method: String, pathStyleRawPath rawPath: String, rawQuery: String, headers: [SigningHeader]) {
        let decoded = SigningEncoding.percentDecode(rawPath)
        var rest = decoded.hasPrefix("/") ? String(decoded.dropFirst()) : decoded
        var bucket: String?
        if let slash = rest.firstIndex(of: "/") {
            bucket = String(rest[..<slash])
            rest = String(rest[rest.index(after: slash)...])
        } else {
            bucket = rest.isEmpty ? nil : rest
            rest = ""
        }
        self.init(method: method, bucket: bucket, key: bucket == nil ? nil : rest,
                  query: SigningEncoding.parseQuery(rawQuery), headers: headers)
    }
}

/// What the verifier needs to know about an access key id.
public struct OSSKeyRecord: Sendable, Equatable {
    public var accessKeySecret: String
    /// For STS credentials: the token the request must carry in `x-oss-security-token`.
    public var securityToken: String?

    public init(accessKeySecret: String, securityToken: String? = nil) {
        self.accessKeySecret = accessKeySecret
        self.securityToken = securityToken
    }
}

/// A request whose OSS signature checked out.
public struct OSSVerifiedRequest: Sendable, Equatable {
    public let accessKeyId: String
    public let version: OSSSignatureVersion
    /// The time the request claims (`x-oss-date`, or `Date` for V1).
    public let requestTime: Date
    public let securityToken: String?
}

/// Server-side verification of OSS V1 and V4 header signatures. Pure: `now` is injected.
/// STS expiry and which keys a credential may write are the caller's business.
public enum OSSVerifier {
    /// The largest clock difference OSS accepts, 15 minutes.
    public static let maxSkew: TimeInterval = 900

    static let mismatchMessage = "The request signature we calculated does not match the signature you provided. "
        + "Check your key and signing method."

    static func invalidArgument(_ message: String) -> SigningRejection {
        SigningRejection(status: 400, code: "InvalidArgument", message: message)
    }

    static func accessDenied(_ message: String) -> SigningRejection {
        SigningRejection(status: 403, code: "AccessDenied", message: message)
    }

    enum ParsedAuthorization {
        case v1(accessKeyId: String, signature: String)
        case v4(accessKeyId: String, date: String, region: String, product: String,
                additionalHeaders: [String], signature: String)
    }

    /// Parses `OSS ak:sig` or `OSS4-HMAC-SHA256 k=v,k=v` (pairs in any order, spaces allowed).
    static func parseAuthorization(_ value: String) -> Result<ParsedAuthorization, SigningRejection> {
        let header = SigningUtil.trim(value)
        if header.hasPrefix("OSS ") {
            let cred = SigningUtil.trim(String(header.dropFirst(4)))
            guard let colon = cred.lastIndex(of: ":") else {
                return .failure(invalidArgument("Authorization header is invalid."))
            }
            let ak = String(cred[..<colon]), sig = String(cred[cred.index(after: colon)...])
            guard !ak.isEmpty, !sig.isEmpty, !ak.contains(" ") else {
                return .failure(invalidArgument("Authorization header is invalid."))
            }
            return .success(.v1(accessKeyId: ak, signature: sig))
        }
        if header.hasPrefix(OSSSigner.v4Algorithm + " ") {
            var fields: [String: String] = [:]
            for item in header.dropFirst(OSSSigner.v4Algorithm.count + 1).split(separator: ",") {
                let pair = SigningUtil.trim(String(item))
                guard let eq = pair.firstIndex(of: "=") else {
                    return .failure(invalidArgument("Authorization header is invalid."))
                }
                fields[SigningUtil.trim(String(pair[..<eq]))] = SigningUtil.trim(String(pair[pair.index(after: eq)...]))
            }
            guard let credential = fields["Credential"], let signature = fields["Signature"], !signature.isEmpty
            else {
                return .failure(invalidArgument("Authorization header is invalid: Credential and Signature are required."))
            }
            let parts = credential.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
            guard parts.count == 5, !parts[0].isEmpty, parts[4] == "aliyun_v4_request" else {
                return .failure(invalidArgument("Invalid credential in Authorization header."))
            }
            let additional = (fields["AdditionalHeaders"] ?? "").split(separator: ";").map { $0.lowercased() }
            return .success(.v4(accessKeyId: parts[0], date: parts[1], region: parts[2], product: parts[3],
                                additionalHeaders: additional, signature: signature))
        }
        return .failure(invalidArgument("Authorization header is invalid."))
    }

    /// Verifies the `Authorization` header of `request` as OSS does.
    ///
    /// Order of checks: `Authorization` present (403 AccessDenied) and well-formed (400
    /// InvalidArgument); request time valid (403 AccessDenied) and within 15 minutes of `now`
    /// (403 RequestTimeTooSkewed); V4 scope date, product and (when `region` is set) region, and
    /// the `x-oss-content-sha256` header (400 InvalidArgument); access key known (403 InvalidAccessKeyId); security token equal to
    /// the key's (403 InvalidSecurityToken); signature (403 SignatureDoesNotMatch, constant-time).
    public static func verify(_ request: OSSIncomingRequest, now: Date, region: String? = nil,
                              keyRecord: (String) -> OSSKeyRecord?) -> Result<OSSVerifiedRequest, SigningRejection> {
        let signing = OSSRequest(method: request.method, bucket: request.bucket, key: request.key,
                                 headers: request.headers.filter { $0.name.lowercased() != "authorization" },
                                 query: request.query)
        let map = SigningUtil.headerMap(request.headers)
        guard let authorization = map["authorization"], !authorization.isEmpty else {
            return .failure(accessDenied("Anonymous access is forbidden for this operation."))
        }
        let parsed: ParsedAuthorization
        switch parseAuthorization(authorization) {
        case .failure(let rejection): return .failure(rejection)
        case .success(let p): parsed = p
        }

        // The request time.
        let timeText: String?
        let requestTime: Date?
        switch parsed {
        case .v1:
            timeText = map["x-oss-date"] ?? map["date"]
            requestTime = timeText.flatMap(SigningTime.parseRFC1123)
        case .v4:
            timeText = map["x-oss-date"]
            requestTime = timeText.flatMap(SigningTime.parseISO8601Basic)
        }
        guard let timeText, let requestTime else {
            return .failure(accessDenied("OSS authentication requires a valid Date."))
        }
        if abs(requestTime.timeIntervalSince(now)) > maxSkew {
            return .failure(SigningRejection(
                status: 403, code: "RequestTimeTooSkewed",
                message: "The difference between the request time and the current time is too large.",
                fields: [.init("RequestTime", timeText),
                         .init("ServerTime", SigningTime.iso8601Extended(now)),
                         .init("MaxAllowedSkewMilliseconds", String(Int(maxSkew * 1000)))]))
        }

        let accessKeyId: String
        switch parsed {
        case .v1(let ak, _): accessKeyId = ak
        case .v4(let ak, let date, let scopeRegion, let product, _, _):
            accessKeyId = ak
            guard date == String(timeText.prefix(8)) else {
                return .failure(invalidArgument("Invalid signing date in Authorization header."))
            }
            guard product == "oss" else {
                return .failure(invalidArgument("Invalid signing product in Authorization header."))
            }
            if let region, region != scopeRegion {
                return .failure(invalidArgument("Invalid signing region in Authorization header."))
            }
            // Every V4 request carries x-oss-content-sha256 (the HashedPayload of the canonical
            // request); without it there is nothing to sign against, so it is malformed (400), not
            // silently taken as UNSIGNED-PAYLOAD.
            guard let payload = map["x-oss-content-sha256"], !payload.isEmpty else {
                return .failure(invalidArgument("Missing required header for V4 signature: x-oss-content-sha256."))
            }
        }
        guard let record = keyRecord(accessKeyId) else {
            return .failure(SigningRejection(
                status: 403, code: "InvalidAccessKeyId",
                message: "The OSS Access Key Id you provided does not exist in our records.",
                fields: [.init("OSSAccessKeyId", accessKeyId)]))
        }
        let token = map["x-oss-security-token"]
        guard token == record.securityToken else {
            return .failure(SigningRejection(
                status: 403, code: "InvalidSecurityToken", message: "The security token you provided is invalid.",
                fields: [.init("OSSAccessKeyId", accessKeyId)]))
        }

        switch parsed {
        case .v1(_, let provided):
            let sts = OSSSigner.v1StringToSign(signing, dateSlot: timeText)
            let expected = OSSSigner.v1Signature(secret: record.accessKeySecret, stringToSign: sts)
            guard SigningUtil.constantTimeEqual(expected, provided) else {
                return .failure(mismatch(accessKeyId, provided, sts, canonicalRequest: nil))
            }
            return .success(OSSVerifiedRequest(accessKeyId: accessKeyId, version: .v1, requestTime: requestTime,
                                               securityToken: token))
        case .v4(_, let date, let scopeRegion, _, let additional, let provided):
            let canonical = OSSSigner.v4CanonicalRequest(signing, additionalHeaders: additional)
            let sts = OSSSigner.v4StringToSign(datetime: timeText, scope: OSSSigner.v4Scope(date: date, region: scopeRegion),
                                               canonicalRequest: canonical)
            let expected = OSSSigner.v4Signature(secret: record.accessKeySecret, date: date, region: scopeRegion,
                                                 stringToSign: sts)
            // Exactly as sent (lower-case hex), like S3.
            guard SigningUtil.constantTimeEqual(expected, provided) else {
                return .failure(mismatch(accessKeyId, provided, sts, canonicalRequest: canonical))
            }
            return .success(OSSVerifiedRequest(accessKeyId: accessKeyId, version: .v4(region: scopeRegion),
                                               requestTime: requestTime, securityToken: token))
        }
    }

    static func mismatch(_ ak: String, _ provided: String, _ sts: String, canonicalRequest: String?) -> SigningRejection {
        var fields: [SigningRejection.Field] = [
            .init("OSSAccessKeyId", ak), .init("SignatureProvided", provided),
            .init("StringToSign", sts), .init("StringToSignBytes", SigningUtil.spacedHex(sts)),
        ]
        if let canonicalRequest {
            fields.append(.init("CanonicalRequest", canonicalRequest))
            fields.append(.init("CanonicalRequestBytes", SigningUtil.spacedHex(canonicalRequest)))
        }
        return SigningRejection(status: 403, code: "SignatureDoesNotMatch", message: mismatchMessage, fields: fields)
    }
}
