//! The server side of the typed namespaces of [`super::api`].
//!
//! Methods that read storage or check signatures are declared `blocking`
//! in the traits, so jsonrpsee runs them on the blocking pool and a flood
//! of them cannot occupy the async workers that drive the network, sync
//! and the CDN services. Unsafe methods check the policy first.

use super::api::*;
use super::{
    HISTORY_PAGE, INTERNAL, INVALID_PARAMS, INVALID_TRANSACTION, MAX_FUNDER_PAGE, MAX_HISTORY_PAGE,
    MAX_PENDING_PAGE, NO_NETWORK, RpcContext, UNKNOWN_BLOCK, UNKNOWN_ESCROW, UNSAFE_DENIED,
};
use crate::chain::{Chain, ChainEvent, ReadError};
use crate::mempool::PoolError;
use cachecash_runtime::microcash::{Escrow, EscrowId};
use cachecash_runtime::primitives::encode_hex;
use cachecash_runtime::{AccountId, Block, Hash, Header, SignedTransaction};
use jsonrpsee::PendingSubscriptionSink;
use jsonrpsee::core::{RpcResult, SubscriptionResult, async_trait};
use jsonrpsee::types::{ErrorObject, ErrorObjectOwned};
use parity_scale_codec::Encode;
use std::sync::Arc;

/// Every typed namespace over one [`RpcContext`].
#[derive(Debug, Clone)]
pub struct NodeRpc {
    ctx: Arc<RpcContext>,
}

impl NodeRpc {
    /// The namespaces of a node.
    pub fn new(ctx: RpcContext) -> Self {
        NodeRpc { ctx: Arc::new(ctx) }
    }

    fn chain(&self) -> &Chain {
        &self.ctx.chain
    }

    fn network(&self) -> Result<&crate::network::NetworkHandle, ErrorObjectOwned> {
        self.ctx.network.as_ref().ok_or_else(|| {
            err(
                NO_NETWORK,
                "this node runs without peer-to-peer networking; start it with networking on to use this method",
            )
        })
    }

    fn unsafe_allowed(&self, method: &str) -> Result<(), ErrorObjectOwned> {
        if self.ctx.allow_unsafe {
            Ok(())
        } else {
            Err(err(
                UNSAFE_DENIED,
                format!(
                    "{method} is an unsafe method; it is served only on a localhost RPC listener unless the node runs with --rpc-methods unsafe"
                ),
            ))
        }
    }
}

/// An error with `code` and `message`.
pub(crate) fn err(code: i32, message: impl Into<String>) -> ErrorObjectOwned {
    ErrorObject::owned(code, message.into(), None::<()>)
}

fn internal(e: impl std::fmt::Display) -> ErrorObjectOwned {
    err(INTERNAL, format!("internal error: {e}"))
}

fn read_err(e: ReadError) -> ErrorObjectOwned {
    match e {
        ReadError::UnknownBlock(_) => err(UNKNOWN_BLOCK, e.to_string()),
        other => internal(other),
    }
}

fn pool_err(e: PoolError) -> ErrorObjectOwned {
    match e {
        PoolError::Decode(d) => err(INVALID_PARAMS, d.to_string()),
        PoolError::Backend(b) => internal(b),
        other => err(INVALID_TRANSACTION, other.to_string()),
    }
}

/// A header with its hash.
pub fn header_view(header: &Header) -> HeaderView {
    HeaderView {
        header: header.clone(),
        hash: header.hash(),
    }
}

/// A transaction with its hash and encoding.
pub fn transaction_view(tx: &SignedTransaction) -> TransactionView {
    TransactionView {
        transaction: tx.clone(),
        hash: tx.hash(),
        encoded: encode_hex(&tx.encode()),
    }
}

/// A block with its header's hash and its encoding.
pub fn block_view(block: &Block) -> BlockView {
    BlockView {
        header: header_view(&block.header),
        transactions: block.transactions.iter().map(transaction_view).collect(),
        encoded: encode_hex(&block.encode()),
    }
}

/// An escrow with its id and derived heights.
pub fn escrow_view(id: &EscrowId, e: &Escrow) -> EscrowView {
    EscrowView {
        escrow: e.clone(),
        id: *id,
        unlock_height: e.terms.unlock_height().ok(),
        penalty_release_height: e.terms.penalty_release_height().ok(),
        payment_required_per_round: e.terms.payment_required(1).ok().map(|b| b.to_string()),
    }
}

fn parse_block_number(p: BlockNumberParam) -> Result<u64, ErrorObjectOwned> {
    match p {
        BlockNumberParam::Number(n) => Ok(n),
        BlockNumberParam::Text(s) => {
            let parsed = match s.strip_prefix("0x") {
                Some(h) => u64::from_str_radix(h, 16),
                None => s.parse(),
            };
            parsed.map_err(|e| err(INVALID_PARAMS, format!("block number '{s}': {e}")))
        }
    }
}

fn page_limit(limit: Option<u64>, default: u64, max: u64, how: &str) -> RpcResult<u64> {
    let limit = limit.unwrap_or(default);
    if limit == 0 || limit > max {
        return Err(err(
            INVALID_PARAMS,
            format!("limit must be 1 to {max}, got {limit}; page with {how}"),
        ));
    }
    Ok(limit)
}

#[async_trait]
impl ChainApiServer for NodeRpc {
    fn header(&self, hash: Option<Hash>) -> RpcResult<Option<HeaderView>> {
        match hash {
            None => Ok(Some(header_view(&self.chain().head().header))),
            Some(h) => Ok(self
                .chain()
                .header(&h)
                .map_err(internal)?
                .map(|h| header_view(&h))),
        }
    }

    fn block(&self, hash: Option<Hash>) -> RpcResult<Option<BlockView>> {
        let hash = hash.unwrap_or_else(|| self.chain().head().hash);
        Ok(self
            .chain()
            .block(&hash)
            .map_err(internal)?
            .map(|b| block_view(&b)))
    }

    fn block_hash(&self, number: Option<BlockNumberParam>) -> RpcResult<Option<Hash>> {
        match number {
            None => Ok(Some(self.chain().head().hash)),
            Some(n) => {
                let n = parse_block_number(n)?;
                self.chain().canonical_hash(n).map_err(internal)
            }
        }
    }

    fn transaction(&self, hash: Hash) -> RpcResult<Option<TransactionLookup>> {
        let Some(loc) = self.chain().store().tx_location(&hash).map_err(internal)? else {
            return Ok(None);
        };
        let block = self.chain().block(&loc.block).map_err(internal)?;
        let tx = block.as_ref().and_then(|b| {
            b.transactions
                .get(usize::try_from(loc.index).unwrap_or(usize::MAX))
        });
        Ok(Some(TransactionLookup {
            block_hash: loc.block,
            block_number: block.as_ref().map(|b| b.header.number),
            index: loc.index,
            transaction: tx.map(transaction_view),
        }))
    }

    fn history(
        &self,
        subject: Hash,
        before: Option<HistoryCursor>,
        limit: Option<u64>,
    ) -> RpcResult<HistoryPageView> {
        let limit = page_limit(limit, HISTORY_PAGE, MAX_HISTORY_PAGE, "before")?;
        super::history::page(self.chain().store().as_ref(), &subject, before, limit)
            .map_err(internal)
    }

    async fn subscribe_new_heads(&self, pending: PendingSubscriptionSink) -> SubscriptionResult {
        let mut events = self.chain().subscribe();
        let sink = pending.accept().await?;
        // Start with the current head, as Substrate does.
        let head = |c: &Chain| serde_json::value::to_raw_value(&header_view(&c.head().header));
        sink.send(head(self.chain())?).await?;
        loop {
            tokio::select! {
                _ = sink.closed() => break,
                ev = events.recv() => match ev {
                    Ok(ChainEvent::NewHead { header, .. }) => {
                        sink.send(serde_json::value::to_raw_value(&header_view(&header))?).await?;
                    }
                    Ok(ChainEvent::Reverted { .. }) => sink.send(head(self.chain())?).await?,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                }
            }
        }
        Ok(())
    }
}

#[async_trait]
impl StateApiServer for NodeRpc {
    fn balance(&self, account: AccountId, at: Option<Hash>) -> RpcResult<String> {
        let (a, _, _) = self.chain().account(&account, at).map_err(read_err)?;
        Ok(a.balance.to_string())
    }

    fn account(&self, account: AccountId, at: Option<Hash>) -> RpcResult<AccountView> {
        let (a, _, _) = self.chain().account(&account, at).map_err(read_err)?;
        Ok(AccountView {
            balance: a.balance,
            nonce: a.nonce,
        })
    }

    fn proof(&self, account: AccountId, at: Option<Hash>) -> RpcResult<ProofView> {
        let (a, proof, hash, header) =
            self.chain().account_proof(&account, at).map_err(read_err)?;
        Ok(ProofView {
            block_hash: hash,
            block_number: header.number,
            state_root: header.state_root,
            account: a.map(|a| AccountView {
                balance: a.balance,
                nonce: a.nonce,
            }),
            encoded_account: a.map(|a| encode_hex(&a.encode())),
            key_hash: Hash(cachecash_runtime::commitment::account_key(&account).0),
            proof,
        })
    }

    fn escrow_proof(&self, id: EscrowId, at: Option<Hash>) -> RpcResult<EscrowProofView> {
        let (escrow, proof, hash, header) = self.chain().escrow_proof(&id, at).map_err(read_err)?;
        Ok(EscrowProofView {
            block_hash: hash,
            block_number: header.number,
            state_root: header.state_root,
            encoded_escrow: escrow.as_ref().map(|e| encode_hex(&e.encode())),
            escrow: escrow.map(|e| escrow_view(&id, &e)),
            key_hash: Hash(cachecash_runtime::commitment::escrow_key(&id).0),
            proof,
        })
    }

    fn escrow(&self, id: EscrowId, at: Option<Hash>) -> RpcResult<Option<EscrowView>> {
        let (escrow, _, _) = self.chain().escrow(&id, at).map_err(read_err)?;
        Ok(escrow.map(|e| escrow_view(&id, &e)))
    }

    fn consensus_params(&self) -> RpcResult<ConsensusView> {
        let p = self.chain().params();
        Ok(ConsensusView {
            target_block_time_ms: p.target_block_time_ms,
            initial_target: p.initial_target,
            pow_limit: p.pow_limit,
            retarget_window: p.retarget_window,
            block_reward: p.block_reward,
            minimum_fee: p.minimum_fee,
            fee_per_byte: p.fee_per_byte,
            max_future_drift_ms: p.max_future_drift_ms,
            max_block_transactions: p.max_block_transactions,
            max_block_bytes: p.max_block_bytes,
            duplicate_reporter_share_percent: p.duplicate_reporter_share_percent,
        })
    }
}

#[async_trait]
impl AuthorApiServer for NodeRpc {
    fn submit_transaction(&self, transaction: String) -> RpcResult<Hash> {
        let bytes = cachecash_runtime::primitives::decode_hex(&transaction)
            .map_err(|e| err(INVALID_PARAMS, format!("transaction: {e}")))?;
        self.ctx.pool.submit_encoded(&bytes).map_err(pool_err)
    }

    fn pending_transactions(
        &self,
        limit: Option<u64>,
        offset: Option<u64>,
    ) -> RpcResult<Vec<TransactionView>> {
        // Paged: a full pool would otherwise be one answer of hundreds of MiB.
        let limit = page_limit(limit, super::PENDING_PAGE, MAX_PENDING_PAGE, "offset")?;
        let offset = usize::try_from(offset.unwrap_or(0)).unwrap_or(usize::MAX);
        Ok(self
            .ctx
            .pool
            .pending()
            .iter()
            .skip(offset)
            .take(usize::try_from(limit).unwrap_or(usize::MAX))
            .map(|(_, t)| transaction_view(t))
            .collect())
    }

    fn remove_transaction(&self, hash: Hash) -> RpcResult<bool> {
        self.unsafe_allowed("author_removeTransaction")?;
        Ok(self.ctx.pool.remove(&hash))
    }
}

#[async_trait]
impl SystemApiServer for NodeRpc {
    fn health(&self) -> RpcResult<HealthView> {
        Ok(match &self.ctx.network {
            None => HealthView {
                peers: 0,
                is_syncing: false,
                should_have_peers: false,
            },
            Some(n) => HealthView {
                peers: n.peer_count(),
                is_syncing: n.is_syncing(),
                should_have_peers: n.should_have_peers(),
            },
        })
    }

    fn peers(&self) -> RpcResult<Vec<crate::network::PeerSummary>> {
        Ok(self.network()?.peers())
    }

    fn sync_state(&self) -> RpcResult<crate::network::SyncProgress> {
        let best = self.chain().head().header.number;
        Ok(match &self.ctx.network {
            Some(n) => {
                // The snapshot is refreshed every 250 ms; the head is live.
                let mut progress = n.sync_progress();
                progress.current_block = best;
                progress.highest_block = progress.highest_block.max(best);
                progress
            }
            None => crate::network::SyncProgress {
                starting_block: best,
                current_block: best,
                highest_block: best,
            },
        })
    }

    fn local_peer_id(&self) -> RpcResult<String> {
        Ok(self.network()?.local_peer_id().to_string())
    }

    fn local_listen_addresses(&self) -> RpcResult<Vec<String>> {
        Ok(self
            .network()?
            .listen_addresses()
            .iter()
            .map(ToString::to_string)
            .collect())
    }

    async fn add_reserved_peer(&self, address: String) -> RpcResult<String> {
        self.unsafe_allowed("system_addReservedPeer")?;
        let addr: libp2p::Multiaddr = address.parse().map_err(|e| {
            err(
                INVALID_PARAMS,
                format!("'{address}' is not a multiaddress ({e}); write it as /ip4/ADDR/tcp/PORT/p2p/PEER_ID"),
            )
        })?;
        let peer = self
            .network()?
            .add_reserved_peer(addr)
            .await
            .map_err(|e| err(INVALID_PARAMS, e))?;
        Ok(peer.to_string())
    }

    async fn remove_reserved_peer(&self, peer_id: String) -> RpcResult<bool> {
        self.unsafe_allowed("system_removeReservedPeer")?;
        let peer: libp2p::PeerId = peer_id.parse().map_err(|e| {
            err(
                INVALID_PARAMS,
                format!("'{peer_id}' is not a peer id ({e}); system_peers lists them"),
            )
        })?;
        self.network()?
            .remove_reserved_peer(peer)
            .await
            .map_err(internal)
    }

    fn version(&self) -> RpcResult<String> {
        Ok(self.ctx.info.version.clone())
    }

    fn name(&self) -> RpcResult<String> {
        Ok("cachecash".into())
    }

    fn chain(&self) -> RpcResult<String> {
        Ok(self.ctx.info.chain_name.clone())
    }

    fn chain_type(&self) -> RpcResult<String> {
        Ok(self.ctx.info.chain_type.clone())
    }

    fn properties(&self) -> RpcResult<serde_json::Value> {
        Ok(self.ctx.info.properties.clone())
    }
}

#[async_trait]
impl EscrowApiServer for NodeRpc {
    fn list_by_funder(
        &self,
        funder: AccountId,
        at: Option<Hash>,
        start: Option<u64>,
        limit: Option<u64>,
    ) -> RpcResult<Vec<EscrowId>> {
        let limit = page_limit(limit, super::FUNDER_PAGE, MAX_FUNDER_PAGE, "start")?;
        self.chain()
            .funder_escrows(&funder, at, start.unwrap_or(0), limit)
            .map_err(read_err)
    }

    fn winners(&self, id: EscrowId, round: u64) -> RpcResult<DrawView> {
        Ok(draw_status(self.chain(), &id, round)?.view())
    }

    fn claim(&self, id: EscrowId, round: u64, number: u32) -> RpcResult<ClaimView> {
        let draw = draw_status(self.chain(), &id, round)?;
        if number >= draw.escrow.terms.tickets_per_round {
            return Err(err(
                INVALID_PARAMS,
                format!(
                    "ticket number {number} is out of range: the escrow issues numbers 0..{}",
                    draw.escrow.terms.tickets_per_round
                ),
            ));
        }
        let head = self.chain().head().header.number;
        let winner = draw.winners.as_ref().map(|w| w.contains(&number));
        let claimed = draw.escrow.is_claimed(round, number);
        let status = match (winner, claimed) {
            (_, true) => ClaimStatus::Claimed,
            (None, _) => ClaimStatus::NotDrawn,
            (Some(false), _) => ClaimStatus::Lost,
            (Some(true), false) if head >= draw.deadline => ClaimStatus::Expired,
            (Some(true), false) => ClaimStatus::Claimable,
        };
        Ok(ClaimView {
            escrow: id,
            round,
            number,
            status,
            winner,
            claimed,
            draw_height: draw.draw_height,
            claim_deadline: draw.deadline,
        })
    }
}

/// What the chain says about one round's draw.
struct DrawStatus {
    id: EscrowId,
    round: u64,
    escrow: Escrow,
    draw_height: u64,
    deadline: u64,
    seed: Option<Hash>,
    winners: Option<Vec<u32>>,
}

impl DrawStatus {
    fn view(&self) -> DrawView {
        DrawView {
            escrow: self.id,
            round: self.round,
            draw_height: self.draw_height,
            claim_deadline: self.deadline,
            drawn: self.winners.is_some(),
            seed: self.seed,
            winners: self.winners.clone(),
        }
    }
}

/// The draw of `round` of escrow `id` at the head (drawn once the draw
/// block is canonical), read at one head: the escrow and the draw block
/// come from the same chain (a reorganisation during the read retries it).
fn draw_status(chain: &Chain, id: &EscrowId, round: u64) -> Result<DrawStatus, ErrorObjectOwned> {
    for _ in 0..3 {
        let head = chain.head();
        let escrow = match chain.escrow(id, Some(head.hash)) {
            Ok((escrow, _, _)) => escrow,
            Err(ReadError::UnknownBlock(_)) => continue,
            Err(e) => return Err(read_err(e)),
        };
        let escrow = escrow.ok_or_else(|| {
            err(
                UNKNOWN_ESCROW,
                format!("escrow {id} does not exist at the best block (never opened, or closed)"),
            )
        })?;
        escrow
            .terms
            .check_slot(round, 0)
            .map_err(|e| err(INVALID_PARAMS, e.to_string()))?;
        let draw_height = escrow
            .terms
            .draw_height(round)
            .map_err(|e| err(INVALID_PARAMS, e.to_string()))?;
        let deadline = escrow
            .terms
            .claim_deadline(round)
            .map_err(|e| err(INVALID_PARAMS, e.to_string()))?;
        let seed = if draw_height <= head.header.number {
            chain.canonical_hash(draw_height).map_err(internal)?
        } else {
            None
        };
        // The seed is from the head's chain only if the head is still
        // canonical after reading it.
        if chain.canonical_hash(head.header.number).map_err(internal)? != Some(head.hash) {
            continue;
        }
        let winners = seed.map(|s| {
            cachecash_runtime::microcash::winners(
                &s,
                id,
                round,
                escrow.terms.tickets_per_round,
                escrow.terms.winners_per_round,
            )
        });
        return Ok(DrawStatus {
            id: *id,
            round,
            escrow,
            draw_height,
            deadline,
            seed,
            winners,
        });
    }
    Err(err(
        INTERNAL,
        "the chain reorganised during each of three reads; retry",
    ))
}
