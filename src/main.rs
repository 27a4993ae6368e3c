//! The `preflight` binary: everything lives in the library; this only hands over the arguments
//! and chooses the allocator.

fn main() -> std::process::ExitCode {
    #[cfg(feature = "mimalloc")]
    allocator::tune();
    preflight::cli::main(std::env::args_os())
}

/// mimalloc instead of the system's malloc. With glibc's, each tokio worker allocates in an
/// arena of its own that cannot reuse what the suite's load freed on the main thread, and each
/// small allocation carries a header: with mimalloc the 20,000- and 100,000-probe benchmarks
/// ran faster and in less memory (docs/performance.md). Built with `no_thp` (Cargo.toml): its
/// arenas are not asked for transparent huge pages, which count 2 MiB for each one touched.
#[cfg(feature = "mimalloc")]
mod allocator {
    #[global_allocator]
    static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

    /// `mi_option_purge_delay` in mimalloc v3's `mimalloc.h` (the crate does not name it; the
    /// version is pinned in Cargo.toml).
    const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

    /// Freed memory goes back to the system after 2 ms instead of a second: a large suite's
    /// stored flows are compiled and dropped as they run, and what the load freed is not
    /// counted while the run goes on. 100,000 probes peaked at 46 MiB instead of 62; at 0 ms
    /// every free is a system call and scenario 3 was a fifth slower.
    /// `MIMALLOC_PURGE_DELAY`, when set, is left to win (mimalloc reads it at start).
    pub fn tune() {
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
            return;
        }
        // SAFETY: setting an option is a store into mimalloc's option table, valid at any
        // time; mimalloc reads this one each time it frees memory.
        unsafe { libmimalloc_sys::mi_option_set(PURGE_DELAY, 2) };
    }
}
