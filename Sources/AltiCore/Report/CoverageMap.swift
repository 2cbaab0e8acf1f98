import Foundation

/// Where each GPS position lands in the map's fixed viewBox: an equirectangular projection whose
/// longitudes are scaled by cos(mean latitude) (so a survey's metres east and north are drawn at
/// the same scale), fitted into `width` x `height` with `margin` on every side and centred.
///
///     x' = longitude * cos(meanLatitude),  y' = latitude           (degrees)
///     scale = min((width - 2 margin) / (maxX' - minX'), (height - 2 margin) / (maxY' - minY'))
///     x = margin + ((width - 2 margin) - (maxX' - minX') scale) / 2 + (x' - minX') scale
///     y = margin + ((height - 2 margin) - (maxY' - minY') scale) / 2 + (maxY' - y') scale
///
/// A span of zero (one position, or images in a line) takes its scale from the other axis; all at
/// one point are drawn in the middle. Longitudes are not unwrapped across the antimeridian.
public struct MapProjection: Sendable, Equatable {
    public static let width = 1000.0
    public static let height = 700.0
    public static let margin = 40.0

    public var meanLatitude: Double
    public var minX: Double
    public var maxY: Double
    public var scale: Double
    public var offsetX: Double
    public var offsetY: Double

    public init?(_ positions: [GPSPosition]) {
        guard !positions.isEmpty else { return nil }
        meanLatitude = positions.reduce(0) { $0 + $1.latitude } / Double(positions.count)
        let k = cos(meanLatitude * .pi / 180)
        let xs = positions.map { $0.longitude * k }
        let ys = positions.map(\.latitude)
        minX = xs.min()!
        maxY = ys.max()!
        let spanX = xs.max()! - minX
        let spanY = maxY - ys.min()!
        let innerW = Self.width - 2 * Self.margin
        let innerH = Self.height - 2 * Self.margin
        let candidates = [spanX > 0 ? innerW / spanX : nil, spanY > 0 ? innerH / spanY : nil].compactMap { $0 }
        scale = candidates.min() ?? 1
        offsetX = Self.margin + (innerW - spanX * scale) / 2
        offsetY = Self.margin + (innerH - spanY * scale) / 2
    }

    /// The position's point in the viewBox.
    public func point(_ p: GPSPosition) -> (x: Double, y: Double) {
        let k = cos(meanLatitude * .pi / 180)
        return (offsetX + (p.longitude * k - minX) * scale, offsetY + (maxY - p.latitude) * scale)
    }
}

/// The map of `alti report --html`: inline SVG, sized for 10,000 images. Each (flight, state)
/// pair is ONE `<path>` of zero-length segments (`M x y h0`) drawn with a thick stroke whose
/// line cap makes the marker (round for odd flights, square for even ones), about 12 bytes per
/// image instead of an element each; each flight's track is one `<polyline>` in time order,
/// under the markers.
public enum CoverageMap {
    /// The state palette (Okabe-Ito, readable with the common colour-vision deficiencies), in
    /// `ReportCategory` order; documented in README and DESIGN.
    public static let palette: [ReportCategory: String] = [
        .ready: "#009E73", .processing: "#56B4E9", .pending: "#E69F00", .invalid: "#D55E00",
        .failed: "#CC79A7", .absent: "#0072B2", .notSent: "#7F7F7F", .notUsable: "#000000",
    ]
    /// The map's background (no image there).
    public static let background = "#F4F1E8"
    /// Track colours, one per flight in turn.
    public static let trackColours = ["#4D4D4D", "#8E44AD", "#1F618D", "#A04000"]

    /// The marker's diameter in viewBox units: 12 for a small survey, shrinking with the number
    /// of images (400 / sqrt(n)) so 10,000 dots still show gaps, never under 3.
    public static func markerSize(_ count: Int) -> Double {
        guard count > 0 else { return 12 }
        return min(12, max(3, (400 / Double(count).squareRoot()).rounded()))
    }

    /// The marker shape of a flight: its `stroke-linecap`.
    public static func markerCap(flight: Int) -> String { flight % 2 == 1 ? "round" : "square" }

    public static func trackColour(flight: Int) -> String { trackColours[(flight - 1) % trackColours.count] }

    /// The `<svg>` element, or nil when no row has a position.
    public static func svg(_ report: SurveyReport) -> String? {
        let positioned = report.rows.compactMap(\.gps)
        guard let projection = MapProjection(positioned) else { return nil }
        let size = markerSize(positioned.count)
        let (w, h) = (MapProjection.width, MapProjection.height)
        var out = "<svg id=\"map\" viewBox=\"0 0 \(number(w)) \(number(h))\" width=\"\(number(w))\" height=\"\(number(h))\""
        out += " role=\"img\" aria-label=\"GPS positions of \(positioned.count) files\""
        out += " data-mean-latitude=\"\(projection.meanLatitude)\" data-scale=\"\(projection.scale)\""
        out += " data-min-x=\"\(projection.minX)\" data-max-y=\"\(projection.maxY)\""
        out += " data-offset-x=\"\(projection.offsetX)\" data-offset-y=\"\(projection.offsetY)\">\n"
        out += "<rect width=\"\(number(w))\" height=\"\(number(h))\" fill=\"\(background)\"/>\n"
        for flight in report.flights where flight.rows.count > 1 {
            let points = flight.rows.compactMap { report.rows[$0].gps.map(projection.point) }
                .map { "\(number($0.x)),\(number($0.y))" }.joined(separator: " ")
            out += "<polyline points=\"\(points)\" fill=\"none\" stroke=\"\(trackColour(flight: flight.number))\""
            out += " stroke-width=\"1.5\" stroke-linejoin=\"round\" data-flight=\"\(flight.number)\"/>\n"
        }
        for flight in report.flights {
            for category in ReportCategory.allCases {
                let members = flight.rows.filter { report.rows[$0].category == category }
                guard !members.isEmpty else { continue }
                var d = ""
                for index in members {
                    guard let gps = report.rows[index].gps else { continue }
                    let p = projection.point(gps)
                    d += "M\(number(p.x)) \(number(p.y))h0"
                }
                out += "<path d=\"\(d)\" stroke=\"\(palette[category]!)\" stroke-width=\"\(number(size))\""
                out += " stroke-linecap=\"\(markerCap(flight: flight.number))\" data-state=\"\(category.rawValue)\""
                out += " data-flight=\"\(flight.number)\"/>\n"
            }
        }
        out += "</svg>"
        return out
    }

    /// A coordinate with at most one decimal (a tenth of a viewBox unit: well under a pixel).
    static func number(_ value: Double) -> String {
        let tenths = (value * 10).rounded()
        let whole = Int(tenths) / 10
        let fraction = abs(Int(tenths) % 10)
        if fraction == 0 { return String(Int(tenths) / 10) }
        return (tenths < 0 && whole == 0 ? "-" : "") + "\(whole).\(fraction)"
    }
}
