//! Blocks and headers.
//!
//! The header hash is SHA-256 of the SCALE-encoded header. The nonce is the
//! last field, so a miner hashes the fixed prefix once and only the final
//! eight bytes per attempt.

use crate::consensus::Target;
use crate::primitives::{AccountId, BlockNumber, Hash, Timestamp};
use crate::transaction::SignedTransaction;
use parity_scale_codec::{Decode, DecodeAll, Encode};
use sha2::{Digest, Sha256};

/// A block header.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Header {
    /// Hash of the parent header (for genesis: the consensus-parameter commitment).
    pub parent_hash: Hash,
    /// Height; the parent's plus one.
    pub number: BlockNumber,
    /// Milliseconds since the Unix epoch.
    pub timestamp: Timestamp,
    /// RFC 6962 Merkle root over the transaction hashes, in block order.
    pub transactions_root: Hash,
    /// Root of the account state tree after this block.
    pub state_root: Hash,
    /// Proof-of-work target: the header hash, read as a big-endian number, must not exceed it.
    pub target: Target,
    /// Receives the block reward and the fees.
    pub miner: AccountId,
    /// Proof-of-work nonce.
    pub nonce: u64,
}

/// Encoded size of a header (fixed).
pub const HEADER_BYTES: usize = 32 + 8 + 8 + 32 + 32 + 32 + 32 + 8;

impl Header {
    /// The block hash.
    pub fn hash(&self) -> Hash {
        Hash::of(&self.encode())
    }

    /// SHA-256 state after absorbing everything but the nonce; see
    /// [`Header::hash_with_nonce`].
    pub fn mining_prefix(&self) -> Sha256 {
        let encoded = self.encode();
        let prefix = encoded.get(..HEADER_BYTES.saturating_sub(8)).unwrap_or(&[]);
        let mut h = Sha256::new();
        h.update(prefix);
        h
    }

    /// The hash this header would have with `nonce`, from a precomputed prefix.
    pub fn hash_with_nonce(prefix: &Sha256, nonce: u64) -> Hash {
        let mut h = prefix.clone();
        h.update(nonce.to_le_bytes());
        Hash(h.finalize().into())
    }

    /// Whether the header hash meets its own target.
    pub fn meets_target(&self) -> bool {
        self.target.is_met_by(&self.hash())
    }

    /// Decodes exactly one header.
    pub fn decode_exact(bytes: &[u8]) -> Result<Header, parity_scale_codec::Error> {
        Header::decode_all(&mut &bytes[..])
    }
}

/// A block: a header and its transactions.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, serde::Serialize, serde::Deserialize)]
pub struct Block {
    /// The header.
    pub header: Header,
    /// The transactions, applied in order.
    pub transactions: Vec<SignedTransaction>,
}

impl Block {
    /// The block hash (its header's hash).
    pub fn hash(&self) -> Hash {
        self.header.hash()
    }
}

/// RFC 6962 Merkle root over transaction hashes (leaf data = the 32-byte
/// transaction hash; leaf hash = SHA-256(0x00 ‖ leaf), node hash =
/// SHA-256(0x01 ‖ left ‖ right); the empty tree's root is SHA-256("")).
pub fn transactions_root(tx_hashes: &[Hash]) -> Hash {
    let mut tree = ct_merkle::mem_backed_tree::MemoryBackedTree::<Sha256, [u8; 32]>::new();
    for h in tx_hashes {
        tree.push(h.0);
    }
    let root = tree.root();
    Hash((*root.as_bytes()).into())
}
