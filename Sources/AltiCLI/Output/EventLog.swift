import AltiAPI
import AltiCore
import AltiNet
import Foundation

/// `--events`: newline-delimited JSON on stdout, one object per line, each with `v` (the format
/// version), `type` and `time` (RFC 3339 UTC, milliseconds). The format is
/// `manifests/events.schema.json`; a new field is a minor change within `v: 1`, a renamed or
/// removed one bumps `v`. Lines are written whole, one `write` each, in order.
final class EventLog: @unchecked Sendable {
    static let version = 1

    private let write: @Sendable (String) -> Void
    private let now: @Sendable () -> Date
    private let lock = NSLock()

    init(write: @escaping @Sendable (String) -> Void, now: @escaping @Sendable () -> Date = { Date() }) {
        self.write = write
        self.now = now
    }

    /// One event line: `v`, `type` and `time` first, then `fields` in key order.
    static func line(type: String, time: Date, fields: [String: JSONValue]) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let head = "{\"v\":\(version),\"type\":\"\(type)\",\"time\":\"\(timestamp(time))\""
        guard !fields.isEmpty, let data = try? encoder.encode(fields) else { return head + "}\n" }
        // The fields' own object without its opening brace: `{"a":1}` -> `,"a":1}`.
        return head + "," + String(decoding: data.dropFirst(), as: UTF8.self) + "\n"
    }

    /// The journal's own format (milliseconds, `Z`). An `ISO8601DateFormatter` per line made an
    /// ICU formatter each time: 12 % of a 400-image sync's CPU with `--events`.
    static func timestamp(_ date: Date) -> String { RFC3339.string(from: date) }

    func emit(_ type: String, _ fields: [String: JSONValue]) {
        lock.withLock { write(Self.line(type: type, time: now(), fields: fields)) }
    }

    func start(command: String, paths: [String], project: String?) {
        emit("start", ["command": .string(command), "paths": .array(paths.map { .string($0) }),
                       "project": project.map { .string($0) } ?? .null])
    }

    func phase(_ name: String) { emit("phase", ["phase": .string(name)]) }

    func progress(_ s: ProgressState, elapsed: Double) {
        emit("progress", [
            "phase": .string(s.stage.rawValue),
            "imagesDone": .number(Double(s.done)), "imagesTotal": .number(Double(s.total)),
            "bytesDone": .number(Double(s.bytesDone)), "bytesTotal": .number(Double(s.bytesTotal)),
            "bytesPerSecond": s.rate.map { .number($0.rounded()) } ?? .null,
            "etaSeconds": s.etaSeconds.map { .number(Double($0)) } ?? .null,
            "retries": .number(Double(s.retries)), "failed": .number(Double(s.failed)),
            "inFlight": .number(Double(s.inFlight.count)),
            "elapsedSeconds": .number((elapsed * 10).rounded() / 10),
        ])
    }

    func image(path: String, sha1: String?, size: Int64, state: String, serverID: String?, error: String?) {
        emit("image", ["path": .string(path), "sha1": sha1.map { .string($0) } ?? .null, "size": .number(Double(size)),
                       "state": .string(state), "serverId": serverID.map { .string($0) } ?? .null,
                       "error": error.map { .string($0) } ?? .null])
    }

    /// A retry about to happen. The reason is redacted once more here (no query string, so no
    /// signature or token, whatever the caller passed).
    func retry(_ note: RetryNote) {
        emit("retry", ["what": .string(URLRedactor.redactMessage(note.what)), "attempt": .number(Double(note.attempt)),
                       "delaySeconds": .number((note.delaySeconds * 1000).rounded() / 1000),
                       "reason": .string(URLRedactor.redactMessage(note.reason))])
    }

    /// The final figures: `report` is exactly the object `--json` prints.
    func summary(command: String, reportJSON: String, exitCode: Int32) {
        let report = (try? JSONDecoder().decode(JSONValue.self, from: Data(reportJSON.utf8))) ?? .object([:])
        emit("summary", ["command": .string(command), "report": report, "exitCode": .number(Double(exitCode))])
    }

    func error(message: String, exitCode: Int32) {
        emit("error", ["message": .string(message), "exitCode": .number(Double(exitCode))])
    }
}
