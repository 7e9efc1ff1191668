//! Signed transactions.
//!
//! A transaction names its signer, the signer's next nonce, a fee and a
//! [`Call`]. The signature covers [`SIGNING_DOMAIN`] ‖ genesis hash ‖
//! SCALE(transaction), so a transaction signed for one chain never verifies
//! on another, and a signature can never be confused with a signature over
//! any other object of this protocol.
//!
//! [`Call`] is the seam for new functionality: MicroCash escrows and claims
//! are added as new variants with new indices; existing encodings never
//! change.

use crate::microcash::{EscrowId, EscrowTerms, SignedTicket};
use crate::primitives::{AccountId, Balance, Hash, Nonce, Signature};
use parity_scale_codec::{Decode, DecodeAll, Encode};

/// Domain separator of transaction signatures.
pub const SIGNING_DOMAIN: &[u8] = b"cachecash/transaction/v1";

/// Largest encoded transaction accepted anywhere (RPC, mempool, blocks).
/// (A ticket claim carries up to 32 tickets with batch proofs.)
pub const MAX_TRANSACTION_BYTES: usize = 64 * 1024;

/// What a transaction does.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, serde::Serialize, serde::Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Call {
    /// Moves `amount` from the signer to `dest`.
    #[codec(index = 0)]
    Transfer {
        /// Receiving account.
        dest: AccountId,
        /// Amount moved, in the smallest unit.
        #[serde(with = "crate::serde_balance")]
        amount: Balance,
    },
    /// Opens a MicroCash escrow funded by the signer. Its id is
    /// [`crate::microcash::escrow_id`]`(genesis, signer, nonce)`.
    #[codec(index = 1)]
    #[serde(rename_all = "camelCase")]
    EscrowOpen {
        /// The declared schedule.
        terms: EscrowTerms,
        /// Payment deposit: at least w·β per round.
        #[serde(with = "crate::serde_balance")]
        payment: Balance,
        /// Penalty deposit, forfeited on a duplicate-ticket proof.
        #[serde(with = "crate::serde_balance")]
        penalty: Balance,
    },
    /// Adds rounds (paying w·β each) and/or penalty deposit. Funder only,
    /// before the last round begins.
    #[codec(index = 2)]
    #[serde(rename_all = "camelCase")]
    EscrowTopUp {
        /// The escrow.
        escrow: EscrowId,
        /// Rounds appended after the last round.
        extra_rounds: u64,
        /// Added penalty deposit.
        #[serde(with = "crate::serde_balance")]
        penalty: Balance,
    },
    /// Returns what remains to the funder once every claim window closed.
    #[codec(index = 3)]
    EscrowClose {
        /// The escrow.
        escrow: EscrowId,
    },
    /// Claims winning tickets for the signer (each ticket's cache).
    #[codec(index = 4)]
    TicketClaim {
        /// Tickets with the puzzle secrets that open their commitments.
        claims: Vec<TicketClaimItem>,
    },
    /// Proves that an escrow's signer signed two different tickets for the
    /// same round and number; forfeits the penalty deposit once.
    #[codec(index = 5)]
    DuplicateTicketProof {
        /// One ticket.
        first: Box<SignedTicket>,
        /// A different ticket with the same escrow, round and number.
        second: Box<SignedTicket>,
    },
}

/// One claimed ticket.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, serde::Serialize, serde::Deserialize)]
pub struct TicketClaimItem {
    /// The signed ticket.
    pub ticket: SignedTicket,
    /// The puzzle secret whose commitment the ticket holds.
    #[serde(with = "crate::primitives::serde_hex32")]
    pub preimage: [u8; 32],
}

/// The signed part of a transaction.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, serde::Serialize, serde::Deserialize)]
pub struct Transaction {
    /// The paying and signing account.
    pub signer: AccountId,
    /// Must equal the signer's current nonce.
    pub nonce: Nonce,
    /// Paid to the miner of the including block; at least the chain minimum.
    #[serde(with = "crate::serde_balance")]
    pub fee: Balance,
    /// The action.
    pub call: Call,
}

/// Encoded bytes of a signature in a [`SignedTransaction`].
pub const SIGNATURE_BYTES: usize = 64;

impl Transaction {
    /// Encoded bytes of this transaction once signed: what its fee is
    /// priced by ([`crate::ConsensusParams::minimum_fee_for`]). The size
    /// does not depend on the fee's value (it is a fixed-width integer), so
    /// a signer can price a transaction before choosing its fee.
    pub fn signed_size(&self) -> usize {
        self.encoded_size().saturating_add(SIGNATURE_BYTES)
    }

    /// The exact bytes the signer signs on the chain with `genesis`.
    pub fn signing_payload(&self, genesis: &Hash) -> Vec<u8> {
        let mut out = Vec::with_capacity(SIGNING_DOMAIN.len().saturating_add(160));
        out.extend_from_slice(SIGNING_DOMAIN);
        out.extend_from_slice(genesis.as_bytes());
        self.encode_to(&mut out);
        out
    }

    /// Signs the transaction for the chain with `genesis`.
    pub fn sign(self, key: &ed25519_dalek::SigningKey, genesis: &Hash) -> SignedTransaction {
        use ed25519_dalek::Signer;
        let signature = key.sign(&self.signing_payload(genesis));
        SignedTransaction {
            tx: self,
            signature: Signature(signature.to_bytes()),
        }
    }
}

/// A transaction with its signature.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, serde::Serialize, serde::Deserialize)]
pub struct SignedTransaction {
    /// The signed content.
    pub tx: Transaction,
    /// ed25519 signature by `tx.signer` over [`Transaction::signing_payload`].
    pub signature: Signature,
}

/// Why bytes are not a transaction.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransactionDecodeError {
    /// Too large to be a transaction.
    #[error("transaction is {size} bytes; the limit is {limit} bytes")]
    TooLarge {
        /// Size received.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// Not a SCALE-encoded signed transaction.
    #[error(
        "bytes do not decode as a SCALE signed transaction: {0}; encode it with `cachecash` or the documented layout"
    )]
    Undecodable(String),
}

impl SignedTransaction {
    /// The transaction hash: SHA-256 of the SCALE encoding.
    pub fn hash(&self) -> Hash {
        Hash::of(&self.encode())
    }

    /// Decodes exactly one transaction from `bytes`, rejecting oversize input
    /// and trailing bytes.
    pub fn decode_bounded(bytes: &[u8]) -> Result<Self, TransactionDecodeError> {
        if bytes.len() > MAX_TRANSACTION_BYTES {
            return Err(TransactionDecodeError::TooLarge {
                size: bytes.len(),
                limit: MAX_TRANSACTION_BYTES,
            });
        }
        SignedTransaction::decode_all(&mut &bytes[..])
            .map_err(|e| TransactionDecodeError::Undecodable(e.to_string()))
    }

    /// Checks this transaction's signature alone (the consensus rule,
    /// [`crate::signature`]).
    pub fn verify_signature(&self, genesis: &Hash) -> Result<(), crate::error::TxError> {
        self.tx
            .signer
            .verifying_key()
            .map_err(crate::error::TxError::BadSigner)?;
        crate::signature::verify(
            &self.tx.signer,
            &self.tx.signing_payload(genesis),
            &self.signature.0,
        )
        .map_err(|_| crate::error::TxError::BadSignature {
            signer: self.tx.signer,
            genesis: *genesis,
        })
    }
}

/// Verifies the signatures of `txs` in one batch. Under the consensus rule
/// ([`crate::signature`]) a batch passes exactly when every signature does;
/// on failure each is checked alone to name the first offender.
pub fn verify_signatures_batch(
    txs: &[SignedTransaction],
    genesis: &Hash,
) -> Result<(), (usize, crate::error::TxError)> {
    if txs.is_empty() {
        return Ok(());
    }
    for (i, t) in txs.iter().enumerate() {
        t.tx.signer
            .verifying_key()
            .map_err(|e| (i, crate::error::TxError::BadSigner(e)))?;
    }
    let payloads: Vec<Vec<u8>> = txs.iter().map(|t| t.tx.signing_payload(genesis)).collect();
    let items = txs
        .iter()
        .zip(&payloads)
        .map(|(t, p)| (&t.tx.signer, p.as_slice(), &t.signature.0));
    if crate::signature::verify_batch(items) {
        return Ok(());
    }
    for (i, t) in txs.iter().enumerate() {
        t.verify_signature(genesis).map_err(|e| (i, e))?;
    }
    Ok(())
}
