import AltiCrypto
import Foundation

/// All mutable state of one emulator: projects, images, stored objects, credentials, counters,
/// the request log and the fault switches. Tests read it directly (`RunningEmulator.state`).
public actor EmulatorState {
    public nonisolated let configuration: EmulatorConfiguration
    nonisolated let clock: any EmulatorClock

    private var projects: [String: ProjectRecord] = [:]
    private var projectOrder: [String] = []
    private var images = ImageTable()
    /// objectKey -> image id
    private var objectIndex: [String: String] = [:]
    /// In-memory objects (when there is no data directory).
    private var objects: [String: [UInt8]] = [:]
    private var stsByKeyID: [String: STSRecord] = [:]
    /// OSS multipart uploads in progress, with their parts.
    private var multipart: MultipartUploads
    /// The credentials the emulator signs its S3 URLs with.
    public private(set) var s3Credentials: S3Credentials
    private var counters = EmulatorStats()
    /// Connections accepted and ended, counted on the event loops (see `ConnectionCounter`).
    nonisolated let connections = ConnectionCounter()
    private var bodiesInFlight = 0
    private var log: [RequestLogEntry] = []
    private var sequence = 0
    /// The fault switches in force.
    public private(set) var faults: FaultSettings {
        didSet { bandwidth.rate = faults.bandwidthBytesPerSecond }
    }
    /// The shared cap on upload bodies (`FaultSettings.bandwidthBytesPerSecond`).
    public nonisolated let bandwidth: LinkRateCap
    private var rng = SystemRandomNumberGenerator()
    /// True once the emulator has begun to shut down (hanging requests give up).
    public private(set) var isStopping = false
    /// `http://127.0.0.1:PORT`, known once the server is bound.
    public private(set) var baseURL: String = ""

    public init(configuration: EmulatorConfiguration, clock: any EmulatorClock = SystemEmulatorClock()) throws {
        self.configuration = configuration
        self.clock = clock
        self.faults = configuration.faults
        self.bandwidth = LinkRateCap(bytesPerSecond: configuration.faults.bandwidthBytesPerSecond)
        self.s3Credentials = S3Credentials(accessKeyID: "AKIAALTIEMULATOR0001", secret: randomHex(20))
        self.multipart = MultipartUploads(dataDirectory: configuration.dataDirectory)
        if let dir = configuration.dataDirectory {
            try FileManager.default.createDirectory(atPath: dir + "/objects", withIntermediateDirectories: true)
            if let data = FileManager.default.contents(atPath: Self.snapshotPath(dir)) {
                let snapshot = try Self.decoder.decode(Snapshot.self, from: data)
                s3Credentials = snapshot.s3
                for p in snapshot.projects {
                    projects[p.id] = p
                    projectOrder.append(p.id)
                }
                for i in snapshot.images {
                    images[i.id] = i
                    objectIndex[i.objectKey] = i.id
                }
                for s in snapshot.sts { stsByKeyID[s.accessKeyID] = s }
                multipart = MultipartUploads(dataDirectory: dir, restoring: snapshot.multipartUploads ?? [])
            }
        }
        Self.seed(configuration, clock.now(), &projects, &projectOrder)
    }

    private static func seed(_ configuration: EmulatorConfiguration, _ now: Date,
                             _ projects: inout [String: ProjectRecord], _ order: inout [String]) {
        for seed in configuration.allProjects where projects[seed.id] == nil {
            projects[seed.id] = ProjectRecord(
                id: seed.id, name: seed.name, projectType: "free", visibility: "public",
                createdAt: now, imageIDs: [], tasks: [])
            order.append(seed.id)
        }
    }

    func setBaseURL(_ url: String) { baseURL = url }

    func markStopping() { isStopping = true }

    /// Restarts processing of images that were Uploaded when a persisted emulator stopped.
    func resumeProcessing() {
        for image in images.values where image.state == .uploaded {
            scheduleProcessing(image)
        }
    }

    // MARK: Time and lifetimes

    public nonisolated func now() -> Date { clock.now() }
    var urlLifetime: TimeInterval { faults.urlLifetimeSeconds ?? configuration.urlLifetime }
    var stsLifetime: TimeInterval { faults.stsLifetimeSeconds ?? configuration.stsLifetime }

    /// "Now" for the OSS storage: the emulator clock plus `ossClockSkewSeconds`. Request times, STS
    /// expiry and the `Date` of OSS answers follow it.
    func ossNow() -> Date { clock.now().addingTimeInterval(faults.ossClockSkewSeconds) }

    /// The 65-minute rule: Pending images untouched that long become Invalid.
    private func expireStalePending() {
        let now = clock.now()
        guard let oldest = images.oldestPendingChange,
              now.timeIntervalSince(oldest) >= configuration.pendingTimeout else { return }
        var changed = false
        defer { images.tightenPendingBound() }
        for id in images.pendingIDs {
            guard var image = images[id], now.timeIntervalSince(image.modifiedAt) >= configuration.pendingTimeout else { continue }
            image.state = .invalid
            let minutes = Int(configuration.pendingTimeout / 60)
            // Keep what was said while Pending (bytes that arrived without startImageUpload).
            image.errors += [image.received == nil
                ? "no image data arrived within \(minutes) minutes"
                : "upload not completed (doneImageUpload) within \(minutes) minutes"]
            image.modifiedAt = now
            image.generation += 1
            images[id] = image
            changed = true
        }
        if changed { persist() }
    }

    // MARK: Projects

    /// The project with this id, or nil.
    public func project(_ id: String) -> ProjectRecord? {
        advanceReconstructions()
        return projects[id]
    }

    /// All projects, oldest first.
    public func allProjects() -> [ProjectRecord] {
        advanceReconstructions()
        return projectsInOrder
    }

    /// All projects, oldest first, as they are (no clock catch-up: `persist` uses it).
    private var projectsInOrder: [ProjectRecord] { projectOrder.compactMap { projects[$0] } }

    func createProject(name: String, type: String?, visibility: String?) -> ProjectRecord {
        let record = ProjectRecord(
            id: makeObjectID(), name: name, projectType: type ?? "free", visibility: visibility ?? "public",
            createdAt: clock.now(), imageIDs: [], tasks: [])
        projects[record.id] = record
        projectOrder.append(record.id)
        persist()
        return record
    }

    // MARK: Reconstruction

    /// `startReconstructionWithError` (`scheduled` false) and `preStartReconstruction` (true).
    /// A project has at most one reconstruction: while its current task holds it (any state but
    /// Stopped) both are refused, so a client that asks twice never starts two tasks.
    func startReconstruction(projectID: String, taskType: String, scheduled: Bool)
        -> Result<TaskRecord, ReconstructionRefusal>
    {
        advanceReconstructions()
        guard var project = projects[projectID] else { return .failure(.projectNotFound) }
        if let current = project.taskHoldingProject { return .failure(.taskExists(current)) }
        let hasReadyImage = project.imageIDs.contains { images[$0].map(Self.isReady) ?? false }
        if !scheduled && !hasReadyImage { return .failure(.noReadyImage) }
        let now = clock.now()
        let task = TaskRecord(
            id: makeObjectID(), taskType: taskType, state: scheduled ? .scheduled : .pending, startDate: now,
            queuedAt: scheduled ? nil : now, endDate: nil)
        project.tasks.append(task)
        projects[projectID] = project
        persist()
        // A scheduled task whose images are all processed already starts now.
        advanceReconstructions()
        return .success(projects[projectID]?.tasks.last ?? task)
    }

    /// `stopReconstruction`: a Scheduled, Pending or Processing task becomes Stopped (which makes
    /// room for a new start); a Done or Stopped one is returned as it is. Nil without a task.
    func stopReconstruction(projectID: String) -> TaskRecord? {
        advanceReconstructions()
        guard var project = projects[projectID], var task = project.tasks.last else { return nil }
        guard task.state != .done && task.state != .stopped else { return task }
        task.state = .stopped
        task.endDate = clock.now()
        project.tasks[project.tasks.count - 1] = task
        projects[projectID] = project
        persist()
        return task
    }

    /// Moves every project's current task along: Scheduled -> Pending once the project has a
    /// Ready image and none still Pending or Uploaded; Pending -> Processing -> Done after one
    /// `reconstructionPhase` each, counted on the clock from `queuedAt` (so the outcome does not
    /// depend on when anyone looks).
    private func advanceReconstructions() {
        // Image states first: a stale Pending image turning Invalid can release a scheduled task.
        expireStalePending()
        let now = clock.now()
        let phase = configuration.reconstructionPhase
        var changed = false
        for id in projectOrder {
            guard var project = projects[id], var task = project.tasks.last else { continue }
            let before = task
            if task.state == .scheduled && imagesAreProcessed(project) {
                task.state = .pending
                task.queuedAt = now
            }
            if task.state == .pending || task.state == .processing {
                // Tasks persisted before `queuedAt` existed were queued when they started.
                let queuedAt = task.queuedAt ?? task.startDate
                let done = queuedAt.addingTimeInterval(2 * phase)
                if now >= done {
                    task.state = .done
                    task.endDate = done
                } else if now >= queuedAt.addingTimeInterval(phase) {
                    task.state = .processing
                }
            }
            guard task != before else { continue }
            project.tasks[project.tasks.count - 1] = task
            projects[id] = project
            changed = true
        }
        if changed { persist() }
    }

    /// True when the project has a Ready image and every image is Ready or Invalid: the moment
    /// `preStartReconstruction` waits for.
    private func imagesAreProcessed(_ project: ProjectRecord) -> Bool {
        let projectImages = project.imageIDs.compactMap { images[$0] }
        return projectImages.contains(where: Self.isReady)
            && projectImages.allSatisfy { Self.isReady($0) || $0.state == .invalid }
    }

    private static func isReady(_ image: ImageRecord) -> Bool {
        image.state == .ready || image.state == .readyStrong
    }

    // MARK: Images

    /// The project's images in registration order.
    public func images(ofProject projectID: String) -> [ImageRecord] {
        expireStalePending()
        return projects[projectID]?.imageIDs.compactMap { images[$0] } ?? []
    }

    /// One image by id, in any project.
    public func image(id: String) -> ImageRecord? {
        expireStalePending()
        return images[id]
    }

    /// The project's image with this id, or nil.
    public func image(projectID: String, imageID: String) -> ImageRecord? {
        expireStalePending()
        guard let image = images[imageID], image.projectID == projectID else { return nil }
        return image
    }

    /// The project's image with this client or server filename, or nil.
    public func image(projectID: String, filename: String) -> ImageRecord? {
        images(ofProject: projectID).first { $0.filename == filename || $0.name == filename }
    }

    /// `hasImage`: the project's image with that checksum in any state, or nil. The checksum is
    /// compared exactly as registered (upper-case hex is a different string).
    public func image(projectID: String, checksum: String) -> ImageRecord? {
        expireStalePending()
        return images.id(projectID: projectID, checksum: checksum).flatMap { images[$0] }
    }

    /// Removes an image from its project, as deleting it in the web app does: `hasImage` and
    /// `project.image` no longer find it and its stored object is gone; counters are kept.
    /// Returns false for an id the emulator does not know.
    @discardableResult
    public func removeImage(id: String) -> Bool {
        guard let image = images.removeValue(forKey: id) else { return false }
        projects[image.projectID]?.imageIDs.removeAll { $0 == id }
        objectIndex[image.objectKey] = nil
        objects[image.objectKey] = nil
        if let dir = configuration.dataDirectory {
            try? FileManager.default.removeItem(atPath: Self.objectPath(dir, image.objectKey))
        }
        persist()
        return true
    }

    /// Registers an image (uploadImageS3/OSS). A checksum the project already has returns the same
    /// image; a non-Ready one is reset to Pending.
    func register(projectID: String, cloud: StorageCloud, bucket: String, clientFilename: String,
                  type: String?, checksum rawChecksum: String?) -> ImageRecord {
        expireStalePending()
        let now = clock.now()
        let checksum = rawChecksum.flatMap { $0.isEmpty ? nil : $0 }
        counters.registrations += 1
        if let checksum, let id = images.id(projectID: projectID, checksum: checksum), var image = images[id] {
            if image.state != .ready && image.state != .readyStrong {
                image.state = .pending
                image.errors = []
                image.received = nil
                image.generation += 1
            }
            image.uploadStarted = false
            if let type { image.type = type }
            let key = Self.objectKey(cloud: cloud, bucket: bucket, projectID: projectID, filename: image.filename)
            if key != image.objectKey {
                objectIndex[image.objectKey] = nil
                image.objectKey = key
                image.cloud = cloud
                objectIndex[key] = image.id
            }
            image.modifiedAt = now
            images[image.id] = image
            persist()
            return image
        }
        let filename = Self.serverFilename(checksum: checksum, type: type, clientFilename: clientFilename)
        let key = Self.objectKey(cloud: cloud, bucket: bucket, projectID: projectID, filename: filename)
        let image = ImageRecord(
            id: makeObjectID(), projectID: projectID, name: clientFilename, filename: filename, checksum: checksum,
            type: type, cloud: cloud, objectKey: key, state: .pending, errors: [], createdAt: now, modifiedAt: now,
            received: nil, putCount: 0, generation: 0)
        images[image.id] = image
        objectIndex[key] = image.id
        projects[projectID]?.imageIDs.append(image.id)
        persist()
        return image
    }

    static func objectKey(cloud: StorageCloud, bucket: String, projectID: String, filename: String) -> String {
        "\(cloud == .s3 ? "s3" : "oss")/\(bucket)/\(projectID)/\(filename)"
    }

    /// `<sha1>.<ext>`: the hashed server-side name (random when no usable checksum was given).
    static func serverFilename(checksum: String?, type: String?, clientFilename: String) -> String {
        let ext: String
        switch type {
        case "PNG": ext = "png"
        case "TIFF": ext = "tif"
        case "JPEG": ext = "jpg"
        default:
            let clientExt = (clientFilename as NSString).pathExtension.lowercased()
            ext = clientExt.isEmpty || !clientExt.allSatisfy({ $0.isLetter || $0.isNumber }) ? "jpg" : clientExt
        }
        let base: String
        if let checksum, checksum.count == 40, checksum.allSatisfy(\.isHexDigit) {
            base = checksum
        } else {
            base = randomHex(20)
        }
        return "\(base).\(ext)"
    }

    /// `startImageUpload`: touches the image (it stays Pending until the bytes arrive) and records
    /// that the upload was announced, so the bytes that follow may move it along.
    func startImageUpload(id: String) -> ImageRecord? {
        expireStalePending()
        guard var image = images[id] else { return nil }
        counters.startsByImage[id, default: 0] += 1
        image.uploadStarted = true
        if image.state == .pending { image.modifiedAt = clock.now() }
        images[id] = image
        persist()
        return image
    }

    /// `doneImageUpload`: Uploaded (and processing starts) if the bytes arrived; else unchanged.
    func doneImageUpload(id: String) -> ImageRecord? {
        expireStalePending()
        guard var image = images[id] else { return nil }
        if image.received != nil && (image.state == .pending || image.state == .invalid) {
            image.state = .uploaded
            image.errors = []
            image.modifiedAt = clock.now()
            image.generation += 1
            images[id] = image
            persist()
            scheduleProcessing(image)
        }
        return image
    }

    private func scheduleProcessing(_ image: ImageRecord) {
        let delay = configuration.processingDelay
        let id = image.id
        let generation = image.generation
        Task {
            if delay > 0 { try? await Task.sleep(nanoseconds: UInt64(delay * 1e9)) }
            self.finishProcessing(id: id, generation: generation)
        }
    }

    private func finishProcessing(id: String, generation: Int) {
        guard var image = images[id], image.generation == generation, image.state == .uploaded,
              let received = image.received else { return }
        var errors: [String] = []
        let forced = Set(faults.forceInvalid)
        if forced.contains(image.name) || forced.contains(image.filename) || forced.contains(image.id) {
            errors.append("forced Invalid by the emulator (forceInvalid)")
        }
        if received.size == 0 {
            errors.append("empty file")
        } else if received.format == nil {
            errors.append("not a JPEG, PNG or TIFF image")
        }
        if let checksum = image.checksum, checksum != received.sha1 {
            errors.append("checksum mismatch: registered \(checksum), stored bytes have \(received.sha1)")
        }
        image.state = errors.isEmpty ? .ready : .invalid
        image.errors = errors
        image.modifiedAt = clock.now()
        images[id] = image
        persist()
        // This may have been the last image a scheduled reconstruction waited for.
        advanceReconstructions()
    }

    // MARK: Storage

    /// Issues STS credentials for `<ossBucket>/<projectID>/` and returns them as the client gets
    /// them: with `tamperNextSTS` the secret handed out is not the one the verifier holds.
    func issueSTS(projectID: String) -> STSRecord {
        let record = STSRecord(
            accessKeyID: "STS.\(randomHex(12))", secret: randomHex(20), token: "CAIS\(randomHex(32))",
            projectID: projectID, bucket: configuration.ossBucket,
            expiresAt: clock.now().addingTimeInterval(stsLifetime).rounded())
        stsByKeyID[record.accessKeyID] = record
        counters.stsIssued += 1
        persist()
        guard faults.tamperNextSTS > 0 else { return record }
        faults.tamperNextSTS -= 1
        counters.tamperedSTS += 1
        var handedOut = record
        // Same length and alphabet, last character changed: only the signature can tell.
        handedOut.secret = String(record.secret.dropLast()) + (record.secret.last == "0" ? "1" : "0")
        return handedOut
    }

    /// The STS credentials with this access key id, or nil.
    public func sts(accessKeyID: String) -> STSRecord? { stsByKeyID[accessKeyID] }

    /// The image whose object key this is, if any.
    func imageID(forObjectKey key: String) -> String? { objectIndex[key] }

    /// Stores an object that passed verification and moves its image along the lifecycle. With
    /// `corruptNextStores` the stored copy has one byte flipped; the answer must describe
    /// `StoredObject.bytes`, not what arrived.
    @discardableResult
    func storeObject(key: String, bytes received: [UInt8]) throws -> StoredObject {
        expireStalePending()
        var bytes = received
        let corrupted = damageIfDue(&bytes)
        if let dir = configuration.dataDirectory {
            let path = Self.objectPath(dir, key)
            try FileManager.default.createDirectory(
                atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try Data(bytes).write(to: URL(fileURLWithPath: path), options: .atomic)
        } else {
            objects[key] = bytes
        }
        counters.bytesStored += bytes.count
        guard let id = objectIndex[key], var image = images[id] else {
            return StoredObject(imageID: nil, bytes: bytes, corrupted: corrupted)
        }
        image.putCount += 1
        counters.putsByImage[id, default: 0] += 1
        if image.state != .ready && image.state != .readyStrong && !image.uploadStarted {
            // The upload guide requires startImageUpload just before each upload. S3/OSS store the
            // bytes regardless, but the service never learns of them: the image does not advance.
            if !image.errors.contains(Self.notStartedError) { image.errors.append(Self.notStartedError) }
            images[id] = image
        } else if image.state != .ready && image.state != .readyStrong {
            image.errors.removeAll { $0 == Self.notStartedError }
            image.received = ImageInspector.inspect(bytes)
            image.modifiedAt = clock.now()
            if image.cloud == .s3 || image.state == .uploaded {
                image.state = .uploaded
                image.errors = []
                image.generation += 1
                images[id] = image
                scheduleProcessing(image)
            } else {
                images[id] = image
            }
        } else {
            images[id] = image
        }
        persist()
        return StoredObject(imageID: id, bytes: bytes, corrupted: corrupted)
    }

    /// Flips one byte (the middle one) when `corruptNextStores` asks for it; empty bodies are left
    /// alone and do not use up the count.
    private func damageIfDue(_ bytes: inout [UInt8]) -> Bool {
        guard faults.corruptNextStores > 0, !bytes.isEmpty else { return false }
        faults.corruptNextStores -= 1
        counters.corruptedStores += 1
        bytes[bytes.count / 2] ^= 0xFF
        return true
    }

    // MARK: OSS multipart

    /// InitiateMultipartUpload: a new upload id for this bucket and key.
    func initiateMultipartUpload(bucket: String, key: String) -> MultipartUploadRecord {
        let record = multipart.initiate(bucket: bucket, key: key, now: clock.now())
        counters.multipartInitiated += 1
        persist()
        return record
    }

    /// The upload in progress with this id for this bucket and key, or nil (NoSuchUpload).
    func multipartUpload(_ uploadID: String, bucket: String, key: String) -> MultipartUploadRecord? {
        multipart.upload(uploadID, bucket: bucket, key: key)
    }

    /// UploadPart: stores (or replaces) one part; nil when the upload is not (or no longer) there.
    /// With `corruptNextStores` the stored part has one byte flipped and `StoredPart` describes it.
    func storePart(uploadID: String, bucket: String, key: String, number: Int, bytes received: [UInt8]) throws
        -> StoredPart?
    {
        guard multipart.upload(uploadID, bucket: bucket, key: key) != nil else { return nil }
        var bytes = received
        _ = damageIfDue(&bytes)
        let part = try multipart.storePart(uploadID: uploadID, number: number, bytes: bytes)
        counters.partsByUpload[uploadID, default: [:]][number, default: 0] += 1
        counters.partsByKey[key, default: [:]][number, default: 0] += 1
        persist()
        return part
    }

    /// CompleteMultipartUpload: checks the listed parts, stores the assembled object exactly as a
    /// PutObject would (`storeObject`: image lifecycle, counters, corruption) and forgets the upload.
    /// Nil when the upload is not (or no longer) there.
    func completeMultipartUpload(uploadID: String, bucket: String, key: String,
                                 listed: [(number: Int, etag: String)]) throws
        -> Result<CompletedMultipartObject, MultipartCompletionRefusal>?
    {
        guard let record = multipart.upload(uploadID, bucket: bucket, key: key) else { return nil }
        let assembled: AssembledObject
        switch try multipart.assemble(record, listed: listed) {
        case .failure(let refusal): return .failure(refusal)
        case .success(let object): assembled = object
        }
        let stored = try storeObject(key: "oss/\(bucket)/\(key)", bytes: assembled.bytes)
        multipart.finish(uploadID: uploadID)
        counters.multipartCompleted += 1
        persist()
        // The parts' CRCs combine to the object's; a damaged copy has to be read again.
        let crc = stored.corrupted ? CRC64.checksum(stored.bytes) : assembled.crc64
        return .success(CompletedMultipartObject(imageID: stored.imageID, etag: assembled.etag, crc64: crc,
                                                 size: stored.bytes.count))
    }

    /// AbortMultipartUpload: forgets the upload and its parts. False when it is not there.
    func abortMultipartUpload(uploadID: String, bucket: String, key: String) -> Bool {
        guard multipart.upload(uploadID, bucket: bucket, key: key) != nil else { return false }
        multipart.finish(uploadID: uploadID)
        counters.multipartAborted += 1
        persist()
        return true
    }

    /// The uploads in progress (tests).
    public func multipartUploadsInProgress() -> [MultipartUploadRecord] {
        multipart.uploads.values.sorted { ($0.initiatedAt, $0.uploadID) < ($1.initiatedAt, $1.uploadID) }
    }

    /// The error entry of an image whose bytes arrived before any `startImageUpload`.
    static let notStartedError = "bytes arrived without startImageUpload"

    /// The bytes stored under an object key (`s3/<bucket>/<pid>/<file>` or `oss/...`), or nil.
    public func object(key: String) -> [UInt8]? {
        if let dir = configuration.dataDirectory {
            return FileManager.default.contents(atPath: Self.objectPath(dir, key)).map { [UInt8]($0) }
        }
        return objects[key]
    }

    /// The bytes stored for an image, or nil.
    public func objectBytes(imageID: String) -> [UInt8]? {
        guard let image = images[imageID] else { return nil }
        return object(key: image.objectKey)
    }

    // MARK: Counters, log, faults

    func countGraphQLRequest() { counters.graphqlRequests += 1 }
    func countDocumentReused() { counters.graphqlDocumentsReused += 1 }
    func countField(_ name: String) { counters.graphqlFields[name, default: 0] += 1 }
    /// An upload body's first byte arrived / its last byte did: tracks how many are received at once.
    func bodyBegan() {
        bodiesInFlight += 1
        counters.peakBodiesInFlight = max(counters.peakBodiesInFlight, bodiesInFlight)
        if counters.firstBodyByteAt == nil { counters.firstBodyByteAt = Date() }
    }
    func bodyEnded() {
        bodiesInFlight -= 1
        counters.lastBodyByteAt = Date()
    }
    /// Upload bodies being received right now (a test times a kill to land mid-body with it).
    public func uploadBodiesInFlight() -> Int { bodiesInFlight }
    func countPut(outcome: String) {
        counters.puts += 1
        counters.putsByOutcome[outcome, default: 0] += 1
    }
    func countOSS(operation: String) { counters.ossOperations[operation, default: 0] += 1 }
    func countOSSRefusal(code: String) { counters.ossRefusals[code, default: 0] += 1 }

    func appendLog(_ entry: RequestLogEntry) {
        sequence += 1
        var entry = entry
        entry.sequence = sequence
        log.append(entry)
        if log.count > configuration.requestLogLimit { log.removeFirst(log.count - configuration.requestLogLimit) }
    }

    /// Decides the fault for one arriving request (consumes `...Next` counters).
    func decideFault(_ requestClass: RequestClass) -> (action: FaultAction, latencyMilliseconds: Int) {
        var classFaults = faults[requestClass]
        let action = classFaults.decide(using: &rng)
        faults[requestClass] = classFaults
        return (action, classFaults.latencyMilliseconds)
    }

    /// Replaces all fault switches.
    public func setFaults(_ settings: FaultSettings) { faults = settings }

    /// Changes the fault switches in place.
    public func updateFaults(_ change: (inout FaultSettings) -> Void) { change(&faults) }

    /// Counters plus the current images.
    public func stats() -> EmulatorStats {
        advanceReconstructions()
        var out = counters
        (out.connectionsOpened, out.connectionsClosed) = connections.counts
        let all = images.values.sorted { ($0.createdAt, $0.id) < ($1.createdAt, $1.id) }
        out.images = all.map {
            ImageSummary(id: $0.id, projectID: $0.projectID, name: $0.name, filename: $0.filename,
                         checksum: $0.checksum, state: $0.state, errors: $0.errors, putCount: $0.putCount)
        }
        out.imagesByState = Dictionary(grouping: all, by: { $0.state.rawValue }).mapValues(\.count)
        out.tasks = projectsInOrder.flatMap { project in
            project.tasks.map {
                TaskSummary(id: $0.id, projectID: project.id, taskType: $0.taskType, state: $0.state)
            }
        }
        return out
    }

    /// The request log, oldest first.
    public func requestLog() -> [RequestLogEntry] { log }

    /// Forgets images, objects, STS, counters and the log; projects go back to the seeds and
    /// faults to the configured ones. The S3 signing key stays.
    public func reset() {
        projects = [:]
        projectOrder = []
        images = ImageTable()
        objectIndex = [:]
        objects = [:]
        stsByKeyID = [:]
        multipart.removeAll()
        counters = EmulatorStats()
        log = []
        faults = configuration.faults
        if let dir = configuration.dataDirectory {
            try? FileManager.default.removeItem(atPath: dir + "/objects")
            try? FileManager.default.createDirectory(atPath: dir + "/objects", withIntermediateDirectories: true)
        }
        Self.seed(configuration, clock.now(), &projects, &projectOrder)
        persist()
    }

    // MARK: Persistence

    private struct Snapshot: Codable {
        var version = 1
        var s3: S3Credentials
        var projects: [ProjectRecord]
        var images: [ImageRecord]
        var sts: [STSRecord]
        /// Absent in snapshots written before multipart existed.
        var multipartUploads: [MultipartUploadRecord]?
    }

    private static func snapshotPath(_ dir: String) -> String { dir + "/state.json" }
    private static func objectPath(_ dir: String, _ key: String) -> String { dir + "/objects/" + key }

    private static let decoder: JSONDecoder = {
        let d = JSONDecoder()
        d.dateDecodingStrategy = .iso8601
        return d
    }()

    private func persist() {
        guard let dir = configuration.dataDirectory else { return }
        let snapshot = Snapshot(
            s3: s3Credentials, projects: projectsInOrder,
            images: images.values.sorted { ($0.createdAt, $0.id) < ($1.createdAt, $1.id) },
            sts: stsByKeyID.values.sorted { $0.accessKeyID < $1.accessKeyID },
            multipartUploads: multipart.uploads.values.sorted { $0.uploadID < $1.uploadID })
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        do {
            try encoder.encode(snapshot).write(to: URL(fileURLWithPath: Self.snapshotPath(dir)), options: .atomic)
        } catch {
            FileHandle.standardError.write(Data("alti-emulator: cannot write \(dir)/state.json: \(error)\n".utf8))
        }
    }
}

/// What a store kept: the image the object belongs to (if any) and its bytes as stored.
struct StoredObject {
    var imageID: String?
    var bytes: [UInt8]
    /// True when `corruptNextStores` flipped a byte of `bytes`.
    var corrupted: Bool
}

extension Date {
    /// Whole seconds (STS `expire` has no fraction, so the stored expiry must not either).
    func rounded() -> Date { Date(timeIntervalSince1970: timeIntervalSince1970.rounded(.down)) }
}

/// Why a reconstruction did not start: the `error { code message }` of the payload (the task is
/// then null). The sources list no codes ("10 error kinds", DOCS en/api-reconstruction.md): these
/// are the emulator's.
struct ReconstructionRefusal: Error, Equatable {
    let code: Int
    let message: String

    static let projectNotFound = ReconstructionRefusal(code: 404, message: "project not found")
    static let noReadyImage = ReconstructionRefusal(code: 1001, message: "no Ready image in the project")

    /// The project already has a task that holds it (any state but Stopped).
    static func taskExists(_ task: TaskRecord) -> ReconstructionRefusal {
        ReconstructionRefusal(
            code: 1002,
            message: "the project already has a reconstruction task (\(task.id), \(task.state.rawValue))")
    }
}
