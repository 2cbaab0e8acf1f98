@testable import AltiCLI
import AltiCore
import ArgumentParser
import Testing

/// `--transfers` (and its old name `--jobs`): auto by default, or a fixed count from 1 to 64.
@Suite struct TransferOptionsTests {
    @Test func autoIsTheDefaultAndBothNamesTakeAutoOrACount() throws {
        #expect(try TransferOptions.parse([]).resolved == .automatic)
        #expect(try TransferOptions.parse(["--transfers", "auto"]).resolved == .automatic)
        #expect(try TransferOptions.parse(["--transfers", "AUTO"]).resolved == .automatic)
        #expect(try TransferOptions.parse(["--jobs", "auto"]).resolved == .automatic)
        #expect(try TransferOptions.parse(["--transfers", "3"]).resolved == .fixed(3))
        #expect(try TransferOptions.parse(["--jobs", "64"]).resolved == .fixed(64))
        #expect(try TransferOptions.parse(["--transfers", "1"]).resolved.most == 1)
        #expect(TransferCount.automatic.most == TransferConcurrency.defaultCeiling)
    }

    @Test func countsOutOfRangeWordsAndBothNamesAreRefused() {
        for args in [["--transfers", "0"], ["--transfers", "65"], ["--jobs", "-1"], ["--transfers", "fast"],
                     ["--transfers", "auto", "--jobs", "2"]] {
            #expect(throws: (any Error).self, "\(args)") { try TransferOptions.parse(args) }
        }
    }

    @Test func helpShowsAuto() {
        let help = Sync.helpMessage(columns: 200)
        #expect(help.contains("--transfers <auto|n>"))
        #expect(help.contains("auto (the default"))
    }
}
