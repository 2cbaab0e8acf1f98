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

    /// A proxy URL as it may be printed: without a user or password.
    public static func shown(_ proxy: String) -> String {
        guard var parts = URLComponents(string: proxy.contains("://") ? proxy : "http://" + proxy) else { return "(unparsable)" }
        parts.user = nil
        parts.password = nil
        return parts.string ?? "(unparsable)"
    }

    /// Whether a failure to resolve or connect (curl's `code`, its message `detail`) concerns
    /// `proxy` rather than the server: curl names the host and port it could not connect to, and
    /// has a code of its own for an unresolvable proxy. Without this, a dead proxy reads as
    /// "cannot reach the server", which sends the user looking at the wrong end.
    static func failureConcernsProxy(_ proxy: String, proxyResolveFailed: Bool, connectFailed: Bool, detail: String) -> Bool {
        if proxyResolveFailed { return true }
        guard connectFailed, let parts = URLComponents(string: proxy.contains("://") ? proxy : "http://" + proxy),
              let host = parts.host else { return false }
        // libcurl's default proxy port is 1080, 443 for an https:// proxy.
        let port = parts.port ?? (parts.scheme?.lowercased() == "https" ? 443 : 1080)
        return detail.contains("\(host) port \(port)")
    }
}
