import Foundation

/// Where one image stands, from the server facts its manifest records for its checksum: the
/// states `SyncPlan` sorts by, split further into what a person acts on.
public enum ImageCategory: String, Sendable, CaseIterable, Codable {
    /// Ready (or the legacy ReadyStrong): nothing more to do.
    case ready
    /// The server has the bytes and is verifying them (Uploaded, or a state alti does not know).
    case processing
    /// Registered, but the server has not received its bytes.
    case pending
    /// Refused by the server, with its reasons.
    case invalid
    /// The last attempt to send it failed here (after retries), with the error recorded.
    case failed
    /// The server said the project does not have it (hasImage null): never stored, or deleted
    /// since (in the web app).
    case absent
    /// No server facts at all: no sync has asked about it yet.
    case notSent

    /// The category of an image whose checksum has these facts (nil: none recorded).
    public init(_ facts: ServerFacts?) {
        guard let facts else {
            self = .notSent
            return
        }
        let state = facts.state
        if state.isDone {
            self = .ready
        } else if state == .invalid {
            self = .invalid
        } else if state.isInProgress {
            self = .processing
        } else if !facts.errors.isEmpty {
            // A local failure keeps the server's state (Pending, Absent) and records its reason.
            self = .failed
        } else if state == .pending {
            self = .pending
        } else {
            // A failure recorded before any server answer leaves no time stamp: still unasked.
            self = facts.checkedAt.isEmpty ? .notSent : .absent
        }
    }

    /// What a sync would send: everything `SyncPlan` puts in `toSend` (the state needs an
    /// upload, or nothing is known), that is every category but ready and processing.
    public var isToSend: Bool { self != .ready && self != .processing }
}

/// One unique image (by checksum) of a source, as its manifest records it.
public struct ImageStatus: Sendable, Equatable {
    public var sha1: String
    /// Where its bytes are: the absolute path of a file, `ARCHIVE:member` for an archive member.
    public var path: String
    public var size: Int64
    public var category: ImageCategory
    /// The server's reasons (Invalid) or the last local error (failed); empty otherwise.
    public var errors: [String]

    /// The server's id, when the manifest records one.
    public var imageID: String?

    public init(sha1: String, path: String, size: Int64, category: ImageCategory, errors: [String] = [],
                imageID: String? = nil) {
        self.imageID = imageID
        self.sha1 = sha1
        self.path = path
        self.size = size
        self.category = category
        self.errors = errors
    }
}

/// Images and bytes per category, and what is left to send.
public struct StatusTally: Sendable, Equatable {
    public struct Count: Sendable, Equatable, Codable {
        public var images = 0
        public var bytes: Int64 = 0

        public init(images: Int = 0, bytes: Int64 = 0) {
            self.images = images
            self.bytes = bytes
        }

        mutating func add(_ image: ImageStatus) {
            images += 1
            bytes += image.size
        }
    }

    public private(set) var byCategory: [ImageCategory: Count] = [:]
    /// Every image counted.
    public private(set) var all = Count()
    /// The images a sync would send (pending, invalid, failed, absent, notSent).
    public private(set) var toSend = Count()

    public init(_ images: [ImageStatus]) {
        for image in images {
            byCategory[image.category, default: Count()].add(image)
            all.add(image)
            if image.category.isToSend { toSend.add(image) }
        }
    }

    public subscript(_ category: ImageCategory) -> Count { byCategory[category] ?? Count() }
}

/// What the manifest of one source (a folder, an archive) records, with a leftover journal
/// folded in: pure over the manifest model, no I/O.
public struct SourceStatus: Sendable {
    /// The scanned PATH (absolute).
    public var root: String
    /// "folder" or "archive".
    public var kind: String
    /// The manifest file.
    public var manifest: String
    /// The manifest lives in the state folder (the source was not writable).
    public var manifestIsFallback: Bool
    /// The endpoint, project, cloud and bucket the manifest is bound to ("" before a sync).
    public var remote: Manifest.Remote
    /// When the manifest was last written by a scan (a sync scans first).
    public var writtenAt: String
    /// The latest time a server fact was read (`server.checkedAt`), nil when none ever was.
    public var lastCheckedAt: String?
    /// Events of a journal not yet folded into the manifest (a sync running, or killed), counted
    /// in this view.
    public var journalEvents: Int
    /// Its usable images, present, once per checksum (the first copy in path order).
    public var images: [ImageStatus]
    /// Present usable files whose content another file of the source already has.
    public var duplicates: Int
    /// Files gone since the last scan (their entries and server facts are kept).
    public var missing: Int
    /// Present files that look like images but cannot be sent, in path order (display paths).
    public var notUsable: [FileProblem]
    /// Whether `--refresh` asked the server about this source.
    public var refreshed = false

    public var tally: StatusTally { StatusTally(images) }

    /// Bound to a project by a sync: something the server can be asked about.
    public var isBound: Bool { !remote.projectID.isEmpty }

    /// The view of `manifest` with `journal` (a leftover `<manifest>.journal`) folded into a copy,
    /// exactly as the next sync would fold it; nothing is written.
    public init(manifest recorded: Manifest, journal: [JournalEvent] = [], manifestPath: String,
                manifestIsFallback: Bool = false) {
        var manifest = recorded
        ManifestSync.fold(journal, into: &manifest)
        self.init(folded: manifest, journalEvents: journal.count, manifestPath: manifestPath,
                  manifestIsFallback: manifestIsFallback)
    }

    /// The view of a manifest its leftover journal (`journalEvents` events) is already folded into.
    public init(folded manifest: Manifest, journalEvents: Int, manifestPath: String, manifestIsFallback: Bool = false) {
        root = manifest.source.root
        kind = manifest.source.kind
        self.manifest = manifestPath
        self.manifestIsFallback = manifestIsFallback
        remote = manifest.remote
        writtenAt = manifest.writtenAt
        self.journalEvents = journalEvents
        // RFC 3339 UTC with fixed-width fields: the latest sorts last as a string.
        lastCheckedAt = manifest.entries.compactMap { $0.server?.checkedAt }.filter { !$0.isEmpty }.max()
        let display = { (path: String) in Self.displayPath(root: manifest.source.root, kind: manifest.source.kind, path) }
        var images: [ImageStatus] = []
        var seen: Set<String> = []
        var duplicates = 0
        var missing = 0
        var notUsable: [FileProblem] = []
        for entry in manifest.entries {
            if entry.missing {
                missing += 1
                continue
            }
            guard entry.verdict == .ok, let sha1 = entry.sha1 else {
                notUsable.append(FileProblem(path: display(entry.path), verdict: entry.verdict, detail: entry.detail))
                continue
            }
            guard seen.insert(sha1).inserted else {
                duplicates += 1
                continue
            }
            let category = ImageCategory(entry.server)
            images.append(ImageStatus(sha1: sha1, path: display(entry.path), size: entry.size, category: category,
                                      errors: category == .invalid || category == .failed ? entry.server?.errors ?? [] : [],
                                      imageID: entry.server.flatMap { $0.imageID.isEmpty ? nil : $0.imageID }))
        }
        self.images = images
        self.duplicates = duplicates
        self.missing = missing
        self.notUsable = notUsable
    }

    /// As uploads name their source: the absolute path of a file, `ARCHIVE:member` for a member.
    static func displayPath(root: String, kind: String, _ path: String) -> String {
        if kind == "archive" { return "\(root):\(path)" }
        return root == "/" ? "/" + path : root + "/" + path
    }
}

/// What `alti status` reports: every source, and the total over all of them.
public struct StatusSummary: Sendable {
    public var sources: [SourceStatus]
    /// True when `--refresh` asked the server (the sources it could ask have `refreshed`).
    public var refreshed: Bool
    /// GraphQL requests the refresh made (0 without one).
    public var requests: Int

    public init(sources: [SourceStatus], refreshed: Bool = false, requests: Int = 0) {
        self.sources = sources
        self.refreshed = refreshed
        self.requests = requests
    }

    /// The images of every source, once per checksum, as a sync of all of them would count them:
    /// an image in two sources is one image, with the facts of the first source that has any
    /// (`ManifestSession.items` merges facts the same way).
    public var images: [ImageStatus] {
        var result: [ImageStatus] = []
        var index: [String: Int] = [:]
        for source in sources {
            for image in source.images {
                if let at = index[image.sha1] {
                    if result[at].category == .notSent, image.category != .notSent {
                        result[at].category = image.category
                        result[at].errors = image.errors
                    }
                    continue
                }
                index[image.sha1] = result.count
                result.append(image)
            }
        }
        return result
    }

    public var total: StatusTally { StatusTally(images) }

    public var notUsable: Int { sources.reduce(0) { $0 + $1.notUsable.count } }

    /// The latest scan write and server read over all sources.
    public var writtenAt: String? { sources.map(\.writtenAt).max() }
    public var lastCheckedAt: String? { sources.compactMap(\.lastCheckedAt).max() }
}
