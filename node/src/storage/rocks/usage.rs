//! What a RocksDB database holds in memory, read from its own properties
//! for the metrics (`cachecash_rocksdb_*_bytes{db}`). Shared by the chain
//! store and the CDN services' databases ([`crate::cdn::kv::Kv`]), so an
//! operator (and the load harness's soak) can tell the databases' share of
//! a node's resident memory from the rest.

use super::super::DbMemory;
use rocksdb::{ColumnFamily, DB, properties};

/// Sums the memtables and table readers of `cfs` (the default column family
/// when empty) and reads the block cache once: the column families of one
/// database share one cache.
pub fn db_memory(db: &DB, cfs: &[&ColumnFamily]) -> DbMemory {
    let prop = |cf: Option<&ColumnFamily>, name: &properties::PropName| -> u64 {
        let v = match cf {
            Some(cf) => db.property_int_value_cf(cf, name),
            None => db.property_int_value(name),
        };
        v.ok().flatten().unwrap_or(0)
    };
    let mut out = DbMemory::default();
    if cfs.is_empty() {
        out.memtables = prop(None, properties::CUR_SIZE_ALL_MEM_TABLES);
        out.table_readers = prop(None, properties::ESTIMATE_TABLE_READERS_MEM);
        out.block_cache = prop(None, properties::BLOCK_CACHE_USAGE);
        return out;
    }
    for cf in cfs {
        out.memtables = out
            .memtables
            .saturating_add(prop(Some(cf), properties::CUR_SIZE_ALL_MEM_TABLES));
        out.table_readers = out
            .table_readers
            .saturating_add(prop(Some(cf), properties::ESTIMATE_TABLE_READERS_MEM));
    }
    out.block_cache = prop(cfs.first().copied(), properties::BLOCK_CACHE_USAGE);
    out
}
