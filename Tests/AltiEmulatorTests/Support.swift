import AltiCrypto
import AltiEmulator
import AltiSigning
import AltiTestSupport
import Foundation
import Testing

let samplePID = ProjectSeed.sample.id

/// Bytes that start like a JPEG (SOI, APP0, SOF0 640x480), unique per `seed`.
func jpegBytes(_ seed: String, size: Int = 4096) -> [UInt8] {
    var bytes: [UInt8] = [0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10] + Array("JFIF\0".utf8) + [1, 1, 0, 0, 1, 0, 1, 0, 0]
    bytes += [0xFF, 0xC0, 0x00, 0x11, 0x08, 0x01, 0xE0, 0x02, 0x80, 0x03, 1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1]
    let fill = Array(seed.utf8)
    while bytes.count < size - 2 { bytes.append(fill[bytes.count % max(fill.count, 1)]) }
    return bytes + [0xFF, 0xD9]
}

func pngBytes(_ seed: String) -> [UInt8] {
    [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 13] + Array("IHDR".utf8)
        + [0, 0, 0x0F, 0xA0, 0, 0, 0x0B, 0xB8, 8, 2, 0, 0, 0] + Array(seed.utf8)
}

func sha1(_ bytes: [UInt8]) -> String { Digest.sha1Hex(bytes) }

/// Error for a response that is not what the test needs.
struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

extension RawHTTPResponse {
    /// `data.<path...>` of a GraphQL response.
    func data(_ path: String...) -> Any? {
        var value: Any? = json?["data"]
        for key in path {
            if let index = Int(key), let array = value as? [Any] {
                value = index < array.count ? array[index] : nil
            } else {
                value = (value as? [String: Any])?[key]
            }
        }
        return value is NSNull ? nil : value
    }

    var errorMessages: [String] {
        ((json?["errors"] as? [[String: Any]]) ?? []).compactMap { $0["message"] as? String }
    }
}

func gql(_ emu: RunningEmulator, _ query: String, _ variables: [String: any Sendable]? = nil,
         key: String? = "alti-demo-key", token: String? = "alti-demo-token") async throws -> RawHTTPResponse {
    try await RawHTTP.graphQL(port: emu.port, query: query, variables: variables, key: key, token: token)
}

/// What `uploadImageS3` handed out.
struct S3Registration {
    var imageID: String
    var filename: String
    var url: String
    var state: String

    /// The URL's target (path + query) as the client must send it.
    var target: String {
        let afterScheme = url.dropFirst("http://".count)
        return String(afterScheme[afterScheme.firstIndex(of: "/")!...])
    }
}

func registerS3(_ emu: RunningEmulator, name: String, checksum: String?, type: String = "JPEG",
                pid: String = samplePID) async throws -> S3Registration {
    var variables: [String: any Sendable] = ["pid": pid, "filename": name, "type": type]
    if let checksum { variables["checksum"] = checksum }
    let r = try await gql(emu, """
        mutation ($pid: ID!, $filename: String!, $type: IMAGE_TYPE, $checksum: String) {
          uploadImageS3(pid: $pid, bucket: HongKong, filename: $filename, type: $type, checksum: $checksum) {
            url image { id state name filename }
          }
        }
        """, variables)
    guard r.status == 200, let url = r.data("uploadImageS3", "url") as? String,
          let id = r.data("uploadImageS3", "image", "id") as? String,
          let filename = r.data("uploadImageS3", "image", "filename") as? String,
          let state = r.data("uploadImageS3", "image", "state") as? String else {
        throw TestFailure("uploadImageS3 failed: \(r.status) \(r.text)")
    }
    return S3Registration(imageID: id, filename: filename, url: url, state: state)
}

func putS3(_ emu: RunningEmulator, _ reg: S3Registration, _ bytes: [UInt8], contentType: String = "image/jpeg",
           extraHeaders: [(String, String)] = [], framing: RawBodyFraming = .contentLength,
           target: String? = nil) async throws -> RawHTTPResponse {
    try await RawHTTP.send(port: emu.port, method: "PUT", target: target ?? reg.target,
                           headers: [("Content-Type", contentType)] + extraHeaders, body: bytes, framing: framing)
}

/// STS as `uploadImageOSS { sts {...} }` returns it.
struct STS {
    var id: String
    var secret: String
    var token: String
    var bucket: String
    var endpoint: String
    var expire: String
}

func getSTS(_ emu: RunningEmulator, pid: String = samplePID) async throws -> STS {
    let r = try await gql(emu, """
        mutation ($pid: ID!, $filename: String!) {
          uploadImageOSS(pid: $pid, bucket: Shenzhen, filename: $filename) { sts { id secret token bucket endpoint expire } }
        }
        """, ["pid": pid, "filename": "0123456789abcdef"])
    guard let s = r.data("uploadImageOSS", "sts") as? [String: Any], let id = s["id"] as? String,
          let secret = s["secret"] as? String, let token = s["token"] as? String, let bucket = s["bucket"] as? String,
          let endpoint = s["endpoint"] as? String, let expire = s["expire"] as? String else {
        throw TestFailure("STS call failed: \(r.status) \(r.text)")
    }
    return STS(id: id, secret: secret, token: token, bucket: bucket, endpoint: endpoint, expire: expire)
}

/// Registers an image for OSS; returns (id, server filename).
func registerOSS(_ emu: RunningEmulator, name: String, checksum: String,
                 pid: String = samplePID) async throws -> (id: String, filename: String) {
    let r = try await gql(emu, """
        mutation ($pid: ID!, $filename: String!, $checksum: String) {
          uploadImageOSS(pid: $pid, bucket: Shenzhen, filename: $filename, type: JPEG, checksum: $checksum) {
            image { id state name filename }
          }
        }
        """, ["pid": pid, "filename": name, "checksum": checksum])
    guard let id = r.data("uploadImageOSS", "image", "id") as? String,
          let filename = r.data("uploadImageOSS", "image", "filename") as? String else {
        throw TestFailure("uploadImageOSS failed: \(r.status) \(r.text)")
    }
    return (id, filename)
}

/// A signed OSS PUT with AltiSigning's signer (path-style, `/` in the key sent as `%2F` like oss2).
func putOSS(_ emu: RunningEmulator, sts: STS, key: String, bytes: [UInt8], version: OSSSignatureVersion = .v4(region: "cn-shenzhen"),
            secret: String? = nil, token: String? = nil, date: Date? = nil,
            bucket: String? = nil) async throws -> RawHTTPResponse {
    let bucket = bucket ?? sts.bucket
    let credentials = OSSCredentials(accessKeyId: sts.id, accessKeySecret: secret ?? sts.secret,
                                     securityToken: token ?? sts.token)
    let signed = OSSSigner.sign(
        OSSRequest(method: "PUT", bucket: bucket, key: key, headers: [("Content-Type", "image/jpeg")]),
        credentials: credentials, version: version, date: date ?? emu.state.now())
    let encodedKey = key.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? key
    return try await RawHTTP.send(port: emu.port, method: "PUT", target: "/\(bucket)/\(encodedKey)",
                                  headers: signed.headers.map { ($0.name, $0.value) }, body: bytes)
}

/// `startImageUpload(id)`: the upload guide requires it just before each upload (S3 and OSS).
@discardableResult
func startUpload(_ emu: RunningEmulator, _ id: String) async throws -> String? {
    let r = try await gql(emu, "mutation ($id: ID!) { startImageUpload(id: $id) { id state } }", ["id": id])
    guard r.status == 200, let state = r.data("startImageUpload", "state") as? String else {
        throw TestFailure("startImageUpload failed: \(r.status) \(r.text)")
    }
    return state
}

func doneUpload(_ emu: RunningEmulator, _ id: String) async throws -> String? {
    let r = try await gql(emu, "mutation ($id: ID!) { doneImageUpload(id: $id) { id state } }", ["id": id])
    return r.data("doneImageUpload", "state") as? String
}

/// Polls `project.image` until the state is final (Ready/Invalid) or ~10 s pass.
func waitForFinalState(_ emu: RunningEmulator, _ id: String, pid: String = samplePID) async throws -> (String, [String]) {
    for _ in 0..<200 {
        let r = try await gql(emu, "query ($pid: ID!, $iid: ID!) { project(id: $pid) { image(id: $iid) { id state error } } }",
                              ["pid": pid, "iid": id])
        if let state = r.data("project", "image", "state") as? String, state == "Ready" || state == "Invalid" {
            return (state, (r.data("project", "image", "error") as? [String]) ?? [])
        }
        try await Task.sleep(nanoseconds: 50_000_000)
    }
    throw TestFailure("image \(id) did not reach Ready or Invalid")
}

/// A signed OSS request of any method (path style, `/` in the key sent as `%2F` like oss2), signed
/// with AltiSigning's signer. `query` holds decoded names and values (`("uploads", "")` is bare);
/// `wireQuery`, when given, is sent instead of `query` (to prove the query is signed).
func ossRequest(_ emu: RunningEmulator, sts: STS, method: String, key: String, query: [(String, String)] = [],
                headers: [(String, String)] = [], body: [UInt8] = [],
                version: OSSSignatureVersion = .v4(region: "cn-shenzhen"), secret: String? = nil, date: Date? = nil,
                bucket: String? = nil, wireQuery: [(String, String)]? = nil) async throws -> RawHTTPResponse {
    let bucket = bucket ?? sts.bucket
    let credentials = OSSCredentials(accessKeyId: sts.id, accessKeySecret: secret ?? sts.secret,
                                     securityToken: sts.token)
    let signed = OSSSigner.sign(
        OSSRequest(method: method, bucket: bucket, key: key, headers: headers,
                   query: query.map { (name: $0.0, value: $0.1) }),
        credentials: credentials, version: version, date: date ?? emu.state.now())
    let encodedKey = key.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? key
    let wire = (wireQuery ?? query).map { name, value in
        value.isEmpty ? SigningEncoding.uriEncode(name)
                      : SigningEncoding.uriEncode(name) + "=" + SigningEncoding.uriEncode(value)
    }.joined(separator: "&")
    return try await RawHTTP.send(port: emu.port, method: method,
                                  target: "/\(bucket)/\(encodedKey)" + (wire.isEmpty ? "" : "?" + wire),
                                  headers: signed.headers.map { ($0.name, $0.value) }, body: body)
}

extension RawHTTPResponse {
    /// The text of the first `<name>` element of an XML body (no unescaping).
    func xmlValue(_ name: String) -> String? {
        guard let start = text.range(of: "<\(name)>"),
              let end = text.range(of: "</\(name)>", range: start.upperBound..<text.endIndex) else { return nil }
        return String(text[start.upperBound..<end.lowerBound])
    }
}
