import Foundation

/// Every count of what went over the wire, in one place: API requests and their retries, byte
/// transfers and their retries, registrations, grant refreshes, bytes in flight. The GraphQL
/// client, the storages and the engine add to it; the live display, the summary, the JSON report,
/// tests and benchmarks read it. Lock-based (not an actor) because libcurl's threads add bytes.
public final class SyncMetrics: @unchecked Sendable {
    public struct Snapshot: Sendable, Equatable {
        /// GraphQL POSTs sent (retries included).
        public var apiRequests = 0
        public var apiRetries = 0
        /// Image transfers that ended (stored, refused or failed): one per grant used. Attempts,
        /// not stores: the summary reports `imagesStored`.
        public var transfers = 0
        /// Transfers the store accepted (the images whose bytes it now holds).
        public var imagesStored = 0
        /// Bytes of the transfers that were stored.
        public var bytesStored: Int64 = 0
        /// Retries of a transfer on the same grant (transient failures).
        public var transferRetries = 0
        /// Images registered (a refreshed grant counts again).
        public var registrations = 0
        /// Grants replaced: stale before use, or refused once.
        public var grantRefreshes = 0
        /// STS credentials received (OSS): one at the start, then about one per lifetime.
        public var credentialsReceived = 0
        /// Body bytes sent so far, live (a failed attempt's bytes are backed out).
        public var bytesInFlight: Int64 = 0

        public var retries: Int { apiRetries + transferRetries }
    }

    private let lock = NSLock()
    private var value = Snapshot()

    public init() {}

    public var snapshot: Snapshot { lock.withLock { value } }

    public func update(_ change: (inout Snapshot) -> Void) { lock.withLock { change(&value) } }

    public func countAPIRequest() { update { $0.apiRequests += 1 } }
    public func countAPIRetry() { update { $0.apiRetries += 1 } }
    public func countTransferRetry() { update { $0.transferRetries += 1 } }
    public func addBytes(_ delta: Int64) { update { $0.bytesInFlight += delta } }
}
