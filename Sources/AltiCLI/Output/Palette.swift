import Foundation

/// Colour for state words (Ready green, Invalid and failed red, waiting yellow), or none. Colour
/// only goes to a terminal, and never when `NO_COLOR` is set to anything (no-color.org) or the
/// terminal is `TERM=dumb`: a log file or a pipe gets the same words without escape codes.
struct Palette: Sendable, Equatable {
    enum Style: Sendable, Equatable {
        /// Ready, done.
        case good
        /// Invalid, failed.
        case bad
        /// Waiting, processing, retries.
        case waiting
        /// What the run is doing now (hashing, uploading).
        case busy
    }

    let enabled: Bool

    static let plain = Palette(enabled: false)

    /// The palette for a stream: colour when it is a terminal and the environment allows it.
    static func forStream(isTerminal: Bool, environment: [String: String]) -> Palette {
        if let noColor = environment["NO_COLOR"], !noColor.isEmpty { return .plain }
        if environment["TERM"] == "dumb" { return .plain }
        return Palette(enabled: isTerminal)
    }

    func paint(_ text: String, _ style: Style) -> String {
        guard enabled, !text.isEmpty else { return text }
        let code = switch style {
        case .good: "32"
        case .bad: "31"
        case .waiting: "33"
        case .busy: "36"
        }
        return "\u{1B}[\(code)m\(text)\u{1B}[0m"
    }
}
