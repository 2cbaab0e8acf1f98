import Foundation

// The sync engine sees the network only through these protocols: the GraphQL API
// (`RemoteCatalog`, implemented in AltiAPI) and the storage of one cloud (`ImageStorage`, chosen
// with the cloud through a `StorageFactory`; S3 and OSS implement it in AltiStorage over libcurl).
// Engine tests use in-memory fakes; end-to-end tests use the emulator.

/// An image as the server knows it.
public struct RemoteImage: Sendable, Equatable, Codable {
    public var id: String
    public var state: ImageState
    public var name: String?
    public var filename: String?
    public var errors: [String]

    public init(id: String, state: ImageState, name: String? = nil, filename: String? = nil, errors: [String] = []) {
        self.id = id
        self.state = state
        self.name = name
        self.filename = filename
        self.errors = errors
    }

    public var isDone: Bool { state.isDone }
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

/// What the engine holds to send one registered image's bytes. A grant is a secret: never
/// logged, never stored in the manifest or the journal.
public enum UploadGrant: Sendable, Equatable {
    /// S3: a pre-signed PUT URL, usable until `expiresAt` (on the local clock, see `S3Storage`),
    /// over a lifetime of `lifetime` seconds.
    case presignedURL(String, expiresAt: Date?, lifetime: TimeInterval?)
    /// OSS: the object key, written under the storage's own shared credential, which renews itself.
    case objectKey(String)

    /// When the grant stops working and how long it was valid, if it expires by itself.
    public var expiry: (at: Date, lifetime: TimeInterval)? {
        if case .presignedURL(_, let at?, let lifetime?) = self { return (at, lifetime) }
        return nil
    }
}

/// A registration's answer: the image and the grant to send its bytes with.
public struct RegisteredImage: Sendable, Equatable {
    public var image: RemoteImage
    public var grant: UploadGrant

    public init(image: RemoteImage, grant: UploadGrant) {
        self.image = image
        self.grant = grant
    }
}

public struct ReconstructionOutcome: Sendable, Equatable {
    public var taskID: String?
    public var taskState: String?
    public var errorCode: Int?
    public var errorMessage: String?
    /// Nothing was started because the project already has a task (queued, running or done):
    /// re-running the same command must never start a second reconstruction.
    public var alreadyUnderway: Bool

    public init(taskID: String? = nil, taskState: String? = nil, errorCode: Int? = nil, errorMessage: String? = nil,
                alreadyUnderway: Bool = false) {
        self.taskID = taskID
        self.taskState = taskState
        self.errorCode = errorCode
        self.errorMessage = errorMessage
        self.alreadyUnderway = alreadyUnderway
    }

    /// States of a finished-without-result task, after which a new start is allowed. Any other
    /// state, including one this client does not know, means a task exists: never start another.
    public static let restartableStates: Set<String> = ["Stopped", "Failed", "Cancelled", "Canceled"]
}

/// The GraphQL side. Batch methods take up to `batchLimit` items and send ONE request each.
public protocol RemoteCatalog: Sendable {
    var batchLimit: Int { get }
    func serverInfo() async throws -> ServerInfo
    /// A full project id or a prefix of one; throws `AltiError(.notFound)` when there is none.
    func project(_ idOrPrefix: String) async throws -> RemoteProject
    /// The project and, where one request can carry both, the server's mode and buckets (the
    /// preflight of a sync): nil `server` means it was not asked (or not answered) and
    /// `serverInfo()` asks later.
    func projectAndServerInfo(_ idOrPrefix: String) async throws -> (project: RemoteProject, server: ServerInfo?)
    /// `hasImage` for each checksum; a missing key or nil = not in the project.
    func hasImages(project: String, checksums: [String]) async throws -> [String: RemoteImage]
    /// `startImageUpload` for each image id; keyed by image id.
    func startUpload(imageIDs: [String]) async throws -> [String: RemoteImage]
    /// `project.image` for each image id; keyed by image id (absent = the server lost it).
    func imageStates(project: String, imageIDs: [String]) async throws -> [String: RemoteImage]
    /// The project's current reconstruction task (its state), nil when it has none.
    func reconstructionTask(project: String) async throws -> ReconstructionOutcome?
    func startReconstruction(project: String) async throws -> ReconstructionOutcome
    func preStartReconstruction(project: String) async throws -> ReconstructionOutcome
}

extension RemoteCatalog {
    /// Two separate steps: the project now, the server's mode when something must be sent.
    public func projectAndServerInfo(_ idOrPrefix: String) async throws -> (project: RemoteProject, server: ServerInfo?) {
        (try await project(idOrPrefix), nil)
    }
}

/// The outcome of sending one image's bytes (retries of transient failures included).
public enum TransferOutcome: Sendable, Equatable {
    /// The store has the bytes.
    case stored
    /// The grant will never work again (a refused or expired signed URL, a credential refused
    /// after its renewal): register again for a fresh one.
    case grantRejected(code: String, message: String)
    /// A permanent refusal, or the source changed or unreadable.
    case failed(reason: String)
    /// Every retry met a network problem (lost connections, timeouts, 5xx): worth another go
    /// once the link is back (`--keep-trying` waits for it).
    case unreachable(reason: String)
}

/// The bytes of one image: a file under a source tree (later, an archive member), opened anew
/// for every attempt so retries replay it from the start and nothing is held in memory.
public struct UploadSource: Sendable {
    public var tree: any SourceTree
    /// Relative to the tree's root.
    public var path: String
    public var size: Int64
    /// The mtime the scan saw; an upload refuses a source that changed since (its checksum no
    /// longer matches the registration, and the server would mark it Invalid).
    public var mtimeNs: Int64?

    /// Checks the bytes sent against the checksum the scan recorded (nil: unchecked, for tools).
    public let check: ContentCheck?

    public init(tree: any SourceTree, path: String, size: Int64, mtimeNs: Int64? = nil, sha1: String? = nil) {
        self.tree = tree
        self.path = path
        self.size = size
        self.mtimeNs = mtimeNs
        check = sha1.map { ContentCheck(expectedSHA1: $0, size: size) }
    }

    /// A file outside any scanned tree (tests, tools): its folder is the tree.
    public init(path: String, size: Int64, mtimeNs: Int64? = nil) {
        let absolute = path.hasPrefix("/") ? path : ScanService.absolutePath(path)
        let slash = absolute.lastIndex(of: "/")!
        let folder = slash == absolute.startIndex ? "/" : String(absolute[..<slash])
        self.init(tree: FolderTree(root: folder), path: String(absolute[absolute.index(after: slash)...]), size: size,
                  mtimeNs: mtimeNs)
    }

    /// Where the bytes come from, for messages.
    public var displayPath: String { tree.displayPath(path) }

    /// Opens the bytes for one attempt (checked against the recorded checksum as they are read).
    public func open() throws(OSError) -> any ReadableFile {
        let file = try tree.open(path)
        return check.map { CheckedFile(file, check: $0) } ?? file
    }

    /// Why the source cannot be sent as scanned, when that is so: it changed since the scan
    /// (stat), or its bytes were found not to hash to the recorded checksum. Either way the next
    /// scan reads it again.
    public func changeFound() -> String? {
        if check?.mismatched == true {
            return "\(displayPath): \(ContentCheck.mismatchMessage) (it changed under alti); nothing was stored: run the same command again to hash and send the new content"
        }
        return changeSinceScan()
    }

    /// nil when the source is as scanned, else why not.
    public func changeSinceScan() -> String? {
        if let archive = tree as? ArchiveTree {
            // A member cannot change alone: the archive is as scanned, or it is not.
            return archive.isUnchanged ? nil
                : "\(archive.root) changed since it was scanned; run the same command again to hash and send the new content"
        }
        let st: FileStat
        do {
            st = try tree.stat(path)
        } catch where error.code == ENOENT || error.code == ENOTDIR {
            return "vanished: \(displayPath) was removed or renamed since it was scanned; nothing was sent: run the same command again (the scan then records it as missing)"
        } catch {
            return "cannot read \(displayPath): \(error.message); check the disk, then run the same command again"
        }
        if st.size != size || (mtimeNs != nil && st.mtimeNs != mtimeNs) {
            return "\(displayPath) changed since it was scanned; run the same command again to hash and send the new content"
        }
        return nil
    }
}

/// The storage of one cloud, bound to one bucket: registers windows of images (one request
/// each), sends one image's bytes under its grant, and completes an image once its bytes are
/// stored. The engine keeps windows, staleness, budgets and the journal; what is specific to a
/// cloud (URL lifetimes, shared credentials, signatures) lives behind this.
public protocol ImageStorage: Sendable {
    /// "S3" or "OSS", as the API names clouds.
    var cloud: String { get }
    var bucket: String { get }
    /// Most registrations in one request.
    var batchLimit: Int { get }
    /// Registers each image (one aliased request); keyed by sha1. A per-image refusal is a `.failure`.
    func register(project: String, images: [ImageRegistration]) async throws -> [String: Result<RegisteredImage, AltiError>]
    /// Sends the bytes, retrying transient failures. `progress` gets byte deltas (negative when a
    /// failed attempt is backed out). Throws `CancellationError` when cancelled.
    /// - Parameter resume: how far an earlier run got (a multipart upload and its stored parts).
    /// - Parameter journal: records each step of a multipart upload (durably) as it completes.
    func transfer(_ source: UploadSource, contentType: String, grant: UploadGrant, resume: TransferResume,
                  progress: @escaping @Sendable (_ deltaBytes: Int64) -> Void) async throws -> TransferOutcome
    /// Called once the bytes are stored: the server's completion step for this cloud (OSS:
    /// `doneImageUpload`); nil when the cloud needs none (S3: the store tells the server).
    func complete(imageID: String) async throws -> RemoteImage?
}

/// What a transfer may resume from, and where it records its progress within one image.
public struct TransferResume: Sendable {
    public enum Step: Sendable, Equatable {
        case multipartStarted(uploadID: String, key: String, partSize: Int64)
        case partStored(uploadID: String, part: MultipartUpload.Part)
        case multipartAbandoned(uploadID: String)
    }

    /// The multipart upload the manifest or journal holds for this image, if any.
    public var multipart: MultipartUpload?
    /// Journals one step (write + fsync) before the storage goes on.
    public var record: @Sendable (Step) async throws -> Void

    public init(multipart: MultipartUpload? = nil, record: @escaping @Sendable (Step) async throws -> Void = { _ in }) {
        self.multipart = multipart
        self.record = record
    }
}

/// Makes the storage for a cloud once the cloud and bucket are chosen.
public protocol StorageFactory: Sendable {
    /// The clouds this client can upload to, in order of preference.
    var supportedClouds: [String] { get }
    func storage(cloud: String, bucket: String) throws -> any ImageStorage
}
