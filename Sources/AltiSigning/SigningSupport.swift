import Foundation

/// A request header as it appears on the wire: name (any case) and value.
public typealias SigningHeader = (name: String, value: String)

/// UTC calendar arithmetic and the date formats the signers use, without `DateFormatter`
/// (pure, locale-free, and identical on macOS and Linux).
public enum SigningTime {
    /// Broken-down UTC time.
    struct Civil: Equatable {
        var year: Int, month: Int, day: Int, hour: Int, minute: Int, second: Int
        var weekday: Int  // 0 = Sunday
    }

    static func civil(_ date: Date) -> Civil {
        let seconds = Int(date.timeIntervalSince1970.rounded(.down))
        let days = seconds >= 0 ? seconds / 86_400 : (seconds - 86_399) / 86_400
        let secOfDay = seconds - days * 86_400
        // days-from-civil inverse (proleptic Gregorian)
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let day = doy - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        let year = yoe + era * 400 + (month <= 2 ? 1 : 0)
        let weekday = ((days % 7) + 11) % 7  // 1970-01-01 was a Thursday (4)
        return Civil(year: year, month: month, day: day, hour: secOfDay / 3600,
                     minute: secOfDay / 60 % 60, second: secOfDay % 60, weekday: weekday)
    }

    static func date(year: Int, month: Int, day: Int, hour: Int, minute: Int, second: Int) -> Date? {
        guard (1...12).contains(month), (1...31).contains(day), (0...23).contains(hour),
              (0...59).contains(minute), (0...60).contains(second) else { return nil }
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let mp = month > 2 ? month - 3 : month + 9
        let doy = (153 * mp + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        let days = era * 146_097 + doe - 719_468
        let check = civil(Date(timeIntervalSince1970: TimeInterval(days * 86_400)))
        guard check.day == day, check.month == month else { return nil }  // e.g. 31 February
        return Date(timeIntervalSince1970: TimeInterval(days * 86_400 + hour * 3600 + minute * 60 + second))
    }

    private static func pad(_ value: Int, _ width: Int) -> String {
        let s = String(value)
        return s.count >= width ? s : String(repeating: "0", count: width - s.count) + s
    }

    /// `20130524T000000Z` (ISO 8601 basic, UTC): `X-Amz-Date`, `x-oss-date` in V4.
    public static func iso8601Basic(_ date: Date) -> String {
        let c = civil(date)
        return pad(c.year, 4) + pad(c.month, 2) + pad(c.day, 2) + "T" + pad(c.hour, 2) + pad(c.minute, 2)
            + pad(c.second, 2) + "Z"
    }

    /// `20130524` (the credential scope date).
    public static func yyyymmdd(_ date: Date) -> String { String(iso8601Basic(date).prefix(8)) }

    /// `2013-05-25T00:00:00Z` (the form S3 and OSS use in XML error bodies).
    public static func iso8601Extended(_ date: Date) -> String {
        let c = civil(date)
        return pad(c.year, 4) + "-" + pad(c.month, 2) + "-" + pad(c.day, 2) + "T" + pad(c.hour, 2) + ":"
            + pad(c.minute, 2) + ":" + pad(c.second, 2) + "Z"
    }

    private static let weekdays = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
    private static let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

    /// `Wed, 28 Dec 2022 10:27:41 GMT` (RFC 7231 IMF-fixdate): the HTTP `Date` header, OSS V1.
    public static func rfc1123(_ date: Date) -> String {
        let c = civil(date)
        return weekdays[c.weekday] + ", " + pad(c.day, 2) + " " + months[c.month - 1] + " " + pad(c.year, 4) + " "
            + pad(c.hour, 2) + ":" + pad(c.minute, 2) + ":" + pad(c.second, 2) + " GMT"
    }

    /// Parses `20130524T000000Z`; nil for anything else.
    public static func parseISO8601Basic(_ text: String) -> Date? {
        let b = Array(text.utf8)
        guard b.count == 16, b[8] == UInt8(ascii: "T"), b[15] == UInt8(ascii: "Z") else { return nil }
        func num(_ r: Range<Int>) -> Int? {
            var v = 0
            for i in r {
                guard b[i] >= 48, b[i] <= 57 else { return nil }
                v = v * 10 + Int(b[i] - 48)
            }
            return v
        }
        guard let y = num(0..<4), let mo = num(4..<6), let d = num(6..<8), let h = num(9..<11),
              let mi = num(11..<13), let s = num(13..<15) else { return nil }
        return date(year: y, month: mo, day: d, hour: h, minute: mi, second: s)
    }

    /// Parses an IMF-fixdate such as `Wed, 28 Dec 2022 10:27:41 GMT` (the weekday is not checked
    /// against the date, as HTTP servers do not); nil for anything else.
    public static func parseRFC1123(_ text: String) -> Date? {
        let parts = text.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
        guard parts.count == 6, parts[0].hasSuffix(","), parts[5] == "GMT" || parts[5] == "UTC",
              let day = Int(parts[1]), let monthIndex = months.firstIndex(of: parts[2]),
              let year = Int(parts[3]), parts[1].count <= 2, parts[3].count == 4 else { return nil }
        let hms = parts[4].split(separator: ":").map { Int($0) }
        guard hms.count == 3, let h = hms[0], let m = hms[1], let s = hms[2] else { return nil }
        return date(year: year, month: monthIndex + 1, day: day, hour: h, minute: m, second: s)
    }
}

/// Percent-encoding as the SigV4 family defines it: every byte except `A-Z a-z 0-9 - . _ ~`
/// becomes `%XX` (upper-case hex); `/` is kept when `keepSlash` is true.
public enum SigningEncoding {
    public static func uriEncode(_ text: String, keepSlash: Bool = false) -> String {
        let hex = Array("0123456789ABCDEF".utf8)
        var out = [UInt8]()
        out.reserveCapacity(text.utf8.count)
        for c in text.utf8 {
            let unreserved = (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || (c >= 0x30 && c <= 0x39)
                || c == 0x2D || c == 0x2E || c == 0x5F || c == 0x7E
            if unreserved || (keepSlash && c == 0x2F) {
                out.append(c)
            } else {
                out.append(0x25)
                out.append(hex[Int(c >> 4)])
                out.append(hex[Int(c & 0x0F)])
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Decodes `%XX` escapes (a `+` stays a `+`). Invalid escapes are kept as they are; the bytes
    /// are decoded as UTF-8 with replacement.
    public static func percentDecode(_ text: String) -> String {
        let b = Array(text.utf8)
        var out = [UInt8]()
        out.reserveCapacity(b.count)
        var i = 0
        func hexValue(_ c: UInt8) -> UInt8? {
            switch c {
            case 0x30...0x39: return c - 0x30
            case 0x41...0x46: return c - 0x41 + 10
            case 0x61...0x66: return c - 0x61 + 10
            default: return nil
            }
        }
        while i < b.count {
            if b[i] == 0x25, i + 2 < b.count, let hi = hexValue(b[i + 1]), let lo = hexValue(b[i + 2]) {
                out.append(hi << 4 | lo)
                i += 3
            } else {
                out.append(b[i])
                i += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Splits a raw query string (`a=1&b&c=%2F`) into decoded (name, value) pairs, in order.
    /// A parameter without `=` has the value "".
    public static func parseQuery(_ rawQuery: String) -> [(name: String, value: String)] {
        rawQuery.split(separator: "&", omittingEmptySubsequences: true).map { item in
            if let eq = item.firstIndex(of: "=") {
                return (percentDecode(String(item[..<eq])), percentDecode(String(item[item.index(after: eq)...])))
            }
            return (percentDecode(String(item)), "")
        }
    }
}

enum SigningUtil {
    /// Lower-cased names; values trimmed; repeated headers joined with ",".
    static func headerMap(_ headers: [SigningHeader]) -> [String: String] {
        var map: [String: String] = [:]
        for h in headers {
            let name = h.name.lowercased()
            let value = trim(h.value)
            if let existing = map[name] { map[name] = existing + "," + value } else { map[name] = value }
        }
        return map
    }

    static func trim(_ s: String) -> String { s.trimmingCharacters(in: .whitespaces) }

    /// Trims and collapses runs of spaces (SigV4 canonical header values).
    static func trimAll(_ s: String) -> String {
        s.split(separator: " ", omittingEmptySubsequences: true).joined(separator: " ")
            .trimmingCharacters(in: .whitespaces)
    }

    /// Constant-time comparison of two strings' UTF-8 bytes (length is not secret).
    static func constantTimeEqual(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8), y = Array(b.utf8)
        guard x.count == y.count else { return false }
        var diff: UInt8 = 0
        for i in 0..<x.count { diff |= x[i] ^ y[i] }
        return diff == 0
    }

    /// `50 55 54 0a ...`: how S3 and OSS show StringToSignBytes.
    static func spacedHex(_ s: String) -> String {
        s.utf8.map { byte in
            let h = String(byte, radix: 16)
            return h.count == 1 ? "0" + h : h
        }.joined(separator: " ")
    }

    static func base64(_ bytes: [UInt8]) -> String { Data(bytes).base64EncodedString() }
}
