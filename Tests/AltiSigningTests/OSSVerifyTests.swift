import AltiSigning
import Foundation
import Testing

@Suite struct OSSVerifyTests {
    static let now = SigningTime.parseISO8601Basic("20240301T120000Z")!
    static let sts = OSSCredentials(accessKeyId: "STS.emu", accessKeySecret: "s3cr3t", securityToken: "tok+/=")
    static let plain = OSSCredentials(accessKeyId: "LTAIplain", accessKeySecret: "plainsecret")

    static func record(_ ak: String) -> OSSKeyRecord? {
        switch ak {
        case sts.accessKeyId: return OSSKeyRecord(accessKeySecret: sts.accessKeySecret, securityToken: sts.securityToken)
        case plain.accessKeyId: return OSSKeyRecord(accessKeySecret: plain.accessKeySecret)
        default: return nil
        }
    }

    static func signed(_ version: OSSSignatureVersion, creds: OSSCredentials = sts, key: String = "pid/IMG 0001.JPG",
                       at date: Date = now, additional: [String] = []) -> [SigningHeader] {
        let r = OSSRequest(method: "PUT", bucket: "alti-emu-oss", key: key,
                           headers: [("Content-Type", "image/jpeg"), ("Content-Length", "5"),
                                     ("x-oss-meta-a", "1"), ("Host", "127.0.0.1:9000")])
        return OSSSigner.sign(r, credentials: creds, version: version, date: date, additionalHeaders: additional).headers
    }

    static func verify(_ headers: [SigningHeader], key: String = "pid/IMG 0001.JPG", method: String = "PUT",
                       at now: Date = now, region: String? = nil) -> Result<OSSVerifiedRequest, SigningRejection> {
        OSSVerifier.verify(OSSIncomingRequest(method: method, bucket: "alti-emu-oss", key: key, headers: headers),
                           now: now, region: region, keyRecord: record)
    }

    static func rejection(_ r: Result<OSSVerifiedRequest, SigningRejection>) -> SigningRejection? {
        if case .failure(let e) = r { return e }
        return nil
    }

    static func replacing(_ headers: [SigningHeader], _ name: String, with value: String?) -> [SigningHeader] {
        var out = headers.filter { $0.name.lowercased() != name.lowercased() }
        if let value { out.append((name, value)) }
        return out
    }

    static func authorization(_ headers: [SigningHeader]) -> String {
        headers.first { $0.name == "Authorization" }!.value
    }

    static let versions: [OSSSignatureVersion] = [.v1, .v4(region: "cn-hangzhou")]

    @Test(arguments: versions) func roundTripIsValid(version: OSSSignatureVersion) throws {
        let v = try Self.verify(Self.signed(version)).get()
        #expect(v.accessKeyId == "STS.emu")
        #expect(v.version == version)
        #expect(v.securityToken == "tok+/=")
        #expect(v.requestTime == Self.now)
        let p = try Self.verify(Self.signed(version, creds: Self.plain), region: "cn-hangzhou").get()
        #expect(p.securityToken == nil)
    }

    /// Every V4 request carries `x-oss-content-sha256`: a request signed without it (the payload slot
    /// taken as UNSIGNED-PAYLOAD) is malformed, 400 InvalidArgument, never silently accepted.
    @Test func v4WithoutContentSHA256IsInvalidArgument() throws {
        let datetime = SigningTime.iso8601Basic(Self.now), day = SigningTime.yyyymmdd(Self.now)
        let headers: [SigningHeader] = [("Content-Type", "image/jpeg"), ("x-oss-date", datetime),
                                        ("x-oss-security-token", Self.sts.securityToken!)]
        let r = OSSRequest(method: "PUT", bucket: "alti-emu-oss", key: "pid/IMG 0001.JPG", headers: headers)
        let canonical = OSSSigner.v4CanonicalRequest(r, additionalHeaders: [])
        let scope = OSSSigner.v4Scope(date: day, region: "cn-hangzhou")
        let signature = OSSSigner.v4Signature(
            secret: Self.sts.accessKeySecret, date: day, region: "cn-hangzhou",
            stringToSign: OSSSigner.v4StringToSign(datetime: datetime, scope: scope, canonicalRequest: canonical))
        let auth = "\(OSSSigner.v4Algorithm) Credential=\(Self.sts.accessKeyId)/\(scope),Signature=\(signature)"
        let e = try #require(Self.rejection(Self.verify(headers + [("Authorization", auth)])))
        #expect(e.status == 400)
        #expect(e.code == "InvalidArgument")
        #expect(e.message.contains("x-oss-content-sha256"))
        // An empty value is no better.
        let signed = Self.replacing(Self.signed(.v4(region: "cn-hangzhou")), "x-oss-content-sha256", with: "")
        #expect(Self.rejection(Self.verify(signed))?.code == "InvalidArgument")
    }

    /// A V4 signature is lower-case hex and compared exactly as sent.
    @Test func upperCaseV4SignatureIsMismatch() throws {
        let h = Self.signed(.v4(region: "cn-hangzhou"))
        let auth = Self.authorization(h)
        let range = try #require(auth.range(of: "Signature="))
        let upper = String(auth[..<range.upperBound]) + auth[range.upperBound...].uppercased()
        #expect(upper != auth)
        let e = try #require(Self.rejection(Self.verify(Self.replacing(h, "Authorization", with: upper))))
        #expect(e.code == "SignatureDoesNotMatch")
    }

    @Test func v4WithAdditionalHeadersRoundTrips() throws {
        let h = Self.signed(.v4(region: "cn-hangzhou"), additional: ["Content-Length", "host"])
        #expect(Self.authorization(h).contains("AdditionalHeaders=content-length;host,"))
        _ = try Self.verify(h).get()
        // The listed additional header is covered by the signature.
        #expect(Self.rejection(Self.verify(Self.replacing(h, "Content-Length", with: "6")))?.code
            == "SignatureDoesNotMatch")
    }

    @Test func v4AuthorizationPairsInAnyOrderWithSpaces() throws {
        let h = Self.signed(.v4(region: "cn-hangzhou"), additional: ["host"])
        let auth = Self.authorization(h)
        // Go layout -> oss2 layout: ", " separators and AdditionalHeaders after Signature.
        let body = auth.dropFirst("OSS4-HMAC-SHA256 ".count).split(separator: ",").map(String.init)
        let reordered = "OSS4-HMAC-SHA256 " + [body[0], body[2], body[1]].joined(separator: ", ")
        let v = try Self.verify(Self.replacing(h, "Authorization", with: reordered)).get()
        #expect(v.accessKeyId == "STS.emu")
    }

    @Test func pathStyleParsingDecodesBucketAndKey() throws {
        let h = Self.signed(.v1, key: "pid/a+b.jpg")
        let r = OSSIncomingRequest(method: "PUT", pathStyleRawPath: "/alti-emu-oss/pid%2Fa%2Bb.jpg", rawQuery: "",
                                   headers: h)
        #expect(r.bucket == "alti-emu-oss")
        #expect(r.key == "pid/a+b.jpg")
        _ = try OSSVerifier.verify(r, now: Self.now, keyRecord: Self.record).get()
    }

    @Test(arguments: versions) func tamperedSignatureIsSignatureDoesNotMatch(version: OSSSignatureVersion) throws {
        let h = Self.signed(version)
        let auth = Self.authorization(h)
        let flipped = String(auth.dropLast(2)) + (auth.dropLast().last == "A" ? "B" : "A") + String(auth.last!)
        let e = try #require(Self.rejection(Self.verify(Self.replacing(h, "Authorization", with: flipped))))
        #expect(e.status == 403)
        #expect(e.code == "SignatureDoesNotMatch")
        #expect(e.field("OSSAccessKeyId") == "STS.emu")
        #expect(e.field("SignatureProvided") != nil)
        if case .v4 = version {
            #expect(e.field("CanonicalRequest")?.hasPrefix("PUT\n/alti-emu-oss/pid/IMG%200001.JPG\n") == true)
        } else {
            #expect(e.field("StringToSign")?.hasSuffix("/alti-emu-oss/pid/IMG 0001.JPG") == true)
        }
    }

    @Test(arguments: versions) func changedContentTypeKeyOrMethodIsMismatch(version: OSSSignatureVersion) {
        let h = Self.signed(version)
        #expect(Self.rejection(Self.verify(Self.replacing(h, "Content-Type", with: "image/png")))?.code
            == "SignatureDoesNotMatch")
        #expect(Self.rejection(Self.verify(Self.replacing(h, "Content-Type", with: nil)))?.code
            == "SignatureDoesNotMatch")
        #expect(Self.rejection(Self.verify(h, key: "pid/IMG 0002.JPG"))?.code == "SignatureDoesNotMatch")
        #expect(Self.rejection(Self.verify(h, method: "POST"))?.code == "SignatureDoesNotMatch")
        #expect(Self.rejection(Self.verify(Self.replacing(h, "x-oss-meta-a", with: "2")))?.code
            == "SignatureDoesNotMatch")
    }

    @Test(arguments: versions) func wrongSecretIsMismatch(version: OSSSignatureVersion) {
        let bad = OSSCredentials(accessKeyId: "STS.emu", accessKeySecret: "wrong", securityToken: "tok+/=")
        #expect(Self.rejection(Self.verify(Self.signed(version, creds: bad)))?.code == "SignatureDoesNotMatch")
    }

    @Test(arguments: versions) func wrongOrMissingTokenIsInvalidSecurityToken(version: OSSSignatureVersion) throws {
        let wrong = OSSCredentials(accessKeyId: "STS.emu", accessKeySecret: "s3cr3t", securityToken: "other")
        let e = try #require(Self.rejection(Self.verify(Self.signed(version, creds: wrong))))
        #expect(e.status == 403)
        #expect(e.code == "InvalidSecurityToken")
        let none = OSSCredentials(accessKeyId: "STS.emu", accessKeySecret: "s3cr3t")
        #expect(Self.rejection(Self.verify(Self.signed(version, creds: none)))?.code == "InvalidSecurityToken")
        let extra = OSSCredentials(accessKeyId: "LTAIplain", accessKeySecret: "plainsecret", securityToken: "x")
        #expect(Self.rejection(Self.verify(Self.signed(version, creds: extra)))?.code == "InvalidSecurityToken")
    }

    @Test(arguments: versions) func unknownKeyIsInvalidAccessKeyId(version: OSSSignatureVersion) throws {
        let creds = OSSCredentials(accessKeyId: "STS.nobody", accessKeySecret: "x", securityToken: "y")
        let e = try #require(Self.rejection(Self.verify(Self.signed(version, creds: creds))))
        #expect(e.status == 403)
        #expect(e.code == "InvalidAccessKeyId")
        #expect(e.field("OSSAccessKeyId") == "STS.nobody")
    }

    @Test(arguments: versions) func skewedDateIsRequestTimeTooSkewed(version: OSSSignatureVersion) throws {
        let h = Self.signed(version, at: Self.now.addingTimeInterval(-901))
        let e = try #require(Self.rejection(Self.verify(h)))
        #expect(e.status == 403)
        #expect(e.code == "RequestTimeTooSkewed")
        #expect(e.field("MaxAllowedSkewMilliseconds") == "900000")
        #expect(e.field("ServerTime") == "2024-03-01T12:00:00Z")
        // 15 minutes exactly is still accepted, either way.
        _ = try Self.verify(Self.signed(version, at: Self.now.addingTimeInterval(900))).get()
        _ = try Self.verify(Self.signed(version, at: Self.now.addingTimeInterval(-900))).get()
    }

    @Test func v1XOssDateTakesPrecedenceOverDate() throws {
        var r = OSSRequest(method: "PUT", bucket: "alti-emu-oss", key: "k", headers: [("Content-Type", "image/jpeg")])
        r.setHeader("x-oss-date", SigningTime.rfc1123(Self.now))
        // Sign "now" in x-oss-date while Date is an hour off: x-oss-date is the one checked and signed.
        let h = OSSSigner.sign(r, credentials: Self.sts, version: .v1, date: Self.now.addingTimeInterval(3600)).headers
        let v = try Self.verify(h, key: "k").get()
        #expect(v.requestTime == Self.now)
    }

    @Test func malformedAuthorizationIsRejected() throws {
        let h = Self.signed(.v4(region: "cn-hangzhou"))
        let bad = ["OSS nocolon", "OSS :sig", "Bearer abc", "OSS4-HMAC-SHA256 Signature=abc",
                   "OSS4-HMAC-SHA256 Credential=STS.emu/20240301/cn-hangzhou/oss,Signature=abc",
                   "OSS4-HMAC-SHA256 Credential=STS.emu/20240301/cn-hangzhou/oss/aliyun_v4_request garbage"]
        for value in bad {
            let e = try #require(Self.rejection(Self.verify(Self.replacing(h, "Authorization", with: value))), "\(value)")
            #expect(e.status == 400, "\(value)")
            #expect(e.code == "InvalidArgument", "\(value)")
        }
        let missing = try #require(Self.rejection(Self.verify(Self.replacing(h, "Authorization", with: nil))))
        #expect(missing.status == 403)
        #expect(missing.code == "AccessDenied")
    }

    @Test func v4ScopeMustMatchDateProductAndRegion() throws {
        let h = Self.signed(.v4(region: "cn-hangzhou"))
        let auth = Self.authorization(h)
        for (old, new) in [("/20240301/", "/20240302/"), ("/oss/", "/ecs/")] {
            let e = try #require(Self.rejection(Self.verify(
                Self.replacing(h, "Authorization", with: auth.replacingOccurrences(of: old, with: new)))))
            #expect(e.status == 400)
            #expect(e.code == "InvalidArgument")
        }
        #expect(Self.rejection(Self.verify(h, region: "cn-shenzhen"))?.code == "InvalidArgument")
        _ = try Self.verify(h, region: "cn-hangzhou").get()
    }

    @Test func missingDateIsAccessDenied() throws {
        let h = Self.replacing(Self.replacing(Self.signed(.v1), "Date", with: nil), "x-oss-date", with: nil)
        let e = try #require(Self.rejection(Self.verify(h)))
        #expect(e.status == 403)
        #expect(e.code == "AccessDenied")
        let v4 = Self.replacing(Self.signed(.v4(region: "cn-hangzhou")), "x-oss-date", with: "yesterday")
        #expect(Self.rejection(Self.verify(v4))?.code == "AccessDenied")
    }
}
