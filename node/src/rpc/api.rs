//! The node's JSON-RPC namespaces as typed jsonrpsee traits.
//!
//! Each namespace (`chain`, `state`, `author`, `system`, `escrow`) is one
//! `#[rpc(server, client)]` trait: the server implements it in
//! [`super::server`], and the macro generates a typed client
//! (`ChainApiClient`, …) that the CLI and the tests use over HTTP or
//! WebSocket. The answer types below are the wire shapes documented in
//! `docs/rpc.md`: hashes and encodings are `0x` hex, balances are decimal
//! strings (a `u128` does not fit a JSON number), field names camelCase.
//!
//! A parameter that does not parse is refused with code -32602; the
//! error's `data` says what was wrong with it.

use cachecash_runtime::commitment::AccountProof;
use cachecash_runtime::consensus::Target;
use cachecash_runtime::microcash::{Escrow, EscrowId};
use cachecash_runtime::{AccountId, Balance, Hash, Header, SignedTransaction};
use jsonrpsee::core::{RpcResult, SubscriptionResult};
use jsonrpsee::proc_macros::rpc;
use serde::{Deserialize, Serialize};

/// A header with its hash.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeaderView {
    /// The header's fields.
    #[serde(flatten)]
    pub header: Header,
    /// Its hash.
    pub hash: Hash,
}

/// A transaction with its hash and SCALE encoding.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransactionView {
    /// The transaction's fields.
    #[serde(flatten)]
    pub transaction: SignedTransaction,
    /// Its hash.
    pub hash: Hash,
    /// Its SCALE encoding, `0x` hex.
    pub encoded: String,
}

/// A block: header, transactions and its SCALE encoding.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockView {
    /// The header.
    pub header: HeaderView,
    /// The transactions, in order.
    pub transactions: Vec<TransactionView>,
    /// The whole block's SCALE encoding, `0x` hex.
    pub encoded: String,
}

/// Where a transaction was included.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TransactionLookup {
    /// The including block.
    pub block_hash: Hash,
    /// Its height, if its header is stored.
    pub block_number: Option<u64>,
    /// Index in the block.
    pub index: u32,
    /// The transaction.
    pub transaction: Option<TransactionView>,
}

/// A position in a history (`chain_getHistory`'s `before` and `next`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryCursor {
    /// The block number.
    pub block: u64,
    /// The transaction's index in it (4294967295 for the miner's reward).
    pub index: u32,
}

/// One entry of an account's or an escrow's history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryItem {
    /// The block.
    pub block_number: u64,
    /// Its hash.
    pub block_hash: Hash,
    /// Its timestamp (Unix milliseconds).
    pub timestamp: u64,
    /// The transaction's index in the block; `null` for the block's
    /// reward and fees to its miner.
    pub index: Option<u32>,
    /// The transaction's hash; `null` for the miner's entry.
    pub transaction: Option<Hash>,
    /// `transfer`, `escrowOpen`, `escrowTopUp`, `escrowClose`,
    /// `ticketClaim`, `duplicateTicketProof`, or `mined`.
    pub kind: String,
    /// The signer (the miner for `mined`).
    pub account: AccountId,
    /// A transfer's receiving account.
    pub dest: Option<AccountId>,
    /// A transfer's amount or an escrow's payment deposit (decimal).
    pub amount: Option<String>,
    /// The transaction's fee (decimal).
    pub fee: Option<String>,
}

/// A page of `chain_getHistory`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryPageView {
    /// Entries, newest first.
    pub entries: Vec<HistoryItem>,
    /// Pass as `before` for the next page; `null` on the last page.
    pub next: Option<HistoryCursor>,
}

/// An account's balance and nonce.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountView {
    /// Spendable balance (decimal string).
    #[serde(with = "cachecash_runtime::serde_balance")]
    pub balance: Balance,
    /// The nonce the next transaction must carry (state only).
    pub nonce: u64,
}

/// An account with its Merkle proof (`state_getProof`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProofView {
    /// The block read.
    pub block_hash: Hash,
    /// Its height.
    pub block_number: u64,
    /// Its state root.
    pub state_root: Hash,
    /// The account, `None` when absent.
    pub account: Option<AccountView>,
    /// The account's SCALE encoding (the leaf value), when present.
    pub encoded_account: Option<String>,
    /// The account's key in the tree.
    pub key_hash: Hash,
    /// The Merkle path.
    pub proof: AccountProof,
}

/// An escrow (or its absence) with its Merkle proof
/// (`state_getEscrowProof`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EscrowProofView {
    /// The block read.
    pub block_hash: Hash,
    /// Its height.
    pub block_number: u64,
    /// Its state root.
    pub state_root: Hash,
    /// The escrow, `None` when it is not open.
    pub escrow: Option<EscrowView>,
    /// The escrow's SCALE encoding (the leaf value), when open.
    pub encoded_escrow: Option<String>,
    /// The escrow's key in the tree: SHA-256("cachecash/state/escrow" ‖ id).
    pub key_hash: Hash,
    /// The Merkle path.
    pub proof: AccountProof,
}

/// The consensus parameters (`state_getConsensusParams`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsensusView {
    /// Target block interval (ms).
    pub target_block_time_ms: u64,
    /// Target of block 1.
    pub initial_target: Target,
    /// Easiest target allowed.
    pub pow_limit: Target,
    /// ASERT half-life in blocks.
    pub retarget_window: u64,
    /// Block reward.
    #[serde(with = "cachecash_runtime::serde_balance")]
    pub block_reward: Balance,
    /// Flat minimum fee.
    #[serde(with = "cachecash_runtime::serde_balance")]
    pub minimum_fee: Balance,
    /// Minimum fee per signed byte.
    #[serde(with = "cachecash_runtime::serde_balance")]
    pub fee_per_byte: Balance,
    /// Largest timestamp drift into the future (ms).
    pub max_future_drift_ms: u64,
    /// Most transactions in a block.
    pub max_block_transactions: u32,
    /// Largest encoded block.
    pub max_block_bytes: u32,
    /// Reporter's share of a duplicate-ticket penalty (percent).
    pub duplicate_reporter_share_percent: u8,
}

/// An escrow with its id and derived heights.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EscrowView {
    /// The on-chain record.
    #[serde(flatten)]
    pub escrow: Escrow,
    /// Its id.
    pub id: EscrowId,
    /// The height from which it can be closed (the payment deposit returns).
    pub unlock_height: Option<u64>,
    /// The height from which the penalty deposit returns (a second close,
    /// when the first came earlier).
    pub penalty_release_height: Option<u64>,
    /// Payment deposit one round needs (decimal string).
    pub payment_required_per_round: Option<String>,
}

/// One round's draw (`escrow_getWinners`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DrawView {
    /// The escrow.
    pub escrow: EscrowId,
    /// The round.
    pub round: u64,
    /// The block whose hash seeds the draw.
    pub draw_height: u64,
    /// Claims are accepted below this height.
    pub claim_deadline: u64,
    /// Whether the draw block is canonical.
    pub drawn: bool,
    /// The seed, once drawn.
    pub seed: Option<Hash>,
    /// The winning numbers in draw order, once drawn.
    pub winners: Option<Vec<u32>>,
}

/// What the chain says of one ticket slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ClaimStatus {
    /// Claimed already.
    Claimed,
    /// The draw block is not canonical yet.
    NotDrawn,
    /// Not a winner.
    Lost,
    /// A winner whose claim window closed.
    Expired,
    /// A winner that can be claimed now.
    Claimable,
}

/// One ticket slot (`escrow_getClaim`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClaimView {
    /// The escrow.
    pub escrow: EscrowId,
    /// The round.
    pub round: u64,
    /// The ticket number.
    pub number: u32,
    /// Its state.
    pub status: ClaimStatus,
    /// Whether it won, once drawn.
    pub winner: Option<bool>,
    /// Whether it was claimed.
    pub claimed: bool,
    /// The draw block's height.
    pub draw_height: u64,
    /// The end of the claim window.
    pub claim_deadline: u64,
}

/// `system_health`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthView {
    /// Connected peers.
    pub peers: usize,
    /// Whether a sync round runs.
    pub is_syncing: bool,
    /// Whether the node expects peers (it has bootnodes or networking).
    pub should_have_peers: bool,
}

/// `rpc_methods`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MethodsView {
    /// Every method name, sorted.
    pub methods: Vec<String>,
}

/// A block number given as a JSON number, a decimal string or `0x` hex.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum BlockNumberParam {
    /// A JSON number.
    Number(u64),
    /// A decimal or `0x` hex string.
    Text(String),
}

impl From<u64> for BlockNumberParam {
    fn from(n: u64) -> Self {
        BlockNumberParam::Number(n)
    }
}

/// `chain_*`: blocks, headers, transactions and new heads.
#[rpc(server, client, namespace = "chain")]
pub trait ChainApi {
    /// The header `hash` (the best for `None`); `null` when unknown.
    #[method(name = "getHeader", blocking)]
    fn header(&self, hash: Option<Hash>) -> RpcResult<Option<HeaderView>>;

    /// The block `hash` (the best for `None`); `null` when unknown.
    #[method(name = "getBlock", blocking)]
    fn block(&self, hash: Option<Hash>) -> RpcResult<Option<BlockView>>;

    /// The canonical hash at `number` (the best for `None`).
    #[method(name = "getBlockHash", blocking)]
    fn block_hash(&self, number: Option<BlockNumberParam>) -> RpcResult<Option<Hash>>;

    /// Where transaction `hash` was included; `null` when it was not.
    #[method(name = "getTransaction", blocking)]
    fn transaction(&self, hash: Hash) -> RpcResult<Option<TransactionLookup>>;

    /// A page of the history of `subject` (an account or an escrow id):
    /// the canonical blocks and transactions that touched it, newest
    /// first, `limit` (default 50, at most 256) entries before `before`.
    #[method(name = "getHistory", blocking)]
    fn history(
        &self,
        subject: Hash,
        before: Option<HistoryCursor>,
        limit: Option<u64>,
    ) -> RpcResult<HistoryPageView>;

    /// The best header now and after every change of the best block.
    #[subscription(name = "subscribeNewHeads" => "newHead", unsubscribe = "unsubscribeNewHeads", item = HeaderView)]
    async fn subscribe_new_heads(&self) -> SubscriptionResult;
}

/// `state_*`: accounts, proofs, escrows and the consensus parameters.
#[rpc(server, client, namespace = "state")]
pub trait StateApi {
    /// The balance of `account` (decimal string) at `at` or the best block.
    #[method(name = "getBalance", blocking)]
    fn balance(&self, account: AccountId, at: Option<Hash>) -> RpcResult<String>;

    /// Balance and nonce of `account`.
    #[method(name = "getAccount", blocking)]
    fn account(&self, account: AccountId, at: Option<Hash>) -> RpcResult<AccountView>;

    /// `account` with its Merkle proof against the block's state root.
    #[method(name = "getProof", blocking)]
    fn proof(&self, account: AccountId, at: Option<Hash>) -> RpcResult<ProofView>;

    /// Escrow `id` (or its absence) with its Merkle proof against the
    /// block's state root, so its terms can be checked without trusting
    /// this node.
    #[method(name = "getEscrowProof", blocking)]
    fn escrow_proof(&self, id: EscrowId, at: Option<Hash>) -> RpcResult<EscrowProofView>;

    /// Escrow `id`; `null` when it is not open.
    #[method(name = "getEscrow", blocking)]
    fn escrow(&self, id: EscrowId, at: Option<Hash>) -> RpcResult<Option<EscrowView>>;

    /// The chain's consensus parameters.
    #[method(name = "getConsensusParams")]
    fn consensus_params(&self) -> RpcResult<ConsensusView>;
}

/// `author_*`: the transaction pool.
#[rpc(server, client, namespace = "author")]
pub trait AuthorApi {
    /// Submits a SCALE-encoded signed transaction (`0x` hex); its hash.
    #[method(name = "submitTransaction", blocking)]
    fn submit_transaction(&self, transaction: String) -> RpcResult<Hash>;

    /// A page of the pool in fee order: `limit` (default 256, at most
    /// 1,024) from `offset`.
    #[method(name = "pendingTransactions")]
    fn pending_transactions(
        &self,
        limit: Option<u64>,
        offset: Option<u64>,
    ) -> RpcResult<Vec<TransactionView>>;

    /// Removes a transaction from the pool (unsafe); whether it was there.
    #[method(name = "removeTransaction")]
    fn remove_transaction(&self, hash: Hash) -> RpcResult<bool>;
}

/// `system_*`: the node, its peers and sync.
#[rpc(server, client, namespace = "system")]
pub trait SystemApi {
    /// Peers, sync and whether peers are expected.
    #[method(name = "health")]
    fn health(&self) -> RpcResult<HealthView>;
    /// Connected peers.
    #[method(name = "peers")]
    fn peers(&self) -> RpcResult<Vec<crate::network::PeerSummary>>;
    /// Sync progress.
    #[method(name = "syncState")]
    fn sync_state(&self) -> RpcResult<crate::network::SyncProgress>;
    /// This node's peer id.
    #[method(name = "localPeerId")]
    fn local_peer_id(&self) -> RpcResult<String>;
    /// This node's listen addresses (with `/p2p/` suffix).
    #[method(name = "localListenAddresses")]
    fn local_listen_addresses(&self) -> RpcResult<Vec<String>>;
    /// Adds a reserved peer (unsafe); its peer id.
    #[method(name = "addReservedPeer")]
    async fn add_reserved_peer(&self, address: String) -> RpcResult<String>;
    /// Removes a reserved peer (unsafe); whether it was reserved.
    #[method(name = "removeReservedPeer")]
    async fn remove_reserved_peer(&self, peer_id: String) -> RpcResult<bool>;
    /// The node's version.
    #[method(name = "version")]
    fn version(&self) -> RpcResult<String>;
    /// The implementation name.
    #[method(name = "name")]
    fn name(&self) -> RpcResult<String>;
    /// The chain's name.
    #[method(name = "chain")]
    fn chain(&self) -> RpcResult<String>;
    /// The chain's type (`Development`, `Local`, `Live`).
    #[method(name = "chainType")]
    fn chain_type(&self) -> RpcResult<String>;
    /// The chain spec's `properties`.
    #[method(name = "properties")]
    fn properties(&self) -> RpcResult<serde_json::Value>;
}

/// `escrow_*`: MicroCash escrows, draws and ticket slots.
#[rpc(server, client, namespace = "escrow")]
pub trait EscrowApi {
    /// A page of `funder`'s open escrows: `limit` (default 256, at most
    /// 1,024) from index slot `start`.
    #[method(name = "listByFunder", blocking)]
    fn list_by_funder(
        &self,
        funder: AccountId,
        at: Option<Hash>,
        start: Option<u64>,
        limit: Option<u64>,
    ) -> RpcResult<Vec<EscrowId>>;

    /// The draw of `round` at the best block.
    #[method(name = "getWinners", blocking)]
    fn winners(&self, id: EscrowId, round: u64) -> RpcResult<DrawView>;

    /// The state of ticket `number` of `round`.
    #[method(name = "getClaim", blocking)]
    fn claim(&self, id: EscrowId, round: u64, number: u32) -> RpcResult<ClaimView>;
}
