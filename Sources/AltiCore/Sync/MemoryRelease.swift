#if canImport(Glibc)
import Glibc
#endif

/// How alti keeps glibc's malloc from holding on to memory it no longer uses. glibc's
/// `malloc_trim` and `mallopt` are not in the Glibc module (malloc.h), hence the lookups
/// (RTLD_DEFAULT is the null handle on glibc).
public enum MemoryRelease {
    /// Two malloc arenas for the whole process (glibc's default is 8 per core): every thread
    /// that allocates gets an arena of its own up to that limit, and each keeps the memory its
    /// threads freed for its own next allocations. A sync allocates from the pool's threads, the
    /// journal queue and curl's transfer threads, so freed memory sat in arenas that the work
    /// after it did not use: a 10,000-image `--no-wait` sync peaked 4-6 MB lower with two
    /// arenas (one was slower on this 2-core machine). Called first thing in `main`, before
    /// any thread exists; a MALLOC_ARENA_MAX in the environment is left to decide.
    public static func limitArenas() {
        #if canImport(Glibc)
        guard getenv("MALLOC_ARENA_MAX") == nil, let symbol = dlsym(nil, "mallopt") else { return }
        typealias Mallopt = @convention(c) (Int32, Int32) -> Int32
        let arenaMax: Int32 = -8  // M_ARENA_MAX
        _ = unsafeBitCast(symbol, to: Mallopt.self)(arenaMax, 2)
        #endif
    }

    /// Returns freed heap memory to the system, at a point of a run where much was just freed.
    static func trim() {
        #if canImport(Glibc)
        // glibc's malloc keeps freed pages in the arena of the thread that freed them, for that
        // arena's next allocations; work that runs next on another thread of the pool touches
        // fresh pages instead.
        guard let symbol = dlsym(nil, "malloc_trim") else { return }
        typealias Trim = @convention(c) (Int) -> Int32
        _ = unsafeBitCast(symbol, to: Trim.self)(0)
        #endif
    }
}
