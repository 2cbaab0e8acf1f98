import Foundation

/// `alti report`'s text table, CSV and JSON. The report holds no key, token or URL query, so
/// none can be printed.
public enum ReportFormat {
    // MARK: Text

    /// A table (one line per entry, columns padded) between the sources and one summary line.
    /// The checksum is shortened to 12 hex digits (as `git log --oneline` does: enough to tell
    /// images apart by eye); CSV and JSON have all 40.
    public static func text(_ report: SurveyReport) -> String {
        var lines = ["alti report: \(count(report.rows.count, "file")) from \(count(report.sources.count, "manifest")) (no network), \(report.generatedAt)"]
        for source in report.sources { lines.append(sourceLine(source)) }
        let header = ["FILE", "STATE", "SIZE", "CAPTURED", "LATITUDE", "LONGITUDE", "FLIGHT", "CLOUD", "IMAGE ID", "SHA1", "ERROR"]
        let cells: [[String]] = report.rows.map { row in
            [row.path, row.state, ByteCount.text(row.size), row.capturedAt ?? "-",
             row.gps.map { fixed($0.latitude, 6) } ?? "-", row.gps.map { fixed($0.longitude, 6) } ?? "-",
             row.flight.map(String.init) ?? "-", row.cloud ?? "-", row.imageID ?? "-",
             row.sha1.map { String($0.prefix(12)) } ?? "-", row.error].map(visible)
        }
        var widths = header.map(\.count)
        for line in cells {
            for (column, cell) in line.enumerated() { widths[column] = max(widths[column], cell.count) }
        }
        for line in [header] + cells {
            var text = ""
            for (column, cell) in line.enumerated() {
                if column == line.count - 1 {
                    text += cell
                } else {
                    text += cell + String(repeating: " ", count: widths[column] - cell.count + 2)
                }
            }
            while text.hasSuffix(" ") { text.removeLast() }
            lines.append(text)
        }
        lines.append(summaryLine(report))
        return lines.joined(separator: "\n") + "\n"
    }

    /// A cell on one line: a line break or other control character in a name or a server's
    /// message is shown escaped (`\n`, `\t`, `\u{1B}`), so one entry stays one line of the table.
    static func visible(_ cell: String) -> String {
        guard cell.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else { return cell }
        var out = ""
        for scalar in cell.unicodeScalars {
            switch scalar {
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.properties.generalCategory == .control:
                out += "\\u{" + String(scalar.value, radix: 16, uppercase: true) + "}"
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out
    }

    /// "/survey (folder) · project P at E (S3, bucket B) · manifest M", or "not synced to a project yet".
    static func sourceLine(_ source: ReportSource) -> String {
        var binding = "not synced to a project yet"
        if !source.remote.projectID.isEmpty {
            binding = "project \(source.remote.projectID) at \(source.remote.endpoint)"
            if !source.remote.bucket.isEmpty { binding += " (\(source.remote.cloud), bucket \(source.remote.bucket))" }
        }
        return "\(source.root) (\(source.kind)) · \(binding) · manifest \(source.manifest)"
    }

    /// "Summary: 7 files (3.5 MB): Ready 1 · Invalid 1 · ... · 2 images have no GPS position · 1 flight".
    public static func summaryLine(_ report: SurveyReport) -> String {
        var parts = report.counts.map { "\($0.category.label) \($0.count.images)" }
        if parts.isEmpty { parts = ["no entries"] }
        var line = "Summary: \(count(report.rows.count, "file")) (\(ByteCount.text(report.totalBytes))): " + parts.joined(separator: " · ")
        line += " · " + noPositionText(report.imagesWithoutPosition)
        line += " · \(count(report.flights.count, "flight"))"
        return line
    }

    /// "12 images have no GPS position", "1 image has no GPS position", "every image has a GPS position".
    public static func noPositionText(_ n: Int) -> String {
        switch n {
        case 0: "every image has a GPS position"
        case 1: "1 image has no GPS position"
        default: "\(n) images have no GPS position"
        }
    }

    static func count(_ n: Int, _ noun: String) -> String { "\(n) \(noun)\(n == 1 ? "" : "s")" }

    /// A coordinate with a fixed number of decimals (6: about 0.1 m; 7 in CSV).
    static func fixed(_ value: Double, _ decimals: Int) -> String { String(format: "%.\(decimals)f", value) }

    // MARK: CSV

    /// The CSV header, in column order.
    public static let csvHeader = ["file", "state", "error", "sha1", "image_id", "size", "cloud", "captured_at",
                                   "latitude", "longitude", "altitude", "flight", "category", "missing", "duplicate_of"]

    /// RFC 4180: a header row, then one record per entry; records end in CRLF (the RFC's line
    /// break, which spreadsheets on every system read); a field holding a comma, a double quote,
    /// CR or LF is quoted, its quotes doubled. Empty fields for what is unknown. The first three
    /// columns are the official CLI's `--report` (Filename, State, Error).
    public static func csv(_ report: SurveyReport) -> String {
        var out = csvHeader.map(csvField).joined(separator: ",") + "\r\n"
        for row in report.rows {
            let fields = [
                row.path, row.state, row.error, row.sha1 ?? "", row.imageID ?? "", String(row.size), row.cloud ?? "",
                row.capturedAt ?? "", row.gps.map { fixed($0.latitude, 7) } ?? "",
                row.gps.map { fixed($0.longitude, 7) } ?? "", row.gps?.altitude.map { fixed($0, 2) } ?? "",
                row.flight.map(String.init) ?? "", row.category.rawValue, row.missing ? "true" : "false",
                row.duplicateOf ?? "",
            ]
            out += fields.map(csvField).joined(separator: ",") + "\r\n"
        }
        return out
    }

    static func csvField(_ value: String) -> String {
        guard value.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" || $0 == "\r\n" }) else { return value }
        return "\"" + value.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }

    // MARK: JSON

    /// One object: `generatedAt`, `sources`, `summary`, `flights`, `rows` (keys sorted, explicit
    /// nulls, so every row has the same shape).
    public static func json(_ report: SurveyReport) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(ReportJSON(report)), as: UTF8.self) + "\n"
    }

    struct ReportJSON: Encodable {
        struct Source: Encodable {
            var root, kind, manifest, endpoint, project, cloud, bucket: String
        }
        struct Summary: Encodable {
            var files: Int
            var bytes: Int64
            var states: [String: StatusTally.Count]
            var withPosition: Int
            var imagesWithoutPosition: Int
            var flights: Int
        }
        struct FlightJSON: Encodable {
            var number: Int
            var images: Int
            var firstAt: String?
            var lastAt: String?
            var folder: String?

            func encode(to encoder: any Encoder) throws {
                var c = encoder.container(keyedBy: CodingKeys.self)
                try c.encode(number, forKey: .number)
                try c.encode(images, forKey: .images)
                try c.encode(firstAt, forKey: .firstAt)
                try c.encode(lastAt, forKey: .lastAt)
                try c.encode(folder, forKey: .folder)
            }
            enum CodingKeys: String, CodingKey { case number, images, firstAt, lastAt, folder }
        }
        struct Row: Encodable {
            var row: ReportRow

            enum CodingKeys: String, CodingKey {
                case path, state, category, error, sha1, imageID, size, cloud, capturedAt, latitude, longitude,
                     altitude, flight, missing, duplicateOf
            }

            func encode(to encoder: any Encoder) throws {
                var c = encoder.container(keyedBy: CodingKeys.self)
                try c.encode(row.path, forKey: .path)
                try c.encode(row.state, forKey: .state)
                try c.encode(row.category.rawValue, forKey: .category)
                try c.encode(row.error, forKey: .error)
                try c.encode(row.sha1, forKey: .sha1)
                try c.encode(row.imageID, forKey: .imageID)
                try c.encode(row.size, forKey: .size)
                try c.encode(row.cloud, forKey: .cloud)
                try c.encode(row.capturedAt, forKey: .capturedAt)
                try c.encode(row.gps?.latitude, forKey: .latitude)
                try c.encode(row.gps?.longitude, forKey: .longitude)
                try c.encode(row.gps?.altitude, forKey: .altitude)
                try c.encode(row.flight, forKey: .flight)
                try c.encode(row.missing, forKey: .missing)
                try c.encode(row.duplicateOf, forKey: .duplicateOf)
            }
        }

        var generatedAt: String
        var sources: [Source]
        var summary: Summary
        var flights: [FlightJSON]
        var rows: [Row]

        init(_ report: SurveyReport) {
            generatedAt = report.generatedAt
            sources = report.sources.map {
                Source(root: $0.root, kind: $0.kind, manifest: $0.manifest, endpoint: $0.remote.endpoint,
                       project: $0.remote.projectID, cloud: $0.remote.cloud, bucket: $0.remote.bucket)
            }
            var states: [String: StatusTally.Count] = [:]
            for category in ReportCategory.allCases { states[category.rawValue] = StatusTally.Count() }
            for (category, count) in report.counts { states[category.rawValue] = count }
            summary = Summary(files: report.rows.count, bytes: report.totalBytes, states: states,
                              withPosition: report.positioned, imagesWithoutPosition: report.imagesWithoutPosition,
                              flights: report.flights.count)
            flights = report.flights.map {
                FlightJSON(number: $0.number, images: $0.rows.count, firstAt: $0.firstAt, lastAt: $0.lastAt, folder: $0.folder)
            }
            rows = report.rows.map(Row.init)
        }
    }
}
