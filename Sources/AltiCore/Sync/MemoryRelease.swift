#if canImport(Glibc)
import Glibc
#endif

/// Returns freed heap memory to the system at the point of a run where much was just freed.
enum MemoryRelease {
    static func trim() {
        #if canImport(Glibc)
        // glibc's malloc keeps freed pages in the arena of the thread that freed them, for that
        // arena's next allocations; work that runs next on another thread of the pool touches
        // fresh pages instead. `malloc_trim` is not in the Glibc module (malloc.h), hence the
        // lookup; RTLD_DEFAULT is the null handle on glibc.
        typealias Trim = @convention(c) (Int) -> Int32
        guard let symbol = dlsym(nil, "malloc_trim") else { return }
        _ = unsafeBitCast(symbol, to: Trim.self)(0)
        #endif
    }
}
