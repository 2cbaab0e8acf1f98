import AltiCore
import AltiTestSupport
import Foundation
import Testing

@testable import AltiCLI

/// Flags beat the environment, which beats the config file.
@Suite struct ConnectionOptionsTests {
    func withConfig(_ json: String?, _ body: ([String: String]) throws -> Void) throws {
        let tree = try TempTree("config")
        defer { tree.remove() }
        if let json { _ = try tree.write("alti/config.json", json) }
        try body(["XDG_CONFIG_HOME": tree.path, "HOME": tree.path])
    }

    @Test func precedenceIsFlagsThenEnvironmentThenFile() throws {
        try withConfig(#"{"endpoint": "http://file.example", "key": "file-key", "token": "file-token"}"#) { base in
            let fromFile = try ConnectionOptions.parse([]).resolve(environment: base)
            #expect(fromFile.endpoint == "http://file.example")
            #expect(fromFile.key == "file-key")

            var env = base
            env["ALTI_KEY"] = "env-key"
            env["ALTI_ENDPOINT"] = "http://env.example/"
            let fromEnv = try ConnectionOptions.parse([]).resolve(environment: env)
            #expect(fromEnv.key == "env-key")
            #expect(fromEnv.token == "file-token")
            #expect(fromEnv.endpoint == "http://env.example")

            let fromFlags = try ConnectionOptions.parse(["--key", "flag-key", "--endpoint", "https://flag.example"]).resolve(environment: env)
            #expect(fromFlags.key == "flag-key")
            #expect(fromFlags.endpoint == "https://flag.example")
        }
    }

    @Test func defaultsAndErrors() throws {
        try withConfig(nil) { env in
            let resolved = try ConnectionOptions.parse([]).resolve(environment: env)
            #expect(resolved.endpoint == "https://api.altizure.com")
            #expect(throws: AltiError.self) { try resolved.requireCredentials() }
            #expect(throws: AltiError.self) { try ConnectionOptions.parse(["--endpoint", "ftp://x"]).resolve(environment: env) }
        }
        try withConfig("{not json") { env in
            do {
                _ = try ConnectionOptions.parse([]).resolve(environment: env)
                Issue.record("expected a config error")
            } catch let error as AltiError {
                #expect(error.kind == .config)
                #expect(error.exitCode == 78)
                #expect(error.message.contains("config.json"))
            }
        }
    }
}
