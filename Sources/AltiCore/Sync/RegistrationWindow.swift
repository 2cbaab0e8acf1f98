import Foundation

/// How many images one registration window carries. A window costs two requests whatever its
/// size (the aliased registration and the aliased `startImageUpload`), so big windows save round
/// trips; but its grants must still be fresh when the last of its uploads starts. The rule:
/// the window's bytes must go up within half of a grant's usable lifetime (its lifetime less the
/// margin at which the engine replaces it) at the measured upload rate; the other half covers
/// the uploads still in flight ahead of the window and a link that slows down.
///
/// - Before any registration the lifetime is unknown: the first window is small (`first`).
/// - Before any image is stored the rate is unknown: a thin link is assumed
///   (`assumedBytesPerSecond`), so with S3's 3-hour URLs the second window is already full,
///   while a URL of seconds (tests, a misconfigured server) keeps windows of one image.
/// - Grants that never expire (OSS: an object key under a self-renewing STS) allow full windows.
public struct RegistrationWindow: Sendable, Equatable {
    public enum Lifetime: Sendable, Equatable {
        /// Nothing registered yet.
        case unknown
        /// The grants renew themselves.
        case unlimited
        /// Seconds from receipt, on the local clock.
        case seconds(TimeInterval)
    }

    /// Images in the first window, registered before the lifetime is known.
    public var first: Int
    /// Most registrations in one request (the server's batch of aliased fields).
    public var limit: Int

    /// The upload rate taken before any image is stored: 16 KiB/s, a thin hotel link.
    public static let assumedBytesPerSecond: Double = 16 * 1024

    public init(first: Int, limit: Int) {
        self.limit = max(1, limit)
        self.first = max(1, min(first, self.limit))
    }

    /// The size of the next window over the sizes of the images still to register, in order.
    public func size(next sizes: some Sequence<Int64>, lifetime: Lifetime, bytesPerSecond: Double?) -> Int {
        switch lifetime {
        case .unknown:
            return first
        case .unlimited:
            return limit
        case .seconds(let seconds):
            let usable = max(0, seconds - SyncEngine.staleMargin(lifetime: seconds))
            let rate = bytesPerSecond ?? Self.assumedBytesPerSecond
            let budget = usable / 2 * rate
            var bytes: Double = 0
            var count = 0
            for imageBytes in sizes {
                bytes += Double(imageBytes)
                if count == limit || bytes > budget { break }
                count += 1
            }
            return max(1, count)
        }
    }

    /// The lifetime a registration's grants show: the shortest expiring one; unlimited when none
    /// expires; unknown when there are none.
    public static func lifetime(of grants: [UploadGrant]) -> Lifetime {
        guard !grants.isEmpty else { return .unknown }
        let lifetimes = grants.compactMap { $0.expiry?.lifetime }
        return lifetimes.min().map { .seconds($0) } ?? .unlimited
    }
}
