import Foundation

/// A minimal HTTP/1.1 server over POSIX sockets on 127.0.0.1, port 0, for asserting what a
/// client REALLY sends: the raw request target, every header as written, the body bytes.
/// Keep-alive is supported (so connection reuse can be observed). Test-only.
final class RawHTTPServer: @unchecked Sendable {
    struct Received: Sendable {
        var method: String
        /// The request target exactly as on the wire (path and query).
        var target: String
        var headers: [(name: String, value: String)]
        var body: [UInt8]
        /// Which accepted connection carried the request (0, 1, ...).
        var connection: Int

        func headers(named name: String) -> [String] {
            headers.filter { $0.name.lowercased() == name.lowercased() }.map(\.value)
        }
    }

    enum Behavior: Sendable {
        case respond(status: Int, headers: [(String, String)], body: [UInt8])
        /// Never answer; hold the connection open until the client gives up.
        case stall
    }

    let port: Int
    private let listenFD: Int32
    private let lock = NSLock()
    private var log: [Received] = []
    private var connectionCount = 0
    private var stopped = false
    private let handler: @Sendable (Received) -> Behavior

    init(handler: @escaping @Sendable (Received) -> Behavior) throws {
        self.handler = handler
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw POSIXError(.EIO) }
        var yes: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = 0
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(fd, 16) == 0 else {
            close(fd)
            throw POSIXError(.EADDRINUSE)
        }
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
        }
        listenFD = fd
        port = Int(UInt16(bigEndian: addr.sin_port))
        let acceptThread = Thread { [self] in self.acceptLoop() }
        acceptThread.start()
    }

    var baseURL: String { "http://127.0.0.1:\(port)" }

    var requests: [Received] {
        lock.lock()
        defer { lock.unlock() }
        return log
    }

    var connections: Int {
        lock.lock()
        defer { lock.unlock() }
        return connectionCount
    }

    private var isStopped: Bool {
        lock.lock()
        defer { lock.unlock() }
        return stopped
    }

    func stop() {
        lock.lock()
        stopped = true
        lock.unlock()
        shutdown(listenFD, Int32(SHUT_RDWR))
        close(listenFD)
    }

    private func acceptLoop() {
        while !isStopped {
            let client = accept(listenFD, nil, nil)
            if client < 0 {
                if errno == EINTR { continue }
                return
            }
            lock.lock()
            let id = connectionCount
            connectionCount += 1
            lock.unlock()
            let thread = Thread { [self] in self.serve(client, id: id) }
            thread.start()
        }
    }

    /// Waits up to 100 ms for input; false when the server stops.
    private func waitReadable(_ fd: Int32) -> Bool {
        var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        while !isStopped {
            let r = poll(&pfd, 1, 100)
            if r > 0 { return true }
            if r < 0 && errno != EINTR { return false }
        }
        return false
    }

    private func serve(_ fd: Int32, id: Int) {
        defer { close(fd) }
        var buffer: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65_536)
        func fill() -> Bool {
            guard waitReadable(fd) else { return false }
            let n = recv(fd, &chunk, chunk.count, 0)
            if n <= 0 { return false }
            buffer.append(contentsOf: chunk[0..<n])
            return true
        }
        let separator: [UInt8] = [13, 10, 13, 10]
        while true {
            var headEnd: Int?
            while headEnd == nil {
                if let r = Self.find(separator, in: buffer) { headEnd = r } else if !fill() { return }
            }
            let head = String(decoding: buffer[0..<headEnd!], as: UTF8.self)
            buffer.removeFirst(headEnd! + 4)
            var lines = head.components(separatedBy: "\r\n")
            let requestLine = lines.removeFirst().split(separator: " ", maxSplits: 2).map(String.init)
            guard requestLine.count == 3 else { return }
            let headers: [(name: String, value: String)] = lines.compactMap { line in
                guard let colon = line.firstIndex(of: ":") else { return nil }
                return (String(line[..<colon]), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces))
            }
            var received = Received(method: requestLine[0], target: requestLine[1], headers: headers, body: [],
                                    connection: id)
            if let length = received.headers(named: "Content-Length").first.flatMap({ Int($0) }) {
                while buffer.count < length { if !fill() { return } }
                received.body = Array(buffer[0..<length])
                buffer.removeFirst(length)
            }
            lock.lock()
            log.append(received)
            lock.unlock()
            switch handler(received) {
            case .stall:
                // Hold the connection until the client closes it (or the server stops).
                while fill() {}
                return
            case .respond(let status, let extra, let body):
                var response = "HTTP/1.1 \(status) Test\r\nContent-Length: \(body.count)\r\n"
                for (name, value) in extra { response += "\(name): \(value)\r\n" }
                response += "\r\n"
                var bytes = Array(response.utf8)
                bytes.append(contentsOf: body)
                var sent = 0
                while sent < bytes.count {
                    let n = bytes[sent...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                    if n <= 0 { return }
                    sent += n
                }
            }
        }
    }

    private static func find(_ needle: [UInt8], in haystack: [UInt8]) -> Int? {
        guard haystack.count >= needle.count else { return nil }
        for i in 0...(haystack.count - needle.count) where haystack[i] == needle[0] {
            if Array(haystack[i..<(i + needle.count)]) == needle { return i }
        }
        return nil
    }
}
