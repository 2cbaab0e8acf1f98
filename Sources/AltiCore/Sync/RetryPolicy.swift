import Foundation

/// Exponential backoff with full jitter (AWS architecture blog's "full jitter": sleep a uniform
/// random time in [0, min(cap, base * 2^attempt)]), bounded in attempts. Full jitter spreads the
/// retries of many parallel uploads after a shared outage instead of synchronising them.
public struct RetryPolicy: Sendable {
    /// Total tries, the first one included.
    public var maxAttempts: Int
    public var baseDelay: Duration
    public var maxDelay: Duration

    public init(maxAttempts: Int = 6, baseDelay: Duration = .milliseconds(500), maxDelay: Duration = .seconds(20)) {
        self.maxAttempts = max(1, maxAttempts)
        self.baseDelay = baseDelay
        self.maxDelay = maxDelay
    }

    /// The delay before retry number `attempt` (0 = before the second try).
    public func delay(beforeRetry attempt: Int, random: Double = Double.random(in: 0..<1)) -> Duration {
        let base = Double(baseDelay.components.seconds) + Double(baseDelay.components.attoseconds) / 1e18
        let cap = Double(maxDelay.components.seconds) + Double(maxDelay.components.attoseconds) / 1e18
        let ceiling = min(cap, base * pow(2.0, Double(min(attempt, 30))))
        return .milliseconds(Int64(ceiling * random * 1000))
    }

    /// Reads `ALTI_RETRY_BASE_MS` so that end-to-end tests of fault paths do not sleep for
    /// seconds; the shape of the policy stays the same.
    public static func fromEnvironment(_ env: [String: String] = ProcessInfo.processInfo.environment) -> RetryPolicy {
        var policy = RetryPolicy()
        if let ms = env["ALTI_RETRY_BASE_MS"].flatMap(Int.init), ms >= 0 {
            policy.baseDelay = .milliseconds(ms)
            policy.maxDelay = .milliseconds(max(ms * 16, 1))
        }
        if let n = env["ALTI_RETRY_ATTEMPTS"].flatMap(Int.init), n > 0 { policy.maxAttempts = n }
        return policy
    }
}

/// One retry about to happen, for displays and `--events`: which try comes next, after how long,
/// and why the last one failed. `what` is filled in by the caller (it knows the request); the
/// reason never holds a URL's query string (callers pass redacted messages).
public struct RetryNote: Sendable, Equatable {
    public var what: String
    /// The try about to start (2 = the first retry).
    public var attempt: Int
    public var delay: Duration
    public var reason: String

    public init(what: String, attempt: Int, delay: Duration, reason: String) {
        self.what = what
        self.attempt = attempt
        self.delay = delay
        self.reason = reason
    }

    public var delaySeconds: Double {
        Double(delay.components.seconds) + Double(delay.components.attoseconds) / 1e18
    }
}

/// What one attempt of a retried operation came to.
public enum RetryStep<Value: Sendable>: Sendable {
    /// Done: return this (a success, or a failure that a retry would not mend).
    case finished(Value)
    /// A transient failure (a lost connection, 408, 429, 5xx): try again after a backoff.
    case retry(because: String)
}

/// Retries ran out; `lastProblem` says what the last attempt met.
public struct RetriesExhausted: Error, Sendable, Equatable {
    public var attempts: Int
    public var lastProblem: String
}

extension RetryPolicy {
    /// HTTP statuses worth another try on the same request: timeouts, throttling, server errors.
    public static func isTransient(status: Int) -> Bool { status == 408 || status == 429 || (500...599).contains(status) }

    /// The one retry loop of every request path (GraphQL, S3, OSS): up to `maxAttempts` tries,
    /// full-jitter sleeps between them, cancellation checked before each try and after each sleep
    /// (so Ctrl-C never waits out a backoff and never starts another request).
    /// - Returns: the value of the first `.finished` attempt.
    /// - Throws: `RetriesExhausted` when every attempt asked to retry, `CancellationError`, or
    ///   whatever `attempt` throws (not retried: classify retryable failures as `.retry`).
    public func run<Value: Sendable>(
        sleep: @Sendable (Duration) async throws -> Void = { try await Task.sleep(for: $0) },
        onRetry: @Sendable () -> Void = {},
        onRetryNote: @Sendable (_ attempt: Int, _ delay: Duration, _ reason: String) -> Void = { _, _, _ in },
        _ attempt: (_ number: Int) async throws -> RetryStep<Value>
    ) async throws -> Value {
        var lastProblem = ""
        for number in 0..<maxAttempts {
            try Task.checkCancellation()
            if number > 0 {
                onRetry()
                let pause = delay(beforeRetry: number - 1)
                onRetryNote(number + 1, pause, lastProblem)
                try await sleep(pause)
                try Task.checkCancellation()
            }
            switch try await attempt(number) {
            case .finished(let value): return value
            case .retry(let problem): lastProblem = problem
            }
        }
        throw RetriesExhausted(attempts: maxAttempts, lastProblem: lastProblem)
    }
}
