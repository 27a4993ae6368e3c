//! The `preflight` binary: everything lives in the library; this only hands over the arguments,
//! chooses the allocator and ends the process (`cli::exit`).

fn main() {
    #[cfg(feature = "mimalloc")]
    allocator::tune(
        std::env::args_os()
            .nth(1)
            .is_some_and(|command| command == "serve"),
    );
    // A write past the file size limit (`ulimit -f`) fails (EFBIG), so that the report it was
    // for fails the gate and its temporary file is removed, instead of the signal killing the
    // process with an exit code of its own and the temporary file left behind.
    // SAFETY: sets a signal's disposition before any other thread exists.
    unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) };
    preflight::cli::reset_stopping_signals();
    preflight::cli::exit(preflight::cli::main(std::env::args_os()))
}

/// mimalloc instead of the system's malloc. With glibc's, each tokio worker allocates in an
/// arena of its own that cannot reuse what the suite's load freed on the main thread, and each
/// small allocation carries a header: with mimalloc the 20,000- and 100,000-probe benchmarks
/// ran faster and in less memory (docs/performance.md). Built with `no_thp` (Cargo.toml): its
/// arenas are not asked for transparent huge pages, which count 2 MiB for each one touched.
#[cfg(feature = "mimalloc")]
mod allocator {
    use libmimalloc_sys as mi;
    use std::alloc::{GlobalAlloc, Layout};
    use std::ffi::c_void;

    #[global_allocator]
    static ALLOCATOR: Mimalloc = Mimalloc;

    /// mimalloc through its plain entry points where the alignment allows: the `mimalloc` crate's
    /// `MiMalloc` calls the `_aligned` ones for every allocation, which check and round the
    /// alignment first (callgrind of `check` of 500 flows: 74 instructions a `malloc`).
    struct Mimalloc;

    /// Every block mimalloc returns is aligned to 16 bytes (`MI_MAX_ALIGN_SIZE` on 64-bit
    /// targets), or to its size when smaller: what the system allocator's Rust wrapper relies
    /// on for `malloc` too.
    const MIN_ALIGN: usize = 16;

    fn plain(align: usize, size: usize) -> bool {
        align <= MIN_ALIGN && align <= size
    }

    // SAFETY: each call forwards to mimalloc's allocation functions with a layout they
    // serve: the plain ones only when their guaranteed alignment covers the layout's.
    unsafe impl GlobalAlloc for Mimalloc {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            // SAFETY: see the impl.
            unsafe {
                if plain(layout.align(), layout.size()) {
                    mi::mi_malloc(layout.size()).cast()
                } else {
                    mi::mi_malloc_aligned(layout.size(), layout.align()).cast()
                }
            }
        }

        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            // SAFETY: see the impl.
            unsafe {
                if plain(layout.align(), layout.size()) {
                    mi::mi_zalloc(layout.size()).cast()
                } else {
                    mi::mi_zalloc_aligned(layout.size(), layout.align()).cast()
                }
            }
        }

        unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
            // SAFETY: `ptr` came from this allocator: mimalloc frees any of its blocks.
            unsafe { mi::mi_free(ptr.cast::<c_void>()) }
        }

        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            // SAFETY: see the impl; `ptr` came from this allocator.
            unsafe {
                if plain(layout.align(), new_size) {
                    mi::mi_realloc(ptr.cast::<c_void>(), new_size).cast()
                } else {
                    mi::mi_realloc_aligned(ptr.cast::<c_void>(), new_size, layout.align()).cast()
                }
            }
        }
    }

    /// `mi_option_purge_delay` in mimalloc v3's `mimalloc.h` (the crate does not name it; the
    /// version is pinned in Cargo.toml).
    const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

    /// Freed memory goes back to the system after 2 ms instead of a second: a large suite's
    /// stored flows are compiled and dropped as they run, and what the load freed is not
    /// counted while the run goes on. 100,000 probes peaked at 46 MiB instead of 62; at 0 ms
    /// every free is a system call and scenario 3 was a fifth slower.
    /// `MIMALLOC_PURGE_DELAY`, when set, is left to win (mimalloc reads it at start).
    ///
    /// A server (`serve`) keeps mimalloc's own delay: what one run frees, the next one uses
    /// again, and purging it every 2 ms made each run hand its pages back and fault them in
    /// again (`madvise` and its TLB shootdowns were 10% of a busy server's CPU; a 1,000-probe
    /// `/run` answered 5 ms sooner without them).
    pub fn tune(long_lived: bool) {
        if long_lived || std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
            return;
        }
        // SAFETY: setting an option is a store into mimalloc's option table, valid at any
        // time; mimalloc reads this one each time it frees memory.
        unsafe { libmimalloc_sys::mi_option_set(PURGE_DELAY, 2) };
    }
}
