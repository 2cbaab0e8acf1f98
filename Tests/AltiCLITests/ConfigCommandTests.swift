@testable import AltiCLI
import AltiEmulator
import AltiTestSupport
import Foundation
import Testing

@testable import AltiCore

/// `alti config` in-process, with a temp HOME and XDG_CONFIG_HOME: the file's JSON and mode after
/// each command, secrets never in the output, the world-readable warning, the old flat file,
/// the official config.yaml, and `--profile` choosing what a real sync and status send.
@Suite struct ConfigCommandTests {
    // Long random-looking secrets (so `show` shows a 4-character prefix) that appear nowhere else.
    static let fieldKey = "FieldKeyQ7pL2mX9vR4tY8wZ3nB6cD1"
    static let fieldToken = "FieldTokJ5hG8kS2dF7aP4oI9uE3rW6"
    static let labKey = "LabKeyM3nB8vC2xZ7lK4jH9gF6dS1aQ"
    static let labToken = "LabTokP0oI9uY8tR7eW6qA5sD4fG3hJ"
    static var secrets: [String] { [fieldKey, fieldToken, labKey, labToken] }
    /// The official CLI's config.yaml, with comments and quoted values (also read by ProfileConfigTests).
    static var officialFixture: String { Run.packageRoot.appendingPathComponent("Tests/Fixtures/alti-cli/config.yaml").path }

    struct Outcome {
        var code: Int32
        var out: String
        var err: String
        var all: String { out + err }
    }

    /// A temp home: XDG_CONFIG_HOME under it, so the config file is `<home>/xdg/alti/config.json`.
    struct Home {
        let tree: TempTree
        var env: [String: String] { ["HOME": tree.path, "XDG_CONFIG_HOME": tree.path("xdg"), "ALTI_RETRY_BASE_MS": "10"] }
        var configPath: String { tree.path("xdg/alti/config.json") }

        init() throws { tree = try TempTree("config-home") }

        func json() throws -> [String: Any] {
            let data = try Data(contentsOf: URL(fileURLWithPath: configPath))
            return try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        }

        func profiles() throws -> [String: [String: String]] {
            try #require(try json()["profiles"] as? [String: [String: String]])
        }
    }

    static func run(_ args: [String], _ env: [String: String], stdin: String = "") async -> Outcome {
        let captured = CommandContextTests.Captured()
        var context = CommandContextTests.context(env, captured)
        context.readStandardInput = { Data(stdin.utf8) }
        let code = await AltiCommand.execute(args, context: context)
        return Outcome(code: code, out: captured.stdout, err: captured.stderr)
    }

    static func mode(_ path: String) throws -> mode_t {
        var info = stat()
        guard stat(path, &info) == 0 else { throw AltiError(.ioError, "stat \(path)") }
        return info.st_mode & 0o777
    }

    static func expectNoSecret(_ outcome: Outcome, _ what: String, sourceLocation: SourceLocation = #_sourceLocation) {
        for secret in secrets {
            #expect(!outcome.all.contains(secret), "\(what) printed a secret: \(outcome.all)", sourceLocation: sourceLocation)
        }
    }

    // MARK: set, use, list, show, remove

    @Test func setUseListShowRemoveRoundTrip() async throws {
        let home = try Home()
        defer { home.tree.remove() }

        // Both secrets from stdin, the endpoint as a preset.
        let created = await Self.run(["config", "set", "field", "--endpoint", "cn", "--key-stdin", "--token-stdin"], home.env,
                                     stdin: "\(Self.fieldKey)\n\(Self.fieldToken)\n")
        #expect(created.code == 0, "\(created.err)")
        #expect(created.out == "created profile field (current): https://api.altizure.cn, key set, token set; file \(home.configPath)\n")
        #expect(try home.json()["current"] as? String == "field")
        #expect(try home.profiles() == ["field": ["endpoint": "https://api.altizure.cn", "key": Self.fieldKey, "token": Self.fieldToken]])
        #expect(try Self.mode(home.configPath) == 0o600)
        #expect(try Self.mode(home.tree.path("xdg/alti")) == 0o700)

        // From the environment, a private origin; not current (field was first).
        var env = home.env
        env["ALTI_KEY"] = Self.labKey
        env["ALTI_TOKEN"] = Self.labToken
        let lab = await Self.run(["config", "set", "lab", "--endpoint", "http://127.0.0.1:8082/", "--from-env"], env)
        #expect(lab.code == 0, "\(lab.err)")
        #expect(try home.profiles()["lab"] == ["endpoint": "http://127.0.0.1:8082", "key": Self.labKey, "token": Self.labToken])
        #expect(try home.json()["current"] as? String == "field")

        let list = await Self.run(["config", "list"], home.env)
        #expect(list.code == 0)
        #expect(list.out == """
              NAME  ENDPOINT                KEY TOKEN
            * field https://api.altizure.cn set set
              lab   http://127.0.0.1:8082   set set
            (* current; file \(home.configPath))

            """)
        let bare = await Self.run(["config"], home.env)  // list is the default
        #expect(bare.out == list.out)

        let listJSON = await Self.run(["config", "list", "--json"], home.env)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(listJSON.out.utf8)) as? [String: Any])
        #expect(object["current"] as? String == "field")
        #expect(object["file"] as? String == home.configPath)
        let rows = try #require(object["profiles"] as? [[String: Any]])
        #expect(rows.map { $0["name"] as? String } == ["field", "lab"])
        #expect(rows.map { $0["key"] as? Bool } == [true, true])

        let use = await Self.run(["config", "use", "lab"], home.env)
        #expect(use.code == 0, "\(use.err)")
        #expect(use.out == "current profile: lab (http://127.0.0.1:8082, key set, token set) in \(home.configPath)\n")
        #expect(try home.json()["current"] as? String == "lab")

        let show = await Self.run(["config", "show"], home.env)
        #expect(show.code == 0)
        #expect(show.out == """
            profile   lab (current)
            endpoint  http://127.0.0.1:8082
            key       LabK… (\(Self.labKey.count) characters)
            token     LabT… (\(Self.labToken.count) characters)
            file      \(home.configPath)

            """)
        let showField = await Self.run(["config", "show", "field"], env)
        #expect(showField.out.contains("key       Fiel… (\(Self.fieldKey.count) characters)\n"))
        #expect(showField.out.contains("note: ALTI_KEY, ALTI_TOKEN are set: commands use them instead of this profile's values unless run with --profile field\n"))

        // Only the token changes; the key stays.
        let newToken = await Self.run(["config", "set", "field", "--token-stdin"], home.env, stdin: "\(Self.labToken)\n")
        #expect(newToken.code == 0)
        #expect(try home.profiles()["field"]?["token"] == Self.labToken)
        #expect(try home.profiles()["field"]?["key"] == Self.fieldKey)

        let remove = await Self.run(["config", "remove", "lab"], home.env)
        #expect(remove.code == 0)
        #expect(remove.out == "removed profile lab from \(home.configPath)\nit was current; no profile is current now: choose one with alti config use NAME\n")
        #expect(try home.profiles().keys.sorted() == ["field"])
        #expect(try home.json()["current"] == nil)
        #expect(try Self.mode(home.configPath) == 0o600)

        for outcome in [created, lab, list, bare, listJSON, use, show, showField, newToken, remove] {
            Self.expectNoSecret(outcome, "a config command")
        }
    }

    @Test func badNamesEndpointsAndUnknownProfilesAreOneLine() async throws {
        let home = try Home()
        defer { home.tree.remove() }
        let none = await Self.run(["config", "use", "cn"], home.env)
        #expect(none.code == 78)
        #expect(none.err == "alti: no profile 'cn': \(home.configPath) has no profiles; create it with alti config set cn --endpoint URL\n")

        _ = await Self.run(["config", "set", "a", "--endpoint", "com"], home.env)
        _ = await Self.run(["config", "set", "b", "--endpoint", "cn"], home.env)
        for command in [["use", "c"], ["show", "c"], ["remove", "c"]] {
            let unknown = await Self.run(["config"] + command, home.env)
            #expect(unknown.code == 78)
            #expect(unknown.err == "alti: no profile 'c' in \(home.configPath); known: a, b (alti config list)\n")
        }
        let badName = await Self.run(["config", "set", "a b"], home.env)
        #expect(badName.code == 64)
        #expect(badName.err.hasPrefix("alti: profile name 'a b' is not valid"))
        let badEndpoint = await Self.run(["config", "set", "c", "--endpoint", "ftp://x"], home.env)
        #expect(badEndpoint.code == 64)
        #expect(badEndpoint.err == "alti: endpoint 'ftp://x' is not an http(s) origin; use e.g. --endpoint https://api.altizure.com\n")
        // A token pasted as the endpoint is not echoed.
        let pasted = await Self.run(["config", "set", "c", "--endpoint", Self.fieldToken], home.env)
        #expect(pasted.code == 64)
        Self.expectNoSecret(pasted, "a bad endpoint")
        let noStdin = await Self.run(["config", "set", "c", "--token-stdin"], home.env, stdin: "")
        #expect(noStdin.code == 64)
        #expect(noStdin.err == "alti: no user token on standard input: give it on the first line\n")
        let typo = await Self.run(["config", "sett", "a"], home.env)
        #expect(typo.code == 64)
        #expect(typo.err == "alti: unknown command 'sett' for alti config; did you mean 'alti config set'? (commands: import, list, remove, set, show, use; see alti config --help)\n")
        let optionTypo = await Self.run(["config", "set", "a", "--tokn-stdin"], home.env)
        #expect(optionTypo.code == 64)
        #expect(optionTypo.err == "alti: unknown option '--tokn-stdin' for alti config set; did you mean '--token-stdin'? (see alti config set --help)\n")
        #expect(try home.profiles().keys.sorted() == ["a", "b"])  // nothing above changed the file
        // A secret given as a flag works, with a note on how to keep it out of ps.
        let asFlag = await Self.run(["config", "set", "b", "--token", Self.labToken], home.env)
        #expect(asFlag.code == 0)
        #expect(asFlag.err == "alti: note: a key or token given as a flag is visible to other users in ps and stays in the shell history; --key-stdin/--token-stdin or --from-env avoid that\n")
        #expect(try home.profiles()["b"]?["token"] == Self.labToken)
        Self.expectNoSecret(asFlag, "set --token")
    }

    // MARK: Precedence

    /// Per value: flags > the profile of --profile > ALTI_* > the profile of ALTI_PROFILE > current.
    @Test func eachValueComesFromTheFirstLevelThatSetsIt() throws {
        let home = try Home()
        defer { home.tree.remove() }
        try home.tree.write("xdg/alti/config.json", """
            {"current": "cur", "profiles": {
              "cur": {"endpoint": "http://current.example", "key": "cur-key", "token": "cur-token"},
              "env": {"endpoint": "http://env-profile.example", "key": "envp-key"},
              "flag": {"endpoint": "http://flag-profile.example", "token": "flagp-token"},
              "bad": {"endpoint": "ftp://x"}}}
            """)
        chmod(home.configPath, 0o600)
        func resolve(_ args: [String], _ extra: [String: String] = [:]) throws -> ResolvedConnection {
            try ConnectionOptions.parse(args).resolve(environment: home.env.merging(extra) { _, new in new })
        }
        let current = try resolve([])
        #expect([current.endpoint, current.key, current.token, current.profile] == ["http://current.example", "cur-key", "cur-token", "cur"])
        // ALTI_PROFILE replaces the current profile as a whole (its missing token is not taken from `cur`).
        let byEnvProfile = try resolve([], ["ALTI_PROFILE": "env"])
        #expect([byEnvProfile.endpoint, byEnvProfile.key, byEnvProfile.profile] == ["http://env-profile.example", "envp-key", "env"])
        #expect(byEnvProfile.token == nil)
        // ALTI_* beat the profile ALTI_PROFILE names...
        let envBeatsIt = try resolve([], ["ALTI_PROFILE": "env", "ALTI_KEY": "env-key", "ALTI_TOKEN": "env-token"])
        #expect([envBeatsIt.endpoint, envBeatsIt.key, envBeatsIt.token] == ["http://env-profile.example", "env-key", "env-token"])
        // ... and lose to the one --profile names, where it sets the value.
        let byFlagProfile = try resolve(["--profile", "flag"], ["ALTI_PROFILE": "env", "ALTI_KEY": "env-key", "ALTI_TOKEN": "env-token"])
        #expect([byFlagProfile.endpoint, byFlagProfile.key, byFlagProfile.token, byFlagProfile.profile]
                == ["http://flag-profile.example", "env-key", "flagp-token", "flag"])
        // Flags beat everything.
        let flags = try resolve(["--profile", "flag", "--endpoint", "cn", "--token", "flag-token"], ["ALTI_TOKEN": "env-token"])
        #expect([flags.endpoint, flags.token] == ["https://api.altizure.cn", "flag-token"])

        // A bad endpoint stored in a profile is the config's fault: 78, naming profile and file.
        do {
            _ = try resolve(["--profile", "bad"])
            Issue.record("a bad stored endpoint was accepted")
        } catch let error as AltiError {
            #expect(error.exitCode == 78)
            #expect(error.message == "profile bad in \(home.configPath): endpoint 'ftp://x' is not an http(s) origin; fix it with alti config set bad --endpoint https://api.altizure.com")
        }
        // A current profile that is not in the file (a hand edit) is named, not replaced by another.
        try home.tree.write("xdg/alti/config.json", #"{"current": "gone", "profiles": {"a": {}}}"#)
        #expect(throws: AltiError(.config, "no profile 'gone' (the current profile of the file) in \(home.configPath); known: a (alti config list)")) {
            try resolve([])
        }
    }

    // MARK: The file's permissions

    @Test func aConfigFileOthersCanReadIsWarnedAboutOnce() async throws {
        let home = try Home()
        defer { home.tree.remove() }
        _ = await Self.run(["config", "set", "a", "--key-stdin"], home.env, stdin: Self.fieldKey)
        #expect(chmod(home.configPath, 0o644) == 0)
        let warning = "alti: warning: the config file \(home.configPath) holds secrets and can be read by other users (mode 644); run chmod 600 \(home.configPath)\n"
        let list = await Self.run(["config", "list"], home.env)
        #expect(list.code == 0)
        #expect(list.err == warning)
        let show = await Self.run(["config", "show", "a"], home.env)
        #expect(show.err == warning)
        #expect(show.out.contains("key       Fiel…"))
        // A connecting command warns too (once), then goes on to its own result.
        let sync = await Self.run(["sync", home.tree.path, "--project", ProjectSeed.sample.id, "--dry-run"], home.env)
        #expect(sync.err.components(separatedBy: "alti: warning:").count == 2, "\(sync.err)")
        #expect(sync.err.hasPrefix(warning))
        // The next write narrows it to 0600 again.
        _ = await Self.run(["config", "use", "a"], home.env)
        #expect(try Self.mode(home.configPath) == 0o600)
        let quiet = await Self.run(["config", "list"], home.env)
        #expect(quiet.err == "")
        for outcome in [list, show, sync, quiet] { Self.expectNoSecret(outcome, "a command") }
    }

    // MARK: The flat file of earlier versions

    @Test func theOldFlatFileStillWorksAndBecomesDefault() async throws {
        let home = try Home()
        defer { home.tree.remove() }
        let flat = #"{"endpoint": "https://api.altizure.cn", "key": "\#(Self.fieldKey)", "token": "\#(Self.fieldToken)"}"#
        try home.tree.write("xdg/alti/config.json", flat)
        chmod(home.configPath, 0o600)

        let list = await Self.run(["config", "list"], home.env)
        #expect(list.code == 0, "\(list.err)")
        #expect(list.out.hasPrefix("  NAME    ENDPOINT                KEY TOKEN\n* default https://api.altizure.cn set set\n"))
        let resolved = try ConnectionOptions.parse([]).resolve(environment: home.env)
        #expect(resolved.endpoint == "https://api.altizure.cn" && resolved.key == Self.fieldKey && resolved.profile == "default")
        // Reading never rewrites it.
        #expect(try String(contentsOfFile: home.configPath, encoding: .utf8) == flat)

        let added = await Self.run(["config", "set", "lab", "--endpoint", "http://127.0.0.1:9"], home.env)
        #expect(added.code == 0)
        #expect(try home.json()["current"] as? String == "default")
        #expect(try home.profiles() == [
            "default": ["endpoint": "https://api.altizure.cn", "key": Self.fieldKey, "token": Self.fieldToken],
            "lab": ["endpoint": "http://127.0.0.1:9"],
        ])
        #expect(try Self.mode(home.configPath) == 0o600)
        Self.expectNoSecret(list, "list")
    }

    // MARK: Import of the official config.yaml

    @Test func importReadsTheOfficialConfigYAML() async throws {
        let home = try Home()
        defer { home.tree.remove() }
        try home.tree.copy(Self.officialFixture, to: ".altizure/config.yaml")
        let imported = await Self.run(["config", "import"], home.env)
        #expect(imported.code == 0, "\(imported.err)")
        #expect(imported.out == """
            imported default: https://api.altizure.com, key set, token not set
            imported 9f3c2a7b1e4d5c6a: https://api.altizure.com, key set, token set
            imported 0a1b2c3d4e5f6a7b: https://api.altizure.cn, key set, token set
            current profile: 9f3c2a7b1e4d5c6a; file \(home.configPath)

            """)
        #expect(try home.json()["current"] as? String == "9f3c2a7b1e4d5c6a")
        #expect(try home.profiles() == [
            "default": ["endpoint": "https://api.altizure.com", "key": "PubKeyAbcdefghijklmnopqrstuvwxyz012345"],
            "9f3c2a7b1e4d5c6a": ["endpoint": "https://api.altizure.com", "key": "AliceKeyAbcdefghijklmnopqrstuvwxyz01234",
                                 "token": "AliceTokAbcdefghijklmnopqrstuvwxyz01234"],
            "0a1b2c3d4e5f6a7b": ["endpoint": "https://api.altizure.cn", "key": "CnKeyAbcdefghijklmnopqrstuvwxyz0123456",
                                 "token": "CnTokAbcdefghijklmnopqrstuvwxyz0123456"],
        ])
        #expect(try Self.mode(home.configPath) == 0o600)
        let fixtureSecrets = ["PubKeyAbcdefghijklmnopqrstuvwxyz012345", "AliceKeyAbcdefghijklmnopqrstuvwxyz01234",
                              "AliceTokAbcdefghijklmnopqrstuvwxyz01234", "CnKeyAbcdefghijklmnopqrstuvwxyz0123456"]
        for secret in fixtureSecrets { #expect(!imported.all.contains(secret)) }

        // Again, from a named file: every profile exists, so each is kept.
        let again = await Self.run(["config", "import", home.tree.path(".altizure/config.yaml")], home.env)
        #expect(again.code == 0)
        #expect(again.out.hasPrefix("kept default: alti already has a profile of that name (--replace overwrites it)\n"))
    }

    @Test func aMalformedConfigYAMLIsOneLineNamingFileAndLineWithExit78() async throws {
        let home = try Home()
        defer { home.tree.remove() }
        let cases: [(String, Int)] = [
            ("scopes:\n  https://api*altizure*com:\n    endpoint: https://api.altizure.com\n    profiles:\n    - id: a\n      key: \"open\n", 6),
            ("# a comment\nactive: a\nscopes:\n  x:\n    endpoint: ftp://x\n    profiles:\n    - id: a\n", 7),
            ("active: a\n\tscopes:\n", 2),
            ("active: *ref\n", 1),
        ]
        for (index, (text, line)) in cases.enumerated() {
            let path = try home.tree.write("bad-\(index).yaml", text)
            let result = await Self.run(["config", "import", path], home.env)
            #expect(result.code == 78, "\(text)")
            #expect(result.err.hasPrefix("alti: \(path) line \(line): "), "\(result.err)")
            #expect(result.err.filter { $0 == "\n" }.count == 1)
            #expect(result.out.isEmpty)
        }
        #expect(!FileManager.default.fileExists(atPath: home.configPath))  // nothing half-imported
        let missing = await Self.run(["config", "import"], home.env)
        #expect(missing.code == 66)
        #expect(missing.err == "alti: \(home.tree.path)/.altizure/config.yaml does not exist; give the official CLI's config file: alti config import FILE\n")
    }

    // MARK: --profile and ALTI_PROFILE against the emulator

    /// The emulator accepts one key and token: a sync that uploads proves they are what the
    /// profile holds (not the ALTI_KEY in the environment, nor another profile's).
    @Test func profileChoosesTheEndpointAndCredentialsASyncAndStatusUse() async throws {
        let home = try Home()
        defer { home.tree.remove() }
        let survey = try TempTree("config-survey")
        defer { survey.remove() }
        for i in 1...3 { try survey.copy(CommandContextTests.sample(i), to: "IMG_\(i).JPG") }
        try survey.ageAllFiles()
        var emulatorConfig = testEmulatorConfiguration()
        emulatorConfig.key = Self.labKey
        emulatorConfig.token = Self.labToken
        try await withEmulator(emulatorConfig) { emu in
            // `nowhere` is current and unreachable; `wrong` reaches the emulator with other secrets.
            _ = await Self.run(["config", "set", "nowhere", "--endpoint", "http://127.0.0.1:9", "--key-stdin", "--token-stdin"],
                               home.env, stdin: "\(Self.fieldKey)\n\(Self.fieldToken)\n")
            _ = await Self.run(["config", "set", "emu", "--endpoint", emu.baseURL, "--key-stdin", "--token-stdin"],
                               home.env, stdin: "\(Self.labKey)\n\(Self.labToken)\n")
            _ = await Self.run(["config", "set", "wrong", "--endpoint", emu.baseURL, "--key-stdin", "--token-stdin"],
                               home.env, stdin: "\(Self.fieldKey)\n\(Self.fieldToken)\n")
            #expect(try home.json()["current"] as? String == "nowhere")

            // --profile is a flag: it beats ALTI_KEY in the environment.
            var env = home.env
            env["ALTI_KEY"] = Self.fieldKey
            let sync = await Self.run(["sync", survey.path, "--project", ProjectSeed.sample.id, "--profile", "emu", "--format", "json"], env)
            #expect(sync.code == 0, "\(sync.err)")
            var stats = await emu.state.stats()
            #expect(stats.putsByImage.count == 3)
            #expect(stats.registrations == 3)
            let report = try #require(try JSONSerialization.jsonObject(with: Data(sync.out.utf8)) as? [String: Any])
            #expect((report["ready"] as? [String])?.count == 3)
            let requestsAfterSync = stats.graphqlRequests

            // ALTI_PROFILE selects it for status --refresh ...
            env = home.env
            env["ALTI_PROFILE"] = "emu"
            let status = await Self.run(["status", survey.path, "--refresh", "--json"], env)
            #expect(status.code == 0, "\(status.err)")
            stats = await emu.state.stats()
            #expect(stats.graphqlRequests > requestsAfterSync)
            let statusReport = try #require(try JSONSerialization.jsonObject(with: Data(status.out.utf8)) as? [String: Any])
            #expect(statusReport["refreshed"] as? Bool == true)

            // ... but the environment's ALTI_KEY beats the profile ALTI_PROFILE names: refused.
            env["ALTI_KEY"] = Self.fieldKey
            let envWins = await Self.run(["status", survey.path, "--refresh"], env)
            #expect(envWins.code == 77, "\(envWins.err)")

            // Another profile's key reaches the same emulator and is refused.
            let wrong = await Self.run(["status", survey.path, "--refresh", "--profile", "wrong"], home.env)
            #expect(wrong.code == 77, "\(wrong.err)")

            // The current profile is used when nothing names one: its endpoint is not the one the
            // manifest is bound to, so the refresh stops before any request.
            let before = await emu.state.stats().graphqlRequests
            let current = await Self.run(["status", survey.path, "--refresh"], home.env)
            #expect(current.code == 67, "\(current.err)")
            #expect(current.err.contains("http://127.0.0.1:9"), "\(current.err)")
            #expect(await emu.state.stats().graphqlRequests == before)

            let unknown = await Self.run(["sync", survey.path, "--project", ProjectSeed.sample.id, "--profile", "emus"], home.env)
            #expect(unknown.code == 78)
            #expect(unknown.err == "alti: no profile 'emus' (--profile) in \(home.configPath); known: emu, nowhere, wrong (alti config list)\n")
            var badEnv = home.env
            badEnv["ALTI_PROFILE"] = "gone"
            let unknownEnv = await Self.run(["status", survey.path, "--refresh"], badEnv)
            #expect(unknownEnv.code == 78)
            #expect(unknownEnv.err == "alti: no profile 'gone' (ALTI_PROFILE) in \(home.configPath); known: emu, nowhere, wrong (alti config list)\n")

            for outcome in [sync, status, envWins, wrong, current, unknown, unknownEnv] {
                Self.expectNoSecret(outcome, "a connecting command")
            }
        }
    }
}
