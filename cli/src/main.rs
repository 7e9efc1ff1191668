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

/// jemalloc's statistics for the node's memory gauges
/// (`cachecash_allocator_*_bytes`). The statistics are cached by jemalloc
/// until its epoch advances, so each read advances it first.
#[cfg(not(target_env = "msvc"))]
fn allocator_stats() -> Option<cachecash_node::metrics::AllocatorStats> {
    use tikv_jemalloc_ctl::{epoch, stats};
    epoch::advance().ok()?;
    let n = |v: usize| u64::try_from(v).unwrap_or(u64::MAX);
    Some(cachecash_node::metrics::AllocatorStats {
        allocated: n(stats::allocated::read().ok()?),
        active: n(stats::active::read().ok()?),
        resident: n(stats::resident::read().ok()?),
        retained: n(stats::retained::read().ok()?),
        metadata: n(stats::metadata::read().ok()?),
    })
}

fn main() -> std::process::ExitCode {
    #[cfg(not(target_env = "msvc"))]
    {
        // jemalloc's own options (background purge threads, 1 s decay of
        // freed pages) are compiled in: `.cargo/config.toml`.
        cachecash_node::metrics::set_allocator_probe(allocator_stats);
    }
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
