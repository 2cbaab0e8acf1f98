internal import CCurl
import Foundation

/// HTTP date parsing, by libcurl's `curl_getdate` (RFC 7231 IMF-fixdate, RFC 850, asctime).
public enum HTTPDate {
    /// The date, or nil when `text` is not an HTTP date.
    public static func parse(_ text: String) -> Date? {
        let t = curl_getdate(text, nil)
        return t == -1 ? nil : Date(timeIntervalSince1970: TimeInterval(t))
    }
}
