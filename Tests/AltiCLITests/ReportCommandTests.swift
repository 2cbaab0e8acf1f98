@testable import AltiCLI
import AltiTestSupport
import Foundation
import Testing

@testable import AltiCore

/// `alti report` on the scanned sample survey (24 real JPEGs, two flights): its bad inputs, the
/// CSV and JSON of a real manifest, and the HTML page rendered by headless Chromium, whose
/// screenshot's pixels must show each image's state colour where its GPS position projects.
@Suite struct ReportCommandTests {
    static func run(_ args: [String]) async -> (code: Int32, out: String, err: String, connections: Int) {
        await CommandContextTests.run(args, ["XDG_CONFIG_HOME": "/nonexistent-alti-config"], offline: true)
    }

    // MARK: The sample, scanned (the scan records its EXIF) and given server states

    /// What Pillow reads from each JPEG under `root`: relative path → capture time and GPS. An
    /// independent reader, so the positions the test expects never come from alti's own code.
    static func pillowExif(_ root: String) throws -> [String: ExifFacts] {
        let script = """
            import json, os, sys
            from PIL import Image
            root, out = sys.argv[1], {}
            def degrees(v, ref):
                d = float(v[0]) + float(v[1]) / 60 + float(v[2]) / 3600
                return -d if ref in ("S", "W") else d
            for folder, dirs, files in os.walk(root):
                dirs[:] = [d for d in dirs if not d.startswith(".")]
                for name in files:
                    path = os.path.join(folder, name)
                    exif = Image.open(path).getexif()
                    gps, sub = exif.get_ifd(0x8825), exif.get_ifd(0x8769)
                    taken = sub.get(36867) or exif.get(306)
                    out[os.path.relpath(path, root)] = {
                        "capturedAt": taken[:10].replace(":", "-") + "T" + taken[11:],
                        "latitude": degrees(gps[2], gps[1]), "longitude": degrees(gps[4], gps[3]),
                        "altitude": float(gps[6])}
            print(json.dumps(out))
            """
        let result = try Run.process(TestPython.interpreter, ["-c", script, root])
        guard result.exitCode == 0 else { throw RunError("Pillow could not read the sample's EXIF: \(result.stderr)") }
        let object = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: [String: Any]] ?? [:]
        return object.mapValues { facts in
            ExifFacts(capturedAt: facts["capturedAt"] as? String,
                      gps: GPSPosition(latitude: facts["latitude"] as! Double, longitude: facts["longitude"] as! Double,
                                       altitude: facts["altitude"] as? Double))
        }
    }

    /// Sets the server states the test draws: `states[n]` for the n-th image in path order, Ready
    /// otherwise. The capture facts are the scan's own.
    static func record(_ tree: TempTree, states: [Int: ImageState?]) throws {
        let file = tree.url(".alti/manifest.json")
        var manifest = try #require(try ManifestStore().load(file))
        for index in manifest.entries.indices {
            let entry = manifest.entries[index]
            #expect(entry.exif?.gps != nil, "the scan recorded no GPS for \(entry.path)")
            let state = states[index + 1] ?? .ready
            manifest.entries[index].server = state.map {
                ServerFacts(imageID: String(format: "%024x", index + 1), filename: entry.path, state: $0,
                            errors: $0 == .invalid ? ["checksum mismatch"] : [], bucket: "Paris", cloud: "S3",
                            checkedAt: "2026-01-01T00:00:00.000Z")
            }
        }
        try ManifestStore().save(manifest, to: file)
    }

    /// The sample survey scanned in a temp folder, flight1/ and flight2/ as in the repository.
    static func scannedSample() async throws -> TempTree {
        let tree = try TempTree("report-sample")
        for i in 1...24 {
            try tree.copy(CommandContextTests.sample(i), to: "\(i <= 12 ? "flight1" : "flight2")/DJI_\(String(format: "%04d", i)).JPG")
        }
        try tree.ageAllFiles()
        let scan = await Self.run(["scan", tree.path])
        #expect(scan.code == 0, "\(scan.out)\(scan.err)")
        return tree
    }

    /// Images 13-16 (flight 2) Invalid, 23-24 never sent, the rest Ready.
    static let sampleStates: [Int: ImageState?] = [13: .invalid, 14: .invalid, 15: .invalid, 16: .invalid, 23: nil, 24: nil]

    // MARK: Bad input

    @Test func aMissingPathOrManifestIsOneLineAnd66AndBadFlagsAre64() async throws {
        let missing = await Self.run(["report", "/nonexistent/survey"])
        #expect(missing.code == 66)
        #expect(missing.err.split(separator: "\n").count == 1)
        #expect(missing.err.contains("/nonexistent/survey"))
        #expect(missing.out.isEmpty)

        let tree = try TempTree("report-empty")
        defer { tree.remove() }
        let none = await Self.run(["report", tree.path, "--csv"])
        #expect(none.code == 66)
        #expect(none.err == "alti: no manifest for \(tree.path): run alti scan \(tree.path) or alti sync \(tree.path) --project ID\n")
        #expect(!FileManager.default.fileExists(atPath: tree.path(".alti")))

        let both = await Self.run(["report", tree.path, "--csv", "--json"])
        #expect(both.code == 64)
        #expect(both.err.contains("--csv and --json are different outputs: give one of them"))
    }

    @Test func anHTMLFileThatCannotBeWrittenIsOneLineAnd73() async throws {
        let tree = try await Self.scannedSample()
        defer { tree.remove() }
        let result = await Self.run(["report", tree.path, "--html", tree.path("no-such-folder/report.html")])
        #expect(result.code == 73)
        #expect(result.err == "alti: cannot write the report \(tree.path("no-such-folder/report.html")): No such file or directory; check that its folder exists and is writable\n")
    }

    // MARK: The sample survey

    @Test func csvJSONAndTextOfTheScannedSample() async throws {
        let tree = try await Self.scannedSample()
        defer { tree.remove() }
        try Self.record(tree, states: Self.sampleStates)
        let manifestBytes = try tree.read(".alti/manifest.json")
        let stateFiles = try FileManager.default.contentsOfDirectory(atPath: tree.path(".alti")).sorted()

        let csv = await Self.run(["report", tree.path, "--csv"])
        #expect(csv.code == 0, "\(csv.err)")
        let lines = csv.out.components(separatedBy: "\r\n")
        #expect(lines.count == 26 && lines.last == "", "24 records, a header and the final CRLF")
        #expect(lines[1].hasPrefix("\(tree.path)/flight1/DJI_0001.JPG,Ready,,"))
        #expect(lines[13].hasPrefix("\(tree.path)/flight2/DJI_0013.JPG,Invalid,checksum mismatch,"))
        #expect(lines[24].hasPrefix("\(tree.path)/flight2/DJI_0024.JPG,not sent,,"))

        let json = await Self.run(["report", tree.path, "--json"])
        #expect(json.code == 0)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.out.utf8)) as? [String: Any])
        let summary = try #require(object["summary"] as? [String: Any])
        let states = try #require(summary["states"] as? [String: [String: Int]])
        #expect(states["ready"]?["images"] == 18)
        #expect(states["invalid"]?["images"] == 4)
        #expect(states["notSent"]?["images"] == 2)
        #expect(summary["imagesWithoutPosition"] as? Int == 0)
        // The sample's two flights are 2 folders and, by time, two runs more than 10 minutes apart.
        let flights = try #require(object["flights"] as? [[String: Any]])
        #expect(flights.map { $0["images"] as? Int } == [12, 12])
        let rows = try #require(object["rows"] as? [[String: Any]])
        #expect(rows.count == 24)
        #expect(rows.allSatisfy { ($0["flight"] as? Int) == (($0["path"] as? String)?.contains("/flight1/") == true ? 1 : 2) })

        let text = await Self.run(["report", tree.path])
        #expect(text.code == 0)
        #expect(text.out.hasSuffix("Summary: 24 files (\(ByteCount.text(try Self.bytes(tree)))): Ready 18 · Invalid 4 · not sent 2 · every image has a GPS position · 2 flights\n"))
        // The header, the source, the column names, 24 rows, the summary.
        let lineCount = text.out.split(separator: "\n").count
        #expect(lineCount == 28)
        #expect(!text.out.contains("alti-demo"))
        #expect(text.connections == 0)
        // Read only: the manifest byte for byte, no lock, journal or temp file left beside it.
        #expect(try tree.read(".alti/manifest.json") == manifestBytes)
        #expect(try FileManager.default.contentsOfDirectory(atPath: tree.path(".alti")).sorted() == stateFiles)
    }

    static func bytes(_ tree: TempTree) throws -> Int64 {
        try tree.files().filter { $0.hasSuffix(".JPG") }.reduce(Int64(0)) {
            $0 + ((try FileManager.default.attributesOfItem(atPath: tree.path($1))[.size] as? NSNumber)?.int64Value ?? 0)
        }
    }

    /// Renders the page headless and checks the screenshot's pixels (Python + Pillow): the map
    /// is found by its background colour; each image's position, projected with the documented
    /// formula from Pillow's GPS, shows its state's colour; round markers for flight 1 and square
    /// ones for flight 2; background away from every image and track; Invalid's colour visible.
    @Test func theHTMLPageRendersEachImageInItsStateColourWhereItsGPSSays() async throws {
        let tree = try await Self.scannedSample()
        defer { tree.remove() }
        let exif = try Self.pillowExif(tree.path)
        try Self.record(tree, states: Self.sampleStates)
        let page = tree.path("out/report.html")
        try FileManager.default.createDirectory(atPath: tree.path("out"), withIntermediateDirectories: true)

        // The built binary, as a user runs it.
        let result = try Run.alti(["report", tree.path, "--html", page], environment: ["XDG_CONFIG_HOME": "/nonexistent-alti-config"])
        #expect(result.exitCode == 0, "\(result.stderr)")
        #expect(result.stdout == "wrote \(page): Summary: 24 files (\(ByteCount.text(try Self.bytes(tree)))): Ready 18 · Invalid 4 · not sent 2 · every image has a GPS position · 2 flights\n")
        let html = try String(contentsOfFile: page, encoding: .utf8)
        for pattern in ["src=", "href=", "url(", "@import", "<script", "<link", "<img", "<iframe", "http://", "https://"] {
            #expect(!html.contains(pattern), "the page holds \(pattern)")
        }

        let screenshot = tree.path("out/shot.png")
        let chromium = try Run.process("chromium", [
            "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--force-device-scale-factor=1",
            "--user-data-dir=\(tree.path("out/profile"))", "--screenshot=\(screenshot)", "--window-size=1200,1500",
            URL(fileURLWithPath: page).absoluteString,
        ])
        #expect(chromium.exitCode == 0 && FileManager.default.fileExists(atPath: screenshot),
                "chromium (scripts/bootstrap --test installs it) made no screenshot: exit \(chromium.exitCode) \(chromium.stderr.suffix(600))")

        let manifest = try #require(try ManifestStore().load(tree.url(".alti/manifest.json")))
        var points: [[String: Any]] = []
        for (index, entry) in manifest.entries.enumerated() {
            let gps = try #require(exif[entry.path]?.gps)
            let state = Self.sampleStates[index + 1] ?? .ready
            let category: ReportCategory = state == nil ? .notSent : state == .invalid ? .invalid : .ready
            points.append(["path": entry.path, "lat": gps.latitude, "lon": gps.longitude,
                           "colour": CoverageMap.palette[category]!, "flight": entry.path.hasPrefix("flight1/") ? 1 : 2])
        }
        let spec = try tree.write("out/spec.json", String(decoding: try JSONSerialization.data(withJSONObject: [
            "points": points, "background": CoverageMap.background, "marker": CoverageMap.markerSize(24),
            "width": MapProjection.width, "height": MapProjection.height, "margin": MapProjection.margin,
        ]), as: UTF8.self))
        let check = try Run.process(TestPython.interpreter, ["-c", Self.pixelCheck, screenshot, spec])
        #expect(check.exitCode == 0, "\(check.stderr)")
        let found = try #require(try JSONSerialization.jsonObject(with: Data(check.stdout.utf8)) as? [String: Any], "\(check.stdout) \(check.stderr)")
        let box = try #require(found["map"] as? [Int], "no map background in the screenshot")
        let boxSize = [box[2] - box[0], box[3] - box[1]]
        #expect(boxSize == [1000, 700], "the map's background box: \(box)")
        #expect(found["wrongDots"] as? [String] == [], "dots not in their state colour: \(found["wrongDots"] ?? "")")
        #expect(found["dotsChecked"] as? Int == 24)
        #expect(found["wrongShapes"] as? [String] == [], "markers not of their flight's shape")
        #expect((found["backgroundChecked"] as? Int ?? 0) > 300)
        #expect(found["backgroundWrong"] as? [String] == [])
        let pixels = try #require(found["pixels"] as? [String: Int])
        #expect((pixels[CoverageMap.palette[.ready]!] ?? 0) > 18 * 60)
        #expect((pixels[CoverageMap.palette[.invalid]!] ?? 0) > 4 * 60)
        #expect((pixels[CoverageMap.palette[.notSent]!] ?? 0) > 2 * 60)
        #expect(pixels[CoverageMap.palette[.pending]!] == 0)
    }

    /// argv: the screenshot, the spec (points with lat, lon, colour, flight; the background; the
    /// marker size; the viewBox and margin). Prints what it found as JSON.
    static let pixelCheck = """
        import json, math, sys
        from PIL import Image, ImageChops
        shot = Image.open(sys.argv[1]).convert("RGB")
        spec = json.load(open(sys.argv[2]))
        rgb = lambda h: tuple(int(h[i:i + 2], 16) for i in (1, 3, 5))
        def mask(colour):
            bands = [b.point(lambda v, c=c: 255 if v == c else 0) for b, c in zip(shot.split(), rgb(colour))]
            return ImageChops.multiply(ImageChops.multiply(bands[0], bands[1]), bands[2])
        box = mask(spec["background"]).getbbox()
        left, top = box[0], box[1]
        # The documented projection, recomputed here from Pillow's GPS.
        pts = spec["points"]
        W, H, m = spec["width"], spec["height"], spec["margin"]
        lat0 = sum(p["lat"] for p in pts) / len(pts)
        k = math.cos(math.radians(lat0))
        xs = [p["lon"] * k for p in pts]; ys = [p["lat"] for p in pts]
        sx, sy = max(xs) - min(xs), max(ys) - min(ys)
        scale = min([v for v in ((W - 2 * m) / sx if sx else None, (H - 2 * m) / sy if sy else None) if v])
        ox = m + ((W - 2 * m) - sx * scale) / 2; oy = m + ((H - 2 * m) - sy * scale) / 2
        for p, x in zip(pts, xs):
            p["x"] = left + ox + (x - min(xs)) * scale
            p["y"] = top + oy + (max(ys) - p["lat"]) * scale
        def near(c, want, tol=6): return all(abs(a - b) <= tol for a, b in zip(c, rgb(want)))
        wrong, shapes = [], []
        r = spec["marker"] / 2
        for p in pts:
            cx, cy = int(p["x"]), int(p["y"])
            centre = [shot.getpixel((cx + dx, cy + dy)) for dx in (-1, 0, 1) for dy in (-1, 0, 1)]
            if not all(near(c, p["colour"]) for c in centre):
                wrong.append("%s at (%d, %d): %s, want %s" % (p["path"], cx, cy, shot.getpixel((cx, cy)), p["colour"]))
            # Corners at 0.85 r along both axes: inside a square marker, outside a round one.
            d = int(r * 0.85)
            corners = sum(near(shot.getpixel((cx + sx_, cy + sy_)), p["colour"]) for sx_ in (-d, d) for sy_ in (-d, d))
            if (p["flight"] == 2 and corners < 3) or (p["flight"] == 1 and corners > 1):
                shapes.append("%s (flight %d): %d of 4 corners in its colour" % (p["path"], p["flight"], corners))
        # Background: a grid over the map, away from every marker and every track segment.
        order = {}
        for p in pts: order.setdefault(p["flight"], []).append(p)
        segments = [(a, b) for f in order.values() for a, b in zip(f, f[1:])]
        def seg_dist(px, py, a, b):
            ax, ay, bx, by = a["x"], a["y"], b["x"], b["y"]
            L = (bx - ax) ** 2 + (by - ay) ** 2
            t = 0 if L == 0 else max(0, min(1, ((px - ax) * (bx - ax) + (py - ay) * (by - ay)) / L))
            return math.hypot(px - (ax + t * (bx - ax)), py - (ay + t * (by - ay)))
        checked, bad = 0, []
        for gx in range(left + 5, box[2] - 5, 20):
            for gy in range(top + 5, box[3] - 5, 20):
                if any(math.hypot(gx - p["x"], gy - p["y"]) < spec["marker"] + 3 for p in pts): continue
                if any(seg_dist(gx, gy, a, b) < 4 for a, b in segments): continue
                checked += 1
                if shot.getpixel((gx, gy)) != rgb(spec["background"]):
                    bad.append("(%d, %d): %s" % (gx, gy, shot.getpixel((gx, gy))))
        counts = {}
        for colour in set(p["colour"] for p in pts) | {"#E69F00"}:
            counts[colour] = mask(colour).crop(box).histogram()[255]
        print(json.dumps({"map": list(box), "dotsChecked": len(pts), "wrongDots": wrong, "wrongShapes": shapes,
                          "backgroundChecked": checked, "backgroundWrong": bad[:20], "pixels": counts}))
        """
}
