import Foundation

/// How sync state moves between the manifest (the durable deliverable) and the journal (the
/// per-event log): facts are read out of the manifest at the start, journal events are folded
/// back in at the end (and at the next start, after a crash).
public enum ManifestSync {
    /// The journal beside a manifest.
    public static func journalPath(forManifest manifestPath: String) -> String { manifestPath + ".journal" }

    /// Refuses a manifest bound to another endpoint or project: its ids mean nothing there.
    public static func checkBinding(_ manifest: Manifest, manifestPath: String, endpoint: String, projectID: String) throws {
        let remote = manifest.remote
        if !remote.projectID.isEmpty, remote.projectID != projectID {
            throw AltiError(
                .notFound,
                "\(manifestPath) belongs to project \(remote.projectID), not \(projectID); sync it to that project, or give this sync its own --manifest FILE")
        }
        if !remote.endpoint.isEmpty, remote.endpoint != endpoint {
            throw AltiError(
                .notFound,
                "\(manifestPath) belongs to \(remote.endpoint), not \(endpoint); use --endpoint \(remote.endpoint), or give this sync its own --manifest FILE")
        }
    }

    /// Refuses a journal made by a sync to another endpoint or project than the one the manifest
    /// is bound to (65): its image ids and states are another project's, and folding them would
    /// call images Ready that this project does not have. A journal without a header (an older
    /// alti's) is taken as the manifest's own, as before.
    public static func checkJournal(_ header: JournalHeader?, journalPath: String, manifest: Manifest,
                                    manifestPath: String) throws {
        guard let header else { return }
        let remote = manifest.remote
        guard header.endpoint != remote.endpoint || header.projectID != remote.projectID else { return }
        let bound = remote.projectID.isEmpty && remote.endpoint.isEmpty
            ? "is bound to no project"
            : "belongs to project \(remote.projectID) at \(remote.endpoint)"
        throw AltiError(
            .dataError,
            "the sync journal \(journalPath) was written by a sync to project \(header.projectID) at \(header.endpoint), but \(manifestPath) \(bound); nothing was folded and the journal is left as it is: move it aside and run again (project \(header.projectID) still knows what that sync uploaded)")
    }

    /// Server facts recorded in the manifest, by checksum (the first entry of a checksum wins:
    /// a scan gives every entry of one checksum the same facts).
    public static func facts(from manifest: Manifest) -> [String: ServerFacts] {
        var result: [String: ServerFacts] = [:]
        for entry in manifest.entries {
            guard let sha1 = entry.sha1, let server = entry.server, result[sha1] == nil else { continue }
            result[sha1] = server
        }
        return result
    }

    /// Folds events into the manifest's server facts. Idempotent: events carry absolute facts.
    /// A local failure is recorded as the image's error; it changes no server state. Returns the
    /// number of checksums changed.
    @discardableResult
    public static func fold(_ events: [JournalEvent], into manifest: inout Manifest) -> Int {
        var folding = Folding(manifest)
        for event in events { folding.apply(event) }
        return folding.finish(into: &manifest)
    }

    /// A fold fed one event at a time (the journal is read line by line, never held whole).
    ///
    /// It holds the facts of the checksums its events touch, each starting from the manifest's
    /// (the first entry of a checksum that has facts, as `facts(from:)`), found through an index
    /// of entry positions. It used to start from a copy of every checksum's facts and filter the
    /// touched ones out at the end: two dictionaries of about 176 bytes a bucket beside the
    /// recorder's own. The touched facts are an array with a small index of slots by checksum:
    /// a dictionary of 100,000 facts has 262,144 buckets of 176 bytes (46 MB, a sixth of the peak
    /// of a 100,000-image sync), the slots 24 bytes a bucket and the array 160 bytes a checksum.
    public struct Folding {
        /// The manifest's entries as they were (shared with it, not copied) and where the first
        /// entry with facts of each checksum is; both dropped before the manifest is changed.
        private var entries: [ManifestEntry]
        private var firstWithFacts: [String: Int] = [:]
        /// Where each touched checksum's facts are in `touched`.
        private var slots: [String: Int32] = [:]
        private var touched: [ServerFacts] = []
        private var rehash: Set<String> = []

        public init(_ manifest: Manifest) {
            entries = manifest.entries
            for index in entries.indices {
                guard let sha1 = entries[index].sha1, entries[index].server != nil, firstWithFacts[sha1] == nil else { continue }
                firstWithFacts[sha1] = index
            }
        }

        public mutating func apply(_ event: JournalEvent) {
            let slot: Int
            if let known = slots[event.sha1] {
                slot = Int(known)
            } else {
                slot = touched.count
                slots[event.sha1] = Int32(slot)
                touched.append(firstWithFacts[event.sha1].flatMap { entries[$0].server } ?? ServerFacts())
            }
            touched[slot].apply(event)
            if event.rehash == true { rehash.insert(event.sha1) }
        }

        /// Writes the facts of every checksum an event touched into the manifest (every entry
        /// with that checksum, missing or not); the number of checksums that matched an entry.
        public mutating func finish(into manifest: inout Manifest) -> Int {
            guard !touched.isEmpty else { return 0 }
            // Let go of the entries first: still shared, the manifest's changes would copy them all.
            entries = []
            firstWithFacts = [:]
            // One pass over the entries for all checksums (one pass per checksum made a sync's
            // fold quadratic: 10^10 comparisons at 100,000 images).
            var matched = [Bool](repeating: false, count: touched.count)
            for index in manifest.entries.indices {
                guard let sha1 = manifest.entries[index].sha1, let slot = slots[sha1] else { continue }
                manifest.entries[index].server = touched[Int(slot)]
                matched[Int(slot)] = true
            }
            manifest.forgetHashes(ofSHA1s: rehash)
            return matched.reduce(0) { $0 + ($1 ? 1 : 0) }
        }
    }
}
