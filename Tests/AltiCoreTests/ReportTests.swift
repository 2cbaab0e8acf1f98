@testable import AltiCore
import AltiTestSupport
import Foundation
import Testing

/// `alti report`'s model and formats: golden text, CSV, JSON and HTML of a fixed manifest, the
/// flights rule, the projection, CSV read back by an independent RFC 4180 reader, and the size
/// of a 10,000-image page.
@Suite struct ReportTests {
    static let generatedAt = "2026-01-02T03:04:05.000Z"

    static func sha(_ c: Character) -> String { String(repeating: c, count: 40) }

    static func image(_ path: String, _ size: Int64, _ c: Character, server: ServerFacts? = nil,
                      at: String? = nil, gps: GPSPosition? = nil, missing: Bool = false) -> ManifestEntry {
        ManifestEntry(path: path, size: size, mtimeNs: 1, inode: 1, sha1: sha(c), type: .jpeg, width: 800, height: 600,
                      verdict: .ok, detail: nil, missing: missing, server: server,
                      exif: ExifFacts(capturedAt: at, make: "DJI", model: "FC6310", gps: gps))
    }

    static func facts(_ state: ImageState, id: String, errors: [String] = []) -> ServerFacts {
        ServerFacts(imageID: id, filename: "f.jpg", state: state, errors: errors, bucket: "Paris", cloud: "S3",
                    checkedAt: "2025-01-01T00:00:00.000Z")
    }

    /// Every kind of row: Ready, Invalid with an error holding a comma, a quote and a newline, not
    /// sent, a name with a comma, one with quotes, one that is not UTF-8 (recorded `%FF`), a file
    /// that is not an image, an image without GPS, a copy, a file gone since the scan; two flights
    /// by time (a 25-minute gap) and one by folder (no times).
    static func manifest(root: String = "/survey") -> Manifest {
        var manifest = Manifest(
            root: root,
            remote: Manifest.Remote(endpoint: "http://emulator.test", projectID: "5e8f2a6b1c9d4e3f2a1b0c9d", cloud: "S3", bucket: "Paris"),
            entries: [
                image("flight1/DJI_0001,a.jpg", 310_000, "a", server: facts(.ready, id: "img-a"), at: "2019-05-21T10:00:00",
                      gps: GPSPosition(latitude: 22.3360, longitude: 114.2650, altitude: 120)),
                image("flight1/DJI_0002 \"b\".jpg", 320_000, "b", server: facts(.invalid, id: "img-b", errors: ["checksum mismatch, \"sent\" again\nthen refused"]),
                      at: "2019-05-21T10:00:10", gps: GPSPosition(latitude: 22.3360, longitude: 114.2660, altitude: 120)),
                image("flight1/DJI_0003.jpg", 330_000, "c", at: "2019-05-21T10:00:20",
                      gps: GPSPosition(latitude: 22.3365, longitude: 114.2660, altitude: 121)),
                image("flight1/DJI_0004-copy.jpg", 310_000, "a", server: facts(.ready, id: "img-a"), at: "2019-05-21T10:00:00",
                      gps: GPSPosition(latitude: 22.3360, longitude: 114.2650, altitude: 120)),
                image("flight2/caf%FF.jpg", 340_000, "d", server: facts(.ready, id: "img-d"), at: "2019-05-21T10:25:30",
                      gps: GPSPosition(latitude: 22.3370, longitude: 114.2650, altitude: 119.5)),
                image("flight2/no-gps.jpg", 350_000, "e", server: facts(.uploaded, id: "img-e"), at: "2019-05-21T10:25:40"),
                image("flight2/gone.jpg", 360_000, "f", server: facts(.ready, id: "img-f"), at: "2019-05-21T10:25:50",
                      gps: GPSPosition(latitude: 22.3370, longitude: 114.2660), missing: true),
                image("flight3/x.jpg", 370_000, "g", gps: GPSPosition(latitude: 22.3355, longitude: 114.2655)),
                ManifestEntry(path: "notes.jpg", size: 12, mtimeNs: 1, inode: 1, sha1: nil, type: nil, width: nil,
                              height: nil, verdict: .notAnImage, detail: "not a JPEG, PNG or TIFF (starts with 3C 68 74 6D)"),
            ],
            writtenAtNs: 1_735_689_600_000_000_000)
        manifest.normalize()
        return manifest
    }

    static func report(_ manifest: Manifest = manifest()) -> SurveyReport {
        let source = ReportSource(root: manifest.source.root, kind: manifest.source.kind,
                                  manifest: "/survey/.alti/manifest.json", remote: manifest.remote)
        return SurveyReport(sources: [(source, manifest)], generatedAt: generatedAt)
    }

    /// `Tests/Goldens/report/NAME`, compared byte for byte; `ALTI_RECORD_GOLDENS=1` writes it instead.
    static func expectGolden(_ name: String, _ actual: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let file = Run.packageRoot.appendingPathComponent("Tests/Goldens/report/\(name)")
        if ProcessInfo.processInfo.environment["ALTI_RECORD_GOLDENS"] == "1" {
            try FileManager.default.createDirectory(at: file.deletingLastPathComponent(), withIntermediateDirectories: true)
            try Data(actual.utf8).write(to: file)
            return
        }
        let expected = try String(contentsOf: file, encoding: .utf8)
        #expect(actual == expected, "\(name) differs from its golden (ALTI_RECORD_GOLDENS=1 to re-record):\n\(actual)",
                sourceLocation: sourceLocation)
    }

    // MARK: The model

    @Test func everyEntryIsARowWithItsStateErrorAndCaptureFacts() {
        let report = Self.report()
        let byPath = Dictionary(uniqueKeysWithValues: report.rows.map { ($0.path, $0) })
        #expect(report.rows.count == 9)
        #expect(byPath["/survey/flight1/DJI_0001,a.jpg"]?.state == "Ready")
        #expect(byPath["/survey/flight1/DJI_0001,a.jpg"]?.imageID == "img-a")
        #expect(byPath["/survey/flight1/DJI_0001,a.jpg"]?.cloud == "S3")
        #expect(byPath["/survey/flight1/DJI_0002 \"b\".jpg"]?.state == "Invalid")
        #expect(byPath["/survey/flight1/DJI_0002 \"b\".jpg"]?.error == "checksum mismatch, \"sent\" again\nthen refused")
        #expect(byPath["/survey/flight1/DJI_0003.jpg"]?.state == "not sent")
        #expect(byPath["/survey/flight1/DJI_0003.jpg"]?.category == .notSent)
        #expect(byPath["/survey/flight1/DJI_0003.jpg"]?.imageID == nil)
        // Escaped as status shows it: the recorded form, not a decoded guess.
        #expect(byPath["/survey/flight2/caf%FF.jpg"]?.state == "Ready")
        #expect(byPath["/survey/flight2/no-gps.jpg"]?.state == "Uploaded")
        #expect(byPath["/survey/flight2/no-gps.jpg"]?.category == .processing)
        #expect(byPath["/survey/flight2/gone.jpg"]?.error == "the file is gone since the last scan")
        #expect(byPath["/survey/flight1/DJI_0004-copy.jpg"]?.duplicateOf == "/survey/flight1/DJI_0001,a.jpg")
        #expect(byPath["/survey/notes.jpg"]?.state == "notAnImage")
        #expect(byPath["/survey/notes.jpg"]?.category == .notUsable)
        #expect(byPath["/survey/notes.jpg"]?.error == "not a JPEG, PNG or TIFF (starts with 3C 68 74 6D)")
        #expect(report.imagesWithoutPosition == 1)
        #expect(report.positioned == 7)
        #expect(report.totalBytes == 2_690_012)
        let counts = Dictionary(uniqueKeysWithValues: report.counts.map { ($0.category, $0.count.images) })
        #expect(counts == [.ready: 4, .invalid: 1, .notSent: 2, .processing: 1, .notUsable: 1])
    }

    @Test func flightsAreCutAtGapsOverTenMinutesAndByFolderWithoutTimes() {
        let report = Self.report()
        let paths = report.flights.map { $0.rows.map { report.rows[$0].path } }
        #expect(paths == [
            // 10:00:00 (two copies, path order), 10:00:10, 10:00:20
            ["/survey/flight1/DJI_0001,a.jpg", "/survey/flight1/DJI_0004-copy.jpg", "/survey/flight1/DJI_0002 \"b\".jpg",
             "/survey/flight1/DJI_0003.jpg"],
            // 25 minutes later
            ["/survey/flight2/caf%FF.jpg", "/survey/flight2/gone.jpg"],
            // no capture time: by folder
            ["/survey/flight3/x.jpg"],
        ])
        #expect(report.flights.map(\.firstAt) == ["2019-05-21T10:00:00", "2019-05-21T10:25:30", nil])
        #expect(report.flights.map(\.folder) == [nil, nil, "/survey/flight3"])
        #expect(report.rows.first { $0.path.hasSuffix("no-gps.jpg") }?.flight == nil)
        // Exactly 10 minutes is the same flight; a second more is a new one; offsets are applied.
        #expect(Flights.seconds("2019-05-21T10:10:00")! - Flights.seconds("2019-05-21T10:00:00")! == Flights.gap)
        #expect(Flights.seconds("2019-05-21T10:00:00+08:00") == Flights.seconds("2019-05-21T02:00:00"))
        #expect(Flights.seconds("1970-01-01T00:00:01.5Z") == 1)
        #expect(Flights.seconds("not a time") == nil)
    }

    @Test func theProjectionFitsThePositionsIntoTheViewBoxWithEqualMetresEastAndNorth() throws {
        let positions = [GPSPosition(latitude: 60, longitude: 10), GPSPosition(latitude: 60.001, longitude: 10.004)]
        let projection = try #require(MapProjection(positions))
        let a = projection.point(positions[0])
        let b = projection.point(positions[1])
        // Near 60 degrees a degree of longitude is about half a degree of latitude on the ground:
        // drawn 0.004 east to 0.001 north as 0.004 cos(60.0005) to 0.001.
        #expect(abs((b.x - a.x) / (a.y - b.y) - 4 * cos(60.0005 * Double.pi / 180)) < 1e-9)
        // The wider span fills the width between the margins; the other is centred.
        #expect(abs(a.x - 40) < 1e-6 && abs(b.x - 960) < 1e-6)
        #expect(abs((a.y + b.y) / 2 - 350) < 1e-6)
        // One position: drawn in the middle.
        let single = try #require(MapProjection([positions[0]])).point(positions[0])
        #expect(abs(single.x - 500) < 1e-6 && abs(single.y - 350) < 1e-6)
        #expect(MapProjection([]) == nil)
    }

    // MARK: Goldens

    @Test func textCSVJSONAndHTMLMatchTheirGoldens() throws {
        let report = Self.report()
        try Self.expectGolden("report.txt", ReportFormat.text(report))
        try Self.expectGolden("report.csv", ReportFormat.csv(report))
        try Self.expectGolden("report.json", try ReportFormat.json(report))
        try Self.expectGolden("report.html", ReportHTML.page(report))
    }

    @Test func theCSVReadsBackFieldForFieldWithPythonsCSVModule() throws {
        let report = Self.report()
        let csv = ReportFormat.csv(report)
        #expect(csv.hasPrefix("file,state,error,sha1,image_id,size,cloud,captured_at,latitude,longitude,altitude,flight,category,missing,duplicate_of\r\n"))
        #expect(csv.contains("\r\n\"/survey/flight1/DJI_0001,a.jpg\",Ready,,"))
        let tree = try TempTree("report-csv")
        defer { tree.remove() }
        let file = try tree.write("report.csv", csv)
        let script = """
            import csv, json, sys
            with open(sys.argv[1], newline="", encoding="utf-8") as f:
                print(json.dumps(list(csv.reader(f, strict=True))))
            """
        let result = try Run.process(TestPython.interpreter, ["-c", script, file])
        #expect(result.exitCode == 0, "\(result.stderr)")
        let records = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [[String]])
        #expect(records.count == report.rows.count + 1)
        #expect(records.first == ReportFormat.csvHeader)
        for (record, row) in zip(records.dropFirst(), report.rows) {
            #expect(record.count == ReportFormat.csvHeader.count)
            #expect(record[0] == row.path)
            #expect(record[1] == row.state)
            #expect(record[2] == row.error)
            #expect(record[3] == (row.sha1 ?? ""))
            #expect(record[5] == String(row.size))
            #expect(record[8] == (row.gps.map { String(format: "%.7f", $0.latitude) } ?? ""))
        }
    }

    @Test func theHTMLReferencesNothingOutsideItself() throws {
        let page = ReportHTML.page(Self.report())
        for pattern in ["src=", "href=", "url(", "@import", "<script", "<link", "<img", "<iframe", "https://"] {
            #expect(!page.contains(pattern), "the page holds \(pattern)")
        }
        // The only "http://" is the endpoint's name in the summary, as text.
        #expect(page.replacingOccurrences(of: "http://emulator.test", with: "").contains("http://") == false)
        // One path per (flight, state) with a marker, one track per flight of 2 or more images.
        #expect(page.components(separatedBy: "<path ").count - 1 == 5)
        #expect(page.components(separatedBy: "<polyline ").count - 1 == 2)
        #expect(page.contains("1 image has no GPS position"))
    }

    // MARK: 10,000 images

    /// A survey of 10,000 images: 100 x 100 lawnmower rows, 4 flights of 2,500 (83 min each, 37 min apart),
    /// one image in 50 without GPS, states mixed. Returns the report.
    static func largeReport() -> SurveyReport {
        var entries: [ManifestEntry] = []
        let states: [ImageState?] = [.ready, .ready, .ready, .ready, .ready, .ready, .invalid, .uploaded, nil, .pending]
        for i in 0..<10_000 {
            let (row, column) = (i / 100, i % 100)
            let flight = i / 2500
            let seconds = flight * 7200 + (i % 2500) * 2
            let at = String(format: "2024-06-01T%02d:%02d:%02d", 8 + seconds / 3600, seconds / 60 % 60, seconds % 60)
            let gps = i % 50 == 49 ? nil
                : GPSPosition(latitude: 47.0 + Double(row) * 0.00005,
                              longitude: 8.0 + Double(row % 2 == 0 ? column : 99 - column) * 0.00007, altitude: 500)
            let hex = String(format: "%040x", i)
            let state = states[i % states.count]
            let server = state.map { ServerFacts(imageID: String(format: "%024x", i), filename: "f", state: $0, bucket: "b",
                                                 cloud: "S3", checkedAt: "2024-06-02T00:00:00.000Z") }
            entries.append(ManifestEntry(path: String(format: "flight%d/DJI_%04d.JPG", flight + 1, i), size: 8_000_000,
                                         mtimeNs: 1, inode: UInt64(i), sha1: hex, type: .jpeg, width: 5472, height: 3648,
                                         verdict: .ok, detail: nil, server: server,
                                         exif: ExifFacts(capturedAt: at, gps: gps)))
        }
        var manifest = Manifest(root: "/media/card/survey-2024-06-01", entries: entries)
        manifest.normalize()
        let source = ReportSource(root: manifest.source.root, kind: "folder", manifest: "/m", remote: manifest.remote)
        return SurveyReport(sources: [(source, manifest)], generatedAt: generatedAt)
    }

    @Test func aPageOf10000ImagesStaysSmall() throws {
        let clock = ContinuousClock()
        let start = clock.now
        let report = Self.largeReport()
        let page = ReportHTML.page(report)
        let elapsed = clock.now - start
        let bytes = page.utf8.count
        // Measured, not asserted (a machine's speed): printed for DESIGN.
        print("report of 10,000 images: \(bytes) bytes of HTML (\(bytes / 10_000) per image), built in \(elapsed)")
        #expect(report.flights.count == 4)
        #expect(report.imagesWithoutPosition == 200)
        #expect(page.contains("200 images have no GPS position"))
        // The map: one path per (flight, state), one polyline per flight, never one element per image.
        #expect(page.components(separatedBy: "<path ").count - 1 == 4 * 5)
        #expect(page.components(separatedBy: "<polyline ").count - 1 == 4)
        let svg = try #require(CoverageMap.svg(report))
        #expect(svg.utf8.count < 30 * 10_000, "the map takes \(svg.utf8.count) bytes")
        // The whole page (the table's 10,000 rows included) under 400 bytes per image.
        #expect(bytes < 400 * 10_000, "\(bytes) bytes")
    }
}
