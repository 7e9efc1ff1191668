//! The `cache_*` and `publisher_*` JSON-RPC namespaces: what a cache earned
//! and the fate of every ticket, and a publisher's escrows.
//!
//! `cache_reconcile` checks the claimer's records against the chain: the
//! face values of the tickets it recorded as claimed, minus the fees of
//! their claims, must equal what the claim transactions of this cache moved
//! into its account in the canonical chain. Any difference is listed with
//! its cause.

use super::cache::CacheState;
use super::cache::settle::Settle;
use super::kv::key;
use super::ledger::Ledger;
use super::rpc::{CdnRegistry, NO_ROLE};
use cachecash_runtime::{AccountId, Balance, Call, Hash};
use jsonrpsee::core::RpcResult;
use jsonrpsee::proc_macros::rpc;
use jsonrpsee::types::{ErrorObject, ErrorObjectOwned};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Most tickets per `cache_tickets` page.
pub const MAX_PAGE: usize = 1000;

/// Counts and value of tickets in one state.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct StateTotals {
    /// Tickets.
    pub tickets: u64,
    /// Their face value (what they pay or paid; 0 for losers and undrawn).
    pub value: String,
}

/// Totals by state.
pub type ByState = BTreeMap<String, StateTotals>;

/// `cache_earnings`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Earnings {
    /// The cache's account.
    pub account: String,
    /// Its balance at the head.
    pub balance: String,
    /// Totals by state over every ticket.
    pub totals: ByState,
    /// Fees of the claims that landed.
    pub fees: String,
    /// Net earned: final and claimed face values minus their fees.
    pub net: String,
    /// Per escrow, then per round.
    pub escrows: BTreeMap<String, BTreeMap<u64, ByState>>,
}

/// One ticket in `cache_tickets`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TicketView {
    /// Escrow.
    pub escrow: String,
    /// Round.
    pub round: u64,
    /// Number.
    pub number: u32,
    /// `held`, `proven` (not drawn yet), or a settlement state.
    pub state: String,
    /// Why it waits or expired.
    pub reason: Option<String>,
    /// The claim transaction.
    pub tx: Option<String>,
    /// The claim's block hash and number.
    pub block: Option<(String, u64)>,
    /// Face value (once drawn).
    pub face_value: Option<String>,
    /// The client that was served.
    pub client: String,
    /// Bytes served for it.
    pub bytes: u64,
}

/// `cache_tickets`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TicketPage {
    /// The tickets.
    pub tickets: Vec<TicketView>,
    /// Cursor for the next page (absent at the end).
    pub next: Option<String>,
}

/// One difference found by `cache_reconcile`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Discrepancy {
    /// The claim transaction.
    pub tx: String,
    /// What differs and why.
    pub cause: String,
}

/// `cache_reconcile`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Reconciliation {
    /// Σβ of tickets recorded claimed or final, minus their claims' fees.
    pub recorded: String,
    /// What this cache's claim transactions moved into its account on the
    /// canonical chain (claimed values minus fees), over the blocks checked.
    pub on_chain: String,
    /// Blocks checked: from the first recorded claim to the head.
    pub blocks: (u64, u64),
    /// Whether the two agree.
    pub balanced: bool,
    /// Every difference, with its cause.
    pub discrepancies: Vec<Discrepancy>,
}

/// A round of a publisher escrow.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoundView {
    /// Round.
    pub round: u64,
    /// Ticket numbers reserved for issue (durably; at least those issued).
    pub reserved: u64,
    /// Its draw block height.
    pub draw_height: u64,
}

/// `publisher_escrows`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EscrowView {
    /// Id.
    pub escrow: String,
    /// Terms (as `state_getEscrow` shows them).
    pub terms: serde_json::Value,
    /// Remaining payment deposit (absent once closed).
    pub payment: Option<String>,
    /// Remaining penalty deposit.
    pub penalty: Option<String>,
    /// Penalised for duplicate tickets.
    pub penalised: bool,
    /// Rounds whose draw block is still ahead.
    pub rounds_left: u64,
    /// First block at which it may be closed.
    pub unlock_height: u64,
    /// Issued tickets by round.
    pub rounds: Vec<RoundView>,
}

/// The `cache` namespace.
#[rpc(server, client, namespace = "cache")]
pub trait CacheApi {
    /// Totals by ticket state, per escrow and per round.
    #[method(name = "earnings")]
    fn earnings(&self) -> RpcResult<Earnings>;

    /// Tickets, paged (`after`: the previous page's `next`), filtered by
    /// state when `state` is given.
    #[method(name = "tickets")]
    fn tickets(
        &self,
        state: Option<String>,
        after: Option<String>,
        limit: Option<usize>,
    ) -> RpcResult<TicketPage>;

    /// The claimer's records against the chain.
    #[method(name = "reconcile")]
    fn reconcile(&self) -> RpcResult<Reconciliation>;

    /// Runs a claim pass now (unsafe): every proven winner whose fee fits
    /// is claimed; what the pass did.
    #[method(name = "claimNow")]
    async fn claim_now(&self) -> RpcResult<ClaimPassView>;
}

/// `cache_claimNow`: what the pass did.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ClaimPassView {
    /// Ticket records written.
    pub updated: usize,
    /// Claim transactions sent.
    pub sent: usize,
    /// Winners held back by their fee.
    pub held_back: usize,
}

/// The `publisher` namespace.
#[rpc(server, client, namespace = "publisher")]
pub trait PublisherApi {
    /// The publisher's escrows: terms, deposits, issue by round.
    #[method(name = "escrows")]
    fn escrows(&self) -> RpcResult<Vec<EscrowView>>;

    /// Closes escrow `id` now (unsafe): one this publisher funds, from its
    /// unlock height (the penalty deposit from its release height); the
    /// close transaction's hash.
    #[method(name = "closeEscrow")]
    async fn close_escrow(&self, id: cachecash_runtime::microcash::EscrowId) -> RpcResult<Hash>;
}

/// Error code: an operator action was refused or failed.
pub const ACTION_REFUSED: i32 = 1016;

/// How long an action's answer is awaited.
const ACTION_DEADLINE: std::time::Duration = std::time::Duration::from_secs(60);

/// The server side of both namespaces.
#[derive(Debug, Clone)]
pub struct SettleRpc {
    registry: Arc<CdnRegistry>,
    ledger: Arc<dyn Ledger>,
    allow_unsafe: bool,
}

impl SettleRpc {
    /// Over a node's registry and ledger.
    pub fn new(registry: Arc<CdnRegistry>, ledger: Arc<dyn Ledger>) -> SettleRpc {
        SettleRpc {
            registry,
            ledger,
            allow_unsafe: false,
        }
    }

    /// Serves the unsafe methods (`cache_claimNow`,
    /// `publisher_closeEscrow`) when `allow` (the RPC policy's verdict for
    /// the listener).
    pub fn allow_unsafe(mut self, allow: bool) -> SettleRpc {
        self.allow_unsafe = allow;
        self
    }

    fn unsafe_allowed(&self, method: &str) -> RpcResult<()> {
        if self.allow_unsafe {
            return Ok(());
        }
        Err(ErrorObject::owned(
            crate::rpc::UNSAFE_DENIED,
            format!(
                "{method} is an unsafe method; it is served only on a localhost RPC listener unless the node runs with --rpc-methods unsafe"
            ),
            None::<()>,
        ))
    }

    fn publisher(&self) -> RpcResult<&Arc<super::publisher::PublisherState>> {
        self.registry.publisher.get().ok_or_else(|| {
            ErrorObject::owned(
                NO_ROLE,
                "this node does not run the publisher role; start it with --publisher",
                None::<()>,
            )
        })
    }

    fn cache(&self) -> RpcResult<(&Arc<CacheState>, AccountId)> {
        let s = self.registry.cache.get().ok_or_else(|| {
            ErrorObject::owned(
                NO_ROLE,
                "this node does not run the cache role; start it with --cache",
                None::<()>,
            )
        })?;
        let me = s.account.get().copied().ok_or_else(|| {
            ErrorObject::owned(
                NO_ROLE,
                "the cache role is still starting; retry",
                None::<()>,
            )
        })?;
        Ok((s, me))
    }
}

fn internal(e: impl std::fmt::Display) -> ErrorObjectOwned {
    ErrorObject::owned(-32603, format!("internal error: {e}"), None::<()>)
}

fn invalid(e: impl std::fmt::Display) -> ErrorObjectOwned {
    ErrorObject::owned(-32602, e.to_string(), None::<()>)
}

fn add(t: &mut ByState, state: &str, value: Balance) {
    let e = t.entry(state.to_string()).or_default();
    e.tickets += 1;
    let v: Balance = e.value.parse().unwrap_or(0);
    e.value = v.saturating_add(value).to_string();
}

/// The state name of a ticket with or without a settlement record.
fn state_of(t: Option<&super::cache::tickets::HeldTicket>, s: Option<&Settle>) -> &'static str {
    match (s, t) {
        (Some(s), _) => s.name(),
        (None, Some(t)) if t.claim.is_some() => "proven",
        _ => "held",
    }
}

fn refused(e: impl std::fmt::Display) -> ErrorObjectOwned {
    ErrorObject::owned(ACTION_REFUSED, e.to_string(), None::<()>)
}

#[jsonrpsee::core::async_trait]
impl CacheApiServer for SettleRpc {
    async fn claim_now(&self) -> RpcResult<ClaimPassView> {
        self.unsafe_allowed("cache_claimNow")?;
        let (s, _) = self.cache()?;
        let pass = s
            .claim_now
            .ask((), ACTION_DEADLINE)
            .await
            .map_err(refused)?
            .map_err(|e| refused(format!("the claim pass failed: {e}; see the node's log")))?;
        Ok(ClaimPassView {
            updated: pass.updated,
            sent: pass.sent,
            held_back: pass.held_back,
        })
    }

    fn earnings(&self) -> RpcResult<Earnings> {
        let (s, me) = self.cache()?;
        let mut out = Earnings {
            account: me.to_string(),
            balance: self.ledger.balance(&me).map_err(internal)?.to_string(),
            ..Default::default()
        };
        let mut after: Option<Vec<u8>> = None;
        let mut net: Balance = 0;
        loop {
            let page = s
                .tickets
                .page(after.as_deref(), MAX_PAGE)
                .map_err(internal)?;
            let Some(last) = page.last() else { break };
            after = Some(last.0.clone());
            for (_, slot, t, r) in page {
                let st = state_of(t.as_ref(), r.as_ref().map(|r| &r.settle));
                let value = match r.as_ref().map(|r| &r.settle) {
                    Some(Settle::Lost { .. }) | None => 0,
                    Some(_) => r.as_ref().map_or(0, |r| r.face_value),
                };
                if matches!(st, "claimed" | "final") {
                    net = net.saturating_add(value);
                }
                add(&mut out.totals, st, value);
                let by_round = out.escrows.entry(slot.0.to_string()).or_default();
                add(by_round.entry(slot.1).or_default(), st, value);
            }
        }
        let mut fees: Balance = 0;
        for c in s.tickets.claims().map_err(internal)? {
            if self
                .ledger
                .transaction_block(&c.tx.hash())
                .map_err(internal)?
                .is_some()
            {
                fees = fees.saturating_add(c.tx.tx.fee);
            }
        }
        out.fees = fees.to_string();
        out.net = net.saturating_sub(fees).to_string();
        Ok(out)
    }

    fn tickets(
        &self,
        state: Option<String>,
        after: Option<String>,
        limit: Option<usize>,
    ) -> RpcResult<TicketPage> {
        const STATES: [&str; 8] = [
            "held",
            "proven",
            "lost",
            "won",
            "submitted",
            "claimed",
            "final",
            "expired",
        ];
        let (s, _) = self.cache()?;
        if let Some(st) = &state
            && !STATES.contains(&st.as_str())
        {
            return Err(invalid(format!(
                "unknown ticket state '{st}'; use one of {}",
                STATES.join(", ")
            )));
        }
        let limit = limit.unwrap_or(100).clamp(1, MAX_PAGE);
        let mut cursor = match after {
            Some(a) => Some(hex::decode(a.trim_start_matches("0x")).map_err(|e| {
                invalid(format!(
                    "cursor 'after' is not hex ({e}); pass the previous page's 'next'"
                ))
            })?),
            None => None,
        };
        let mut out = Vec::new();
        // Scans at most 20 pages per call, so a rare state cannot make one
        // call walk the whole history; the cursor resumes.
        for _ in 0..20 {
            let page = s
                .tickets
                .page(cursor.as_deref(), MAX_PAGE)
                .map_err(internal)?;
            if page.is_empty() {
                cursor = None;
                break;
            }
            for (k, slot, t, r) in page {
                cursor = Some(k);
                let settle = r.as_ref().map(|r| &r.settle);
                let st = state_of(t.as_ref(), settle);
                if state.as_deref().is_some_and(|f| f != st) {
                    continue;
                }
                out.push(TicketView {
                    escrow: slot.0.to_string(),
                    round: slot.1,
                    number: slot.2,
                    state: st.to_string(),
                    reason: match settle {
                        Some(Settle::Won { waiting, .. }) if !waiting.is_empty() => {
                            Some(waiting.clone())
                        }
                        Some(Settle::Expired { reason }) => Some(reason.clone()),
                        _ => None,
                    },
                    tx: settle.and_then(Settle::tx).map(|h| h.to_string()),
                    block: match settle {
                        Some(Settle::Claimed { block, number, .. })
                        | Some(Settle::Final { block, number, .. }) => {
                            Some((block.to_string(), *number))
                        }
                        _ => None,
                    },
                    face_value: r.as_ref().map(|r| r.face_value.to_string()),
                    client: t
                        .as_ref()
                        .map(|t| t.request.remainder.client.to_string())
                        .unwrap_or_default(),
                    bytes: t.as_ref().map_or(0, |t| t.bytes),
                });
                if out.len() >= limit {
                    break;
                }
            }
            if out.len() >= limit {
                break;
            }
        }
        Ok(TicketPage {
            tickets: out,
            next: cursor.map(|c| format!("0x{}", hex::encode(c))),
        })
    }

    fn reconcile(&self) -> RpcResult<Reconciliation> {
        let (s, me) = self.cache()?;
        let claims = s.tickets.claims().map_err(internal)?;
        let mut recorded: Balance = 0;
        let mut discrepancies = Vec::new();
        let mut known = std::collections::HashMap::new();
        let mut first: Option<u64> = None;
        for c in &claims {
            let hash = c.tx.hash();
            known.insert(hash, c);
            let landed = self.ledger.transaction_block(&hash).map_err(internal)?;
            let mut value: Balance = 0;
            let mut counted = 0usize;
            for slot in &c.slots {
                let r = s.tickets.settlement(slot).map_err(internal)?;
                match r.as_ref().map(|r| &r.settle) {
                    Some(Settle::Claimed { tx, .. }) | Some(Settle::Final { tx, .. })
                        if *tx == hash =>
                    {
                        value = value.saturating_add(r.as_ref().map_or(0, |r| r.face_value));
                        counted += 1;
                    }
                    _ => {}
                }
            }
            match landed {
                Some((n, _)) => {
                    first = Some(first.map_or(n, |f: u64| f.min(n)));
                    if counted != c.slots.len() {
                        discrepancies.push(Discrepancy {
                            tx: hash.to_string(),
                            cause: format!(
                                "the claim is in block #{n}, but only {counted} of its {} tickets are recorded as claimed (the claimer updates them on its next pass)",
                                c.slots.len()
                            ),
                        });
                    }
                    recorded = recorded.saturating_add(value).saturating_sub(c.tx.tx.fee);
                }
                None if counted > 0 => discrepancies.push(Discrepancy {
                    tx: hash.to_string(),
                    cause: "recorded as claimed, but the claim is not in the canonical chain (reorganised out; the claimer resubmits it)".into(),
                }),
                None => {}
            }
        }
        let head = self.ledger.head_number();
        let start = first.unwrap_or(head.saturating_add(1));
        let mut on_chain: Balance = 0;
        for n in start..=head {
            for tx in self.ledger.block_transactions(n).map_err(internal)? {
                if tx.tx.signer != me {
                    continue;
                }
                let Call::TicketClaim { claims } = &tx.tx.call else {
                    continue;
                };
                let hash = tx.hash();
                let value: Balance = match known.get(&hash) {
                    Some(c) => c.value,
                    None => {
                        let mut v: Balance = 0;
                        for item in claims {
                            let beta = self
                                .ledger
                                .escrow(&item.ticket.ticket.escrow)
                                .map_err(internal)?
                                .map_or(0, |e| e.terms.face_value);
                            v = v.saturating_add(beta);
                        }
                        discrepancies.push(Discrepancy {
                            tx: hash.to_string(),
                            cause: format!(
                                "a claim by this cache's account in block #{n} that the claimer did not make (a manual `cachecash ticket claim`?)"
                            ),
                        });
                        v
                    }
                };
                on_chain = on_chain.saturating_add(value).saturating_sub(tx.tx.fee);
            }
        }
        Ok(Reconciliation {
            recorded: recorded.to_string(),
            on_chain: on_chain.to_string(),
            blocks: (start, head),
            balanced: recorded == on_chain && discrepancies.is_empty(),
            discrepancies,
        })
    }
}

#[jsonrpsee::core::async_trait]
impl PublisherApiServer for SettleRpc {
    async fn close_escrow(&self, id: cachecash_runtime::microcash::EscrowId) -> RpcResult<Hash> {
        self.unsafe_allowed("publisher_closeEscrow")?;
        let s = self.publisher()?;
        if matches!(
            s.config.escrow,
            super::publisher::escrow::EscrowSource::Existing(_)
        ) {
            return Err(refused(
                "this publisher issues from an existing escrow (--escrow) and holds no funder key; close it with `cachecash escrow close --from FUNDER ID`",
            ));
        }
        s.close_now
            .ask(id, ACTION_DEADLINE)
            .await
            .map_err(refused)?
            .map_err(refused)
    }

    fn escrows(&self) -> RpcResult<Vec<EscrowView>> {
        let s = self.publisher()?;
        let Some(active) = s.escrow() else {
            return Ok(Vec::new());
        };
        let head = self.ledger.head_number();
        let on_chain = self.ledger.escrow(&active.id).map_err(internal)?;
        let terms = on_chain
            .as_ref()
            .map(|e| e.terms.clone())
            .unwrap_or_else(|| active.terms());
        let mut rounds = Vec::new();
        for (k, reserved) in
            s.kv.scan::<u64>(&key(&[b"tn/", &active.id.0]))
                .map_err(internal)?
        {
            let Some(r) = k.get(35..43) else { continue };
            let round = u64::from_be_bytes(r.try_into().unwrap_or_default());
            rounds.push(RoundView {
                round,
                reserved,
                draw_height: terms.draw_height(round).unwrap_or(0),
            });
        }
        let rounds_left = super::publisher::escrow::rounds_left(&terms, head);
        Ok(vec![EscrowView {
            escrow: active.id.to_string(),
            terms: serde_json::to_value(&terms).map_err(internal)?,
            payment: on_chain.as_ref().map(|e| e.payment.to_string()),
            penalty: on_chain.as_ref().map(|e| e.penalty.to_string()),
            penalised: on_chain.as_ref().is_some_and(|e| e.penalised),
            rounds_left,
            unlock_height: terms.unlock_height().unwrap_or(0),
            rounds,
        }])
    }
}
