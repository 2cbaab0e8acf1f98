import Foundation
import Testing

@testable import AltiCore

/// The window rule of issue 13: as big as the batch allows while a window's bytes go up within
/// half a grant's usable lifetime at the measured (else assumed) rate.
@Suite struct RegistrationWindowTests {
    let rule = RegistrationWindow(first: 16, limit: 100)
    let images = [Int64](repeating: 400_000, count: 300)

    @Test func theFirstWindowIsSmallWhileTheLifetimeIsUnknown() {
        #expect(rule.size(next: images, lifetime: .unknown, bytesPerSecond: 50_000_000) == 16)
        #expect(RegistrationWindow(first: 16, limit: 10).first == 10)
        #expect(RegistrationWindow(first: 0, limit: 100).first == 1)
    }

    @Test func threeHourURLsFillTheBatchEvenOnAnAssumedThinLink() {
        // 10,740 s usable, half of it at 16 KiB/s: 88 MB, more than 100 images of 400 kB.
        #expect(rule.size(next: images, lifetime: .seconds(10_799), bytesPerSecond: nil) == 100)
        #expect(rule.size(next: images.prefix(37), lifetime: .seconds(10_799), bytesPerSecond: nil) == 37)
    }

    @Test func aShortLifetimeKeepsWindowsToWhatTheMeasuredRateSendsInTime() {
        // 60 s URLs: 45 s usable, 22.5 s at 1 MB/s = 22.5 MB: 56 images of 400 kB.
        #expect(rule.size(next: images, lifetime: .seconds(60), bytesPerSecond: 1_000_000) == 56)
        // The same URLs on a link ten times slower: 5 images.
        #expect(rule.size(next: images, lifetime: .seconds(60), bytesPerSecond: 100_000) == 5)
        // 2 s URLs at 300 kB/s: never less than one image, whatever the budget.
        #expect(rule.size(next: images, lifetime: .seconds(2), bytesPerSecond: 300_000) == 1)
        #expect(rule.size(next: images, lifetime: .seconds(0), bytesPerSecond: nil) == 1)
    }

    @Test func grantsThatNeverExpireFillTheBatch() {
        #expect(rule.size(next: images, lifetime: .unlimited, bytesPerSecond: nil) == 100)
        #expect(RegistrationWindow.lifetime(of: [.objectKey("p/a.jpg")]) == .unlimited)
        #expect(RegistrationWindow.lifetime(of: []) == .unknown)
        let soon = Date()
        #expect(RegistrationWindow.lifetime(of: [.presignedURL("u", expiresAt: soon, lifetime: 30),
                                                 .presignedURL("v", expiresAt: soon, lifetime: 20)]) == .seconds(20))
    }
}
