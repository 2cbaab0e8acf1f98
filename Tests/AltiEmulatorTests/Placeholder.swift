import Testing
@Test func placeholderAltiEmulatorTests() { #expect(Bool(true)) }
