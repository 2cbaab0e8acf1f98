@testable import AltiCLI
import AltiArchive
import AltiEmulator
import AltiTestSupport
import Foundation
import Testing

@testable import AltiCore

/// Surveys kept as archives, read in place: scanned and synced without extracting anything.
/// Archives are written by Python's standard library (zipfile, tarfile), run by the test Python.
@Suite(.serialized) struct ArchiveSyncTests {
    static let project = ProjectSeed.sample.id

    /// Writes `files` (member path → source file) into `archive` in `format`: zip, zipstream (with
    /// data descriptors), tar, gz, bz2, xz through Python; 7z and zst through libarchive's writer.
    static func makeArchive(_ archive: String, format: String, files: [(String, String)]) throws {
        if format == "7z" || format == "zst" {
            try ArchiveWriter.write(archive, format: format == "7z" ? .sevenZip : .tarZstd, members: files.map { ($0.0, $0.1) })
            return
        }
        let script = """
            import sys, os, zipfile, tarfile, json
            out, fmt, pairs = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
            os.makedirs(os.path.dirname(out), exist_ok=True)
            class Stream:  # no seek, no tell: zipfile writes data descriptors, as a streaming zipper does
                def __init__(self, f): self.f = f
                def write(self, b): return self.f.write(b)
                def flush(self): self.f.flush()
            if fmt in ("zip", "zipstream", "zip64"):
                raw = open(out, "wb")
                target = Stream(raw) if fmt == "zipstream" else raw
                with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as z:
                    for name, src in pairs:
                        if fmt == "zip64":  # zip64 extra fields on every member, as big exports have
                            with open(src, "rb") as f, z.open(zipfile.ZipInfo(name), "w", force_zip64=True) as m: m.write(f.read())
                        else:
                            z.write(src, name)
                raw.close()
            elif fmt == "gnutar":  # GNU long names (././@LongLink) for paths past 100 bytes
                with tarfile.open(out, "w", format=tarfile.GNU_FORMAT) as t:
                    for name, src in pairs: t.add(src, "a-folder-name-long-enough-for-gnu-long-names-" * 3 + name)
            else:
                mode = "w" if fmt == "tar" else "w:" + fmt
                with tarfile.open(out, mode, format=tarfile.PAX_FORMAT) as t:
                    for name, src in pairs: t.add(src, name)
            """
        let pairs = String(decoding: try JSONSerialization.data(withJSONObject: files.map { [$0.0, $0.1] }), as: UTF8.self)
        let result = try Run.process(TestPython.interpreter, ["-c", script, archive, format, pairs])
        guard result.exitCode == 0 else { throw RunError("cannot write \(archive): \(result.stderr)") }
    }

    /// Sample JPEGs under nested folders and odd names, as archive members.
    static func members(_ range: ClosedRange<Int>) -> [(String, String)] {
        range.map { i in
            let folder = ["flight 1/DCIM", "flight+2/ü", "a/b#c"][i % 3]
            return ("\(folder)/DJI %\(i).JPG", CommandContextTests.sample(i))
        }
    }

    @Test func everyFormatSyncsInPlaceASharedImageGoesOnceAndAnUnchangedArchiveIsNotOpenedAgain() async throws {
        let tree = try TempTree("archives")
        defer { tree.remove() }
        var paths: [String] = []
        let formats = ["zip", "tar", "gz", "bz2", "xz", "7z", "zst", "zipstream", "zip64", "gnutar"]
        for (i, format) in formats.enumerated() {
            let path = tree.path("survey-\(format).bin")  // recognised by content, not by name
            // Members 1...3 are in every archive and in the folder: the same checksums, sent once.
            try Self.makeArchive(path, format: format, files: Self.members(1...3) + Self.members((4 + i * 2)...(5 + i * 2)))
            paths.append(path)
        }
        try tree.copy(CommandContextTests.sample(1), to: "folder/DJI_0001.JPG")
        try tree.copy(CommandContextTests.sample(24), to: "folder/DJI_0024.JPG")
        paths.append(tree.path("folder"))
        try tree.ageAllFiles()
        try await withEmulator(testEmulatorConfiguration()) { emu in
            let first = await CommandContextTests.run(["sync"] + paths + ["--project", Self.project, "--json"],
                                                      FirstHourTests.env(emu))
            #expect(first.code == 0, "\(first.out.suffix(1500)) \(first.err)")
            let stats = await emu.state.stats()
            // 3 shared + 2 per archive (samples 4...23) + 1 only in the folder (sample 24).
            #expect(stats.putsByImage.count == 3 + 2 * formats.count + 1)
            #expect(stats.putsByImage.values.allSatisfy { $0 == 1 })
            #expect(stats.imagesByState["Ready"] == 3 + 2 * formats.count + 1)
            for format in formats {
                let manifest = try ManifestStore.decode(
                    Data(contentsOf: URL(fileURLWithPath: tree.path("survey-\(format).bin.alti.json"))), file: format)
                #expect(manifest.source.kind == "archive")
                #expect(manifest.entries.count == 5)
                #expect(manifest.entries.allSatisfy { $0.server?.state == .ready })
                let prefix = format == "gnutar" ? String(repeating: "a-folder-name-long-enough-for-gnu-long-names-", count: 3) : ""  // > 100 bytes
                #expect(manifest.entries.contains { $0.path == prefix + "flight 1/DCIM/DJI %253.JPG" }, "\(format)")  // "%" as %25
            }
            #expect(try ManifestSchema.errors(["zip", "gz"].map { tree.path("survey-\($0).bin.alti.json") }) == [])

            // Nothing changed: no archive is opened, nothing hashed, nothing sent.
            let opens = paths.map(ArchiveLibrary.opens(of:))
            let again = await CommandContextTests.run(["sync"] + paths + ["--project", Self.project, "--json"],
                                                      FirstHourTests.env(emu))
            #expect(again.code == 0, "\(again.err)")
            #expect(paths.map(ArchiveLibrary.opens(of:)) == opens)
            let report = try #require(try JSONSerialization.jsonObject(with: Data(again.out.utf8)) as? [String: Any])
            #expect(report["filesHashed"] as? Int == 0)
            #expect(await emu.state.stats().puts == stats.puts)
        }
    }

    @Test func aTarGzIsReadAboutOnceForAllItsUploadsNotOncePerMember() async throws {
        let tree = try TempTree("archives-stream")
        defer { tree.remove() }
        let path = tree.path("survey.tar.gz")
        // Written in reverse path order, so archive order and path order differ.
        try Self.makeArchive(path, format: "gz", files: (1...12).reversed().map {
            ("f/DJI_\(String(format: "%04d", $0)).JPG", CommandContextTests.sample($0))
        })
        try tree.ageAllFiles()
        try await withEmulator(testEmulatorConfiguration()) { emu in
            let result = await CommandContextTests.run(["sync", path, "--project", Self.project], FirstHourTests.env(emu))
            #expect(result.code == 0, "\(result.out) \(result.err)")
            #expect(await emu.state.stats().putsByImage.count == 12)
            // The walk, the hashing pass and one upload cursor (once more when parallel uploads ask
            // for their members out of archive order); one open per member would be 14.
            #expect(ArchiveLibrary.opens(of: path) <= 4, "\(ArchiveLibrary.opens(of: path)) opens")
        }
    }

    @Test func archivesInsideAFolderAreReadInPlaceUnlessTurnedOff() async throws {
        let tree = try TempTree("archives-inside")
        defer { tree.remove() }
        try tree.copy(CommandContextTests.sample(1), to: "DJI_0001.JPG")
        try tree.copy(CommandContextTests.sample(2), to: "DJI_0002.JPG")
        // An export from the drone software beside them: one image shared with the folder.
        try Self.makeArchive(tree.path("exports/flight.zip"), format: "zip",
                             files: [("DCIM/DJI_0002.JPG", CommandContextTests.sample(2))] + Self.members(14...15))
        try tree.write("exports/readme.txt", "flight log")
        try tree.ageAllFiles()

        let off = await CommandContextTests.run(["scan", tree.path, "--no-archives", "--json"])
        #expect(off.code == 0, "\(off.err)")
        let offReport = try #require(try JSONSerialization.jsonObject(with: Data(off.out.utf8)) as? [String: Any])
        #expect((offReport["sources"] as? [[String: Any]])?.count == 1)

        try await withEmulator(testEmulatorConfiguration()) { emu in
            let result = await CommandContextTests.run(["sync", tree.path, "--project", Self.project], FirstHourTests.env(emu))
            #expect(result.code == 0, "\(result.out) \(result.err)")
            #expect(result.out.contains("in 2 sources"))
            let stats = await emu.state.stats()
            #expect(stats.putsByImage.count == 4)  // 2 in the folder + 2 only in the zip
            #expect(stats.putsByImage.values.allSatisfy { $0 == 1 })
            let archiveManifest = tree.path(".alti/archives/\(ManifestStore.fallbackName(root: tree.path("exports/flight.zip")))")
            let manifest = try ManifestStore.decode(Data(contentsOf: URL(fileURLWithPath: archiveManifest)), file: archiveManifest)
            #expect(manifest.source.kind == "archive")
            #expect(manifest.entries.count == 3 && manifest.entries.allSatisfy { $0.server?.state == .ready })
        }
    }

    @Test func aTruncatedArchiveKeepsWhatCameBeforeTheBreakAndSaysWhere() async throws {
        let tree = try TempTree("archives-truncated")
        defer { tree.remove() }
        let path = tree.path("survey.tgz")
        try Self.makeArchive(path, format: "gz", files: (1...8).map { ("f/DJI_\(String(format: "%04d", $0)).JPG", CommandContextTests.sample($0)) })
        let bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        try bytes.prefix(bytes.count * 6 / 10).write(to: URL(fileURLWithPath: path))
        let result = await CommandContextTests.run(["scan", path, "--json"])
        #expect(result.code == 79, "\(result.err)")  // what was read is recorded; the break is named
        let manifest = try ManifestStore.decode(Data(contentsOf: URL(fileURLWithPath: path + ".alti.json")), file: path)
        let hashed = manifest.entries.filter { $0.verdict == .ok && $0.sha1 != nil }
        #expect(hashed.count >= 3 && hashed.count < 8)
        // The member the archive broke in is named unreadable, with libarchive's reason.
        #expect(manifest.entries.contains { $0.verdict == .unreadable && ($0.detail ?? "").contains("truncated") })
        #expect(result.out.contains("the archive breaks off"))
        #expect(try ManifestSchema.errors([path + ".alti.json"]) == [])
    }

    @Test func membersReadAtOffsetsForwardAndBackOnBothKindsOfReader() throws {
        let tree = try TempTree("archives-offsets")
        defer { tree.remove() }
        let expected = [UInt8](try Data(contentsOf: URL(fileURLWithPath: CommandContextTests.sample(3))))
        for format in [ArchiveWriter.Format.zip, .tarGzip] {
            let path = tree.path("a.\(format.rawValue)")
            try ArchiveWriter.write(path, format: format, members: [("x/one.jpg", CommandContextTests.sample(1)),
                                                                    ("x/three.jpg", CommandContextTests.sample(3))])
            let archive = ArchiveTree(root: path)
            #expect(archive.isStreaming == (format == .tarGzip))
            for file in [try ArchiveMemberFile(tree: archive, path: "x/three.jpg") as any ReadableFile,
                         try archive.open("x/three.jpg")] {
                #expect(try file.read(at: 1000, count: 10) == Array(expected[1000..<1010]))
                #expect(try file.read(at: 50_000, count: 7) == Array(expected[50_000..<50_007]))
                #expect(try file.read(at: 10, count: 5) == Array(expected[10..<15]))  // behind: starts over
                #expect(try file.read(at: Int64(expected.count - 3), count: 10) == Array(expected.suffix(3)))
            }
        }
    }

    @Test func encryptedMembersAreNamedAndTheRestGoesOn() async throws {
        let tree = try TempTree("archives-encrypted")
        defer { tree.remove() }
        try ArchiveWriter.write(tree.path("locked.zip"), format: .zip,
                                members: [("DCIM/DJI_0001.JPG", CommandContextTests.sample(1))], passphrase: "secret")
        try ArchiveWriter.write(tree.path("open.zip"), format: .zip, members: [("DCIM/DJI_0002.JPG", CommandContextTests.sample(2))])
        let result = await CommandContextTests.run(["scan", tree.path("locked.zip"), tree.path("open.zip")])
        // The open archive is scanned; the locked one says why nothing in it was read.
        #expect(result.code == 74, "\(result.out) \(result.err)")
        #expect(result.out.contains("DCIM/DJI_0001.JPG: unreadable: encrypted (alti reads no passwords)"))
        let open = try ManifestStore.decode(Data(contentsOf: URL(fileURLWithPath: tree.path("open.zip.alti.json"))), file: "open")
        #expect(open.entries.map(\.verdict) == [.ok])
    }

    @Test func aMemberThatInflatesLikeABombIsRefusedMidReadAndTheRestGoesOn() async throws {
        let tree = try TempTree("archives-bomb")
        defer { tree.remove() }
        // A real JPEG header, then 40 MiB of zeros, which deflate and gzip shrink about 1000 times.
        let head = try Data(contentsOf: URL(fileURLWithPath: CommandContextTests.sample(1))).prefix(64 << 10)
        let bomb = try tree.write("bomb.jpg", [UInt8](head))
        let out = try FileHandle(forWritingTo: URL(fileURLWithPath: bomb))
        try out.seekToEnd()
        for _ in 0..<40 { try out.write(contentsOf: Data(count: 1 << 20)) }
        try out.close()
        for format in [ArchiveWriter.Format.zip, .tarGzip] {
            let path = tree.path("survey.\(format.rawValue)")
            try ArchiveWriter.write(path, format: format, members: [("DCIM/DJI_0001.JPG", bomb),
                                                                    ("DCIM/DJI_0002.JPG", CommandContextTests.sample(2))])
            let result = await CommandContextTests.run(["scan", path, "--json"])
            // An image was read, so 79 (some files not usable) rather than 74 (nothing could be read).
            #expect(result.code == 79, "\(format): \(result.out) \(result.err)")
            let manifest = try ManifestStore.decode(Data(contentsOf: URL(fileURLWithPath: path + ".alti.json")), file: path)
            let refused = try #require(manifest.entries.first { $0.path == "DCIM/DJI_0001.JPG" })
            let detail = refused.detail ?? ""
            #expect(refused.verdict == .unreadable && refused.sha1 == nil, "\(format): \(refused.verdict)")
            #expect(detail.contains("refused: it inflates more than 200 times"), "\(format): \(detail)")
            let normal = try #require(manifest.entries.first { $0.path == "DCIM/DJI_0002.JPG" })
            #expect(normal.verdict == .ok && normal.sha1 != nil, "\(format)")
            #expect(try ManifestSchema.errors([path + ".alti.json"]) == [])
        }
    }

    @Test func aFileThatIsNoArchiveIsRefusedAndAMemberNameIsRecordedSafely() async throws {
        let tree = try TempTree("archives-bad")
        defer { tree.remove() }
        let notes = try tree.write("notes.zip", "not an archive")
        let result = await CommandContextTests.run(["scan", notes])
        #expect(result.code == 66)
        #expect(result.err == "alti: \(notes) is neither a folder nor an archive alti can read (zip, tar, tar.gz/bz2/xz/zst, 7z): give the folder or the archive that holds the images\n")

        #expect(ArchiveMember.safePath(Array("/abs/../x\\y%z.jpg".utf8)) == "abs/%2E%2E/x%5Cy%25z.jpg")
        #expect(ArchiveMember.safePath([0x66, 0xFF, 0x2E, 0x6A, 0x70, 0x67]) == "f%FF.jpg")
        #expect(ArchiveMember.safePath(Array("./DCIM/ü.JPG".utf8)) == "DCIM/ü.JPG")
    }

    /// Members big enough that a loopback socket cannot swallow them (the store reads each body at
    /// 10 MB/s, half a second a member): the uploads of one tar.gz still overlap, because each
    /// takes its member (under `ArchiveTree.streamBuffer`) into its own buffer and lets the cursor go.
    @Test func uploadsOfOneTarGzRunSideBySide() async throws {
        let tree = try TempTree("archives-parallel")
        defer { tree.remove() }
        var members: [(String, String)] = []
        for i in 0..<6 {
            let file = try tree.write("src/big\(i).jpg", try OSSMultipartTests.bigJPEG(size: 5_000_000 + i * 1000))
            members.append(("DCIM/BIG_\(i).JPG", file))
        }
        let path = tree.path("survey.tar.gz")
        try ArchiveWriter.write(path, format: .tarGzip, members: members)
        try tree.ageAllFiles()
        try await withEmulator(testEmulatorConfiguration()) { emu in
            await emu.updateFaults { $0.put.trickleRate = 1; $0.put.trickleBytesPerSecond = 10_000_000 }
            let result = await CommandContextTests.run(["sync", path, "--project", Self.project, "--transfers", "4"],
                                                      FirstHourTests.env(emu))
            #expect(result.code == 0, "\(result.out) \(result.err)")
            let stats = await emu.state.stats()
            #expect(stats.putsByImage.count == 6 && stats.putsByImage.values.allSatisfy { $0 == 1 })
            #expect(stats.peakBodiesInFlight >= 3, "at most \(stats.peakBodiesInFlight) bodies at once")
            // The walk, the hashing pass and the upload cursor (one open per member would be 8).
            #expect(ArchiveLibrary.opens(of: path) <= 4, "\(ArchiveLibrary.opens(of: path)) opens")
        }
    }

    /// Members go through OSS too, a large one in parts: each part is read on from the shared
    /// cursor (a tar.gz) or its own reader (a zip) and stored once.
    @Test func membersGoUpThroughOSSALargeOneInParts() async throws {
        let tree = try TempTree("archives-oss")
        defer { tree.remove() }
        var paths: [String] = []
        for (i, format) in [ArchiveWriter.Format.tarGzip, .zip].enumerated() {
            let big = try tree.write("src/pano\(i).jpg", try OSSMultipartTests.bigJPEG(size: 20_000_000 + i))
            let path = tree.path("survey-\(i).\(format.rawValue)")
            try ArchiveWriter.write(path, format: format, members: [
                ("a/DJI_0001.JPG", CommandContextTests.sample(1 + i * 2)), ("pano/PANO.JPG", big),
                ("b/DJI_0002.JPG", CommandContextTests.sample(2 + i * 2)),
            ])
            paths.append(path)
        }
        try tree.ageAllFiles()
        try await withEmulator(testEmulatorConfiguration()) { emu in
            let result = await CommandContextTests.run(
                ["sync"] + paths + ["--project", Self.project, "--cloud", "oss", "--multipart-threshold", "10",
                                    "--part-size", "4", "--transfers", "3"], FirstHourTests.env(emu))
            #expect(result.code == 0, "\(result.out) \(result.err)")
            let stats = await emu.state.stats()
            #expect(stats.putsByImage.count == 6 && stats.putsByImage.values.allSatisfy { $0 == 1 })
            #expect(stats.imagesByState["Ready"] == 6)
            // Two images of 20 MB in parts of 4 MiB: 5 parts each, each stored once.
            #expect(stats.partsByKey.count == 2)
            #expect(stats.partsByKey.values.allSatisfy { $0.count == 5 && $0.values.allSatisfy { $0 == 1 } })
            #expect(ArchiveLibrary.opens(of: paths[0]) <= 4, "\(ArchiveLibrary.opens(of: paths[0])) opens of the tar.gz")
            for path in paths {
                let manifest = try ManifestStore.decode(Data(contentsOf: URL(fileURLWithPath: path + ".alti.json")), file: path)
                #expect(manifest.entries.allSatisfy { $0.server?.state == .ready && $0.server?.cloud == "OSS" })
            }
        }
    }

    /// An archive replaced under alti with one of the same size and mtime: the stat shortcut
    /// trusts it, but the upload hashes what it sends, withholds the last bytes of the member
    /// that no longer matches, records nothing as stored and drops its hash cache; the next run
    /// reads the archive again and sends the new content.
    @Test func aMemberThatNoLongerMatchesItsChecksumIsNotStoredAndIsHashedAgain() async throws {
        let tree = try TempTree("archives-replaced")
        defer { tree.remove() }
        let path = tree.path("survey.tar")
        let changed = [UInt8](try Data(contentsOf: URL(fileURLWithPath: CommandContextTests.sample(2))))
        try ArchiveWriter.write(path, format: .tar, members: [
            ("f/DJI_0001.JPG", CommandContextTests.sample(1)), ("f/DJI_0002.JPG", CommandContextTests.sample(2)),
            ("f/DJI_0003.JPG", CommandContextTests.sample(3)),
        ])
        try tree.ageAllFiles()
        let scan = await CommandContextTests.run(["scan", path])
        #expect(scan.code == 0, "\(scan.err)")
        let before = try ManifestStore.decode(Data(contentsOf: URL(fileURLWithPath: path + ".alti.json")), file: path)
        let archiveFacts = try #require(before.source.archive)

        // One byte of the second member's scan data changes in place: same inode, size, mtime.
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        let start = try #require(Self.find(Array(changed[0..<4096]), in: bytes))
        bytes[start + changed.count - 5000] ^= 0x55
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        try handle.write(contentsOf: Data(bytes))
        try handle.close()
        try tree.setMtime("survey.tar", ns: archiveFacts.mtimeNs)

        try await withEmulator(testEmulatorConfiguration()) { emu in
            let first = await CommandContextTests.run(["sync", path, "--project", Self.project], FirstHourTests.env(emu))
            #expect(first.code == 75, "\(first.out) \(first.err)")
            #expect(first.out.contains("f/DJI_0002.JPG: its bytes no longer match the checksum the scan recorded"), "\(first.out)")
            #expect(await emu.state.stats().putsByImage.count == 2)  // the other two members
            let after = try ManifestStore.decode(Data(contentsOf: URL(fileURLWithPath: path + ".alti.json")), file: path)
            #expect(after.source.archive == nil)
            #expect(after.entry(at: "f/DJI_0002.JPG")?.hashedAtNs == 0)
            #expect(try ManifestSchema.errors([path + ".alti.json"]) == [])

            let second = await CommandContextTests.run(["sync", path, "--project", Self.project, "--json"], FirstHourTests.env(emu))
            #expect(second.code == 0, "\(second.out) \(second.err)")
            let report = try #require(try JSONSerialization.jsonObject(with: Data(second.out.utf8)) as? [String: Any])
            #expect(report["filesHashed"] as? Int == 1)
            let stats = await emu.state.stats()
            #expect(stats.putsByImage.count == 3 && stats.putsByImage.values.allSatisfy { $0 == 1 })
            let last = try ManifestStore.decode(Data(contentsOf: URL(fileURLWithPath: path + ".alti.json")), file: path)
            let entry = try #require(last.entry(at: "f/DJI_0002.JPG"))
            #expect(entry.sha1 != before.entry(at: "f/DJI_0002.JPG")?.sha1 && entry.server?.state == .ready)
        }
    }

    static func find(_ needle: [UInt8], in haystack: [UInt8]) -> Int? {
        guard needle.count <= haystack.count else { return nil }
        for i in 0...(haystack.count - needle.count) where haystack[i] == needle[0] && Array(haystack[i..<(i + needle.count)]) == needle {
            return i
        }
        return nil
    }
}
