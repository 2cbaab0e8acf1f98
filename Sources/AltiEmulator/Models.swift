import AltiCrypto
import Foundation

/// `UPLOAD_FILE_STATE` values the emulator uses.
public enum ImageState: String, Sendable, Codable, CaseIterable {
    case pending = "Pending"
    case uploaded = "Uploaded"
    case ready = "Ready"
    case readyStrong = "ReadyStrong"
    case invalid = "Invalid"
}

/// Which storage an image was registered for.
public enum StorageCloud: String, Sendable, Codable {
    case s3 = "S3"
    case oss = "OSS"
}

/// What the emulator found in the bytes of a stored object.
public struct ReceivedObject: Sendable, Codable, Equatable {
    public var size: Int
    public var sha1: String
    /// `JPEG`, `PNG` or `TIFF` when the bytes start like one, else nil.
    public var format: String?
    public var width: Int?
    public var height: Int?
}

/// A ProjectImage.
public struct ImageRecord: Sendable, Codable, Equatable {
    public var id: String
    public var projectID: String
    /// The client's filename (GraphQL `name`).
    public var name: String
    /// The server-assigned name derived from the checksum (GraphQL `filename`; the object key suffix).
    public var filename: String
    /// SHA-1 hex exactly as the client registered it, if any (the client sends lower-case hex).
    public var checksum: String?
    /// `IMAGE_TYPE` given at registration.
    public var type: String?
    public var cloud: StorageCloud
    /// `s3/<bucket>/<pid>/<filename>` or `oss/<bucket>/<pid>/<filename>`.
    public var objectKey: String
    public var state: ImageState
    public var errors: [String]
    public var createdAt: Date
    public var modifiedAt: Date
    /// Bytes that arrived since the last (re)registration.
    public var received: ReceivedObject?
    /// Successful PUTs of this image's object, over its whole life.
    public var putCount: Int
    /// Bumped on every (re)registration so a stale processing task does nothing.
    var generation: Int
    /// True once `startImageUpload` was called since the last (re)registration. Bytes that arrive
    /// while it is false are stored but do not move the image along (the upload guide requires
    /// the call just before each upload).
    public var uploadStarted: Bool = false
}

extension ImageRecord {
    /// Decodes snapshots written before `uploadStarted` existed (it is then false).
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        id = try c.decode(String.self, forKey: .id)
        projectID = try c.decode(String.self, forKey: .projectID)
        name = try c.decode(String.self, forKey: .name)
        filename = try c.decode(String.self, forKey: .filename)
        checksum = try c.decodeIfPresent(String.self, forKey: .checksum)
        type = try c.decodeIfPresent(String.self, forKey: .type)
        cloud = try c.decode(StorageCloud.self, forKey: .cloud)
        objectKey = try c.decode(String.self, forKey: .objectKey)
        state = try c.decode(ImageState.self, forKey: .state)
        errors = try c.decode([String].self, forKey: .errors)
        createdAt = try c.decode(Date.self, forKey: .createdAt)
        modifiedAt = try c.decode(Date.self, forKey: .modifiedAt)
        received = try c.decodeIfPresent(ReceivedObject.self, forKey: .received)
        putCount = try c.decode(Int.self, forKey: .putCount)
        generation = try c.decode(Int.self, forKey: .generation)
        uploadStarted = try c.decodeIfPresent(Bool.self, forKey: .uploadStarted) ?? false
    }
}

/// A project.
public struct ProjectRecord: Sendable, Codable, Equatable {
    public var id: String
    public var name: String
    public var projectType: String
    public var visibility: String
    public var createdAt: Date
    public var imageIDs: [String]
    /// Every reconstruction task, oldest first; the last one is the project's current task. At
    /// most one of them holds the project (see `TaskState.holdsProject`).
    public var tasks: [TaskRecord]

    /// `Project.taskState`: the state of the current task, nil before the first one. (Snapshots
    /// written before it was derived carry a stored `taskState`; decoding ignores it.)
    public var taskState: String? { tasks.last?.state.rawValue }

    /// The task that keeps another from starting, if any.
    public var taskHoldingProject: TaskRecord? {
        tasks.last.flatMap { $0.state.holdsProject ? $0 : nil }
    }
}

/// `Task.state` and `Project.taskState` (a String in the schema). The sources show only `Done`
/// (a project's `taskState` in the CLI README); the other names are the emulator's choice
/// (docs/EMULATOR.md, "Reconstruction").
public enum TaskState: String, Sendable, Codable, CaseIterable {
    /// `preStartReconstruction` accepted: waits until the project has a Ready image and no image
    /// still Pending or Uploaded (the upload guide: it starts "once all the images are ready").
    case scheduled = "Scheduled"
    /// Queued: started, waiting for a reconstruction slot.
    case pending = "Pending"
    /// Running.
    case processing = "Processing"
    /// Finished.
    case done = "Done"
    /// `stopReconstruction` ended it before Done.
    case stopped = "Stopped"

    /// A project has at most one reconstruction: while its current task is in one of these
    /// states, a new start is refused. Done counts (the project is reconstructed); only a
    /// stopped task makes room for another.
    public var holdsProject: Bool { self != .stopped }
}

/// A reconstruction task. Nothing is reconstructed: the state moves on with the emulator clock
/// (`EmulatorConfiguration.reconstructionPhase` per phase).
public struct TaskRecord: Sendable, Codable, Equatable {
    public var id: String
    public var taskType: String
    public var state: TaskState
    /// When the start was accepted (`Task.startDate`).
    public var startDate: Date
    /// When the task entered Pending (for a scheduled task: when its images were all processed);
    /// nil while Scheduled. The later phases are counted from here.
    public var queuedAt: Date?
    /// When it became Done or Stopped (`Task.endDate`).
    public var endDate: Date?
}

/// A compact view of one reconstruction task for tests and `GET /_emulator/stats`.
public struct TaskSummary: Sendable, Codable, Equatable {
    public var id: String
    public var projectID: String
    public var taskType: String
    public var state: TaskState
}

/// Temporary OSS credentials, write-only on `<bucket>/<projectID>/`.
public struct STSRecord: Sendable, Codable, Equatable {
    public var accessKeyID: String
    public var secret: String
    public var token: String
    public var projectID: String
    public var bucket: String
    public var expiresAt: Date
}

/// The fixed S3 credentials the emulator signs its pre-signed URLs with.
public struct S3Credentials: Sendable, Codable, Equatable {
    public var accessKeyID: String
    public var secret: String
}

/// One entry of the request log (`GET /_emulator/requests`). Never holds keys, tokens,
/// signatures or query strings.
public struct RequestLogEntry: Sendable, Codable, Equatable {
    public var sequence: Int
    public var time: Date
    public var method: String
    /// The path without its query string.
    public var path: String
    /// `graphql`, `put`, or nil (admin and other routes).
    public var requestClass: String?
    /// Root fields of the executed GraphQL operation, in document order, without repeats.
    public var graphqlFields: [String]
    public var operationName: String?
    public var status: Int
    /// For PUTs: `ok` or the refusal code (`SignatureDoesNotMatch`, `fault-503`, ...).
    public var outcome: String?
    /// Image id the PUT targeted, when known.
    public var imageID: String?
    /// Request body bytes read.
    public var bytes: Int
}

/// A compact view of one image for tests and `GET /_emulator/stats`.
public struct ImageSummary: Sendable, Codable, Equatable {
    public var id: String
    public var projectID: String
    public var name: String
    public var filename: String
    public var checksum: String?
    public var state: ImageState
    public var errors: [String]
    public var putCount: Int
}

/// Counters for tests: enough to prove "N images -> N PUTs" and "a re-run -> 0 PUTs".
public struct EmulatorStats: Sendable, Codable, Equatable {
    /// HTTP requests to `/graphql` (any outcome).
    public var graphqlRequests: Int = 0
    /// GraphQL requests whose query text had already been parsed and validated (the verdict was
    /// reused: see `ValidatedDocuments`).
    public var graphqlDocumentsReused: Int = 0
    /// TCP connections accepted, and those that have ended (either side closed them).
    public var connectionsOpened: Int = 0
    public var connectionsClosed: Int = 0
    /// Root-field invocations by field name (an aliased field counts once per alias).
    public var graphqlFields: [String: Int] = [:]
    /// Image registrations (uploadImageS3/OSS calls that created or re-registered an image).
    public var registrations: Int = 0
    /// STS credentials issued.
    public var stsIssued: Int = 0
    /// Storage requests received, any outcome: S3 PUTs and every OSS request (PutObject and the
    /// multipart operations alike; the name predates multipart).
    public var puts: Int = 0
    /// The most upload bodies (S3 PUTs, OSS PutObject and UploadPart) being received at once,
    /// each from its first byte to its last: how parallel a client's uploads really were.
    public var peakBodiesInFlight: Int = 0
    /// When the first upload body's first byte arrived and the last one's last byte did: with
    /// `bytesStored`, the rate a client really sent at (`--bwlimit` is checked against it).
    public var firstBodyByteAt: Date?
    public var lastBodyByteAt: Date?
    /// Storage requests by outcome: `ok`, an S3/OSS error code, or
    /// `fault-503`/`fault-500`/`fault-reset`/`fault-hang`.
    public var putsByOutcome: [String: Int] = [:]
    /// Objects stored per image id: successful S3 PUTs, OSS PutObjects and CompleteMultipartUploads
    /// (an UploadPart stores no object; see `partsByKey`).
    public var putsByImage: [String: Int] = [:]
    /// OSS requests the storage handled, by operation, whatever the answer: `PutObject`,
    /// `InitiateMultipartUpload`, `UploadPart`, `CompleteMultipartUpload`, `AbortMultipartUpload`,
    /// `ListParts`, `GetObject`, `HeadObject`, `DeleteObject`, `PostObject`. Not counted here:
    /// requests refused before the operation is known (other bucket, no key), and those an
    /// injected fault cut, failed or hung (they are in `putsByOutcome`).
    public var ossOperations: [String: Int] = [:]
    /// OSS refusals (the XML errors of the OSS storage, not injected faults) by `<Code>`.
    public var ossRefusals: [String: Int] = [:]
    /// Successful InitiateMultipartUpload, CompleteMultipartUpload and AbortMultipartUpload calls.
    public var multipartInitiated: Int = 0
    public var multipartCompleted: Int = 0
    public var multipartAborted: Int = 0
    /// Successful UploadParts per upload id, then per part number (a part sent again counts again).
    public var partsByUpload: [String: [Int: Int]] = [:]
    /// Successful UploadParts per object key as the request names it (`<pid>/<filename>`, no
    /// bucket), then per part number, over every upload of that key.
    public var partsByKey: [String: [Int: Int]] = [:]
    /// Stores the `corruptNextStores` fault damaged.
    public var corruptedStores: Int = 0
    /// STS credentials issued with a tampered secret (`tamperNextSTS`).
    public var tamperedSTS: Int = 0
    /// `startImageUpload` calls by image id (calls naming an unknown id are not counted).
    public var startsByImage: [String: Int] = [:]
    /// Bytes stored by successful PUTs.
    public var bytesStored: Int = 0
    /// Current images by state.
    public var imagesByState: [String: Int] = [:]
    /// Current images.
    public var images: [ImageSummary] = []
    /// Every reconstruction task of every project (current and stopped ones), by project in
    /// creation order, oldest task first.
    public var tasks: [TaskSummary] = []

    public init() {}

    /// Invocations of one GraphQL root field.
    public func count(_ field: String) -> Int { graphqlFields[field] ?? 0 }
    /// Storage requests with one outcome.
    public func puts(_ outcome: String) -> Int { putsByOutcome[outcome] ?? 0 }
    /// OSS requests of one operation (`UploadPart`, ...).
    public func ossOperation(_ name: String) -> Int { ossOperations[name] ?? 0 }
    /// OSS refusals with one code.
    public func ossRefusal(_ code: String) -> Int { ossRefusals[code] ?? 0 }
    /// Successful UploadParts of one object key (`<pid>/<filename>`), all part numbers together.
    public func partsStored(key: String) -> Int { partsByKey[key]?.values.reduce(0, +) ?? 0 }
}

/// A fresh 24-hex-character id, like a MongoDB ObjectID.
func makeObjectID() -> String {
    randomHex(12)
}

func randomHex(_ bytes: Int) -> String {
    var rng = SystemRandomNumberGenerator()
    return (0..<bytes).map { _ in UInt8.random(in: 0...255, using: &rng) }.hexString
}

/// `YYYY-MM-DDThh:mm:ssZ` (UTC), the STS `expire` format.
func formatExpire(_ date: Date) -> String {
    let f = DateFormatter()
    f.locale = Locale(identifier: "en_US_POSIX")
    f.timeZone = TimeZone(identifier: "UTC")
    f.dateFormat = "yyyy-MM-dd'T'HH:mm:ss'Z'"
    return f.string(from: date)
}

/// ISO 8601 with milliseconds, as the API's dates look (`2019-07-24T08:33:01.321Z`).
func formatISODate(_ date: Date) -> String {
    let f = DateFormatter()
    f.locale = Locale(identifier: "en_US_POSIX")
    f.timeZone = TimeZone(identifier: "UTC")
    f.dateFormat = "yyyy-MM-dd'T'HH:mm:ss.SSS'Z'"
    return f.string(from: date)
}
