import AltiCrypto
import AltiEmulator
import AltiSigning
import AltiTestSupport
import Foundation
import Testing

@Suite("OSS faults")
struct OSSFaultTests {
    /// The OSS clock runs `ossClockSkewSeconds` ahead: a client with the emulator's (correct) time
    /// is refused RequestTimeTooSkewed, and the answer tells the storage's time in the body
    /// (`ServerTime`) and in `Date`, from which a client can sign again.
    @Test func skewedStorageClockIsReportedInBodyAndDate() async throws {
        let clock = ManualEmulatorClock(Date(timeIntervalSince1970: 1_800_000_000))
        try await withEmulator(testEmulatorConfiguration(), clock: clock) { emu in
            let sts = try await getSTS(emu)
            await emu.updateFaults { $0.ossClockSkewSeconds = 1800 }
            let storageNow = clock.now().addingTimeInterval(1800)
            let key = "\(samplePID)/skew.jpg"
            let upload = OSSMultipart(emu: emu, sts: sts, key: key)
            let refused = try await upload.initiate()
            #expect(refused.status == 403)
            #expect(refused.xmlCode == "RequestTimeTooSkewed")
            #expect(refused.xmlValue("ServerTime") == SigningTime.iso8601Extended(storageNow))
            #expect(refused.xmlValue("MaxAllowedSkewMilliseconds") == "900000")
            #expect(refused.xmlValue("RequestTime") == SigningTime.iso8601Basic(clock.now()))
            #expect(refused.header("Date") == SigningTime.rfc1123(storageNow))
            let put = try await putOSS(emu, sts: sts, key: key, bytes: jpegBytes("skew"), version: .v1)
            #expect(put.xmlCode == "RequestTimeTooSkewed")
            #expect(put.header("Date") == SigningTime.rfc1123(storageNow))

            // Signed with the time the storage reported, it goes through.
            let serverDate = try #require(refused.header("Date").flatMap(SigningTime.parseRFC1123))
            let corrected = try await ossRequest(emu, sts: sts, method: "POST", key: key, query: [("uploads", "")],
                                                 date: serverDate)
            #expect(corrected.status == 200, "\(corrected.text)")
            #expect(corrected.header("Date") == SigningTime.rfc1123(storageNow))
            // GraphQL is not the storage: its Date is the wall clock.
            let graphQL = try await gql(emu, "{ support { systemMode } }")
            #expect(graphQL.header("Date") != SigningTime.rfc1123(storageNow))
            #expect(await emu.stats().ossRefusal("RequestTimeTooSkewed") == 2)
        }
    }

    /// Within 15 minutes of the storage's clock a request is accepted; STS expiry follows the
    /// storage's clock too.
    @Test func skewWithinFifteenMinutesAndExpiryByTheStorageClock() async throws {
        let clock = ManualEmulatorClock(Date(timeIntervalSince1970: 1_800_000_000))
        try await withEmulator(testEmulatorConfiguration(), clock: clock) { emu in
            let sts = try await getSTS(emu)
            let key = "\(samplePID)/near.jpg"
            await emu.updateFaults { $0.ossClockSkewSeconds = -899 }
            #expect(try await putOSS(emu, sts: sts, key: key, bytes: jpegBytes("near")).status == 200)
            // STS lasts 3600 s by the emulator clock; 3000 s later the storage, 700 s ahead, sees
            // it expired.
            await emu.updateFaults { $0.ossClockSkewSeconds = 700 }
            clock.advance(by: 3000)
            let signedAtStorageTime = clock.now().addingTimeInterval(700)
            let r = try await putOSS(emu, sts: sts, key: key, bytes: jpegBytes("near"), date: signedAtStorageTime)
            #expect(r.xmlCode == "SecurityTokenExpired")
        }
    }

    /// S3 answers carry the emulator clock in `Date` (never the OSS skew).
    @Test func s3DateIsTheEmulatorClock() async throws {
        let clock = ManualEmulatorClock(Date(timeIntervalSince1970: 1_800_000_000))
        try await withEmulator(testEmulatorConfiguration(), clock: clock) { emu in
            await emu.updateFaults { $0.ossClockSkewSeconds = 5000 }
            let bytes = jpegBytes("s3-date")
            let reg = try await registerS3(emu, name: "d.jpg", checksum: sha1(bytes))
            let put = try await putS3(emu, reg, bytes)
            #expect(put.status == 200)
            #expect(put.header("Date") == SigningTime.rfc1123(clock.now()))
        }
    }

    /// A damaged PutObject: the answer's ETag and CRC describe the stored copy, so a client that
    /// checks the CRC sees the mismatch; the image turns Invalid (its checksum no longer matches).
    @Test func corruptedPutObjectAnswersTheStoredCopy() async throws {
        try await withEmulator(testEmulatorConfiguration()) { emu in
            let bytes = jpegBytes("corrupt-put", size: 20_000)
            let sts = try await getSTS(emu)
            let image = try await registerOSS(emu, name: "IMG_0200.JPG", checksum: sha1(bytes))
            try await startUpload(emu, image.id)
            await emu.updateFaults { $0.corruptNextStores = 1 }
            let put = try await putOSS(emu, sts: sts, key: "\(samplePID)/\(image.filename)", bytes: bytes)
            #expect(put.status == 200)
            let stored = try #require(await emu.state.objectBytes(imageID: image.id))
            #expect(stored != bytes && stored.count == bytes.count)
            #expect(zip(stored, bytes).filter { $0 != $1 }.count == 1)
            #expect(put.header("x-oss-hash-crc64ecma") == String(CRC64.checksum(stored)))
            #expect(put.header("x-oss-hash-crc64ecma") != String(CRC64.checksum(bytes)))
            #expect(put.header("ETag") == ossETag(stored))
            #expect(try await doneUpload(emu, image.id) == "Uploaded")
            let (state, errors) = try await waitForFinalState(emu, image.id)
            #expect(state == "Invalid")
            #expect(errors.first?.hasPrefix("checksum mismatch") == true)
            // The count is used up: the next store is clean.
            let again = try await putOSS(emu, sts: sts, key: "\(samplePID)/\(image.filename)", bytes: bytes)
            #expect(again.header("x-oss-hash-crc64ecma") == String(CRC64.checksum(bytes)))
            #expect(await emu.stats().corruptedStores == 1)
            #expect(await emu.state.faults.corruptNextStores == 0)
        }
    }

    /// A damaged part shows in its CRC; sent again it is clean, and the object completes with the
    /// CRC of what the client sent.
    @Test func corruptedPartIsSeenAndReplaced() async throws {
        try await withEmulator(testEmulatorConfiguration()) { emu in
            let bytes = jpegBytes("corrupt-part", size: minimumPartSize + 1000)
            let parts = split(bytes, partSize: minimumPartSize)
            let sts = try await getSTS(emu)
            let key = "\(samplePID)/corrupt-part.jpg"
            let upload = OSSMultipart(emu: emu, sts: sts, key: key)
            let uploadID = try await upload.start()
            await emu.updateFaults { $0.corruptNextStores = 1 }
            let damaged = try await upload.part(uploadID, 1, parts[0])
            #expect(damaged.status == 200)
            #expect(damaged.header("x-oss-hash-crc64ecma") != String(CRC64.checksum(parts[0])))
            #expect(damaged.header("ETag") != ossETag(parts[0]))
            let etags = try await upload.parts(uploadID, parts)
            #expect(etags == parts.map(ossETag))
            let completed = try await upload.complete(uploadID, Array(zip(1...2, etags)))
            #expect(completed.header("x-oss-hash-crc64ecma") == String(CRC64.checksum(bytes)))
            #expect(await emu.stats().partsByKey[key] == [1: 2, 2: 1])
        }
    }

    /// A damage at Complete: the object's CRC is not what the parts' CRCs combine to.
    @Test func corruptedCompleteAnswersTheStoredObject() async throws {
        try await withEmulator(testEmulatorConfiguration()) { emu in
            let bytes = jpegBytes("corrupt-complete", size: minimumPartSize + 1000)
            let sts = try await getSTS(emu)
            let key = "\(samplePID)/corrupt-complete.jpg"
            let upload = OSSMultipart(emu: emu, sts: sts, key: key)
            let uploadID = try await upload.start()
            let etags = try await upload.parts(uploadID, split(bytes, partSize: minimumPartSize))
            await emu.updateFaults { $0.corruptNextStores = 1 }
            let completed = try await upload.complete(uploadID, Array(zip(1...2, etags)))
            #expect(completed.status == 200)
            let stored = try #require(await emu.state.object(key: "oss/alti-emu-oss/\(key)"))
            #expect(stored != bytes)
            #expect(completed.header("x-oss-hash-crc64ecma") == String(CRC64.checksum(stored)))
            #expect(completed.header("x-oss-hash-crc64ecma") != String(CRC64.checksum(bytes)))
        }
    }

    /// corruptNextStores damages S3 PUTs too: the ETag is the stored copy's MD5.
    @Test func corruptedS3PutAnswersTheStoredCopy() async throws {
        try await withEmulator(testEmulatorConfiguration()) { emu in
            let bytes = jpegBytes("corrupt-s3")
            let reg = try await registerS3(emu, name: "c.jpg", checksum: sha1(bytes))
            try await startUpload(emu, reg.imageID)
            await emu.updateFaults { $0.corruptNextStores = 1 }
            let put = try await putS3(emu, reg, bytes)
            #expect(put.status == 200)
            let stored = try #require(await emu.state.objectBytes(imageID: reg.imageID))
            #expect(put.header("ETag") == "\"\(Digest.hash(.md5, stored).hexString)\"")
            #expect(put.header("ETag") != "\"\(Digest.hash(.md5, bytes).hexString)\"")
            #expect(try await waitForFinalState(emu, reg.imageID).0 == "Invalid")
        }
    }

    /// tamperNextSTS: the secret handed out is not the verifier's, so every request signed with
    /// it is SignatureDoesNotMatch; the STS after it is good.
    @Test(arguments: [OSSSignatureVersion.v1, .v4(region: "cn-shenzhen")])
    func tamperedSTSSecretIsRefused(version: OSSSignatureVersion) async throws {
        try await withEmulator(testEmulatorConfiguration()) { emu in
            await emu.updateFaults { $0.tamperNextSTS = 1 }
            let tampered = try await getSTS(emu)
            let held = try #require(await emu.state.sts(accessKeyID: tampered.id))
            #expect(held.secret != tampered.secret && held.secret.count == tampered.secret.count)
            #expect(held.token == tampered.token)
            let key = "\(samplePID)/tampered.jpg"
            let refused = try await putOSS(emu, sts: tampered, key: key, bytes: jpegBytes("t"), version: version)
            #expect(refused.status == 403 && refused.xmlCode == "SignatureDoesNotMatch")
            #expect(try await OSSMultipart(emu: emu, sts: tampered, key: key, version: version).initiate().xmlCode
                    == "SignatureDoesNotMatch")
            let good = try await getSTS(emu)
            #expect(try await putOSS(emu, sts: good, key: key, bytes: jpegBytes("t"), version: version).status == 200)
            let stats = await emu.stats()
            #expect(stats.tamperedSTS == 1 && stats.stsIssued == 2)
            #expect(stats.ossRefusal("SignatureDoesNotMatch") == 2)
        }
    }

    /// OSS requests are the `put` request class: reset, fail and hang hit parts, Initiate and
    /// Complete, and nothing is stored by a request that was cut.
    @Test func requestFaultsHitMultipartRequests() async throws {
        try await withEmulator(testEmulatorConfiguration()) { emu in
            let sts = try await getSTS(emu)
            let key = "\(samplePID)/faults.jpg"
            let upload = OSSMultipart(emu: emu, sts: sts, key: key)
            // Initiate has no body: a reset cuts it after the head, and no upload is made.
            await emu.updateFaults { $0.put.resetNext = 1 }
            await #expect(throws: RawHTTPError.self) { try await upload.initiate() }
            #expect(await emu.stats().multipartInitiated == 0)
            let uploadID = try await upload.start()

            let bytes = jpegBytes("fault-part", size: 2_000_000)
            await emu.updateFaults { $0.put.resetNext = 1 }
            await #expect(throws: RawHTTPError.self) { try await upload.part(uploadID, 1, bytes) }
            #expect(await emu.stats().partsByKey[key] == nil)
            await emu.updateFaults { $0.put.failNext = 1 }
            let failed = try await upload.part(uploadID, 1, bytes)
            #expect(failed.status == 503 && failed.xmlCode == "ServiceUnavailable")
            let etags = try await upload.parts(uploadID, [bytes])

            await emu.updateFaults { $0.put.failNext = 1; $0.put.failStatus = 500 }
            let failedComplete = try await upload.complete(uploadID, [(1, etags[0])])
            #expect(failedComplete.status == 500 && failedComplete.xmlCode == "InternalError")
            // A hung Complete is dropped unanswered (after hangSeconds) and completes nothing.
            await emu.updateFaults { $0.put.hangNext = 1; $0.put.hangSeconds = 0.3 }
            await #expect(throws: RawHTTPError.self) { try await upload.complete(uploadID, [(1, etags[0])]) }
            // Still there after each fault: the Complete goes through.
            #expect(try await upload.complete(uploadID, [(1, etags[0])]).status == 200)
            let stats = await emu.stats()
            #expect(stats.puts("fault-reset") == 2 && stats.puts("fault-503") == 1 && stats.puts("fault-500") == 1)
            #expect(stats.puts("fault-hang") == 1)
            #expect(stats.partsByKey[key] == [1: 1] && stats.multipartCompleted == 1)
        }
    }

    /// The new switches over `POST /_emulator/faults`, and the counters in `GET /_emulator/stats`.
    @Test func switchesAndCountersOverHTTP() async throws {
        try await withEmulator(testEmulatorConfiguration()) { emu in
            let set = try await RawHTTP.send(
                port: emu.port, method: "POST", target: "/_emulator/faults",
                body: Array(#"{"ossClockSkewSeconds": -1200, "corruptNextStores": 2, "tamperNextSTS": 1}"#.utf8))
            #expect(set.status == 200)
            let faults = await emu.state.faults
            #expect(faults.ossClockSkewSeconds == -1200 && faults.corruptNextStores == 2 && faults.tamperNextSTS == 1)
            for bad in [#"{"corruptNextStores": -1}"#, #"{"tamperNextSTS": -2}"#] {
                let r = try await RawHTTP.send(port: emu.port, method: "POST", target: "/_emulator/faults",
                                               body: Array(bad.utf8))
                #expect(r.status == 400)
            }
            await emu.setFaults(FaultSettings())
            let sts = try await getSTS(emu)
            let key = "\(samplePID)/stats.jpg"
            let upload = OSSMultipart(emu: emu, sts: sts, key: key)
            let uploadID = try await upload.start()
            _ = try await upload.parts(uploadID, [jpegBytes("s1"), jpegBytes("s2")])
            #expect(try await upload.abort(uploadID).status == 204)
            let r = try await RawHTTP.send(port: emu.port, method: "GET", target: "/_emulator/stats")
            let json = try #require(r.json)
            #expect((json["partsByKey"] as? [String: [String: Int]])?[key] == ["1": 1, "2": 1])
            #expect((json["partsByUpload"] as? [String: [String: Int]])?[uploadID] == ["1": 1, "2": 1])
            #expect(json["multipartInitiated"] as? Int == 1 && json["multipartAborted"] as? Int == 1)
            #expect((json["ossOperations"] as? [String: Int])?["UploadPart"] == 2)
            #expect(json["corruptedStores"] as? Int == 0 && json["tamperedSTS"] as? Int == 0)

            // Reset forgets uploads in progress.
            let another = try await upload.start()
            _ = try await RawHTTP.send(port: emu.port, method: "POST", target: "/_emulator/reset")
            #expect(await emu.state.multipartUploadsInProgress().isEmpty)
            let sts2 = try await getSTS(emu)
            #expect(try await OSSMultipart(emu: emu, sts: sts2, key: key).part(another, 1, jpegBytes("r")).xmlCode
                    == "NoSuchUpload")
        }
    }
}
