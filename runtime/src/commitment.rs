//! The state commitment: a Jellyfish Merkle Tree (the maintained `jmt`
//! crate) over every account, with SHA-256.
//!
//! # Layout
//!
//! - key hash   = SHA-256(account id, 32 bytes)
//! - value      = SCALE(Account) = nonce (u64 LE) ‖ balance (u128 LE), 24 bytes
//! - value hash = SHA-256(value)
//! - leaf hash  = SHA-256("JMT::LeafNode" ‖ key hash ‖ value hash)
//! - node hash  = SHA-256("JMT::IntrnalNode" ‖ left ‖ right)
//! - empty      = the 32 ASCII bytes "SPARSE_MERKLE_PLACEHOLDER_HASH__"
//!
//! The tree is versioned by block number: the state after block `n` is
//! version `n`, genesis is version 0. Updating it touches only the paths of
//! the changed accounts, O(changed × log N) hashes and node writes; the
//! sparse tree's depth is log₁₆ N on average (a 16-ary trie with compressed
//! single-leaf subtrees), so the cost stays flat as N grows.
//!
//! Versions are linear: the tree holds the canonical chain only. A reorg
//! reverts versions above the common ancestor before applying the new
//! branch (the node deletes nodes and values of the reverted versions).
//!
//! # Proofs
//!
//! [`AccountProof`] is the path from the account's position to the root.
//! `docs/rpc.md` specifies how a light client checks one against a
//! header's `stateRoot`; [`verify_proof`] implements exactly that text.

use crate::microcash::{Escrow, EscrowId};
use crate::primitives::{AccountId, Hash};
use crate::state::{Account, StateChanges, StateError, StateReader};
use jmt::storage::{LeafNode, Node, NodeKey, TreeReader, TreeUpdateBatch};
use jmt::{KeyHash, OwnedValue, Version};
use parity_scale_codec::{Decode, Encode};
use sha2::Digest;
use std::collections::BTreeMap;

/// Domain separator of leaf hashes (fixed by the tree format).
pub const LEAF_DOMAIN: &[u8] = b"JMT::LeafNode";
/// Domain separator of internal-node hashes (fixed by the tree format).
pub const INTERNAL_DOMAIN: &[u8] = b"JMT::IntrnalNode";
/// Hash of an empty subtree.
pub const EMPTY_SUBTREE: [u8; 32] = *b"SPARSE_MERKLE_PLACEHOLDER_HASH__";

/// SHA-256 as the tree's hasher.
#[derive(Clone, Debug, Default)]
pub struct StateHasher(sha2::Sha256);

impl jmt::SimpleHasher for StateHasher {
    fn new() -> Self {
        StateHasher(sha2::Sha256::new())
    }
    fn update(&mut self, data: &[u8]) {
        Digest::update(&mut self.0, data);
    }
    fn finalize(self) -> [u8; 32] {
        self.0.finalize().into()
    }
}

type Tree<'a, R> = jmt::JellyfishMerkleTree<'a, R, StateHasher>;

/// The tree key of an account.
pub fn account_key(id: &AccountId) -> KeyHash {
    KeyHash(Hash::of(id.as_bytes()).0)
}

/// Domain of escrow keys in the tree.
pub const ESCROW_KEY_DOMAIN: &[u8] = b"cachecash/state/escrow";
/// Domain of a funder's open-escrow count.
pub const FUNDER_COUNT_DOMAIN: &[u8] = b"cachecash/state/funder-count";
/// Domain of a funder's index slots.
pub const FUNDER_SLOT_DOMAIN: &[u8] = b"cachecash/state/funder-slot";
/// Domain of an escrow's slot in its funder's index.
pub const ESCROW_SLOT_DOMAIN: &[u8] = b"cachecash/state/escrow-slot";

/// The tree key of an escrow: SHA-256(domain ‖ escrow id). Account keys hash
/// 32 bytes alone, so the key spaces cannot meet.
pub fn escrow_key(id: &EscrowId) -> KeyHash {
    KeyHash(Hash::of_parts(&[ESCROW_KEY_DOMAIN, id.as_bytes()]).0)
}

/// The tree key of a funder's open-escrow count (value: u64 SCALE).
///
/// The hashed inputs of the key spaces have pairwise different lengths
/// (account 32, escrow 54, escrow slot 59, funder count 60, funder slot 67
/// bytes), so no two spaces can produce the same preimage.
pub fn funder_count_key(funder: &AccountId) -> KeyHash {
    KeyHash(Hash::of_parts(&[FUNDER_COUNT_DOMAIN, funder.as_bytes()]).0)
}

/// The tree key of slot `slot` of a funder's index (value: escrow id).
pub fn funder_slot_key(funder: &AccountId, slot: u64) -> KeyHash {
    KeyHash(Hash::of_parts(&[FUNDER_SLOT_DOMAIN, funder.as_bytes(), &slot.to_le_bytes()]).0)
}

/// The tree key of the slot an escrow occupies (value: u64 SCALE).
pub fn escrow_slot_key(id: &EscrowId) -> KeyHash {
    KeyHash(Hash::of_parts(&[ESCROW_SLOT_DOMAIN, id.as_bytes()]).0)
}

/// The tree value of an account.
pub fn account_value(account: &Account) -> Vec<u8> {
    account.encode()
}

/// The tree failed: a missing node or a backend error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("state tree: {0}")]
pub struct CommitmentError(pub String);

impl From<anyhow::Error> for CommitmentError {
    fn from(e: anyhow::Error) -> Self {
        CommitmentError(format!("{e:#}"))
    }
}

impl From<CommitmentError> for StateError {
    fn from(e: CommitmentError) -> Self {
        StateError(e.0)
    }
}

/// A new root and everything to write to reach it.
#[derive(Debug, Clone)]
pub struct StateUpdate {
    /// The root after the update.
    pub root: Hash,
    /// The version written.
    pub version: Version,
    /// Nodes and values to persist.
    pub batch: TreeUpdateBatch,
}

/// Applies `changes` on top of version `version - 1` (or an empty tree for
/// version 0) and returns the new root and the writes. `changes` must not be
/// empty.
pub fn compute_update<R: TreeReader>(
    reader: &R,
    changes: &BTreeMap<AccountId, Account>,
    version: Version,
) -> Result<StateUpdate, CommitmentError> {
    if changes.is_empty() {
        return Err(CommitmentError(
            "a state version must change at least one account".into(),
        ));
    }
    let set: Vec<(KeyHash, Option<OwnedValue>)> = changes
        .iter()
        .map(|(id, a)| (account_key(id), Some(account_value(a))))
        .collect();
    let (root, batch) = Tree::new(reader).put_value_set(set, version)?;
    Ok(StateUpdate {
        root: Hash(root.0),
        version,
        batch,
    })
}

/// Like [`compute_update`] for every kind of state change: accounts,
/// escrows (SCALE, or deleted) and the funder index entries (counts, slots
/// and escrow slots; SCALE, deleted when zero or `None`).
pub fn compute_state_update<R: TreeReader>(
    reader: &R,
    changes: &StateChanges,
    version: Version,
) -> Result<StateUpdate, CommitmentError> {
    if changes.is_empty() {
        return Err(CommitmentError(
            "a state version must change at least one entry".into(),
        ));
    }
    let mut set: Vec<(KeyHash, Option<OwnedValue>)> = changes
        .accounts
        .iter()
        .map(|(id, a)| (account_key(id), Some(account_value(a))))
        .collect();
    set.extend(
        changes
            .escrows
            .iter()
            .map(|(id, e)| (escrow_key(id), e.as_ref().map(Encode::encode))),
    );
    set.extend(
        changes
            .funder_counts
            .iter()
            .map(|(id, n)| (funder_count_key(id), (*n != 0).then(|| n.encode()))),
    );
    set.extend(changes.funder_slots.iter().map(|((funder, slot), id)| {
        (
            funder_slot_key(funder, *slot),
            id.as_ref().map(Encode::encode),
        )
    }));
    set.extend(
        changes
            .escrow_slots
            .iter()
            .map(|(id, slot)| (escrow_slot_key(id), slot.as_ref().map(Encode::encode))),
    );
    let (root, batch) = Tree::new(reader).put_value_set(set, version)?;
    Ok(StateUpdate {
        root: Hash(root.0),
        version,
        batch,
    })
}

/// Reads and decodes the value at `key` as of `version`; `what` names it
/// in the corruption error.
fn read_value<R: TreeReader, T: Decode>(
    reader: &R,
    key: KeyHash,
    version: Version,
    what: impl FnOnce() -> String,
) -> Result<Option<T>, CommitmentError> {
    match reader.get_value_option(version, key)? {
        None => Ok(None),
        Some(bytes) => T::decode(&mut &bytes[..])
            .map(Some)
            .map_err(|e| CommitmentError(format!("stored {} is corrupt: {e}", what()))),
    }
}

/// Reads an escrow at `version`.
pub fn read_escrow<R: TreeReader>(
    reader: &R,
    id: &EscrowId,
    version: Version,
) -> Result<Option<Escrow>, CommitmentError> {
    read_value(reader, escrow_key(id), version, || format!("escrow {id}"))
}

/// Reads an account at `version` directly from the versioned values.
pub fn read_account<R: TreeReader>(
    reader: &R,
    id: &AccountId,
    version: Version,
) -> Result<Option<Account>, CommitmentError> {
    read_value(reader, account_key(id), version, || format!("account {id}"))
}

/// The root of version `version`.
pub fn root_at<R: TreeReader>(reader: &R, version: Version) -> Result<Hash, CommitmentError> {
    Ok(Hash(Tree::new(reader).get_root_hash(version)?.0))
}

/// A [`StateReader`] over a tree at one version.
#[derive(Debug)]
pub struct TreeState<'a, R> {
    reader: &'a R,
    version: Version,
}

impl<'a, R: TreeReader> TreeState<'a, R> {
    /// State at `version` of the tree behind `reader`.
    pub fn new(reader: &'a R, version: Version) -> Self {
        TreeState { reader, version }
    }
}

impl<R: TreeReader> StateReader for TreeState<'_, R> {
    fn account(&self, id: &AccountId) -> Result<Option<Account>, StateError> {
        Ok(read_account(self.reader, id, self.version)?)
    }
    fn escrow(&self, id: &EscrowId) -> Result<Option<Escrow>, StateError> {
        Ok(read_escrow(self.reader, id, self.version)?)
    }
    fn funder_escrow_count(&self, funder: &AccountId) -> Result<u64, StateError> {
        Ok(
            read_value(self.reader, funder_count_key(funder), self.version, || {
                format!("escrow count of {funder}")
            })?
            .unwrap_or(0),
        )
    }
    fn funder_escrow_at(
        &self,
        funder: &AccountId,
        slot: u64,
    ) -> Result<Option<EscrowId>, StateError> {
        Ok(read_value(
            self.reader,
            funder_slot_key(funder, slot),
            self.version,
            || format!("escrow slot {slot} of {funder}"),
        )?)
    }
    fn escrow_slot(&self, id: &EscrowId) -> Result<Option<u64>, StateError> {
        Ok(read_value(
            self.reader,
            escrow_slot_key(id),
            self.version,
            || format!("index slot of escrow {id}"),
        )?)
    }
}

/// The leaf found at the end of a proof's path.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Encode, Decode, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "camelCase")]
pub struct ProofLeaf {
    /// Key hash of the leaf.
    pub key_hash: Hash,
    /// Value hash of the leaf.
    pub value_hash: Hash,
}

/// A Merkle path for one account, bottom sibling first.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, serde::Serialize, serde::Deserialize)]
pub struct AccountProof {
    /// The leaf at the end of the path: the account's own leaf (inclusion),
    /// another account's leaf occupying the subtree (exclusion), or none
    /// (exclusion by an empty subtree).
    pub leaf: Option<ProofLeaf>,
    /// Sibling hashes from the bottom of the path to just below the root.
    pub siblings: Vec<Hash>,
}

/// Proves the account `id` (present or absent) at `version`.
pub fn prove<R: TreeReader>(
    reader: &R,
    id: &AccountId,
    version: Version,
) -> Result<(Option<Account>, AccountProof), CommitmentError> {
    let (value, proof) = prove_key(reader, account_key(id), version)?;
    let account = match value {
        None => None,
        Some(bytes) => Some(
            Account::decode(&mut &bytes[..])
                .map_err(|e| CommitmentError(format!("stored account {id} is corrupt: {e}")))?,
        ),
    };
    Ok((account, proof))
}

/// Proves the escrow `id` (open, or absent: never opened or closed) at
/// `version`. The proof has the same shape as an account's; verify it with
/// [`verify_escrow_proof`].
pub fn prove_escrow<R: TreeReader>(
    reader: &R,
    id: &EscrowId,
    version: Version,
) -> Result<(Option<Escrow>, AccountProof), CommitmentError> {
    let (value, proof) = prove_key(reader, escrow_key(id), version)?;
    let escrow = match value {
        None => None,
        Some(bytes) => Some(
            Escrow::decode(&mut &bytes[..])
                .map_err(|e| CommitmentError(format!("stored escrow {id} is corrupt: {e}")))?,
        ),
    };
    Ok((escrow, proof))
}

/// The raw value at `key` and its Merkle path at `version`.
fn prove_key<R: TreeReader>(
    reader: &R,
    key: KeyHash,
    version: Version,
) -> Result<(Option<OwnedValue>, AccountProof), CommitmentError> {
    let (value, proof) = Tree::new(reader).get_with_proof(key, version)?;
    let bytes = borsh::to_vec(&proof).map_err(|e| CommitmentError(e.to_string()))?;
    Ok((value, parse_jmt_proof(&bytes)?))
}

/// Reads the tree library's canonical (borsh) proof encoding into
/// [`AccountProof`], computing each sibling's hash.
fn parse_jmt_proof(bytes: &[u8]) -> Result<AccountProof, CommitmentError> {
    let bad = || CommitmentError("tree proof encoding is not as expected".into());
    let mut r = bytes;
    let mut take = |n: usize| -> Result<&[u8], CommitmentError> {
        let (head, tail) = r.split_at_checked(n).ok_or_else(bad)?;
        r = tail;
        Ok(head)
    };
    let hash32 =
        |b: &[u8]| -> Result<[u8; 32], CommitmentError> { b.try_into().map_err(|_| bad()) };
    let leaf = match take(1)?.first() {
        Some(0) => None,
        Some(1) => Some(ProofLeaf {
            key_hash: Hash(hash32(take(32)?)?),
            value_hash: Hash(hash32(take(32)?)?),
        }),
        _ => return Err(bad()),
    };
    let count = u32::from_le_bytes(take(4)?.try_into().map_err(|_| bad())?);
    let mut siblings = Vec::with_capacity(usize::try_from(count.min(256)).unwrap_or(256));
    for _ in 0..count {
        let h = match take(1)?.first() {
            Some(0) => EMPTY_SUBTREE,
            Some(1) => {
                let l = hash32(take(32)?)?;
                let rr = hash32(take(32)?)?;
                internal_hash(&l, &rr)
            }
            Some(2) => {
                let k = hash32(take(32)?)?;
                let v = hash32(take(32)?)?;
                leaf_hash(&k, &v)
            }
            _ => return Err(bad()),
        };
        siblings.push(Hash(h));
    }
    Ok(AccountProof { leaf, siblings })
}

fn leaf_hash(key_hash: &[u8; 32], value_hash: &[u8; 32]) -> [u8; 32] {
    Hash::of_parts(&[LEAF_DOMAIN, key_hash, value_hash]).0
}

fn internal_hash(left: &[u8; 32], right: &[u8; 32]) -> [u8; 32] {
    Hash::of_parts(&[INTERNAL_DOMAIN, left, right]).0
}

/// Why a proof does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// More siblings than the tree is deep.
    #[error("proof has {0} siblings; at most 256 are possible")]
    TooLong(usize),
    /// The proof's leaf is for another key but an inclusion was claimed.
    #[error("proof is an exclusion proof but the account was claimed present")]
    NotInclusion,
    /// The value hash differs.
    #[error("the account's value does not match the proof's leaf")]
    ValueMismatch,
    /// The proof shows the key present but it was claimed absent.
    #[error("proof shows the account present but it was claimed absent")]
    NotExclusion,
    /// The other leaf does not share the path.
    #[error("the exclusion leaf does not lie on the account's path")]
    LeafOffPath,
    /// The recomputed root differs.
    #[error("recomputed root {computed} differs from the expected state root {expected}")]
    RootMismatch {
        /// Recomputed.
        computed: Hash,
        /// Expected.
        expected: Hash,
    },
}

fn bit(key: &[u8; 32], index: usize) -> bool {
    let byte = key.get(index / 8).copied().unwrap_or(0);
    let shift = 7u32.saturating_sub(u32::try_from(index & 7).unwrap_or(0));
    byte.checked_shr(shift).unwrap_or(0) & 1 == 1
}

fn common_prefix_bits(a: &[u8; 32], b: &[u8; 32]) -> usize {
    (0..256).take_while(|&i| bit(a, i) == bit(b, i)).count()
}

/// Checks that `proof` shows `account` (or its absence, for `None`) under
/// `root`. This is the light-client algorithm of `docs/rpc.md`.
pub fn verify_proof(
    root: &Hash,
    id: &AccountId,
    account: Option<&Account>,
    proof: &AccountProof,
) -> Result<(), ProofError> {
    let value = account.map(account_value);
    verify_key(root, account_key(id), value.as_deref(), proof)
}

/// Checks that `proof` shows `escrow` (or its absence, for `None`) under
/// `root`: the algorithm of [`verify_proof`] on the escrow's key.
pub fn verify_escrow_proof(
    root: &Hash,
    id: &EscrowId,
    escrow: Option<&Escrow>,
    proof: &AccountProof,
) -> Result<(), ProofError> {
    let value = escrow.map(Encode::encode);
    verify_key(root, escrow_key(id), value.as_deref(), proof)
}

fn verify_key(
    root: &Hash,
    key: KeyHash,
    value: Option<&[u8]>,
    proof: &AccountProof,
) -> Result<(), ProofError> {
    let n = proof.siblings.len();
    if n > 256 {
        return Err(ProofError::TooLong(n));
    }
    let key = key.0;
    let mut current = match (value, &proof.leaf) {
        (Some(a), Some(leaf)) => {
            if leaf.key_hash.0 != key {
                return Err(ProofError::NotInclusion);
            }
            let vh = Hash::of(a);
            if vh != leaf.value_hash {
                return Err(ProofError::ValueMismatch);
            }
            leaf_hash(&leaf.key_hash.0, &leaf.value_hash.0)
        }
        (Some(_), None) => return Err(ProofError::NotInclusion),
        (None, Some(leaf)) => {
            if leaf.key_hash.0 == key {
                return Err(ProofError::NotExclusion);
            }
            if common_prefix_bits(&key, &leaf.key_hash.0) < n {
                return Err(ProofError::LeafOffPath);
            }
            leaf_hash(&leaf.key_hash.0, &leaf.value_hash.0)
        }
        (None, None) => EMPTY_SUBTREE,
    };
    // Sibling i (bottom first) sits at depth n - i; the key's bit at index
    // n - 1 - i (most significant bit first) says which side we are on.
    for (i, sibling) in proof.siblings.iter().enumerate() {
        let depth_bit = n.saturating_sub(1).saturating_sub(i);
        current = if bit(&key, depth_bit) {
            internal_hash(&sibling.0, &current)
        } else {
            internal_hash(&current, &sibling.0)
        };
    }
    if current != root.0 {
        return Err(ProofError::RootMismatch {
            computed: Hash(current),
            expected: *root,
        });
    }
    Ok(())
}

/// A whole tree in memory: genesis construction, tests and the in-memory
/// node store.
#[derive(Debug, Default, Clone)]
pub struct MemoryTree {
    nodes: BTreeMap<NodeKey, Node>,
    values: BTreeMap<(KeyHash, Version), Option<OwnedValue>>,
}

impl MemoryTree {
    /// An empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Persists an update.
    pub fn apply(&mut self, batch: &TreeUpdateBatch) {
        for (k, n) in batch.node_batch.nodes() {
            self.nodes.insert(k.clone(), n.clone());
        }
        for ((version, key), v) in batch.node_batch.values() {
            self.values.insert((*key, *version), v.clone());
        }
    }

    /// Forgets every version above `version`.
    pub fn revert_to(&mut self, version: Version) {
        self.nodes.retain(|k, _| k.version() <= version);
        self.values.retain(|(_, v), _| *v <= version);
    }

    /// Number of stored nodes.
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// Number of stored values (every version of every key).
    pub fn value_count(&self) -> usize {
        self.values.len()
    }

    /// Removes a node (state pruning).
    pub fn remove_node(&mut self, key: &NodeKey) -> bool {
        self.nodes.remove(key).is_some()
    }

    /// Removes the newest version of `key` at or below `max_version`
    /// (state pruning); returns whether there was one.
    pub fn remove_value_at_or_before(&mut self, key: KeyHash, max_version: Version) -> bool {
        let found = self
            .values
            .range((key, 0)..=(key, max_version))
            .next_back()
            .map(|(k, _)| *k);
        match found {
            Some(k) => self.values.remove(&k).is_some(),
            None => false,
        }
    }
}

impl TreeReader for MemoryTree {
    fn get_node_option(&self, node_key: &NodeKey) -> anyhow::Result<Option<Node>> {
        Ok(self.nodes.get(node_key).cloned())
    }

    fn get_value_option(
        &self,
        max_version: Version,
        key_hash: KeyHash,
    ) -> anyhow::Result<Option<OwnedValue>> {
        Ok(self
            .values
            .range((key_hash, 0)..=(key_hash, max_version))
            .next_back()
            .and_then(|(_, v)| v.clone()))
    }

    fn get_rightmost_leaf(&self) -> anyhow::Result<Option<(NodeKey, LeafNode)>> {
        let mut best: Option<(NodeKey, LeafNode)> = None;
        for (k, n) in &self.nodes {
            if let Node::Leaf(leaf) = n
                && best
                    .as_ref()
                    .is_none_or(|(_, b)| leaf.key_hash() > b.key_hash())
            {
                best = Some((k.clone(), leaf.clone()));
            }
        }
        Ok(best)
    }
}
