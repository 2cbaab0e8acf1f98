import Foundation

/// `alti report`: reads the manifests of the PATHs exactly as `alti status` does (the same
/// locate, the same lock-free read with a leftover journal folded into a copy): no scan, no
/// lock, nothing written, no network.
public struct ReportService: Sendable {
    public var store: ManifestStore

    public init(store: ManifestStore = ManifestStore()) {
        self.store = store
    }

    /// - Throws: 66 for a PATH that is missing or has no manifest; 65 for a corrupt one.
    public func read(paths: [String], manifestOverride: String?, generatedAt: String) throws -> SurveyReport {
        let status = StatusService(store: store)
        var sources: [(source: ReportSource, manifest: Manifest)] = []
        for located in try status.locate(paths: paths, manifestOverride: manifestOverride) {
            var (manifest, journal) = try status.recorded(located)
            ManifestSync.fold(journal, into: &manifest)
            let source = ReportSource(root: manifest.source.root, kind: manifest.source.kind,
                                      manifest: located.location.file.path, remote: manifest.remote)
            sources.append((source, manifest))
        }
        return SurveyReport(sources: sources, generatedAt: generatedAt)
    }

    /// Writes a rendered report to `path` (relative to the current folder) through a temporary
    /// file beside it and a rename, so a reader never sees half a page and a failed write leaves
    /// the previous file. Returns the absolute path written.
    /// - Throws: 73 with the OS's reason, naming the file.
    public static func save(_ text: String, to path: String) throws(AltiError) -> String {
        let target = ScanService.absolutePath(path)
        let temp = target + ".alti-tmp-\(getpid())"
        func failure(_ code: Int32) -> AltiError {
            AltiError(.cannotWrite, "cannot write the report \(target): \(String(cString: strerror(code))); check that its folder exists and is writable")
        }
        let fd = open(temp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw failure(errno) }
        let bytes = Array(text.utf8)
        var written = 0
        while written < bytes.count {
            let n = bytes[written...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if n < 0, errno == EINTR { continue }
            guard n > 0 else {
                let code = errno
                close(fd)
                unlink(temp)
                throw failure(code)
            }
            written += n
        }
        guard fsync(fd) == 0 || errno == EINVAL else {
            let code = errno
            close(fd)
            unlink(temp)
            throw failure(code)
        }
        close(fd)
        guard rename(temp, target) == 0 else {
            let code = errno
            unlink(temp)
            throw failure(code)
        }
        return target
    }
}
