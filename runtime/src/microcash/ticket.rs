//! Tickets, their single and batch signatures, and batch inclusion proofs.

use super::*;
use crate::primitives::{AccountId, Signature};
use parity_scale_codec::{Decode, Encode};
use sha2::{Digest, Sha256};

/// A lottery ticket. Canonical SCALE fields, in this order.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Ticket {
    /// The escrow that pays.
    pub escrow: EscrowId,
    /// The round.
    pub round: u64,
    /// The ticket number, `< n`, unique per round.
    pub number: u32,
    /// The cache paid if it wins.
    pub cache: AccountId,
    /// The client's key.
    pub client: AccountId,
    /// The content served (chunk id).
    pub chunk: Hash,
    /// [`secret_commitment`] of the puzzle secret: the claim reveals it.
    pub secret_hash: Hash,
}

impl Ticket {
    /// Domain-separated hash: `SHA-256(TICKET_DOMAIN ‖ SCALE(ticket))`.
    pub fn hash(&self) -> Hash {
        Hash::of_parts(&[TICKET_DOMAIN, &self.encode()])
    }
}

/// The commitment a ticket holds to the puzzle secret.
pub fn secret_commitment(secret: &[u8; 32]) -> Hash {
    Hash::of_parts(&[SECRET_DOMAIN, secret])
}

/// A batch inclusion proof: the ticket's index, the batch size, and the
/// RFC 6962 audit path (sibling hashes, leaf to root).
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchProof {
    /// Index of the ticket in the batch.
    pub index: u32,
    /// Tickets in the batch.
    pub size: u32,
    /// Sibling hashes from the leaf up.
    pub path: Vec<Hash>,
}

/// How a ticket is authenticated by the escrow's signer.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum TicketAuth {
    /// A signature over `TICKET_SIGNATURE_DOMAIN ‖ ticket hash`.
    #[codec(index = 0)]
    Single(Signature),
    /// A signature over `TICKET_BATCH_DOMAIN ‖ root ‖ LE64(size)`, where the
    /// root is the RFC 6962 Merkle root of the batch's ticket hashes.
    #[codec(index = 1)]
    Batch {
        /// The root signature.
        signature: Signature,
        /// This ticket's inclusion proof.
        proof: BatchProof,
    },
}

/// A ticket with its authentication.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, serde::Serialize, serde::Deserialize)]
pub struct SignedTicket {
    /// The ticket.
    pub ticket: Ticket,
    /// Signature or batch proof.
    pub auth: TicketAuth,
}

/// Why a ticket's authentication fails.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TicketError {
    /// The signer key is unusable.
    #[error("the escrow's signer {0} is not a valid ed25519 key")]
    BadSigner(AccountId),
    /// Signature check failed.
    #[error("the signature does not verify under the escrow's signer {0}")]
    BadSignature(AccountId),
    /// Proof malformed or not matching.
    #[error("the batch inclusion proof is invalid: {0}")]
    BadProof(&'static str),
}

fn single_payload(ticket_hash: &Hash) -> Vec<u8> {
    [TICKET_SIGNATURE_DOMAIN, ticket_hash.as_bytes()].concat()
}

fn batch_payload(root: &Hash, size: u32) -> Vec<u8> {
    [
        TICKET_BATCH_DOMAIN,
        root.as_bytes(),
        &u64::from(size).to_le_bytes(),
    ]
    .concat()
}

/// Signs one ticket.
pub fn sign_ticket(key: &ed25519_dalek::SigningKey, ticket: Ticket) -> SignedTicket {
    use ed25519_dalek::Signer;
    let sig = key.sign(&single_payload(&ticket.hash()));
    SignedTicket {
        ticket,
        auth: TicketAuth::Single(Signature(sig.to_bytes())),
    }
}

/// Signs a batch of tickets with one signature over their Merkle root;
/// each ticket gets its inclusion proof. Returns nothing for an empty
/// batch, and refuses batches of 2^32 tickets or more (none are returned).
pub fn sign_tickets_batch(
    key: &ed25519_dalek::SigningKey,
    tickets: Vec<Ticket>,
) -> Vec<SignedTicket> {
    use ed25519_dalek::Signer;
    let Ok(size) = u32::try_from(tickets.len()) else {
        return Vec::new();
    };
    if size == 0 {
        return Vec::new();
    }
    let mut tree = ct_merkle::mem_backed_tree::MemoryBackedTree::<Sha256, [u8; 32]>::new();
    for t in &tickets {
        tree.push(t.hash().0);
    }
    let root = Hash((*tree.root().as_bytes()).into());
    let signature = Signature(key.sign(&batch_payload(&root, size)).to_bytes());
    tickets
        .into_iter()
        .enumerate()
        .map(|(i, ticket)| {
            let path = proof_path(tree.prove_inclusion(i).as_bytes());
            SignedTicket {
                ticket,
                auth: TicketAuth::Batch {
                    signature,
                    proof: BatchProof {
                        index: u32::try_from(i).unwrap_or(u32::MAX),
                        size,
                        path,
                    },
                },
            }
        })
        .collect()
}

/// Splits an RFC 6962 audit path (concatenated 32-byte hashes, as
/// `ct_merkle::InclusionProof::as_bytes` gives it) into hashes.
pub fn proof_path(bytes: &[u8]) -> Vec<Hash> {
    bytes
        .chunks_exact(32)
        .map(|c| {
            let mut h = [0u8; 32];
            h.copy_from_slice(c);
            Hash(h)
        })
        .collect()
}

/// Recomputes the batch root from a leaf and its proof (RFC 6962 §2.1.1).
pub fn batch_root(ticket_hash: &Hash, proof: &BatchProof) -> Result<Hash, TicketError> {
    if proof.index >= proof.size {
        return Err(TicketError::BadProof("index is not below the batch size"));
    }
    if proof.path.len() > MAX_PROOF_DEPTH {
        return Err(TicketError::BadProof("path is longer than any batch needs"));
    }
    let leaf = |d: &[u8]| -> [u8; 32] {
        let mut h = Sha256::new();
        h.update([0u8]);
        h.update(d);
        h.finalize().into()
    };
    let node = |l: &[u8; 32], r: &[u8; 32]| -> [u8; 32] {
        let mut h = Sha256::new();
        h.update([1u8]);
        h.update(l);
        h.update(r);
        h.finalize().into()
    };
    // RFC 9162 §2.1.3.2 verification algorithm.
    let mut fnode = u64::from(proof.index);
    let mut snode = u64::from(proof.size).saturating_sub(1);
    let mut r = leaf(ticket_hash.as_bytes());
    for p in &proof.path {
        if snode == 0 {
            return Err(TicketError::BadProof("path is longer than the batch needs"));
        }
        if fnode & 1 == 1 || fnode == snode {
            r = node(&p.0, &r);
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            r = node(&r, &p.0);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode != 0 {
        return Err(TicketError::BadProof(
            "path is shorter than the batch needs",
        ));
    }
    Ok(Hash(r))
}

impl SignedTicket {
    /// What the signer signed and the signature: the ticket's own payload,
    /// or the batch root its inclusion proof leads to.
    pub fn signed_payload(&self) -> Result<(Vec<u8>, [u8; 64]), TicketError> {
        let h = self.ticket.hash();
        Ok(match &self.auth {
            TicketAuth::Single(sig) => (single_payload(&h), sig.0),
            TicketAuth::Batch { signature, proof } => {
                let root = batch_root(&h, proof)?;
                (batch_payload(&root, proof.size), signature.0)
            }
        })
    }

    /// Verifies the signature or batch proof under `signer` (the consensus
    /// rule, [`crate::signature`]).
    pub fn verify(&self, signer: &AccountId) -> Result<(), TicketError> {
        signer
            .verifying_key()
            .map_err(|_| TicketError::BadSigner(*signer))?;
        let (payload, sig) = self.signed_payload()?;
        crate::signature::verify(signer, &payload, &sig)
            .map_err(|_| TicketError::BadSignature(*signer))
    }
}
