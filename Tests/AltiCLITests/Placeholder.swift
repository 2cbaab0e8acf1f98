import Testing
@Test func placeholderAltiCLITests() { #expect(Bool(true)) }
