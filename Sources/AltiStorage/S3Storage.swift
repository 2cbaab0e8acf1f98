import AltiAPI
import AltiCore
import AltiNet
import Foundation

/// The S3 path of the upload guide: `uploadImageS3` registers a window of images and answers a
/// pre-signed PUT URL for each; the bytes go to that URL; the store tells the server, so there is
/// no completion step.
public struct S3Storage: ImageStorage {
    public let cloud = "S3"
    public let bucket: String
    let catalog: AltizureCatalog
    let uploader: S3PresignedUploader
    let now: @Sendable () -> Date

    public init(bucket: String, catalog: AltizureCatalog, uploader: S3PresignedUploader,
                now: @escaping @Sendable () -> Date = { Date() }) {
        self.bucket = bucket
        self.catalog = catalog
        self.uploader = uploader
        self.now = now
    }

    public var batchLimit: Int { catalog.batchLimit }

    public func register(project: String, images: [ImageRegistration]) async throws -> [String: Result<RegisteredImage, AltiError>] {
        let answers = try await catalog.registerS3(project: project, bucket: bucket, images: images)
        let receivedAt = now()
        return answers.mapValues { answer in
            answer.map { registration in
                // X-Amz-Date has whole seconds, so the URL may have been signed up to 1 s before
                // it reached us: count its lifetime from 1 s before receipt, on the local clock (a
                // laptop whose clock is off then cannot misjudge it).
                let lifetime = PresignedURL.lifetime(registration.uploadURL)
                return RegisteredImage(
                    image: registration.image,
                    grant: .presignedURL(registration.uploadURL, expiresAt: lifetime.map { receivedAt.addingTimeInterval($0 - 1) },
                                         lifetime: lifetime))
            }
        }
    }

    /// S3 images go up in one PUT: there is nothing to resume within an image.
    public func transfer(_ source: UploadSource, contentType: String, grant: UploadGrant, resume: TransferResume,
                         progress: @escaping @Sendable (Int64) -> Void) async throws -> TransferOutcome {
        guard case .presignedURL(let url, _, _) = grant else {
            return .failed(reason: "internal error: an S3 upload needs a pre-signed URL")
        }
        return try await uploader.put(source, contentType: contentType, url: url, progress: progress)
    }

    public func complete(imageID: String) async throws -> RemoteImage? { nil }
}

/// Reads the lifetime of an S3 pre-signed URL (`X-Amz-Expires`, seconds) without keeping or
/// printing the URL.
public enum PresignedURL {
    public static func lifetime(_ url: String) -> Double? {
        guard let query = url.split(separator: "?", maxSplits: 1).dropFirst().first else { return nil }
        for pair in query.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1)
            if parts.count == 2, parts[0].lowercased() == "x-amz-expires", let seconds = Double(parts[1]) { return seconds }
        }
        return nil
    }
}

/// The storages this alti can upload to, over one transport: S3 and OSS. Nothing above this knows
/// which one a run uses.
public struct AltizureStorageFactory: StorageFactory {
    let catalog: AltizureCatalog
    let transport: any HTTPTransport
    let retry: RetryPolicy
    let limits: HTTPLimits
    let metrics: SyncMetrics
    let oss: OSSOptions
    /// One line for the user (a clock correction), written to stderr.
    let notice: @Sendable (String) -> Void

    public init(catalog: AltizureCatalog, transport: any HTTPTransport, retry: RetryPolicy, limits: HTTPLimits,
                metrics: SyncMetrics, oss: OSSOptions = OSSOptions(), notice: @escaping @Sendable (String) -> Void = { _ in }) {
        self.catalog = catalog
        self.transport = transport
        self.retry = retry
        self.limits = limits
        self.metrics = metrics
        self.oss = oss
        self.notice = notice
    }

    public static let clouds = ["S3", "OSS"]

    public var supportedClouds: [String] { Self.clouds }

    public func storage(cloud: String, bucket: String) throws -> any ImageStorage {
        switch cloud.uppercased() {
        case "S3":
            return S3Storage(bucket: bucket, catalog: catalog,
                             uploader: S3PresignedUploader(transport: transport, retry: retry, limits: limits, metrics: metrics))
        case "OSS":
            return OSSStorage(bucket: bucket, catalog: catalog, transport: transport, retry: retry, limits: limits,
                              options: oss, metrics: metrics, clock: OSSClock(notice: notice))
        default:
            throw AltiError(.usage, "--cloud \(cloud) is not supported by this alti (supported: \(supportedClouds.joined(separator: ", ")))")
        }
    }
}
