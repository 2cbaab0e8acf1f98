import Foundation

/// The JSON manifest of one scanned source: what is on disk (local facts, filled by `alti scan`)
/// and what the server knows about each checksum (server facts, filled by later syncs).
///
/// Encoded with sorted keys, pretty-printed, entries sorted by path, explicit `null`s, so it
/// diffs well in git. Saved only through `ManifestStore.save(_:to:)` (atomic and durable).
/// The format is documented as JSON Schema in `manifests/manifest.schema.json`.
public struct Manifest: Codable, Sendable, Equatable {
    /// The schema version this build writes and the newest it reads.
    ///
    /// 2: a folder's paths are recorded escaped (`RecordedPath`: `%` as `%25`, a non-UTF-8 byte as
    /// `%XX`), as archive member paths always were. Version 1 is read and migrated on load
    /// (`migrated(from:)`); nothing is re-hashed.
    public static let currentSchemaVersion = 2

    public var schemaVersion: Int
    /// "alti <version>" of the build that wrote the file.
    public var generator: String
    public var source: Source
    public var remote: Remote
    /// RFC 3339 UTC with fractional seconds; the same instant as `writtenAtNs`.
    public var writtenAt: String
    /// Nanoseconds since the epoch, taken just before the write: the racy-check reference of
    /// entries without their own `hashedAtNs` (manifests written before that field existed).
    public var writtenAtNs: Int64
    /// Sorted by `path` (byte order of the UTF-8 path).
    public var entries: [ManifestEntry]

    public struct Source: Codable, Sendable, Equatable {
        /// Absolute path of the scanned PATH.
        public var root: String
        /// "folder" or "archive".
        public var kind: String
        /// For an archive: its size, mtime and inode when it was scanned. An archive unchanged
        /// since is not opened again (its members' hashes are the manifest's).
        public var archive: FileFacts?

        public init(root: String, kind: String = "folder", archive: FileFacts? = nil) {
            self.root = root
            self.kind = kind
            self.archive = archive
        }

        /// The stat facts of an archive file.
        public struct FileFacts: Codable, Sendable, Equatable {
            public var size: Int64
            public var mtimeNs: Int64
            public var inode: UInt64

            public init(size: Int64, mtimeNs: Int64, inode: UInt64) {
                self.size = size
                self.mtimeNs = mtimeNs
                self.inode = inode
            }
        }
    }

    /// Where the source syncs to; every field is "" until a sync.
    public struct Remote: Codable, Sendable, Equatable {
        public var endpoint: String
        public var projectID: String
        public var cloud: String
        public var bucket: String
        public init(endpoint: String = "", projectID: String = "", cloud: String = "", bucket: String = "") {
            self.endpoint = endpoint
            self.projectID = projectID
            self.cloud = cloud
            self.bucket = bucket
        }
    }

    public init(root: String, kind: String = "folder", generator: String = AltiVersion.generator,
                remote: Remote = Remote(), entries: [ManifestEntry] = [],
                writtenAtNs: Int64 = 0) {
        self.schemaVersion = Manifest.currentSchemaVersion
        self.generator = generator
        self.source = Source(root: root, kind: kind)
        self.remote = remote
        self.writtenAtNs = writtenAtNs
        self.writtenAt = RFC3339.string(fromNanoseconds: writtenAtNs)
        self.entries = entries
    }

    /// Thrown while decoding, before anything else is read, for a manifest this build must not use.
    public enum SchemaVersionError: Error, Sendable, Equatable {
        case missing
        case newer(Int)
    }

    enum CodingKeys: String, CodingKey {
        case schemaVersion, generator, source, remote, writtenAt, writtenAtNs, entries
    }

    /// Checks `schemaVersion` first, so a newer manifest is refused as newer (not as malformed)
    /// in the same single parse.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        guard let version = try? c.decodeIfPresent(Int.self, forKey: .schemaVersion) else {
            throw SchemaVersionError.missing
        }
        guard version <= Manifest.currentSchemaVersion else { throw SchemaVersionError.newer(version) }
        schemaVersion = version
        generator = try c.decode(String.self, forKey: .generator)
        source = try c.decode(Source.self, forKey: .source)
        remote = try c.decode(Remote.self, forKey: .remote)
        writtenAt = try c.decode(String.self, forKey: .writtenAt)
        writtenAtNs = try c.decode(Int64.self, forKey: .writtenAtNs)
        entries = try c.decode([ManifestEntry].self, forKey: .entries)
        migrate(from: version)
    }

    /// Brings a manifest of an older `schemaVersion` to the current one, in memory (the file is
    /// rewritten by the next save, which stamps the current version).
    ///
    /// 1 to 2: version 1 recorded a folder's names as they were (a name that was not valid UTF-8
    /// could not be recorded at all), so a `%` in one is a literal `%`: escaped to `%25`, in
    /// `path` and `duplicateOf`, to name the same file in the escaped form the walk now records.
    /// Sizes, stats, checksums and server facts are untouched, so nothing is hashed again. Archive
    /// member paths were escaped in version 1 already.
    mutating func migrate(from version: Int) {
        guard version < 2, source.kind == "folder" else { return }
        func escaped(_ path: String) -> String { path.replacingOccurrences(of: "%", with: "%25") }
        for index in entries.indices {
            entries[index].path = escaped(entries[index].path)
            entries[index].duplicateOf = entries[index].duplicateOf.map(escaped)
        }
    }

    /// Sets the server facts of a checksum on every entry (missing or not) with that sha1.
    /// Returns the number of entries changed.
    @discardableResult
    public mutating func setServerFacts(_ facts: ServerFacts?, forSHA1 sha1: String) -> Int {
        var changed = 0
        for index in entries.indices where entries[index].sha1 == sha1 {
            entries[index].server = facts
            changed += 1
        }
        return changed
    }

    /// Sets the server facts of many checksums in one pass over the entries: `setServerFacts(_:forSHA1:)`
    /// for each, without walking every entry once per checksum. Returns the number of checksums
    /// that matched an entry.
    @discardableResult
    public mutating func setServerFacts(_ factsBySHA1: [String: ServerFacts]) -> Int {
        guard !factsBySHA1.isEmpty else { return 0 }
        var matched: Set<String> = []
        for index in entries.indices {
            guard let sha1 = entries[index].sha1, let facts = factsBySHA1[sha1] else { continue }
            entries[index].server = facts
            matched.insert(sha1)
        }
        return matched.count
    }

    /// `forgetHash(ofSHA1:)` for each checksum in `sha1s`, in one pass over the entries.
    public mutating func forgetHashes(ofSHA1s sha1s: Set<String>) {
        guard !sha1s.isEmpty else { return }
        for index in entries.indices where entries[index].sha1.map(sha1s.contains) ?? false {
            entries[index].hashedAtNs = 0
            source.archive = nil
        }
    }

    /// Drops the hash cache of the entries with this checksum (their bytes were found to differ):
    /// `hashedAtNs` 0 means "read at the epoch", which the racy rule never trusts, and an
    /// archive's own stat is forgotten so the archive is opened again.
    public mutating func forgetHash(ofSHA1 sha1: String) {
        for index in entries.indices where entries[index].sha1 == sha1 {
            entries[index].hashedAtNs = 0
            source.archive = nil
        }
    }

    /// The entry at a relative path, if any.
    public func entry(at path: String) -> ManifestEntry? {
        entries.first { $0.path == path }
    }

    /// Sorts entries by path and recomputes `duplicateOf`: among present (not missing) entries,
    /// every entry whose sha1 was already seen in path order points at the first one.
    public mutating func normalize() {
        // Usually sorted already (a re-scan's merge): checked first, since the sort itself would
        // take a buffer of half the entries (tens of MB at 100,000).
        let inOrder = entries.indices.dropFirst().allSatisfy { !RecordedPath.precedes(entries[$0].path, entries[$0 - 1].path) }
        if !inOrder { entries.sort { RecordedPath.precedes($0.path, $1.path) } }
        // An entry is written only when its `duplicateOf` changes: a save of a manifest that
        // someone else still holds (a session saving its own manifest) would otherwise copy
        // every entry for writes that change nothing (42 MB at 100,000 entries, at each save).
        var firstBySHA1: [String: String] = [:]
        for index in entries.indices {
            let entry = entries[index]
            let duplicateOf: String?
            if !entry.missing, let sha1 = entry.sha1 {
                duplicateOf = firstBySHA1[sha1]
                if duplicateOf == nil { firstBySHA1[sha1] = entry.path }
            } else {
                duplicateOf = nil
            }
            if entry.duplicateOf != duplicateOf { entries[index].duplicateOf = duplicateOf }
        }
    }
}

/// The local verdict on one file.
public enum Verdict: String, Codable, Sendable, CaseIterable {
    case ok
    case empty
    /// A JPEG without its end-of-image marker, a PNG without IEND, a header cut short.
    case truncated
    /// An image-named file (jpg/jpeg/png/tif/tiff) whose content is not JPEG, PNG or TIFF.
    case notAnImage
    /// The OS refused to read it; `detail` holds the OS error.
    case unreadable
    /// Recognised by its magic bytes but the header is malformed.
    case corrupt
}

/// The `IMAGE_TYPE` of the Altizure API.
public enum ImageType: String, Codable, Sendable, CaseIterable {
    case jpeg = "JPEG"
    case png = "PNG"
    case tiff = "TIFF"
}

/// One file of the manifest: local facts from the scan plus the server facts of its checksum.
public struct ManifestEntry: Codable, Sendable, Equatable {
    /// Relative to the scanned root, "/" separators.
    public var path: String
    public var size: Int64
    public var mtimeNs: Int64
    public var inode: UInt64
    /// Lower-case hex SHA-1 of the content; nil when the content was not hashed (empty,
    /// unreadable, not an image).
    public var sha1: String?
    public var type: ImageType?
    public var width: Int?
    public var height: Int?
    public var verdict: Verdict
    /// The OS error or what is wrong; nil when the verdict is ok.
    public var detail: String?
    /// The file was in an earlier scan and is gone now; its server facts are kept.
    public var missing: Bool
    /// Path of the first present entry (in path order) with the same sha1.
    public var duplicateOf: String?
    public var server: ServerFacts?
    /// Nanoseconds since the epoch, taken just before this file was opened and read: the
    /// per-file racy-check reference (`mtimeNs >= hashedAtNs - 2 s` is hashed again). nil in
    /// manifests written before the field existed; such an entry uses the manifest's `writtenAtNs`.
    public var hashedAtNs: Int64?
    /// What the image's EXIF says about its capture (time, camera, GPS), read in the scan's one
    /// read of the file. nil when the file was never read by a build that records it (an older
    /// manifest) or is not an image; an `ExifFacts` with every field nil when it has no EXIF.
    public var exif: ExifFacts?

    public init(path: String, size: Int64, mtimeNs: Int64, inode: UInt64, sha1: String?,
                type: ImageType?, width: Int?, height: Int?, verdict: Verdict, detail: String?,
                missing: Bool = false, duplicateOf: String? = nil, server: ServerFacts? = nil,
                hashedAtNs: Int64? = nil, exif: ExifFacts? = nil) {
        self.path = path
        self.size = size
        self.mtimeNs = mtimeNs
        self.inode = inode
        self.sha1 = sha1
        self.type = type
        self.width = width
        self.height = height
        self.verdict = verdict
        self.detail = detail
        self.missing = missing
        self.duplicateOf = duplicateOf
        self.server = server
        self.hashedAtNs = hashedAtNs
        self.exif = exif
    }

    enum CodingKeys: String, CodingKey {
        case path, size, mtimeNs, inode, sha1, type, width, height, verdict, detail, missing, duplicateOf,
             server, hashedAtNs, exif
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        path = try c.decode(String.self, forKey: .path)
        size = try c.decode(Int64.self, forKey: .size)
        mtimeNs = try c.decode(Int64.self, forKey: .mtimeNs)
        inode = try c.decode(UInt64.self, forKey: .inode)
        sha1 = try c.decodeIfPresent(String.self, forKey: .sha1)
        type = try c.decodeIfPresent(ImageType.self, forKey: .type)
        width = try c.decodeIfPresent(Int.self, forKey: .width)
        height = try c.decodeIfPresent(Int.self, forKey: .height)
        verdict = try c.decode(Verdict.self, forKey: .verdict)
        detail = try c.decodeIfPresent(String.self, forKey: .detail)
        missing = try c.decodeIfPresent(Bool.self, forKey: .missing) ?? false
        duplicateOf = try c.decodeIfPresent(String.self, forKey: .duplicateOf)
        server = try c.decodeIfPresent(ServerFacts.self, forKey: .server)
        // Optional: absent in manifests written before it existed (same schemaVersion).
        hashedAtNs = try c.decodeIfPresent(Int64.self, forKey: .hashedAtNs)
        // Optional within schemaVersion 2: absent in manifests written before it existed.
        exif = try c.decodeIfPresent(ExifFacts.self, forKey: .exif)
    }

    /// Explicit `null`s (not absent keys), so every entry has the same shape.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(path, forKey: .path)
        try c.encode(size, forKey: .size)
        try c.encode(mtimeNs, forKey: .mtimeNs)
        try c.encode(inode, forKey: .inode)
        try c.encode(sha1, forKey: .sha1)
        try c.encode(type, forKey: .type)
        try c.encode(width, forKey: .width)
        try c.encode(height, forKey: .height)
        try c.encode(verdict, forKey: .verdict)
        try c.encode(detail, forKey: .detail)
        try c.encode(missing, forKey: .missing)
        try c.encode(duplicateOf, forKey: .duplicateOf)
        try c.encode(server, forKey: .server)
        try c.encode(hashedAtNs, forKey: .hashedAtNs)
        try c.encode(exif, forKey: .exif)
    }
}

/// The capture facts of one image from its EXIF (JPEG APP1 or a TIFF's own IFDs).
public struct ExifFacts: Codable, Sendable, Equatable {
    /// `DateTimeOriginal` (else `DateTime`) as ISO 8601 without a zone, e.g.
    /// "2019-05-21T10:22:33", with `OffsetTimeOriginal` appended ("+08:00") when the file has it:
    /// cameras record local time and most record no zone, so none is invented.
    public var capturedAt: String?
    public var make: String?
    public var model: String?
    public var gps: GPSPosition?

    public init(capturedAt: String? = nil, make: String? = nil, model: String? = nil, gps: GPSPosition? = nil) {
        self.capturedAt = capturedAt
        self.make = make
        self.model = model
        self.gps = gps
    }

    /// Explicit `null`s, like the entry's.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(capturedAt, forKey: .capturedAt)
        try c.encode(make, forKey: .make)
        try c.encode(model, forKey: .model)
        try c.encode(gps, forKey: .gps)
    }
}

/// A WGS 84 position from EXIF GPS tags: degrees, south and west negative; metres above sea level.
public struct GPSPosition: Codable, Sendable, Equatable {
    public var latitude: Double
    public var longitude: Double
    public var altitude: Double?

    public init(latitude: Double, longitude: Double, altitude: Double? = nil) {
        self.latitude = latitude
        self.longitude = longitude
        self.altitude = altitude
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(latitude, forKey: .latitude)
        try c.encode(longitude, forKey: .longitude)
        try c.encode(altitude, forKey: .altitude)
    }
}

/// What the server knows about one checksum. Set with `Manifest.setServerFacts(_:forSHA1:)`.
public struct ServerFacts: Codable, Sendable, Equatable {
    /// "" when the server has given no id (or the one recorded was voided).
    public var imageID: String
    /// The filename the image has on the server.
    public var filename: String
    /// The server's image state (written as the API spells it).
    public var state: ImageState
    public var errors: [String]
    public var bucket: String
    /// The cloud the image was registered with ("S3", "OSS"; "" before it was).
    public var cloud: String
    /// RFC 3339 UTC: when these facts were last read from the server.
    public var checkedAt: String
    /// A multipart upload under way (OSS, large images): the parts already stored, so a re-run
    /// sends only the missing ones. nil when there is none.
    public var multipart: MultipartUpload?
    /// How many times the server judged Invalid the bytes this client stored for this checksum
    /// (issue 11: an image refused again after a re-send is held, not sent on every run). 0 when
    /// never; written only when above 0.
    public var refusedSends: Int

    public init(imageID: String = "", filename: String = "", state: ImageState = .absent, errors: [String] = [],
                bucket: String = "", cloud: String = "", checkedAt: String = "", multipart: MultipartUpload? = nil,
                refusedSends: Int = 0) {
        self.refusedSends = refusedSends
        self.imageID = imageID
        self.filename = filename
        self.state = state
        self.errors = errors
        self.bucket = bucket
        self.cloud = cloud
        self.checkedAt = checkedAt
        self.multipart = multipart
    }

    enum CodingKeys: String, CodingKey {
        case imageID, filename, state, errors, bucket, cloud, checkedAt, multipart, refusedSends
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        imageID = try c.decode(String.self, forKey: .imageID)
        filename = try c.decode(String.self, forKey: .filename)
        state = try c.decode(ImageState.self, forKey: .state)
        errors = try c.decode([String].self, forKey: .errors)
        bucket = try c.decode(String.self, forKey: .bucket)
        checkedAt = try c.decode(String.self, forKey: .checkedAt)
        // Optional: absent in manifests written before they existed (same schemaVersion).
        cloud = try c.decodeIfPresent(String.self, forKey: .cloud) ?? ""
        multipart = try c.decodeIfPresent(MultipartUpload.self, forKey: .multipart)
        refusedSends = try c.decodeIfPresent(Int.self, forKey: .refusedSends) ?? 0
    }

    /// Explicit `null` for no multipart upload, so every server object has the same shape.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(imageID, forKey: .imageID)
        try c.encode(filename, forKey: .filename)
        try c.encode(state, forKey: .state)
        try c.encode(errors, forKey: .errors)
        try c.encode(bucket, forKey: .bucket)
        try c.encode(cloud, forKey: .cloud)
        try c.encode(checkedAt, forKey: .checkedAt)
        try c.encode(multipart, forKey: .multipart)
        if refusedSends > 0 { try c.encode(refusedSends, forKey: .refusedSends) }
    }

    /// The recorded image id, if any.
    public var id: String? { imageID.isEmpty ? nil : imageID }

    /// Applies one journal event. Only server facts change; a local failure is kept elsewhere.
    /// Events carry absolute facts, so applying one twice changes nothing more.
    public mutating func apply(_ event: JournalEvent) {
        switch event.kind {
        case .registered:
            imageID = event.imageID ?? imageID
            filename = event.filename ?? filename
            bucket = event.bucket ?? bucket
            cloud = event.cloud ?? cloud
            state = event.state ?? state
            errors = event.errors ?? []
        case .state where event.state == .absent:
            // hasImage said the project does not have it: an id recorded earlier is void (and so
            // are the server's verdicts on it).
            imageID = ""
            filename = ""
            state = .absent
            errors = []
            refusedSends = 0
        case .started, .state:
            if let id = event.imageID { imageID = id }
            if let f = event.filename { filename = f }
            if let s = event.state { state = s }
            if let e = event.errors { errors = e }
            if let n = event.refusedSends { refusedSends = n }
        case .stored:
            // The store has the bytes; until the server says otherwise the image is Uploaded.
            if !state.isDone { state = .uploaded; errors = [] }
            multipart = nil
        case .multipartStarted:
            guard let id = event.uploadID, let key = event.key, let size = event.partSize else { return }
            multipart = MultipartUpload(uploadID: id, key: key, partSize: size, parts: [])
        case .partStored:
            guard let part = event.part, multipart?.uploadID == event.uploadID else { return }
            multipart?.parts.removeAll { $0.number == part.number }
            multipart?.parts.append(part)
            multipart?.parts.sort { $0.number < $1.number }
            return  // a part is a local fact about the upload, not a server state read
        case .multipartAbandoned:
            if multipart?.uploadID == event.uploadID { multipart = nil }
            return
        case .failed:
            // The image's error as the user should see it (with the store's code, e.g.
            // SignatureDoesNotMatch); the server state stays what the server said.
            errors = [event.reason ?? "failed"]
            return
        }
        checkedAt = event.at
    }
}

/// A multipart upload under way: what a re-run needs to send only the parts still missing.
/// OSS's STS policy is write-only (no ListParts), so the client keeps the part ETags itself.
public struct MultipartUpload: Codable, Sendable, Equatable {
    public struct Part: Codable, Sendable, Equatable {
        public var number: Int
        public var etag: String
        /// The part's CRC-64 (decimal, as OSS writes `x-oss-hash-crc64ecma`), to check the whole
        /// object's CRC at Complete without reading the parts again.
        public var crc64: String
        public var size: Int64

        public init(number: Int, etag: String, crc64: String, size: Int64) {
            self.number = number
            self.etag = etag
            self.crc64 = crc64
            self.size = size
        }
    }

    public var uploadID: String
    /// The object key the upload writes (`<pid>/<server filename>`).
    public var key: String
    public var partSize: Int64
    /// Sorted by number.
    public var parts: [Part]

    public init(uploadID: String, key: String, partSize: Int64, parts: [Part]) {
        self.uploadID = uploadID
        self.key = key
        self.partSize = partSize
        self.parts = parts
    }
}

/// The version string written into `Manifest.generator`.
public enum AltiVersion {
    public static let version = "0.1.0"
    public static var generator: String { "alti \(version)" }
}

/// RFC 3339 timestamps in UTC with millisecond fractions ("2025-11-25T21:40:00.123Z").
public enum RFC3339 {
    public static func string(fromNanoseconds ns: Int64) -> String {
        var seconds = time_t(ns / 1_000_000_000)
        var remainder = ns % 1_000_000_000
        if remainder < 0 {
            seconds -= 1
            remainder += 1_000_000_000
        }
        var parts = tm()
        gmtime_r(&seconds, &parts)
        let millis = Int(remainder / 1_000_000)
        return String(format: "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", Int(parts.tm_year) + 1900,
                      Int(parts.tm_mon) + 1, Int(parts.tm_mday), Int(parts.tm_hour), Int(parts.tm_min),
                      Int(parts.tm_sec), millis)
    }

    public static func string(from date: Date) -> String {
        string(fromNanoseconds: Int64((date.timeIntervalSince1970 * 1e9).rounded()))
    }

    /// Nanoseconds since the epoch from the realtime clock.
    public static func nowNanoseconds() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
    }
}
