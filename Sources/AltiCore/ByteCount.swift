import Foundation

/// Byte counts as people read them: decimal units (as disks and links are sold), one decimal.
public enum ByteCount {
    public static func text(_ n: Int64) -> String {
        let units = ["bytes", "KB", "MB", "GB", "TB"]
        var value = Double(n)
        var unit = 0
        while value >= 1000, unit < units.count - 1 {
            value /= 1000
            unit += 1
        }
        return unit == 0 ? "\(n) bytes" : String(format: "%.1f %@", value, units[unit])
    }
}

/// An upload rate as `--bwlimit` takes it: a number with an optional unit and `/s`. `k`, `M`, `G`
/// (with or without `B`) are powers of 1000, as alti prints sizes (`2.1 GB`); `Ki`, `Mi`, `Gi`
/// (`KiB`...) are powers of 1024. A bare number is bytes per second. Case-insensitive except that
/// `b` alone is never bits: a rate of bits would be 8 times off, so it is refused, not guessed.
public enum ByteRate {
    public static func parse(_ text: String) -> Int64? {
        var s = text.trimmingCharacters(in: .whitespaces)
        if s.lowercased().hasSuffix("/s") { s.removeLast(2) }
        let numberEnd = s.firstIndex { !($0.isNumber || $0 == ".") } ?? s.endIndex
        guard let value = Double(s[..<numberEnd]), value > 0, value.isFinite else { return nil }
        let unit = String(s[numberEnd...]).trimmingCharacters(in: .whitespaces)
        let multipliers: [String: Double] = [
            "": 1, "B": 1,
            "K": 1e3, "KB": 1e3, "M": 1e6, "MB": 1e6, "G": 1e9, "GB": 1e9,
            "KI": 1024, "KIB": 1024, "MI": 1_048_576, "MIB": 1_048_576, "GI": 1_073_741_824, "GIB": 1_073_741_824,
        ]
        // "b" (bits) is refused: only an upper-case or spelled-out byte unit is accepted.
        if unit.hasSuffix("b") { return nil }
        guard let multiplier = multipliers[unit.uppercased()] else { return nil }
        let bytes = (value * multiplier).rounded()
        guard bytes >= 1, bytes < 1e15 else { return nil }
        return Int64(bytes)
    }
}
