//! MicroCash: escrows, concurrent lottery tickets, the draw, claims and
//! duplicate-ticket penalties.
//!
//! # Model
//!
//! A publisher (the *funder*) opens an escrow with [`EscrowTerms`]: a ticket
//! signer key (which may be a hot key distinct from the funder), a face
//! value β, `n` tickets per round of which exactly `w` win, the round
//! length in blocks, the first and last round, a draw delay and a claim
//! window. Rounds are global per escrow: round `r` covers blocks
//! `[r·L, (r+1)·L)`.
//!
//! - The **payment deposit** must cover every possible winner:
//!   `w·β` per round for every round. Since exactly `w` tickets win per
//!   round, honest caches are always paid in full and no
//!   over-collateralisation for concurrency is needed.
//! - The **penalty deposit** is forfeited by a [`DuplicateTicketProof`]
//!   (two differing tickets signed for the same escrow, round and number).
//!
//! [`DuplicateTicketProof`]: crate::transaction::Call::DuplicateTicketProof
//!
//! # Lottery
//!
//! The draw seed of round `r` is the hash of the canonical block at
//! `draw_height(r) = (r+1)·L − 1 + draw_delay`. The `w` winners are the first
//! `w` distinct values of the stream `SHA-256(LOTTERY_DOMAIN ‖ seed ‖ escrow
//! ‖ r ‖ counter)`, each hash read as four 64-bit little-endian words and
//! mapped into `[0, n)` by rejection sampling (a word at or above the
//! largest multiple of `n` is discarded), so every number is equally likely.
//! Anyone can recompute them from chain data.
//!
//! # Claims
//!
//! A claim of round `r` is valid in a block at height `H` when
//! `draw_height(r) < H ≤ draw_height(r) + claim_window`: the draw block is
//! an ancestor, and the window is open. Funds stay locked until every
//! round's window has closed ([`EscrowTerms::unlock_height`]): that is the
//! defence against the funder draining the deposit before the claims.
//!
//! # Closing and the penalty's grace period
//!
//! `EscrowClose` from unlock returns the payment deposit. The penalty
//! deposit stays locked for one more claim window
//! ([`EscrowTerms::penalty_release_height`]) so that a duplicate which
//! surfaces late is still punished: the record stays (marked `closed`, no
//! claims possible) and a duplicate proof against it still forfeits the
//! penalty. A second close from the release height returns the penalty and
//! deletes the record. A close after the release height does both at once.
//!
//! # Who may report a duplicate
//!
//! The reporter's share goes to the sender of the proof, and the sender
//! must be a cache named in one of the two tickets. Anyone else could copy
//! a victim's proof from the transaction pool and take its reward.
//!
//! # Bounded replay state
//!
//! Claimed numbers are kept in the escrow record per round, and every write
//! of the record drops the rounds whose claim window has closed (a claim for
//! such a round is rejected by the window rule, so its record is useless).
//! Since every claim writes the record, the record holds at most the rounds
//! whose window was open at the last claim: a bound set by the terms, not
//! by history. Closing the escrow deletes the record.

use crate::primitives::Hash;

mod escrow;
mod lottery;
mod ticket;

pub use escrow::{Escrow, EscrowTerms, MicrocashError, RoundClaims, escrow_id};
pub use lottery::winners;
pub use ticket::{
    BatchProof, SignedTicket, Ticket, TicketAuth, TicketError, batch_root, proof_path,
    secret_commitment, sign_ticket, sign_tickets_batch,
};

/// An escrow's identifier.
pub type EscrowId = Hash;

/// Domain of ticket hashes.
pub const TICKET_DOMAIN: &[u8] = b"cachecash/ticket/v1";
/// Domain of single-ticket signatures.
pub const TICKET_SIGNATURE_DOMAIN: &[u8] = b"cachecash/ticket-signature/v1";
/// Domain of batch-root signatures.
pub const TICKET_BATCH_DOMAIN: &[u8] = b"cachecash/ticket-batch/v1";
/// Domain of puzzle-secret commitments.
pub const SECRET_DOMAIN: &[u8] = b"cachecash/puzzle-secret/v1";
/// Domain of the lottery stream.
pub const LOTTERY_DOMAIN: &[u8] = b"cachecash/lottery/v1";
/// Domain of escrow ids.
pub const ESCROW_ID_DOMAIN: &[u8] = b"cachecash/escrow-id/v1";

/// Most winners per round (bounds the draw's cost inside block execution).
pub const MAX_WINNERS_PER_ROUND: u32 = 1024;
/// Most rounds one escrow may span.
pub const MAX_ROUNDS: u64 = 1 << 20;
/// Longest round, draw delay or claim window, in blocks.
pub const MAX_WINDOW_BLOCKS: u32 = 1 << 20;
/// Deepest batch inclusion proof (2^32 tickets per batch).
pub const MAX_PROOF_DEPTH: usize = 32;
/// Most tickets in one claim transaction.
pub const MAX_CLAIMS_PER_TRANSACTION: usize = 32;
