internal import CCurl

public enum CurlLibrary {
    public static var version: String { String(cString: curl_version()) }
}
