import ArgumentParser

/// How a command prints its result.
enum OutputFormat: String, ExpressibleByArgument, CaseIterable, Sendable {
    /// A summary for people.
    case text
    /// One JSON object at the end, for scripts.
    case json
}

/// `--format text|json` (and `--json`, its short form), shared by every command that reports.
struct OutputOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("Output: text (default) or json (one object at the end).", valueName: "format"))
    var format: OutputFormat = .text

    @Flag(name: .long, help: "Same as --format json.")
    var json = false

    var resolved: OutputFormat { json ? .json : format }
}

/// How many files are hashed at once (`scan`, and the scan step of `sync`).
struct HashingOptions: ParsableArguments {
    @Option(name: .customLong("hash-jobs"), help: ArgumentHelp("Files hashed in parallel (default: 2 per core).", valueName: "n"))
    var hashJobs: Int?

    func validate() throws {
        if let hashJobs, hashJobs < 1 { throw ValidationError("--hash-jobs must be at least 1") }
    }
}

/// How uploads go out (`sync`).
struct TransferOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("Parallel uploads (default 4: one uplink gains nothing from more streams).", valueName: "n"))
    var transfers: Int?

    /// The first name of --transfers, kept so existing scripts keep working.
    @Option(name: .customLong("jobs"), help: .hidden)
    var jobs: Int?

    var resolved: Int { transfers ?? jobs ?? 4 }

    func validate() throws {
        if transfers != nil, jobs != nil { throw ValidationError("--jobs is the old name of --transfers: give one of them") }
        if resolved < 1 || resolved > 64 { throw ValidationError("--transfers must be between 1 and 64") }
    }
}
