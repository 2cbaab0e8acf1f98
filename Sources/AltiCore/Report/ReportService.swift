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
            let manifest = try status.recorded(located).manifest
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
        do {
            try DurableFile.replace(target, with: Array(text.utf8), mode: 0o644)
        } catch where !error.renamed {
            throw AltiError(.cannotWrite, "cannot write the report \(target): \(String(cString: strerror(error.code))); check that its folder exists and is writable")
        } catch {
            // Written and renamed; only the folder's fsync failed: the page is whole.
        }
        return target
    }
}
