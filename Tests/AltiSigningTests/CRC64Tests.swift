import AltiCrypto
import Testing

/// CRC-64 as OSS sends it in `x-oss-hash-crc64ecma`.
@Suite struct CRC64Tests {
    @Test func publishedCheckValueAndEdges() {
        #expect(CRC64.checksum(Array("123456789".utf8)) == 0x995D_C9BB_DF19_39FA)
        #expect(CRC64.checksum([]) == 0)
        // Streaming in odd-sized pieces gives the same value as one pass (slicing-by-8 tails).
        let bytes = (0..<10_007).map { UInt8(truncatingIfNeeded: $0 &* 131 &+ 7) }
        var streamed = CRC64()
        var start = 0
        for size in [1, 3, 8, 13, 64, 1000, 4096] where start < bytes.count {
            let end = min(bytes.count, start + size)
            streamed.update(Array(bytes[start..<end]))
            start = end
        }
        streamed.update(Array(bytes[start...]))
        #expect(streamed.value == CRC64.checksum(bytes))
    }

    @Test func combiningPartsGivesTheWholeObjectsCRC() {
        let whole = (0..<300_001).map { UInt8(truncatingIfNeeded: $0 &* 2_654_435_761 >> 13) }
        let cuts = [0, 1, 100_000, 200_003, 300_001]
        var combined: UInt64 = 0
        for (a, b) in zip(cuts, cuts.dropFirst()) {
            let part = Array(whole[a..<b])
            combined = CRC64.combine(combined, CRC64.checksum(part), secondLength: Int64(part.count))
        }
        #expect(combined == CRC64.checksum(whole))
    }
}
