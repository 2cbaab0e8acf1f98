import Foundation

/// An image's state on the server (`IMAGE_STATE`). The real service may have states this client
/// does not know (altizure-api.md §10.2): those are kept verbatim as `.other` and waited on, never
/// uploaded again. `Absent` is this client's own word for "hasImage answered null".
public enum ImageState: Sendable, Hashable, Codable, CustomStringConvertible, ExpressibleByStringLiteral {
    case pending
    case uploaded
    case ready
    /// The legacy name of Ready.
    case readyStrong
    case invalid
    /// Not in the project (hasImage null, or an image id the project no longer has).
    case absent
    /// A state this client does not know, as the server spelled it.
    case other(String)

    public init(_ raw: String) {
        switch raw {
        case "Pending": self = .pending
        case "Uploaded": self = .uploaded
        case "Ready": self = .ready
        case "ReadyStrong": self = .readyStrong
        case "Invalid": self = .invalid
        case "Absent": self = .absent
        default: self = .other(raw)
        }
    }

    public init(stringLiteral value: String) { self.init(value) }

    public var rawValue: String {
        switch self {
        case .pending: "Pending"
        case .uploaded: "Uploaded"
        case .ready: "Ready"
        case .readyStrong: "ReadyStrong"
        case .invalid: "Invalid"
        case .absent: "Absent"
        case .other(let raw): raw
        }
    }

    public var description: String { rawValue }

    /// Ready, or the legacy ReadyStrong: nothing more to do.
    public var isDone: Bool { self == .ready || self == .readyStrong }

    /// To be sent: not in the project, registered without bytes (`Pending`), or refused
    /// (`Invalid`). The upload guide: "re-upload any outstanding image". An empty state (a server
    /// that answered none) is treated as not there.
    public var needsUpload: Bool {
        switch self {
        case .absent, .pending, .invalid: true
        case .other(let raw): raw.isEmpty
        default: false
        }
    }

    /// Neither done nor to be sent: `Uploaded`, or a state this client does not know, which it
    /// waits on rather than uploading the image again.
    public var isInProgress: Bool { !isDone && !needsUpload }

    public init(from decoder: any Decoder) throws {
        self.init(try decoder.singleValueContainer().decode(String.self))
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(rawValue)
    }
}

extension Optional where Wrapped == ImageState {
    /// A checksum the client knows nothing about must be sent.
    public var needsUpload: Bool { self?.needsUpload ?? true }
    public var isDone: Bool { self?.isDone ?? false }
    public var isInProgress: Bool { self?.isInProgress ?? false }
}
