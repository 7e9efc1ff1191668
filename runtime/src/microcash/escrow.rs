//! Escrow terms, the on-chain escrow record and its errors.

use super::*;
use crate::primitives::{AccountId, Balance, BlockNumber};
use parity_scale_codec::{Decode, Encode};

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
