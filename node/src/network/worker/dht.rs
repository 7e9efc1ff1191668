//! The worker's side of the Kademlia DHT: provider records (who serves a
//! key) and value records (what is stored under a key), each lookup with a
//! bounded number of queries in flight and of results kept.
//!
//! Values in the DHT are untrusted: anyone may store anything under any
//! key. The worker hands every value it finds (up to
//! [`MAX_RECORDS_PER_LOOKUP`]) to the caller, which verifies them (signed
//! cache adverts, for example); it never picks one for the caller.

use super::*;
use crate::network::MAX_RECORDS_PER_LOOKUP;

/// A value lookup in flight: the distinct values found so far, and whom to
/// answer.
pub(super) type RecordQuery = (Vec<Vec<u8>>, oneshot::Sender<Vec<Vec<u8>>>);

/// Most lookups of each kind in flight; more are answered empty at once.
const MAX_QUERIES: usize = 64;

impl Worker {
    pub(super) fn provide(&mut self, key: Vec<u8>) {
        if let Err(e) = self
            .swarm
            .behaviour_mut()
            .kad
            .start_providing(kad::RecordKey::new(&key))
        {
            tracing::warn!(target: "cachecash::network", "cannot announce a provider record: {e}");
        }
    }

    pub(super) fn get_providers(&mut self, key: Vec<u8>, reply: oneshot::Sender<Vec<PeerId>>) {
        if self.provider_queries.len() >= MAX_QUERIES {
            let _ = reply.send(Vec::new());
            return;
        }
        let id = self
            .swarm
            .behaviour_mut()
            .kad
            .get_providers(kad::RecordKey::new(&key));
        self.provider_queries.insert(id, (HashSet::new(), reply));
    }

    pub(super) fn put_record(&mut self, key: Vec<u8>, value: Vec<u8>, ttl: Duration) {
        let mut record = kad::Record::new(kad::RecordKey::new(&key), value);
        record.expires = Some(Instant::now() + ttl);
        if let Err(e) = self
            .swarm
            .behaviour_mut()
            .kad
            .put_record(record, kad::Quorum::One)
        {
            tracing::warn!(target: "cachecash::network", "cannot store a DHT record: {e}");
        }
    }

    pub(super) fn get_records(&mut self, key: Vec<u8>, reply: oneshot::Sender<Vec<Vec<u8>>>) {
        if self.record_queries.len() >= MAX_QUERIES {
            let _ = reply.send(Vec::new());
            return;
        }
        let id = self
            .swarm
            .behaviour_mut()
            .kad
            .get_record(kad::RecordKey::new(&key));
        self.record_queries.insert(id, (Vec::new(), reply));
    }

    /// A step of one of our DHT queries.
    pub(super) fn on_query(&mut self, id: kad::QueryId, result: kad::QueryResult, last: bool) {
        match result {
            kad::QueryResult::GetProviders(result) => {
                let done = match result {
                    Ok(kad::GetProvidersOk::FoundProviders { providers, .. }) => {
                        if let Some((found, _)) = self.provider_queries.get_mut(&id) {
                            found.extend(providers.into_iter().take(1024));
                        }
                        last
                    }
                    Ok(kad::GetProvidersOk::FinishedWithNoAdditionalRecord { .. }) | Err(_) => true,
                };
                if done && let Some((found, reply)) = self.provider_queries.remove(&id) {
                    let _ = reply.send(found.into_iter().collect());
                }
            }
            kad::QueryResult::GetRecord(result) => {
                let done = match result {
                    Ok(kad::GetRecordOk::FoundRecord(found)) => {
                        let full = match self.record_queries.get_mut(&id) {
                            Some((values, _)) => {
                                if !values.contains(&found.record.value) {
                                    values.push(found.record.value);
                                }
                                values.len() >= MAX_RECORDS_PER_LOOKUP
                            }
                            None => false,
                        };
                        if full && let Some(mut q) = self.swarm.behaviour_mut().kad.query_mut(&id) {
                            q.finish();
                        }
                        last || full
                    }
                    Ok(kad::GetRecordOk::FinishedWithNoAdditionalRecord { .. }) | Err(_) => true,
                };
                if done && let Some((values, reply)) = self.record_queries.remove(&id) {
                    let _ = reply.send(values);
                }
            }
            _ => {}
        }
    }
}
