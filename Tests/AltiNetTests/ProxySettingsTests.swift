import AltiNet
import Testing

@Suite struct ProxySettingsTests {
    @Test func proxiesFollowTheSchemeFallBackToAllProxyAndTakeEitherCase() {
        let settings = ProxySettings(environment: ["https_proxy": "http://p1:3128", "ALL_PROXY": "socks5h://p2:1080",
                                                   "no_proxy": "example.com", "HTTP_PROXY": " "])
        #expect(settings.https == "http://p1:3128")
        #expect(settings.http == "socks5h://p2:1080")  // a blank HTTP_PROXY is not a proxy
        #expect(settings.noProxy == "example.com")
        #expect(settings.proxy(for: "https://api.altizure.com/graphql") == "http://p1:3128")
        #expect(settings.proxy(for: "HTTP://127.0.0.1:8082/graphql") == "socks5h://p2:1080")
        let upper = ProxySettings(environment: ["HTTP_PROXY": "http://p3:8080"])
        #expect(upper.proxy(for: "http://x/") == "http://p3:8080")
        #expect(upper.proxy(for: "https://x/") == nil)
        #expect(ProxySettings(environment: [:]) == .none)
    }
}
