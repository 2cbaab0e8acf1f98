import AltiEmulator
import AltiTestSupport
import Foundation
import Testing

@Suite("Fault injection")
struct FaultTests {
    @Test(arguments: [503, 500])
    func graphQLFailNext(status: Int) async throws {
        try await withEmulator(testEmulatorConfiguration()) { emu in
            await emu.updateFaults { $0.graphql.failNext = 2; $0.graphql.failStatus = status }
            #expect(try await gql(emu, "{ support { systemMode } }").status == status)
            #expect(try await gql(emu, "{ support { systemMode } }").status == status)
            let ok = try await gql(emu, "{ support { systemMode } }")
            #expect(ok.status == 200)
            #expect(await emu.stats().graphqlRequests == 3)
            #expect(await emu.requestLog().map(\.status) == [status, status, 200])
        }
    }

    @Test func putFailNextThenSuccess() async throws {
        try await withEmulator(testEmulatorConfiguration()) { emu in
            let bytes = jpegBytes("fail")
            let reg = try await registerS3(emu, name: "f.jpg", checksum: sha1(bytes))
            try await startUpload(emu, reg.imageID)
            await emu.updateFaults { $0.put.failNext = 1 }
            let failed = try await putS3(emu, reg, bytes)
            #expect(failed.status == 503)
            #expect(failed.xmlCode == "ServiceUnavailable")
            #expect(try await putS3(emu, reg, bytes).status == 200)
            let stats = await emu.stats()
            #expect(stats.puts("fault-503") == 1)
            #expect(stats.puts("ok") == 1)
            #expect(stats.putsByImage[reg.imageID] == 1)
        }
    }

    @Test func putResetMidBody() async throws {
        try await withEmulator(testEmulatorConfiguration()) { emu in
            let bytes = jpegBytes("reset", size: 2_000_000)
            let reg = try await registerS3(emu, name: "r.jpg", checksum: sha1(bytes))
            try await startUpload(emu, reg.imageID)
            await emu.updateFaults { $0.put.resetNext = 1 }
            await #expect(throws: RawHTTPError.self) { try await putS3(emu, reg, bytes) }
            let stats = await emu.stats()
            #expect(stats.puts("fault-reset") == 1)
            #expect(stats.bytesStored == 0)
            #expect(await emu.state.image(id: reg.imageID)?.state == .pending)
            #expect(try await putS3(emu, reg, bytes).status == 200)
        }
    }

    @Test func graphQLResetMidBody() async throws {
        try await withEmulator(testEmulatorConfiguration()) { emu in
            await emu.updateFaults { $0.graphql.resetNext = 1 }
            await #expect(throws: RawHTTPError.self) { try await gql(emu, "{ support { systemMode } }") }
            let after = try await gql(emu, "{ support { systemMode } }")
            #expect(after.status == 200)
        }
    }

    @Test func trickleStillDeliversEveryByte() async throws {
        try await withEmulator(testEmulatorConfiguration()) { emu in
            let bytes = jpegBytes("trickle", size: 6000)
            let reg = try await registerS3(emu, name: "t.jpg", checksum: sha1(bytes))
            try await startUpload(emu, reg.imageID)
            await emu.updateFaults { $0.put.trickleNext = 1; $0.put.trickleBytesPerSecond = 20_000 }
            let started = Date()
            #expect(try await putS3(emu, reg, bytes).status == 200)
            #expect(Date().timeIntervalSince(started) >= 0.25)
            #expect(await emu.state.objectBytes(imageID: reg.imageID) == bytes)
        }
    }

    @Test func hangNeverAnswers() async throws {
        try await withEmulator(testEmulatorConfiguration()) { emu in
            await emu.updateFaults { $0.graphql.hangNext = 1; $0.graphql.hangSeconds = 0.5 }
            await #expect(throws: RawHTTPError.self) { try await gql(emu, "{ support { systemMode } }") }
            let bytes = jpegBytes("hang")
            let reg = try await registerS3(emu, name: "h.jpg", checksum: sha1(bytes))
            await emu.updateFaults { $0.put.hangNext = 1; $0.put.hangSeconds = 30 }
            // The client gives up first (its own timeout); the request is still unanswered.
            await #expect(throws: RawHTTPError.timedOut) {
                try await RawHTTP.send(port: emu.port, method: "PUT", target: reg.target,
                                       headers: [("Content-Type", "image/jpeg")], body: bytes, timeout: 1)
            }
            // The emulator counts the PUT when it reads it: on a loaded machine that can come after
            // the client's 1 s, so wait for the count (up to 20 s) instead of reading it at once.
            let deadline = Date().addingTimeInterval(20)
            while await emu.stats().puts("fault-hang") == 0, Date() < deadline {
                try await Task.sleep(for: .milliseconds(50))
            }
            #expect(await emu.stats().puts("fault-hang") == 1)
        }
    }

    @Test func addedLatency() async throws {
        try await withEmulator(testEmulatorConfiguration()) { emu in
            await emu.updateFaults { $0.graphql.latencyMilliseconds = 300 }
            let started = Date()
            let r = try await gql(emu, "{ support { systemMode } }")
            #expect(r.status == 200)
            #expect(Date().timeIntervalSince(started) >= 0.3)
        }
    }

    @Test func shortURLAndSTSLifetimes() async throws {
        // Whole seconds: `expire` and X-Amz-Date have no fraction.
        let clock = ManualEmulatorClock(Date(timeIntervalSince1970: 1_800_000_000))
        try await withEmulator(testEmulatorConfiguration(), clock: clock) { emu in
            await emu.updateFaults { $0.urlLifetimeSeconds = 2; $0.stsLifetimeSeconds = 3 }
            let bytes = jpegBytes("short")
            let reg = try await registerS3(emu, name: "s.jpg", checksum: sha1(bytes))
            #expect(reg.url.contains("X-Amz-Expires=2&"))
            let sts = try await getSTS(emu)
            clock.advance(by: 2.5)
            #expect(try await putS3(emu, reg, bytes).xmlCode == "AccessDenied")
            let ossImage = try await registerOSS(emu, name: "o.jpg", checksum: sha1(jpegBytes("o")))
            #expect(try await putOSS(emu, sts: sts, key: "\(samplePID)/\(ossImage.filename)", bytes: bytes).status == 200)
            clock.advance(by: 1)
            #expect(try await putOSS(emu, sts: sts, key: "\(samplePID)/\(ossImage.filename)", bytes: bytes).xmlCode
                    == "SecurityTokenExpired")
        }
    }

    @Test func forceInvalidByName() async throws {
        try await withEmulator(testEmulatorConfiguration()) { emu in
            await emu.updateFaults { $0.forceInvalid = ["IMG_0042.JPG"] }
            let bytes = jpegBytes("forced")
            let reg = try await registerS3(emu, name: "IMG_0042.JPG", checksum: sha1(bytes))
            try await startUpload(emu, reg.imageID)
            #expect(try await putS3(emu, reg, bytes).status == 200)
            let (state, errors) = try await waitForFinalState(emu, reg.imageID)
            #expect(state == "Invalid")
            #expect(errors == ["forced Invalid by the emulator (forceInvalid)"])
        }
    }

    @Test func readOnlyMode() async throws {
        try await withEmulator(testEmulatorConfiguration()) { emu in
            await emu.updateFaults { $0.systemMode = .readOnly }
            let mode = try await gql(emu, "{ support { systemMode } }")
            #expect(mode.data("support", "systemMode") as? String == "ReadOnly")
            let r = try await gql(emu, """
                mutation { uploadImageS3(pid: "\(samplePID)", bucket: HongKong, filename: "a.jpg", type: JPEG, checksum: "aa") { url } }
                """)
            #expect(r.data("uploadImageS3") == nil)
            #expect(r.errorMessages.first?.contains("ReadOnly") == true)
            let has = try await gql(emu, "mutation { hasImage(pid: \"\(samplePID)\", checksum: \"aa\") { id } }")
            #expect(has.errorMessages.isEmpty)
        }
    }

    @Test func faultsFromConfigurationAndRates() async throws {
        var config = testEmulatorConfiguration()
        config.faults.graphql.failRate = 1
        try await withEmulator(config) { emu in
            for _ in 0..<3 {
                let r = try await gql(emu, "{ support { systemMode } }")
                #expect(r.status == 503)
            }
            await emu.updateFaults { $0.graphql.failRate = 0 }
            let after = try await gql(emu, "{ support { systemMode } }")
            #expect(after.status == 200)
        }
    }
}
