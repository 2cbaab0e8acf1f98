import AltiCore
import AltiCrypto
import AltiTestSupport
import Foundation
import Testing

/// Issue 11, bad local input: names that are not UTF-8, 255-byte names and paths past PATH_MAX,
/// FIFOs and devices, symlink loops, files that vanish or grow while the scan reads them, and
/// manifests of the previous schema version. Real trees; assertions on the manifest, the report
/// and the bytes read back.
@Suite("Bad local input")
struct BadLocalInputTests {
    static func jpeg(_ seed: Int) -> [UInt8] { ScanFixtures.jpeg(width: 40 + seed, height: 30, seed: UInt8(seed)) }

    static func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

    // MARK: Names that are not UTF-8

    @Test func escapingRoundTripsEveryByteStringAndKeepsUTF8NamesAsTheyAre() {
        for name in ["DJI_0001.JPG", "été.jpg", "航拍 01.png", "a b+c=d.tif"] {
            #expect(RecordedPath.escape(Self.bytes(name)) == name)
            #expect(RecordedPath.bytes(name) == Self.bytes(name))
            #expect(RecordedPath.display(name) == name)
        }
        #expect(RecordedPath.escape(Self.bytes("100%.jpg")) == "100%25.jpg")
        #expect(RecordedPath.escape([0x61, 0xFF, 0x2E, 0x6A, 0x70, 0x67]) == "a%FF.jpg")
        #expect(RecordedPath.escape([0x61, 0xFE, 0x2E, 0x6A, 0x70, 0x67]) == "a%FE.jpg")
        #expect(RecordedPath.escape(Self.bytes("a%FF.jpg")) == "a%25FF.jpg")
        // The server's filename: the name itself when it is UTF-8, else the escaped form.
        #expect(RecordedPath.display("a%25FF.jpg") == "a%FF.jpg")
        #expect(RecordedPath.display("a%FE.jpg") == "a%FE.jpg")
        // Every byte string (no NUL, no "/") comes back as it was, so two names never share a form.
        var generator = SystemRandomNumberGenerator()
        var forms: [String: [UInt8]] = [:]
        for _ in 0..<2000 {
            let count = Int.random(in: 1...12, using: &generator)
            let raw = (0..<count).map { _ in UInt8.random(in: 1...255, using: &generator) }.filter { $0 != 0x2F }
            guard !raw.isEmpty else { continue }
            let recorded = RecordedPath.escape(raw)
            #expect(RecordedPath.bytes(recorded) == raw, "\(raw) -> \(recorded)")
            #expect(String(validating: Array(recorded.utf8), as: UTF8.self) != nil)
            if let other = forms[recorded] { #expect(other == raw, "\(raw) and \(other) share \(recorded)") }
            forms[recorded] = raw
        }
    }

    @Test func namesThatAreNotUTF8AreRecordedDistinctlyReadAndRescannedForFree() async throws {
        let tree = try TempTree("raw-names")
        defer { tree.removeRaw() }
        let files: [([[UInt8]], String, [UInt8])] = [
            ([[0x61, 0xFF, 0x2E, 0x6A, 0x70, 0x67]], "a%FF.jpg", Self.jpeg(1)),
            ([[0x61, 0xFE, 0x2E, 0x6A, 0x70, 0x67]], "a%FE.jpg", Self.jpeg(2)),
            ([Self.bytes("a%FF.jpg")], "a%25FF.jpg", Self.jpeg(3)),
            // A folder named in Latin-1 ("dér"), holding a UTF-8 name and one that is not.
            ([[0x64, 0xE9, 0x72], Self.bytes("x.jpg")], "d%E9r/x.jpg", Self.jpeg(4)),
            ([[0x64, 0xE9, 0x72], [0x79, 0xFF, 0x2E, 0x70, 0x6E, 0x67]], "d%E9r/y%FF.png", ScanFixtures.png(width: 7, height: 5)),
        ]
        for (components, _, content) in files { try tree.writeRaw(components, content) }

        let first = try #require(try await ScanService().scan(paths: [tree.path]).first)
        #expect(first.manifest.entries.map(\.path) == ["a%25FF.jpg", "a%FE.jpg", "a%FF.jpg", "d%E9r/x.jpg", "d%E9r/y%FF.png"])
        #expect(first.report.problems == [])
        #expect(first.report.unreadableFolders == [])
        let folder = FolderTree(root: tree.path)
        for (components, recorded, content) in files {
            let entry = try #require(first.manifest.entry(at: recorded), "\(recorded)")
            #expect(entry.verdict == .ok, "\(recorded): \(entry.detail ?? "")")
            #expect(entry.sha1 == Digest.sha1Hex(content), "\(recorded)")
            #expect(entry.size == Int64(content.count))
            #expect(RecordedPath.bytes(recorded) == Array(components.joined(separator: [0x2F])))
            // What an upload opens: the file on disk, by the bytes its recorded path names.
            let file = try folder.open(recorded)
            #expect(try file.read(at: 0, count: content.count + 1) == content, "\(recorded)")
            #expect(try folder.stat(recorded).size == Int64(content.count))
        }
        #expect(try ManifestSchema.errors([first.manifestURL.path]) == [])
        // Three names that differ only in how they spell "\xff" are three images.
        #expect(first.report.uniqueImages == 5)

        let second = try #require(try await ScanService().scan(paths: [tree.path]).first)
        #expect(second.report.filesHashed == 0)
        #expect(second.report.filesReused == 5)
        #expect(second.manifest.entries.map(\.sha1) == first.manifest.entries.map(\.sha1))
    }

    /// Version 1 recorded a folder's names raw: a literal "%" loads as "%25", duplicates follow,
    /// server facts stay, and the next scan hashes nothing.
    @Test func aVersion1ManifestWithPercentInNamesLoadsMigratedAndNothingIsHashedAgain() async throws {
        let tree = try TempTree("migrate-v1")
        defer { tree.removeRaw() }
        try tree.writeRaw([Self.bytes("100%.jpg")], Self.jpeg(5))
        try tree.writeRaw([Self.bytes("z.jpg")], Self.jpeg(5))
        try tree.writeRaw([Self.bytes("plain.jpg")], Self.jpeg(6))
        let scanned = try #require(try await ScanService().scan(paths: [tree.path]).first)
        var current = scanned.manifest
        let sha1 = Digest.sha1Hex(Self.jpeg(5))
        current.setServerFacts(ServerFacts(imageID: "img-5", filename: "100%.jpg", state: .ready, errors: [], bucket: "b",
                                           checkedAt: "2026-01-01T00:00:00.000Z"), forSHA1: sha1)
        // The same manifest as a version-1 build wrote it: raw names, version 1.
        let v2 = String(decoding: try ManifestStore.encode(current), as: UTF8.self)
        #expect(v2.contains("\"100%25.jpg\""))
        let v1 = v2.replacingOccurrences(of: "100%25.jpg", with: "100%.jpg")
            .replacingOccurrences(of: "\"schemaVersion\" : 2", with: "\"schemaVersion\" : 1")
        #expect(v1 != v2)
        try Data(v1.utf8).write(to: scanned.manifestURL)

        let loaded = try #require(try ManifestStore().load(scanned.manifestURL))
        #expect(loaded.entries.map(\.path) == ["100%25.jpg", "plain.jpg", "z.jpg"])
        #expect(loaded.entry(at: "z.jpg")?.duplicateOf == "100%25.jpg")
        #expect(loaded.entry(at: "100%25.jpg")?.server?.imageID == "img-5")

        let rescanned = try #require(try await ScanService().scan(paths: [tree.path]).first)
        #expect(rescanned.report.filesHashed == 0)
        #expect(rescanned.report.filesReused == 3)
        #expect(rescanned.report.missing == 0)
        #expect(rescanned.manifest.entry(at: "100%25.jpg")?.server?.imageID == "img-5")
        let saved = try #require(try ManifestStore().load(scanned.manifestURL))
        #expect(saved.schemaVersion == 2)
        #expect(saved.entries.map(\.path) == ["100%25.jpg", "plain.jpg", "z.jpg"])
    }

    // MARK: Long names and paths

    @Test func names255BytesLongAndPathsPastPathMaxAreRecordedAndRead() async throws {
        let tree = try TempTree("long")
        defer { tree.removeRaw() }
        let longName = Array(repeating: UInt8(ascii: "n"), count: 251) + Self.bytes(".jpg")
        let longRaw = Array(repeating: UInt8(0xFF), count: 251) + Self.bytes(".jpg")
        // 18 folders of 250 bytes: the path is past PATH_MAX (4096), which open(2) refuses.
        let deep = (0..<18).map { Array(repeating: UInt8(ascii: "a") + UInt8($0 % 26), count: 250) }
        #expect(longName.count == 255)
        #expect(deep.reduce(0) { $0 + $1.count + 1 } > 4096)
        let files: [([[UInt8]], [UInt8])] = [([longName], Self.jpeg(7)), ([longRaw], Self.jpeg(8)),
                                             (deep + [Self.bytes("deep.jpg")], Self.jpeg(9))]
        for (components, content) in files { try tree.writeRaw(components, content) }

        let first = try #require(try await ScanService().scan(paths: [tree.path]).first)
        #expect(first.report.problems == [])
        #expect(first.report.unreadableFolders == [])
        #expect(first.manifest.entries.count == 3)
        let folder = FolderTree(root: tree.path)
        for (components, content) in files {
            let recorded = components.map { RecordedPath.escape($0) }.joined(separator: "/")
            let entry = try #require(first.manifest.entry(at: recorded), "\(recorded.prefix(60))...")
            #expect(entry.sha1 == Digest.sha1Hex(content))
            #expect(try folder.open(recorded).read(at: 0, count: content.count + 1) == content)
            #expect(try folder.stat(recorded).size == Int64(content.count))
        }
        #expect(try ManifestSchema.errors([first.manifestURL.path]) == [])
        let second = try #require(try await ScanService().scan(paths: [tree.path]).first)
        #expect(second.report.filesHashed == 0)
        #expect(second.report.filesReused == 3)
    }

    // MARK: FIFOs, devices, symlink loops

    @Test func fifosAndDevicesAreNeverOpenedAndSymlinkLoopsCostNothing() async throws {
        let tree = try TempTree("special")
        defer { tree.removeRaw() }
        try tree.writeRaw([Self.bytes("a.jpg")], Self.jpeg(10))
        let fifo = tree.path("DJI_0002.JPG")
        #expect(mkfifo(fifo, 0o644) == 0)
        try tree.symlink("loop1", to: "loop2")
        try tree.symlink("loop2", to: "loop1")
        try tree.symlink("self.jpg", to: "self.jpg")
        try tree.symlink("sub/up", to: "..")
        try tree.writeRaw([Self.bytes("sub"), Self.bytes("b.jpg")], Self.jpeg(11))

        let result = try #require(try await ScanService().scan(paths: [tree.path]).first)
        #expect(result.manifest.entries.map(\.path) == ["a.jpg", "sub/b.jpg"])
        #expect(result.report.specialFilesSkipped == 1)
        #expect(result.report.specialFiles == ["DJI_0002.JPG"])
        #expect(result.report.symlinksSkipped == 4)
        #expect(result.report.filesHashed == 2)
        #expect(result.report.problems == [])

        // The second guard: a FIFO put where a file was (after the walk's stat) is refused at
        // open, without blocking for a writer. Run off this thread, so a regression fails the
        // test instead of hanging it: a writer is opened to release a blocked open.
        let outcome = OpenOutcome()
        let done = DispatchSemaphore(value: 0)
        DispatchQueue.global().async {
            do {
                _ = try FolderTree(root: tree.path).open("DJI_0002.JPG")
                outcome.set("opened")
            } catch {
                outcome.set((error as? OSError)?.message ?? "\(error)")
            }
            done.signal()
        }
        if done.wait(timeout: .now() + 20) == .timedOut {
            let writer = open(fifo, O_WRONLY | O_NONBLOCK)
            done.wait()
            close(writer)
            Issue.record("opening a FIFO blocked until a writer came")
        }
        #expect(outcome.value == "not a regular file (a FIFO, device or socket); it is never read")
        // A device is refused the same way, and the inspector says why.
        #expect(throws: OSError.notRegular("open")) { try POSIXFileReading().open("/dev/null") }
        let inspection = FileInspector().inspect(path: fifo)
        #expect(inspection.verdict == .unreadable)
        #expect(inspection.detail?.contains("not a regular file") == true)
    }

    // MARK: Files that change or vanish while the scan reads them

    @Test func aFileStillBeingWrittenIsChangingNotUnusableAndTheNextScanRecordsIt() async throws {
        let tree = try TempTree("growing")
        defer { tree.removeRaw() }
        try tree.writeRaw([Self.bytes("old.jpg")], Self.jpeg(12))
        try tree.writeRaw([Self.bytes("steady.jpg")], Self.jpeg(13))
        let first = try #require(try await ScanService().scan(paths: [tree.path]).first)
        let oldEntry = try #require(first.manifest.entry(at: "old.jpg"))

        // old.jpg is replaced by a copy that is still being written; new.jpg arrives the same way.
        // (Another mtime than the first copy's: the same size, second and inode would look unchanged.)
        try tree.writeRaw([Self.bytes("old.jpg")], Self.jpeg(14), secondsAgo: 3000)
        try tree.writeRaw([Self.bytes("new.jpg")], Self.jpeg(15), secondsAgo: 3000)
        let growing = ScanService(inspector: FileInspector(reader: GrowingReading(names: ["old.jpg", "new.jpg"])))
        let second = try #require(try await growing.scan(paths: [tree.path]).first)
        #expect(second.report.changing == ["new.jpg", "old.jpg"])
        #expect(second.report.problems == [])  // not "not usable"
        #expect(second.manifest.entry(at: "new.jpg") == nil)
        // The entry of what was there before stands as it was (its checksum, its stat).
        #expect(second.manifest.entry(at: "old.jpg") == oldEntry)
        #expect(second.manifest.entry(at: "steady.jpg")?.verdict == .ok)

        // The copy has finished: the next scan reads both.
        let third = try #require(try await ScanService().scan(paths: [tree.path]).first)
        #expect(third.report.changing == [])
        #expect(third.report.filesHashed == 2)
        let grown = try tree.read("new.jpg")
        #expect(grown.count > Self.jpeg(15).count)
        #expect(third.manifest.entry(at: "new.jpg")?.sha1 == Digest.sha1Hex(grown))
        #expect(third.manifest.entry(at: "new.jpg")?.verdict == .ok)
        #expect(third.manifest.entry(at: "old.jpg")?.sha1 == Digest.sha1Hex(try tree.read("old.jpg")))
    }

    @Test func aFileThatVanishesBeforeItIsReadIsNamedKeptAsMissingAndTheRestGoesOn() async throws {
        let tree = try TempTree("vanish")
        defer { tree.removeRaw() }
        for (index, name) in ["a.jpg", "gone.jpg", "z.jpg"].enumerated() {
            try tree.writeRaw([Self.bytes(name)], Self.jpeg(20 + index))
        }
        let first = try #require(try await ScanService().scan(paths: [tree.path]).first)
        var withFacts = first.manifest
        let goneSHA1 = try #require(withFacts.entry(at: "gone.jpg")?.sha1)
        withFacts.setServerFacts(ServerFacts(imageID: "img-gone", filename: "gone.jpg", state: .ready, errors: [],
                                             bucket: "b", checkedAt: "2026-01-01T00:00:00.000Z"), forSHA1: goneSHA1)
        _ = try ManifestStore().save(withFacts, to: first.manifestURL)

        // Every file is read again (--rebuild); gone.jpg is deleted between the walk and its open.
        let vanishing = ScanService(inspector: FileInspector(reader: VanishingReading(names: ["gone.jpg"])))
        let second = try #require(try await vanishing.scan(paths: [tree.path], rebuild: true).first)
        #expect(second.report.vanished == ["gone.jpg"])
        #expect(second.report.problems == [])
        #expect(second.report.filesHashed == 2)
        let gone = try #require(second.manifest.entry(at: "gone.jpg"))
        #expect(gone.missing)
        #expect(gone.sha1 == goneSHA1)
        #expect(gone.server?.imageID == "img-gone")
        #expect(second.manifest.entry(at: "a.jpg")?.verdict == .ok)
        #expect(second.manifest.entry(at: "z.jpg")?.verdict == .ok)
    }
}

/// What the background open of the FIFO test ended with.
final class OpenOutcome: @unchecked Sendable {
    private let lock = NSLock()
    private var text = ""
    var value: String { lock.withLock { text } }
    func set(_ value: String) { lock.withLock { text = value } }
}

/// A copy still being written: after the scan's first read of one of `names`, more bytes (zero
/// padding, which a JPEG may carry after its end) are appended to the file on disk.
struct GrowingReading: FileReading {
    let names: Set<String>

    func open(_ path: String) throws(OSError) -> any ReadableFile {
        let file = try POSIXFileReading().open(path)
        guard names.contains((path as NSString).lastPathComponent) else { return file }
        return GrowingFile(inner: file, path: path)
    }
}


/// A file removed between the walk and its open: `names` are deleted just before being opened.
struct VanishingReading: FileReading {
    let names: Set<String>

    func open(_ path: String) throws(OSError) -> any ReadableFile {
        if names.contains((path as NSString).lastPathComponent) { unlink(path) }
        return try POSIXFileReading().open(path)
    }
}
