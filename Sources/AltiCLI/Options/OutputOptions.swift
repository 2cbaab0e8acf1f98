import AltiCore
import AltiStorage
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

    @Flag(name: .customLong("no-archives"), help: "Do not read the archives (zip, tar, 7z) found inside folders; an archive given as PATH is always read.")
    var noArchives = false

    func validate() throws {
        if let hashJobs, hashJobs < 1 { throw ValidationError("--hash-jobs must be at least 1") }
    }
}

/// OSS uploads (`--cloud oss`).
struct OSSFlags: ParsableArguments {
    @Option(name: .customLong("oss-signature"), help: ArgumentHelp("OSS request signature: v4, or v1 for older buckets.", valueName: "version"))
    var signature: OSSOptions.Signature = .v4

    @Option(name: .customLong("multipart-threshold"), help: ArgumentHelp("Images larger than this many MiB go up in parts, resumable part by part.", valueName: "MiB"))
    var multipartThreshold: Double = 32

    @Option(name: .customLong("part-size"), help: ArgumentHelp("Size of each part of a multipart upload in MiB (at least 0.1).", valueName: "MiB"))
    var partSize: Double = 8

    var options: OSSOptions {
        var options = OSSOptions()
        options.signature = signature
        options.multipartThreshold = Int64(multipartThreshold * 1_048_576)
        options.partSize = Int64(partSize * 1_048_576)
        return options
    }

    func validate() throws {
        if multipartThreshold < 0 { throw ValidationError("--multipart-threshold must be 0 or more MiB") }
        // OSS refuses parts under 100 KiB (EntityTooSmall) but the last, and more than 10,000 parts.
        if partSize < 100.0 / 1024 { throw ValidationError("--part-size must be at least 0.1 MiB (OSS refuses smaller parts)") }
        if partSize > 5 * 1024 { throw ValidationError("--part-size must be at most 5120 MiB") }
    }
}

/// How uploads go out (`sync`).
struct TransferOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp(
        "Parallel uploads: auto (the default: starts at 2, adds uploads while throughput grows, up to 16, halves on timeouts, 5xx and stalls) or a fixed count from 1 to 64.",
        valueName: "auto|n"))
    var transfers: TransferCount?

    /// The first name of --transfers, kept so existing scripts keep working.
    @Option(name: .customLong("jobs"), help: .hidden)
    var jobs: TransferCount?

    @Option(name: .long, help: ArgumentHelp(
        "Cap the upload rate of all parallel uploads together, e.g. 500k, 2M (bytes per second, powers of 1000) or 1.5MiB (powers of 1024), so a shared link stays usable.",
        valueName: "rate"))
    var bwlimit: String?

    var resolved: TransferCount { transfers ?? jobs ?? .automatic }

    /// `--bwlimit` in bytes per second, nil when not given (checked in `validate`).
    var uploadRate: Int64? { bwlimit.flatMap(ByteRate.parse) }

    func validate() throws {
        if transfers != nil, jobs != nil { throw ValidationError("--jobs is the old name of --transfers: give one of them") }
        if case .fixed(let count) = resolved, count < 1 || count > 64 {
            throw ValidationError("--transfers must be auto or a number between 1 and 64")
        }
        if let bwlimit, uploadRate == nil {
            throw ValidationError("--bwlimit \(bwlimit) is not a rate: give bytes per second such as 500k, 2M or 1.5MiB (k, M, G: powers of 1000; Ki, Mi, Gi: of 1024)")
        }
    }
}

extension OSSOptions.Signature: ExpressibleByArgument {}

extension TransferCount: ExpressibleByArgument {
    /// `auto`, or a count (range checked in `TransferOptions.validate`).
    public init?(argument: String) {
        if argument.lowercased() == "auto" {
            self = .automatic
        } else if let count = Int(argument) {
            self = .fixed(count)
        } else {
            return nil
        }
    }

    public var defaultValueDescription: String {
        switch self {
        case .fixed(let count): "\(count)"
        case .adaptive: "auto"
        }
    }
}
