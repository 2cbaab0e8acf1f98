import Foundation

/// What a report row is coloured and counted by: the status categories of a usable image, plus
/// the files that are not usable images (their local verdict is in the row's state).
public enum ReportCategory: String, Sendable, CaseIterable, Codable {
    case ready, processing, pending, invalid, failed, absent, notSent, notUsable

    public init(_ category: ImageCategory) {
        self = ReportCategory(rawValue: category.rawValue) ?? .notSent
    }

    /// How people read it (the text summary, the HTML legend), as `alti status` names them.
    public var label: String {
        switch self {
        case .ready: "Ready"
        case .processing: "processing"
        case .pending: "Pending"
        case .invalid: "Invalid"
        case .failed: "failed"
        case .absent: "not on the server"
        case .notSent: "not sent"
        case .notUsable: "not usable"
        }
    }
}

/// One manifest entry as the report shows it: the official CLI's (file name, state, error)
/// plus what the manifest knows about it.
public struct ReportRow: Sendable, Equatable {
    /// As `alti status` names files: absolute, `ARCHIVE:member` for a member, escaped as recorded
    /// (`%XX` for a byte of a name that is not UTF-8, `%25` for `%`).
    public var path: String
    public var category: ReportCategory
    /// The server's state as the API spells it ("Ready", "Invalid", "Pending", "Uploaded"),
    /// "not on the server" (hasImage said null), "not sent" (never asked), or the local verdict of
    /// a file that is not usable ("notAnImage", "truncated", "empty", ...).
    public var state: String
    /// The server's reasons, the last local failure, or the verdict's detail; "" when none.
    public var error: String
    public var sha1: String?
    /// The server's image id, nil before it gave one.
    public var imageID: String?
    public var size: Int64
    /// "S3", "OSS"; nil before a registration.
    public var cloud: String?
    /// EXIF capture time as recorded (local time, an offset only when the camera wrote one).
    public var capturedAt: String?
    public var gps: GPSPosition?
    /// The file is gone since the last scan (its entry and server facts are kept).
    public var missing: Bool
    /// The first file with the same content, when this one is a copy (display path).
    public var duplicateOf: String?
    /// 1-based flight (`Flights`) of a row with a GPS position, nil for the others.
    public var flight: Int?
    /// The folder the file is in (display path), the flight rule's key for rows without a time.
    public var folder: String

    public init(path: String, category: ReportCategory, state: String, error: String = "", sha1: String? = nil,
                imageID: String? = nil, size: Int64, cloud: String? = nil, capturedAt: String? = nil,
                gps: GPSPosition? = nil, missing: Bool = false, duplicateOf: String? = nil, flight: Int? = nil,
                folder: String = "") {
        self.path = path
        self.category = category
        self.state = state
        self.error = error
        self.sha1 = sha1
        self.imageID = imageID
        self.size = size
        self.cloud = cloud
        self.capturedAt = capturedAt
        self.gps = gps
        self.missing = missing
        self.duplicateOf = duplicateOf
        self.flight = flight
        self.folder = folder
    }
}

/// Where one manifest's source syncs to, for the report's header.
public struct ReportSource: Sendable, Equatable {
    public var root: String
    public var kind: String
    public var manifest: String
    public var remote: Manifest.Remote

    public init(root: String, kind: String, manifest: String, remote: Manifest.Remote) {
        self.root = root
        self.kind = kind
        self.manifest = manifest
        self.remote = remote
    }
}

/// `alti report`: every entry of the manifests of the PATHs (a leftover journal folded in, as
/// `alti status` reads it), in manifest order, with the flights of the images with a position.
/// Pure over the manifests; rendered by `ReportFormat` and `ReportHTML`.
public struct SurveyReport: Sendable {
    public var sources: [ReportSource]
    public var rows: [ReportRow]
    /// When the report was made (RFC 3339 UTC); injected so a rendering is reproducible.
    public var generatedAt: String
    public var flights: [Flight]

    public init(sources: [(source: ReportSource, manifest: Manifest)], generatedAt: String) {
        self.sources = sources.map(\.source)
        self.generatedAt = generatedAt
        var rows: [ReportRow] = []
        for (_, manifest) in sources {
            let display = { (path: String) in SourceStatus.displayPath(root: manifest.source.root, kind: manifest.source.kind, path) }
            for entry in manifest.entries { rows.append(Self.row(entry, display: display)) }
        }
        let flights = Flights.group(rows)
        for flight in flights {
            for index in flight.rows { rows[index].flight = flight.number }
        }
        self.rows = rows
        self.flights = flights
    }

    static func row(_ entry: ManifestEntry, display: (String) -> String) -> ReportRow {
        let path = display(entry.path)
        let folder = path.lastIndex(of: "/").map { String(path[..<$0]) } ?? ""
        var row = ReportRow(path: path, category: .notUsable, state: entry.verdict.rawValue, error: entry.detail ?? "",
                            sha1: entry.sha1, size: entry.size, capturedAt: entry.exif?.capturedAt, gps: entry.exif?.gps,
                            missing: entry.missing, duplicateOf: entry.duplicateOf.map(display), folder: folder)
        if entry.verdict == .ok {
            let category = ImageCategory(entry.server)
            row.category = ReportCategory(category)
            switch category {
            case .notSent: row.state = ReportCategory.notSent.label
            case .absent: row.state = ReportCategory.absent.label
            default: row.state = entry.server?.state.rawValue ?? ReportCategory.notSent.label
            }
            row.error = (entry.server?.errors ?? []).joined(separator: "; ")
            row.imageID = entry.server?.id
            row.cloud = entry.server.flatMap { $0.cloud.isEmpty ? nil : $0.cloud }
        }
        if entry.missing {
            row.error = [row.error, "the file is gone since the last scan"].filter { !$0.isEmpty }.joined(separator: "; ")
        }
        return row
    }

    // MARK: Summary

    /// Files and bytes per category, in `ReportCategory`'s order.
    public var counts: [(category: ReportCategory, count: StatusTally.Count)] {
        var by: [ReportCategory: StatusTally.Count] = [:]
        for row in rows {
            by[row.category, default: StatusTally.Count()].images += 1
            by[row.category, default: StatusTally.Count()].bytes += row.size
        }
        return ReportCategory.allCases.compactMap { category in by[category].map { (category, $0) } }
    }

    public var totalBytes: Int64 { rows.reduce(0) { $0 + $1.size } }

    /// Usable images (verdict ok) without a GPS position: the holes the map cannot show.
    public var imagesWithoutPosition: Int { rows.filter { $0.category != .notUsable && $0.gps == nil }.count }

    /// Rows drawn on the map: every row with a position.
    public var positioned: Int { rows.filter { $0.gps != nil }.count }
}
