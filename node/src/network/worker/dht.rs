//! The worker's side of the Kademlia DHT: provider records (who serves a
//! key) and value records (what is stored under a key), each lookup with a
//! bounded number of queries in flight and of results kept.
//!
//! Records peers ask this node to store are filtered
//! ([`kad::StoreInserts::FilterBoth`]): provider records are kept (kad
//! checks that the provider is the sender), and the only value records kept
//! are signed cache adverts that verify under the cache their key names and
//! are newer than the one held. A peer can therefore neither fill the store
//! with junk nor overwrite a cache's advert with an older or forged one.
//!
//! Values found in other nodes' stores are still untrusted: anyone may store anything under any
//! key on a node that does not filter. The worker hands every value it finds (up to
//! [`MAX_RECORDS_PER_LOOKUP`]) to the caller, which verifies them (signed
//! cache adverts, for example); it never picks one for the caller.

use super::*;
use crate::network::MAX_RECORDS_PER_LOOKUP;
use kad::store::RecordStore;

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

    /// A record a peer asks this node to store.
    pub(super) fn on_inbound(&mut self, request: kad::InboundRequest) {
        match request {
            kad::InboundRequest::AddProvider {
                record: Some(provider),
            } => {
                let _ = self
                    .swarm
                    .behaviour_mut()
                    .kad
                    .store_mut()
                    .add_provider(provider);
            }
            kad::InboundRequest::PutRecord {
                source,
                record: Some(record),
                ..
            } => match self.judge_record(&record) {
                Ok(()) => {
                    if let Err(e) = self.swarm.behaviour_mut().kad.store_mut().put(record) {
                        tracing::debug!(target: "cachecash::network", %source, "DHT record not stored: {e}");
                    }
                }
                Err(why) => {
                    tracing::debug!(target: "cachecash::network", %source, "DHT record refused: {why}");
                }
            },
            _ => {}
        }
    }

    /// Whether a value record may be stored: a current signed cache advert
    /// under its own key, newer than the one held.
    fn judge_record(&mut self, record: &kad::Record) -> Result<(), String> {
        use cachecash_cdn::advert::{SignedCacheAdvert, advert_key_account};
        let cache = advert_key_account(&self.genesis, record.key.as_ref())
            .ok_or("not a cache advert key of this chain")?;
        let now = crate::cdn::unix_now();
        let issued = |bytes: &[u8]| -> Result<u64, String> {
            let signed = SignedCacheAdvert::decode_bounded(bytes).map_err(|e| e.to_string())?;
            let advert = signed
                .verify(&cache, &self.genesis, now)
                .map_err(|e| e.to_string())?;
            Ok(advert.issued)
        };
        let new = issued(&record.value)?;
        let held = self
            .swarm
            .behaviour_mut()
            .kad
            .store_mut()
            .get(&record.key)
            .map(|r| r.value.clone());
        if let Some(old) = held
            && let Ok(old) = issued(&old)
            && old >= new
        {
            return Err(format!(
                "an advert issued at {old} is held; this one is from {new}"
            ));
        }
        Ok(())
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
            kad::QueryResult::GetClosestPeers(result) => {
                // A lookup of one peer ([`Command::FindPeer`]): remember
                // where it listens, so that a stream to it can be dialled
                // even when the query finished without connecting to it.
                // (A false address only costs a failed dial: the handshake
                // authenticates the peer id.)
                let (key, peers) = match result {
                    Ok(ok) => (ok.key, ok.peers),
                    Err(kad::GetClosestPeersError::Timeout { key, peers }) => (key, peers),
                };
                for p in peers {
                    if p.peer_id.to_bytes() == key && !self.bans.contains_key(&p.peer_id) {
                        for a in p.addrs.into_iter().take(crate::cdn::MAX_PEER_ADDRS) {
                            self.swarm.add_peer_address(p.peer_id, a);
                        }
                    }
                }
            }
            _ => {}
        }
    }
}
