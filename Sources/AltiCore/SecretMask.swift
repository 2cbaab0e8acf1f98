import Foundation

/// Keeps a credential typed in the wrong place out of messages: a token pasted as `--project` or
/// `--endpoint` would otherwise be echoed on stderr, into terminal scrollback, CI logs and bug
/// reports. Values that look like a credential are shown as their first 4 characters and "…".
public enum SecretMask {
    /// How long a random-looking value must be to be taken for a credential. Shorter values
    /// (typos, prefixes, names) are echoed: the message is then more useful than the mask.
    public static let minimumLength = 20

    /// Whether `value` should not be echoed: it equals one of the configured `secrets` (key,
    /// token), or it is at least `minimumLength` characters of the alphabets tokens are written
    /// in (letters, digits, `+/=_-`) mixing at least two of lower case, upper case and digits.
    /// A project id or a prefix of one (at most 24 hex digits) is never taken for one.
    public static func looksLikeSecret(_ value: String, secrets: [String?] = []) -> Bool {
        if secrets.contains(where: { $0 != nil && !$0!.isEmpty && $0 == value }) { return true }
        if value.count <= 24, value.allSatisfy(\.isHexDigit) { return false }
        guard value.count >= minimumLength,
              value.unicodeScalars.allSatisfy({ $0.isASCII && (isAlphanumeric($0) || "+/=_-".unicodeScalars.contains($0)) })
        else { return false }
        var classes = 0
        if value.unicodeScalars.contains(where: { ("a"..."z").contains($0) }) { classes += 1 }
        if value.unicodeScalars.contains(where: { ("A"..."Z").contains($0) }) { classes += 1 }
        if value.unicodeScalars.contains(where: { ("0"..."9").contains($0) }) { classes += 1 }
        return classes >= 2
    }

    /// `value` as a message may show it: itself, or masked (`abcd…`) when it looks like a secret.
    public static func shown(_ value: String, secrets: [String?] = []) -> String {
        looksLikeSecret(value, secrets: secrets) ? masked(value) : value
    }

    /// The first 4 characters and "…".
    public static func masked(_ value: String) -> String { String(value.prefix(4)) + "…" }

    /// `text` with every occurrence of `value` masked when `value` looks like a secret (a server
    /// message may quote what it was sent).
    public static func scrub(_ text: String, of value: String, secrets: [String?] = []) -> String {
        guard !value.isEmpty, looksLikeSecret(value, secrets: secrets) else { return text }
        return text.replacingOccurrences(of: value, with: masked(value))
    }

    private static func isAlphanumeric(_ scalar: Unicode.Scalar) -> Bool {
        ("a"..."z").contains(scalar) || ("A"..."Z").contains(scalar) || ("0"..."9").contains(scalar)
    }
}
