internal import CLibCrypto
import Foundation

/// A message digest algorithm offered by libcrypto's EVP interface.
public enum DigestAlgorithm: Sendable {
    case sha1
    case sha256
    case md5

    var evp: OpaquePointer? {
        switch self {
        case .sha1: return EVP_sha1()
        case .sha256: return EVP_sha256()
        case .md5: return EVP_md5()
        }
    }
}

/// An error reported by libcrypto, carrying its own error code.
public struct CryptoError: Error, CustomStringConvertible, Sendable {
    public let operation: String
    public let code: UInt

    init(_ operation: String) {
        self.operation = operation
        self.code = UInt(ERR_get_error())
    }

    public var description: String { "libcrypto \(operation) failed (error \(code))" }
}

/// A streaming digest: `update` any number of times, then `finalize` once.
///
/// The class owns its `EVP_MD_CTX` and frees it in `deinit`, so no code path can leak it.
/// It is deliberately not `Sendable`: one hash belongs to one task.
public final class StreamingDigest {
    private let context: OpaquePointer
    public let algorithm: DigestAlgorithm
    private var finished = false

    public init(_ algorithm: DigestAlgorithm) {
        guard let ctx = EVP_MD_CTX_new() else { fatalError("EVP_MD_CTX_new: out of memory") }
        guard EVP_DigestInit_ex(ctx, algorithm.evp, nil) == 1 else {
            fatalError("\(CryptoError("EVP_DigestInit_ex"))")
        }
        self.context = ctx
        self.algorithm = algorithm
    }

    deinit { EVP_MD_CTX_free(context) }

    public func update(_ bytes: UnsafeRawBufferPointer) {
        precondition(!finished, "update after finalize")
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        EVP_DigestUpdate(context, base, bytes.count)
    }

    public func update<D: DataProtocol>(_ data: D) {
        for region in data.regions {
            region.withUnsafeBytes { update($0) }
        }
    }

    public func finalize() -> [UInt8] {
        precondition(!finished, "finalize twice")
        finished = true
        var out = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        EVP_DigestFinal_ex(context, &out, &length)
        return Array(out.prefix(Int(length)))
    }
}

public enum Digest {
    public static func hash<D: DataProtocol>(_ algorithm: DigestAlgorithm, _ data: D) -> [UInt8] {
        let digest = StreamingDigest(algorithm)
        digest.update(data)
        return digest.finalize()
    }

    public static func sha1Hex<D: DataProtocol>(_ data: D) -> String { hash(.sha1, data).hexString }
    public static func sha256Hex<D: DataProtocol>(_ data: D) -> String { hash(.sha256, data).hexString }

    /// HMAC over `data` with `key`; used by the S3 and OSS signers.
    public static func hmac(_ algorithm: DigestAlgorithm, key: [UInt8], data: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        let ok = key.withUnsafeBytes { k in
            data.withUnsafeBytes { d in
                HMAC(algorithm.evp, k.baseAddress, Int32(k.count), d.bindMemory(to: UInt8.self).baseAddress,
                     d.count, &out, &length)
            }
        }
        precondition(ok != nil, "\(CryptoError("HMAC"))")
        return Array(out.prefix(Int(length)))
    }

    public static func hmac(_ algorithm: DigestAlgorithm, key: [UInt8], string: String) -> [UInt8] {
        hmac(algorithm, key: key, data: Array(string.utf8))
    }

    /// `count` bytes from the OpenSSL CSPRNG (secrets and ids in the emulator).
    public static func randomBytes(_ count: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        precondition(RAND_bytes(&out, Int32(count)) == 1, "\(CryptoError("RAND_bytes"))")
        return out
    }
}

extension Sequence where Element == UInt8 {
    /// Lower-case hexadecimal, the form the Altizure API uses for checksums.
    public var hexString: String {
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        out.reserveCapacity(underestimatedCount * 2)
        for byte in self {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0f)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}
