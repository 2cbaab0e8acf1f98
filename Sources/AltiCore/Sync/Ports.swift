import Foundation

// The sync engine sees the network only through these protocols: the GraphQL API
// (`RemoteCatalog`, implemented in AltiAPI) and the byte store (`BlobUploader`, implemented in
// AltiStorage over libcurl). Engine tests use in-memory fakes; end-to-end tests use the emulator.

/// An image as the server knows it.
public struct RemoteImage: Sendable, Equatable, Codable {
    public var id: String
    public var state: String
    public var name: String?
    public var filename: String?
    public var errors: [String]

    public init(id: String, state: String, name: String? = nil, filename: String? = nil, errors: [String] = []) {
        self.id = id
        self.state = state
        self.name = name
        self.filename = filename
        self.errors = errors
    }

    /// Ready, or the legacy ReadyStrong: nothing more to do.
    public var isDone: Bool { RemoteImage.isDone(state) }
    /// The bytes arrived; the server is still verifying them.
    public var isProcessing: Bool { state == "Uploaded" }
    public var isInvalid: Bool { state == "Invalid" }

    public static func isDone(_ state: String?) -> Bool { state == "Ready" || state == "ReadyStrong" }

    /// To be sent: not in the project (nil, or `Absent` as recorded), registered without bytes
    /// (`Pending`), or refused (`Invalid`). The upload guide: "re-upload any outstanding image".
    public static func needsUpload(_ state: String?) -> Bool {
        guard let state else { return true }
        return state == "Absent" || state == "Pending" || state == "Invalid" || state.isEmpty
    }

    /// Neither done nor to be sent: `Uploaded`, or a state this client does not know, which it
    /// waits on rather than uploading the image again.
    public static func isInProgress(_ state: String?) -> Bool {
        !isDone(state) && !needsUpload(state)
    }
}

public struct RemoteProject: Sendable, Equatable {
    public var id: String
    public var name: String
    public var numImage: Int
    public var gigaPixel: Double

    public init(id: String, name: String, numImage: Int = 0, gigaPixel: Double = 0) {
        self.id = id
        self.name = name
        self.numImage = numImage
        self.gigaPixel = gigaPixel
    }
}

public struct BucketSuggestion: Sendable, Equatable, Codable {
    public var cloud: String
    public var bucket: String
    public var display: String?

    public init(cloud: String, bucket: String, display: String? = nil) {
        self.cloud = cloud
        self.bucket = bucket
        self.display = display
    }
}

/// What the server says about itself before any upload (key-only operations).
public struct ServerInfo: Sendable, Equatable {
    public var systemMode: String
    public var supportedClouds: [String]
    public var nearestBuckets: [BucketSuggestion]

    public init(systemMode: String, supportedClouds: [String], nearestBuckets: [BucketSuggestion]) {
        self.systemMode = systemMode
        self.supportedClouds = supportedClouds
        self.nearestBuckets = nearestBuckets
    }
}

/// One image to register: the checksum, the client file name and the API's IMAGE_TYPE.
public struct ImageRegistration: Sendable, Equatable {
    public var sha1: String
    public var filename: String
    public var imageType: String

    public init(sha1: String, filename: String, imageType: String) {
        self.sha1 = sha1
        self.filename = filename
        self.imageType = imageType
    }
}

/// A registration's answer: the image and, for S3, its pre-signed PUT URL (a secret: never
/// logged, never stored).
public struct RegisteredImage: Sendable, Equatable {
    public var image: RemoteImage
    public var uploadURL: String?

    public init(image: RemoteImage, uploadURL: String?) {
        self.image = image
        self.uploadURL = uploadURL
    }
}

public struct ReconstructionOutcome: Sendable, Equatable {
    public var taskID: String?
    public var taskState: String?
    public var errorCode: Int?
    public var errorMessage: String?

    public init(taskID: String? = nil, taskState: String? = nil, errorCode: Int? = nil, errorMessage: String? = nil) {
        self.taskID = taskID
        self.taskState = taskState
        self.errorCode = errorCode
        self.errorMessage = errorMessage
    }
}

/// The GraphQL side. Batch methods take up to `batchLimit` items and send ONE request each.
public protocol RemoteCatalog: Sendable {
    var batchLimit: Int { get }
    func serverInfo() async throws -> ServerInfo
    /// A full project id or a prefix of one; throws `AltiError(.notFound)` when there is none.
    func project(_ idOrPrefix: String) async throws -> RemoteProject
    /// `hasImage` for each checksum; a missing key or nil = not in the project.
    func hasImages(project: String, checksums: [String]) async throws -> [String: RemoteImage]
    /// `uploadImageS3` for each; keyed by sha1. A per-image failure is a `.failure`.
    func registerS3(project: String, bucket: String, images: [ImageRegistration]) async throws
        -> [String: Result<RegisteredImage, AltiError>]
    /// `startImageUpload` for each image id; keyed by image id.
    func startUpload(imageIDs: [String]) async throws -> [String: RemoteImage]
    /// `project.image` for each image id; keyed by image id (absent = the server lost it).
    func imageStates(project: String, imageIDs: [String]) async throws -> [String: RemoteImage]
    func startReconstruction(project: String) async throws -> ReconstructionOutcome
    func preStartReconstruction(project: String) async throws -> ReconstructionOutcome
}

/// The outcome of one PUT attempt sequence on one URL.
public enum PutOutcome: Sendable, Equatable {
    /// The store answered 200.
    case stored
    /// 403 (expired, signature): this URL will never work again; register again for a fresh one.
    case urlRejected(code: String, message: String)
    /// A permanent refusal (other 4xx) or retries exhausted on a transient one.
    case failed(reason: String)
}

/// A file (or, later, an archive member) to send: opened anew for every attempt, so retries
/// replay it from the start and nothing is held in memory.
public struct UploadSource: Sendable, Equatable {
    public var path: String
    public var size: Int64
    /// The mtime the scan saw; the uploader refuses a file that changed since (its checksum no
    /// longer matches the registration, and the server would mark it Invalid).
    public var mtimeNs: Int64?

    public init(path: String, size: Int64, mtimeNs: Int64? = nil) {
        self.path = path
        self.size = size
        self.mtimeNs = mtimeNs
    }

    /// nil when the file is as scanned, else why not.
    public func changeSinceScan() -> String? {
        var st = stat()
        guard stat(path, &st) == 0 else {
            return "cannot read \(path): \(String(cString: strerror(errno)))"
        }
        let mtime = Int64(st.st_mtim.tv_sec) * 1_000_000_000 + Int64(st.st_mtim.tv_nsec)
        if Int64(st.st_size) != size || (mtimeNs != nil && mtime != mtimeNs) {
            return "\(path) changed since it was scanned; run the same command again to hash and send the new content"
        }
        return nil
    }
}

/// The byte side: an HTTP PUT to a pre-signed URL.
public protocol BlobUploader: Sendable {
    func put(_ source: UploadSource, contentType: String, url: String,
             progress: @escaping @Sendable (_ deltaBytes: Int64) -> Void) async throws -> PutOutcome
}
