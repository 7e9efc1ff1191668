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

use crate::primitives::{AccountId, Balance, BlockNumber, Hash, Signature};
use parity_scale_codec::{Decode, Encode};
use sha2::{Digest, Sha256};

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

/// The declared schedule of an escrow.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EscrowTerms {
    /// Key that signs tickets (may differ from the funder: a hot key).
    pub signer: AccountId,
    /// Face value β paid per winning ticket.
    #[serde(with = "crate::serde_balance")]
    pub face_value: Balance,
    /// Tickets per round, n: valid numbers are `0..n`.
    pub tickets_per_round: u32,
    /// Winners per round, w ≤ n.
    pub winners_per_round: u32,
    /// Round length L in blocks: round r covers blocks `[r·L, (r+1)·L)`.
    pub round_length: u32,
    /// First round of the escrow.
    pub first_round: u64,
    /// Last round of the escrow (inclusive).
    pub last_round: u64,
    /// Blocks between a round's last block and its draw block.
    pub draw_delay: u32,
    /// Blocks after the draw block during which winners may claim.
    pub claim_window: u32,
}

/// Why escrow terms or a MicroCash call are invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MicrocashError {
    /// Terms out of range.
    #[error("invalid escrow terms: {0}")]
    BadTerms(String),
    /// Arithmetic overflow in the schedule or amounts.
    #[error("escrow amounts or heights overflow: {0}")]
    Overflow(&'static str),
    /// No such escrow.
    #[error("escrow {0} does not exist (never opened, or already closed)")]
    UnknownEscrow(EscrowId),
    /// An escrow with this id exists.
    #[error("escrow {0} already exists")]
    EscrowExists(EscrowId),
    /// The payment deposit does not cover every possible winner.
    #[error(
        "payment deposit {deposit} does not cover every possible winner: w·β·rounds = {required}; deposit at least that"
    )]
    PaymentTooSmall {
        /// Offered.
        deposit: Balance,
        /// Needed.
        required: Balance,
    },
    /// The first round has already begun.
    #[error(
        "the escrow's first round {first_round} starts at block {starts}, but this block is #{height}; choose a later first round"
    )]
    RoundInPast {
        /// First round.
        first_round: u64,
        /// Its first block.
        starts: BlockNumber,
        /// The including block.
        height: BlockNumber,
    },
    /// Only the funder may do this.
    #[error("only the escrow's funder {funder} may {action}")]
    NotFunder {
        /// The funder.
        funder: AccountId,
        /// What was attempted.
        action: &'static str,
    },
    /// Funds are still locked.
    #[error(
        "escrow {escrow} is locked until block #{unlock} (the last round's claim window); this block is #{height}"
    )]
    Locked {
        /// The escrow.
        escrow: EscrowId,
        /// First block at which it may be closed.
        unlock: BlockNumber,
        /// The including block.
        height: BlockNumber,
    },
    /// Too late to top up.
    #[error("escrow {0} can no longer be topped up: its last round has begun")]
    TopUpTooLate(EscrowId),
    /// Too late for any top-up.
    #[error(
        "escrow {0} has unlocked (every claim window closed); close it instead of topping it up"
    )]
    Unlocked(EscrowId),
    /// The penalty deposit is held after the payment was returned.
    #[error(
        "escrow {escrow} returned its payment deposit; its penalty deposit stays locked until block #{release} (a grace period for late duplicate proofs), this block is #{height}; close it again then"
    )]
    PenaltyHeld {
        /// The escrow.
        escrow: EscrowId,
        /// First block at which the penalty is returned.
        release: BlockNumber,
        /// The including block.
        height: BlockNumber,
    },
    /// Penalty top-up after a penalty was taken.
    #[error(
        "escrow {0} has already been penalised for duplicate tickets; a new penalty deposit could never be forfeited, so it is refused"
    )]
    PenaltyAfterPenalised(EscrowId),
    /// Nothing to top up.
    #[error("a top-up must add rounds or penalty deposit")]
    EmptyTopUp,
    /// Ticket number out of range.
    #[error("ticket number {number} is out of range: the escrow issues numbers 0..{n}")]
    NumberOutOfRange {
        /// The number.
        number: u32,
        /// Tickets per round.
        n: u32,
    },
    /// Round outside the escrow.
    #[error("round {round} is outside the escrow's rounds {first}..={last}")]
    RoundOutOfRange {
        /// The round.
        round: u64,
        /// First round.
        first: u64,
        /// Last round.
        last: u64,
    },
    /// The round is not drawn yet.
    #[error(
        "round {round} is drawn at block #{draw}; a claim is valid from block #{opens}, this block is #{height}"
    )]
    NotDrawn {
        /// The round.
        round: u64,
        /// Its draw height.
        draw: BlockNumber,
        /// First block in which a claim is valid.
        opens: BlockNumber,
        /// The including block.
        height: BlockNumber,
    },
    /// The claim window has closed.
    #[error("the claim window of round {round} closed at block #{closed}; this block is #{height}")]
    WindowClosed {
        /// The round.
        round: u64,
        /// Last block in which a claim was valid.
        closed: BlockNumber,
        /// The including block.
        height: BlockNumber,
    },
    /// Not a winning number.
    #[error("ticket number {number} did not win round {round}")]
    NotAWinner {
        /// The round.
        round: u64,
        /// The number.
        number: u32,
    },
    /// The claimant is not the ticket's cache.
    #[error("the ticket pays cache {cache}, not the claimant {claimant}")]
    WrongClaimant {
        /// The ticket's cache.
        cache: AccountId,
        /// The transaction signer.
        claimant: AccountId,
    },
    /// The preimage does not open the commitment.
    #[error("the preimage does not match the ticket's puzzle-secret commitment")]
    WrongPreimage,
    /// Signature or proof invalid.
    #[error("ticket signature invalid: {0}")]
    BadTicket(#[from] TicketError),
    /// Claimed before.
    #[error("ticket {number} of round {round} of escrow {escrow} has already been claimed")]
    AlreadyClaimed {
        /// The escrow.
        escrow: EscrowId,
        /// The round.
        round: u64,
        /// The number.
        number: u32,
    },
    /// The same ticket twice in one claim.
    #[error("the claim names ticket {number} of round {round} twice")]
    DuplicateInClaim {
        /// The round.
        round: u64,
        /// The number.
        number: u32,
    },
    /// Claim count out of range.
    #[error("a claim transaction carries 1 to {MAX_CLAIMS_PER_TRANSACTION} tickets, not {0}")]
    ClaimCount(usize),
    /// Not a duplicate.
    #[error("not a duplicate: {0}")]
    NotDuplicate(&'static str),
    /// The penalty was already taken.
    #[error("escrow {0} has already been penalised for duplicate tickets")]
    AlreadyPenalised(EscrowId),
    /// The reporter of a duplicate is neither ticket's cache.
    #[error(
        "the duplicate proof is sent by {reporter}, but only a cache named in one of the two tickets may report it (the reward goes to the sender, so anyone else could copy a victim's proof from the pool); pass the tickets to that cache"
    )]
    ReporterNotNamed {
        /// The transaction signer.
        reporter: AccountId,
    },
    /// The genesis hash is not available to the execution context.
    #[error("the genesis hash (canonical block #0) is unavailable; escrow ids cannot be derived")]
    NoGenesis,
    /// The draw block is unknown (a node bug or corrupt chain data).
    #[error("the canonical block #{0} needed for the draw is unavailable")]
    MissingDrawBlock(BlockNumber),
}

impl EscrowTerms {
    /// Checks ranges and that every derived height fits.
    pub fn validate(&self) -> Result<(), MicrocashError> {
        let bad = |s: &str| Err(MicrocashError::BadTerms(s.to_string()));
        if self.tickets_per_round == 0 {
            return bad("ticketsPerRound must be at least 1");
        }
        if self.winners_per_round == 0 || self.winners_per_round > self.tickets_per_round {
            return bad("winnersPerRound must be between 1 and ticketsPerRound");
        }
        if self.winners_per_round > MAX_WINNERS_PER_ROUND {
            return Err(MicrocashError::BadTerms(format!(
                "winnersPerRound must be at most {MAX_WINNERS_PER_ROUND}; raise the face value instead"
            )));
        }
        if self.face_value == 0 {
            return bad("faceValue must be positive");
        }
        for (name, v) in [
            ("roundLength", self.round_length),
            ("drawDelay", self.draw_delay),
            ("claimWindow", self.claim_window),
        ] {
            if v > MAX_WINDOW_BLOCKS {
                return Err(MicrocashError::BadTerms(format!(
                    "{name} must be at most {MAX_WINDOW_BLOCKS} blocks"
                )));
            }
        }
        if self.round_length == 0 {
            return bad("roundLength must be at least 1 block");
        }
        if self.draw_delay == 0 {
            return bad(
                "drawDelay must be at least 1 block, so the draw block is mined after the round closes",
            );
        }
        if self.claim_window == 0 {
            return bad("claimWindow must be at least 1 block");
        }
        if self.last_round < self.first_round {
            return bad("lastRound must not precede firstRound");
        }
        if self.rounds()? > MAX_ROUNDS {
            return Err(MicrocashError::BadTerms(format!(
                "an escrow spans at most {MAX_ROUNDS} rounds; top it up later instead"
            )));
        }
        self.penalty_release_height()?;
        self.payment_required(self.rounds()?)?;
        Ok(())
    }

    /// Number of rounds.
    pub fn rounds(&self) -> Result<u64, MicrocashError> {
        self.last_round
            .checked_sub(self.first_round)
            .and_then(|d| d.checked_add(1))
            .ok_or(MicrocashError::Overflow("round count"))
    }

    /// First block of round `r`.
    pub fn round_start(&self, r: u64) -> Result<BlockNumber, MicrocashError> {
        r.checked_mul(u64::from(self.round_length))
            .ok_or(MicrocashError::Overflow("round start"))
    }

    /// Height of the block whose hash seeds round `r`'s draw.
    pub fn draw_height(&self, r: u64) -> Result<BlockNumber, MicrocashError> {
        r.checked_add(1)
            .and_then(|n| n.checked_mul(u64::from(self.round_length)))
            .and_then(|end| end.checked_sub(1))
            .and_then(|last| last.checked_add(u64::from(self.draw_delay)))
            .ok_or(MicrocashError::Overflow("draw height"))
    }

    /// Last block in which round `r` may be claimed.
    pub fn claim_deadline(&self, r: u64) -> Result<BlockNumber, MicrocashError> {
        self.draw_height(r)?
            .checked_add(u64::from(self.claim_window))
            .ok_or(MicrocashError::Overflow("claim deadline"))
    }

    /// First block in which the escrow may be closed: after the last
    /// round's claim window.
    pub fn unlock_height(&self) -> Result<BlockNumber, MicrocashError> {
        self.claim_deadline(self.last_round)?
            .checked_add(1)
            .ok_or(MicrocashError::Overflow("unlock height"))
    }

    /// First block at which the penalty deposit is returned: one claim
    /// window after [`unlock_height`](Self::unlock_height), so a duplicate
    /// that surfaces late (in the last claims, or from a cache that was
    /// offline) is still punished.
    pub fn penalty_release_height(&self) -> Result<BlockNumber, MicrocashError> {
        self.unlock_height()?
            .checked_add(u64::from(self.claim_window))
            .ok_or(MicrocashError::Overflow("penalty release height"))
    }

    /// `w·β·rounds`: the payment deposit that covers every winner.
    pub fn payment_required(&self, rounds: u64) -> Result<Balance, MicrocashError> {
        self.face_value
            .checked_mul(Balance::from(self.winners_per_round))
            .and_then(|per_round| per_round.checked_mul(Balance::from(rounds)))
            .ok_or(MicrocashError::Overflow(
                "w·β·rounds exceeds the largest balance",
            ))
    }

    /// The smallest penalty deposit that makes duplicating tickets not pay
    /// (`docs/microcash.md` §9): a publisher that duplicates winners after
    /// the draw takes back up to w·β per round, for every round whose window
    /// is open (⌈c/L⌉) and every round issued but not yet drawn (⌈d/L⌉ + 1),
    /// and can report itself to recover the reporter share s; so
    /// `penalty·(1 − s) ≥ w·β·(⌈c/L⌉ + ⌈d/L⌉ + 1)`.
    pub fn safe_penalty(&self, reporter_share_percent: u8) -> Result<Balance, MicrocashError> {
        let keep = 100u8
            .checked_sub(reporter_share_percent)
            .filter(|k| *k > 0)
            .ok_or(MicrocashError::BadTerms(
                "with a 100% reporter share a penalty never deters (the publisher reports itself)"
                    .to_string(),
            ))?;
        let l = u64::from(self.round_length.max(1));
        let rounds = u64::from(self.claim_window)
            .div_ceil(l)
            .checked_add(u64::from(self.draw_delay).div_ceil(l))
            .and_then(|r| r.checked_add(1))
            .ok_or(MicrocashError::Overflow("rounds in flight"))?;
        let at_risk = self.payment_required(rounds)?;
        at_risk
            .checked_mul(100)
            .map(|x| x.div_ceil(Balance::from(keep)))
            .ok_or(MicrocashError::Overflow("safe penalty"))
    }

    /// Checks that `round` and `number` are within the escrow.
    pub fn check_slot(&self, round: u64, number: u32) -> Result<(), MicrocashError> {
        if number >= self.tickets_per_round {
            return Err(MicrocashError::NumberOutOfRange {
                number,
                n: self.tickets_per_round,
            });
        }
        if round < self.first_round || round > self.last_round {
            return Err(MicrocashError::RoundOutOfRange {
                round,
                first: self.first_round,
                last: self.last_round,
            });
        }
        Ok(())
    }
}

/// The claimed numbers of one round.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, serde::Serialize, serde::Deserialize)]
pub struct RoundClaims {
    /// The round.
    pub round: u64,
    /// Claimed numbers, ascending.
    pub numbers: Vec<u32>,
}

/// An escrow's on-chain record.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Escrow {
    /// The account that funded it and receives the remainder at close.
    pub funder: AccountId,
    /// The declared schedule.
    pub terms: EscrowTerms,
    /// Remaining payment deposit.
    #[serde(with = "crate::serde_balance")]
    pub payment: Balance,
    /// Remaining penalty deposit.
    #[serde(with = "crate::serde_balance")]
    pub penalty: Balance,
    /// Whether a duplicate proof has taken the penalty.
    pub penalised: bool,
    /// Claimed numbers of rounds whose window may still be open, ascending by round.
    pub claimed: Vec<RoundClaims>,
    /// Whether the funder closed it: the payment deposit was returned and
    /// the record stays only to hold the penalty through its grace period.
    pub closed: bool,
}

impl Escrow {
    /// Whether `(round, number)` has been claimed.
    pub fn is_claimed(&self, round: u64, number: u32) -> bool {
        self.claimed
            .iter()
            .find(|c| c.round == round)
            .is_some_and(|c| c.numbers.binary_search(&number).is_ok())
    }

    /// Records a claim (the caller checked it is new).
    pub fn record_claim(&mut self, round: u64, number: u32) {
        match self.claimed.binary_search_by_key(&round, |c| c.round) {
            Ok(i) => {
                if let Some(c) = self.claimed.get_mut(i)
                    && let Err(j) = c.numbers.binary_search(&number)
                {
                    c.numbers.insert(j, number);
                }
            }
            Err(i) => self.claimed.insert(
                i,
                RoundClaims {
                    round,
                    numbers: vec![number],
                },
            ),
        }
    }

    /// Drops claim records of rounds whose window closed before `height`.
    pub fn prune(&mut self, height: BlockNumber) {
        let terms = &self.terms;
        self.claimed
            .retain(|c| terms.claim_deadline(c.round).is_ok_and(|d| d >= height));
    }
}

/// The escrow id of an `EscrowOpen` sent by `funder` with `nonce` on the
/// chain with `genesis`: unique, because a (signer, nonce) pair is included
/// at most once per chain, and different on every chain, so tickets (which
/// sign the escrow id) never replay on another network even when a funder
/// reuses its key there.
pub fn escrow_id(genesis: &Hash, funder: &AccountId, nonce: u64) -> EscrowId {
    Hash::of_parts(&[
        ESCROW_ID_DOMAIN,
        genesis.as_bytes(),
        funder.as_bytes(),
        &nonce.to_le_bytes(),
    ])
}

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

/// The `w` distinct winning numbers in `[0, n)` of `round`, drawn from
/// `seed` (the draw block's hash), in draw order.
pub fn winners(seed: &Hash, escrow: &EscrowId, round: u64, n: u32, w: u32) -> Vec<u32> {
    let want = usize::try_from(w.min(n)).unwrap_or(0);
    let mut out: Vec<u32> = Vec::with_capacity(want);
    if want == 0 {
        return out;
    }
    let n64 = u64::from(n);
    // Largest multiple of n that fits in 2^64; words at or above it are rejected.
    let excess = u64::MAX
        .checked_rem(n64)
        .and_then(|r| r.wrapping_add(1).checked_rem(n64))
        .unwrap_or(0);
    let zone = u64::MAX.saturating_sub(excess);
    let mut seen = std::collections::BTreeSet::new();
    let mut counter: u64 = 0;
    while out.len() < want {
        let digest: [u8; 32] = Sha256::new()
            .chain_update(LOTTERY_DOMAIN)
            .chain_update(seed.as_bytes())
            .chain_update(escrow.as_bytes())
            .chain_update(round.to_le_bytes())
            .chain_update(counter.to_le_bytes())
            .finalize()
            .into();
        counter = counter.wrapping_add(1);
        for word in digest.chunks_exact(8) {
            let mut b = [0u8; 8];
            b.copy_from_slice(word);
            let v = u64::from_le_bytes(b);
            if v > zone {
                continue;
            }
            let number = v
                .checked_rem(n64)
                .and_then(|x| u32::try_from(x).ok())
                .unwrap_or(0);
            if seen.insert(number) {
                out.push(number);
                if out.len() == want {
                    break;
                }
            }
        }
    }
    out
}
