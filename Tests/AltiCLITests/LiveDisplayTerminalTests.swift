import AltiEmulator
import AltiTestSupport
import Foundation
import Testing

private let esc = "\u{1B}"

/// The live display as a user sees it: the built `alti sync` runs inside a pseudo-terminal
/// (`script -qefc CMD /dev/null`, util-linux) against the in-process emulator, uploads slowed by
/// `--bwlimit` so that several frames are drawn, and the bytes the terminal received are checked.
/// The same command with stderr on a pipe must hold no escape code at all.
@Suite(.serialized) struct LiveDisplayTerminalTests {
    static func quoted(_ arguments: [String]) -> String {
        arguments.map { "'" + $0.replacingOccurrences(of: "'", with: "'\\''") + "'" }.joined(separator: " ")
    }

    /// Runs `shellCommand` in a pty; everything written to the terminal (stdout and stderr) is
    /// the result's stdout. The pty has no size (the test has no terminal), so alti uses 80 columns.
    static func inTerminal(_ shellCommand: String, _ env: [String: String]) async throws -> ProcessResult {
        try await runProcessOffPool("/usr/bin/script", ["-qefc", shellCommand, "/dev/null"],
                                    environment: env.merging(["TERM": "xterm"]) { _, new in new })
    }

    static func syncArguments(_ tree: TempTree) throws -> [String] {
        [try Run.altiBinary().path, "sync", tree.path, "--project", SyncEndToEndTests.project, "--transfers", "2",
         "--bwlimit", "400k", "--wait", "30"]
    }

    /// Whether no frame is left on screen before `index`: the last frame line drawn (`\r ESC[K`)
    /// was followed by an erase (`\r ESC[J`).
    static func erased(_ text: String, before index: String.Index) -> Bool {
        let before = text[..<index]
        guard let lastLine = before.range(of: "\r\(esc)[K", options: .backwards) else { return true }
        guard let lastErase = before.range(of: "\r\(esc)[J", options: .backwards) else { return false }
        return lastErase.lowerBound > lastLine.lowerBound
    }

    /// Frames drawn: each ends with ESC[J (clear below).
    static func frames(_ text: String) -> Int { text.components(separatedBy: "\(esc)[J").count - 1 }

    @Test func aSyncInATerminalDrawsFramesInPlaceAndErasesThemBeforeTheSummary() async throws {
        let tree = try SyncEndToEndTests.survey()
        defer { tree.remove() }
        let started = Date()
        let run = try await withEmulator(testEmulatorConfiguration()) { emu in
            try await Self.inTerminal(Self.quoted(try Self.syncArguments(tree)), SyncEndToEndTests.env(emu, ["NO_COLOR": ""]))
        }
        let seconds = Date().timeIntervalSince(started)
        let out = run.stdout
        #expect(run.exitCode == 0, "\(out.suffix(2000))")
        let frames = Self.frames(out)
        print("pty: \(frames) frames in \(String(format: "%.1f", seconds)) s, \(out.utf8.count) bytes")
        // Several frames, never more than 4 a second (plus the first).
        #expect(frames >= 5, "\(frames) frames")
        #expect(Double(frames) <= seconds * 4 + 2, "\(frames) frames in \(seconds) s")
        // The fields of a frame: images and bytes of the total, rate, ETA, retries, failures, and
        // the uploads in flight on lines of their own.
        #expect(out.contains("\r\(esc)[K\(esc)[36muploading\(esc)[0m "))
        #expect(out.contains(" images · ") && out.contains(" of 1.9 MB · ") && out.contains("KB/s · ETA "))
        #expect(out.contains("  retries 0 · failed 0 · 2 in flight") || out.contains("  retries 0 · failed 0 · 1 in flight"))
        #expect(out.range(of: "\r\(esc)\\[K  ↑ [0-9.]+ (KB|bytes) of [0-9.]+ KB \\([0-9]+ %\\) flight[12]/DJI_00[0-9]{2}\\.JPG",
                          options: .regularExpression) != nil)
        // Redraws go back up to the frame's first line.
        #expect(out.range(of: "\(esc)\\[[0-9]+A\r\(esc)\\[K", options: .regularExpression) != nil)
        // The last frame is erased right before the summary, and nothing is drawn after it.
        let summary = try #require(out.range(of: "alti sync: project"))
        #expect(out[..<summary.lowerBound].hasSuffix("\r\(esc)[J"), "\(out[..<summary.lowerBound].suffix(200).debugDescription)")
        #expect(Self.erased(out, before: summary.lowerBound))
        #expect(!out[summary.lowerBound...].contains("\(esc)[K"))
        // Colour on a terminal: the frame's stage word and the summary's Ready.
        #expect(out.contains("\(esc)[32mReady 24\(esc)[0m"))
    }

    @Test func NO_COLORKeepsTheFramesButDropsTheColour() async throws {
        let tree = try SyncEndToEndTests.survey()
        defer { tree.remove() }
        let run = try await withEmulator(testEmulatorConfiguration()) { emu in
            try await Self.inTerminal(Self.quoted(try Self.syncArguments(tree)), SyncEndToEndTests.env(emu, ["NO_COLOR": "1"]))
        }
        let out = run.stdout
        #expect(run.exitCode == 0, "\(out.suffix(2000))")
        #expect(Self.frames(out) >= 5)
        #expect(out.contains("\r\(esc)[Kuploading "))
        // No SGR sequence anywhere (ESC [ digits m).
        #expect(out.range(of: "\(esc)\\[[0-9;]*m", options: .regularExpression) == nil)
        #expect(out.contains("  Ready 24 · Invalid 0"))
    }

    /// Ctrl-C in the middle: the frame is erased before the "stopping" line, and again before the
    /// summary; exit 130.
    @Test func ctrlCErasesTheFrameBeforeItsMessage() async throws {
        let tree = try SyncEndToEndTests.survey()
        defer { tree.remove() }
        // 200 kB/s: about 10 s of uploads, so the signal (after 3 s) comes while they run, even on
        // a loaded machine; if the scan is still going, the stop is the scan's, checked the same way.
        let arguments = try Self.syncArguments(tree).map { $0 == "400k" ? "200k" : $0 }
        let command = "\(Self.quoted(arguments)) & pid=$!; sleep 3; kill -INT $pid; wait $pid"
        let run = try await withEmulator(testEmulatorConfiguration()) { emu in
            try await Self.inTerminal("sh -c \(Self.quoted([command]))", SyncEndToEndTests.env(emu, ["NO_COLOR": "1"]))
        }
        let out = run.stdout
        #expect(run.exitCode == 130, "\(out.suffix(2000))")
        #expect(out.contains("\r\(esc)[J\r\nalti: Ctrl-C: stopping"), "\(out.suffix(3000).debugDescription)")
        // What follows: the summary (interrupted uploads) or the scan's one line; nothing drawn
        // is left on screen before it.
        let end = try #require(out.range(of: "alti sync: project") ?? out.range(of: "alti: interrupted"), "\(out.suffix(2000))")
        #expect(Self.erased(out, before: end.lowerBound))
        #expect(out.contains("Interrupted: ") || out.contains("alti: interrupted"))
    }

    /// stderr on a pipe: plain lines every `ALTI_PROGRESS_INTERVAL` seconds, no escape code on
    /// either stream.
    @Test func onAPipeThereAreOnlyPlainLines() async throws {
        let tree = try SyncEndToEndTests.survey()
        defer { tree.remove() }
        let arguments = try Self.syncArguments(tree)
        let run = try await withEmulator(testEmulatorConfiguration()) { emu in
            try await runProcessOffPool(arguments[0], Array(arguments.dropFirst()),
                                        environment: SyncEndToEndTests.env(emu, ["NO_COLOR": "", "TERM": "xterm",
                                                                                 "ALTI_PROGRESS_INTERVAL": "0.5"]))
        }
        #expect(run.exitCode == 0, "\(run.stderr)")
        #expect(!run.stderr.contains(esc) && !run.stdout.contains(esc))
        let lines = run.stderr.split(separator: "\n").filter { $0.hasPrefix("alti: uploading ") }
        #expect(lines.count >= 3, "\(run.stderr)")
        for line in lines {
            #expect(line.range(of: "^alti: uploading [0-9]+/24 images · .* of 1\\.9 MB · .* · ETA .* · retries 0 · failed 0 · [0-9] in flight$",
                               options: .regularExpression) != nil, "\(line)")
        }
        #expect(run.stdout.contains("  Ready 24 · Invalid 0"))
    }
}
