import Foundation
import GraphQL

/// The emulator's GraphQL behaviour, field by field (altizure-api.md §3 and §11).
enum Resolvers {
    /// S3 bucket enum value -> (bucket name, region).
    static let s3Buckets: [String: (bucket: String, region: String)] = [
        "Paris": ("alti-emu-s3-paris", "eu-west-3"),
        "Stockholm": ("alti-emu-s3-stockholm", "eu-north-1"),
        "HongKong": ("alti-emu-s3-hongkong", "ap-east-1"),
    ]
    /// The region the emulator names for its OSS buckets (V4 signing accepts any region).
    static let ossRegion = "cn-shenzhen"
    /// USD per coin, for `bank`.
    static let usdPerCoin = 0.1
    /// Demo login for `getUserToken` / `getUserTokenByLoginCode`.
    static let demoEmail = "demo@alti.local"
    static let demoPassword = "alti-demo-password"
    static let demoLoginCode = "000000"

    static func all() -> [String: [String: Resolver]] {
        [
            "Query": query,
            "Mutation": mutation,
            "Project": project,
            "My": my,
            "Search": ["projectID": searchProjectID],
            "Support": support,
            "Bank": bank,
            "Utility": ["sizeToGigaPixel": sizeToGigaPixel],
        ]
    }

    // MARK: Query

    static let query: [String: Resolver] = [
        "project": { _, args, ctx, _ in
            try ctx.requireToken()
            guard let id = args["id"].nonEmptyString, let project = await ctx.state.project(id) else { return nil }
            return await projectObject(project, ctx)
        },
        "my": { _, _, ctx, _ in
            try ctx.requireToken()
            return object([
                "self": object([
                    "email": demoEmail, "name": "Alti Demo", "username": "alti-demo", "country": "Hong_Kong_SAR",
                    "balance": 1000.0, "freeGPQuota": 10.0, "membershipState": "ACTIVE", "modelUsage": 0.0,
                    "developer": object(["status": "ACTIVE"]),
                    "stats": object(["star": 0, "project": await ctx.state.allProjects().count, "planet": 0,
                                     "follower": 0, "following": 0]),
                    "joined": formatISODate(Date(timeIntervalSince1970: 1_577_836_800)),
                ]),
            ])
        },
        "search": { _, _, ctx, _ in
            try ctx.requireToken()
            return [String: any Sendable]()
        },
        "support": { _, _, ctx, _ in
            try ctx.requireKey()
            return object([
                "systemMode": await ctx.state.faults.systemMode.rawValue,
                "endpoints": object(["api": ctx.baseURL, "web": ctx.baseURL]),
            ])
        },
        "getGeoIPInfo": { _, _, ctx, _ in
            try ctx.requireKey()
            let buckets: [any Sendable] = [
                object(["id": "s3-HongKong", "cloud": "S3", "bucket": "HongKong",
                        "display": "Hong Kong (emulated S3)"]),
                object(["id": "oss-Shenzhen", "cloud": "OSS", "bucket": "Shenzhen",
                        "display": "Shenzhen (emulated OSS)"]),
            ]
            return object(["id": "127.0.0.1", "nearestBuckets": buckets, "nearestMetaBuckets": buckets,
                           "nearestModelBuckets": buckets])
        },
        "bank": { _, _, ctx, _ in
            try ctx.requireKey()
            return [String: any Sendable]()
        },
        "utility": { _, _, ctx, _ in
            try ctx.requireKey()
            return [String: any Sendable]()
        },
        "versions": { _, _, ctx, _ in
            try ctx.requireKey()
            return object(["api": "alti-emulator 1.0"])
        },
    ]

    // MARK: Mutation

    static let mutation: [String: Resolver] = [
        "hasImage": { _, args, ctx, _ in
            try ctx.requireToken()
            let pid = try requireProjectID(args, ctx)
            _ = try await requireProject(pid, ctx)
            guard let checksum = args["checksum"].nonEmptyString,
                  let image = await ctx.state.image(projectID: pid, checksum: checksum) else { return nil }
            return imageObject(image, ctx)
        },
        "uploadImageS3": { _, args, ctx, info in
            try ctx.requireToken()
            try await ctx.requireWritable()
            let pid = try requireProjectID(args, ctx)
            _ = try await requireProject(pid, ctx)
            let bucketValue = args["bucket"].string ?? ""
            guard let bucket = s3Buckets[bucketValue] else {
                throw APIError("unknown S3 bucket \(bucketValue)")
            }
            let selected = selectedSubfields(info)
            guard selected.contains("url") || selected.contains("image") else { return [String: any Sendable]() }
            let filename = try requireFilename(args)
            let type = args["type"].nonEmptyString
            let image = await ctx.state.register(
                projectID: pid, cloud: .s3, bucket: bucket.bucket, clientFilename: filename, type: type,
                checksum: args["checksum"].nonEmptyString)
            let path = S3Paths.path(bucket: bucket.bucket, projectID: pid, filename: image.filename)
            let credentials = await ctx.state.s3Credentials
            let lifetime = await ctx.state.urlLifetime
            let url = ctx.signer.presignS3Put(
                baseURL: ctx.baseURL, path: path, contentType: contentType(type: type, filename: filename),
                credentials: credentials, region: bucket.region, date: ctx.state.now(),
                expires: max(1, Int(lifetime.rounded())))
            return object(["url": url, "image": imageObject(image, ctx)])
        },
        "uploadImageOSS": { _, args, ctx, info in
            try ctx.requireToken()
            try await ctx.requireWritable()
            let pid = try requireProjectID(args, ctx)
            _ = try await requireProject(pid, ctx)
            let bucketValue = args["bucket"].string ?? ""
            guard bucketValue == "Shenzhen" else { throw APIError("unknown OSS bucket \(bucketValue)") }
            let selected = selectedSubfields(info)
            var result: [String: any Sendable] = [:]
            if selected.contains("image") {
                let filename = try requireFilename(args)
                let image = await ctx.state.register(
                    projectID: pid, cloud: .oss, bucket: ctx.state.configuration.ossBucket, clientFilename: filename,
                    type: args["type"].nonEmptyString, checksum: args["checksum"].nonEmptyString)
                result["image"] = imageObject(image, ctx)
            }
            if selected.contains("sts") {
                let sts = await ctx.state.issueSTS(projectID: pid)
                result["sts"] = object([
                    "id": sts.accessKeyID, "secret": sts.secret, "token": sts.token, "bucket": sts.bucket,
                    "endpoint": ctx.baseURL, "expire": formatExpire(sts.expiresAt),
                ])
            }
            return result
        },
        "uploadImageMinio": { _, _, ctx, _ in
            try ctx.requireToken()
            throw APIError("uploadImageMinio is not supported by the emulator (supportedCloud: S3, OSS)")
        },
        "uploadImageURL": { _, _, ctx, _ in
            try ctx.requireToken()
            throw APIError("uploadImageURL is not supported by the emulator")
        },
        "startImageUpload": { _, args, ctx, _ in
            try ctx.requireToken()
            try await ctx.requireWritable()
            guard let id = args["id"].nonEmptyString, let image = await ctx.state.startImageUpload(id: id) else {
                throw APIError("Image not found")
            }
            return imageObject(image, ctx)
        },
        "doneImageUpload": { _, args, ctx, _ in
            try ctx.requireToken()
            try await ctx.requireWritable()
            guard let id = args["id"].nonEmptyString, let image = await ctx.state.doneImageUpload(id: id) else {
                throw APIError("Image not found")
            }
            return imageObject(image, ctx)
        },
        "startReconstructionWithError": { _, args, ctx, _ in
            try await reconstruction(args, ctx, scheduled: false)
        },
        "preStartReconstruction": { _, args, ctx, _ in
            try await reconstruction(args, ctx, scheduled: true)
        },
        "stopReconstruction": { _, args, ctx, _ in
            try ctx.requireToken()
            try await ctx.requireWritable()
            guard let id = args["id"].nonEmptyString,
                  let task = await ctx.state.stopReconstruction(projectID: id) else { return nil }
            return taskObject(task)
        },
        "createProject": { _, args, ctx, _ in
            try ctx.requireToken()
            try await ctx.requireWritable()
            guard let name = args["name"].nonEmptyString else { return nil }
            let project = await ctx.state.createProject(
                name: name, type: args["type"].nonEmptyString, visibility: args["visibility"].nonEmptyString)
            return await projectObject(project, ctx)
        },
        "getUserToken": { _, args, ctx, _ in
            try ctx.requireKey()
            guard args["email"].string == demoEmail, args["password"].string == demoPassword else { return nil }
            return ctx.state.configuration.token
        },
        "getUserTokenByLoginCode": { _, args, ctx, _ in
            try ctx.requireKey()
            guard args["code"].string == demoLoginCode else { return nil }
            return ctx.state.configuration.token
        },
        "requestLoginCode": { _, _, ctx, _ in
            try ctx.requireKey()
            return object(["result": "Success"])
        },
    ]

    static func reconstruction(_ args: Map, _ ctx: ResolverContext, scheduled: Bool) async throws -> (any Sendable)? {
        try ctx.requireToken()
        try await ctx.requireWritable()
        let id = args["id"].nonEmptyString ?? ""
        let taskType = args["options"]["taskType"].nonEmptyString ?? "Native"
        // Refusals are the payload's `error` (task null), never a GraphQL error: that is how this
        // mutation reports them (altizure-api.md §2).
        switch await ctx.state.startReconstruction(projectID: id, taskType: taskType, scheduled: scheduled) {
        case .success(let task):
            return object(["task": taskObject(task)])
        case .failure(let refusal):
            return object(["error": object(["code": refusal.code, "message": refusal.message])])
        }
    }

    // MARK: Nested types

    static let project: [String: Resolver] = [
        "image": { source, args, ctx, _ in
            guard let pid = (source as? [String: any Sendable])?["id"] as? String,
                  let id = args["id"].nonEmptyString,
                  let image = await ctx.state.image(projectID: pid, imageID: id) else { return nil }
            return imageObject(image, ctx)
        },
        "imageByFilename": { source, args, ctx, _ in
            guard let pid = (source as? [String: any Sendable])?["id"] as? String,
                  let filename = args["filename"].nonEmptyString,
                  let image = await ctx.state.image(projectID: pid, filename: filename) else { return nil }
            return imageObject(image, ctx)
        },
        "allImages": { source, args, ctx, _ in
            guard let pid = (source as? [String: any Sendable])?["id"] as? String else { return nil }
            if let filter = args["filter"].string, filter != "All" {
                throw APIError("unsupported filter \(filter)")
            }
            let images = await ctx.state.images(ofProject: pid)
            return try connection(images, args: args, cursor: { $0.id }, node: { imageObject($0, ctx) })
        },
    ]

    static let my: [String: Resolver] = [
        "allProjects": { _, args, ctx, _ in
            var projects = await ctx.state.allProjects()
            if let search = args["search"].nonEmptyString?.lowercased() {
                projects = projects.filter { $0.name.lowercased().contains(search) || $0.id.hasPrefix(search) }
            }
            var nodes: [String: [String: any Sendable]] = [:]
            for p in projects { nodes[p.id] = await projectObject(p, ctx) }
            return try connection(projects, args: args, cursor: { $0.id }, node: { nodes[$0.id] ?? [:] })
        },
    ]

    static let searchProjectID: Resolver = { _, args, ctx, _ in
        let prefix = (args["id"].string ?? "").lowercased()
        let limit = args["limit"].int ?? 10
        guard limit >= 0 else { throw APIError("limit must not be negative") }
        // Newest first: the CLI takes element [0] as "the latest" match.
        let matches = await ctx.state.allProjects().reversed().filter { $0.id.hasPrefix(prefix) }.prefix(limit)
        var out: [any Sendable] = []
        for p in matches { out.append(await projectObject(p, ctx)) }
        return out
    }

    static let support: [String: Resolver] = [
        "supportedCloud": { _, _, _, _ in
            ["S3", "OSS"] as [any Sendable]
        },
        "networkTest": { _, _, _, _ in
            "Success"
        },
    ]

    static let bank: [String: Resolver] = [
        "coinsToMoney": { _, args, _, _ in
            (args["coins"].double ?? Double(args["coins"].int ?? 0)) * usdPerCoin
        },
        "moneyToCoins": { _, args, _, _ in
            (args["money"].double ?? Double(args["money"].int ?? 0)) / usdPerCoin
        },
    ]

    static let sizeToGigaPixel: Resolver = { _, args, _, _ in
        let perImage = ImageInspector.gigaPixel(width: args["width"].int, height: args["height"].int)
        return perImage * Double(args["numImg"].int ?? 1)
    }

    // MARK: Helpers

    static func requireProjectID(_ args: Map, _ ctx: ResolverContext) throws -> String {
        guard let pid = args["pid"].nonEmptyString else { throw APIError("Project not found") }
        return pid
    }

    static func requireProject(_ pid: String, _ ctx: ResolverContext) async throws -> ProjectRecord {
        guard let project = await ctx.state.project(pid) else { throw APIError("Project not found") }
        return project
    }

    static func requireFilename(_ args: Map) throws -> String {
        guard let filename = args["filename"].nonEmptyString else {
            throw APIError("filename must not be empty")
        }
        return filename
    }

    /// The Content-Type an S3 URL signs: by IMAGE_TYPE, else by the filename's extension.
    static func contentType(type: String?, filename: String) -> String {
        switch type ?? "" {
        case "PNG": return "image/png"
        case "TIFF": return "image/tiff"
        case "JPEG": return "image/jpeg"
        default:
            switch (filename as NSString).pathExtension.lowercased() {
            case "png": return "image/png"
            case "tif", "tiff": return "image/tiff"
            default: return "image/jpeg"
            }
        }
    }

    static func imageObject(_ image: ImageRecord, _ ctx: ResolverContext) -> [String: any Sendable] {
        let ready = image.state == .ready || image.state == .readyStrong
        return object([
            "id": image.id, "state": image.state.rawValue, "name": image.name, "filename": image.filename,
            "error": image.errors.map { $0 as any Sendable }, "checksum": image.checksum, "grounded": false,
            "url": ready ? "\(ctx.baseURL)/_emulator/objects/\(image.objectKey)" : nil,
        ])
    }

    static func projectObject(_ project: ProjectRecord, _ ctx: ResolverContext) async -> [String: any Sendable] {
        let images = await ctx.state.images(ofProject: project.id)
        let ready = images.filter { $0.state == .ready || $0.state == .readyStrong }
        let gigaPixel = ready.reduce(0.0) {
            $0 + ImageInspector.gigaPixel(width: $1.received?.width, height: $1.received?.height)
        }
        return object([
            "id": project.id, "name": project.name, "isImported": false, "importedState": "Native",
            "projectType": project.projectType, "numImage": ready.count, "gigaPixel": gigaPixel,
            "taskState": project.taskState, "date": formatISODate(project.createdAt),
            "cloudPath": [object(["key": "s3"]), object(["key": "oss_sz"])] as [any Sendable],
            "downloads": object(["totalCount": 0, "edges": [any Sendable]()]),
        ])
    }

    static func taskObject(_ task: TaskRecord) -> [String: any Sendable] {
        object(["id": task.id, "taskType": task.taskType, "state": task.state.rawValue,
                "startDate": formatISODate(task.startDate), "endDate": task.endDate.map(formatISODate),
                "queueing": 0])
    }

    /// Relay connection over `items` (`first`, `last`, `after`, `before`; "" = unset).
    static func connection<T>(_ items: [T], args: Map, cursor: (T) -> String,
                              node: (T) -> [String: any Sendable]) throws -> [String: any Sendable] {
        func encode(_ id: String) -> String { Data("cursor:\(id)".utf8).base64EncodedString() }
        func position(_ text: String) throws -> Int {
            guard let data = Data(base64Encoded: text), let decoded = String(data: data, encoding: .utf8),
                  decoded.hasPrefix("cursor:"),
                  let index = items.firstIndex(where: { cursor($0) == decoded.dropFirst(7) }) else {
                throw APIError("invalid cursor \(text)")
            }
            return index
        }
        let first = args["first"].int
        let last = args["last"].int
        if let first, first < 0 { throw APIError("first must not be negative") }
        if let last, last < 0 { throw APIError("last must not be negative") }
        var start = 0
        var end = items.count
        if let after = args["after"].nonEmptyString { start = try position(after) + 1 }
        if let before = args["before"].nonEmptyString { end = try position(before) }
        end = max(start, end)
        var lower = start
        var upper = end
        if let first { upper = min(upper, lower + first) }
        if let last { lower = max(lower, upper - last) }
        let slice = Array(items[lower..<upper])
        let edges: [any Sendable] = slice.map { object(["node": node($0), "cursor": encode(cursor($0))]) }
        return object([
            "totalCount": items.count,
            "pageInfo": object([
                "hasNextPage": upper < items.count, "hasPreviousPage": lower > 0,
                "startCursor": slice.first.map { encode(cursor($0)) },
                "endCursor": slice.last.map { encode(cursor($0)) },
            ]),
            "edges": edges,
        ])
    }
}

/// Where S3 objects live on the emulator: `/s3/<bucket>/<pid>/<filename>`.
enum S3Paths {
    static let prefix = "/s3/"

    static func path(bucket: String, projectID: String, filename: String) -> String {
        "\(prefix)\(bucket)/\(projectID)/\(filename)"
    }
}
