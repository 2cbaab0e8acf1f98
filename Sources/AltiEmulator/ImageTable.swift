import Foundation

/// The emulator's images by id, with two indexes kept beside them: the ids of the Pending images
/// (the 65-minute rule looks at those only) and each project's checksums (`hasImage` and a
/// re-registration find an image without walking the project). Without them every `hasImage`
/// field walked every image twice, and a 10,000-image sync spent minutes in the emulator.
struct ImageTable {
    private(set) var byID: [String: ImageRecord] = [:]
    private(set) var pendingIDs: Set<String> = []
    /// No Pending image was last modified before this (nil: none is Pending). A lower bound, kept
    /// on every write and made exact by `tightenPendingBound()`, so that the 65-minute rule, which
    /// runs before every request, can skip its walk over the Pending images until one may be due:
    /// the walk copied each record and made a window of registrations quadratic.
    private(set) var oldestPendingChange: Date?
    /// Project id → checksum → image id. `register` keeps one image per checksum and project.
    private var byChecksum: [String: [String: String]] = [:]

    subscript(id: String) -> ImageRecord? {
        get { byID[id] }
        set {
            let old = byID[id]
            byID[id] = newValue
            reindex(id: id, old: old, new: newValue)
        }
    }

    @discardableResult
    mutating func removeValue(forKey id: String) -> ImageRecord? {
        let old = byID.removeValue(forKey: id)
        reindex(id: id, old: old, new: nil)
        return old
    }

    var values: Dictionary<String, ImageRecord>.Values { byID.values }

    /// The id of the project's image with exactly this checksum.
    func id(projectID: String, checksum: String) -> String? { byChecksum[projectID]?[checksum] }

    /// Sets `oldestPendingChange` to the exact oldest `modifiedAt` of the Pending images.
    mutating func tightenPendingBound() {
        var oldest: Date?
        for id in pendingIDs {
            if let changed = byID[id]?.modifiedAt { oldest = min(oldest ?? changed, changed) }
        }
        oldestPendingChange = oldest
    }

    private mutating func reindex(id: String, old: ImageRecord?, new: ImageRecord?) {
        if let new, new.state == .pending {
            pendingIDs.insert(id)
            oldestPendingChange = min(oldestPendingChange ?? new.modifiedAt, new.modifiedAt)
        } else if old?.state == .pending {
            pendingIDs.remove(id)
            if pendingIDs.isEmpty { oldestPendingChange = nil }
        }
        if let old, let sum = old.checksum, sum != new?.checksum || old.projectID != new?.projectID,
           byChecksum[old.projectID]?[sum] == id {
            byChecksum[old.projectID]?[sum] = nil
        }
        if let new, let sum = new.checksum, byChecksum[new.projectID]?[sum] == nil {
            byChecksum[new.projectID, default: [:]][sum] = id
        }
    }
}
