import AltiCore
import ArgumentParser
import Foundation

/// How one run of scan, sync or status talks while it works and when it ends: the progress
/// display (live frame, plain lines or nothing), the `--events` log, `--quiet`/`--verbose`, and
/// the palette of the summary. Built once from the context and the flags; every stderr line
/// during the run goes through `notice`, so none lands inside a live frame.
struct RunOutput: Sendable {
    let events: EventLog?
    let model: ProgressModel
    let reporter: ProgressReporter
    let quiet: Bool
    let verbose: Bool
    /// Colour for the text summary on stdout.
    let palette: Palette
    private let standardOutput: @Sendable (String) -> Void

    /// `ALTI_PROGRESS_INTERVAL` (seconds) shortens the plain line's period for tests.
    static let defaultPlainInterval = 5.0

    init(context: CommandContext, format: OutputFormat, reporting: ReportingOptions) {
        events = reporting.events ? EventLog(write: context.standardOutput) : nil
        quiet = reporting.quiet
        verbose = reporting.verbose && !reporting.events
        palette = reporting.events || format == .json ? .plain
            : Palette.forStream(isTerminal: context.standardOutputIsTerminal, environment: context.environment)
        standardOutput = context.standardOutput
        let mode: ProgressMode
        if reporting.quiet || reporting.events || format == .json {
            mode = .none
        } else if context.standardErrorIsTerminal, context.environment["TERM"] != "dumb" {
            mode = .live(width: ProgressReporter.terminalWidth())
        } else {
            let every = context.environment["ALTI_PROGRESS_INTERVAL"].flatMap(Double.init).flatMap { $0 > 0 ? $0 : nil }
            mode = .plain(every: every ?? Self.defaultPlainInterval)
        }
        model = ProgressModel()
        reporter = ProgressReporter(
            mode: mode, palette: Palette.forStream(isTerminal: context.standardErrorIsTerminal, environment: context.environment),
            write: context.standardError, events: events, model: model)
    }

    /// A line (or lines) for stderr while the run works.
    func notice(_ text: String) { reporter.message(text) }

    /// One line per retry with `--verbose`, one `retry` event with `--events`.
    func follow(retriesOf metrics: SyncMetrics) {
        model.follow(metrics)
        guard verbose || events != nil else { return }
        metrics.observeRetries { [self] note in
            events?.retry(note)
            if verbose {
                notice("alti: retry: \(note.what), try \(note.attempt) in \(String(format: "%.1f", note.delaySeconds)) s: \(note.reason)\n")
            }
        }
    }

    /// The run stopped on an error: the display is erased, and `--events` gets an `error` object
    /// (the line itself goes to stderr as usual). A plain `ExitCode` (a summary was printed) is
    /// not an error event: the summary carries the exit code.
    func failed(_ error: any Error) async {
        await reporter.stop()
        guard let events, !(error is ExitCode) else { return }
        let outcome = AltiCommand.outcome(of: error)
        let message = (error as? AltiError)?.message ?? outcome.message.map { $0.hasPrefix("alti: ") ? String($0.dropFirst(6)) : $0 } ?? ""
        events.error(message: message.split(separator: "\n").first.map(String.init) ?? "", exitCode: outcome.code)
    }

    /// The result on stdout: the text summary (or only its last line with `--quiet`), or the
    /// image events and the summary event with `--events`, or `--json`'s object.
    func finish(command: String, text: String, outcome: String, json: @autoclosure () throws -> String,
                format: OutputFormat, images: @autoclosure () -> [ImageResult], exitCode: Int32?) rethrows {
        // Made only when printed: one result per file is a good part of a re-scan of 100,000.
        if let events {
            for image in images() {
                events.image(path: image.path, sha1: image.sha1, size: image.size, state: image.state,
                             serverID: image.serverID, error: image.error)
            }
            events.summary(command: command, reportJSON: try json(), exitCode: exitCode ?? 0)
            return
        }
        if format == .json {
            standardOutput(try json())
            return
        }
        if quiet {
            standardOutput(outcome + "\n")
            return
        }
        if verbose, case let images = images(), !images.isEmpty {
            standardOutput(images.map { "  \(palette.paint($0.state, Palette.style(ofState: $0.state))) \($0.path)\($0.error.map { ": \($0)" } ?? "")" }
                .joined(separator: "\n") + "\n")
        }
        standardOutput(text)
    }
}

/// One image's result, for `image` events and `--verbose` lines.
struct ImageResult: Sendable, Equatable {
    var path: String
    var sha1: String?
    var size: Int64
    var state: String
    var serverID: String?
    var error: String?
}

extension Palette {
    /// The colour of a state word: Ready green, Invalid and failed red, what is still under way yellow.
    static func style(ofState state: String) -> Style {
        switch state.lowercased() {
        case "ready", "recorded": .good
        case "invalid", "failed", "empty", "truncated", "notanimage", "unreadable": .bad
        default: .waiting
        }
    }
}
