import AltiSigning
import Foundation
import Testing

@Suite struct S3VerifyTests {
    static let ak = "AKIDEMU"
    static let sk = "emu/secret+key"
    static let host = "127.0.0.1:9000"
    static let signedAt = SigningTime.parseISO8601Basic("20240301T120000Z")!

    static func presign(expires: Int = 3600, path: String = "/s3/bkt/pid/IMG%200001.JPG",
                        token: String? = nil) -> S3PresignedURL {
        S3QueryAuth.presign(S3PresignRequest(
            method: "PUT", scheme: "http", host: host, path: path, accessKeyId: ak, secretAccessKey: sk,
            region: "us-east-1", date: signedAt, expires: expires,
            signedHeaders: ["content-type": "image/jpeg"], sessionToken: token))
    }

    /// Splits a URL into what a server sees: raw path and raw query.
    static func incoming(_ url: String, method: String = "PUT", headers: [SigningHeader]? = nil) -> S3IncomingRequest {
        let afterHost = url.split(separator: "/", maxSplits: 3, omittingEmptySubsequences: false)[3]
        let parts = afterHost.split(separator: "?", maxSplits: 1)
        return S3IncomingRequest(method: method, rawPath: "/" + parts[0], rawQuery: String(parts[1]),
                                 headers: headers ?? [("Host", host), ("Content-Type", "image/jpeg"),
                                                      ("Content-Length", "5")])
    }

    static func verify(_ r: S3IncomingRequest, now: Date = signedAt.addingTimeInterval(60)) -> Result<S3VerifiedRequest, SigningRejection> {
        S3QueryAuth.verify(r, now: now) { $0 == ak ? sk : nil }
    }

    static func rejection(_ r: Result<S3VerifiedRequest, SigningRejection>) -> SigningRejection? {
        if case .failure(let e) = r { return e }
        return nil
    }

    @Test func roundTripIsValid() throws {
        let p = Self.presign(token: "tok+/=")
        let v = try Self.verify(Self.incoming(p.url)).get()
        #expect(v.accessKeyId == Self.ak)
        #expect(v.expiresAt == Self.signedAt.addingTimeInterval(3600))
        #expect(v.signedHeaders == ["content-type", "host"])
        #expect(v.sessionToken == "tok+/=")
        #expect(v.region == "us-east-1")
    }

    /// The signature is compared exactly as sent: lower-case hex; upper-cased, it is another string.
    @Test func upperCaseSignatureIsMismatch() throws {
        let p = Self.presign()
        #expect(p.signature.contains { "abcdef".contains($0) })
        let url = p.url.replacingOccurrences(of: "X-Amz-Signature=" + p.signature,
                                             with: "X-Amz-Signature=" + p.signature.uppercased())
        #expect(url != p.url)
        let e = try #require(Self.rejection(Self.verify(Self.incoming(url))))
        #expect(e.status == 403)
        #expect(e.code == "SignatureDoesNotMatch")
    }

    @Test func headerValuesAreTrimmedAndNamesCaseInsensitive() throws {
        let p = Self.presign()
        let r = Self.incoming(p.url, headers: [("HOST", Self.host), ("content-TYPE", "  image/jpeg ")])
        #expect(try Self.verify(r).get().accessKeyId == Self.ak)
    }

    @Test func tamperedSignatureIsSignatureDoesNotMatch() throws {
        let p = Self.presign()
        let last = p.signature.last == "0" ? "1" : "0"
        let tampered = String(p.url.dropLast()) + last
        let e = try #require(Self.rejection(Self.verify(Self.incoming(tampered))))
        #expect(e.status == 403)
        #expect(e.code == "SignatureDoesNotMatch")
        #expect(e.field("StringToSign") == p.stringToSign)
        #expect(e.field("CanonicalRequest") == p.canonicalRequest)
        #expect(e.field("AWSAccessKeyId") == Self.ak)
        #expect(e.field("StringToSignBytes")?.hasPrefix("41 57 53 34") == true)  // "AWS4"
    }

    @Test func wrongContentTypeIsSignatureDoesNotMatch() throws {
        let p = Self.presign()
        let r = Self.incoming(p.url, headers: [("Host", Self.host), ("Content-Type", "image/png")])
        let e = try #require(Self.rejection(Self.verify(r)))
        #expect(e.code == "SignatureDoesNotMatch")
        #expect(e.field("CanonicalRequest")?.contains("content-type:image/png\n") == true)
    }

    @Test func missingContentTypeOrWrongHostOrMethodOrPathIsMismatch() throws {
        let p = Self.presign()
        let cases: [S3IncomingRequest] = [
            Self.incoming(p.url, headers: [("Host", Self.host)]),
            Self.incoming(p.url, headers: [("Host", "127.0.0.1:9001"), ("Content-Type", "image/jpeg")]),
            Self.incoming(p.url, method: "GET"),
            Self.incoming(p.url.replacingOccurrences(of: "IMG%200001", with: "IMG 0001")),
            Self.incoming(p.url.replacingOccurrences(of: "/pid/", with: "/pid2/")),
        ]
        for r in cases {
            #expect(Self.rejection(Self.verify(r))?.code == "SignatureDoesNotMatch")
        }
    }

    @Test func wrongSecretIsMismatchAndUnknownKeyIsInvalidAccessKeyId() throws {
        let p = Self.presign()
        let wrong = S3QueryAuth.verify(Self.incoming(p.url), now: Self.signedAt) { _ in "other" }
        #expect(Self.rejection(wrong)?.code == "SignatureDoesNotMatch")
        let unknown = S3QueryAuth.verify(Self.incoming(p.url), now: Self.signedAt) { _ in nil }
        let e = try #require(Self.rejection(unknown))
        #expect(e.status == 403)
        #expect(e.code == "InvalidAccessKeyId")
        #expect(e.field("AWSAccessKeyId") == Self.ak)
    }

    @Test func expiredURLIsAccessDeniedWithTimes() throws {
        let p = Self.presign(expires: 60)
        #expect((try? Self.verify(Self.incoming(p.url), now: Self.signedAt.addingTimeInterval(60)).get()) != nil)
        let e = try #require(Self.rejection(Self.verify(Self.incoming(p.url),
                                                        now: Self.signedAt.addingTimeInterval(61))))
        #expect(e.status == 403)
        #expect(e.code == "AccessDenied")
        #expect(e.message == "Request has expired")
        #expect(e.fields == [.init("X-Amz-Expires", "60"), .init("Expires", "2024-03-01T12:01:00Z"),
                             .init("ServerTime", "2024-03-01T12:01:01Z")])
    }

    @Test func unsignedAmzHeaderIsAccessDenied() throws {
        let p = Self.presign()
        let r = Self.incoming(p.url, headers: [("Host", Self.host), ("Content-Type", "image/jpeg"),
                                               ("x-amz-acl", "public-read"), ("X-Amz-Meta-Foo", "1")])
        let e = try #require(Self.rejection(Self.verify(r)))
        #expect(e.status == 403)
        #expect(e.code == "AccessDenied")
        #expect(e.message == "There were headers present in the request which were not signed")
        #expect(e.field("HeadersNotSigned") == "x-amz-acl, x-amz-meta-foo")
    }

    @Test func expiresOverAWeekIsRejected() throws {
        let p = Self.presign(expires: 604_801)
        let e = try #require(Self.rejection(Self.verify(Self.incoming(p.url))))
        #expect(e.status == 403)
        #expect(e.code == "AuthorizationQueryParametersError")
        #expect(e.field("X-Amz-Expires") == "604801")
        let ok = Self.presign(expires: 604_800)
        #expect((try? Self.verify(Self.incoming(ok.url)).get()) != nil)
    }

    @Test func eachMissingParameterIsRejected() throws {
        let p = Self.presign()
        let full = Self.incoming(p.url)
        for name in ["X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Signature", "X-Amz-Date",
                     "X-Amz-SignedHeaders", "X-Amz-Expires"] {
            let query = full.rawQuery.split(separator: "&").filter { !$0.hasPrefix(name + "=") }
                .joined(separator: "&")
            var r = full
            r.rawQuery = query
            let e = try #require(Self.rejection(Self.verify(r)), "\(name)")
            #expect(e.status == 403)
            #expect(e.code == "AuthorizationQueryParametersError", "\(name)")
        }
    }

    @Test func malformedParametersAreRejected() throws {
        let p = Self.presign()
        let full = Self.incoming(p.url)
        let replacements = [
            ("X-Amz-Algorithm=AWS4-HMAC-SHA256", "X-Amz-Algorithm=AWS4-HMAC-SHA1"),
            ("X-Amz-Date=20240301T120000Z", "X-Amz-Date=2024-03-01"),
            ("X-Amz-Expires=3600", "X-Amz-Expires=-5"),
            ("%2Fs3%2Faws4_request", "%2Fs4%2Faws4_request"),
            ("%2F20240301%2F", "%2F20240302%2F"),
            ("X-Amz-SignedHeaders=content-type%3Bhost", "X-Amz-SignedHeaders=content-type"),
        ]
        for (old, new) in replacements {
            var r = full
            #expect(r.rawQuery.contains(old), "\(old)")
            r.rawQuery = r.rawQuery.replacingOccurrences(of: old, with: new)
            #expect(Self.rejection(Self.verify(r))?.code == "AuthorizationQueryParametersError", "\(new)")
        }
        let region = S3QueryAuth.verify(full, now: Self.signedAt, region: "eu-west-1") { _ in Self.sk }
        #expect(Self.rejection(region)?.field("Region") == "eu-west-1")
    }

    @Test func encodePathKeepsSlashesAndEncodesTheRest() {
        #expect(S3QueryAuth.encodePath("/bkt/a b+c=d/é~.jpg") == "/bkt/a%20b%2Bc%3Dd/%C3%A9~.jpg")
    }

    @Test func xmlBodyRendersFieldsEscaped() {
        let e = SigningRejection(status: 403, code: "AccessDenied", message: "Request has expired",
                                 fields: [.init("X-Amz-Expires", "60"), .init("StringToSign", "a<b&c")])
        #expect(e.xmlBody(requestId: "R1", hostId: "H1") == "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error>"
            + "<Code>AccessDenied</Code><Message>Request has expired</Message><X-Amz-Expires>60</X-Amz-Expires>"
            + "<StringToSign>a&lt;b&amp;c</StringToSign><RequestId>R1</RequestId><HostId>H1</HostId></Error>\n")
        #expect(e.description == "403 AccessDenied: Request has expired")
    }
}
