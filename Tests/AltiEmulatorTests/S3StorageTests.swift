import AltiCrypto
import AltiEmulator
import AltiTestSupport
import Foundation
import Testing

@Suite("S3-style storage")
struct S3StorageTests {
    @Test func presignedURLShape() async throws {
        try await withEmulator(testEmulatorConfiguration()) { emu in
            let bytes = jpegBytes("shape")
            let reg = try await registerS3(emu, name: "IMG_0001.JPG", checksum: sha1(bytes))
            #expect(reg.state == "Pending")
            #expect(reg.filename == "\(sha1(bytes)).jpg")
            #expect(reg.url.hasPrefix("\(emu.baseURL)/s3/alti-emu-s3-hongkong/\(samplePID)/\(reg.filename)?"))
            #expect(reg.url.contains("X-Amz-Algorithm=AWS4-HMAC-SHA256"))
            #expect(reg.url.contains("X-Amz-Expires=10800"))
            #expect(reg.url.contains("X-Amz-SignedHeaders=content-type%3Bhost"))
            #expect(reg.url.contains("X-Amz-Signature="))
        }
    }

    @Test func putStoresBytesAndImageBecomesReady() async throws {
        try await withEmulator(testEmulatorConfiguration()) { emu in
            let bytes = jpegBytes("ready", size: 300_000)
            let reg = try await registerS3(emu, name: "IMG_0002.JPG", checksum: sha1(bytes))
            let start = try await gql(emu, "mutation ($id: ID!) { startImageUpload(id: $id) { id state } }", ["id": reg.imageID])
            #expect(start.data("startImageUpload", "state") as? String == "Pending")
            let put = try await putS3(emu, reg, bytes)
            #expect(put.status == 200)
            #expect(put.header("ETag") == "\"\(AltiCryptoMD5.hex(bytes))\"")
            let image = try #require(await emu.state.image(id: reg.imageID))
            #expect(image.state == .uploaded || image.state == .ready)
            let (state, errors) = try await waitForFinalState(emu, reg.imageID)
            #expect(state == "Ready")
            #expect(errors.isEmpty)
            #expect(await emu.state.objectBytes(imageID: reg.imageID) == bytes)
            let stats = await emu.stats()
            #expect(stats.putsByImage[reg.imageID] == 1)
            #expect(stats.puts("ok") == 1)
            #expect(stats.bytesStored == bytes.count)
            #expect(stats.imagesByState["Ready"] == 1)
            // The Ready image's url serves the bytes back.
            let image2 = try await gql(emu, "query ($p: ID!, $i: ID!) { project(id: $p) { image(id: $i) { url } } }",
                                       ["p": samplePID, "i": reg.imageID])
            let url = try #require(image2.data("project", "image", "url") as? String)
            let get = try await RawHTTP.send(port: emu.port, method: "GET", target: String(url.dropFirst(emu.baseURL.count)))
            #expect(get.body == bytes)
        }
    }

    @Test func wrongSignatureIsRefused() async throws {
        try await withEmulator(testEmulatorConfiguration()) { emu in
            let bytes = jpegBytes("tamper")
            let reg = try await registerS3(emu, name: "t.jpg", checksum: sha1(bytes))
            var target = reg.target
            let last = target.removeLast()
            target.append(last == "0" ? "1" : "0")
            let r = try await putS3(emu, reg, bytes, target: target)
            #expect(r.status == 403)
            #expect(r.xmlCode == "SignatureDoesNotMatch")
            #expect(r.header("Content-Type") == "application/xml")
            // A path re-encoded by the client is a different canonical URI.
            let reencoded = reg.target.replacingOccurrences(of: "/s3/", with: "/s3%2F")
            #expect(try await putS3(emu, reg, bytes, target: reencoded).status != 200)
            #expect(await emu.stats().puts("SignatureDoesNotMatch") == 1)
            #expect(await emu.stats().putsByImage[reg.imageID] == nil)
            #expect(await emu.state.image(id: reg.imageID)?.state == .pending)
        }
    }

    @Test func wrongContentTypeIsRefused() async throws {
        try await withEmulator(testEmulatorConfiguration()) { emu in
            let bytes = pngBytes("ct")
            let reg = try await registerS3(emu, name: "p.png", checksum: sha1(bytes), type: "PNG")
            let wrong = try await putS3(emu, reg, bytes, contentType: "image/jpeg")
            #expect(wrong.status == 403)
            #expect(wrong.xmlCode == "SignatureDoesNotMatch")
            let right = try await putS3(emu, reg, bytes, contentType: "image/png")
            #expect(right.status == 200)
        }
    }

    @Test func expiredURLIsRefused() async throws {
        let clock = ManualEmulatorClock()
        try await withEmulator(testEmulatorConfiguration(), clock: clock) { emu in
            let bytes = jpegBytes("expired")
            let reg = try await registerS3(emu, name: "e.jpg", checksum: sha1(bytes))
            clock.advance(by: 3 * 3600 + 1)
            let r = try await putS3(emu, reg, bytes)
            #expect(r.status == 403)
            #expect(r.xmlCode == "AccessDenied")
            #expect(r.text.contains("<Message>Request has expired</Message>"))
            #expect(r.text.contains("<X-Amz-Expires>10800</X-Amz-Expires>"))
        }
    }

    @Test func chunkedBodyIsRefused() async throws {
        try await withEmulator(testEmulatorConfiguration()) { emu in
            let bytes = jpegBytes("chunked")
            let reg = try await registerS3(emu, name: "c.jpg", checksum: sha1(bytes))
            let r = try await putS3(emu, reg, bytes, framing: .chunked)
            #expect(r.status == 501)
            #expect(r.xmlCode == "NotImplemented")
            #expect(r.text.contains("<Header>Transfer-Encoding</Header>"))
            #expect(await emu.stats().bytesStored == 0)
        }
    }

    @Test func missingLengthIsRefused() async throws {
        try await withEmulator(testEmulatorConfiguration()) { emu in
            let bytes = jpegBytes("nolength")
            let reg = try await registerS3(emu, name: "n.jpg", checksum: sha1(bytes))
            let r = try await putS3(emu, reg, [], framing: .none)
            #expect(r.status == 411)
            #expect(r.xmlCode == "MissingContentLength")
        }
    }

    @Test func unsignedAmzHeaderIsRefused() async throws {
        try await withEmulator(testEmulatorConfiguration()) { emu in
            let bytes = jpegBytes("unsigned")
            let reg = try await registerS3(emu, name: "u.jpg", checksum: sha1(bytes))
            let r = try await putS3(emu, reg, bytes, extraHeaders: [("x-amz-acl", "public-read")])
            #expect(r.status == 403)
            #expect(r.xmlCode == "AccessDenied")
            #expect(r.text.contains("<HeadersNotSigned>x-amz-acl</HeadersNotSigned>"))
        }
    }

    /// X-Amz-Signature is lower-case hex; the same signature upper-cased is another string to S3.
    @Test func upperCaseSignatureIsRefused() async throws {
        try await withEmulator(testEmulatorConfiguration()) { emu in
            let bytes = jpegBytes("upper")
            let reg = try await registerS3(emu, name: "up.jpg", checksum: sha1(bytes))
            try await startUpload(emu, reg.imageID)
            let marker = "X-Amz-Signature="
            let range = try #require(reg.target.range(of: marker))
            let signature = reg.target[range.upperBound...].prefix { $0 != "&" }
            #expect(signature.contains { "abcdef".contains($0) })
            let upper = reg.target.replacingOccurrences(of: marker + signature, with: marker + signature.uppercased())
            let r = try await putS3(emu, reg, bytes, target: upper)
            #expect(r.status == 403)
            #expect(r.xmlCode == "SignatureDoesNotMatch")
            #expect(await emu.state.objectBytes(imageID: reg.imageID) == nil)
            #expect(try await putS3(emu, reg, bytes).status == 200)
        }
    }

    @Test func oldURLStillWorksAfterReRegistration() async throws {
        try await withEmulator(testEmulatorConfiguration()) { emu in
            let bytes = jpegBytes("rereg")
            let first = try await registerS3(emu, name: "r.jpg", checksum: sha1(bytes))
            let second = try await registerS3(emu, name: "r.jpg", checksum: sha1(bytes))
            try await startUpload(emu, second.imageID)
            #expect(second.imageID == first.imageID)
            #expect(second.filename == first.filename)
            #expect(try await putS3(emu, first, bytes).status == 200)
            #expect(try await waitForFinalState(emu, first.imageID).0 == "Ready")
        }
    }
}

enum AltiCryptoMD5 {
    static func hex(_ bytes: [UInt8]) -> String {
        Digest.hash(.md5, bytes).hexString
    }
}
