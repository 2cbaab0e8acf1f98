@testable import AltiStorage
import AltiAPI
import AltiCore
import AltiNet
import Foundation
import Testing

/// The OSS client's addressing and its STS bookkeeping, without a server.
@Suite struct OSSClientTests {
    @Test func pathStyleForAnIPOrLocalhostVirtualHostOtherwiseWithTheRegionOfTheHost() {
        let emulator = OSSEndpoint("http://127.0.0.1:8082", bucket: "alti-emu-oss")
        #expect(emulator.pathStyle)
        #expect(emulator.url(key: "pid/a b+c#d%e/é.JPG", query: [])
                == "http://127.0.0.1:8082/alti-emu-oss/pid/a%20b%2Bc%23d%25e/%C3%A9.JPG")
        #expect(emulator.url(key: "pid/x.jpg", query: [("partNumber", "3"), ("uploadId", "A/B+C")])
                == "http://127.0.0.1:8082/alti-emu-oss/pid/x.jpg?partNumber=3&uploadId=A%2FB%2BC")
        #expect(emulator.url(key: "pid/x.jpg", query: [("uploads", "")]) == "http://127.0.0.1:8082/alti-emu-oss/pid/x.jpg?uploads")
        #expect(OSSEndpoint("localhost:9000", bucket: "b").pathStyle)

        let real = OSSEndpoint("oss-cn-shenzhen.aliyuncs.com", bucket: "survey-bkt")
        #expect(!real.pathStyle)
        #expect(real.region == "cn-shenzhen")
        #expect(real.url(key: "pid/DJI_0001.JPG", query: []) == "https://survey-bkt.oss-cn-shenzhen.aliyuncs.com/pid/DJI_0001.JPG")
        #expect(OSSEndpoint("https://oss-cn-hangzhou-internal.aliyuncs.com", bucket: "b").region == "cn-hangzhou")
        #expect(OSSEndpoint("http://10.0.0.7", bucket: "b").pathStyle)
    }

    @Test func stsExpiryIsReadInTheFormsTheAPIWrites() {
        #expect(STSCredential.parseExpire("2026-12-02T09:15:00Z") == Date(timeIntervalSince1970: 1_796_202_900))
        #expect(STSCredential.parseExpire("2026-12-02T09:15:00.250Z") == Date(timeIntervalSince1970: 1_796_202_900.25))
        #expect(STSCredential.parseExpire("tomorrow") == nil)
    }

    @Test func credentialRefusalsAreTheTokenAndKeyCodes() {
        for code in ["InvalidAccessKeyId", "InvalidSecurityToken", "SecurityTokenExpired", "AccessKeyIdAndSecurityTokenNotMatch"] {
            #expect(OSSStorage.isCredentialRefusal(code: code, message: ""))
        }
        #expect(OSSStorage.isCredentialRefusal(code: "AccessDenied", message: "The security token you provided has expired."))
        #expect(OSSStorage.isCredentialRefusal(code: "SignatureDoesNotMatch", message: "The request signature we calculated does not match"))
        #expect(!OSSStorage.isCredentialRefusal(code: "EntityTooSmall", message: ""))
        #expect(!OSSStorage.isCredentialRefusal(code: "AccessDenied", message: "Request has expired."))
    }
}
