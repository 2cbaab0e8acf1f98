import AltiEmulator
import AltiTestSupport
import Foundation
import Testing

@Suite("GraphQL operations over a real socket")
struct GraphQLTests {
    @Test func keyOnlyOperations() async throws {
        try await withEmulator(testEmulatorConfiguration()) { emu in
            let r = try await gql(emu, """
                { support { systemMode supportedCloud(kind: image) endpoints { api } }
                  getGeoIPInfo { nearestBuckets { id cloud bucket display } }
                  bank { coinsToMoney(coins: 12.5, currency: USD) }
                  versions { api }
                  s3: __type(name: "BucketS3") { enumValues { name } }
                  oss: __type(name: "BucketOSS") { enumValues { name } } }
                """, token: nil)
            #expect(r.status == 200)
            #expect(r.errorMessages.isEmpty)
            #expect(r.data("support", "systemMode") as? String == "Normal")
            #expect(r.data("support", "supportedCloud") as? [String] == ["S3", "OSS"])
            #expect(r.data("support", "endpoints", "api") as? String == emu.baseURL)
            let buckets = try #require(r.data("getGeoIPInfo", "nearestBuckets") as? [[String: Any]])
            #expect(buckets.map { $0["cloud"] as? String } == ["S3", "OSS"])
            #expect(buckets.map { $0["bucket"] as? String } == ["HongKong", "Shenzhen"])
            #expect(r.data("bank", "coinsToMoney") as? Double == 1.25)
            let s3 = try #require(r.data("s3", "enumValues") as? [[String: Any]])
            #expect(s3.compactMap { $0["name"] as? String } == ["Paris", "Stockholm", "HongKong"])
            let oss = try #require(r.data("oss", "enumValues") as? [[String: Any]])
            #expect(oss.compactMap { $0["name"] as? String } == ["Shenzhen"])
        }
    }

    @Test func formEncodedQueryBody() async throws {
        try await withEmulator(testEmulatorConfiguration()) { emu in
            let body = "query=" + "{ support { systemMode } }".addingPercentEncoding(withAllowedCharacters: .alphanumerics)!
            let r = try await RawHTTP.send(
                port: emu.port, method: "POST", target: "/graphql",
                headers: [("Content-Type", "application/x-www-form-urlencoded"), ("key", "alti-demo-key")],
                body: Array(body.utf8))
            #expect(r.status == 200)
            #expect(r.data("support", "systemMode") as? String == "Normal")
        }
    }

    /// graphql-http/express-graphql read only JSON and form bodies; any other Content-Type (or none)
    /// finds no query: 400 with a GraphQL-style error.
    @Test(arguments: [nil, "text/plain", "application/graphql", "application/jsonx", "multipart/form-data"] as [String?])
    func otherContentTypesAreRefused(contentType: String?) async throws {
        try await withEmulator(testEmulatorConfiguration()) { emu in
            let body = try JSONSerialization.data(withJSONObject: ["query": "{ support { systemMode } }"])
            var headers: [(String, String)] = [("key", "alti-demo-key")]
            if let contentType { headers.append(("Content-Type", contentType)) }
            let r = try await RawHTTP.send(port: emu.port, method: "POST", target: "/graphql", headers: headers,
                                           body: Array(body))
            #expect(r.status == 400)
            #expect(r.errorMessages == ["Must provide query string."])
            #expect(r.json?["data"] == nil)
            #expect(await emu.stats().count("support") == 0)
        }
    }

    @Test(arguments: ["application/json", "application/json; charset=utf-8", "Application/JSON;charset=UTF-8"])
    func jsonWithParametersIsAccepted(contentType: String) async throws {
        try await withEmulator(testEmulatorConfiguration()) { emu in
            let body = try JSONSerialization.data(withJSONObject: ["query": "{ support { systemMode } }"])
            let r = try await RawHTTP.send(port: emu.port, method: "POST", target: "/graphql",
                                           headers: [("Content-Type", contentType), ("key", "alti-demo-key")],
                                           body: Array(body))
            #expect(r.status == 200)
            #expect(r.data("support", "systemMode") as? String == "Normal")
        }
    }

    @Test func projectSearchAndCreate() async throws {
        var config = testEmulatorConfiguration()
        config.projects.append(ProjectSeed(id: "aaaaaaaaaaaaaaaaaaaaaaaa", name: "Second"))
        try await withEmulator(config) { emu in
            let search = try await gql(emu, """
                { search { projectID(id: "5e8f2a", limit: 1, myProject: true) { id name numImage gigaPixel isImported projectType date cloudPath { key } downloads { totalCount } } } }
                """)
            let found = try #require(search.data("search", "projectID") as? [[String: Any]])
            #expect(found.count == 1)
            #expect(found.first?["id"] as? String == samplePID)
            #expect(found.first?["name"] as? String == "Sample survey")
            #expect(found.first?["numImage"] as? Int == 0)
            let none = try await gql(emu, #"{ search { projectID(id: "ffff", limit: 1, myProject: true) { id } } }"#)
            #expect((none.data("search", "projectID") as? [Any])?.isEmpty == true)

            let project = try await gql(emu, "query ($id: ID!) { project(id: $id) { id name } }",
                                        ["id": "aaaaaaaaaaaaaaaaaaaaaaaa"])
            #expect(project.data("project", "name") as? String == "Second")
            let missing = try await gql(emu, "query ($id: ID!) { project(id: $id) { id } }", ["id": "bbbbbbbbbbbbbbbbbbbbbbbb"])
            #expect(missing.status == 200)
            #expect(missing.data("project") == nil)

            let created = try await gql(emu, #"mutation { createProject(name: "New site", type: free, visibility: public) { id name projectType } }"#)
            let newID = try #require(created.data("createProject", "id") as? String)
            #expect(ProjectSeed.isValidID(newID))
            #expect(created.data("createProject", "projectType") as? String == "free")
            let mine = try await gql(emu, #"{ my { self { email } allProjects(first: 10, search: "new") { totalCount edges { node { id name } } } } }"#)
            #expect(mine.data("my", "allProjects", "totalCount") as? Int == 1)
            #expect(mine.data("my", "allProjects", "edges", "0", "node", "id") as? String == newID)
        }
    }

    @Test func validationIsReal() async throws {
        try await withEmulator(testEmulatorConfiguration()) { emu in
            let unknownField = try await gql(emu, "{ support { systemMod } }")
            #expect(unknownField.status == 400)
            #expect(unknownField.data() == nil)
            #expect(unknownField.errorMessages.first?.contains("Cannot query field \"systemMod\"") == true)

            let wrongType = try await gql(emu, #"{ bank { coinsToMoney(coins: "many", currency: USD) } }"#)
            #expect(wrongType.status == 400)
            #expect(wrongType.errorMessages.first?.contains("Float cannot represent") == true)

            let misspeltEnum = try await gql(emu, """
                mutation { uploadImageS3(pid: "\(samplePID)", bucket: Hongkong, filename: "a.jpg") { url } }
                """)
            #expect(misspeltEnum.status == 400)
            #expect(misspeltEnum.errorMessages.first?.contains("Hongkong") == true)
            #expect(await emu.stats().registrations == 0)

            let missingVariable = try await gql(emu, "query ($pid: ID!) { project(id: $pid) { id } }", [:])
            #expect(missingVariable.status == 400)
            #expect(missingVariable.errorMessages.first?.contains("$pid") == true)

            let syntax = try await gql(emu, "{ support { ")
            #expect(syntax.status == 400)
            #expect(syntax.errorMessages.first?.contains("Syntax Error") == true)

            let notJSON = try await RawHTTP.send(port: emu.port, method: "POST", target: "/graphql",
                                                 headers: [("Content-Type", "application/json"), ("key", "alti-demo-key")],
                                                 body: Array("{nope".utf8))
            #expect(notJSON.status == 400)
            #expect(notJSON.errorMessages.count == 1)
        }
    }

    @Test func hundredAliasedHasImageInOneRequest() async throws {
        try await withEmulator(testEmulatorConfiguration()) { emu in
            let known = jpegBytes("known")
            let reg = try await registerS3(emu, name: "known.jpg", checksum: sha1(known))
            let checksums = (0..<100).map { $0 == 37 ? sha1(known) : sha1(Array("img\($0)".utf8)) }
            let fields = checksums.enumerated().map { i, c in
                "h\(i): hasImage(pid: $pid, checksum: \"\(c)\") { id state }"
            }.joined(separator: "\n")
            let before = await emu.stats().graphqlRequests
            let r = try await gql(emu, "mutation hasImage($pid: ID!) {\n\(fields)\n}", ["pid": samplePID])
            #expect(r.status == 200)
            #expect(r.errorMessages.isEmpty)
            for i in 0..<100 {
                if i == 37 {
                    #expect(r.data("h37", "id") as? String == reg.imageID)
                    #expect(r.data("h37", "state") as? String == "Pending")
                } else {
                    #expect(r.data("h\(i)") == nil)
                }
            }
            let stats = await emu.stats()
            #expect(stats.graphqlRequests == before + 1)
            #expect(stats.count("hasImage") == 100)
            let last = try #require(await emu.requestLog().last)
            #expect(last.graphqlFields == ["hasImage"])
            #expect(last.operationName == "hasImage")
        }
    }

    /// A query text validated once is not validated again (alti sends every value as a
    /// variable, so its batches repeat the same text), and a reused document still answers for
    /// the new variables; an invalid text is judged afresh every time, never kept.
    @Test func aValidatedQueryTextIsReusedWithNewVariables() async throws {
        try await withEmulator(testEmulatorConfiguration()) { emu in
            let known = jpegBytes("known")
            let reg = try await registerS3(emu, name: "known.jpg", checksum: sha1(known))
            let query = "mutation hasImage($pid: ID!, $c0: String!) { h0: hasImage(pid: $pid, checksum: $c0) { id state } }"
            let before = await emu.stats().graphqlDocumentsReused
            let absent = try await gql(emu, query, ["pid": samplePID, "c0": sha1(Array("other".utf8))])
            #expect(absent.status == 200 && absent.errorMessages.isEmpty)
            #expect(absent.data("h0") == nil)
            #expect(await emu.stats().graphqlDocumentsReused == before)
            let found = try await gql(emu, query, ["pid": samplePID, "c0": sha1(known)])
            #expect(found.status == 200 && found.errorMessages.isEmpty)
            #expect(found.data("h0", "id") as? String == reg.imageID)
            #expect(await emu.stats().graphqlDocumentsReused == before + 1)
            // Variable values are still checked on a reused text.
            let missing = try await gql(emu, query, ["pid": samplePID])
            #expect(missing.status == 200 || missing.status == 400)
            #expect(missing.errorMessages.first?.contains("$c0") == true, "\(missing.errorMessages)")

            let invalid = "mutation hasImage($pid: ID!) { h0: hasImage(pid: $pid, checksum: 7) { id } }"
            for _ in 0..<2 {
                let r = try await gql(emu, invalid, ["pid": samplePID])
                #expect(r.status == 400)
                #expect(r.errorMessages.first?.contains("String cannot represent") == true, "\(r.errorMessages)")
            }
            #expect(await emu.stats().graphqlDocumentsReused == before + 2)
        }
    }

    @Test func allImagesRelayPaging() async throws {
        try await withEmulator(testEmulatorConfiguration()) { emu in
            var ids: [String] = []
            for i in 0..<7 {
                ids.append(try await registerS3(emu, name: "IMG_\(i).JPG", checksum: sha1(Array("p\(i)".utf8))).imageID)
            }
            let query = """
                query ($pid: ID!, $first: Int, $last: Int, $after: String, $before: String) {
                  project(id: $pid) { allImages(first: $first, last: $last, after: $after, before: $before, filter: All) {
                    totalCount pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
                    edges { cursor node { id name state } } } }
                }
                """
            var seen: [String] = []
            var after = ""
            var pages = 0
            while true {
                let r = try await gql(emu, query, ["pid": samplePID, "first": 3, "after": after, "before": ""])
                #expect(r.data("project", "allImages", "totalCount") as? Int == 7)
                let edges = try #require(r.data("project", "allImages", "edges") as? [[String: Any]])
                seen += edges.compactMap { ($0["node"] as? [String: Any])?["id"] as? String }
                pages += 1
                #expect(r.data("project", "allImages", "pageInfo", "hasPreviousPage") as? Bool == (pages > 1))
                guard r.data("project", "allImages", "pageInfo", "hasNextPage") as? Bool == true else { break }
                after = try #require(r.data("project", "allImages", "pageInfo", "endCursor") as? String)
            }
            #expect(pages == 3)
            #expect(seen == ids)

            let tail = try await gql(emu, query, ["pid": samplePID, "last": 2])
            let tailIDs = (tail.data("project", "allImages", "edges") as? [[String: Any]])?
                .compactMap { ($0["node"] as? [String: Any])?["id"] as? String }
            #expect(tailIDs == Array(ids.suffix(2)))
            #expect(tail.data("project", "allImages", "pageInfo", "hasPreviousPage") as? Bool == true)

            let bad = try await gql(emu, query, ["pid": samplePID, "first": 2, "after": "bm9wZQ=="])
            #expect(bad.errorMessages.first?.contains("invalid cursor") == true)
        }
    }

    @Test func reconstructionOperations() async throws {
        try await withEmulator(testEmulatorConfiguration()) { emu in
            let early = try await gql(emu, "mutation ($id: ID!) { startReconstructionWithError(id: $id, options: {taskType: Native}) { error { code message } task { id } } }",
                                      ["id": samplePID])
            #expect(early.data("startReconstructionWithError", "error", "code") as? Int == 1001)
            #expect(early.data("startReconstructionWithError", "task") == nil)
            let pre = try await gql(emu, "mutation ($id: ID!) { preStartReconstruction(id: $id) { error { message } task { id state taskType } } }",
                                    ["id": samplePID])
            #expect(pre.data("preStartReconstruction", "task", "state") as? String == "Scheduled")
            #expect(pre.data("preStartReconstruction", "error") == nil)
            let taskID = try #require(pre.data("preStartReconstruction", "task", "id") as? String)

            // The scheduled task holds the project: a start now is refused, not a second task.
            let refused = try await gql(emu, "mutation ($id: ID!) { startReconstructionWithError(id: $id) { error { code message } task { id } } }",
                                        ["id": samplePID])
            #expect(refused.data("startReconstructionWithError", "error", "code") as? Int == 1002)

            // Once its image is processed, the scheduled task is queued.
            let bytes = jpegBytes("recon")
            let reg = try await registerS3(emu, name: "r.jpg", checksum: sha1(bytes))
            try await startUpload(emu, reg.imageID)
            #expect(try await putS3(emu, reg, bytes).status == 200)
            #expect(try await waitForFinalState(emu, reg.imageID).0 == "Ready")
            let project = try await gql(emu, "query ($id: ID!) { project(id: $id) { numImage gigaPixel taskState } }", ["id": samplePID])
            #expect(project.data("project", "numImage") as? Int == 1)
            #expect(project.data("project", "taskState") as? String == "Pending")
            #expect((project.data("project", "gigaPixel") as? Double ?? 0) > 0)
            #expect(await emu.stats().tasks.map(\.id) == [taskID])
        }
    }
}
