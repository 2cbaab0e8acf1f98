import AltiTestSupport
import Foundation
import Testing

@testable import AltiCore

/// The config file's two formats, its atomic 0600 writes, and the strict reader of the official
/// CLI's config.yaml (altizure-api.md §8).
@Suite struct ProfileConfigTests {
    static var fixture: String { Run.packageRoot.appendingPathComponent("Tests/Fixtures/alti-cli/config.yaml").path }

    // MARK: alti's own file

    @Test func theFlatFileOfEarlierVersionsIsTheDefaultProfile() throws {
        let config = try ProfileConfig.decode(Data(#"{"endpoint": "http://x.example", "key": "k", "token": "t"}"#.utf8), path: "c.json")
        #expect(config.profiles == ["default": ConnectionProfile(endpoint: "http://x.example", key: "k", token: "t")])
        #expect(config.current == "default")
        #expect(try ProfileConfig.decode(Data("{}".utf8), path: "c.json") == ProfileConfig())
    }

    @Test func theProfilesFormatRoundTripsThroughItsBytes() throws {
        var config = ProfileConfig()
        config.set("cn", endpoint: "https://api.altizure.cn", key: "ck", token: nil)
        #expect(config.current == "cn")  // the first profile becomes current
        config.set("default", endpoint: "https://api.altizure.com", key: "dk", token: "dt")
        #expect(config.current == "cn")
        let text = String(decoding: config.encoded(), as: UTF8.self)
        #expect(text == """
            {
              "current" : "cn",
              "profiles" : {
                "cn" : {
                  "endpoint" : "https://api.altizure.cn",
                  "key" : "ck"
                },
                "default" : {
                  "endpoint" : "https://api.altizure.com",
                  "key" : "dk",
                  "token" : "dt"
                }
              }
            }

            """)
        #expect(try ProfileConfig.decode(config.encoded(), path: "c.json") == config)
        config.set("cn", endpoint: nil, key: "", token: "ct")  // empty removes, nil keeps
        #expect(config.profiles["cn"] == ConnectionProfile(endpoint: "https://api.altizure.cn", key: nil, token: "ct"))
        let removedCurrent = config.remove("cn")
        #expect(removedCurrent)
        #expect(config.current == nil && config.currentName == "default")
    }

    @Test func badFilesAreConfigErrorsNamingTheFile() {
        let cases = [
            "{not json", #"{"profiles": {"a b": {}}}"#, #"{"current": "x"}"#,
            #"{"key": "k", "profiles": {"a": {}}}"#, #"{"profiles": {"a": {"key": 5}}}"#,
        ]
        for text in cases {
            #expect(throws: AltiError.self, "\(text)") { try ProfileConfig.decode(Data(text.utf8), path: "/x/config.json") }
            do {
                _ = try ProfileConfig.decode(Data(text.utf8), path: "/x/config.json")
            } catch {
                #expect(error.kind == .config && error.exitCode == 78)
                #expect(error.message.contains("/x/config.json"))
            }
        }
    }

    @Test func namesAreWhatACommandLineNeedsNoQuotingFor() {
        for good in ["default", "cn", "field-team", "a.b_c", "9f3c2a7b1e4d5c6a", String(repeating: "a", count: 64)] {
            #expect(ProfileConfig.isValidName(good), "\(good)")
        }
        for bad in ["", "-x", ".x", "a b", "a/b", "é", String(repeating: "a", count: 65), "a;rm"] {
            #expect(!ProfileConfig.isValidName(bad), "\(bad)")
        }
    }

    @Test func secretsArePreviewedNeverShown() {
        let long = "AbCdEfGhIjKlMnOpQrStUvWxYz0123456789"
        #expect(SecretPreview.describe(long) == "AbCd… (36 characters)")
        #expect(SecretPreview.describe("short-secret") == "… (12 characters)")
        #expect(SecretPreview.describe(nil) == "not set")
        #expect(SecretPreview.describe("") == "not set")
    }

    // MARK: ConfigStore

    @Test func savesAreAtomicWithMode0600InA0700Folder() throws {
        let tree = try TempTree("config-store")
        defer { tree.remove() }
        let store = ConfigStore(environment: ["XDG_CONFIG_HOME": tree.path("xdg"), "HOME": tree.path])
        #expect(store.path == tree.path("xdg/alti/config.json"))
        var warnings: [String] = []
        #expect(try store.load { warnings.append($0) } == nil)
        var config = ProfileConfig()
        config.set("a", endpoint: "http://a.example", key: "k", token: "t")
        try store.save(config)
        #expect(try Self.mode(tree.path("xdg/alti/config.json")) == 0o600)
        #expect(try Self.mode(tree.path("xdg/alti")) == 0o700)
        #expect(try Self.mode(tree.path("xdg")) == 0o700)
        #expect(try store.load { warnings.append($0) } == config)
        #expect(warnings.isEmpty)
        // No temp file left beside it.
        #expect(try FileManager.default.contentsOfDirectory(atPath: tree.path("xdg/alti")) == ["config.json"])

        chmod(store.path, 0o644)
        #expect(try store.load { warnings.append($0) } == config)
        #expect(warnings == ["alti: warning: the config file \(store.path) holds secrets and can be read by other users (mode 644); run chmod 600 \(store.path)\n"])
        try store.save(config)  // a rewrite narrows it again
        #expect(try Self.mode(store.path) == 0o600)
    }

    static func mode(_ path: String) throws -> mode_t {
        var info = stat()
        guard stat(path, &info) == 0 else { throw AltiError(.ioError, "stat \(path)") }
        return info.st_mode & 0o777
    }

    // MARK: The official config.yaml

    @Test func theOfficialFixtureIsReadWithCommentsAndQuotes() throws {
        let text = try String(contentsOfFile: Self.fixture, encoding: .utf8)
        let official = try OfficialConfig.parse(text, path: Self.fixture)
        #expect(official.active == "9f3c2a7b1e4d5c6a")
        #expect(official.profiles.map(\.id) == ["default", "9f3c2a7b1e4d5c6a", "0a1b2c3d4e5f6a7b"])
        let byID = Dictionary(uniqueKeysWithValues: official.profiles.map { ($0.id, $0) })
        #expect(byID["default"]?.endpoint == "https://api.altizure.com")
        #expect(byID["default"]?.key == "PubKeyAbcdefghijklmnopqrstuvwxyz012345")
        #expect(byID["default"]?.token == nil)  // "" is no token
        #expect(byID["9f3c2a7b1e4d5c6a"]?.token == "AliceTokAbcdefghijklmnopqrstuvwxyz01234")
        #expect(byID["9f3c2a7b1e4d5c6a"]?.email == "alice@example.com")
        #expect(byID["0a1b2c3d4e5f6a7b"]?.endpoint == "https://api.altizure.cn")
        #expect(byID["0a1b2c3d4e5f6a7b"]?.name == "O'Brien")
        #expect(byID["0a1b2c3d4e5f6a7b"]?.token == "CnTokAbcdefghijklmnopqrstuvwxyz0123456")
        #expect(byID["0a1b2c3d4e5f6a7b"]?.line == 21)
    }

    @Test func yamlTheOfficialCLIWritesParsesToTheSameTree() throws {
        // yaml.v2's own output (alti-cli config_test.go), a sequence at its key's indentation.
        let text = "scopes:\n  https://api*altizure*com:\n    endpoint: https://api.altizure.com\n    profiles:\n    - id: default\n      key: K\n      token: \"\"\nactive: default\n"
        let node = try YAMLSubset.parse(text)
        let profile = YAMLSubset.Node.mapping([("id", .scalar("default", line: 5), 5), ("key", .scalar("K", line: 6), 6),
                                              ("token", .scalar("", line: 7), 7)], line: 5)
        let scope = YAMLSubset.Node.mapping([("endpoint", .scalar("https://api.altizure.com", line: 3), 3),
                                            ("profiles", .sequence([profile], line: 5), 4)], line: 3)
        let expected = YAMLSubset.Node.mapping([("scopes", .mapping([("https://api*altizure*com", scope, 2)], line: 2), 1),
                                               ("active", .scalar("default", line: 8), 8)], line: 1)
        #expect(node == expected)
    }

    @Test func aByteOrderMarkAndWindowsLineEndsAreRead() throws {
        let text = "\u{FEFF}active: a\r\nscopes:\r\n  x:\r\n    endpoint: http://x.example\r\n    profiles:\r\n    - id: a\r\n      token: 'T'\r\n"
        let official = try OfficialConfig.parse(text, path: "c.yaml")
        #expect(official.active == "a")
        #expect(official.profiles == [OfficialConfig.Profile(id: "a", endpoint: "http://x.example", token: "T", line: 6)])
    }

    /// Each malformed file is refused with the line at fault, never half-read.
    @Test func malformedFilesNameTheirLine() {
        let head = "scopes:\n  https://api*altizure*com:\n    endpoint: https://api.altizure.com\n    profiles:\n"
        let cases: [(String, Int, String)] = [
            (head + "    - id: a\n\tkey: x\n", 6, "tab"),
            (head + "    - id: a\n      key: \"unterminated\n", 6, "closing"),
            (head + "    - id: a\n      key: *alias\n", 6, "alias"),
            (head + "    - id: a\n      key: &anchor x\n", 6, "anchor"),
            (head + "    - id: a\n      key: |\n        x\n", 6, "block scalar"),
            (head + "    - id: a\n      secret: x\n", 6, "unknown key 'secret'"),
            (head + "    - id: a\n      key: x\n      key: y\n", 7, "twice"),
            (head + "    - id: a\n         key: x\n", 6, "indentation"),
            (head + "    - id: a\n    - id: a\n", 6, "appears twice"),
            (head + "    - name: nobody\n", 5, "without an id"),
            (head + "    - id: a b\n", 5, "cannot be an alti profile name"),
            ("scopes:\n  x:\n    profiles: []\n", 2, "no endpoint"),
            ("active: a\nproxy: x\n", 2, "unknown key 'proxy'"),
            ("active: [a, b]\n", 1, "flow sequence"),
            ("active: a\n---\nactive: b\n", 2, "document"),
            ("scopes\n", 1, "key: value"),
            ("  active: a\n", 1, "first column"),
            ("active: \"a\\q\"\n", 1, "escape"),
            ("active: a: b\n", 1, "same line"),
        ]
        for (text, line, words) in cases {
            do {
                _ = try OfficialConfig.parse(text, path: "/home/u/.altizure/config.yaml")
                Issue.record("accepted: \(text)")
            } catch {
                #expect(error.kind == .config && error.exitCode == 78, "\(text)")
                #expect(error.message.hasPrefix("/home/u/.altizure/config.yaml line \(line): "), "\(error.message)")
                #expect(error.message.contains(words), "\(error.message)")
                #expect(!error.message.contains("\n"))
            }
        }
    }

    @Test func importAddsKeepsOrReplacesByID() throws {
        let text = try String(contentsOfFile: Self.fixture, encoding: .utf8)
        let official = try OfficialConfig.parse(text, path: Self.fixture)
        var fresh = ProfileConfig()
        let outcomes = try fresh.importing(official, replace: false) { profile throws(AltiError) -> String in profile.endpoint }
        #expect(outcomes == [.added("default"), .added("9f3c2a7b1e4d5c6a"), .added("0a1b2c3d4e5f6a7b")])
        #expect(fresh.current == "9f3c2a7b1e4d5c6a")  // the official active one, alti having none

        var existing = ProfileConfig(current: "mine", profiles: ["mine": ConnectionProfile(key: "a"), "default": ConnectionProfile(key: "b")])
        let kept = try existing.importing(official, replace: false) { profile throws(AltiError) -> String in profile.endpoint }
        #expect(kept == [.kept("default"), .added("9f3c2a7b1e4d5c6a"), .added("0a1b2c3d4e5f6a7b")])
        #expect(existing.profiles["default"]?.key == "b")
        #expect(existing.current == "mine")
        let replaced = try existing.importing(official, replace: true) { profile throws(AltiError) -> String in profile.endpoint }
        #expect(replaced.first == .replaced("default"))
        #expect(existing.profiles["default"]?.key == "PubKeyAbcdefghijklmnopqrstuvwxyz012345")
    }
}
