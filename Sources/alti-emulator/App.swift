import AltiEmulator
import ArgumentParser
import Foundation

/// `alti-emulator`: a local, strict Altizure-compatible server (GraphQL + S3/OSS-style storage).
@main
struct AltiEmulatorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "alti-emulator",
        abstract: "A local Altizure-compatible server, as strict as the real one.",
        discussion: """
            Serves POST /graphql, pre-signed S3 PUTs under /s3/<bucket>/..., OSS PUTs under \
            /<oss-bucket>/<pid>/..., and test controls under /_emulator/ (stats, requests, faults, reset). \
            Prints "alti-emulator listening on http://HOST:PORT" when ready; SIGINT/SIGTERM stop it \
            gracefully. Defaults: key alti-demo-key, token alti-demo-token, project \
            5e8f2a6b1c9d4e3f2a1b0c9d ("Sample survey"). See docs/EMULATOR.md.
            """)

    @Option(help: "Address to bind (loopback by default).")
    var host = "127.0.0.1"
    @Option(help: "TCP port; 0 picks a free port.")
    var port = 0
    @Option(help: "Write the bound port to this file once listening.")
    var portFile: String?
    @Option(help: "App key every request must send in the `key` header.")
    var key = "alti-demo-key"
    @Option(help: "User token project/image operations must send in the `altitoken` header.")
    var token = "alti-demo-token"
    @Option(help: ArgumentHelp(
        "Add a project: a 24-hex-character id, optionally =NAME (repeatable). The sample project always exists.",
        valueName: "ID[=NAME]"))
    var project: [String] = []
    @Option(help: "Persist projects, images and objects under this directory (stop and resume).")
    var data: String?
    @Option(help: "Seconds between the bytes arriving and the image becoming Ready or Invalid.")
    var processingDelay: Double = 1
    @Option(help: "Lifetime of pre-signed S3 URLs, in seconds.")
    var urlLifetime: Double = 3 * 3600
    @Option(help: "Lifetime of STS credentials, in seconds.")
    var stsLifetime: Double = 3600
    @Option(help: "Seconds after which an image still Pending becomes Invalid.")
    var pendingTimeout: Double = 65 * 60
    @Option(help: "Seconds a reconstruction task stays Pending, and then Processing, before it is Done.")
    var reconstructionPhase: Double = 10
    @Option(help: "OSS bucket name handed out in STS credentials.")
    var ossBucket = "alti-emu-oss"
    @Flag(help: "Print one line per request (no secrets, no query strings).")
    var logRequests = false

    // Faults.
    @Option(help: "Added latency for GraphQL requests, in milliseconds.")
    var graphqlLatency = 0
    @Option(help: "Added latency for storage PUTs, in milliseconds.")
    var putLatency = 0
    @Option(help: "Fraction (0-1) of GraphQL requests answered with --fail-status.")
    var graphqlFailRate: Double = 0
    @Option(help: "Fraction (0-1) of PUTs answered with --fail-status.")
    var putFailRate: Double = 0
    @Option(help: "Status of failed requests: 503 or 500.")
    var failStatus = 503
    @Option(help: "Fraction (0-1) of GraphQL requests whose connection is reset mid-body.")
    var graphqlResetRate: Double = 0
    @Option(help: "Fraction (0-1) of PUTs whose connection is reset mid-body.")
    var putResetRate: Double = 0
    @Option(help: "Fraction (0-1) of PUTs whose body is read at a trickle.")
    var putTrickleRate: Double = 0
    @Option(help: "Trickle speed in bytes per second.")
    var trickleBytesPerSecond = 1024
    @Option(help: "Fraction (0-1) of GraphQL requests never answered.")
    var graphqlHangRate: Double = 0
    @Option(help: "Fraction (0-1) of PUTs never answered.")
    var putHangRate: Double = 0
    @Option(help: "How long an unanswered request is held before the connection is dropped, in seconds.")
    var hangSeconds: Double = 60
    @Option(help: ArgumentHelp("Image name, server filename or id that processing turns Invalid (repeatable).",
                               valueName: "NAME"))
    var forceInvalid: [String] = []
    @Option(help: "Close a connection left idle between requests this many seconds (default: never).")
    var idleTimeout: Double?
    @Flag(help: "Start in ReadOnly system mode.")
    var readOnly = false
    @Option(help: "Seconds added to the OSS storage's clock (either sign); beyond 900 a client with a correct clock is RequestTimeTooSkewed.")
    var ossClockSkew: Double = 0
    @Option(help: "Flip one byte of each of the next N stored objects or parts (the answer's ETag and CRC describe the damaged copy).")
    var corruptNextStores = 0
    @Option(help: "Hand out the next N STS credentials with a secret the OSS storage does not accept.")
    var tamperNextSts = 0
    @Option(help: ArgumentHelp(
        "Cap all upload bodies together (S3 PUT, OSS PutObject and UploadPart) at this many bytes per second, e.g. 200k or 2M (powers of 1000).",
        valueName: "RATE"))
    var bandwidth: String?

    /// `--bandwidth`: a number with an optional k, M or G (powers of 1000); nil when it is none.
    static func bytesPerSecond(_ text: String) -> Int? {
        let multipliers: [Character: Double] = ["k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9]
        var number = Substring(text)
        var multiplier = 1.0
        if let last = number.last, let m = multipliers[last] { multiplier = m; number = number.dropLast() }
        guard let value = Double(number), value.isFinite, value * multiplier >= 1 else { return nil }
        return Int((value * multiplier).rounded())
    }

    func validate() throws {
        for value in project where ProjectSeed(argument: value) == nil {
            throw ValidationError("--project \(value): expected a 24-hex-character id, optionally followed by =NAME")
        }
        guard (0...65535).contains(port) else { throw ValidationError("--port must be between 0 and 65535") }
        if let message = faults.validationError() { throw ValidationError(message) }
        if let bandwidth, Self.bytesPerSecond(bandwidth) == nil {
            throw ValidationError("--bandwidth \(bandwidth) is not a rate: give bytes per second such as 200k or 2M")
        }
        if let idleTimeout, idleTimeout <= 0 { throw ValidationError("--idle-timeout must be more than 0 seconds") }
        for (name, value) in [("--processing-delay", processingDelay), ("--url-lifetime", urlLifetime),
                              ("--sts-lifetime", stsLifetime), ("--pending-timeout", pendingTimeout),
                              ("--reconstruction-phase", reconstructionPhase)] where value < 0 {
            throw ValidationError("\(name) must not be negative")
        }
    }

    var faults: FaultSettings {
        var f = FaultSettings()
        f.graphql.latencyMilliseconds = graphqlLatency
        f.put.latencyMilliseconds = putLatency
        f.graphql.failRate = graphqlFailRate
        f.put.failRate = putFailRate
        f.graphql.failStatus = failStatus
        f.put.failStatus = failStatus
        f.graphql.resetRate = graphqlResetRate
        f.put.resetRate = putResetRate
        f.put.trickleRate = putTrickleRate
        f.put.trickleBytesPerSecond = trickleBytesPerSecond
        f.graphql.trickleBytesPerSecond = trickleBytesPerSecond
        f.graphql.hangRate = graphqlHangRate
        f.put.hangRate = putHangRate
        f.graphql.hangSeconds = hangSeconds
        f.put.hangSeconds = hangSeconds
        f.forceInvalid = forceInvalid
        f.systemMode = readOnly ? .readOnly : .normal
        f.ossClockSkewSeconds = ossClockSkew
        f.corruptNextStores = corruptNextStores
        f.tamperNextSTS = tamperNextSts
        f.bandwidthBytesPerSecond = bandwidth.flatMap(Self.bytesPerSecond) ?? 0
        return f
    }

    func run() async throws {
        var config = EmulatorConfiguration()
        config.host = host
        config.port = port
        config.portFile = portFile
        config.key = key
        config.token = token
        config.projects = [.sample] + project.compactMap(ProjectSeed.init(argument:))
        config.dataDirectory = data
        config.processingDelay = processingDelay
        config.urlLifetime = urlLifetime
        config.stsLifetime = stsLifetime
        config.pendingTimeout = pendingTimeout
        config.reconstructionPhase = reconstructionPhase
        config.ossBucket = ossBucket
        config.logRequests = logRequests
        config.faults = faults
        config.idleTimeout = idleTimeout
        let emulator = try await Emulator.start(config, handleSignals: true)
        FileHandle.standardOutput.write(Data("alti-emulator listening on \(emulator.baseURL)\n".utf8))
        try await emulator.waitUntilStopped()
    }
}
