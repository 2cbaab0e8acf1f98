import ArgumentParser

/// `--quiet`, `--verbose` and `--events` (scan, sync, status): how much a run says while it
/// works, and whether it says it as NDJSON events on stdout.
struct ReportingOptions: ParsableArguments {
    @Flag(name: [.customShort("q"), .long], help: "Print only errors and the final one-line outcome; no progress.")
    var quiet = false

    @Flag(name: [.customShort("v"), .long], help: "Also print one line per image result and per retry.")
    var verbose = false

    @Flag(name: .long, help: "Print newline-delimited JSON events on stdout (start, progress, image, retry, phase, summary, error; manifests/events.schema.json) instead of the text summary.")
    var events = false

    func validate() throws {
        if quiet, verbose { throw ValidationError("--quiet and --verbose exclude each other: give one of them") }
    }

    /// `--events` with `--json` is refused: the events' last object (`summary`) already holds the
    /// `--json` report, and two JSON documents on one stdout would break both readers.
    func check(with output: OutputOptions) throws {
        if events, output.resolved == .json {
            throw ValidationError("--events and --json exclude each other: --events ends with a summary event that holds the --json report")
        }
    }
}
