import AltiEmulator
import AltiTestSupport
import Foundation
import Testing

@Suite("Authentication")
struct AuthTests {
    static let projectQuery = "query ($id: ID!) { project(id: $id) { id } }"

    @Test(arguments: [nil, "wrong-key"] as [String?])
    func badKeyOnKeyOnlyOperation(key: String?) async throws {
        try await withEmulator(testEmulatorConfiguration()) { emu in
            let r = try await gql(emu, "{ support { systemMode } }", key: key)
            #expect(r.status == 200)
            #expect(r.json?["data"] as? [String: Any] != nil)
            #expect(r.data("support") == nil)
            #expect(r.errorMessages.count == 1)
            #expect(r.errorMessages.first?.contains("Authentication Error") == true)
            let path = (r.json?["errors"] as? [[String: Any]])?.first?["path"] as? [String]
            #expect(path == ["support"])
        }
    }

    @Test(arguments: [(nil, "alti-demo-token"), ("bad", "alti-demo-token"), ("alti-demo-key", nil),
                      ("alti-demo-key", "bad-token"), ("alti-demo-key", "")] as [(String?, String?)])
    func badCredentialsOnProjectOperations(key: String?, token: String?) async throws {
        try await withEmulator(testEmulatorConfiguration()) { emu in
            let query = try await gql(emu, Self.projectQuery, ["id": samplePID], key: key, token: token)
            #expect(query.status == 200)
            #expect(query.data("project") == nil)
            #expect(query.errorMessages.first?.contains("Authentication Error") == true)

            let mutation = try await gql(emu, """
                mutation ($pid: ID!) { uploadImageS3(pid: $pid, bucket: HongKong, filename: "a.jpg", type: JPEG, checksum: "00") { url } }
                """, ["pid": samplePID], key: key, token: token)
            #expect(mutation.status == 200)
            #expect(mutation.data("uploadImageS3") == nil)
            #expect(mutation.errorMessages.first?.contains("Authentication Error") == true)
            #expect(await emu.stats().registrations == 0)
        }
    }

    @Test func keyOnlyOperationsNeedNoToken() async throws {
        try await withEmulator(testEmulatorConfiguration()) { emu in
            let r = try await gql(emu, "{ support { systemMode } getGeoIPInfo { nearestBuckets { cloud } } }", token: "whatever")
            #expect(r.errorMessages.isEmpty)
            #expect(r.data("support", "systemMode") as? String == "Normal")
        }
    }

    @Test func headerNamesAreCaseInsensitive() async throws {
        try await withEmulator(testEmulatorConfiguration()) { emu in
            let body = try JSONSerialization.data(withJSONObject: ["query": Self.projectQuery, "variables": ["id": samplePID]])
            let r = try await RawHTTP.send(port: emu.port, method: "POST", target: "/graphql",
                                           headers: [("Content-Type", "application/json"), ("Key", "alti-demo-key"),
                                                     ("ALTITOKEN", "alti-demo-token")], body: Array(body))
            #expect(r.data("project", "id") as? String == samplePID)
        }
    }

    @Test func introspectionNeedsTheKey() async throws {
        try await withEmulator(testEmulatorConfiguration()) { emu in
            let r = try await gql(emu, #"{ t: __type(name: "BucketS3") { enumValues { name } } }"#, key: nil, token: nil)
            #expect(r.status == 200)
            #expect(r.data("t") == nil)
            #expect(r.errorMessages.first?.contains("Authentication Error") == true)
        }
    }

    @Test func customCredentialsFromConfiguration() async throws {
        var config = testEmulatorConfiguration()
        config.key = "k2"
        config.token = "t2"
        try await withEmulator(config) { emu in
            let old = try await gql(emu, Self.projectQuery, ["id": samplePID])
            #expect(old.errorMessages.first?.contains("Authentication Error") == true)
            let new = try await gql(emu, Self.projectQuery, ["id": samplePID], key: "k2", token: "t2")
            #expect(new.data("project", "id") as? String == samplePID)
        }
    }
}
