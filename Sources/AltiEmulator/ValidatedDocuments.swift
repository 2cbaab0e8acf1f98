import Foundation
import GraphQL

/// Parsed documents that passed validation, by their exact query text. Validating a document
/// against the emulator's fixed schema is a pure function of that text (variable values are
/// coerced at execution, not by validation), so reusing a verdict is exactly as strict as
/// validating again. It matters because alti sends every value as a variable: each batch of N
/// aliased `hasImage` or `uploadImageS3` fields has the same text, and GraphQLSwift's validation
/// took 90 % of the emulator's time for such a request (about 35 ms for 100 `hasImage`, 80 ms
/// for 100 `uploadImageS3`), CPU taken from the uploads it is measured beside on a 2-core machine.
/// Invalid documents are never kept: their errors are computed afresh every time.
final class ValidatedDocuments: @unchecked Sendable {
    /// At most this many texts; the oldest is dropped first. A sync uses a handful of shapes (one
    /// per operation and batch size); 100 aliased fields parse to about 100 KB.
    let capacity: Int
    // @unchecked: every access to `documents` and `order` holds `lock`. A `Document` is only
    // read once parsed (execution never mutates the AST), so one can serve requests at once.
    private let lock = NSLock()
    private var documents: [String: Document] = [:]
    private var order: [String] = []

    init(capacity: Int = 128) {
        self.capacity = capacity
    }

    /// The document validated earlier for exactly this text, or nil.
    func document(for query: String) -> Document? {
        lock.withLock { documents[query] }
    }

    /// Keeps a document that passed validation.
    func keep(_ document: Document, for query: String) {
        lock.withLock {
            guard documents.updateValue(document, forKey: query) == nil else { return }
            order.append(query)
            if order.count > capacity { documents[order.removeFirst()] = nil }
        }
    }
}
