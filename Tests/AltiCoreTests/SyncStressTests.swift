import Foundation
import Testing

@testable import AltiCore

/// Issue 11, "stress": images the server keeps refusing are not sent in a loop, a checksum
/// mismatch re-hashes, and a URL refused twice is explained by what happened (a slow link or the
/// clock). Over the engine's fakes; each run is a fresh recorder over the facts the last one left.
@Suite struct SyncStressTests {
    struct Outcome {
        var report: SyncReport
        var facts: [String: ServerFacts]
        var journal: [JournalEvent]
        var engine: SyncEngine
    }

    func run(_ server: FakeServer, _ items: [SyncItem], facts: [String: ServerFacts],
             options: SyncOptions = fastOptions()) async throws -> Outcome {
        let journal = try tempJournal()
        let engine = SyncEngine(catalog: FakeCatalog(server: server),
                                recorder: SyncRecorder(initial: facts, journals: [journal]), options: options)
        let report = try await engine.run(items: items, project: "p", storage: FakeStorage(server: server))
        return Outcome(report: report, facts: await engine.recorder.facts, journal: try SyncJournal.read(path: journal.path),
                       engine: engine)
    }

    func puts(_ server: FakeServer, _ sha1: String) async -> Int {
        guard let id = await server.images[sha1]?.id else { return 0 }
        return await server.putsPerImage[id] ?? 0
    }

    @Test func anImageRefusedForItsContentIsResentOnceThenHeldUntilResendInvalid() async throws {
        let server = FakeServer()
        let items = makeItems(2)
        let refused = items[0].sha1
        let reason = "not a JPEG, PNG or TIFF image"
        await server.refuseOnStore(refused, errors: [reason])

        // Run 1: sent once, refused: the verdict is counted, in the journal too (absolute facts).
        let first = try await run(server, items, facts: [:])
        #expect(await puts(server, refused) == 1)
        #expect(await puts(server, items[1].sha1) == 1)
        #expect(first.report.invalid[refused] == [reason])
        #expect(first.report.heldInvalid.isEmpty)
        #expect(first.facts[refused]?.refusedSends == 1)
        #expect(first.facts[items[1].sha1]?.refusedSends == 0)
        var replayed = ServerFacts()
        for event in first.journal where event.sha1 == refused { replayed.apply(event) }
        #expect(replayed.refusedSends == 1 && replayed.state == .invalid)
        // Folding the same journal twice changes nothing (a crash between save and delete).
        for event in first.journal where event.sha1 == refused { replayed.apply(event) }
        #expect(replayed.refusedSends == 1)

        // A second pass of the same run (--keep-trying runs the engine again): not sent again.
        let again = try await first.engine.run(items: items, project: "p", storage: FakeStorage(server: server))
        #expect(await puts(server, refused) == 1)
        #expect(again.heldInvalid == [refused])
        #expect(again.invalid[refused] == [reason])

        // Run 2 ("run again"): one re-send, refused again.
        let second = try await run(server, items, facts: first.facts)
        #expect(await puts(server, refused) == 2)
        #expect(second.report.heldInvalid.isEmpty)
        #expect(second.facts[refused]?.refusedSends == 2)

        // Run 3 and 4: held, reported with the server's reason, nothing sent.
        var facts = second.facts
        for _ in 0..<2 {
            let held = try await run(server, items, facts: facts)
            #expect(await puts(server, refused) == 2)
            #expect(held.report.heldInvalid == [refused])
            #expect(held.report.invalid[refused] == [reason])
            #expect(!held.report.toSend.contains(refused))
            #expect(held.engine.recorder.metrics.snapshot.transfers == 0)
            facts = held.facts
        }

        // --resend-invalid: sent once more, on request.
        var options = fastOptions()
        options.resendInvalid = true
        let asked = try await run(server, items, facts: facts, options: options)
        #expect(await puts(server, refused) == 3)
        #expect(asked.facts[refused]?.refusedSends == 3)

        // The server no longer holds the image (deleted in the web app): its verdicts are void.
        var gone = ServerFacts(state: .invalid, refusedSends: 3)
        gone.apply(JournalEvent(.state, sha1: refused, state: .absent))
        #expect(gone.refusedSends == 0)
    }

    @Test func anImageInvalidBeforeThisClientSentItIsSent() async throws {
        // Invalid without our bytes (a Pending image the server expired): not a refusal.
        let server = FakeServer()
        let items = makeItems(1)
        await server.seed(items[0].sha1, state: "Invalid")
        let outcome = try await run(server, items, facts: [items[0].sha1: ServerFacts(imageID: "img1", state: .invalid)])
        #expect(await puts(server, items[0].sha1) == 1)
        #expect(outcome.report.ready == [items[0].sha1])
        #expect(outcome.facts[items[0].sha1]?.refusedSends == 0)
    }

    @Test func aChecksumMismatchFailsTheImageForARehashInsteadOfSendingTheSameBytesAgain() async throws {
        let server = FakeServer()
        let items = makeItems(1)
        let sha1 = items[0].sha1
        let mismatch = "checksum mismatch: registered \(sha1), stored bytes have 0123"
        await server.refuseOnStore(sha1, errors: [mismatch])
        let first = try await run(server, items, facts: [:])
        #expect(await puts(server, sha1) == 1)
        #expect(first.report.failed[sha1]
            == "the server found that the bytes sent do not match the checksum (\(mismatch)); the file will be hashed again before it is sent: run again")
        // The journal asks the manifest to forget the hash (ManifestSync.fold -> forgetHash).
        let failure = try #require(first.journal.first { $0.kind == .failed && $0.sha1 == sha1 })
        #expect(failure.rehash == true)
        #expect(first.journal.contains { $0.kind == .state && $0.state == .invalid && $0.refusedSends == 1 })
        // Not sent again in this run.
        let again = try await first.engine.run(items: items, project: "p", storage: FakeStorage(server: server))
        #expect(await puts(server, sha1) == 1)
        #expect(again.heldInvalid == [sha1])
    }

    @Test func aURLRefusedTwiceBlamesASlowLinkWhenItExpiredDuringTheBodyAndTheClockOtherwise() async throws {
        // 1 s URLs; the clock moves 0.6 s at each reading, so every PUT outlives its URL.
        let slowServer = FakeServer()
        await slowServer.setLifetime(1)
        await slowServer.setRejectNextPuts(2)
        let clock = SteppingClock(step: 0.6)
        var options = fastOptions()
        options.transfers = 4
        let items = makeItems(1)
        let engine = SyncEngine(catalog: FakeCatalog(server: slowServer),
                                recorder: SyncRecorder(initial: [:], journals: [try tempJournal()]), options: options,
                                now: { clock.next() })
        let report = try await engine.run(items: items, project: "p",
                                          storage: FakeStorage(server: slowServer, now: { clock.next() }))
        let slow = try #require(report.failed[items[0].sha1])
        #expect(slow.hasPrefix(
            "the link is too slow for the server's URL lifetime (1 s): the store refused the upload twice (AccessDenied: Request has expired) after its URL had expired on the way (the last try took "))
        #expect(slow.hasSuffix(" s); run again with fewer --transfers (e.g. --transfers 2) so each image goes faster, or from a faster link"))
        #expect(!slow.contains("clock"))
        #expect(await slowServer.calls["PUT"] == 2)
        // Attempts are not stores: the summary reads "stored 0 images".
        #expect(engine.recorder.metrics.snapshot.transfers == 2)
        #expect(engine.recorder.metrics.snapshot.imagesStored == 0)
        #expect(engine.recorder.metrics.snapshot.bytesStored == 0)

        // Long-lived URLs refused while still valid here: the clock (or signing) it is.
        let server = FakeServer()
        await server.setRejectNextPuts(2)
        let engine2 = SyncEngine(catalog: FakeCatalog(server: server),
                                 recorder: SyncRecorder(initial: [:], journals: [try tempJournal()]), options: options)
        let report2 = try await engine2.run(items: items, project: "p", storage: FakeStorage(server: server))
        #expect(report2.failed[items[0].sha1]
            == "the store refused the upload twice (AccessDenied: Request has expired) while its URL was still valid by this laptop's clock; check the laptop's clock and run again")

        // The exact reason for a known duration, and with one transfer nothing to lower.
        let grant = UploadGrant.presignedURL("http://s3.test/x", expiresAt: Date(timeIntervalSince1970: 1001), lifetime: 1)
        #expect(SyncEngine.refusedTwice(code: "AccessDenied", message: "Request has expired", grant: grant,
                                        sentAt: Date(timeIntervalSince1970: 1000), endedAt: Date(timeIntervalSince1970: 1001.5),
                                        transfers: 1)
            == "the link is too slow for the server's URL lifetime (1 s): the store refused the upload twice (AccessDenied: Request has expired) after its URL had expired on the way (the last try took 1.5 s); run again from a faster link")
    }

    @Test func storedImagesAreCountedApartFromAttempts() async throws {
        let server = FakeServer()
        await server.setRejectNextPuts(1)  // one refusal, then a fresh URL stores it
        var options = fastOptions()
        options.transfers = 1
        let outcome = try await run(server, makeItems(3), facts: [:], options: options)
        let m = outcome.engine.recorder.metrics.snapshot
        #expect(m.transfers == 4)
        #expect(m.imagesStored == 3)
        #expect(m.bytesStored == makeItems(3).reduce(0) { $0 + $1.source.size })
    }
}

@Suite struct OfflineLineTests {
    @Test func theRetryBudgetLinePointsAtKeepTryingUnlessItWasGiven() {
        let plan = SyncPlan(items: makeItems(2), facts: [:])
        let exhausted = AltiError(.unavailable, "cannot reach http://api.test (HTTP 503) after 6 tries; nothing recorded was lost: run the same command again when the network is back")
        #expect(SyncService.offline(exhausted, left: plan).message
            == "offline: cannot reach http://api.test (HTTP 503) after 6 tries; nothing recorded was lost: run the same command again when the network is back; 2 images (2.0 KB) still to send; or add --keep-trying to wait for the link and resume in this run")
        #expect(SyncService.offline(exhausted, left: plan, keepTrying: KeepTrying(limit: .seconds(60))).message
            == "offline: cannot reach http://api.test (HTTP 503) after 6 tries; nothing recorded was lost: run the same command again when the network is back; 2 images (2.0 KB) still to send; --keep-trying's time is up")
        // The line is made once: a Waiter's line passed up again is not wrapped twice.
        let line = SyncService.offline(exhausted, left: plan)
        #expect(SyncService.offline(line, left: plan).message == line.message)
    }
}
