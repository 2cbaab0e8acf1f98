import Foundation

/// Which proxy each request goes through, from the environment variables curl, wget, pip and
/// most command-line tools read: `HTTPS_PROXY` for https URLs, `HTTP_PROXY` for http ones (either
/// case; libcurl itself ignores upper-case `HTTP_PROXY`, a CGI safeguard that does not apply to a
/// command run by its user), `ALL_PROXY` for both when the scheme's own is not set, and `NO_PROXY`
/// (comma-separated hosts, domains, `*`) for the hosts reached directly. The API and both storages
/// go through the same settings: one transport carries them all.
///
/// alti decides and sets `CURLOPT_PROXY` on every request (an empty string when there is no proxy),
/// so libcurl's own reading of the process environment never disagrees with this one, and tests
/// can give a command an environment of its own. A proxy URL may hold a user and password: it is
/// never printed.
public struct ProxySettings: Sendable, Equatable {
    public var http: String?
    public var https: String?
    public var noProxy: String?

    public static let none = ProxySettings()

    public init(http: String? = nil, https: String? = nil, noProxy: String? = nil) {
        self.http = http
        self.https = https
        self.noProxy = noProxy
    }

    public init(environment env: [String: String]) {
        func first(_ names: String...) -> String? {
            names.lazy.compactMap { env[$0]?.trimmingCharacters(in: .whitespaces) }.first { !$0.isEmpty }
        }
        let all = first("ALL_PROXY", "all_proxy")
        self.init(http: first("HTTP_PROXY", "http_proxy") ?? all,
                  https: first("HTTPS_PROXY", "https_proxy") ?? all,
                  noProxy: first("NO_PROXY", "no_proxy"))
    }

    /// The proxy for `url` by its scheme (curl applies `noProxy` to the host).
    public func proxy(for url: String) -> String? {
        url.lowercased().hasPrefix("https:") ? https : http
    }
}
