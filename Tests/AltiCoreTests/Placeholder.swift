import Testing
@Test func placeholderAltiCoreTests() { #expect(Bool(true)) }
