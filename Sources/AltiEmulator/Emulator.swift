import Foundation
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle

/// Starts emulators. `alti-emulator` and `withEmulator` (AltiTestSupport) both come through here.
public enum Emulator {
    /// Builds the application, binds it (port 0 picks a free port), and returns once it listens.
    ///
    /// - Parameters:
    ///   - configuration: flags as fields; see `EmulatorConfiguration`.
    ///   - clock: "now" for expiry and the 65-minute rule; tests inject `ManualEmulatorClock`.
    ///   - handleSignals: shut down gracefully on SIGINT and SIGTERM (the executable sets this).
    public static func start(_ configuration: EmulatorConfiguration = .init(),
                             clock: any EmulatorClock = SystemEmulatorClock(),
                             handleSignals: Bool = false) async throws -> RunningEmulator {
        let state = try EmulatorState(configuration: configuration, clock: clock)
        let schema = try EmulatorSchema.build(resolvers: Resolvers.all())
        let responder = EmulatorResponder(state: state, schema: schema, signer: AltiSigningURLSigner())
        var logger = Logger(label: "alti-emulator")
        logger.logLevel = .warning

        let (ports, portContinuation) = AsyncStream<Int>.makeStream()
        let app = Application(
            responder: responder,
            server: .http1(configuration: .init(
                additionalChannelHandlers: [StorageDateHeaderHandler(), ConnectionCountingHandler(state.connections)],
                idleTimeout: configuration.idleTimeout.map { .milliseconds(Int64($0 * 1000)) })),
            configuration: .init(address: .hostname(configuration.host, port: configuration.port)),
            onServerRunning: { channel in
                portContinuation.yield(channel.localAddress?.port ?? 0)
                portContinuation.finish()
            },
            logger: logger)
        let marker = StoppingMarker(state: state)
        let group = ServiceGroup(configuration: .init(
            services: [
                .init(service: app),
                .init(service: marker, successTerminationBehavior: .gracefullyShutdownGroup),
            ],
            gracefulShutdownSignals: handleSignals ? [.sigterm, .sigint] : [],
            logger: logger))
        let task = Task<Void, any Error> {
            defer { portContinuation.finish() }
            try await group.run()
        }
        var bound: Int?
        for await port in ports {
            bound = port
            break
        }
        guard let port = bound, port > 0 else {
            await group.triggerGracefulShutdown()
            if case .failure(let error) = await task.result { throw error }
            throw EmulatorError.notListening(configuration.host, configuration.port)
        }
        let baseURL = "http://\(configuration.host):\(port)"
        await state.setBaseURL(baseURL)
        await state.resumeProcessing()
        if let portFile = configuration.portFile {
            try "\(port)\n".write(toFile: portFile, atomically: true, encoding: .utf8)
        }
        return RunningEmulator(port: port, baseURL: baseURL, state: state, group: group, task: task)
    }
}

/// Why an emulator could not start.
public enum EmulatorError: Error, CustomStringConvertible {
    case notListening(String, Int)

    public var description: String {
        switch self {
        case .notListening(let host, let port): return "alti-emulator: could not listen on \(host):\(port)"
        }
    }
}

/// A running emulator: where it listens, its state, and how to stop it.
public final class RunningEmulator: Sendable {
    /// The bound TCP port (the real one when 0 was asked for).
    public let port: Int
    /// `http://127.0.0.1:PORT` (no trailing slash). GraphQL is at `baseURL + "/graphql"`.
    public let baseURL: String
    /// The emulator's state: counters, images, request log, faults.
    public let state: EmulatorState
    private let group: ServiceGroup
    private let task: Task<Void, any Error>

    init(port: Int, baseURL: String, state: EmulatorState, group: ServiceGroup, task: Task<Void, any Error>) {
        self.port = port
        self.baseURL = baseURL
        self.state = state
        self.group = group
        self.task = task
    }

    /// `baseURL + "/graphql"`.
    public var graphQLURL: String { baseURL + "/graphql" }

    /// The configuration it was started with.
    public var configuration: EmulatorConfiguration { state.configuration }

    /// Replaces all fault switches (same as `POST /_emulator/faults`).
    public func setFaults(_ faults: FaultSettings) async { await state.setFaults(faults) }

    /// Changes fault switches in place, e.g. `await emu.updateFaults { $0.put.failNext = 2 }`.
    public func updateFaults(_ change: @Sendable (inout FaultSettings) -> Void) async {
        await state.updateFaults(change)
    }

    /// Counters and images (same as `GET /_emulator/stats`).
    public func stats() async -> EmulatorStats { await state.stats() }

    /// The request log (same as `GET /_emulator/requests`).
    public func requestLog() async -> [RequestLogEntry] { await state.requestLog() }

    /// Graceful shutdown: stops accepting, ends hanging requests, waits for the server to finish.
    public func stop() async {
        await state.markStopping()
        await group.triggerGracefulShutdown()
        _ = await task.result
    }

    /// Waits until the emulator has stopped (after a signal or `stop()`).
    public func waitUntilStopped() async throws {
        try await task.value
    }
}

/// Marks the state as stopping as soon as graceful shutdown begins, so hanging requests end
/// and the server can drain.
private struct StoppingMarker: Service {
    let state: EmulatorState

    func run() async throws {
        try? await gracefulShutdown()
        await state.markStopping()
    }
}
