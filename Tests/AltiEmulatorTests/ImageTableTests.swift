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

    /// The bound the 65-minute rule skips its walk by is never later than a Pending image's last
    /// change (else an image would outlive its 65 minutes), and is made exact on demand.
    @Test func theOldestPendingChangeIsALowerBoundMadeExactOnDemand() {
        func at(_ seconds: TimeInterval, _ record: ImageRecord) -> ImageRecord {
            var record = record
            record.modifiedAt = Date(timeIntervalSince1970: seconds)
            return record
        }
        var table = ImageTable()
        #expect(table.oldestPendingChange == nil)
        table["a"] = at(100, Self.record("a", checksum: "aaaa", state: .pending))
        table["b"] = at(50, Self.record("b", checksum: "bbbb", state: .pending))
        table["c"] = at(10, Self.record("c", checksum: "cccc", state: .ready))  // not Pending: no bound
        #expect(table.oldestPendingChange == Date(timeIntervalSince1970: 50))

        table["b"] = at(200, table["b"]!)  // touched again: the bound may stay early, never late
        #expect(table.oldestPendingChange == Date(timeIntervalSince1970: 50))
        table.tightenPendingBound()
        #expect(table.oldestPendingChange == Date(timeIntervalSince1970: 100))

        var a = table["a"]!
        a.state = .invalid
        table["a"] = a
        table.tightenPendingBound()
        #expect(table.oldestPendingChange == Date(timeIntervalSince1970: 200))
        table.removeValue(forKey: "b")
        #expect(table.oldestPendingChange == nil)
    }
}
