import AltiSigning
import Foundation
import Testing

/// The published vectors of /work/shared/storage-protocols.md §a.5 and §b.5, pinned exactly.
@Suite struct S3VectorTests {
    static let ak = "AKIAIOSFODNN7EXAMPLE"
    static let sk = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    static let host = "examplebucket.s3.amazonaws.com"
    static let date = SigningTime.parseISO8601Basic("20130524T000000Z")!

    static func presign(_ method: String, _ path: String, expires: Int, contentType: String? = nil) -> S3PresignedURL {
        S3QueryAuth.presign(S3PresignRequest(
            method: method, scheme: "https", host: host, path: path, accessKeyId: ak, secretAccessKey: sk,
            region: "us-east-1", date: date, expires: expires,
            signedHeaders: contentType.map { ["Content-Type": $0] } ?? [:]))
    }

    @Test func s1AWSDocExample() {
        let p = Self.presign("GET", "/test.txt", expires: 86400)
        #expect(p.signature == "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404")
        #expect(p.url == "https://examplebucket.s3.amazonaws.com/test.txt?X-Amz-Algorithm=AWS4-HMAC-SHA256"
            + "&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request"
            + "&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host"
            + "&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404")
        // The canonical request of the AWS documentation example.
        #expect(p.canonicalRequest == "GET\n/test.txt\nX-Amz-Algorithm=AWS4-HMAC-SHA256"
            + "&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request"
            + "&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host\n"
            + "host:examplebucket.s3.amazonaws.com\n\nhost\nUNSIGNED-PAYLOAD")
        #expect(p.headers.isEmpty)
        #expect(p.expiresAt == Self.date.addingTimeInterval(86400))
    }

    @Test func s2PresignedPut() {
        let p = Self.presign("PUT", "/survey/IMG_0001.JPG", expires: 3600)
        #expect(p.signature == "c21578564585af28e4f18fc897e81023cdf9600f4e92678510b60ddbeebe5e50")
    }

    @Test func s3PresignedPutWithContentType() {
        let p = Self.presign("PUT", "/survey/IMG_0001.JPG", expires: 3600, contentType: "image/jpeg")
        #expect(p.signature == "2fc409646dc2d185e1266eb91d8450376242198203bb03bc8600383952bbadc9")
        #expect(p.url.contains("X-Amz-SignedHeaders=content-type%3Bhost"))
        #expect(p.headers.count == 1)
        #expect(p.headers.first?.name == "content-type")
        #expect(p.headers.first?.value == "image/jpeg")
    }
}

@Suite struct OSSVectorTests {
    static let creds = OSSCredentials(accessKeyId: "ak", accessKeySecret: "sk")
    static let o1Date = "Wed, 28 Dec 2022 10:27:41 GMT"

    static func o1Request(query: [(name: String, value: String)] = []) -> OSSRequest {
        OSSRequest(method: "PUT", bucket: "examplebucket", key: "nelson", headers: [
            ("Content-MD5", "eB5eJF1ptWaXm4bijSPyxw=="), ("Content-Type", "text/html"),
            ("x-oss-meta-author", "alice"), ("x-oss-meta-magic", "abracadabra"), ("x-oss-date", o1Date),
        ], query: query)
    }

    static var o1Time: Date { SigningTime.parseRFC1123(o1Date)! }

    @Test func o1V1Header() {
        let s = OSSSigner.sign(Self.o1Request(), credentials: Self.creds, version: .v1, date: Self.o1Time)
        #expect(s.authorization == "OSS ak:kSHKmLxlyEAKtZPkJhG9bZb5k7M=")
        #expect(s.stringToSign == "PUT\neB5eJF1ptWaXm4bijSPyxw==\ntext/html\n\(Self.o1Date)\n"
            + "x-oss-date:\(Self.o1Date)\nx-oss-meta-author:alice\nx-oss-meta-magic:abracadabra\n/examplebucket/nelson")
    }

    @Test func o2V1HeaderWithSubResource() {
        let s = OSSSigner.sign(Self.o1Request(query: [("acl", "")]), credentials: Self.creds, version: .v1,
                               date: Self.o1Time)
        #expect(s.authorization == "OSS ak:/afkugFbmWDQ967j1vr6zygBLQk=")
        #expect(s.stringToSign.hasSuffix("/examplebucket/nelson?acl"))
    }

    @Test func o3V1HeaderWithSecurityToken() {
        let sts = OSSCredentials(accessKeyId: "ak", accessKeySecret: "sk", securityToken: "token")
        let s = OSSSigner.sign(Self.o1Request(), credentials: sts, version: .v1, date: Self.o1Time)
        #expect(s.authorization == "OSS ak:H3PAlN3Vucn74tPVEqaQC4AnLwQ=")
        #expect(s.stringToSign.contains("x-oss-meta-magic:abracadabra\nx-oss-security-token:token\n/examplebucket/nelson"))
        #expect(s.headers.contains { $0.name == "x-oss-security-token" && $0.value == "token" })
    }

    @Test func o4V1Query() {
        let r = OSSRequest(method: "GET", bucket: "bucket", key: "key", query: [("versionId", "versionId")])
        let p = OSSSigner.presignV1(r, credentials: Self.creds, expires: Date(timeIntervalSince1970: 1_699_807_420))
        #expect(p.stringToSign == "GET\n\n\n1699807420\n/bucket/key?versionId=versionId")
        #expect(p.query.contains("Signature=dcLTea%2BYh9ApirQ8o8dOPqtvJXQ%3D"))
        #expect(p.query.contains("OSSAccessKeyId=ak"))
        #expect(p.query.contains("Expires=1699807420"))
    }

    @Test func o5V1QueryWithSecurityToken() {
        let sts = OSSCredentials(accessKeyId: "ak", accessKeySecret: "sk", securityToken: "token")
        let r = OSSRequest(method: "GET", bucket: "bucket", key: "key+123", query: [("versionId", "versionId")])
        let p = OSSSigner.presignV1(r, credentials: sts, expires: Date(timeIntervalSince1970: 1_699_808_204))
        #expect(p.stringToSign == "GET\n\n\n1699808204\n/bucket/key+123?security-token=token&versionId=versionId")
        #expect(p.query.contains("Signature=jzKYRrM5y6Br0dRFPaTGOsbrDhY%3D"))
        #expect(p.query.contains("security-token=token"))
    }

    static func o6Request() -> OSSRequest {
        OSSRequest(method: "PUT", bucket: "bucket", key: "1234+-/123/1.txt", headers: [
            ("x-oss-head1", "value"), ("abc", "value"), ("ZAbc", "value"), ("XYZ", "value"),
            ("content-type", "text/plain"), ("x-oss-content-sha256", "UNSIGNED-PAYLOAD"),
        ], query: [("param1", "value1"), ("+param1", "value3"), ("|param1", "value4"), ("+param2", ""),
                   ("|param2", ""), ("param2", "")])
    }

    @Test func o6V4Header() {
        let s = OSSSigner.sign(Self.o6Request(), credentials: Self.creds, version: .v4(region: "cn-hangzhou"),
                               date: Date(timeIntervalSince1970: 1_702_743_657))
        #expect(s.canonicalRequest == "PUT\n/bucket/1234%2B-/123/1.txt\n"
            + "%2Bparam1=value3&%2Bparam2&%7Cparam1=value4&%7Cparam2&param1=value1&param2\n"
            + "content-type:text/plain\nx-oss-content-sha256:UNSIGNED-PAYLOAD\nx-oss-date:20231216T162057Z\n"
            + "x-oss-head1:value\n\n\nUNSIGNED-PAYLOAD")
        #expect(s.authorization == "OSS4-HMAC-SHA256 Credential=ak/20231216/cn-hangzhou/oss/aliyun_v4_request,"
            + "Signature=e21d18daa82167720f9b1047ae7e7f1ce7cb77a31e8203a7d5f4624fa0284afe")
        #expect(s.headers.contains { $0.name == "x-oss-date" && $0.value == "20231216T162057Z" })
    }

    @Test func o7V4HeaderWithSecurityToken() {
        let sts = OSSCredentials(accessKeyId: "ak", accessKeySecret: "sk", securityToken: "token")
        let s = OSSSigner.sign(Self.o6Request(), credentials: sts, version: .v4(region: "cn-hangzhou"),
                               date: Date(timeIntervalSince1970: 1_702_784_856))
        #expect(s.authorization == "OSS4-HMAC-SHA256 Credential=ak/20231217/cn-hangzhou/oss/aliyun_v4_request,"
            + "Signature=b94a3f999cf85bcdc00d332fbd3734ba03e48382c36fa4d5af5df817395bd9ea")
    }

    @Test func o8V4HeaderWithAdditionalHeaders() {
        let s = OSSSigner.sign(Self.o6Request(), credentials: Self.creds, version: .v4(region: "cn-hangzhou"),
                               date: Date(timeIntervalSince1970: 1_702_747_512), additionalHeaders: ["ZAbc", "abc"])
        #expect(s.authorization == "OSS4-HMAC-SHA256 Credential=ak/20231216/cn-hangzhou/oss/aliyun_v4_request,"
            + "AdditionalHeaders=abc;zabc,"
            + "Signature=4a4183c187c07c8947db7620deb0a6b38d9fbdd34187b6dbaccb316fa251212f")
        #expect(s.canonicalRequest.contains("abc:value\ncontent-type:text/plain\n"))
        #expect(s.canonicalRequest.contains("x-oss-head1:value\nzabc:value\n\nabc;zabc\nUNSIGNED-PAYLOAD"))
    }

    static let imageCreds = OSSCredentials(accessKeyId: "STS.testAK", accessKeySecret: "testSecret",
                                           securityToken: "testToken+/=")

    @Test func o9V1StsImage() {
        let r = OSSRequest(method: "PUT", bucket: "survey-bkt", key: "proj1/IMG_0001.JPG",
                           headers: [("Content-Type", "image/jpeg"), ("x-oss-date", Self.o1Date)])
        let s = OSSSigner.sign(r, credentials: Self.imageCreds, version: .v1, date: Self.o1Time)
        #expect(s.authorization == "OSS STS.testAK:l1QcbWuoxlW300dlBCzVgLvrZCE=")
    }

    @Test func o10V4StsImage() {
        let r = OSSRequest(method: "PUT", bucket: "survey-bkt", key: "proj1/IMG_0003.JPG",
                           headers: [("Content-Type", "image/jpeg")])
        let s = OSSSigner.sign(r, credentials: Self.imageCreds, version: .v4(region: "cn-hangzhou"),
                               date: SigningTime.parseISO8601Basic("20231216T162057Z")!)
        #expect(s.canonicalRequest == "PUT\n/survey-bkt/proj1/IMG_0003.JPG\n\ncontent-type:image/jpeg\n"
            + "x-oss-content-sha256:UNSIGNED-PAYLOAD\nx-oss-date:20231216T162057Z\n"
            + "x-oss-security-token:testToken+/=\n\n\nUNSIGNED-PAYLOAD")
        #expect(s.authorization.hasSuffix(
            "Signature=7e35e3a70b7d0e5c1501c2deea88af1856979223a2af1b78f247617b4dd72b09"))
    }
}

@Suite struct SigningTimeTests {
    @Test func formatsAndParses() throws {
        let t = Date(timeIntervalSince1970: 1_702_743_657)
        #expect(SigningTime.iso8601Basic(t) == "20231216T162057Z")
        #expect(SigningTime.iso8601Extended(t) == "2023-12-16T16:20:57Z")
        #expect(SigningTime.rfc1123(t) == "Sat, 16 Dec 2023 16:20:57 GMT")
        #expect(SigningTime.parseRFC1123("Sat, 16 Dec 2023 16:20:57 GMT") == t)
        #expect(SigningTime.parseISO8601Basic("20231216T162057Z") == t)
        #expect(SigningTime.rfc1123(Date(timeIntervalSince1970: 0)) == "Thu, 01 Jan 1970 00:00:00 GMT")
        #expect(SigningTime.rfc1123(Date(timeIntervalSince1970: 951_782_400)) == "Tue, 29 Feb 2000 00:00:00 GMT")
        #expect(SigningTime.parseISO8601Basic("20230231T000000Z") == nil)
        #expect(SigningTime.parseISO8601Basic("2023-12-16T16:20:57Z") == nil)
        #expect(SigningTime.parseRFC1123("16 Dec 2023 16:20:57") == nil)
    }
}
