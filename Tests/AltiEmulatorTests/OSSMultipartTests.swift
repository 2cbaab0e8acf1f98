import AltiCrypto
import AltiEmulator
import AltiSigning
import AltiTestSupport
import Foundation
import Testing

/// The multipart calls for one object key over the real socket, signed with AltiSigning's signer
/// like every OSS test (path style, STS token).
struct OSSMultipart {
    let emu: RunningEmulator
    var sts: STS
    let key: String
    var version: OSSSignatureVersion = .v4(region: "cn-shenzhen")

    func initiate(secret: String? = nil) async throws -> RawHTTPResponse {
        try await ossRequest(emu, sts: sts, method: "POST", key: key, query: [("uploads", "")],
                             headers: [("Content-Type", "image/jpeg")], version: version, secret: secret)
    }

    /// InitiateMultipartUpload that must succeed: the upload id.
    func start() async throws -> String {
        let r = try await initiate()
        guard r.status == 200, let uploadID = r.xmlValue("UploadId") else {
            throw TestFailure("InitiateMultipartUpload failed: \(r.status) \(r.text)")
        }
        return uploadID
    }

    func part(_ uploadID: String, _ number: Int, _ bytes: [UInt8], partNumber: String? = nil,
              headers: [(String, String)] = []) async throws -> RawHTTPResponse {
        try await ossRequest(emu, sts: sts, method: "PUT", key: key,
                             query: [("partNumber", partNumber ?? String(number)), ("uploadId", uploadID)],
                             headers: headers, body: bytes, version: version)
    }

    /// UploadParts that must succeed: each part's ETag header, in order.
    func parts(_ uploadID: String, _ parts: [[UInt8]]) async throws -> [String] {
        var etags: [String] = []
        for (index, bytes) in parts.enumerated() {
            let r = try await part(uploadID, index + 1, bytes)
            guard r.status == 200, let etag = r.header("ETag") else {
                throw TestFailure("UploadPart \(index + 1) failed: \(r.status) \(r.text)")
            }
            etags.append(etag)
        }
        return etags
    }

    func complete(_ uploadID: String, _ parts: [(Int, String)]) async throws -> RawHTTPResponse {
        try await complete(uploadID, body: completeBody(parts))
    }

    func complete(_ uploadID: String, body: String) async throws -> RawHTTPResponse {
        try await ossRequest(emu, sts: sts, method: "POST", key: key, query: [("uploadId", uploadID)],
                             headers: [("Content-Type", "application/xml")], body: Array(body.utf8), version: version)
    }

    func abort(_ uploadID: String) async throws -> RawHTTPResponse {
        try await ossRequest(emu, sts: sts, method: "DELETE", key: key, query: [("uploadId", uploadID)],
                             version: version)
    }
}

/// `<CompleteMultipartUpload>` as oss2 writes it (the ETag as the part's answer had it, quoted).
func completeBody(_ parts: [(Int, String)]) -> String {
    "<?xml version='1.0' encoding='utf-8'?>\n<CompleteMultipartUpload>"
        + parts.map { "<Part><PartNumber>\($0.0)</PartNumber><ETag>\($0.1)</ETag></Part>" }.joined()
        + "</CompleteMultipartUpload>"
}

/// `bytes` cut into parts of `size` (the last one shorter).
func split(_ bytes: [UInt8], partSize size: Int) -> [[UInt8]] {
    stride(from: 0, to: bytes.count, by: size).map { Array(bytes[$0..<min($0 + size, bytes.count)]) }
}

/// `"<upper-case hex MD5>"`, the ETag OSS answers for a PutObject or UploadPart.
func ossETag(_ bytes: [UInt8]) -> String { "\"\(Digest.hash(.md5, bytes).hexString.uppercased())\"" }

let minimumPartSize = 100 * 1024

@Suite("OSS multipart upload")
struct OSSMultipartTests {
    @Test(arguments: [OSSSignatureVersion.v1, .v4(region: "cn-shenzhen")])
    func threePartsThenDoneMakesReady(version: OSSSignatureVersion) async throws {
        try await withEmulator(testEmulatorConfiguration()) { emu in
            let bytes = jpegBytes("multipart-\(version)", size: 2 * minimumPartSize + 60_000)
            let sts = try await getSTS(emu)
            let image = try await registerOSS(emu, name: "IMG_0100.JPG", checksum: sha1(bytes))
            try await startUpload(emu, image.id)
            let key = "\(samplePID)/\(image.filename)"
            let upload = OSSMultipart(emu: emu, sts: sts, key: key, version: version)

            let initiated = try await upload.initiate()
            #expect(initiated.status == 200)
            #expect(initiated.header("Content-Type") == "application/xml")
            #expect(initiated.xmlValue("Bucket") == "alti-emu-oss")
            #expect(initiated.xmlValue("Key") == key)
            let uploadID = try #require(initiated.xmlValue("UploadId"))
            #expect(uploadID.count == 32 && uploadID.allSatisfy { $0.isHexDigit && !$0.isLowercase })
            #expect(initiated.text.hasPrefix("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<InitiateMultipartUploadResult>"))

            let parts = split(bytes, partSize: minimumPartSize)
            #expect(parts.count == 3)
            var etags: [String] = []
            for (index, part) in parts.enumerated() {
                let r = try await upload.part(uploadID, index + 1, part)
                #expect(r.status == 200, "\(r.text)")
                #expect(r.header("ETag") == ossETag(part))
                #expect(r.header("x-oss-hash-crc64ecma") == String(CRC64.checksum(part)))
                etags.append(try #require(r.header("ETag")))
            }
            // Nothing is stored before Complete.
            #expect(await emu.state.objectBytes(imageID: image.id) == nil)

            let completed = try await upload.complete(uploadID, Array(zip(1...3, etags)))
            #expect(completed.status == 200, "\(completed.text)")
            #expect(completed.header("x-oss-hash-crc64ecma") == String(CRC64.checksum(bytes)))
            let combined = parts.dropFirst().reduce(CRC64.checksum(parts[0])) {
                CRC64.combine($0, CRC64.checksum($1), secondLength: Int64($1.count))
            }
            #expect(completed.header("x-oss-hash-crc64ecma") == String(combined))
            let md5s = parts.flatMap { Digest.hash(.md5, $0) }
            let multipartETag = "\"\(Digest.hash(.md5, md5s).hexString.uppercased())-3\""
            #expect(completed.header("ETag") == multipartETag)
            #expect(completed.xmlValue("ETag") == multipartETag)
            #expect(completed.xmlValue("Bucket") == "alti-emu-oss")
            #expect(completed.xmlValue("Key") == key)
            #expect(completed.xmlValue("Location") == "\(emu.baseURL)/alti-emu-oss/\(key)")
            #expect(completed.text.hasPrefix("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<CompleteMultipartUploadResult>"))

            // Stored exactly as a PutObject stores it: the image waits for doneImageUpload.
            #expect(await emu.state.objectBytes(imageID: image.id) == bytes)
            #expect(await emu.state.image(id: image.id)?.state == .pending)
            #expect(try await doneUpload(emu, image.id) == "Uploaded")
            #expect(try await waitForFinalState(emu, image.id) == ("Ready", []))

            let stats = await emu.stats()
            #expect(stats.multipartInitiated == 1 && stats.multipartCompleted == 1 && stats.multipartAborted == 0)
            #expect(stats.partsByKey[key] == [1: 1, 2: 1, 3: 1])
            #expect(stats.partsByUpload[uploadID] == [1: 1, 2: 1, 3: 1])
            #expect(stats.partsStored(key: key) == 3)
            #expect(stats.putsByImage[image.id] == 1)
            #expect(stats.ossOperations == ["InitiateMultipartUpload": 1, "UploadPart": 3, "CompleteMultipartUpload": 1])
            #expect(stats.ossRefusals.isEmpty)
            #expect(await emu.state.multipartUploadsInProgress().isEmpty)
        }
    }

    /// PutObject answers the CRC-64 of what it stored, beside the upper-case MD5 ETag.
    @Test func putObjectAnswersCRC64() async throws {
        try await withEmulator(testEmulatorConfiguration()) { emu in
            let bytes = jpegBytes("crc-put", size: 70_000)
            let sts = try await getSTS(emu)
            let image = try await registerOSS(emu, name: "IMG_0101.JPG", checksum: sha1(bytes))
            let put = try await putOSS(emu, sts: sts, key: "\(samplePID)/\(image.filename)", bytes: bytes)
            #expect(put.status == 200)
            #expect(put.header("ETag") == ossETag(bytes))
            #expect(put.header("x-oss-hash-crc64ecma") == String(CRC64.checksum(bytes)))
            #expect(await emu.stats().ossOperation("PutObject") == 1)
        }
    }

    /// A part re-sent replaces the earlier one; only the listed parts make the object, and one
    /// part alone may be small (it is the last).
    @Test func resentPartReplacesAndUnlistedPartsAreDropped() async throws {
        try await withEmulator(testEmulatorConfiguration()) { emu in
            let sts = try await getSTS(emu)
            let key = "\(samplePID)/resend.jpg"
            let upload = OSSMultipart(emu: emu, sts: sts, key: key)
            let uploadID = try await upload.start()
            let first = jpegBytes("first", size: 5000), second = jpegBytes("second", size: 5000)
            #expect(try await upload.part(uploadID, 1, first).status == 200)
            let resent = try await upload.part(uploadID, 1, second)
            #expect(try await upload.part(uploadID, 2, jpegBytes("dropped")).status == 200)
            let etag = try #require(resent.header("ETag"))
            let stale = try await upload.complete(uploadID, [(1, ossETag(first))])
            #expect(stale.status == 400 && stale.xmlCode == "InvalidPart")
            let r = try await upload.complete(uploadID, [(1, etag)])
            #expect(r.status == 200, "\(r.text)")
            #expect(await emu.state.object(key: "oss/alti-emu-oss/\(key)") == second)
            #expect(await emu.stats().partsByKey[key] == [1: 2, 2: 1])
        }
    }

    @Test func unknownUploadIsNoSuchUpload() async throws {
        try await withEmulator(testEmulatorConfiguration()) { emu in
            let sts = try await getSTS(emu)
            let upload = OSSMultipart(emu: emu, sts: sts, key: "\(samplePID)/a.jpg")
            let unknown = "0004B9894A22E5B1888A1E29F8230000"
            let part = try await upload.part(unknown, 1, jpegBytes("x"))
            #expect(part.status == 404)
            #expect(part.xmlCode == "NoSuchUpload")
            #expect(part.xmlValue("UploadId") == unknown)
            #expect(try await upload.complete(unknown, [(1, ossETag(jpegBytes("x")))]).xmlCode == "NoSuchUpload")
            #expect(try await upload.abort(unknown).status == 404)

            // An upload id belongs to its object key.
            let uploadID = try await upload.start()
            let other = OSSMultipart(emu: emu, sts: sts, key: "\(samplePID)/b.jpg")
            #expect(try await other.part(uploadID, 1, jpegBytes("x")).xmlCode == "NoSuchUpload")
            #expect(try await other.abort(uploadID).xmlCode == "NoSuchUpload")
            #expect(await emu.stats().ossRefusal("NoSuchUpload") == 5)
            #expect(await emu.stats().partsByKey.isEmpty)
        }
    }

    @Test(arguments: ["0", "10001", "x", "-1", ""])
    func partNumberOutsideOneToTenThousand(partNumber: String) async throws {
        try await withEmulator(testEmulatorConfiguration()) { emu in
            let sts = try await getSTS(emu)
            let upload = OSSMultipart(emu: emu, sts: sts, key: "\(samplePID)/n.jpg")
            let uploadID = try await upload.start()
            let r = try await upload.part(uploadID, 0, jpegBytes("n"), partNumber: partNumber)
            #expect(r.status == 400)
            #expect(r.xmlCode == "InvalidArgument")
            #expect(r.xmlValue("ArgumentName") == "PartNumber")
            #expect(r.xmlValue("ArgumentValue") == partNumber)
            #expect(try await upload.part(uploadID, 10_000, jpegBytes("n")).status == 200)
        }
    }

    @Test func completeRefusals() async throws {
        try await withEmulator(testEmulatorConfiguration()) { emu in
            let sts = try await getSTS(emu)
            let key = "\(samplePID)/refusals.jpg"
            let upload = OSSMultipart(emu: emu, sts: sts, key: key)
            let uploadID = try await upload.start()
            let big = jpegBytes("big", size: minimumPartSize), small = jpegBytes("small", size: minimumPartSize - 1)
            let tail = jpegBytes("tail", size: 10)
            let etags = try await upload.parts(uploadID, [big, small, tail])

            func expectRefusal(_ body: String, _ status: Int, _ code: String,
                               sourceLocation: SourceLocation = #_sourceLocation) async throws {
                let r = try await upload.complete(uploadID, body: body)
                #expect(r.status == status, "\(r.text)", sourceLocation: sourceLocation)
                #expect(r.xmlCode == code, "\(r.text)", sourceLocation: sourceLocation)
            }
            try await expectRefusal(completeBody([(2, etags[1]), (1, etags[0])]), 400, "InvalidPartOrder")
            try await expectRefusal(completeBody([(1, etags[0]), (1, etags[0])]), 400, "InvalidPartOrder")
            try await expectRefusal(completeBody([(1, etags[0]), (4, etags[2])]), 400, "InvalidPart")
            try await expectRefusal(completeBody([(1, etags[1])]), 400, "InvalidPart")
            // The hex is compared as stored (upper case).
            try await expectRefusal(completeBody([(1, etags[0].lowercased())]), 400, "InvalidPart")
            // Part 2 is 1 byte short of 100 KiB and not the last.
            try await expectRefusal(completeBody([(1, etags[0]), (2, etags[1]), (3, etags[2])]), 400, "EntityTooSmall")
            for malformed in [
                "", "not xml", "<CompleteMultipartUpload></CompleteMultipartUpload>",
                "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber></Part></CompleteMultipartUpload>",
                "<CompleteMultipartUpload><Part><PartNumber>one</PartNumber><ETag>\(etags[0])</ETag></Part></CompleteMultipartUpload>",
                "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>\(etags[0])</ETag></Part>",
                "<Complete><Part><PartNumber>1</PartNumber><ETag>\(etags[0])</ETag></Part></Complete>",
                "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>\(etags[0])</ETag><Extra/></Part></CompleteMultipartUpload>",
                "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>a &bogus; b</ETag></Part></CompleteMultipartUpload>",
            ] {
                try await expectRefusal(malformed, 400, "MalformedXML")
            }
            let stats = await emu.stats()
            #expect(stats.ossRefusals == ["InvalidPartOrder": 2, "InvalidPart": 3, "EntityTooSmall": 1, "MalformedXML": 9])
            #expect(stats.multipartCompleted == 0)

            // Refusals leave the upload as it was: parts 1 and 3 (part 2 left out) complete it.
            let done = try await upload.complete(uploadID, [(1, etags[0]), (3, etags[2])])
            #expect(done.status == 200, "\(done.text)")
            #expect(await emu.state.object(key: "oss/alti-emu-oss/\(key)") == big + tail)
            // A completed upload is gone.
            #expect(try await upload.complete(uploadID, [(1, etags[0]), (3, etags[2])]).xmlCode == "NoSuchUpload")
            #expect(try await upload.abort(uploadID).xmlCode == "NoSuchUpload")
            #expect(try await upload.part(uploadID, 4, tail).xmlCode == "NoSuchUpload")
        }
    }

    /// Clients write the ETags of the list differently: oss2 and Go v1 quote them, the Android and
    /// Java SDKs strip the quotes, Go's encoding/xml escapes them (`&#34;`). All name the same part.
    @Test(arguments: ["plain", "unquoted", "quot", "numeric"])
    func etagSpellingsInTheList(spelling: String) async throws {
        try await withEmulator(testEmulatorConfiguration()) { emu in
            let sts = try await getSTS(emu)
            let upload = OSSMultipart(emu: emu, sts: sts, key: "\(samplePID)/spell.jpg")
            let uploadID = try await upload.start()
            let etag = try await upload.parts(uploadID, [jpegBytes("spell")])[0]
            let hex = etag.trimmingCharacters(in: CharacterSet(charactersIn: "\""))
            let written: String
            switch spelling {
            case "unquoted": written = hex
            case "quot": written = "&quot;\(hex)&quot;"
            case "numeric": written = "&#34;\(hex)&#34;"
            default: written = etag
            }
            let body = "<CompleteMultipartUpload>\n  <Part>\n    <PartNumber>1</PartNumber>\n    <ETag>\(written)</ETag>\n  </Part>\n</CompleteMultipartUpload>"
            let r = try await upload.complete(uploadID, body: body)
            #expect(r.status == 200, "\(r.text)")
        }
    }

    @Test func abortForgetsTheUpload() async throws {
        try await withEmulator(testEmulatorConfiguration()) { emu in
            let sts = try await getSTS(emu)
            let key = "\(samplePID)/abort.jpg"
            let upload = OSSMultipart(emu: emu, sts: sts, key: key)
            let uploadID = try await upload.start()
            _ = try await upload.parts(uploadID, [jpegBytes("abort")])
            let aborted = try await upload.abort(uploadID)
            #expect(aborted.status == 204)
            #expect(aborted.body.isEmpty)
            #expect(try await upload.part(uploadID, 2, jpegBytes("late")).xmlCode == "NoSuchUpload")
            #expect(try await upload.abort(uploadID).status == 404)
            let stats = await emu.stats()
            #expect(stats.multipartAborted == 1)
            #expect(stats.partsByKey[key] == [1: 1])
            #expect(await emu.state.multipartUploadsInProgress().isEmpty)
            #expect(await emu.state.object(key: "oss/alti-emu-oss/\(key)") == nil)
        }
    }

    /// The STS policy is write-only: ListParts and every read or delete are refused (after the
    /// signature is checked), 403 AccessDenied.
    @Test func listPartsAndReadsAreRefused() async throws {
        try await withEmulator(testEmulatorConfiguration()) { emu in
            let sts = try await getSTS(emu)
            let key = "\(samplePID)/list.jpg"
            let upload = OSSMultipart(emu: emu, sts: sts, key: key)
            let uploadID = try await upload.start()
            _ = try await upload.parts(uploadID, [jpegBytes("list")])
            let listParts = try await ossRequest(emu, sts: sts, method: "GET", key: key, query: [("uploadId", uploadID)])
            #expect(listParts.status == 403)
            #expect(listParts.xmlCode == "AccessDenied")
            #expect(listParts.xmlValue("Message") == "Access denied by authorizer&apos;s policy.")
            for method in ["GET", "DELETE"] {
                let r = try await ossRequest(emu, sts: sts, method: method, key: key)
                #expect(r.status == 403 && r.xmlCode == "AccessDenied", "\(method)")
            }
            let head = try await ossRequest(emu, sts: sts, method: "HEAD", key: key)
            #expect(head.status == 403)
            let error = try #require(head.header("x-oss-err").flatMap { Data(base64Encoded: $0) })
            #expect(String(decoding: error, as: UTF8.self).contains("<Code>AccessDenied</Code>"))
            // With a wrong secret the signature is what is wrong.
            let forged = try await ossRequest(emu, sts: sts, method: "GET", key: key, query: [("uploadId", uploadID)],
                                              secret: "wrong")
            #expect(forged.xmlCode == "SignatureDoesNotMatch")
            let stats = await emu.stats()
            #expect(stats.ossOperations["ListParts"] == 2)
            #expect(stats.ossOperations["GetObject"] == 1 && stats.ossOperations["DeleteObject"] == 1)
            #expect(stats.ossOperations["HeadObject"] == 1)
            #expect(stats.ossRefusal("AccessDenied") == 4)
        }
    }

    /// Multipart requests are verified like PutObject, and their sub-resources are signed (V1
    /// canonical resource, V4 canonical query): the same request with another upload id or part
    /// number than the one signed is refused.
    @Test(arguments: [OSSSignatureVersion.v1, .v4(region: "cn-shenzhen")])
    func multipartRequestsAreVerified(version: OSSSignatureVersion) async throws {
        var config = testEmulatorConfiguration()
        config.projects.append(ProjectSeed(id: "bbbbbbbbbbbbbbbbbbbbbbbb", name: "Other"))
        let clock = ManualEmulatorClock()
        try await withEmulator(config, clock: clock) { emu in
            let sts = try await getSTS(emu)
            let key = "\(samplePID)/verified.jpg"
            let upload = OSSMultipart(emu: emu, sts: sts, key: key, version: version)
            #expect(try await upload.initiate(secret: "wrong").xmlCode == "SignatureDoesNotMatch")
            let foreign = OSSMultipart(emu: emu, sts: sts, key: "bbbbbbbbbbbbbbbbbbbbbbbb/x.jpg", version: version)
            #expect(try await foreign.initiate().xmlCode == "AccessDenied")
            let uploadID = try await upload.start()
            let secondID = try await upload.start()
            let bytes = jpegBytes("signed")
            let swappedID = try await ossRequest(
                emu, sts: sts, method: "PUT", key: key, query: [("partNumber", "1"), ("uploadId", uploadID)],
                body: bytes, version: version, wireQuery: [("partNumber", "1"), ("uploadId", secondID)])
            #expect(swappedID.status == 403 && swappedID.xmlCode == "SignatureDoesNotMatch")
            let swappedNumber = try await ossRequest(
                emu, sts: sts, method: "PUT", key: key, query: [("partNumber", "1"), ("uploadId", uploadID)],
                body: bytes, version: version, wireQuery: [("partNumber", "2"), ("uploadId", uploadID)])
            #expect(swappedNumber.xmlCode == "SignatureDoesNotMatch")
            let unsignedUploads = try await ossRequest(
                emu, sts: sts, method: "POST", key: key, query: [], version: version, wireQuery: [("uploads", "")])
            #expect(unsignedUploads.xmlCode == "SignatureDoesNotMatch")
            #expect(await emu.stats().partsByKey.isEmpty)

            // A part signed with an STS that has expired since.
            clock.advance(by: 3601)
            let expired = try await upload.part(uploadID, 1, bytes)
            #expect(expired.status == 403)
            #expect(expired.xmlCode == "SecurityTokenExpired")
            #expect(expired.xmlValue("Message") == "The security token you provided has expired.")
            // The upload is not the STS's: renewed credentials carry on with it.
            var renewed = upload
            renewed.sts = try await getSTS(emu)
            let etags = try await renewed.parts(uploadID, [bytes])
            #expect(try await renewed.complete(uploadID, [(1, etags[0])]).status == 200)
        }
    }

    /// With a data directory, uploads in progress and their parts survive a restart.
    @Test func uploadInProgressSurvivesRestart() async throws {
        let tree = try TempTree("emu-multipart")
        var config = testEmulatorConfiguration()
        config.dataDirectory = tree.path("data")
        let bytes = jpegBytes("restart", size: minimumPartSize + 5000)
        let parts = split(bytes, partSize: minimumPartSize)
        let (sts, image, uploadID, firstETag) = try await withEmulator(config) { emu in
            let sts = try await getSTS(emu)
            let image = try await registerOSS(emu, name: "IMG_0102.JPG", checksum: sha1(bytes))
            try await startUpload(emu, image.id)
            let upload = OSSMultipart(emu: emu, sts: sts, key: "\(samplePID)/\(image.filename)")
            let uploadID = try await upload.start()
            let etags = try await upload.parts(uploadID, [parts[0]])
            return (sts, image, uploadID, etags[0])
        }
        #expect(FileManager.default.fileExists(atPath: tree.path("data/multipart/\(uploadID)/1")))
        try await withEmulator(config) { emu in
            let upload = OSSMultipart(emu: emu, sts: sts, key: "\(samplePID)/\(image.filename)")
            #expect(await emu.state.multipartUploadsInProgress().map(\.uploadID) == [uploadID])
            let second = try await upload.parts(uploadID, [parts[0], parts[1]])
            #expect(second[0] == firstETag)
            let r = try await upload.complete(uploadID, Array(zip(1...2, second)))
            #expect(r.status == 200, "\(r.text)")
            #expect(r.header("x-oss-hash-crc64ecma") == String(CRC64.checksum(bytes)))
            #expect(await emu.state.objectBytes(imageID: image.id) == bytes)
            #expect(try await doneUpload(emu, image.id) == "Uploaded")
            #expect(try await waitForFinalState(emu, image.id).0 == "Ready")
        }
        #expect(!FileManager.default.fileExists(atPath: tree.path("data/multipart/\(uploadID)")))
    }

    /// A Content-MD5 the client sends is checked against the bytes received (PutObject and parts).
    @Test func contentMD5IsChecked() async throws {
        try await withEmulator(testEmulatorConfiguration()) { emu in
            let sts = try await getSTS(emu)
            let upload = OSSMultipart(emu: emu, sts: sts, key: "\(samplePID)/md5.jpg")
            let uploadID = try await upload.start()
            let bytes = jpegBytes("md5")
            let good = Data(Digest.hash(.md5, bytes)).base64EncodedString()
            let wrong = Data(Digest.hash(.md5, bytes + [0])).base64EncodedString()
            #expect(try await upload.part(uploadID, 1, bytes, headers: [("Content-MD5", good)]).status == 200)
            let refused = try await upload.part(uploadID, 2, bytes, headers: [("Content-MD5", wrong)])
            #expect(refused.status == 400 && refused.xmlCode == "InvalidDigest")
            let put = try await ossRequest(emu, sts: sts, method: "PUT", key: "\(samplePID)/put-md5.jpg",
                                           headers: [("Content-MD5", wrong)], body: bytes)
            #expect(put.xmlCode == "InvalidDigest")
            #expect(await emu.stats().partsByKey["\(samplePID)/md5.jpg"] == [1: 1])
        }
    }
}
