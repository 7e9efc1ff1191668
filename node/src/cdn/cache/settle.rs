//! Settlement records: the fate of every ticket the cache holds, after the
//! draw.
//!
//! # States
//!
//! ```text
//!                  ┌──▶ lost (final once the draw block is `depth` deep)
//! held/proven ─draw┤
//!                  └──▶ won ──▶ submitted(tx) ──▶ claimed(block) ──▶ final (claim `depth` deep)
//!                        │            │                 │
//!                        └────────────┴─────────────────┴──▶ expired (window closed unclaimed, with the reason)
//! ```
//!
//! A ticket with no record has not been drawn yet. Every transition is
//! written (and synced) before the claimer acts on it: a `submitted` record
//! and its [`ClaimRecord`] (the exact signed transaction) reach the disk
//! before the transaction reaches the pool, so a crash at any point resumes
//! by following or resubmitting that same transaction. The chain refuses a
//! second claim of a ticket, and the claimer never signs one while the
//! first may still land (same nonce, same bytes), so nothing is claimed
//! twice and no winner is forgotten.
//!
//! A reorganisation is handled by re-checking, on every pass, the draw
//! block's hash (a moved draw re-evaluates the ticket) and the claim's
//! canonical block (a dropped claim goes back to `submitted` and is
//! resubmitted).
//!
//! Keys: `a/escrow‖round‖number` → ticket key (tickets still followed:
//! removed once final, lost for good or expired); `s/escrow‖round‖number` →
//! [`Record`]; `c/tx` → [`ClaimRecord`]; `d/escrow` → the duplicate proof
//! submitted against it.

use super::super::kv::{KvError, key};
use super::tickets::{HeldTicket, Tickets};
use cachecash_runtime::microcash::{EscrowId, SignedTicket};
use cachecash_runtime::{Balance, Hash, SignedTransaction};
use parity_scale_codec::{Decode, Encode};

/// A ticket's place: (escrow, round, number).
pub type Slot = (EscrowId, u64, u32);

fn slot_key(prefix: &[u8], escrow: &EscrowId, round: u64, number: u32) -> Vec<u8> {
    key(&[
        prefix,
        &escrow.0,
        &round.to_be_bytes(),
        &number.to_be_bytes(),
    ])
}

/// The active-index key of a ticket.
pub fn active_key(escrow: &EscrowId, round: u64, number: u32) -> Vec<u8> {
    slot_key(b"a/", escrow, round, number)
}

fn record_key(s: &Slot) -> Vec<u8> {
    slot_key(b"s/", &s.0, s.1, s.2)
}

fn claim_key(tx: &Hash) -> Vec<u8> {
    key(&[b"c/", &tx.0])
}

/// Where a drawn ticket stands.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, serde::Serialize, serde::Deserialize)]
#[serde(tag = "state", rename_all = "camelCase")]
pub enum Settle {
    /// Not a winner of the draw seeded by `draw`.
    #[codec(index = 0)]
    Lost {
        /// The draw block.
        draw: Hash,
    },
    /// A winner, not yet claimed; `waiting` says why when it is held back.
    #[codec(index = 1)]
    Won {
        /// The draw block.
        draw: Hash,
        /// Why it is not claimed yet (empty when it is about to be).
        waiting: String,
    },
    /// In claim transaction `tx`, not yet in the chain.
    #[codec(index = 2)]
    Submitted {
        /// The draw block.
        draw: Hash,
        /// The claim transaction.
        tx: Hash,
    },
    /// Claimed by `tx` in block `block` (#`number`), not yet deep enough.
    #[codec(index = 3)]
    Claimed {
        /// The draw block.
        draw: Hash,
        /// The claim transaction.
        tx: Hash,
        /// Its block.
        block: Hash,
        /// Its height.
        number: u64,
    },
    /// Claimed, and the claim is confirmed at the configured depth.
    #[codec(index = 4)]
    Final {
        /// The claim transaction.
        tx: Hash,
        /// Its block.
        block: Hash,
        /// Its height.
        number: u64,
    },
    /// Never paid; `reason` says why.
    #[codec(index = 5)]
    Expired {
        /// Why.
        reason: String,
    },
}

impl Settle {
    /// The state's name, as RPC and the CLI filter on it.
    pub fn name(&self) -> &'static str {
        match self {
            Settle::Lost { .. } => "lost",
            Settle::Won { .. } => "won",
            Settle::Submitted { .. } => "submitted",
            Settle::Claimed { .. } => "claimed",
            Settle::Final { .. } => "final",
            Settle::Expired { .. } => "expired",
        }
    }

    /// The claim transaction, if any.
    pub fn tx(&self) -> Option<Hash> {
        match self {
            Settle::Submitted { tx, .. }
            | Settle::Claimed { tx, .. }
            | Settle::Final { tx, .. } => Some(*tx),
            _ => None,
        }
    }
}

/// A ticket's settlement record.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct Record {
    /// Its state.
    pub settle: Settle,
    /// The escrow's face value β (what a win pays).
    pub face_value: Balance,
    /// Head height when the record was written.
    pub updated: u64,
}

/// A claim transaction the cache signed, kept to resubmit it unchanged and
/// to reconcile fees.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct ClaimRecord {
    /// The exact transaction.
    pub tx: SignedTransaction,
    /// The tickets it claims.
    pub slots: Vec<Slot>,
    /// Σβ of those tickets.
    pub value: Balance,
    /// Head height at submission.
    pub submitted_at: u64,
}

/// One settlement write: a slot's new record, and whether it leaves the
/// active index.
#[derive(Debug, Clone)]
pub struct Update {
    /// The ticket.
    pub slot: Slot,
    /// Its new record.
    pub record: Record,
    /// Whether settlement is done with it.
    pub done: bool,
}

impl Tickets {
    /// The (escrow, round) groups that still have tickets to follow, found
    /// by seeking from group to group (cost grows with groups, not tickets).
    pub fn active_groups(&self) -> Result<Vec<(EscrowId, u64)>, KvError> {
        let mut out = Vec::new();
        let mut from = b"a/".to_vec();
        while let Some(k) = self.kv.first_key(b"a/", &from)? {
            let Some(rest) = k.get(2..42) else { break };
            let mut e = [0u8; 32];
            e.copy_from_slice(&rest[..32]);
            let mut r = [0u8; 8];
            r.copy_from_slice(&rest[32..40]);
            out.push((Hash(e), u64::from_be_bytes(r)));
            // Just past every number of this group.
            from = key(&[&k[..42], &[0xff; 5]]);
        }
        Ok(out)
    }

    /// The followed tickets of one group: (number, ticket key).
    pub fn active_in(&self, escrow: &EscrowId, round: u64) -> Result<Vec<(u32, Vec<u8>)>, KvError> {
        Ok(self
            .kv
            .scan::<Vec<u8>>(&key(&[b"a/", &escrow.0, &round.to_be_bytes()]))?
            .into_iter()
            .filter_map(|(k, v)| {
                let n: [u8; 4] = k.get(42..46)?.try_into().ok()?;
                Some((u32::from_be_bytes(n), v))
            })
            .collect())
    }

    /// A ticket by its key.
    pub fn ticket_at(&self, key: &[u8]) -> Result<Option<HeldTicket>, KvError> {
        self.kv.get(key)
    }

    /// The ticket held under a slot, if any.
    pub fn ticket_in(&self, slot: &Slot) -> Result<Option<(Vec<u8>, HeldTicket)>, KvError> {
        let Some(k) = self
            .kv
            .get::<Vec<u8>>(&slot_key(b"n/", &slot.0, slot.1, slot.2))?
        else {
            return Ok(None);
        };
        Ok(self.ticket_at(&k)?.map(|t| (k, t)))
    }

    /// A slot's settlement record.
    pub fn settlement(&self, slot: &Slot) -> Result<Option<Record>, KvError> {
        self.kv.get(&record_key(slot))
    }

    /// A claim the cache signed.
    pub fn claim(&self, tx: &Hash) -> Result<Option<ClaimRecord>, KvError> {
        self.kv.get(&claim_key(tx))
    }

    /// Every claim the cache signed.
    pub fn claims(&self) -> Result<Vec<ClaimRecord>, KvError> {
        Ok(self
            .kv
            .scan::<ClaimRecord>(b"c/")?
            .into_iter()
            .map(|(_, c)| c)
            .collect())
    }

    /// Follows again every settled ticket for which `stale` returns a new
    /// record: writes it and puts the ticket back in the active index, in
    /// synced batches. Returns how many tickets were taken back.
    pub fn reactivate(
        &self,
        mut stale: impl FnMut(&Slot, &Record) -> Option<Record>,
    ) -> Result<usize, KvError> {
        let mut puts: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        let mut count = 0;
        for (k, record) in self.kv.scan::<Record>(b"s/")? {
            let (Some(e), Some(r), Some(n)) = (k.get(2..34), k.get(34..42), k.get(42..46)) else {
                continue;
            };
            let mut eb = [0u8; 32];
            eb.copy_from_slice(e);
            let slot: Slot = (
                Hash(eb),
                u64::from_be_bytes(r.try_into().unwrap_or_default()),
                u32::from_be_bytes(n.try_into().unwrap_or_default()),
            );
            let Some(next) = stale(&slot, &record) else {
                continue;
            };
            let Some(tkey) = self
                .kv
                .get::<Vec<u8>>(&slot_key(b"n/", &slot.0, slot.1, slot.2))?
            else {
                continue;
            };
            puts.push((record_key(&slot), next.encode()));
            puts.push((active_key(&slot.0, slot.1, slot.2), tkey.encode()));
            count += 1;
            if puts.len() >= 2048 {
                let items: Vec<(&[u8], Vec<u8>)> = puts
                    .iter()
                    .map(|(k, v)| (k.as_slice(), v.clone()))
                    .collect();
                self.kv.put_all(&items, true)?;
                puts.clear();
            }
        }
        let items: Vec<(&[u8], Vec<u8>)> = puts
            .iter()
            .map(|(k, v)| (k.as_slice(), v.clone()))
            .collect();
        self.kv.put_all(&items, true)?;
        Ok(count)
    }

    /// Writes updates (and a new claim) in one synced batch.
    pub fn settle(&self, updates: &[Update], claim: Option<&ClaimRecord>) -> Result<(), KvError> {
        let mut keys = Vec::with_capacity(updates.len());
        let mut values = Vec::with_capacity(updates.len());
        let mut deletes = Vec::new();
        for u in updates {
            keys.push(record_key(&u.slot));
            values.push(u.record.encode());
            if u.done {
                deletes.push(active_key(&u.slot.0, u.slot.1, u.slot.2));
            }
        }
        let ck = claim.map(|c| claim_key(&c.tx.hash()));
        let mut puts: Vec<(&[u8], Vec<u8>)> =
            keys.iter().map(|k| k.as_slice()).zip(values).collect();
        if let (Some(k), Some(c)) = (&ck, claim) {
            puts.push((k.as_slice(), c.encode()));
        }
        let dels: Vec<&[u8]> = deletes.iter().map(|d| d.as_slice()).collect();
        self.kv.write(&puts, &dels, true)
    }

    /// Up to `limit` tickets with an L1 after cursor `after`, in
    /// (escrow, round, number) order: (cursor, slot, ticket, settlement).
    #[allow(clippy::type_complexity)]
    pub fn page(
        &self,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Slot, Option<HeldTicket>, Option<Record>)>, KvError> {
        let mut out = Vec::new();
        for (k, tk) in self.kv.page::<Vec<u8>>(b"n/", after, limit)? {
            let (Some(e), Some(r), Some(n)) = (k.get(2..34), k.get(34..42), k.get(42..46)) else {
                continue;
            };
            let mut eb = [0u8; 32];
            eb.copy_from_slice(e);
            let slot = (
                Hash(eb),
                u64::from_be_bytes(r.try_into().unwrap_or_default()),
                u32::from_be_bytes(n.try_into().unwrap_or_default()),
            );
            let t = self.ticket_at(&tk)?;
            let s = self.settlement(&slot)?;
            out.push((k, slot, t, s));
        }
        Ok(out)
    }

    /// Whether a duplicate proof against `escrow` was already submitted.
    pub fn duplicate_reported(&self, escrow: &EscrowId) -> Result<Option<Hash>, KvError> {
        self.kv.get(&key(&[b"d/", &escrow.0]))
    }

    /// Records the duplicate proof submitted against `escrow` (synced).
    pub fn save_duplicate_report(&self, escrow: &EscrowId, tx: &Hash) -> Result<(), KvError> {
        self.kv.put(&key(&[b"d/", &escrow.0]), tx, true)
    }
}

/// Whether two tickets prove the signer issued one number twice: same
/// slot, different content.
pub fn is_duplicate(a: &SignedTicket, b: &SignedTicket) -> bool {
    let (x, y) = (&a.ticket, &b.ticket);
    x.escrow == y.escrow && x.round == y.round && x.number == y.number && x != y
}

/// Submits a duplicate-ticket proof when `l1` and the ticket the cache holds
/// under its (escrow, round, number) differ: the publisher signed one number
/// twice, and its penalty deposit pays this cache the reporter's share. Once
/// per escrow (the chain takes the penalty once); the report is recorded
/// before the proof is submitted. Returns the proof's transaction hash.
pub fn report_duplicate(
    state: &super::CacheState,
    ledger: &dyn crate::cdn::ledger::Ledger,
    key: &ed25519_dalek::SigningKey,
    l1: &SignedTicket,
) -> Option<Hash> {
    let t = &l1.ticket;
    let tickets = &state.tickets;
    let first = match tickets.ticket_in(&(t.escrow, t.round, t.number)) {
        Ok(Some((_, h))) => h.l1?,
        _ => return None,
    };
    if !is_duplicate(&first, l1) || !matches!(tickets.duplicate_reported(&t.escrow), Ok(None)) {
        return None;
    }
    let me = cachecash_runtime::AccountId(key.verifying_key().to_bytes());
    let nonce = match ledger.next_nonce(&me) {
        Ok(n) => n,
        Err(e) => {
            tracing::warn!(target: "cachecash::settle", "cannot prove a duplicate ticket: {e}");
            return None;
        }
    };
    let mut tx = cachecash_runtime::Transaction {
        signer: me,
        nonce,
        fee: 0,
        call: cachecash_runtime::Call::DuplicateTicketProof {
            first: Box::new(first),
            second: Box::new(l1.clone()),
        },
    };
    tx.fee = ledger.fee_estimate(tx.signed_size());
    let tx = tx.sign(key, &ledger.genesis());
    let hash = tx.hash();
    if let Err(e) = tickets.save_duplicate_report(&t.escrow, &hash) {
        tracing::warn!(target: "cachecash::settle", "cannot record a duplicate proof: {e}");
        return None;
    }
    match ledger.submit(tx) {
        Ok(_) => {
            state.counters.duplicates_reported.inc();
            tracing::warn!(target: "cachecash::settle", escrow = %t.escrow, round = t.round, number = t.number, tx = %hash, "the publisher signed one ticket number twice; duplicate proof submitted");
            Some(hash)
        }
        Err(e) => {
            tracing::warn!(target: "cachecash::settle", escrow = %t.escrow, "duplicate proof refused: {e}");
            None
        }
    }
}
