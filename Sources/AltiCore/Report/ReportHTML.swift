import Foundation

/// `alti report --html FILE`: ONE self-contained page (inline CSS and SVG; no script, font,
/// image, stylesheet or link to anything else), so it opens offline from a USB stick: the title,
/// when it was made, the summary, the coverage map with its legend, and the table.
public enum ReportHTML {
    public static func page(_ report: SurveyReport) -> String {
        let title = "alti report: " + (report.sources.count == 1 ? report.sources[0].root : "\(report.sources.count) sources")
        var out = """
            <!DOCTYPE html>
            <html lang="en"><head><meta charset="utf-8">
            <title>\(escape(title))</title>
            <style>
            body{font:14px/1.4 system-ui,sans-serif;margin:16px;color:#222;background:#fff}
            h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:16px 0 4px}
            table{border-collapse:collapse}td,th{padding:1px 8px;text-align:left;white-space:nowrap}
            #files tr:nth-child(even){background:#f6f6f6}#files td:nth-child(4),#files td:nth-child(6),#files td:nth-child(7){text-align:right}
            .sw{display:inline-block;width:10px;height:10px;margin-right:4px;vertical-align:baseline}
            .round{border-radius:50%}#map{display:block;border:1px solid #999;max-width:100%;height:auto}
            .legend{margin:4px 0}.legend span.item{margin-right:16px}

            """
        for category in ReportCategory.allCases {
            out += ".c-\(category.rawValue) td:nth-child(2)::before{content:\"\";display:inline-block;width:8px;height:8px;"
            out += "margin-right:4px;background:\(CoverageMap.palette[category]!)}\n"
        }
        out += "</style></head><body>\n"
        out += "<h1>\(escape(title))</h1>\n"
        out += "<p>Generated \(escape(report.generatedAt)) by \(escape(AltiVersion.generator)) from the manifests (no network).</p>\n"

        // Summary: sources, counts per state (with the map's colours), bytes.
        out += "<h2>Summary</h2>\n<table id=\"summary\">\n"
        for source in report.sources {
            let remote = source.remote
            let binding = remote.projectID.isEmpty ? "not synced to a project yet"
                : "project \(remote.projectID) at \(remote.endpoint)" + (remote.bucket.isEmpty ? "" : " (\(remote.cloud), bucket \(remote.bucket))")
            out += "<tr><th>\(escape(source.root)) (\(escape(source.kind)))</th><td>\(escape(binding))</td></tr>\n"
        }
        out += "<tr><th>files</th><td>\(report.rows.count) (\(escape(ByteCount.text(report.totalBytes))))</td></tr>\n"
        for (category, count) in report.counts {
            out += "<tr><th><span class=\"sw\" style=\"background:\(CoverageMap.palette[category]!)\"></span>\(escape(category.label))</th>"
            out += "<td>\(count.images) (\(escape(ByteCount.text(count.bytes))))</td></tr>\n"
        }
        out += "<tr><th>GPS</th><td>\(report.positioned) on the map; \(escape(ReportFormat.noPositionText(report.imagesWithoutPosition)))</td></tr>\n"
        out += "</table>\n"

        out += "<h2>Coverage</h2>\n"
        if let svg = CoverageMap.svg(report) {
            out += "<div class=\"legend\">"
            for (category, count) in report.counts {
                out += "<span class=\"item\"><span class=\"sw round\" style=\"background:\(CoverageMap.palette[category]!)\"></span>"
                out += "\(escape(category.label)) \(count.images)</span>"
            }
            out += "</div>\n<div class=\"legend\">"
            for flight in report.flights {
                let shape = CoverageMap.markerCap(flight: flight.number) == "round" ? "round" : "square"
                var when = ""
                if let first = flight.firstAt, let last = flight.lastAt { when = ", \(first) to \(last)" }
                if let folder = flight.folder { when = ", folder \(folder)" }
                out += "<span class=\"item\"><span class=\"sw\" style=\"background:\(CoverageMap.trackColour(flight: flight.number))\"></span>"
                out += "flight \(flight.number): \(ReportFormat.count(flight.rows.count, "image")), \(shape) markers\(escape(when))</span>"
            }
            out += "</div>\n"
            out += svg + "\n"
            out += "<p>North is up; east and north at the same scale (longitudes scaled by the cosine of the mean latitude). "
            out += "Flights: images more than \(Flights.gap / 60) minutes apart start a new one; images without a capture time are grouped by folder.</p>\n"
        } else {
            out += "<p>No file records a GPS position: nothing to map.</p>\n"
        }

        out += "<h2>Files</h2>\n<table id=\"files\">\n<thead><tr><th>file<th>state<th>error<th>size<th>captured<th>latitude<th>longitude<th>flight<th>cloud<th>image id<th>sha1</tr></thead>\n<tbody>\n"
        for row in report.rows {
            // Closing tags of cells and rows are optional in HTML: 10,000 rows stay small.
            out += "<tr class=\"c-\(row.category.rawValue)\"><td>\(escape(row.path))<td>\(escape(row.state))<td>\(escape(row.error))"
            out += "<td>\(row.size)<td>\(escape(row.capturedAt ?? ""))"
            out += "<td>\(row.gps.map { ReportFormat.fixed($0.latitude, 6) } ?? "")<td>\(row.gps.map { ReportFormat.fixed($0.longitude, 6) } ?? "")"
            out += "<td>\(row.flight.map(String.init) ?? "")<td>\(escape(row.cloud ?? ""))<td>\(escape(row.imageID ?? ""))<td>\(row.sha1 ?? "")\n"
        }
        out += "</tbody></table>\n</body></html>\n"
        return out
    }

    /// Text as HTML character data or an attribute value.
    static func escape(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out
    }
}
