//! Where a node's memory goes, read at each scrape: the allocator's own
//! statistics (set by the binary, which chooses the allocator) and the
//! RocksDB databases' memtables, block caches and table readers.
//!
//! Resident memory alone cannot tell a leak from an allocator that keeps
//! freed pages or a database that fills its bounded caches: with these
//! gauges, `allocated` flat while `resident` grows is retention,
//! `memtable` or `block_cache` growing is the database filling towards its
//! bound, and `allocated` growing beyond both is a leak.

use crate::storage::DbMemory;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::gauge::ConstGauge;
use std::sync::{Arc, OnceLock};

/// The allocator's statistics, bytes (jemalloc's `stats.*`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AllocatorStats {
    /// Bytes the program holds.
    pub allocated: u64,
    /// Bytes in the pages those allocations occupy.
    pub active: u64,
    /// Bytes of the allocator's pages that are resident.
    pub resident: u64,
    /// Bytes mapped but returned to the OS (virtual only).
    pub retained: u64,
    /// The allocator's own metadata.
    pub metadata: u64,
}

/// Reads the process's allocator statistics.
pub type AllocatorProbe = fn() -> Option<AllocatorStats>;

static ALLOCATOR: OnceLock<AllocatorProbe> = OnceLock::new();

/// Sets the process's allocator probe (once, by the binary that chose the
/// allocator); later calls are ignored.
pub fn set_allocator_probe(probe: AllocatorProbe) {
    let _ = ALLOCATOR.set(probe);
}

/// Reads a database's memory.
pub type DbProbe = Arc<dyn Fn() -> DbMemory + Send + Sync>;

/// The collector of the memory gauges; databases join it by name.
#[derive(Clone, Default)]
pub struct MemoryCollector {
    dbs: Arc<parking_lot::Mutex<Vec<(&'static str, DbProbe)>>>,
}

impl std::fmt::Debug for MemoryCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.dbs.lock().iter().map(|(n, _)| *n).collect();
        f.debug_struct("MemoryCollector")
            .field("dbs", &names)
            .finish()
    }
}

impl MemoryCollector {
    /// Reports database `name` (its `db` label) from now on; a second
    /// database of the same name replaces the first.
    pub fn add_db(&self, name: &'static str, probe: DbProbe) {
        let mut dbs = self.dbs.lock();
        dbs.retain(|(n, _)| *n != name);
        dbs.push((name, probe));
    }

    /// Stops reporting database `name` (its owner closed it).
    pub fn remove_db(&self, name: &'static str) {
        self.dbs.lock().retain(|(n, _)| *n != name);
    }
}

fn gauge(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    values: &[(Option<&'static str>, u64)],
) -> Result<(), std::fmt::Error> {
    if values.is_empty() {
        return Ok(());
    }
    let probe = ConstGauge::new(0i64);
    let mut family = encoder.encode_descriptor(name, help, None, probe.metric_type())?;
    for (label, v) in values {
        let g = ConstGauge::new(i64::try_from(*v).unwrap_or(i64::MAX));
        match label {
            Some(db) => g.encode(family.encode_family(&vec![("db", *db)])?)?,
            // An unlabelled gauge has one sample: `name value`.
            None => return g.encode(family),
        }
    }
    Ok(())
}

impl Collector for MemoryCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        if let Some(stats) = ALLOCATOR.get().and_then(|p| p()) {
            for (name, help, v) in [
                (
                    "allocator_allocated_bytes",
                    "Bytes the process holds in allocations",
                    stats.allocated,
                ),
                (
                    "allocator_active_bytes",
                    "Bytes in the allocator's pages that hold allocations",
                    stats.active,
                ),
                (
                    "allocator_resident_bytes",
                    "Bytes of the allocator's pages resident in memory",
                    stats.resident,
                ),
                (
                    "allocator_retained_bytes",
                    "Bytes the allocator returned to the OS but keeps mapped",
                    stats.retained,
                ),
                (
                    "allocator_metadata_bytes",
                    "Bytes of the allocator's own metadata",
                    stats.metadata,
                ),
            ] {
                gauge(&mut encoder, name, help, &[(None, v)])?;
            }
        }
        let dbs: Vec<(&'static str, DbMemory)> =
            self.dbs.lock().iter().map(|(n, p)| (*n, p())).collect();
        let per = |f: fn(&DbMemory) -> u64| -> Vec<(Option<&'static str>, u64)> {
            dbs.iter().map(|(n, m)| (Some(*n), f(m))).collect()
        };
        gauge(
            &mut encoder,
            "rocksdb_memtable_bytes",
            "Bytes in a database's memtables (all column families)",
            &per(|m| m.memtables),
        )?;
        gauge(
            &mut encoder,
            "rocksdb_block_cache_bytes",
            "Bytes in a database's block cache",
            &per(|m| m.block_cache),
        )?;
        gauge(
            &mut encoder,
            "rocksdb_table_readers_bytes",
            "Bytes of a database's table readers outside the block cache",
            &per(|m| m.table_readers),
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn databases_are_reported_by_name_and_a_closed_one_disappears() {
        let metrics = crate::metrics::Metrics::new();
        metrics.memory().add_db(
            "cdn",
            Arc::new(|| DbMemory {
                memtables: 1,
                block_cache: 2,
                table_readers: 3,
            }),
        );
        let text = metrics.encode();
        assert!(
            text.contains("cachecash_rocksdb_memtable_bytes{db=\"cdn\"} 1"),
            "{text}"
        );
        assert!(text.contains("cachecash_rocksdb_block_cache_bytes{db=\"cdn\"} 2"));
        assert!(text.contains("cachecash_rocksdb_table_readers_bytes{db=\"cdn\"} 3"));
        metrics.memory().remove_db("cdn");
        assert!(!metrics.encode().contains("db=\"cdn\""));
    }
}
