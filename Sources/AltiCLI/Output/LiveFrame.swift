import AltiCore
import Foundation

/// Where a run stands, as the progress display draws it: one value, taken a few times a second
/// from the recorder's events and the metrics. The frame, the plain line and the `progress`
/// event are pure functions of it (tested without a terminal: `LiveFrameTests`).
struct ProgressState: Sendable, Equatable {
    enum Stage: String, Sendable {
        case hashing, checking, uploading, waiting
    }

    var stage: Stage
    /// Images (files while hashing) done, of the total for this stage.
    var done = 0
    var total = 0
    var bytesDone: Int64 = 0
    var bytesTotal: Int64 = 0
    /// Bytes per second over the last few seconds (`RateWindow`), nil until it is known.
    var rate: Double?
    var retries = 0
    var failed = 0
    /// The waiting stage: images whose verification is awaited, and those answered.
    var answered = 0
    /// The uploads under way, in any order (the frame sorts them).
    var inFlight: [SyncMetrics.InFlightTransfer] = []

    /// Seconds left at the current rate, nil when it cannot be said.
    var etaSeconds: Int? {
        guard let rate, rate > 0, bytesTotal >= bytesDone else { return nil }
        return Int((Double(bytesTotal - bytesDone) / rate).rounded(.up))
    }
}

/// Text with parts that may be coloured; the width limit counts only the visible characters.
struct StyledLine: Equatable {
    var parts: [(text: String, style: Palette.Style?)]

    static func == (a: StyledLine, b: StyledLine) -> Bool {
        a.parts.map(\.text) == b.parts.map(\.text) && a.parts.map(\.style) == b.parts.map(\.style)
    }

    init(_ parts: [(String, Palette.Style?)]) { self.parts = parts.map { (text: $0.0, style: $0.1) } }

    var plain: String { parts.map(\.text).joined() }

    /// At most `width` visible characters (the last one `…` when cut: a wrapped line would break
    /// the cursor-up count of the next redraw), coloured by `palette`.
    func rendered(width: Int, palette: Palette) -> String {
        var left = max(width, 1)
        var out = ""
        for (index, part) in parts.enumerated() where left > 0 {
            var text = part.text
            let isLast = index == parts.count - 1
            let restCount = parts[(index + 1)...].reduce(0) { $0 + $1.text.count }
            if text.count > left || (!isLast && text.count == left && restCount > 0) {
                text = String(text.prefix(max(left - 1, 0))) + "…"
            }
            left -= text.count
            out += part.style.map { palette.paint(text, $0) } ?? text
        }
        return out
    }
}

/// The live display's frame and the plain line: pure functions of a `ProgressState`.
enum LiveFrame {
    /// At most this many uploads get a line of their own; the rest are "+N more".
    static let inFlightLines = 3

    /// The frame: the headline, then (past hashing) the retries and failures so far, then one
    /// line per upload in flight, largest first, at most `inFlightLines` and "+N more". Two
    /// short lines rather than one long one: a line wider than the terminal is cut, and what is
    /// cut first would be the failures.
    static func lines(_ s: ProgressState) -> [StyledLine] {
        var lines = [headline(s)]
        guard s.stage != .hashing else { return lines }
        lines.append(counters(s))
        guard s.stage == .uploading, !s.inFlight.isEmpty else { return lines }
        // Largest first: the uploads that decide when the run ends; the path breaks ties so
        // the frame does not jump between redraws.
        let sorted = s.inFlight.sorted { ($0.size, $1.name) > ($1.size, $0.name) }
        for upload in sorted.prefix(inFlightLines) {
            let percent = upload.size > 0 ? Int(Double(upload.sent) * 100 / Double(upload.size)) : 0
            lines.append(StyledLine([
                ("  ↑ ", nil),
                ("\(ScanRenderer.bytes(upload.sent)) of \(ScanRenderer.bytes(upload.size)) (\(min(percent, 100)) %) ", nil),
                (upload.name, nil),
            ]))
        }
        if sorted.count > inFlightLines { lines.append(StyledLine([("  +\(sorted.count - inFlightLines) more", nil)])) }
        return lines
    }

    /// The first line: what is being done, how far, how fast.
    static func headline(_ s: ProgressState) -> StyledLine {
        switch s.stage {
        case .hashing:
            return StyledLine([
                ("hashing", .busy),
                (" \(s.done)/\(s.total) files · \(ScanRenderer.bytes(s.bytesDone)) of \(ScanRenderer.bytes(s.bytesTotal))", nil),
                (" · \(rate(s.rate)) · ETA \(eta(s.etaSeconds))", nil),
            ])
        case .checking:
            return StyledLine([("checking", .busy), (" which images the server has", nil)])
        case .uploading:
            return StyledLine([
                ("uploading", .busy),
                (" \(s.done)/\(s.total) images · \(ScanRenderer.bytes(s.bytesDone)) of \(ScanRenderer.bytes(s.bytesTotal))", nil),
                (" · \(rate(s.rate)) · ETA \(eta(s.etaSeconds))", nil),
            ])
        case .waiting:
            return StyledLine([
                ("waiting", .waiting),
                (" for the server to verify \(SyncRenderer.count(s.total, "image")): \(s.answered) answered", nil),
            ])
        }
    }

    /// The second line: retries and failures so far (yellow and red when not 0), and how many
    /// uploads are under way.
    static func counters(_ s: ProgressState) -> StyledLine {
        var parts: [(String, Palette.Style?)] = [
            ("  ", nil),
            ("retries \(s.retries)", s.retries > 0 ? .waiting : nil),
            (" · ", nil),
            ("failed \(s.failed)", s.failed > 0 ? .bad : nil),
        ]
        if s.stage == .uploading { parts.append((" · \(s.inFlight.count) in flight", nil)) }
        return StyledLine(parts)
    }

    /// The line written every few seconds when stderr is not a terminal: the frame's first two
    /// lines as one, no escape codes.
    static func plainLine(_ s: ProgressState) -> String {
        var line = "alti: " + headline(s).plain
        if s.stage != .hashing { line += " · " + counters(s).plain.dropFirst(2) }
        return line
    }

    static func rate(_ bytesPerSecond: Double?) -> String {
        guard let bytesPerSecond else { return "-- /s" }
        return "\(ScanRenderer.bytes(Int64(bytesPerSecond)))/s"
    }

    /// `m:ss`, `h:mm:ss`, or `--:--` when unknown.
    static func eta(_ seconds: Int?) -> String {
        guard let seconds else { return "--:--" }
        if seconds >= 3600 { return String(format: "%d:%02d:%02d", seconds / 3600, seconds / 60 % 60, seconds % 60) }
        return String(format: "%d:%02d", seconds / 60, seconds % 60)
    }
}

/// The current rate: bytes over the last `span` seconds (not the average since the start, which
/// hides a link that has just dropped or recovered). Pure: samples in, rate out.
struct RateWindow: Sendable {
    var span: Double = 5
    private var samples: [(at: Double, bytes: Int64)] = []

    init(span: Double = 5) { self.span = span }

    /// Adds the running total `bytes` at time `at` (seconds, any origin).
    mutating func add(at: Double, bytes: Int64) {
        samples.append((at, bytes))
        // Keep one sample older than the span, so the window always covers it fully.
        while samples.count > 2, samples[1].at <= at - span { samples.removeFirst() }
    }

    /// Bytes per second across the window; nil until it spans half a second.
    var rate: Double? {
        guard let first = samples.first, let last = samples.last, last.at - first.at >= 0.5 else { return nil }
        return Double(max(0, last.bytes - first.bytes)) / (last.at - first.at)
    }

    /// Forgets the samples (a new stage counts different bytes).
    mutating func reset() { samples = [] }
}
