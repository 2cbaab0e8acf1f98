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
            #expect(try await putS3(emu, ready, good).status == 200)
            #expect(try await waitForFinalState(emu, ready.imageID).0 == "Ready")
            let invalid = try await registerS3(emu, name: "bad.jpg", checksum: sha1(bad))
            #expect(try await putS3(emu, invalid, bad).status == 200)
            #expect(try await waitForFinalState(emu, invalid.imageID).0 == "Invalid")

            let h1 = try await gql(emu, hasImage, ["pid": samplePID, "c": sha1(good)])
            #expect(h1.data("hasImage", "state") as? String == "Ready")
            #expect(h1.data("hasImage", "name") as? String == "good.jpg")
            #expect(h1.data("hasImage", "checksum") as? String == sha1(good))
            let h2 = try await gql(emu, hasImage, ["pid": samplePID, "c": sha1(bad).uppercased()])
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

    @Test func unknownImageIsAnError() async throws {
        try await withEmulator(testEmulatorConfiguration()) { emu in
            let r = try await gql(emu, "mutation { startImageUpload(id: \"ffffffffffffffffffffffff\") { id } }")
            #expect(r.data("startImageUpload") == nil)
            #expect(r.errorMessages == ["Image not found"])
        }
    }
}
