/// A small, strict XML reader for the one request body the storage parses
/// (`<CompleteMultipartUpload>`). Foundation's XMLParser would pull libxml2 into the emulator
/// (FoundationXML on Linux) for a document of two element names; this reads elements, attributes
/// (kept, unused), text with the five named entities and numeric character references, CDATA,
/// comments and an `<?xml ...?>` prolog, and refuses anything not well-formed (unclosed or
/// mismatched tags, stray text outside the root, a second root, unknown entities).
struct ParsedXMLElement: Equatable {
    var name: String
    var attributes: [String: String] = [:]
    var children: [ParsedXMLElement] = []
    /// The text directly inside this element (entities decoded; whitespace kept).
    var text: String = ""

    /// The direct children called `name`.
    func children(named name: String) -> [ParsedXMLElement] { children.filter { $0.name == name } }
}

enum XMLBodyReader {
    /// The root element, or nil when `bytes` are not one well-formed XML document.
    static func parse(_ bytes: [UInt8]) -> ParsedXMLElement? {
        var reader = Cursor(bytes: bytes)
        // A UTF-8 byte order mark is allowed before the prolog.
        if reader.hasPrefix([0xEF, 0xBB, 0xBF]) { reader.index += 3 }
        guard reader.skipMisc(allowProlog: true), let root = reader.element(depth: 0),
              reader.skipMisc(allowProlog: false), reader.atEnd else { return nil }
        return root
    }

    private struct Cursor {
        let bytes: [UInt8]
        var index = 0

        var atEnd: Bool { index >= bytes.count }

        func hasPrefix(_ prefix: [UInt8]) -> Bool {
            bytes.count - index >= prefix.count && bytes[index..<index + prefix.count].elementsEqual(prefix)
        }

        func hasPrefix(_ text: String) -> Bool { hasPrefix(Array(text.utf8)) }

        static func isSpace(_ byte: UInt8) -> Bool { byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D }

        /// Letters, digits, `_ - . :` and any non-ASCII byte (names are not validated further).
        static func isNameByte(_ byte: UInt8) -> Bool {
            (byte >= 0x61 && byte <= 0x7A) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x30 && byte <= 0x39)
                || byte == 0x5F || byte == 0x2D || byte == 0x2E || byte == 0x3A || byte >= 0x80
        }

        mutating func skipSpaces() {
            while !atEnd, Self.isSpace(bytes[index]) { index += 1 }
        }

        /// Skips to just after `terminator`; false if it never comes.
        mutating func skip(past terminator: String) -> Bool {
            let t = Array(terminator.utf8)
            while !atEnd {
                if hasPrefix(t) { index += t.count; return true }
                index += 1
            }
            return false
        }

        /// Whitespace, comments and (before the root, once, first) the `<?xml ...?>` prolog.
        mutating func skipMisc(allowProlog: Bool) -> Bool {
            if allowProlog, hasPrefix("<?xml") {
                guard skip(past: "?>") else { return false }
            }
            while true {
                skipSpaces()
                if hasPrefix("<!--") {
                    guard skip(past: "-->") else { return false }
                } else {
                    return true
                }
            }
        }

        mutating func name() -> String? {
            let start = index
            while !atEnd, Self.isNameByte(bytes[index]) { index += 1 }
            guard index > start else { return nil }
            return String(decoding: bytes[start..<index], as: UTF8.self)
        }

        /// `<name attr="v"...>content</name>` or `<name .../>`; the cursor is on `<`.
        mutating func element(depth: Int) -> ParsedXMLElement? {
            // A body this deep is not a CompleteMultipartUpload; stop before recursion runs away.
            guard depth < 32, !atEnd, bytes[index] == 0x3C else { return nil }
            index += 1
            guard let name = self.name() else { return nil }
            var element = ParsedXMLElement(name: name)
            while true {
                skipSpaces()
                if hasPrefix("/>") { index += 2; return element }
                if hasPrefix(">") { index += 1; break }
                guard let attribute = self.name() else { return nil }
                skipSpaces()
                guard hasPrefix("=") else { return nil }
                index += 1
                skipSpaces()
                guard !atEnd, bytes[index] == 0x22 || bytes[index] == 0x27 else { return nil }
                let quote = bytes[index]
                index += 1
                let start = index
                while !atEnd, bytes[index] != quote, bytes[index] != 0x3C { index += 1 }
                guard !atEnd, bytes[index] == quote,
                      let value = Self.decodeText(bytes[start..<index]) else { return nil }
                index += 1
                guard element.attributes.updateValue(value, forKey: attribute) == nil else { return nil }
            }
            // Content up to the matching end tag.
            var text: [UInt8] = []
            while true {
                guard !atEnd else { return nil }
                if hasPrefix("</") {
                    index += 2
                    guard self.name() == name else { return nil }
                    skipSpaces()
                    guard hasPrefix(">") else { return nil }
                    index += 1
                    guard let decoded = Self.decodeText(text[...]) else { return nil }
                    element.text = decoded
                    return element
                }
                if hasPrefix("<!--") {
                    guard skip(past: "-->") else { return nil }
                } else if hasPrefix("<![CDATA[") {
                    index += 9
                    let start = index
                    guard skip(past: "]]>") else { return nil }
                    // CDATA is literal: escape what decodeText would otherwise interpret.
                    for byte in bytes[start..<index - 3] {
                        if byte == 0x26 { text += Array("&amp;".utf8) } else { text.append(byte) }
                    }
                } else if bytes[index] == 0x3C {
                    guard let child = self.element(depth: depth + 1) else { return nil }
                    element.children.append(child)
                } else {
                    text.append(bytes[index])
                    index += 1
                }
            }
        }

        /// Decodes `&amp; &lt; &gt; &quot; &apos; &#NN; &#xNN;`; nil for any other `&` or a bare `<`.
        static func decodeText(_ raw: ArraySlice<UInt8>) -> String? {
            var out: [UInt8] = []
            out.reserveCapacity(raw.count)
            var i = raw.startIndex
            while i < raw.endIndex {
                let byte = raw[i]
                if byte == 0x3C { return nil }
                guard byte == 0x26 else { out.append(byte); i += 1; continue }
                guard let semicolon = raw[i...].firstIndex(of: 0x3B), semicolon - i <= 10 else { return nil }
                let entity = String(decoding: raw[(i + 1)..<semicolon], as: UTF8.self)
                switch entity {
                case "amp": out.append(0x26)
                case "lt": out.append(0x3C)
                case "gt": out.append(0x3E)
                case "quot": out.append(0x22)
                case "apos": out.append(0x27)
                default:
                    let scalarValue: UInt32?
                    if entity.hasPrefix("#x") || entity.hasPrefix("#X") {
                        scalarValue = UInt32(entity.dropFirst(2), radix: 16)
                    } else if entity.hasPrefix("#") {
                        scalarValue = UInt32(entity.dropFirst(), radix: 10)
                    } else {
                        scalarValue = nil
                    }
                    guard let scalarValue, let scalar = Unicode.Scalar(scalarValue) else { return nil }
                    out += Array(String(Character(scalar)).utf8)
                }
                i = semicolon + 1
            }
            return String(decoding: out, as: UTF8.self)
        }
    }
}
