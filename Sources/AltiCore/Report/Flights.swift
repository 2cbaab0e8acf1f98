import Foundation

/// One flight: images taken in one go, drawn with one marker shape and one track line.
public struct Flight: Sendable, Equatable {
    /// 1-based, in the order of their first image.
    public var number: Int
    /// Indices into `SurveyReport.rows`, in capture-time order (path order for a folder flight).
    public var rows: [Int]
    /// The capture times of the first and last image, nil for a flight grouped by folder.
    public var firstAt: String?
    public var lastAt: String?
    /// The folder, for a flight of images that record no capture time.
    public var folder: String?
}

/// The flights rule: the images with a GPS position and a capture time, in time order, are cut
/// into flights wherever two consecutive ones are more than `gap` apart (a drone lands to change
/// batteries in more than ten minutes; consecutive shots are seconds apart). Images with a
/// position but no time are grouped by folder (cameras and survey exports write one folder per
/// flight), one flight per folder after the timed ones. Rows without a position are in no flight.
public enum Flights {
    public static let gap: Int64 = 10 * 60

    static func group(_ rows: [ReportRow]) -> [Flight] {
        var timed: [(index: Int, seconds: Int64)] = []
        var byFolder: [(folder: String, rows: [Int])] = []
        for (index, row) in rows.enumerated() where row.gps != nil {
            if let at = row.capturedAt, let seconds = seconds(at) {
                timed.append((index, seconds))
            } else if let at = byFolder.firstIndex(where: { $0.folder == row.folder }) {
                byFolder[at].rows.append(index)
            } else {
                byFolder.append((row.folder, [index]))
            }
        }
        // Stable: equal times keep path order.
        timed = timed.enumerated().sorted { ($0.element.seconds, $0.offset) < ($1.element.seconds, $1.offset) }.map(\.element)
        var flights: [Flight] = []
        var previous: Int64?
        for (index, seconds) in timed {
            if let previous, seconds - previous <= gap {
                flights[flights.count - 1].rows.append(index)
                flights[flights.count - 1].lastAt = rows[index].capturedAt
            } else {
                flights.append(Flight(number: flights.count + 1, rows: [index], firstAt: rows[index].capturedAt,
                                      lastAt: rows[index].capturedAt))
            }
            previous = seconds
        }
        for (folder, members) in byFolder {
            flights.append(Flight(number: flights.count + 1, rows: members, folder: folder))
        }
        return flights
    }

    /// Seconds of an EXIF capture time ("2019-05-21T10:22:33", optional fraction, optional "Z" or
    /// "+08:00"): an offset, when given, is applied, so cameras that write one compare in UTC;
    /// the usual zone-less times compare as the camera's local time. nil when it does not parse.
    static func seconds(_ text: String) -> Int64? {
        let chars = Array(text.utf8)
        func number(_ from: Int, _ count: Int) -> Int64? {
            guard from + count <= chars.count else { return nil }
            var value: Int64 = 0
            for c in chars[from..<(from + count)] {
                guard c >= 0x30, c <= 0x39 else { return nil }
                value = value * 10 + Int64(c - 0x30)
            }
            return value
        }
        guard chars.count >= 19, let year = number(0, 4), let month = number(5, 2), let day = number(8, 2),
              let hour = number(11, 2), let minute = number(14, 2), let second = number(17, 2),
              (1...12).contains(month), (1...31).contains(day) else { return nil }
        // Days from 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil).
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let doy = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        var total = (era * 146_097 + doe - 719_468) * 86_400 + hour * 3600 + minute * 60 + second
        var rest = 19
        if rest < chars.count, chars[rest] == 0x2E {  // a fraction: skipped
            rest += 1
            while rest < chars.count, chars[rest] >= 0x30, chars[rest] <= 0x39 { rest += 1 }
        }
        if rest < chars.count, chars[rest] == 0x2B || chars[rest] == 0x2D,
           let h = number(rest + 1, 2), let m = number(rest + 4, 2) {
            total -= (chars[rest] == 0x2B ? 1 : -1) * (h * 3600 + m * 60)
        }
        return total
    }
}
