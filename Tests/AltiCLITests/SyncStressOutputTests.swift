@testable import AltiCLI
import Foundation
import Testing

@testable import AltiCore

/// Issue 11, "messages that mislead under stress": the summary counts stores, not attempts; the
/// waiting line counts what it waits for; a --timeout stop and held Invalid images say what to do.
@Suite struct SyncStressOutputTests {
    func summary(_ change: (inout SyncReport) -> Void, metrics: SyncMetrics.Snapshot = SyncMetrics.Snapshot(),
                 timeLimit: String? = nil) -> SyncSummary {
        var report = SyncReport()
        report.total = 2
        change(&report)
        var s = SyncSummary(endpoint: "e", project: nil, cloud: "S3", bucket: "b", sources: [], manifests: [], report: report,
                            pathsBySHA1: ["a": "/survey/a.jpg", "b": "/survey/b.jpg"], metrics: metrics, dryRun: false,
                            waited: true, offlinePlan: false, seconds: 1)
        s.timeLimit = timeLimit
        return s
    }

    @Test func theSummaryCountsStoredImagesNotAttempts() {
        var m = SyncMetrics.Snapshot()
        m.transfers = 76
        m.imagesStored = 0
        m.registrations = 152
        m.grantRefreshes = 76
        m.apiRequests = 10
        let text = SyncRenderer.text(summary({ $0.failed = ["a": "x", "b": "y"] }, metrics: m))
        #expect(text.contains("\n  stored 0 images (0 bytes) in 1.0 s (76 uploads refused or failed); 152 registrations, 76 URL refreshes, 10 API requests\n"))
        #expect(!text.contains("sent 76"))

        m.transfers = 2
        m.imagesStored = 2
        m.bytesStored = 2_000_000
        let ok = SyncRenderer.text(summary({ $0.ready = ["a", "b"] }, metrics: m))
        #expect(ok.contains("\n  stored 2 images (2.0 MB) in 1.0 s; 152 registrations, 76 URL refreshes, 10 API requests\n"))
        let json = try! JSONSerialization.jsonObject(with: Data(try! SyncRenderer.json(summary({ $0.ready = ["a", "b"] }, metrics: m)).utf8)) as! [String: Any]
        #expect(json["imagesStored"] as? Int == 2)
        #expect(json["bytesSent"] as? Int == 2_000_000)
    }

    @Test func theWaitingLineCountsTheImagesBeingVerified() throws {
        let model = ProgressModel()
        let metrics = SyncMetrics()
        metrics.update { $0.apiRetries = 2 }
        model.follow(metrics)
        // A run with nothing to send (plan 0) that waits on 3 Uploaded images read "0/0 images".
        model.apply(.planned(images: 0, bytes: 0))
        model.apply(.phase(.waiting))
        model.apply(.awaiting(images: 3))
        model.apply(.recorded(JournalEvent(.state, sha1: "a", imageID: "1", state: .ready)))
        model.apply(.recorded(JournalEvent(.state, sha1: "b", imageID: "2", state: .invalid)))
        model.apply(.recorded(JournalEvent(.state, sha1: "c", imageID: "3", state: .uploaded)))
        #expect(LiveFrame.plainLine(try #require(model.snapshot()))
            == "alti: waiting for the server to verify 3 images: 2 answered · retries 2 · failed 0")
        // The upload phase keeps its counts, per pass.
        model.apply(.phase(.uploading))
        model.apply(.planned(images: 4, bytes: 4000))
        model.apply(.recorded(JournalEvent(.stored, sha1: "a", imageID: "1")))
        #expect(LiveFrame.plainLine(try #require(model.snapshot()))
            == "alti: uploading 1/4 images · 0 bytes of 4.0 KB · -- /s · ETA --:-- · retries 2 · failed 0 · 0 in flight")
    }

    @Test func aTimeoutIsIncompleteAndSaysWhatIsLeft() {
        let s = summary({
            $0.phase = .timedOut
            $0.ready = ["a"]
            $0.notSent = ["b"]
        }, timeLimit: "2s")
        #expect(SyncRenderer.exitCode(s) == 75)
        #expect(SyncRenderer.next(s)
            == "Timed out (--timeout 2s): 1 of 2 images on the server (1 Ready), 1 left to send. Progress is saved; run the same command again to continue.")
    }

    @Test func heldInvalidImagesSayHowToSendThemAgain() {
        let s = summary({
            $0.ready = ["a"]
            $0.invalid = ["b": ["not a JPEG, PNG or TIFF image"]]
            $0.heldInvalid = ["b"]
        })
        let text = SyncRenderer.text(s)
        #expect(text.contains("\n    Invalid: /survey/b.jpg: not a JPEG, PNG or TIFF image (refused again after a re-send: not sent until the file changes, or --resend-invalid)\n"))
        #expect(SyncRenderer.next(s)
            == "The server rejected 1 image again after a re-send: fix or replace them (a changed file is sent again), or send them unchanged with --resend-invalid.")
        #expect(SyncRenderer.exitCode(s) == 75)
    }

    @Test func durationsParseForTimeoutAndKeepTrying() throws {
        #expect(try Sync.duration("90s", flag: "--timeout") == .seconds(90))
        #expect(try Sync.duration("1h30m", flag: "--timeout") == .seconds(5400))
        #expect(try Sync.duration("2.5", flag: "--timeout") == .milliseconds(2500))
        #expect(throws: (any Error).self) { try Sync.duration("soon", flag: "--timeout") }
        do {
            _ = try Sync.duration("5x", flag: "--timeout")
        } catch {
            #expect("\(error)".contains("--timeout=5x is not a duration: write e.g. 90s, 30m, 2h or 1h30m"))
        }
    }
}
