import AltiCore
import Foundation
import Testing

@testable import AltiAPI

/// The GraphQL client and catalog over a closure transport: what goes on the wire, how answers
/// and failures are read. (The emulator tests cover the same operations over a real socket.)
@Suite struct GraphQLClientTests {
    final class Recorder: @unchecked Sendable {
        let lock = NSLock()
        var requests: [(url: String, headers: [(String, String)], body: [String: Any])] = []
        var answers: [(Int, String)]
        init(_ answers: [(Int, String)]) { self.answers = answers }
        func post(_ url: String, _ headers: [(String, String)], _ body: [UInt8]) throws -> (status: Int, body: [UInt8]) {
            try lock.withLock {
                let object = try JSONSerialization.jsonObject(with: Data(body)) as? [String: Any] ?? [:]
                requests.append((url, headers, object))
                let (status, text) = answers.count > 1 ? answers.removeFirst() : answers[0]
                return (status, Array(text.utf8))
            }
        }
    }

    static func client(_ recorder: Recorder, attempts: Int = 4) -> GraphQLClient {
        GraphQLClient(
            credentials: APICredentials(origin: "http://127.0.0.1:1/", key: "K", token: "T"),
            retry: RetryPolicy(maxAttempts: attempts, baseDelay: .milliseconds(1), maxDelay: .milliseconds(2)),
            post: { url, headers, body in try recorder.post(url, headers, body) })
    }

    @Test func hasImageIsOneAliasedRequestWithVariablesAndBothHeaders() async throws {
        let recorder = Recorder([(200, #"{"data":{"h0":{"id":"i1","state":"Ready","name":"a.jpg","filename":"x","error":[]},"h1":null}}"#)])
        let catalog = AltizureCatalog(client: Self.client(recorder))
        let found = try await catalog.hasImages(project: "p1", checksums: ["aa", "bb"])
        #expect(found.keys.sorted() == ["aa"])
        #expect(found["aa"]?.state == "Ready")
        #expect(recorder.requests.count == 1)
        let request = try #require(recorder.requests.first)
        #expect(request.url == "http://127.0.0.1:1/graphql")
        #expect(request.headers.contains { $0.0 == "key" && $0.1 == "K" })
        #expect(request.headers.contains { $0.0 == "altitoken" && $0.1 == "T" })
        #expect(request.body["operationName"] as? String == "hasImage")
        let query = try #require(request.body["query"] as? String)
        #expect(query.contains("h0: hasImage(pid: $pid, checksum: $c0)"))
        #expect(query.contains("h1: hasImage(pid: $pid, checksum: $c1)"))
        #expect(!query.contains("aa"))  // values travel as variables only
        let variables = try #require(request.body["variables"] as? [String: String])
        #expect(variables == ["pid": "p1", "c0": "aa", "c1": "bb"])
    }

    @Test func keyOnlyOperationsDoNotSendTheToken() async throws {
        let recorder = Recorder([(200, #"{"data":{"support":{"systemMode":"Normal","supportedCloud":["OSS","S3"]},"getGeoIPInfo":{"nearestBuckets":[{"cloud":"OSS","bucket":"Shenzhen"},{"cloud":"S3","bucket":"Paris"}]}}}"#)])
        let info = try await AltizureCatalog(client: Self.client(recorder)).serverInfo()
        #expect(info.supportedClouds == ["OSS", "S3"])
        #expect(info.nearestBuckets.map(\.bucket) == ["Shenzhen", "Paris"])
        #expect(!(recorder.requests.first?.headers.contains { $0.0 == "altitoken" } ?? true))
    }

    @Test func serverErrorsAreRetriedThenReportedAsUnavailable() async throws {
        let recorder = Recorder([(503, "busy"), (502, "<html>"), (200, #"{"data":{"project":{"id":"5e8f2a6b1c9d4e3f2a1b0c9d","name":"S"}}}"#)])
        let project = try await AltizureCatalog(client: Self.client(recorder)).project("5e8f2a6b1c9d4e3f2a1b0c9d")
        #expect(project.name == "S")
        #expect(recorder.requests.count == 3)

        let down = Recorder([(503, "busy")])
        await #expect(throws: AltiError.self) { _ = try await AltizureCatalog(client: Self.client(down, attempts: 3)).serverInfo() }
        #expect(down.requests.count == 3)
        do {
            _ = try await AltizureCatalog(client: Self.client(down, attempts: 2)).serverInfo()
        } catch let error as AltiError {
            #expect(error.kind == .unavailable)
            #expect(error.message.contains("http://127.0.0.1:1"))
        }
    }

    @Test func authenticationErrorsAreNotRetriedAndDoNotEchoSecrets() async throws {
        let recorder = Recorder([(200, #"{"errors":[{"message":"Authentication Error: invalid token","path":["hasImage"]}],"data":{"h0":null}}"#)])
        do {
            _ = try await AltizureCatalog(client: Self.client(recorder)).hasImages(project: "p", checksums: ["aa"])
            Issue.record("expected an error")
        } catch let error as AltiError {
            #expect(error.kind == .auth)
            #expect(!error.message.contains("T\""))
        }
        #expect(recorder.requests.count == 1)
    }

    @Test func aPrefixResolvesThroughSearchAndAnAmbiguousOneIsRefused() async throws {
        let one = Recorder([(200, #"{"data":{"search":{"projectID":[{"id":"5e8f2a6b1c9d4e3f2a1b0c9d","name":"S"}]}}}"#)])
        #expect(try await AltizureCatalog(client: Self.client(one)).project("5e8f").id == "5e8f2a6b1c9d4e3f2a1b0c9d")
        #expect((one.requests.first?.body["variables"] as? [String: Any])?["limit"] as? Int == 2)

        let two = Recorder([(200, #"{"data":{"search":{"projectID":[{"id":"5e8f00000000000000000001"},{"id":"5e8f00000000000000000002"}]}}}"#)])
        await #expect(throws: AltiError.self) { _ = try await AltizureCatalog(client: Self.client(two)).project("5e8f") }

        let none = Recorder([(200, #"{"data":{"project":null}}"#)])
        do {
            _ = try await AltizureCatalog(client: Self.client(none)).project("ffffffffffffffffffffffff")
            Issue.record("expected notFound")
        } catch let error as AltiError {
            #expect(error.kind == .notFound)
        }
    }

    @Test func aRegistrationRefusedForOneImageFailsOnlyThatImage() async throws {
        let recorder = Recorder([(200, #"{"errors":[{"message":"bad checksum","path":["r1"]}],"data":{"r0":{"url":"http://s3/x?X-Amz-Expires=10","image":{"id":"i0","state":"Pending","filename":"f0"}},"r1":null}}"#)])
        let result = try await AltizureCatalog(client: Self.client(recorder)).registerS3(
            project: "p", bucket: "Paris",
            images: [ImageRegistration(sha1: "a", filename: "a.jpg", imageType: "JPEG"),
                     ImageRegistration(sha1: "b", filename: "b.jpg", imageType: "JPEG")])
        #expect((try? result["a"]?.get())?.image.id == "i0")
        if case .failure(let error)? = result["b"] { #expect(error.message.contains("bad checksum")) } else { Issue.record("b should fail") }
        let variables = try #require(recorder.requests.first?.body["variables"] as? [String: String])
        #expect(variables["bucket"] == "Paris")
        #expect(variables["t0"] == "JPEG")
    }
}
