import AltiArchive
import AltiCrypto
import AltiTestSupport
import Foundation
import Testing

@testable import AltiCore

/// Members of a compressed archive, which can only be read forward, are read once by a scan:
/// even a header far into a member (a TIFF whose IFD follows its pixels) comes from the one
/// hashing pass, never from a second decompression of the archive.
@Suite(.serialized) struct ArchiveScanTests {
    @Test func aHeaderFarIntoAStreamedMemberComesFromTheHashingPass() async throws {
        let tree = try TempTree("archive-scan")
        defer { tree.remove() }
        // IFDs 3 MiB into each TIFF: beyond the inspector's 1 MiB first chunk.
        var members: [(name: String, file: String)] = []
        for (i, (w, h)) in [(4000, 3000), (640, 480), (123, 45)].enumerated() {
            let bytes = ScanFixtures.tiff(width: w, height: h, littleEndian: i % 2 == 0, long: i == 1, pixelBytes: (3 << 20) + i)
            let file = try tree.write("src/t\(i).tif", bytes)
            members.append((name: "survey/t\(i).tif", file: file))
        }
        let archive = tree.path("survey.tar.gz")
        try ArchiveWriter.write(archive, format: .tarGzip, members: members)

                let (manifest, report) = try await ScanService().update(previous: nil, tree: ArchiveTree(root: archive))
        // One pass for the headers (the walk), one hashing pass: nothing read twice.
        #expect(ArchiveLibrary.opens(of: archive) == 2)
        #expect(report.filesHashed == 3)
        let byPath = Dictionary(uniqueKeysWithValues: manifest.entries.map { ($0.path, $0) })
        for (i, (w, h)) in [(4000, 3000), (640, 480), (123, 45)].enumerated() {
            let entry = try #require(byPath["survey/t\(i).tif"])
            #expect(entry.verdict == .ok, "\(entry.detail ?? "")")
            #expect(entry.width == w && entry.height == h)
            let expected = Digest.sha1Hex(try Data(contentsOf: URL(fileURLWithPath: members[i].file)))
            #expect(entry.sha1 == expected)
        }
    }
}
