import Foundation

/// What a sync has left to do, decided from server facts alone (no I/O): the engine's plan after
/// `hasImage`, `--dry-run`, the offline plan, and `alti status` all read it.
public struct SyncPlan: Sendable {
    /// Ready (or ReadyStrong) on the server: nothing to do.
    public var done: [SyncItem] = []
    /// The server has the bytes and is processing them (Uploaded, or a state this client does
    /// not know): wait, never send again.
    public var waiting: [SyncItem] = []
    /// Not in the project, registered without bytes, or Invalid: send.
    public var toSend: [SyncItem] = []

    public init() {}

    /// Sorts `items` by the state `facts` records for their checksum.
    public init(items: [SyncItem], facts: [String: ServerFacts]) {
        for item in items {
            let state = facts[item.sha1]?.state
            if state.isDone {
                done.append(item)
            } else if state.needsUpload {
                toSend.append(item)
            } else {
                waiting.append(item)
            }
        }
    }

    public var bytesToSend: Int64 { toSend.reduce(0) { $0 + $1.source.size } }
    public var total: Int { done.count + waiting.count + toSend.count }
}
