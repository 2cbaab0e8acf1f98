import Foundation

/// Every failure a user can act on. `message` is one line that names the file or value and
/// says what to do; `kind` decides the exit code (sysexits where they fit, see README "Exit codes").
public struct AltiError: Error, LocalizedError, CustomStringConvertible, Sendable, Equatable {
    public enum Kind: String, Sendable, Codable {
        case usage            // 64 EX_USAGE
        case dataError        // 65 EX_DATAERR: corrupt manifest, newer schema, bad input data
        case noInput          // 66 EX_NOINPUT: a PATH that does not exist or cannot be read
        case notFound         // 67 EX_NOUSER: the project does not exist / manifest of another project
        case unavailable      // 69 EX_UNAVAILABLE: server unreachable, no network, ReadOnly mode
        case software         // 70 EX_SOFTWARE: a bug
        case cannotWrite      // 73 EX_CANTCREAT: cannot write the manifest or journal
        case ioError          // 74 EX_IOERR
        case incomplete       // 75 EX_TEMPFAIL: some images Invalid or not finished: run again
        case protocolError    // 76 EX_PROTOCOL: the server answered something we cannot use
        case auth             // 77 EX_NOPERM: bad key or token
        case config           // 78 EX_CONFIG
        case unusableFiles    // 79: every usable image is done, but some files are not usable images
        case interrupted      // 130: SIGINT / SIGTERM, progress saved
    }

    public let kind: Kind
    public let message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public var exitCode: Int32 {
        switch kind {
        case .usage: 64
        case .dataError: 65
        case .noInput: 66
        case .notFound: 67
        case .unavailable: 69
        case .software: 70
        case .cannotWrite: 73
        case .ioError: 74
        case .incomplete: 75
        case .protocolError: 76
        case .auth: 77
        case .config: 78
        case .unusableFiles: 79
        case .interrupted: 130
        }
    }

    public var errorDescription: String? { message }
    public var description: String { message }
}

extension AltiError {
    /// A write of `file` that failed with `code`: a full disk (ENOSPC, EDQUOT) or a file-size
    /// limit (EFBIG, `ulimit -f`) says so first, since freeing space is what fixes it; `kept` says
    /// what is still safe. Always `cannotWrite` (73).
    static func writeFailed(_ file: String, doing what: String, code: Int32, kept: String) -> AltiError {
        let reason = String(cString: strerror(code))
        switch code {
        case ENOSPC, EDQUOT:
            return AltiError(.cannotWrite, "disk full: cannot \(what) \(file) (\(reason)); free space and run again (\(kept))")
        case EFBIG:
            return AltiError(.cannotWrite, "file size limit reached: cannot \(what) \(file) (\(reason)); raise the limit (ulimit -f) or free space and run again (\(kept))")
        default:
            return AltiError(.cannotWrite, "cannot \(what) \(file): \(reason); check that its folder is writable and run again (\(kept))")
        }
    }
}
