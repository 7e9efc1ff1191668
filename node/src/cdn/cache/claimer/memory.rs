//! An in-memory chain for the claimer's tests and its benchmark: a
//! [`Ledger`] over maps whose blocks, pool and reorganisations the caller
//! drives by hand, and a [`Rig`]: a cache (real RocksDB ticket store) that
//! holds proven tickets of one round, with its claimer.

use super::{Claimer, ClaimerConfig};
use crate::cdn::cache::{CacheConfig, CacheModule, CacheState};
use crate::cdn::ledger::{Ledger, LedgerError};
use cachecash_cdn::bundle::{BatchAuth, BundleRemainder, CacheRequest, L2Claim, TicketRequest};
use cachecash_cdn::keys::PuzzleSecret;
use cachecash_cdn::l2::SealedL2;
use cachecash_cdn::puzzle::PuzzleParams;
use cachecash_runtime::microcash::{
    Escrow, EscrowId, EscrowTerms, Ticket, secret_commitment, sign_ticket,
};
use cachecash_runtime::{AccountId, Balance, Hash, SignedTransaction};
use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// The chain state the tests and benchmarks drive by hand.
#[derive(Debug, Default)]
pub struct Chain {
    pub canon: BTreeMap<u64, Hash>,
    pub blocks: HashMap<Hash, Vec<SignedTransaction>>,
    pub pool: Vec<SignedTransaction>,
    pub nonce: u64,
}

/// A [`Ledger`] over maps: one escrow, canonical block hashes, blocks of
/// transactions, a pool and one account nonce.
#[derive(Debug)]
pub struct MemLedger {
    pub escrow: Escrow,
    pub id: EscrowId,
    pub chain: Mutex<Chain>,
}

/// The hash of block `height` on fork `fork`.
pub fn block_hash(height: u64, fork: u8) -> Hash {
    Hash::of_parts(&[b"block", &height.to_le_bytes(), &[fork]])
}

impl MemLedger {
    /// Appends a block on fork `fork` holding the whole pool.
    pub fn mine(&self, fork: u8) {
        let mut c = self.chain.lock();
        let h = c.canon.keys().next_back().map_or(0, |n| n + 1);
        let hash = block_hash(h, fork);
        let txs = std::mem::take(&mut c.pool);
        c.nonce += txs.len() as u64;
        c.canon.insert(h, hash);
        c.blocks.insert(hash, txs);
    }

    /// Mines fork 0 up to `height`.
    pub fn mine_to(&self, height: u64) {
        while self.head_number() < height {
            self.mine(0);
        }
    }

    /// Replaces the blocks from `from` up with empty blocks of `fork`
    /// (one more than before); their transactions are lost, as from a
    /// node whose pool did not re-admit them.
    pub fn reorg(&self, from: u64, fork: u8) {
        let mut c = self.chain.lock();
        let top = c.canon.keys().next_back().copied().unwrap_or(0);
        for h in from..=top + 1 {
            if let Some(old) = c.canon.get(&h).copied() {
                let n = c.blocks.get(&old).map_or(0, |t| t.len() as u64);
                c.nonce -= n;
            }
            let hash = block_hash(h, fork);
            c.canon.insert(h, hash);
            c.blocks.insert(hash, Vec::new());
        }
    }
}

impl Ledger for MemLedger {
    fn genesis(&self) -> Hash {
        block_hash(0, 0)
    }
    fn head_number(&self) -> u64 {
        self.chain
            .lock()
            .canon
            .keys()
            .next_back()
            .copied()
            .unwrap_or(0)
    }
    fn escrow(&self, id: &EscrowId) -> Result<Option<Escrow>, LedgerError> {
        Ok((*id == self.id).then(|| self.escrow.clone()))
    }
    fn next_nonce(&self, _: &AccountId) -> Result<u64, LedgerError> {
        let c = self.chain.lock();
        Ok(c.nonce + c.pool.len() as u64)
    }
    fn submit(&self, tx: SignedTransaction) -> Result<Hash, LedgerError> {
        let h = tx.hash();
        let mut c = self.chain.lock();
        if !c.pool.iter().any(|t| t.hash() == h) {
            c.pool.push(tx);
        }
        Ok(h)
    }
    fn canonical_hash(&self, number: u64) -> Result<Option<Hash>, LedgerError> {
        Ok(self.chain.lock().canon.get(&number).copied())
    }
    fn transaction_block(&self, tx: &Hash) -> Result<Option<(u64, Hash)>, LedgerError> {
        let c = self.chain.lock();
        Ok(c.canon
            .iter()
            .find(|(_, b)| {
                c.blocks
                    .get(*b)
                    .is_some_and(|t| t.iter().any(|t| t.hash() == *tx))
            })
            .map(|(n, b)| (*n, *b)))
    }
    fn is_pending(&self, tx: &Hash) -> bool {
        self.chain.lock().pool.iter().any(|t| t.hash() == *tx)
    }
    fn state_nonce(&self, _: &AccountId) -> Result<u64, LedgerError> {
        Ok(self.chain.lock().nonce)
    }
    fn balance(&self, _: &AccountId) -> Result<Balance, LedgerError> {
        Ok(0)
    }
    fn fee_estimate(&self, _size: usize) -> Balance {
        1
    }
    fn block_transactions(&self, number: u64) -> Result<Vec<SignedTransaction>, LedgerError> {
        let c = self.chain.lock();
        Ok(c.canon
            .get(&number)
            .and_then(|b| c.blocks.get(b))
            .cloned()
            .unwrap_or_default())
    }
}

/// A cache with proven tickets, a chain and a claimer.
#[allow(missing_debug_implementations)]
pub struct Rig {
    pub state: Arc<CacheState>,
    pub ledger: Arc<MemLedger>,
    pub claimer: Claimer,
}

/// The round every ticket of a [`Rig`] belongs to.
pub const ROUND: u64 = 1;

/// A cache holding proven tickets 0..count of round 1 (draw at block
/// 2·10−1+2 = 21, window 20 blocks).
pub fn rig(dir: &std::path::Path, count: u32, n: u32, w: u32) -> Result<Rig, String> {
    let state = CacheModule::open(CacheConfig::new(dir.to_path_buf(), 1 << 20))?.state();
    let signer = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
    let cache = Arc::new(ed25519_dalek::SigningKey::from_bytes(&[9; 32]));
    let me = AccountId(cache.verifying_key().to_bytes());
    let id = Hash([5; 32]);
    let terms = EscrowTerms {
        signer: AccountId(signer.verifying_key().to_bytes()),
        face_value: 1000,
        tickets_per_round: n,
        winners_per_round: w,
        round_length: 10,
        first_round: ROUND,
        last_round: ROUND,
        draw_delay: 2,
        claim_window: 20,
    };
    let ledger = Arc::new(MemLedger {
        escrow: Escrow {
            funder: me,
            terms,
            payment: 1_000_000,
            penalty: 0,
            penalised: false,
            closed: false,
            claimed: Vec::new(),
        },
        id,
        chain: Mutex::new(Chain::default()),
    });
    ledger.mine(0);
    for number in 0..count {
        let secret = [number as u8; 32];
        let request = CacheRequest {
            remainder: BundleRemainder {
                escrow: id,
                object: Hash([1; 32]),
                object_size: 1,
                chunk_size: 1,
                client: AccountId([2; 32]),
                sequence: u64::from(number),
                puzzle: PuzzleParams::covering_all(1, 1, 1),
                goal: Hash([3; 32]),
            },
            position: 0,
            request: TicketRequest {
                chunk_index: 0,
                chunk_id: Hash([4; 32]),
                cache: me,
                size: 1,
            },
            l1_hash: Hash([0; 32]),
            subdigests: Vec::new(),
            l2_digest: Hash([0; 32]),
            auth: BatchAuth {
                root: Hash([0; 32]),
                batch_size: 1,
                index: 0,
                path: Vec::new(),
                signature: cachecash_runtime::Signature([0; 64]),
            },
        };
        let l1 = sign_ticket(
            &signer,
            Ticket {
                escrow: id,
                round: ROUND,
                number,
                cache: me,
                client: AccountId([2; 32]),
                chunk: Hash([4; 32]),
                secret_hash: secret_commitment(&secret),
            },
        );
        let e = |e: crate::cdn::kv::KvError| e.to_string();
        state.tickets.begin(&request).map_err(e)?;
        state.tickets.hold(&request, &l1, 1).map_err(e)?;
        let (key, held) = state
            .tickets
            .bundle(&id, &AccountId([2; 32]), u64::from(number))
            .map_err(e)?
            .pop()
            .ok_or("the ticket just held is missing")?;
        let claim = L2Claim {
            sealed: SealedL2 {
                ciphertext: Vec::new(),
                tag: [0; 32],
            },
            secret: PuzzleSecret::from_bytes(secret),
        };
        state.tickets.prove(&key, &held, &claim).map_err(e)?;
    }
    let claimer = Claimer::new(
        state.clone(),
        ledger.clone() as Arc<dyn Ledger>,
        cache,
        ClaimerConfig {
            depth: 3,
            ..ClaimerConfig::default()
        },
    );
    Ok(Rig {
        state,
        ledger,
        claimer,
    })
}

/// What settling one round of a [`Rig`] cost.
#[derive(Debug, Clone, Copy, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SettleReport {
    /// Tickets held.
    pub tickets: u32,
    /// Winners among them.
    pub winners: u32,
    /// Passes run (one per block) until every ticket reached an end.
    pub passes: u32,
    /// Wall-clock seconds of all passes.
    pub pass_seconds: f64,
    /// The slowest pass.
    pub max_pass_seconds: f64,
    /// Process CPU seconds of all passes (`/proc/self/stat`, 10 ms ticks).
    pub cpu_seconds: f64,
}

fn process_cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name: utime is 14th, stime 15th.
    let rest = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

/// Runs the claimer over the rig's round from before the draw until every
/// ticket is final or lost, one pass per block, mining the pool each block.
pub fn settle_round(rig: &mut Rig) -> Result<SettleReport, String> {
    let tickets = u32::try_from(
        rig.state
            .tickets
            .page(None, usize::MAX)
            .map_err(|e| e.to_string())?
            .len(),
    )
    .unwrap_or(u32::MAX);
    let (cpu0, mut passes, mut total, mut max) = (process_cpu_seconds(), 0u32, 0.0f64, 0.0f64);
    loop {
        let t = std::time::Instant::now();
        rig.claimer.pass()?;
        let s = t.elapsed().as_secs_f64();
        total += s;
        max = max.max(s);
        passes += 1;
        if rig
            .state
            .tickets
            .active_groups()
            .map_err(|e| e.to_string())?
            .is_empty()
        {
            break;
        }
        if passes > 1000 {
            return Err("the round did not settle within 1,000 blocks".into());
        }
        rig.ledger.mine(0);
    }
    let winners = rig
        .state
        .tickets
        .page(None, usize::MAX)
        .map_err(|e| e.to_string())?
        .iter()
        .filter(|(_, _, _, r)| {
            matches!(
                r.as_ref().map(|r| &r.settle),
                Some(super::Settle::Final { .. })
            )
        })
        .count();
    Ok(SettleReport {
        tickets,
        winners: u32::try_from(winners).unwrap_or(u32::MAX),
        passes,
        pass_seconds: total,
        max_pass_seconds: max,
        cpu_seconds: process_cpu_seconds() - cpu0,
    })
}
