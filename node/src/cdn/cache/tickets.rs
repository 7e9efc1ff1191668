//! The cache's durable records: the escrows it is hired for (with its
//! master keys) and every ticket it earns.
//!
//! # Ticket states
//!
//! ```text
//! Serving ──(client hands a valid L1; outer key released)──▶ Held ──(publisher relays L2 + secret)──▶ Proven
//! ```
//!
//! - `Serving` is written before the first byte of a chunk goes out. It is
//!   the replay guard: a (escrow, client, sequence, position) is served once.
//! - `Held` is written before the outer key is released: a cache never
//!   gives away the key to a chunk without holding its L1.
//! - `Proven` adds the L2 and the secret, verified against the L1's
//!   commitment and the cache's own inner key: with it the ticket is
//!   redeemable. Settlement advances it further.
//!
//! Durability: ticket writes go to RocksDB's write-ahead log before the
//! caller acts (so they survive a crash of the process), and the log is
//! synced to disk in the background every [`SYNC_INTERVAL`] (so a power loss
//! costs at most that much of the newest tickets). Syncing every write cost
//! two `fdatasync` calls per chunk served, the largest single item in the
//! cache's CPU profile.
//!
//! Keys: `h/escrow` → [`Hire`]; `t/escrow‖client‖seq‖pos` → [`HeldTicket`];
//! `n/escrow‖round‖number` → the ticket key (numbers are unique among the
//! tickets held).

use super::super::kv::{Kv, KvError, key};
use cachecash_cdn::bundle::{CacheRequest, L2Claim};
use cachecash_cdn::keys::{CacheKeys, MasterKey};
use cachecash_runtime::AccountId;
use cachecash_runtime::microcash::{EscrowId, SignedTicket};
use parity_scale_codec::{Decode, Encode};

/// How often the ticket log is synced to disk.
pub const SYNC_INTERVAL: std::time::Duration = std::time::Duration::from_millis(200);

/// An escrow this cache serves.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct Hire {
    /// The escrow.
    pub escrow: EscrowId,
    /// Its ticket signer: the publisher's key.
    pub signer: AccountId,
    /// Inner master key.
    pub inner: MasterKey,
    /// Outer master key.
    pub outer: MasterKey,
    /// When the offer was accepted (Unix seconds).
    pub since: u64,
}

impl Hire {
    /// The cache's keys for this escrow.
    pub fn keys(&self) -> CacheKeys {
        CacheKeys {
            inner: self.inner.clone(),
            outer: self.outer.clone(),
        }
    }
}

/// Where a ticket stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub enum TicketState {
    /// The chunk went out; the L1 has not arrived.
    #[codec(index = 0)]
    Serving,
    /// The L1 is held; the outer key was released.
    #[codec(index = 1)]
    Held,
    /// L1, L2 and secret held and verified: redeemable.
    #[codec(index = 2)]
    Proven,
}

/// One ticket (or the attempt at one).
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct HeldTicket {
    /// The verified request the chunk was served for.
    pub request: CacheRequest,
    /// The L1, once handed over.
    pub l1: Option<SignedTicket>,
    /// The L2 and secret, once relayed.
    pub claim: Option<L2Claim>,
    /// State.
    pub state: TicketState,
    /// Bytes served.
    pub bytes: u64,
}

/// Ticket counts by state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TicketCounts {
    /// Served, no L1.
    pub serving: u64,
    /// L1 held.
    pub held: u64,
    /// Redeemable.
    pub proven: u64,
}

fn ticket_key(escrow: &EscrowId, client: &AccountId, sequence: u64, position: u8) -> Vec<u8> {
    key(&[
        b"t/",
        &escrow.0,
        &client.0,
        &sequence.to_be_bytes(),
        &[position],
    ])
}

/// The cache's records.
#[derive(Debug)]
pub struct Tickets {
    pub(super) kv: Kv,
    dirty: std::sync::atomic::AtomicBool,
}

impl Tickets {
    /// Over an open database.
    pub fn new(kv: Kv) -> Tickets {
        Tickets {
            kv,
            dirty: Default::default(),
        }
    }

    /// Syncs the log if tickets were written since the last sync.
    pub fn sync(&self) -> Result<(), KvError> {
        if self.dirty.swap(false, std::sync::atomic::Ordering::AcqRel) {
            self.kv.sync_wal()?;
        }
        Ok(())
    }

    fn wrote(&self) {
        self.dirty.store(true, std::sync::atomic::Ordering::Release);
    }

    /// The hire for an escrow.
    pub fn hire(&self, escrow: &EscrowId) -> Result<Option<Hire>, KvError> {
        self.kv.get(&key(&[b"h/", &escrow.0]))
    }

    /// Every hire.
    pub fn hires(&self) -> Result<Vec<Hire>, KvError> {
        Ok(self
            .kv
            .scan::<Hire>(b"h/")?
            .into_iter()
            .map(|(_, h)| h)
            .collect())
    }

    /// Records a hire (synced).
    pub fn save_hire(&self, hire: &Hire) -> Result<(), KvError> {
        self.kv.put(&key(&[b"h/", &hire.escrow.0]), hire, true)
    }

    /// Starts serving `request`; false if this (bundle, position) was
    /// already served to this client (a replay).
    pub fn begin(&self, request: &CacheRequest) -> Result<bool, KvError> {
        let r = &request.remainder;
        let k = ticket_key(&r.escrow, &r.client, r.sequence, request.position);
        if self.kv.contains(&k)? {
            return Ok(false);
        }
        let t = HeldTicket {
            request: request.clone(),
            l1: None,
            claim: None,
            state: TicketState::Serving,
            bytes: 0,
        };
        self.kv.put(&k, &t, false)?;
        Ok(true)
    }

    /// Whether `(round, number)` of `escrow` is already held under another
    /// ticket.
    pub fn number_taken(
        &self,
        escrow: &EscrowId,
        round: u64,
        number: u32,
        own: &CacheRequest,
    ) -> Result<bool, KvError> {
        let n = key(&[
            b"n/",
            &escrow.0,
            &round.to_be_bytes(),
            &number.to_be_bytes(),
        ]);
        let r = &own.remainder;
        let mine = ticket_key(&r.escrow, &r.client, r.sequence, own.position);
        Ok(matches!(self.kv.get::<Vec<u8>>(&n)?, Some(k) if k != mine))
    }

    /// Records the L1 (synced) before the outer key is released.
    pub fn hold(
        &self,
        request: &CacheRequest,
        l1: &SignedTicket,
        bytes: u64,
    ) -> Result<(), KvError> {
        let r = &request.remainder;
        let k = ticket_key(&r.escrow, &r.client, r.sequence, request.position);
        let n = key(&[
            b"n/",
            &r.escrow.0,
            &l1.ticket.round.to_be_bytes(),
            &l1.ticket.number.to_be_bytes(),
        ]);
        let t = HeldTicket {
            request: request.clone(),
            l1: Some(l1.clone()),
            claim: None,
            state: TicketState::Held,
            bytes,
        };
        // `a/` lists the tickets settlement still has to follow.
        let a = super::settle::active_key(&r.escrow, l1.ticket.round, l1.ticket.number);
        self.kv.put_all(
            &[
                (&k, t.encode()),
                (&n, k.clone().encode()),
                (&a, k.clone().encode()),
            ],
            false,
        )?;
        self.wrote();
        Ok(())
    }

    /// The tickets of one bundle.
    pub fn bundle(
        &self,
        escrow: &EscrowId,
        client: &AccountId,
        sequence: u64,
    ) -> Result<Vec<(Vec<u8>, HeldTicket)>, KvError> {
        self.kv.scan(&key(&[
            b"t/",
            &escrow.0,
            &client.0,
            &sequence.to_be_bytes(),
        ]))
    }

    /// Records a verified L2 claim (synced).
    pub fn prove(&self, key: &[u8], ticket: &HeldTicket, claim: &L2Claim) -> Result<(), KvError> {
        let mut t = ticket.clone();
        t.claim = Some(claim.clone());
        t.state = TicketState::Proven;
        self.kv.put(key, &t, false)?;
        self.wrote();
        Ok(())
    }

    /// Every ticket record.
    pub fn all(&self) -> Result<Vec<HeldTicket>, KvError> {
        Ok(self
            .kv
            .scan::<HeldTicket>(b"t/")?
            .into_iter()
            .map(|(_, t)| t)
            .collect())
    }

    /// Counts by state.
    pub fn counts(&self) -> Result<TicketCounts, KvError> {
        let mut c = TicketCounts::default();
        self.kv.for_each(b"t/", |_, t: HeldTicket| match t.state {
            TicketState::Serving => c.serving += 1,
            TicketState::Held => c.held += 1,
            TicketState::Proven => c.proven += 1,
        })?;
        Ok(c)
    }
}
