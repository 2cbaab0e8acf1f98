/// Why a storage request was refused, in the form S3 and OSS put on the wire: the HTTP status,
/// the XML `<Code>` and `<Message>`, and the extra elements of the error body, in order.
///
/// The extra fields may contain what the client sent (the signature it provided, a canonical
/// request holding a security token): render them into the response body for the client, but
/// never into a log. `description` leaves them out for that reason.
public struct SigningRejection: Error, Sendable, Equatable, CustomStringConvertible {
    /// One extra element of the XML error body, e.g. `StringToSign`.
    public struct Field: Sendable, Equatable {
        public let name: String
        public let value: String
        public init(_ name: String, _ value: String) {
            self.name = name
            self.value = value
        }
    }

    public let status: Int
    public let code: String
    public let message: String
    public let fields: [Field]

    public init(status: Int, code: String, message: String, fields: [Field] = []) {
        self.status = status
        self.code = code
        self.message = message
        self.fields = fields
    }

    /// The value of the extra field `name`, if present.
    public func field(_ name: String) -> String? { fields.first { $0.name == name }?.value }

    /// `403 SignatureDoesNotMatch: <message>` (no field values: they may carry secrets).
    public var description: String { "\(status) \(code): \(message)" }

    /// The XML error body S3 and OSS send:
    /// `<?xml ...?>\n<Error><Code>…</Code><Message>…</Message>…fields…<RequestId>…</RequestId><HostId>…</HostId></Error>`.
    /// `requestId` and `hostId` are left out when nil.
    public func xmlBody(requestId: String? = nil, hostId: String? = nil) -> String {
        var out = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error>"
        func element(_ name: String, _ value: String) {
            out += "<\(name)>\(Self.xmlEscape(value))</\(name)>"
        }
        element("Code", code)
        element("Message", message)
        for f in fields { element(f.name, f.value) }
        if let requestId { element("RequestId", requestId) }
        if let hostId { element("HostId", hostId) }
        out += "</Error>\n"
        return out
    }

    /// Escapes `& < > " '` for XML text.
    public static func xmlEscape(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for ch in text {
            switch ch {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&apos;"
            default: out.append(ch)
            }
        }
        return out
    }
}
