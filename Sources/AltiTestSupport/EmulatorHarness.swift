import AltiEmulator
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Starts an emulator in process on 127.0.0.1 (port 0 unless `config.port` says otherwise), runs
/// `body`, and shuts it down (also when `body` throws).
///
///     try await withEmulator { emu in
///         // emu.baseURL, emu.port, emu.state, emu.setFaults(...), emu.stats()
///     }
public func withEmulator<T: Sendable>(
    _ config: EmulatorConfiguration = .init(),
    clock: any EmulatorClock = SystemEmulatorClock(),
    _ body: (RunningEmulator) async throws -> T
) async throws -> T {
    let emulator = try await Emulator.start(config, clock: clock)
    do {
        let result = try await body(emulator)
        await emulator.stop()
        return result
    } catch {
        await emulator.stop()
        throw error
    }
}

/// An emulator configuration for tests: quick processing, otherwise the defaults.
public func testEmulatorConfiguration(processingDelay: TimeInterval = 0.05) -> EmulatorConfiguration {
    var config = EmulatorConfiguration()
    config.processingDelay = processingDelay
    return config
}

/// How a raw request sends its body.
public enum RawBodyFraming: Sendable {
    /// Adds `Content-Length` (unless the headers already have one).
    case contentLength
    /// Sends no length header at all (the body, if any, is still written).
    case none
    /// `Transfer-Encoding: chunked`.
    case chunked
}

/// A response read off the socket.
public struct RawHTTPResponse: Sendable {
    public var status: Int
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]

    public func header(_ name: String) -> String? {
        headers.first { $0.name.lowercased() == name.lowercased() }?.value
    }

    public var text: String { String(decoding: body, as: UTF8.self) }

    /// The body as a JSON object (nil if it is not one).
    public var json: [String: Any]? {
        (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any]
    }

    /// The `<Code>` of an S3/OSS XML error body.
    public var xmlCode: String? {
        guard let start = text.range(of: "<Code>"), let end = text.range(of: "</Code>") else { return nil }
        return String(text[start.upperBound..<end.lowerBound])
    }
}

/// Why a raw request got no response.
public enum RawHTTPError: Error, CustomStringConvertible, Equatable {
    case connect(Int32)
    /// The server closed or reset the connection before a complete response.
    case connectionClosed(errno: Int32)
    case timedOut
    case malformedResponse

    public var description: String {
        switch self {
        case .connect(let e): return "connect failed (errno \(e))"
        case .connectionClosed(let e): return "connection closed before a response (errno \(e))"
        case .timedOut: return "no response before the timeout"
        case .malformedResponse: return "malformed HTTP response"
        }
    }
}

/// A deliberately dumb HTTP/1.1 client over a POSIX socket: the request goes out byte for byte
/// (exact path and query, exact headers, chosen framing), one request per connection. The
/// blocking I/O runs on its own thread, never on the Swift concurrency pool (which serves the
/// in-process emulator).
public enum RawHTTP {
    public static func send(
        port: Int, method: String, target: String, headers: [(String, String)] = [],
        body: [UInt8] = [], framing: RawBodyFraming = .contentLength, timeout: TimeInterval = 30
    ) async throws -> RawHTTPResponse {
        var head = "\(method) \(target) HTTP/1.1\r\n"
        var names = Set<String>()
        if !headers.contains(where: { $0.0.lowercased() == "host" }) { head += "Host: 127.0.0.1:\(port)\r\n" }
        for (name, value) in headers {
            head += "\(name): \(value)\r\n"
            names.insert(name.lowercased())
        }
        var payload: [UInt8] = []
        switch framing {
        case .contentLength:
            if !names.contains("content-length") { head += "Content-Length: \(body.count)\r\n" }
            payload = body
        case .none:
            payload = body
        case .chunked:
            head += "Transfer-Encoding: chunked\r\n"
            if !body.isEmpty { payload += Array(String(body.count, radix: 16).utf8) + [13, 10] + body + [13, 10] }
            payload += Array("0\r\n\r\n".utf8)
        }
        head += "Connection: close\r\n\r\n"
        let request = Array(head.utf8) + payload
        return try await withCheckedThrowingContinuation { continuation in
            let thread = Thread {
                continuation.resume(with: Result { try exchange(port: port, request: request, timeout: timeout) })
            }
            thread.start()
        }
    }

    /// POSTs a GraphQL document as JSON with the given `key`/`altitoken` (nil = header absent).
    public static func graphQL(
        port: Int, query: String, variables: [String: any Sendable]? = nil, operationName: String? = nil,
        key: String? = "alti-demo-key", token: String? = "alti-demo-token"
    ) async throws -> RawHTTPResponse {
        var object: [String: Any] = ["query": query]
        object["variables"] = variables ?? NSNull()
        if let operationName { object["operationName"] = operationName }
        let body = try JSONSerialization.data(withJSONObject: object)
        var headers: [(String, String)] = [("Content-Type", "application/json; charset=utf-8"),
                                           ("Accept", "application/json; charset=utf-8")]
        if let key { headers.append(("key", key)) }
        if let token { headers.append(("altitoken", token)) }
        return try await send(port: port, method: "POST", target: "/graphql", headers: headers, body: Array(body))
    }

    private static func exchange(port: Int, request: [UInt8], timeout: TimeInterval) throws -> RawHTTPResponse {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw RawHTTPError.connect(errno) }
        defer { close(fd) }
        var tv = timeval(tv_sec: Int(timeout), tv_usec: Int((timeout - timeout.rounded(.down)) * 1e6))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard connected == 0 else { throw RawHTTPError.connect(errno) }
        var sent = 0
        var sendError: Int32 = 0
        while sent < request.count {
            let n = request[sent...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { sendError = errno; break }
            sent += n
        }
        var response: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        var readError: Int32 = 0
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n > 0 {
                response.append(contentsOf: buffer[0..<n])
                if let parsed = parse(response), parsed.complete { return parsed.response }
                continue
            }
            if n < 0 { readError = errno }
            break
        }
        if readError == EAGAIN || readError == EWOULDBLOCK { throw RawHTTPError.timedOut }
        if let parsed = parse(response), parsed.complete || parsed.response.header("content-length") == nil {
            return parsed.response
        }
        throw RawHTTPError.connectionClosed(errno: readError != 0 ? readError : sendError)
    }

    private static func parse(_ bytes: [UInt8]) -> (response: RawHTTPResponse, complete: Bool)? {
        let separator: [UInt8] = [13, 10, 13, 10]
        guard let end = bytes.indices.dropLast(3).first(where: { bytes[$0..<$0 + 4].elementsEqual(separator) })
        else { return nil }
        let head = String(decoding: bytes[..<end], as: UTF8.self).components(separatedBy: "\r\n")
        let statusParts = head[0].split(separator: " ")
        guard statusParts.count >= 2, let status = Int(statusParts[1]) else { return nil }
        var headers: [(name: String, value: String)] = []
        for line in head.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers.append((String(line[..<colon]), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)))
        }
        let body = Array(bytes[(end + 4)...])
        let response = RawHTTPResponse(status: status, headers: headers, body: body)
        if let length = response.header("content-length").flatMap({ Int($0) }) {
            return (RawHTTPResponse(status: status, headers: headers, body: Array(body.prefix(length))),
                    body.count >= length)
        }
        return (response, false)
    }
}

/// Runs a process on its own thread (not the concurrency pool, which the in-process emulator needs).
public func runProcessOffPool(_ executable: String, _ arguments: [String],
                              environment: [String: String] = [:]) async throws -> ProcessResult {
    try await withCheckedThrowingContinuation { continuation in
        let thread = Thread {
            continuation.resume(with: Result { try Run.process(executable, arguments, environment: environment) })
        }
        thread.start()
    }
}
