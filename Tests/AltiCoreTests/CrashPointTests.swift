import Testing

@testable import AltiCore

/// The `ALTI_CRASH_AT` test hook's value: `<point>[:<n>][:pause]`; unset or empty arms nothing.
/// (Firing is exercised by the crash matrix on the built binary: it kills or pauses a process.)
@Suite struct CrashPointTests {
    @Test func parsesPointCountAndPause() {
        #expect(CrashPoint.parse(nil) == nil)
        #expect(CrashPoint.parse("") == nil)
        let plain = CrashPoint.parse("fold-saved")
        #expect(plain?.point == "fold-saved" && plain?.count == 1 && plain?.pause == false)
        let counted = CrashPoint.parse("journal-torn:5")
        #expect(counted?.point == "journal-torn" && counted?.count == 5 && counted?.pause == false)
        let paused = CrashPoint.parse("journal-append:2:pause")
        #expect(paused?.point == "journal-append" && paused?.count == 2 && paused?.pause == true)
        // A count that is not a positive number keeps the default: the first time.
        #expect(CrashPoint.parse("registered:0")?.count == 1)
    }

    @Test func anUnarmedPointDoesNothing() {
        // The test process has no ALTI_CRASH_AT: reaching any point returns, `before` never runs.
        var ran = false
        CrashPoint.reached("journal-torn") { ran = true }
        #expect(!ran)
    }
}
