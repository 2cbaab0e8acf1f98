import Testing
@Test func placeholderAltiNetTests() { #expect(Bool(true)) }
