import AltiCore
import ArgumentParser
import Foundation

/// Checks a command line before ArgumentParser sees it, for the mistakes whose parser message
/// points the wrong way: an unknown subcommand (`alti snyc ...` would be reported as an unknown
/// `--project`), an unknown option beside a missing required one (`--projct X` would be reported
/// as "Missing --project"), and a negative number as a value (`--wait -1` would be "Missing
/// value"). Each gets one line naming what was typed and, where one is close, what was meant.
enum ArgumentCheck {
    static let subcommands: [String: any ParsableCommand.Type] = ["scan": Scan.self, "sync": Sync.self, "status": Status.self,
                                                                  "report": Report.self, "config": Config.self]

    static func check(_ arguments: [String]) -> AltiError? {
        guard let first = arguments.first, !first.hasPrefix("-"), first != "help" else { return nil }
        guard var command = subcommands[first] else {
            let names = subcommands.keys.sorted()
            let hint = closest(first, among: names).map { "; did you mean 'alti \($0)'?" } ?? ""
            // A token pasted in front of the command is not echoed.
            return AltiError(.usage, "unknown command '\(SecretMask.shown(first))'\(hint) (commands: \(names.joined(separator: ", ")); see alti help)")
        }
        var index = 1
        var commandPath = first  // "config set"
        // A command group (`alti config set ...`): its options are the subcommand's.
        while !command.configuration.subcommands.isEmpty, index < arguments.count, !arguments[index].hasPrefix("-") {
            let word = arguments[index]
            if word == "help" { return nil }
            let children = command.configuration.subcommands
            guard let child = children.first(where: { $0._commandName == word }) else {
                let names = children.map { $0._commandName }.sorted()
                let hint = closest(word, among: names).map { "; did you mean 'alti \(commandPath) \($0)'?" } ?? ""
                return AltiError(.usage, "unknown command '\(SecretMask.shown(word))' for alti \(commandPath)\(hint) (commands: \(names.joined(separator: ", ")); see alti \(commandPath) --help)")
            }
            command = child
            commandPath += " " + word
            index += 1
        }
        if !command.configuration.subcommands.isEmpty, let implied = command.configuration.defaultSubcommand {
            command = implied  // `alti config --json` is `alti config list --json`
        }
        let options = self.options(of: command)
        while index < arguments.count {
            let argument = arguments[index]
            index += 1
            if argument == "--" { break }
            guard argument.count > 1, argument.hasPrefix("-"), !isNegativeNumber(argument) else { continue }
            let name = String(argument.split(separator: "=", maxSplits: 1)[0])
            guard let takesValue = options[name] else {
                let candidates = suggestions(for: name, among: Array(options.keys))
                let hint = candidates.isEmpty ? "" : "; did you mean " + candidates.map { "'\($0)'" }.joined(separator: " or ") + "?"
                return AltiError(.usage, "unknown option '\(SecretMask.shown(name))' for alti \(commandPath)\(hint) (see alti \(commandPath) --help)")
            }
            if takesValue, !argument.contains("="), index < arguments.count {
                let value = arguments[index]
                if isNegativeNumber(value) {
                    return AltiError(.usage, "\(name) \(value): \(name) takes a number of 0 or more")
                }
                index += 1
            }
        }
        return nil
    }

    /// Every option name of a command (hidden ones included) and whether it takes a value, read
    /// from its full help: the parser's own declarations, so the two cannot disagree.
    static func options(of command: any ParsableCommand.Type) -> [String: Bool] {
        let help = AltiCommand.helpMessage(for: command, includeHidden: true, columns: 400)
        var result: [String: Bool] = ["-h": false, "--help": false, "--help-hidden": false, "--experimental-dump-help": false]
        for line in help.split(separator: "\n") {
            let trimmed = line.drop { $0 == " " }
            guard line.hasPrefix("  "), trimmed.hasPrefix("-") else { continue }
            // "  -h, --help", "  --wait <seconds>", "  --format <format>"
            let words = trimmed.split(separator: " ", omittingEmptySubsequences: true)
            var names: [String] = []
            var takesValue = false
            for word in words {
                if word.hasPrefix("-") {
                    names.append(String(word.hasSuffix(",") ? word.dropLast() : word))
                } else {
                    takesValue = word.hasPrefix("<")
                    break
                }
            }
            for name in names { result[name] = takesValue }
        }
        return result
    }

    /// A short option (`-p`) most likely meant a long one that starts with its letter (`--project`,
    /// `--part-size`: all of them, when there are at most three); anything else, the closest name.
    static func suggestions(for name: String, among names: [String]) -> [String] {
        if name.count == 2 {
            let letter = name.dropFirst()
            let longs = names.filter { $0.hasPrefix("--" + letter) }.sorted()
            return longs.count <= 3 ? longs : []
        }
        return closest(name, among: names.filter { $0.hasPrefix("--") }).map { [$0] } ?? []
    }

    static func isNegativeNumber(_ s: String) -> Bool { s.hasPrefix("-") && Double(s) != nil }

    /// The one candidate within edit distance 2 of `word`, if exactly one is closest.
    static func closest(_ word: String, among candidates: [String]) -> String? {
        let scored: [(name: String, cost: Int)] = candidates.map { (name: $0, cost: distance(word, $0)) }
        let sorted = scored.sorted { lhs, rhs in lhs.cost != rhs.cost ? lhs.cost < rhs.cost : lhs.name < rhs.name }
        guard let best = sorted.first, best.cost <= 2 else { return nil }
        if sorted.count > 1, sorted[1].cost == best.cost { return nil }
        return best.name
    }

    /// Damerau-Levenshtein distance (optimal string alignment): a swap of two letters costs 1.
    static func distance(_ a: String, _ b: String) -> Int {
        let a = Array(a), b = Array(b)
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var d = [[Int]](repeating: [Int](repeating: 0, count: b.count + 1), count: a.count + 1)
        for i in 0...a.count { d[i][0] = i }
        for j in 0...b.count { d[0][j] = j }
        for i in 1...a.count {
            for j in 1...b.count {
                let cost = a[i - 1] == b[j - 1] ? 0 : 1
                let deletion: Int = d[i - 1][j] + 1
                let insertion: Int = d[i][j - 1] + 1
                let substitution: Int = d[i - 1][j - 1] + cost
                var best = min(deletion, insertion, substitution)
                if i > 1, j > 1, a[i - 1] == b[j - 2], a[i - 2] == b[j - 1] {
                    let transposition: Int = d[i - 2][j - 2] + 1
                    best = min(best, transposition)
                }
                d[i][j] = best
            }
        }
        return d[a.count][b.count]
    }
}
