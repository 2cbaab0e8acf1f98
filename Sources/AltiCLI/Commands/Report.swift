import AltiCore
import ArgumentParser
import Foundation

/// `alti report [PATH...] [--csv | --json | --html FILE]`: every manifest entry with its state,
/// error, checksum, server id, size, cloud, capture time and position, read offline through
/// `ReportService`; printed as a table, CSV or JSON, or written as one self-contained HTML page.
struct Report: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Per-file report from the manifests: state, error, checksum, server id, size, capture time, GPS.",
        usage: """
            alti report [<path> ...] [--csv | --json | --html <file>] [--manifest <file>]
            """,
        discussion: """
            Reads the manifests only, as status does: no scan, no network, nothing written but the \
            --html FILE. One row per manifest entry (images and files that are not usable images). \
            Default: a text table and a summary line. --csv: RFC 4180, a header row, CRLF line ends; \
            the first columns are the official CLI's report (file, state, error). --json: one object \
            (summary, flights, rows). --html FILE: one self-contained page (works offline) with the \
            summary, a map of the images' GPS positions coloured by state with one marker shape and \
            track per flight, and the table. Exit codes: 0 the report was written; 64 bad flags; 65 \
            corrupt manifest or journal; 66 a PATH is missing or has no manifest; 73 the --html FILE \
            cannot be written.
            """)

    @Argument(help: ArgumentHelp("Folders or archives (default: the current folder).", valueName: "path"))
    var paths: [String] = []

    @Option(name: .long, help: ArgumentHelp("Manifest file to read instead of PATH/.alti/manifest.json (one PATH only).", valueName: "file"))
    var manifest: String?

    @Flag(name: .long, help: "Print CSV (RFC 4180, CRLF line ends) instead of the table.")
    var csv = false

    @Flag(name: .long, help: "Print one JSON object (summary, flights, rows) instead of the table.")
    var json = false

    @Option(name: .long, help: ArgumentHelp("Write one self-contained HTML page with the coverage map to this file.", valueName: "file"))
    var html: String?

    func validate() throws {
        let chosen = [csv ? "--csv" : nil, json ? "--json" : nil, html != nil ? "--html" : nil].compactMap { $0 }
        if chosen.count > 1 {
            throw ValidationError("\(chosen.joined(separator: " and ")) are different outputs: give one of them")
        }
        if manifest != nil, paths.count > 1 {
            throw ValidationError("--manifest names one file, so it takes exactly one PATH (got \(paths.count))")
        }
        if let html, html.isEmpty { throw ValidationError("--html needs a file name to write the page to") }
    }

    func run() async throws {
        let context = CommandContext.current
        let service = ReportService(store: ManifestStore(environment: context.environment))
        let report = try service.read(paths: paths.isEmpty ? ["."] : paths, manifestOverride: manifest,
                                      generatedAt: RFC3339.string(fromNanoseconds: RFC3339.nowNanoseconds()))
        if let html {
            let written = try ReportService.save(ReportHTML.page(report), to: html)
            context.standardOutput("wrote \(written): \(ReportFormat.summaryLine(report))\n")
        } else if csv {
            context.standardOutput(ReportFormat.csv(report))
        } else if json {
            context.standardOutput(try ReportFormat.json(report))
        } else {
            context.standardOutput(ReportFormat.text(report))
        }
    }
}
