import AltiCrypto
import AltiEmulator
import AltiTestSupport
import Foundation
import Testing

/// The official Aliyun SDK (oss2, from PyPI) uploads into the emulator: V1 and V4 are accepted,
/// a wrong secret is refused; its multipart upload goes through with its CRC-64 checks on. Proves
/// the verifier agrees with the real signer and the CRCs with the real SDK. Fails (never skips)
/// when python3 or oss2 is missing. The interpreter is `TestPython.interpreter` (`$ALTI_TEST_PYTHON`,
/// which scripts/test points at the venv `scripts/bootstrap --test` makes, else `python3`).
@Suite("oss2 cross-check")
struct OSS2CrossCheckTests {
    struct Outcome: Decodable { let status: Int?; let code: String?; let etag: String?; let crc: UInt64? }

    func runOSS2(_ emu: RunningEmulator, sts: STS, key: String, file: String, version: String,
                 secret: String? = nil, multipartPartSize: Int? = nil) async throws -> Outcome {
        let script = Run.packageRoot.appendingPathComponent("scripts/oss2_check.py").path
        let result: ProcessResult
        do {
            result = try await runProcessOffPool(
                TestPython.interpreter,
                [script, "--endpoint", sts.endpoint, "--bucket", sts.bucket, "--key", key, "--file", file,
                 "--version", version, "--region", "cn-shenzhen"]
                    + (multipartPartSize.map { ["--multipart", String($0)] } ?? []),
                environment: ["OSS_ACCESS_KEY_ID": sts.id, "OSS_ACCESS_KEY_SECRET": secret ?? sts.secret,
                              "OSS_SECURITY_TOKEN": sts.token])
        } catch {
            throw TestFailure("cannot run \(TestPython.interpreter) (needed for the oss2 cross-check): \(error)")
        }
        if result.exitCode == 3 {
            throw TestFailure("oss2 is missing: \(result.stdout) (run scripts/bootstrap --test and set ALTI_TEST_PYTHON"
                              + " to the interpreter it prints; scripts/test does)")
        }
        guard result.exitCode == 0, let line = result.stdout.split(separator: "\n").last else {
            throw TestFailure("oss2_check.py failed (exit \(result.exitCode)): \(result.stdout) \(result.stderr)")
        }
        return try JSONDecoder().decode(Outcome.self, from: Data(line.utf8))
    }

    @Test func officialSDKAgreesWithTheVerifier() async throws {
        let tree = try TempTree("oss2")
        try await withEmulator(testEmulatorConfiguration()) { emu in
            let sts = try await getSTS(emu)
            for version in ["v1", "v4"] {
                let bytes = jpegBytes("oss2-\(version)", size: 50_000)
                let file = try tree.write("\(version).jpg", bytes)
                let image = try await registerOSS(emu, name: "IMG_\(version).JPG", checksum: sha1(bytes))
                try await startUpload(emu, image.id)
                let ok = try await runOSS2(emu, sts: sts, key: "\(samplePID)/\(image.filename)", file: file, version: version)
                #expect(ok.status == 200, "oss2 \(version) upload refused: \(ok.code ?? "?")")
                #expect(await emu.state.objectBytes(imageID: image.id) == bytes)
                #expect(try await doneUpload(emu, image.id) == "Uploaded")
                #expect(try await waitForFinalState(emu, image.id).0 == "Ready")

                let refused = try await runOSS2(emu, sts: sts, key: "\(samplePID)/\(image.filename)", file: file,
                                                version: version, secret: "wrong-secret")
                #expect(refused.status == 403)
                #expect(refused.code == "SignatureDoesNotMatch")
            }
            let stats = await emu.stats()
            #expect(stats.puts("ok") == 2)
            #expect(stats.puts("SignatureDoesNotMatch") == 2)
        }
    }

    /// oss2's init_multipart_upload / upload_part / complete_multipart_upload, V1 and V4, with its
    /// CRC checks on (each part's x-oss-hash-crc64ecma against what it sent, the object's against
    /// the parts' CRCs combined): accepted, stored as sent, the image becomes Ready. A damaged
    /// part (corruptNextStores) is caught by oss2's own check; a wrong secret is refused.
    @Test func officialSDKMultipartAgreesWithTheEmulator() async throws {
        let tree = try TempTree("oss2-multipart")
        try await withEmulator(testEmulatorConfiguration()) { emu in
            let sts = try await getSTS(emu)
            let partSize = 100 * 1024
            for version in ["v1", "v4"] {
                let bytes = jpegBytes("oss2-multipart-\(version)", size: 2 * partSize + 30_000)
                let file = try tree.write("\(version).jpg", bytes)
                let image = try await registerOSS(emu, name: "IMG_M\(version).JPG", checksum: sha1(bytes))
                try await startUpload(emu, image.id)
                let key = "\(samplePID)/\(image.filename)"
                let ok = try await runOSS2(emu, sts: sts, key: key, file: file, version: version,
                                           multipartPartSize: partSize)
                #expect(ok.status == 200, "oss2 \(version) multipart refused: \(ok.code ?? "?")")
                #expect(ok.crc == CRC64.checksum(bytes))
                #expect(ok.etag?.hasSuffix("-3") == true)
                #expect(await emu.state.objectBytes(imageID: image.id) == bytes)
                #expect(await emu.stats().partsByKey[key] == [1: 1, 2: 1, 3: 1])
                #expect(try await doneUpload(emu, image.id) == "Uploaded")
                #expect(try await waitForFinalState(emu, image.id).0 == "Ready")

                let refused = try await runOSS2(emu, sts: sts, key: key, file: file, version: version,
                                                secret: "wrong-secret", multipartPartSize: partSize)
                #expect(refused.status == 403)
                #expect(refused.code == "SignatureDoesNotMatch")

                // The first part is stored damaged: oss2 sees its CRC is not what it sent and stops.
                let damagedKey = "\(samplePID)/damaged-\(version).jpg"
                await emu.updateFaults { $0.corruptNextStores = 1 }
                let damaged = try await runOSS2(emu, sts: sts, key: damagedKey, file: file, version: version,
                                                multipartPartSize: partSize)
                #expect(damaged.code == "InconsistentError")
                #expect(await emu.stats().multipartCompleted == (version == "v1" ? 1 : 2))
            }
            let stats = await emu.stats()
            #expect(stats.multipartInitiated == 4)
            #expect(stats.ossRefusal("SignatureDoesNotMatch") == 2)
            #expect(stats.corruptedStores == 2)
        }
    }
}
