import AltiEmulator
import AltiTestSupport
import Foundation
import Testing

@Suite("Image lifecycle")
struct LifecycleTests {
    @Test func checksumMismatchMakesInvalid() async throws {
        try await withEmulator(testEmulatorConfiguration()) { emu in
            let bytes = jpegBytes("mismatch")
            let registered = sha1(jpegBytes("something else"))
            let reg = try await registerS3(emu, name: "m.jpg", checksum: registered)
            try await startUpload(emu, reg.imageID)
            #expect(try await putS3(emu, reg, bytes).status == 200)
            let (state, errors) = try await waitForFinalState(emu, reg.imageID)
            #expect(state == "Invalid")
            #expect(errors == ["checksum mismatch: registered \(registered), stored bytes have \(sha1(bytes))"])
        }
    }

    @Test func notAnImageMakesInvalid() async throws {
        try await withEmulator(testEmulatorConfiguration()) { emu in
            let bytes = Array("this is a text file, not a photo".utf8)
            let reg = try await registerS3(emu, name: "notes.jpg", checksum: sha1(bytes))
            try await startUpload(emu, reg.imageID)
            #expect(try await putS3(emu, reg, bytes).status == 200)
            let (state, errors) = try await waitForFinalState(emu, reg.imageID)
            #expect(state == "Invalid")
            #expect(errors == ["not a JPEG, PNG or TIFF image"])
        }
    }

    @Test func tiffAndPNGAreImages() async throws {
        try await withEmulator(testEmulatorConfiguration()) { emu in
            let tiff: [UInt8] = [0x49, 0x49, 0x2A, 0x00] + Array("tiff body".utf8)
            let png = pngBytes("png body")
            let t = try await registerS3(emu, name: "a.tif", checksum: sha1(tiff), type: "TIFF")
            let p = try await registerS3(emu, name: "b.png", checksum: sha1(png), type: "PNG")
            try await startUpload(emu, t.imageID)
            try await startUpload(emu, p.imageID)
            #expect(t.filename.hasSuffix(".tif"))
            #expect(try await putS3(emu, t, tiff, contentType: "image/tiff").status == 200)
            #expect(try await putS3(emu, p, png, contentType: "image/png").status == 200)
            #expect(try await waitForFinalState(emu, t.imageID).0 == "Ready")
            #expect(try await waitForFinalState(emu, p.imageID).0 == "Ready")
        }
    }

    @Test func hasImageReturnsAnyStateAndReRegistrationResets() async throws {
        try await withEmulator(testEmulatorConfiguration()) { emu in
            let good = jpegBytes("good")
            let bad = Array("garbage".utf8)
            let hasImage = "mutation hasImage($pid: ID!, $c: String!) { hasImage(pid: $pid, checksum: $c) { id state name checksum } }"
            #expect(try await gql(emu, hasImage, ["pid": samplePID, "c": sha1(good)]).data("hasImage") == nil)

            let ready = try await registerS3(emu, name: "good.jpg", checksum: sha1(good))
            try await startUpload(emu, ready.imageID)
            #expect(try await putS3(emu, ready, good).status == 200)
            #expect(try await waitForFinalState(emu, ready.imageID).0 == "Ready")
            let invalid = try await registerS3(emu, name: "bad.jpg", checksum: sha1(bad))
            try await startUpload(emu, invalid.imageID)
            #expect(try await putS3(emu, invalid, bad).status == 200)
            #expect(try await waitForFinalState(emu, invalid.imageID).0 == "Invalid")

            let h1 = try await gql(emu, hasImage, ["pid": samplePID, "c": sha1(good)])
            #expect(h1.data("hasImage", "state") as? String == "Ready")
            #expect(h1.data("hasImage", "name") as? String == "good.jpg")
            #expect(h1.data("hasImage", "checksum") as? String == sha1(good))
            let h2 = try await gql(emu, hasImage, ["pid": samplePID, "c": sha1(bad)])
            #expect(h2.data("hasImage", "state") as? String == "Invalid")

            // Same checksum again: same id; Ready stays Ready, Invalid goes back to Pending.
            let again = try await registerS3(emu, name: "good.jpg", checksum: sha1(good))
            #expect(again.imageID == ready.imageID)
            #expect(again.state == "Ready")
            let retry = try await registerS3(emu, name: "bad.jpg", checksum: sha1(bad))
            #expect(retry.imageID == invalid.imageID)
            #expect(retry.state == "Pending")
            let image = try #require(await emu.state.image(id: invalid.imageID))
            #expect(image.errors.isEmpty)
            #expect(await emu.stats().images.count == 2)
        }
    }

    @Test func pendingForSixtyFiveMinutesBecomesInvalid() async throws {
        let clock = ManualEmulatorClock()
        try await withEmulator(testEmulatorConfiguration(), clock: clock) { emu in
            let reg = try await registerS3(emu, name: "late.jpg", checksum: sha1(jpegBytes("late")))
            clock.advance(by: 64 * 60)
            #expect(await emu.state.image(id: reg.imageID)?.state == .pending)
            clock.advance(by: 60)
            let r = try await gql(emu, "query ($p: ID!, $i: ID!) { project(id: $p) { image(id: $i) { state error } } }",
                                  ["p": samplePID, "i": reg.imageID])
            #expect(r.data("project", "image", "state") as? String == "Invalid")
            #expect(r.data("project", "image", "error") as? [String] == ["no image data arrived within 65 minutes"])
        }
    }

    @Test func startImageUploadKeepsPendingAlive() async throws {
        let clock = ManualEmulatorClock()
        try await withEmulator(testEmulatorConfiguration(), clock: clock) { emu in
            let reg = try await registerS3(emu, name: "slow.jpg", checksum: sha1(jpegBytes("slow")))
            clock.advance(by: 60 * 60)
            _ = try await gql(emu, "mutation ($id: ID!) { startImageUpload(id: $id) { id } }", ["id": reg.imageID])
            clock.advance(by: 60 * 60)
            #expect(await emu.state.image(id: reg.imageID)?.state == .pending)
        }
    }

    /// Checksums are compared exactly as sent: the real service stores what the client sent (the
    /// client sends lower-case hex), so upper-case hex is another checksum.
    @Test func checksumsCompareExactlyAsSent() async throws {
        try await withEmulator(testEmulatorConfiguration()) { emu in
            let lower = sha1(jpegBytes("case"))
            let upper = lower.uppercased()
            let hasImage = "mutation hasImage($pid: ID!, $c: String!) { hasImage(pid: $pid, checksum: $c) { id checksum } }"
            let reg = try await registerS3(emu, name: "case.jpg", checksum: lower)
            #expect(try await gql(emu, hasImage, ["pid": samplePID, "c": lower]).data("hasImage", "id") as? String
                    == reg.imageID)
            let h = try await gql(emu, hasImage, ["pid": samplePID, "c": upper])
            #expect(h.status == 200)
            #expect(h.data("hasImage") == nil)

            // Registering the upper-case spelling is another image, which keeps the checksum as sent.
            let other = try await registerS3(emu, name: "CASE.JPG", checksum: upper)
            #expect(other.imageID != reg.imageID)
            #expect(await emu.state.image(id: other.imageID)?.checksum == upper)
            #expect(try await gql(emu, hasImage, ["pid": samplePID, "c": upper]).data("hasImage", "id") as? String
                    == other.imageID)
            #expect(await emu.stats().images.count == 2)
        }
    }

    /// Upload guide: "Just before each upload, it is required to call mutation startImageUpload(id)".
    /// Bytes that arrive without it are stored (S3 cannot know) but the image does not advance: it
    /// stays Pending with an error, and the 65-minute rule turns it Invalid.
    @Test func bytesWithoutStartImageUploadDoNotAdvance() async throws {
        let clock = ManualEmulatorClock()
        try await withEmulator(testEmulatorConfiguration(), clock: clock) { emu in
            let bytes = jpegBytes("unstarted")
            let reg = try await registerS3(emu, name: "u.jpg", checksum: sha1(bytes))
            #expect(try await putS3(emu, reg, bytes).status == 200)
            #expect(await emu.state.objectBytes(imageID: reg.imageID) == bytes)
            try await Task.sleep(nanoseconds: 300_000_000)  // well past the 0.05 s processing delay

            let query = "query ($p: ID!, $i: ID!) { project(id: $p) { image(id: $i) { state error } } }"
            let pending = try await gql(emu, query, ["p": samplePID, "i": reg.imageID])
            #expect(pending.data("project", "image", "state") as? String == "Pending")
            #expect(pending.data("project", "image", "error") as? [String] == ["bytes arrived without startImageUpload"])

            let stats = try await RawHTTP.send(port: emu.port, method: "GET", target: "/_emulator/stats")
            let json = try #require(stats.json)
            #expect((json["putsByImage"] as? [String: Int])?[reg.imageID] == 1)
            #expect((json["startsByImage"] as? [String: Int]) == [:])

            clock.advance(by: 65 * 60)
            let invalid = try await gql(emu, query, ["p": samplePID, "i": reg.imageID])
            #expect(invalid.data("project", "image", "state") as? String == "Invalid")
            #expect(invalid.data("project", "image", "error") as? [String]
                    == ["bytes arrived without startImageUpload", "no image data arrived within 65 minutes"])
        }
    }

    /// The flag belongs to one registration: re-registering needs a new startImageUpload.
    @Test func reRegistrationNeedsAnotherStartImageUpload() async throws {
        try await withEmulator(testEmulatorConfiguration()) { emu in
            let bytes = jpegBytes("restart")
            let first = try await registerS3(emu, name: "r.jpg", checksum: sha1(bytes))
            #expect(try await startUpload(emu, first.imageID) == "Pending")
            let again = try await registerS3(emu, name: "r.jpg", checksum: sha1(bytes))
            #expect(again.imageID == first.imageID)
            #expect(try await putS3(emu, again, bytes).status == 200)
            try await Task.sleep(nanoseconds: 300_000_000)
            let image = try #require(await emu.state.image(id: again.imageID))
            #expect(image.state == .pending)
            #expect(image.errors == ["bytes arrived without startImageUpload"])

            #expect(try await startUpload(emu, again.imageID) == "Pending")
            #expect(try await putS3(emu, again, bytes).status == 200)
            let (state, errors) = try await waitForFinalState(emu, again.imageID)
            #expect(state == "Ready")
            #expect(errors.isEmpty)
            let stats = await emu.stats()
            #expect(stats.startsByImage == [again.imageID: 2])
            #expect(stats.putsByImage == [again.imageID: 2])
        }
    }

    @Test func unknownImageIsAnError() async throws {
        try await withEmulator(testEmulatorConfiguration()) { emu in
            let r = try await gql(emu, "mutation { startImageUpload(id: \"ffffffffffffffffffffffff\") { id } }")
            #expect(r.data("startImageUpload") == nil)
            #expect(r.errorMessages == ["Image not found"])
        }
    }
}
