import Foundation

/// A strict reader for the block-style YAML that the official CLI (yaml.v2) writes to
/// `~/.altizure/config.yaml`, and nothing more: mappings and sequences by indentation (a
/// sequence may sit at its key's indentation, as yaml.v2 writes it), plain, 'single' and
/// "double"-quoted scalars, `#` comments, empty `[]`/`{}`, an optional leading `---`.
/// Anchors, aliases, tags, flow collections, block scalars (`|`, `>`), tabs in indentation,
/// several documents and duplicate keys are refused with the line they are on: a config that
/// this reader does not understand exactly is not guessed at (it holds credentials).
/// Not a YAML library on purpose: one small file is easier to trust than a dependency.
public enum YAMLSubset {
    public indirect enum Node: Equatable, Sendable {
        case scalar(String, line: Int)
        case mapping([(key: String, value: Node, line: Int)], line: Int)
        case sequence([Node], line: Int)

        public var line: Int {
            switch self {
            case .scalar(_, let line), .mapping(_, let line), .sequence(_, let line): line
            }
        }

        public static func == (lhs: Node, rhs: Node) -> Bool {
            switch (lhs, rhs) {
            case let (.scalar(a, la), .scalar(b, lb)): a == b && la == lb
            case let (.sequence(a, la), .sequence(b, lb)): a == b && la == lb
            case let (.mapping(a, la), .mapping(b, lb)):
                la == lb && a.count == b.count && zip(a, b).allSatisfy { $0.key == $1.key && $0.value == $1.value && $0.line == $1.line }
            default: false
            }
        }
    }

    /// A line the reader refused: its number (1-based) and why.
    public struct Failure: Error, Equatable, Sendable {
        public let line: Int
        public let reason: String
    }

    struct Line {
        var indent: Int
        var text: Substring
        let number: Int
    }

    /// The document's root node (an empty document is an empty mapping).
    public static func parse(_ text: String) throws(Failure) -> Node {
        var lines: [Line] = []
        // A byte-order mark (an editor on Windows) is not part of the first key.
        let text = text.hasPrefix("\u{FEFF}") ? String(text.dropFirst()) : text
        // "\r\n" is one Character in Swift: split on it as well as on "\n".
        for (index, raw) in text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" }).enumerated() {
            let number = index + 1
            let content = Substring(raw)
            let indent = content.prefix { $0 == " " }.count
            let rest = content.dropFirst(indent)
            if rest.first == "\t" { throw Failure(line: number, reason: "a tab in the indentation (YAML indents with spaces)") }
            let trimmed = trimTrailing(rest)
            if trimmed.isEmpty || trimmed.first == "#" { continue }
            if trimmed == "---", indent == 0, lines.isEmpty { continue }
            if indent == 0, trimmed == "---" || trimmed == "..." || trimmed.hasPrefix("%") {
                throw Failure(line: number, reason: "more than one document, or a directive ('\(trimmed)')")
            }
            lines.append(Line(indent: indent, text: trimmed, number: number))
        }
        guard let first = lines.first else { return .mapping([], line: 1) }
        if first.indent != 0 { throw Failure(line: first.number, reason: "the document must start at the first column") }
        var reader = Reader(lines: lines)
        let root = try reader.block(indent: 0)
        if reader.index < reader.lines.count {
            let line = reader.lines[reader.index]
            throw Failure(line: line.number, reason: "unexpected indentation")
        }
        return root
    }

    struct Reader {
        var lines: [Line]
        var index = 0

        var current: Line? { index < lines.count ? lines[index] : nil }

        static func isItem(_ text: Substring) -> Bool { text == "-" || text.hasPrefix("- ") }

        mutating func block(indent: Int) throws(Failure) -> Node {
            guard let line = current else { return .scalar("", line: lines.last?.number ?? 1) }
            return Self.isItem(line.text) ? try sequence(indent: indent) : try mapping(indent: indent)
        }

        mutating func mapping(indent: Int) throws(Failure) -> Node {
            var entries: [(key: String, value: Node, line: Int)] = []
            let start = current?.number ?? 1
            while let line = current, line.indent == indent, !Self.isItem(line.text) {
                let (key, rest) = try YAMLSubset.splitKey(line)
                if let earlier = entries.first(where: { $0.key == key }) {
                    throw Failure(line: line.number, reason: "the key '\(key)' appears twice (also on line \(earlier.line))")
                }
                index += 1
                let value: Node
                if rest.isEmpty || rest.first == "#" {
                    if let next = current, next.indent > indent {
                        value = try block(indent: next.indent)
                    } else if let next = current, next.indent == indent, Self.isItem(next.text) {
                        value = try sequence(indent: indent)  // yaml.v2: "profiles:\n- id: x"
                    } else {
                        value = .scalar("", line: line.number)
                    }
                } else {
                    value = try YAMLSubset.value(rest, line: line.number)
                }
                entries.append((key, value, line.number))
            }
            if let line = current, line.indent > indent {
                throw Failure(line: line.number, reason: "unexpected indentation")
            }
            return .mapping(entries, line: start)
        }

        mutating func sequence(indent: Int) throws(Failure) -> Node {
            var items: [Node] = []
            let start = current?.number ?? 1
            while let line = current, line.indent == indent, Self.isItem(line.text) {
                let after = line.text.dropFirst()
                let offset = after.prefix { $0 == " " }.count
                let item = after.dropFirst(offset)
                if item.isEmpty || item.first == "#" {
                    index += 1
                    guard let next = current, next.indent > indent else {
                        items.append(.scalar("", line: line.number))
                        continue
                    }
                    items.append(try block(indent: next.indent))
                } else if item.hasPrefix("- ") || item == "-" {
                    throw Failure(line: line.number, reason: "a sequence inside a sequence item")
                } else if (try? YAMLSubset.splitKey(Line(indent: 0, text: item, number: line.number))) != nil {
                    // "- id: x": a mapping whose first key sits on the dash's line, at the
                    // column after the dash; its other keys follow at that column.
                    lines[index] = Line(indent: indent + 1 + offset, text: item, number: line.number)
                    items.append(try mapping(indent: indent + 1 + offset))
                } else {
                    index += 1
                    items.append(try YAMLSubset.value(item, line: line.number))
                }
            }
            if let line = current, line.indent > indent {
                throw Failure(line: line.number, reason: "unexpected indentation")
            }
            return .sequence(items, line: start)
        }
    }

    /// `key: rest` (rest may be empty). The separator is the first `:` followed by a space or the
    /// end of the line, so `https://api*altizure*com:` is one key.
    static func splitKey(_ line: Line) throws(Failure) -> (String, Substring) {
        let text = line.text
        if let quote = text.first, quote == "\"" || quote == "'" {
            let (key, end) = try quoted(text, line: line.number)
            let after = text[end...]
            guard after.first == ":", after.count == 1 || after.dropFirst().first == " " else {
                throw Failure(line: line.number, reason: "expected 'key: value'")
            }
            return (key, trimLeading(after.dropFirst()))
        }
        var cursor = text.startIndex
        while cursor < text.endIndex {
            if text[cursor] == ":" {
                let next = text.index(after: cursor)
                if next == text.endIndex || text[next] == " " {
                    let key = String(text[..<cursor])
                    if key.isEmpty { throw Failure(line: line.number, reason: "a key is missing before ':'") }
                    try checkPlain(Substring(key), line: line.number)
                    return (key, trimLeading(text[next...]))
                }
            }
            if text[cursor] == "#", cursor > text.startIndex, text[text.index(before: cursor)] == " " { break }
            cursor = text.index(after: cursor)
        }
        throw Failure(line: line.number, reason: "expected 'key: value'")
    }

    /// A scalar value: quoted, plain (up to a ` #` comment), or an empty `[]`/`{}`.
    static func value(_ text: Substring, line: Int) throws(Failure) -> Node {
        if let quote = text.first, quote == "\"" || quote == "'" {
            let (value, end) = try quoted(text, line: line)
            let after = trimLeading(text[end...])
            guard after.isEmpty || after.first == "#" else {
                throw Failure(line: line, reason: "text after the closing quote")
            }
            return .scalar(value, line: line)
        }
        var plain = text
        if let comment = plain.range(of: " #") { plain = plain[..<comment.lowerBound] }
        plain = trimTrailing(plain)
        if plain == "[]" { return .sequence([], line: line) }
        if plain == "{}" { return .mapping([], line: line) }
        try checkPlain(plain, line: line)
        if plain.contains(": ") || plain.hasSuffix(":") {
            throw Failure(line: line, reason: "a mapping on the same line as its key (put it on the next lines)")
        }
        if plain == "~" || plain == "null" { return .scalar("", line: line) }
        return .scalar(String(plain), line: line)
    }

    /// Plain scalars may not start with what YAML gives another meaning.
    static func checkPlain(_ text: Substring, line: Int) throws(Failure) {
        guard let first = text.first else { return }
        let meaning: [Character: String] = [
            "&": "an anchor", "*": "an alias", "!": "a tag", "|": "a block scalar", ">": "a block scalar",
            "[": "a flow sequence", "{": "a flow mapping", "]": "a flow sequence", "}": "a flow mapping",
            "%": "a directive", "@": "a reserved character", "`": "a reserved character", ",": "a flow separator",
        ]
        if let what = meaning[first] {
            throw Failure(line: line, reason: "\(what) ('\(first)') is not supported here; quote the value")
        }
    }

    /// A quoted scalar at the start of `text`: its value and the index after the closing quote.
    static func quoted(_ text: Substring, line: Int) throws(Failure) -> (String, Substring.Index) {
        let quote = text.first!
        var value = ""
        var cursor = text.index(after: text.startIndex)
        while cursor < text.endIndex {
            let c = text[cursor]
            if quote == "'" {
                if c == "'" {
                    let next = text.index(after: cursor)
                    if next < text.endIndex, text[next] == "'" {
                        value.append("'")
                        cursor = text.index(after: next)
                        continue
                    }
                    return (value, next)
                }
                value.append(c)
            } else {
                if c == "\"" { return (value, text.index(after: cursor)) }
                if c == "\\" {
                    cursor = text.index(after: cursor)
                    guard cursor < text.endIndex else { break }
                    switch text[cursor] {
                    case "\"": value.append("\"")
                    case "\\": value.append("\\")
                    case "/": value.append("/")
                    case "n": value.append("\n")
                    case "t": value.append("\t")
                    case "r": value.append("\r")
                    case "0": value.append("\0")
                    case "u":
                        let hex = text[text.index(after: cursor)...].prefix(4)
                        guard hex.count == 4, let code = UInt32(hex, radix: 16), let scalar = Unicode.Scalar(code) else {
                            throw Failure(line: line, reason: "a \\u escape needs 4 hex digits")
                        }
                        value.unicodeScalars.append(scalar)
                        cursor = text.index(cursor, offsetBy: 4)
                    default:
                        throw Failure(line: line, reason: "an unsupported escape '\\\(text[cursor])' in a double-quoted value")
                    }
                } else {
                    value.append(c)
                }
            }
            cursor = text.index(after: cursor)
        }
        throw Failure(line: line, reason: "a quoted value without its closing \(quote) (values on several lines are not supported)")
    }

    static func trimTrailing(_ s: Substring) -> Substring {
        var s = s
        while let last = s.last, last == " " || last == "\t" { s = s.dropLast() }
        return s
    }

    static func trimLeading(_ s: Substring) -> Substring {
        s.drop { $0 == " " || $0 == "\t" }
    }
}
