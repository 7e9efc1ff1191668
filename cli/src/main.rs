//! The `cachecash` binary: parses the command line and dispatches. All
//! logic lives in the subcommand modules and the library crates.

mod commands;
mod shared;

use clap::Parser;

/// jemalloc instead of the C library's allocator: a node runs for weeks
/// with many threads allocating and freeing per chunk and per ticket, and
/// glibc's per-thread arenas keep freed memory resident (the load
/// harness's soak saw the caches' RSS climb with every burst that way);
/// jemalloc returns it to the OS after a few seconds. The crate's
/// `unprefixed_malloc_on_supported_platforms` feature makes it serve
/// `malloc` itself on Linux, so RocksDB's C++ allocations (memtables,
/// block cache, compaction buffers) go through it too.
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    let cli = commands::Cli::parse();
    shared::init_logging();
    match commands::dispatch(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
