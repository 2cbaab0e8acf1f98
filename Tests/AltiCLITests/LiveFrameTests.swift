import AltiTestSupport
import Foundation
import Testing

@testable import AltiCLI
@testable import AltiCore

/// Text kept in `Tests/AltiCLITests/Golden/`: a change of the output shows as a diff of the file.
/// `ALTI_UPDATE_GOLDEN=1` rewrites the files (then read the diff before committing); a missing
/// file is a failure, never recorded silently.
enum Golden {
    static func folder() -> URL { Run.packageRoot.appendingPathComponent("Tests/AltiCLITests/Golden") }

    /// ESC shown as `\e` and CR as `\r`, so the files read as text and diff cleanly.
    static func visible(_ text: String) -> String {
        text.replacingOccurrences(of: "\u{1B}", with: "\\e").replacingOccurrences(of: "\r", with: "\\r")
    }

    static func check(_ name: String, _ actual: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let url = folder().appendingPathComponent(name)
        let text = visible(actual)
        if ProcessInfo.processInfo.environment["ALTI_UPDATE_GOLDEN"] == "1" {
            try FileManager.default.createDirectory(at: folder(), withIntermediateDirectories: true)
            try Data(text.utf8).write(to: url)
            return
        }
        guard let expected = try? String(contentsOf: url, encoding: .utf8) else {
            Issue.record("golden file \(url.path) is missing: run with ALTI_UPDATE_GOLDEN=1 and review it", sourceLocation: sourceLocation)
            return
        }
        #expect(text == expected, "differs from \(name)", sourceLocation: sourceLocation)
    }
}

/// The live display's frame, the plain line, the palette and the rate window: pure functions
/// of a state, checked against golden files.
@Suite struct LiveFrameTests {
    static let hashing = ProgressState(stage: .hashing, done: 7, total: 24, bytesDone: 560_000, bytesTotal: 1_935_119,
                                       rate: 1_200_000)

    /// Mid-upload: 2 large files in flight, 3 retries so far and one failure.
    static var uploading: ProgressState {
        var s = ProgressState(stage: .uploading, done: 9, total: 24, bytesDone: 812_345, bytesTotal: 1_935_119, rate: 203_400)
        s.retries = 3
        s.failed = 1
        s.inFlight = [
            .init(name: "flight1/DJI_0010.JPG", size: 81_200, sent: 20_000),
            .init(name: "flight2/DJI_0013.JPG", size: 4_800_000_000, sent: 1_250_000_000),
        ]
        return s
    }

    /// Five uploads: the three largest are listed, then "+2 more".
    static var crowded: ProgressState {
        var s = uploading
        s.retries = 0
        s.failed = 0
        s.inFlight += [
            .init(name: "flight2/DJI_0014.JPG", size: 90_000, sent: 90_000),
            .init(name: "flight2/DJI_0015.JPG", size: 70_000, sent: 0),
            .init(name: "flight2/DJI_0016.JPG", size: 60_000, sent: 30_000),
        ]
        return s
    }

    static let waiting: ProgressState = {
        var s = ProgressState(stage: .waiting, total: 24)
        s.answered = 20
        return s
    }()

    static let colour = Palette(enabled: true)

    /// Start (hashing, one line), mid-upload (4 lines), crowded (6), waiting (2), then the run is
    /// done: the frame is erased before the summary. Every redraw goes up to the frame's first
    /// line, rewrites each line after `\r ESC[K`, and clears what a longer frame left below.
    @Test func framesOfARunAreGolden() throws {
        var bytes = ""
        var onScreen = 0
        for state in [Self.hashing, Self.uploading, Self.crowded, Self.waiting] {
            let lines = LiveFrame.lines(state).map { $0.rendered(width: 79, palette: .plain) }
            bytes += ProgressReporter.frame(lines, replacing: onScreen) + "\n--- frame drawn ---\n"
            onScreen = lines.count
        }
        bytes += ProgressReporter.erase(onScreen) + "alti sync: ...summary...\n"
        try Golden.check("live-frames.txt", bytes)
        // The escape sequences themselves, not only the file: up by (previous lines - 1).
        #expect(ProgressReporter.frame(["a", "b"], replacing: 4) == "\u{1B}[3A\r\u{1B}[Ka\n\r\u{1B}[Kb\u{1B}[J")
        #expect(ProgressReporter.frame(["a"], replacing: 0) == "\r\u{1B}[Ka\u{1B}[J")
        #expect(ProgressReporter.erase(3) == "\u{1B}[2A\r\u{1B}[J")
        #expect(ProgressReporter.erase(0) == "")
    }

    @Test func framesInColourAreGolden() throws {
        let text = [Self.uploading, Self.waiting].map { state in
            LiveFrame.lines(state).map { $0.rendered(width: 200, palette: Self.colour) }.joined(separator: "\n")
        }.joined(separator: "\n---\n") + "\n"
        try Golden.check("live-frames-colour.txt", text)
        #expect(text.contains("\u{1B}[31mfailed 1\u{1B}[0m"))
        #expect(text.contains("\u{1B}[33mretries 3\u{1B}[0m"))
        #expect(text.contains("\u{1B}[33mwaiting\u{1B}[0m"))
    }

    /// Not a terminal: one plain line per period, no escape codes, for each stage.
    @Test func plainLinesAreGolden() throws {
        let lines = [Self.hashing, ProgressState(stage: .checking, total: 24), Self.uploading, Self.crowded, Self.waiting]
            .map(LiveFrame.plainLine)
        try Golden.check("plain-lines.txt", lines.joined(separator: "\n") + "\n")
        #expect(!lines.joined().contains("\u{1B}"))
    }

    /// A line never wraps: cut to the width with `…`, colour codes not counted.
    @Test func linesAreCutToTheTerminalWidth() {
        let line = LiveFrame.headline(Self.uploading)
        let plain = line.rendered(width: 30, palette: .plain)
        #expect(plain.count == 30 && plain.hasSuffix("…"), "\(plain)")
        let coloured = line.rendered(width: 30, palette: Self.colour)
        #expect(coloured.replacingOccurrences(of: "\u{1B}[36m", with: "").replacingOccurrences(of: "\u{1B}[0m", with: "") == plain)
        #expect(line.rendered(width: 500, palette: .plain) == line.plain)
    }

    @Test func colourOnlyOnATerminalAndNeverWithNO_COLORorDumb() {
        #expect(Palette.forStream(isTerminal: true, environment: ["TERM": "xterm"]).enabled)
        #expect(!Palette.forStream(isTerminal: false, environment: ["TERM": "xterm"]).enabled)
        #expect(!Palette.forStream(isTerminal: true, environment: ["TERM": "xterm", "NO_COLOR": "1"]).enabled)
        // no-color.org: an empty NO_COLOR does not count.
        #expect(Palette.forStream(isTerminal: true, environment: ["TERM": "xterm", "NO_COLOR": ""]).enabled)
        #expect(!Palette.forStream(isTerminal: true, environment: ["TERM": "dumb"]).enabled)
        #expect(Palette.plain.paint("Ready", .good) == "Ready")
        #expect(Self.colour.paint("Ready", .good) == "\u{1B}[32mReady\u{1B}[0m")
    }

    /// The rate is the last 5 seconds', not the average since the start: after a fast start and
    /// a stall, it reads the stall.
    @Test func theRateIsAMovingWindow() throws {
        var window = RateWindow(span: 5)
        #expect(window.rate == nil)
        window.add(at: 0, bytes: 0)
        window.add(at: 0.25, bytes: 250_000)
        #expect(window.rate == nil)  // under half a second: not known yet
        for t in stride(from: 0.5, through: 10, by: 0.5) { window.add(at: t, bytes: t <= 5 ? Int64(t * 1_000_000) : 5_000_000) }
        // Bytes 0..5 s at 1 MB/s, then nothing for 5 s: the average since the start is 500 kB/s.
        #expect(try #require(window.rate) <= 100_000)
        window.add(at: 11, bytes: 6_000_000)
        let recovering = try #require(window.rate)
        #expect(recovering > 150_000 && recovering < 300_000, "\(recovering)")
    }

    /// The model folds events and metrics: uploads in flight and retries come from the metrics,
    /// stores and failures from the recorder's events.
    @Test func theModelFoldsEventsAndMetrics() throws {
        let clock = TestClock()
        let model = ProgressModel(clock: { clock.now })
        #expect(model.snapshot() == nil)  // nothing scanned yet
        model.scanned(ScanProgress(root: "/r", filesDone: 3, filesTotal: 24, bytesDone: 300, bytesTotal: 2400))
        #expect(model.snapshot()?.stage == .hashing)
        let metrics = SyncMetrics()
        model.follow(metrics)
        model.apply(.phase(.uploading))
        model.apply(.planned(images: 2, bytes: 2000))
        let a = metrics.beginTransfer(name: "a.jpg", size: 1200)
        let b = metrics.beginTransfer(name: "b.jpg", size: 800)
        metrics.addBytes(600, transfer: a)
        metrics.addBytes(100, transfer: b)
        metrics.countTransferRetry(RetryNote(what: "upload of b.jpg", attempt: 2, delay: .milliseconds(20), reason: "HTTP 503"))
        clock.now = 1
        var state = try #require(model.snapshot())
        #expect(state.stage == .uploading && state.bytesDone == 700 && state.retries == 1)
        #expect(Set(state.inFlight.map(\.name)) == ["a.jpg", "b.jpg"])
        metrics.addBytes(-100, transfer: b)  // a failed attempt's bytes are backed out
        metrics.endTransfer(a)
        model.apply(.recorded(JournalEvent(.stored, sha1: "a", imageID: "1")))
        model.apply(.recorded(JournalEvent(.failed, sha1: "b", reason: "x")))
        clock.now = 2
        state = try #require(model.snapshot())
        #expect(state.done == 1 && state.failed == 1 && state.inFlight.map(\.name) == ["b.jpg"] && state.inFlight[0].sent == 0)
        model.apply(.phase(.done))
        #expect(model.snapshot() == nil)
    }

    /// Events: `v`, `type`, `time` (RFC 3339 UTC) first; a retry's reason loses any query string.
    @Test func anEventIsOneLineWithVersionTypeAndTime() throws {
        let time = Date(timeIntervalSince1970: 1_800_000_000.5)
        let line = EventLog.line(type: "phase", time: time, fields: ["phase": .string("uploading")])
        #expect(line == "{\"v\":1,\"type\":\"phase\",\"time\":\"2027-01-15T08:00:00.500Z\",\"phase\":\"uploading\"}\n")
        let captured = CapturedText()
        let log = EventLog(write: { captured.append($0) }, now: { time })
        log.retry(RetryNote(what: "upload of a.jpg", attempt: 2, delay: .milliseconds(1500),
                            reason: "HTTP 503 from PUT http://h/b/a.jpg?X-Amz-Signature=abc123&X-Amz-Credential=K"))
        #expect(captured.text == "{\"v\":1,\"type\":\"retry\",\"time\":\"2027-01-15T08:00:00.500Z\",\"attempt\":2,\"delaySeconds\":1.5,\"reason\":\"HTTP 503 from PUT http://h/b/a.jpg\",\"what\":\"upload of a.jpg\"}\n")
    }

    /// The reporter's writes: each one a whole frame (every line of it), a message erases the
    /// frame in the same write, and `stop` leaves nothing on screen; never more than 4 frames a
    /// second (an upper bound on the redraws, from the time the loop really ran).
    @Test func eachFrameIsOneWriteAndMessagesEraseItFirst() async throws {
        let writes = WriteLog()
        let model = ProgressModel()
        let metrics = SyncMetrics()
        model.follow(metrics)
        model.apply(.phase(.uploading))
        model.apply(.planned(images: 24, bytes: 1_935_119))
        _ = metrics.beginTransfer(name: "flight1/DJI_0001.JPG", size: 77_283)
        _ = metrics.beginTransfer(name: "flight1/DJI_0002.JPG", size: 79_530)
        let reporter = ProgressReporter(mode: .live(width: 80), palette: .plain, write: { writes.append($0) }, events: nil,
                                        model: model)
        let started = Date()
        reporter.start()
        // Waits (on a loaded machine, as long as it takes, up to 20 s) for `n` frames among the
        // writes from index `from` on.
        func awaitFrames(_ n: Int, from: Int = 0) async throws {
            let deadline = Date().addingTimeInterval(20)
            while writes.all.dropFirst(from).filter({ $0.hasSuffix("\u{1B}[J") && $0.contains("uploading") }).count < n,
                  Date() < deadline {
                try await Task.sleep(for: .milliseconds(20))
            }
        }
        try await awaitFrames(2)
        reporter.message("\nalti: Ctrl-C: stopping\n")
        let messageIndex = try #require(writes.all.lastIndex { $0.hasSuffix("alti: Ctrl-C: stopping\n") })
        try await awaitFrames(1, from: messageIndex + 1)
        await reporter.stop()
        let seconds = Date().timeIntervalSince(started)
        let chunks = writes.all
        let frames = chunks.filter { $0.hasSuffix("\u{1B}[J") && $0.contains("uploading") }
        #expect(frames.count >= 3, "\(chunks)")
        #expect(Double(frames.count) <= seconds * 4 + 1, "\(frames.count) frames in \(seconds) s")
        for frame in frames {
            // All four lines of the frame in the one write: headline, counters, 2 uploads.
            #expect(frame.components(separatedBy: "\r\u{1B}[K").count - 1 == 4, "\(frame.debugDescription)")
            #expect(frame.contains("  ↑ 0 bytes of 79.5 KB (0 %) flight1/DJI_0002.JPG"))
        }
        // The message: the 4-line frame erased (up 3, clear) and the text, in one write.
        #expect(chunks.contains("\u{1B}[3A\r\u{1B}[J\nalti: Ctrl-C: stopping\n"), "\(chunks)")
        // Redrawn after the message, then erased by stop: the last write is an erase.
        #expect(chunks.last == "\u{1B}[3A\r\u{1B}[J", "\(chunks.last.debugDescription)")
    }

    /// The sync summary's state words in colour, the verbose image lines: golden.
    @Test func summaryTextAndVerboseLinesAreGolden() throws {
        var report = SyncReport()
        report.total = 4
        report.ready = ["a", "b"]
        report.invalid = ["c": ["checksum mismatch"]]
        report.failed = ["d": "upload of d.jpg failed after 6 tries (HTTP 503); run again to resume"]
        var summary = SyncSummary(endpoint: "http://127.0.0.1:8082", project: nil, cloud: "S3", bucket: "HongKong", sources: [],
                                  manifests: ["/s/.alti/manifest.json"], report: report,
                                  pathsBySHA1: ["a": "a.jpg", "b": "b.jpg", "c": "c.jpg", "d": "d.jpg"],
                                  metrics: SyncMetrics.Snapshot(), dryRun: false, waited: true, offlinePlan: false, seconds: 2)
        summary.serverIDs = ["a": "id-a", "b": "id-b", "c": "id-c"]
        summary.sizesBySHA1 = ["a": 10, "b": 20, "c": 30, "d": 40]
        let results = SyncRenderer.imageResults(summary)
        #expect(results.map(\.state) == ["Ready", "Ready", "Invalid", "failed"])
        #expect(results.map(\.serverID) == ["id-a", "id-b", "id-c", nil])
        let colour = SyncRenderer.text(summary, palette: Self.colour)
        try Golden.check("sync-summary-colour.txt", colour)
        try Golden.check("sync-summary-plain.txt", SyncRenderer.text(summary))
        #expect(colour.contains("\u{1B}[32mReady 2\u{1B}[0m") && colour.contains("\u{1B}[31mInvalid 1\u{1B}[0m"))
        #expect(!SyncRenderer.text(summary).contains("\u{1B}"))
    }
}

final class CapturedText: @unchecked Sendable {
    private let lock = NSLock()
    private var value = ""
    func append(_ s: String) { lock.withLock { value += s } }
    var text: String { lock.withLock { value } }
}

final class TestClock: @unchecked Sendable {
    private let lock = NSLock()
    private var value = 0.0
    var now: Double {
        get { lock.withLock { value } }
        set { lock.withLock { value = newValue } }
    }
}

final class WriteLog: @unchecked Sendable {
    private let lock = NSLock()
    private var chunks: [String] = []
    func append(_ s: String) { lock.withLock { chunks.append(s) } }
    var all: [String] { lock.withLock { chunks } }
}
