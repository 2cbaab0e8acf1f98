/// CRC-64 as OSS computes it for `x-oss-hash-crc64ecma`: the ECMA-182 polynomial, reflected, with
/// all-ones init and final xor (the "CRC-64/XZ" parameters; Go's `crc64.ECMA` with `crc64.Update`).
/// Check value: CRC of "123456789" = 0x995DC9BBDF1939FA. Neither libcrypto nor libarchive offers
/// it, so it is table-driven here (slicing by 8: one table lookup per byte, eight bytes a step),
/// updated while bytes stream, and combinable, so the CRC of a whole multipart object follows
/// from its parts' CRCs without reading anything twice.
public struct CRC64: Sendable, Equatable {
    /// The reflected ECMA-182 polynomial.
    static let polynomial: UInt64 = 0xC96C_5795_D787_0F42

    static let tables: [[UInt64]] = {
        var tables = [[UInt64]](repeating: [UInt64](repeating: 0, count: 256), count: 8)
        for i in 0..<256 {
            var crc = UInt64(i)
            for _ in 0..<8 { crc = crc & 1 == 1 ? (crc >> 1) ^ polynomial : crc >> 1 }
            tables[0][i] = crc
        }
        for i in 0..<256 {
            var crc = tables[0][i]
            for t in 1..<8 {
                crc = tables[0][Int(crc & 0xFF)] ^ (crc >> 8)
                tables[t][i] = crc
            }
        }
        return tables
    }()

    /// The CRC of the bytes seen so far.
    public private(set) var value: UInt64 = 0

    public init() {}

    public init(value: UInt64) { self.value = value }

    public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        var crc = ~value
        let t = Self.tables
        var index = 0
        let count = bytes.count
        t[0].withUnsafeBufferPointer { t0 in
        t[1].withUnsafeBufferPointer { t1 in
        t[2].withUnsafeBufferPointer { t2 in
        t[3].withUnsafeBufferPointer { t3 in
        t[4].withUnsafeBufferPointer { t4 in
        t[5].withUnsafeBufferPointer { t5 in
        t[6].withUnsafeBufferPointer { t6 in
        t[7].withUnsafeBufferPointer { t7 in
            while count - index >= 8 {
                let word = UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: index, as: UInt64.self)) ^ crc
                crc = t7[Int(word & 0xFF)] ^ t6[Int((word >> 8) & 0xFF)] ^ t5[Int((word >> 16) & 0xFF)]
                    ^ t4[Int((word >> 24) & 0xFF)] ^ t3[Int((word >> 32) & 0xFF)] ^ t2[Int((word >> 40) & 0xFF)]
                    ^ t1[Int((word >> 48) & 0xFF)] ^ t0[Int(word >> 56)]
                index += 8
            }
            while index < count {
                crc = t0[Int((crc ^ UInt64(bytes[index])) & 0xFF)] ^ (crc >> 8)
                index += 1
            }
        }}}}}}}}
        value = ~crc
    }

    public mutating func update(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { update($0) }
    }

    /// The CRC of `bytes`.
    public static func checksum(_ bytes: [UInt8]) -> UInt64 {
        var crc = CRC64()
        crc.update(bytes)
        return crc.value
    }

    /// The CRC of A followed by B, from CRC(A), CRC(B) and the length of B (zlib's
    /// `crc32_combine` method over GF(2): B's length in zero bits applied to CRC(A) as a matrix
    /// power, then xor'd with CRC(B)).
    public static func combine(_ first: UInt64, _ second: UInt64, secondLength: Int64) -> UInt64 {
        guard secondLength > 0 else { return first }
        func times(_ matrix: [UInt64], _ vector: UInt64) -> UInt64 {
            var sum: UInt64 = 0
            var v = vector
            var i = 0
            while v != 0 {
                if v & 1 == 1 { sum ^= matrix[i] }
                v >>= 1
                i += 1
            }
            return sum
        }
        func square(_ matrix: [UInt64]) -> [UInt64] { (0..<64).map { times(matrix, matrix[$0]) } }
        // The operator for one zero bit, then two, then four: odd and even powers alternate.
        var odd = [UInt64](repeating: 0, count: 64)
        odd[0] = polynomial
        var row: UInt64 = 1
        for i in 1..<64 {
            odd[i] = row
            row <<= 1
        }
        var even = square(odd)  // two zero bits
        odd = square(even)  // four zero bits
        var crc = first
        var length = secondLength
        repeat {
            even = square(odd)  // the first pass: one zero byte
            if length & 1 == 1 { crc = times(even, crc) }
            length >>= 1
            if length == 0 { break }
            odd = square(even)
            if length & 1 == 1 { crc = times(odd, crc) }
            length >>= 1
        } while length != 0
        return crc ^ second
    }
}
