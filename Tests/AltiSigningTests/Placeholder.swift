import Testing
@Test func placeholderAltiSigningTests() { #expect(Bool(true)) }
