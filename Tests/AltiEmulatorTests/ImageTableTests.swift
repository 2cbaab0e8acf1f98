@testable import AltiEmulator
import Foundation
import Testing

/// The indexes beside the emulator's images: the Pending ids and each project's checksums follow
/// every write, so `hasImage` and the 65-minute rule see what a walk over all images would.
@Suite struct ImageTableTests {
    static func record(_ id: String, project: String = "p", checksum: String?, state: ImageState) -> ImageRecord {
        ImageRecord(id: id, projectID: project, name: "\(id).jpg", filename: "\(id).jpg", checksum: checksum, type: "JPEG",
                    cloud: .s3, objectKey: "s3/b/\(project)/\(id).jpg", state: state, errors: [],
                    createdAt: Date(timeIntervalSince1970: 0), modifiedAt: Date(timeIntervalSince1970: 0),
                    received: nil, putCount: 0, generation: 0)
    }

    @Test func pendingIdsAndChecksumsFollowEveryWrite() {
        var table = ImageTable()
        table["a"] = Self.record("a", checksum: "aaaa", state: .pending)
        table["b"] = Self.record("b", checksum: "bbbb", state: .pending)
        table["c"] = Self.record("c", project: "q", checksum: "aaaa", state: .ready)
        #expect(table.pendingIDs == ["a", "b"])
        #expect(table.id(projectID: "p", checksum: "aaaa") == "a")
        #expect(table.id(projectID: "q", checksum: "aaaa") == "c")
        #expect(table.id(projectID: "p", checksum: "AAAA") == nil)  // exact, as registered

        var b = table["b"]!
        b.state = .uploaded
        table["b"] = b
        #expect(table.pendingIDs == ["a"])
        b.state = .pending
        table["b"] = b
        #expect(table.pendingIDs == ["a", "b"])

        #expect(table.removeValue(forKey: "a")?.id == "a")
        #expect(table.pendingIDs == ["b"])
        #expect(table.id(projectID: "p", checksum: "aaaa") == nil)
        #expect(table.id(projectID: "q", checksum: "aaaa") == "c")
        table["c"] = nil
        #expect(table.id(projectID: "q", checksum: "aaaa") == nil)
        #expect(table.values.map(\.id) == ["b"])
    }
}
