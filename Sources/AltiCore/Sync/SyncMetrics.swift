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
        /// Uploads allowed at once now, and the most allowed so far (`--transfers`: fixed, or
        /// adapted by `TransferConcurrency`). 0 before the upload starts.
        public var transferLimit = 0
        public var peakTransferLimit = 0

        public var retries: Int { apiRetries + transferRetries }
        /// The uploads under way now, by token (`beginTransfer`): what the live display lists.
        public var inFlight: [Int: InFlightTransfer] = [:]

        public init() {}
    }

    /// One upload under way: its name, its size and the body bytes sent so far in this attempt.
    public struct InFlightTransfer: Sendable, Equatable {
        public var name: String
        public var size: Int64
        public var sent: Int64

        public init(name: String, size: Int64, sent: Int64 = 0) {
            self.name = name
            self.size = size
            self.sent = sent
        }
    }

    private let lock = NSLock()
    private var value = Snapshot()

    public init() {}

    public var snapshot: Snapshot { lock.withLock { value } }

    public func update(_ change: (inout Snapshot) -> Void) { lock.withLock { change(&value) } }

    public func countAPIRequest() { update { $0.apiRequests += 1 } }
    public func countAPIRetry(_ note: RetryNote? = nil) {
        update { $0.apiRetries += 1 }
        if let note { tellRetry(note) }
    }

    public func countTransferRetry(_ note: RetryNote? = nil) {
        update { $0.transferRetries += 1 }
        if let note { tellRetry(note) }
    }

    public func addBytes(_ delta: Int64) { update { $0.bytesInFlight += delta } }

    private var nextToken = 0
    private var retryObservers: [@Sendable (RetryNote) -> Void] = []

    /// An upload starts: listed in `inFlight` until `endTransfer`. Returns its token.
    public func beginTransfer(name: String, size: Int64) -> Int {
        lock.withLock {
            nextToken += 1
            value.inFlight[nextToken] = InFlightTransfer(name: name, size: size)
            return nextToken
        }
    }

    /// Body bytes of an upload (a failed attempt's bytes come back negative): the run's live
    /// count and the upload's own.
    public func addBytes(_ delta: Int64, transfer token: Int) {
        update {
            $0.bytesInFlight += delta
            if var upload = $0.inFlight[token] {
                upload.sent = max(0, upload.sent + delta)
                $0.inFlight[token] = upload
            }
        }
    }

    public func endTransfer(_ token: Int) { update { $0.inFlight[token] = nil } }

    /// `observer` hears of every retry from now on (the live display's verbose lines, `--events`).
    public func observeRetries(_ observer: @escaping @Sendable (RetryNote) -> Void) {
        lock.withLock { retryObservers.append(observer) }
    }

    private func tellRetry(_ note: RetryNote) {
        let observers = lock.withLock { retryObservers }
        for observer in observers { observer(note) }
    }
}
