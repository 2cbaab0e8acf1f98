import AltiEmulator
import AltiSigning
import AltiTestSupport
import Foundation
import Testing

@Suite("OSS-style storage")
struct OSSStorageTests {
    @Test func stsShape() async throws {
        let clock = ManualEmulatorClock(Date(timeIntervalSince1970: 1_700_000_000.4))
        try await withEmulator(testEmulatorConfiguration(), clock: clock) { emu in
            let sts = try await getSTS(emu)
            #expect(sts.endpoint == emu.baseURL)
            #expect(sts.bucket == "alti-emu-oss")
            #expect(sts.expire == "2023-11-14T23:13:20Z")
            #expect(!sts.secret.isEmpty && !sts.token.isEmpty && sts.id.hasPrefix("STS."))
            // The STS-only call registers no image.
            #expect(await emu.stats().images.isEmpty)
            #expect(await emu.stats().stsIssued == 1)
        }
    }

    @Test(arguments: [OSSSignatureVersion.v1, .v4(region: "cn-shenzhen")])
    func signedPutThenDoneMakesReady(version: OSSSignatureVersion) async throws {
        try await withEmulator(testEmulatorConfiguration()) { emu in
            let bytes = jpegBytes("oss-ok")
            let sts = try await getSTS(emu)
            let image = try await registerOSS(emu, name: "IMG_0009.JPG", checksum: sha1(bytes))
            try await startUpload(emu, image.id)
            let put = try await putOSS(emu, sts: sts, key: "\(samplePID)/\(image.filename)", bytes: bytes, version: version)
            #expect(put.status == 200, "\(put.text)")
            #expect(put.header("ETag") != nil)
            // OSS: the image waits for doneImageUpload.
            try await Task.sleep(nanoseconds: 150_000_000)
            #expect(await emu.state.image(id: image.id)?.state == .pending)
            #expect(try await doneUpload(emu, image.id) == "Uploaded")
            #expect(try await waitForFinalState(emu, image.id).0 == "Ready")
            #expect(await emu.stats().putsByImage[image.id] == 1)
        }
    }

    /// OSS needs startImageUpload before the bytes too: without it, doneImageUpload does not
    /// start processing and the image stays Pending with an error.
    @Test func putWithoutStartThenDoneStaysPending() async throws {
        try await withEmulator(testEmulatorConfiguration()) { emu in
            let bytes = jpegBytes("oss-unstarted")
            let sts = try await getSTS(emu)
            let image = try await registerOSS(emu, name: "IMG_0010.JPG", checksum: sha1(bytes))
            let key = "\(samplePID)/\(image.filename)"
            #expect(try await putOSS(emu, sts: sts, key: key, bytes: bytes).status == 200)
            #expect(try await doneUpload(emu, image.id) == "Pending")
            try await Task.sleep(nanoseconds: 300_000_000)
            let record = try #require(await emu.state.image(id: image.id))
            #expect(record.state == .pending)
            #expect(record.errors == ["bytes arrived without startImageUpload"])
            #expect(await emu.stats().startsByImage[image.id] == nil)

            // Done properly: start, bytes, done.
            #expect(try await startUpload(emu, image.id) == "Pending")
            #expect(try await putOSS(emu, sts: sts, key: key, bytes: bytes).status == 200)
            #expect(try await doneUpload(emu, image.id) == "Uploaded")
            #expect(try await waitForFinalState(emu, image.id) == ("Ready", []))
        }
    }

    /// Every V4 request carries x-oss-content-sha256 (storage-protocols a.4); one signed without it
    /// (here with the payload slot taken as UNSIGNED-PAYLOAD, which a lenient server would accept)
    /// is refused: 400 InvalidArgument.
    @Test func v4WithoutContentSHA256IsRefused() async throws {
        try await withEmulator(testEmulatorConfiguration()) { emu in
            let bytes = jpegBytes("no-sha")
            let sts = try await getSTS(emu)
            let image = try await registerOSS(emu, name: "IMG_0011.JPG", checksum: sha1(bytes))
            try await startUpload(emu, image.id)
            let key = "\(samplePID)/\(image.filename)"
            let now = emu.state.now()
            let (datetime, day, region) = (SigningTime.iso8601Basic(now), SigningTime.yyyymmdd(now), "cn-shenzhen")
            let headers: [SigningHeader] = [("Content-Type", "image/jpeg"), ("x-oss-date", datetime),
                                            ("Date", SigningTime.rfc1123(now)), ("x-oss-security-token", sts.token)]
            let request = OSSRequest(method: "PUT", bucket: sts.bucket, key: key, headers: headers)
            let canonical = OSSSigner.v4CanonicalRequest(request, additionalHeaders: [])
            #expect(canonical.hasSuffix("\nUNSIGNED-PAYLOAD"))
            let scope = OSSSigner.v4Scope(date: day, region: region)
            let signature = OSSSigner.v4Signature(
                secret: sts.secret, date: day, region: region,
                stringToSign: OSSSigner.v4StringToSign(datetime: datetime, scope: scope, canonicalRequest: canonical))
            let authorization = "\(OSSSigner.v4Algorithm) Credential=\(sts.id)/\(scope),Signature=\(signature)"
            let encodedKey = key.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? key
            let r = try await RawHTTP.send(port: emu.port, method: "PUT", target: "/\(sts.bucket)/\(encodedKey)",
                                           headers: headers.map { ($0.name, $0.value) } + [("Authorization", authorization)],
                                           body: bytes)
            #expect(r.status == 400)
            #expect(r.xmlCode == "InvalidArgument")
            #expect(await emu.state.objectBytes(imageID: image.id) == nil)
            #expect(await emu.stats().puts("InvalidArgument") == 1)
        }
    }

    /// A V4 signature is lower-case hex, compared exactly as sent.
    @Test func upperCaseV4SignatureIsRefused() async throws {
        try await withEmulator(testEmulatorConfiguration()) { emu in
            let bytes = jpegBytes("oss-upper")
            let sts = try await getSTS(emu)
            let image = try await registerOSS(emu, name: "IMG_0012.JPG", checksum: sha1(bytes))
            try await startUpload(emu, image.id)
            let key = "\(samplePID)/\(image.filename)"
            let signed = OSSSigner.sign(
                OSSRequest(method: "PUT", bucket: sts.bucket, key: key, headers: [("Content-Type", "image/jpeg")]),
                credentials: OSSCredentials(accessKeyId: sts.id, accessKeySecret: sts.secret, securityToken: sts.token),
                version: .v4(region: "cn-shenzhen"), date: emu.state.now())
            let range = try #require(signed.authorization.range(of: "Signature="))
            let upper = signed.authorization[..<range.upperBound] + signed.authorization[range.upperBound...].uppercased()
            #expect(upper != signed.authorization)
            let headers = signed.headers.map { $0.name == "Authorization" ? ($0.name, String(upper)) : ($0.name, $0.value) }
            let encodedKey = key.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? key
            let r = try await RawHTTP.send(port: emu.port, method: "PUT", target: "/\(sts.bucket)/\(encodedKey)",
                                           headers: headers, body: bytes)
            #expect(r.status == 403)
            #expect(r.xmlCode == "SignatureDoesNotMatch")
        }
    }

    @Test func doneWithoutBytesLeavesPending() async throws {
        try await withEmulator(testEmulatorConfiguration()) { emu in
            let image = try await registerOSS(emu, name: "x.jpg", checksum: sha1(jpegBytes("never")))
            #expect(try await doneUpload(emu, image.id) == "Pending")
        }
    }

    @Test func wrongSecretIsRefused() async throws {
        try await withEmulator(testEmulatorConfiguration()) { emu in
            let bytes = jpegBytes("oss-bad")
            let sts = try await getSTS(emu)
            let image = try await registerOSS(emu, name: "b.jpg", checksum: sha1(bytes))
            for version in [OSSSignatureVersion.v1, .v4(region: "cn-shenzhen")] {
                let r = try await putOSS(emu, sts: sts, key: "\(samplePID)/\(image.filename)", bytes: bytes,
                                         version: version, secret: "not-the-secret")
                #expect(r.status == 403)
                #expect(r.xmlCode == "SignatureDoesNotMatch")
            }
            let wrongToken = try await putOSS(emu, sts: sts, key: "\(samplePID)/\(image.filename)", bytes: bytes, token: "forged")
            #expect(wrongToken.status == 403)
            #expect(wrongToken.xmlCode == "InvalidSecurityToken")
            let unknownKey = try await putOSS(emu, sts: STS(id: "STS.nobody", secret: "s", token: sts.token, bucket: sts.bucket,
                                                            endpoint: sts.endpoint, expire: sts.expire),
                                              key: "\(samplePID)/\(image.filename)", bytes: bytes)
            #expect(unknownKey.status == 403)
            #expect(unknownKey.xmlCode == "InvalidAccessKeyId")
            #expect(await emu.stats().bytesStored == 0)
        }
    }

    @Test func expiredSTSIsRefused() async throws {
        let clock = ManualEmulatorClock()
        try await withEmulator(testEmulatorConfiguration(), clock: clock) { emu in
            let bytes = jpegBytes("oss-exp")
            let sts = try await getSTS(emu)
            let image = try await registerOSS(emu, name: "e.jpg", checksum: sha1(bytes))
            clock.advance(by: 3601)
            // Signed "now" (so no skew): only the STS lifetime is over.
            let r = try await putOSS(emu, sts: sts, key: "\(samplePID)/\(image.filename)", bytes: bytes)
            #expect(r.status == 403)
            #expect(r.xmlCode == "SecurityTokenExpired")
        }
    }

    @Test func foreignPrefixIsRefused() async throws {
        var config = testEmulatorConfiguration()
        config.projects.append(ProjectSeed(id: "bbbbbbbbbbbbbbbbbbbbbbbb", name: "Other"))
        try await withEmulator(config) { emu in
            let bytes = jpegBytes("foreign")
            let sts = try await getSTS(emu, pid: samplePID)
            let r = try await putOSS(emu, sts: sts, key: "bbbbbbbbbbbbbbbbbbbbbbbb/x.jpg", bytes: bytes)
            #expect(r.status == 403)
            #expect(r.xmlCode == "AccessDenied")
            let root = try await putOSS(emu, sts: sts, key: "x.jpg", bytes: bytes)
            #expect(root.xmlCode == "AccessDenied")
            let otherBucket = try await putOSS(emu, sts: sts, key: "\(samplePID)/x.jpg", bytes: bytes, bucket: "other-bucket")
            #expect(otherBucket.status == 404)
            #expect(otherBucket.xmlCode == "NoSuchBucket")
        }
    }

    @Test func skewedDateIsRefused() async throws {
        try await withEmulator(testEmulatorConfiguration()) { emu in
            let bytes = jpegBytes("skew")
            let sts = try await getSTS(emu)
            let r = try await putOSS(emu, sts: sts, key: "\(samplePID)/s.jpg", bytes: bytes,
                                     date: emu.state.now().addingTimeInterval(-16 * 60))
            #expect(r.status == 403)
            #expect(r.xmlCode == "RequestTimeTooSkewed")
        }
    }
}
