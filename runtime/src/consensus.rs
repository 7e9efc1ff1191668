//! Consensus parameters, proof-of-work targets and difficulty adjustment.
//!
//! # Difficulty: ASERT
//!
//! The target retargets every block with ASERT (absolutely scheduled
//! exponentially rising targets, the "aserti3-2d" algorithm deployed on
//! Bitcoin Cash in November 2020). For a block whose parent is at height
//! `h ≥ 1` with timestamp `t`, and the anchor — block 1, the first mined
//! block — with timestamp `t₁` and target `T₀` (the chain spec's initial
//! target):
//!
//! ```text
//! exponent = ((t − t₁) − B·(h − 1)) / τ          τ = B · retargetWindow
//! target   = T₀ · 2^exponent                       clamped to [1, powLimit]
//! ```
//!
//! evaluated in 16.16 fixed point with the published cubic approximation of
//! `2^frac`. Why ASERT rather than LWMA:
//! - it needs only the parent and the anchor, so header-first sync checks a
//!   header's target in O(1) without a window of ancestors;
//! - it is absolutely scheduled, so rounding errors never accumulate and the
//!   chain cannot drift from its schedule;
//! - it has no oscillation from a window falling off, and is robust to
//!   timestamp manipulation within the median-time-past rule.
//!
//! `retargetWindow` is ASERT's half-life in blocks: if blocks come one
//! half-life's worth of time ahead of schedule, the target halves. A window
//! of `0` disables retargeting (the `dev` preset): every block uses the
//! initial target.
//!
//! Block 1 is the anchor rather than genesis, because the genesis timestamp
//! is fixed in the chain spec long before mining starts; anchoring there
//! would make the first retarget depend on how long the network took to
//! launch.

use crate::primitives::{Balance, Hash, Timestamp};
use parity_scale_codec::{Decode, Encode};
use primitive_types::{U256, U512};

/// Number of ancestors whose median timestamp a new block must exceed.
pub const MEDIAN_TIME_SPAN: usize = 11;

/// A 256-bit proof-of-work target, big-endian.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Encode, Decode, Default)]
pub struct Target(pub [u8; 32]);

impl Target {
    /// The easiest possible target: every hash meets it.
    pub const MAX: Target = Target([0xff; 32]);

    /// As a number.
    pub fn to_u256(&self) -> U256 {
        U256::from_big_endian(&self.0)
    }

    /// From a number.
    pub fn from_u256(v: U256) -> Target {
        Target(v.to_big_endian())
    }

    /// Whether `hash`, read as a big-endian number, is at most this target.
    pub fn is_met_by(&self, hash: &Hash) -> bool {
        // Lexicographic order of big-endian byte strings is numeric order.
        hash.0 <= self.0
    }

    /// The expected number of hashes to find a block at this target,
    /// `2^256 / (target + 1)`, computed as `(!target / (target + 1)) + 1`.
    pub fn work(&self) -> U256 {
        let t = self.to_u256();
        match t.checked_add(U256::one()) {
            // target = 2^256 - 1: one hash suffices.
            None => U256::one(),
            Some(t1) => (!t)
                .checked_div(t1)
                .and_then(|q| q.checked_add(U256::one()))
                .unwrap_or(U256::MAX),
        }
    }

    /// `0x`-prefixed hex.
    pub fn to_hex(&self) -> String {
        crate::primitives::encode_hex(&self.0)
    }

    /// Parses `0x`-prefixed hex of 32 bytes.
    pub fn from_hex(s: &str) -> Result<Target, crate::primitives::HexError> {
        crate::primitives::decode_hex_array::<32>(s).map(Target)
    }
}

impl core::fmt::Debug for Target {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Target({})", self.to_hex())
    }
}

impl serde::Serialize for Target {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> serde::Deserialize<'de> for Target {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <String as serde::Deserialize>::deserialize(d)?;
        Target::from_hex(&s).map_err(serde::de::Error::custom)
    }
}

/// Largest `max_block_bytes` a chain may set: every block must fit one
/// sync response and one gossip message.
pub const MAX_BLOCK_BYTES_LIMIT: u32 = 16 * 1024 * 1024;

/// The consensus parameters of a chain. They are committed to by the genesis
/// hash (see [`crate::genesis`]), so nodes that disagree on any of them are
/// on different chains.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode)]
pub struct ConsensusParams {
    /// Intended time between blocks, in milliseconds.
    pub target_block_time_ms: u64,
    /// Target of block 1 and, with retargeting off, of every block.
    pub initial_target: Target,
    /// The easiest target retargeting may reach.
    pub pow_limit: Target,
    /// ASERT half-life in blocks; 0 disables retargeting.
    pub retarget_window: u64,
    /// Newly minted per block, paid to the miner.
    pub block_reward: Balance,
    /// Smallest fee a transaction may pay.
    pub minimum_fee: Balance,
    /// How far past the validator's clock a block timestamp may be, in ms.
    pub max_future_drift_ms: u64,
    /// Most transactions in one block.
    pub max_block_transactions: u32,
    /// Largest encoded block, in bytes.
    pub max_block_bytes: u32,
    /// Percentage of a forfeited penalty deposit paid to the reporter of a
    /// duplicate-ticket proof; the rest is burnt.
    pub duplicate_reporter_share_percent: u8,
    /// Fee per encoded byte of a signed transaction: a transaction pays at
    /// least the larger of `minimum_fee` and `fee_per_byte` × its size, so
    /// block space is priced by the byte, not by the transaction.
    pub fee_per_byte: Balance,
}

impl ConsensusParams {
    /// The smallest fee a signed transaction of `size` encoded bytes may
    /// pay: `max(minimum_fee, fee_per_byte × size)`.
    pub fn minimum_fee_for(&self, size: usize) -> Balance {
        let size = Balance::try_from(size).unwrap_or(Balance::MAX);
        self.fee_per_byte.saturating_mul(size).max(self.minimum_fee)
    }
}

/// A consensus parameter set that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamsError {
    /// Zero block time.
    #[error("targetBlockTimeMs must be at least 1")]
    ZeroBlockTime,
    /// Zero target.
    #[error("initialTarget must be non-zero (a zero target can never be met)")]
    ZeroTarget,
    /// Initial target above the limit.
    #[error("initialTarget {initial} exceeds powLimit {limit}")]
    TargetAboveLimit {
        /// The initial target.
        initial: String,
        /// The limit.
        limit: String,
    },
    /// Block limits too small to hold anything.
    #[error(
        "maxBlockBytes {0} is too small; it must hold a header and at least one transaction (≥ 1024)"
    )]
    BlockTooSmall(u32),
    /// Blocks too large to travel in one sync response.
    #[error(
        "maxBlockBytes {0} is too large; at most {MAX_BLOCK_BYTES_LIMIT} (16 MiB), so that any block fits one network message"
    )]
    BlockTooLarge(u32),
    /// Reporter share above 100 %.
    #[error("duplicateReporterSharePercent must be at most 100, got {0}")]
    ReporterShare(u8),
    /// ASERT's half-life overflows.
    #[error("retargetWindow × targetBlockTimeMs overflows; use a smaller window")]
    WindowOverflow,
}

impl ConsensusParams {
    /// Checks that the parameters are usable.
    pub fn validate(&self) -> Result<(), ParamsError> {
        if self.target_block_time_ms == 0 {
            return Err(ParamsError::ZeroBlockTime);
        }
        if self.initial_target.to_u256().is_zero() {
            return Err(ParamsError::ZeroTarget);
        }
        if self.initial_target > self.pow_limit {
            return Err(ParamsError::TargetAboveLimit {
                initial: self.initial_target.to_hex(),
                limit: self.pow_limit.to_hex(),
            });
        }
        if self.duplicate_reporter_share_percent > 100 {
            return Err(ParamsError::ReporterShare(
                self.duplicate_reporter_share_percent,
            ));
        }
        if self.max_block_bytes < 1024 {
            return Err(ParamsError::BlockTooSmall(self.max_block_bytes));
        }
        if self.max_block_bytes > MAX_BLOCK_BYTES_LIMIT {
            return Err(ParamsError::BlockTooLarge(self.max_block_bytes));
        }
        if self
            .retarget_window
            .checked_mul(self.target_block_time_ms)
            .is_none_or(|t| t > i64::MAX as u64 / 65_536)
        {
            return Err(ParamsError::WindowOverflow);
        }
        Ok(())
    }

    /// The consensus-parameter commitment that stands as genesis's parent hash.
    pub fn commitment(&self) -> Hash {
        Hash::of_parts(&[b"cachecash/consensus-params/v1", &self.encode()])
    }
}

/// What the target computation needs to know about the chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetargetInput {
    /// Height of the parent of the block whose target is computed.
    pub parent_number: u64,
    /// Timestamp of that parent.
    pub parent_timestamp: Timestamp,
    /// Timestamp of block 1 (the anchor); ignored when the parent is genesis.
    pub anchor_timestamp: Timestamp,
}

/// The target a block must carry, given its parent.
// The shifts below are on U256/U512 by amounts bounded in the code (47, 48,
// 16, and s < 512 or s ≤ 240), so none can overflow or panic.
#[allow(clippy::arithmetic_side_effects)]
pub fn next_target(params: &ConsensusParams, input: RetargetInput) -> Target {
    if params.retarget_window == 0 || input.parent_number == 0 {
        return params.initial_target;
    }
    let half_life =
        i128::from(params.retarget_window).saturating_mul(i128::from(params.target_block_time_ms));
    let time_delta =
        i128::from(input.parent_timestamp).saturating_sub(i128::from(input.anchor_timestamp));
    let height_delta = i128::from(input.parent_number.saturating_sub(1));
    let scheduled = height_delta.saturating_mul(i128::from(params.target_block_time_ms));
    // 16.16 fixed point; integer division truncates toward zero as in the
    // reference algorithm.
    let exponent = time_delta
        .saturating_sub(scheduled)
        .saturating_mul(65_536)
        .checked_div(half_life)
        .unwrap_or(0);
    let shifts = exponent >> 16; // floor division by 65536
    let frac = u64::try_from(exponent & 0xffff).unwrap_or(0);
    // 2^frac ≈ 1 + (195766423245049·f + 971821376·f² + 5127·f³ + 2^47) >> 48
    let poly =
        U256::from(195_766_423_245_049u64)
            .saturating_mul(U256::from(frac))
            .saturating_add(
                U256::from(971_821_376u64).saturating_mul(U256::from(frac.saturating_mul(frac))),
            )
            .saturating_add(U256::from(5127u64).saturating_mul(
                U256::from(frac).saturating_mul(U256::from(frac.saturating_mul(frac))),
            ))
            .saturating_add(U256::one() << 47);
    let factor = U256::from(65_536u64).saturating_add(poly >> 48);
    let limit = U512::from(params.pow_limit.to_u256());
    let mut t = U512::from(params.initial_target.to_u256()).saturating_mul(U512::from(factor));
    if shifts < 0 {
        let s = usize::try_from(shifts.unsigned_abs()).unwrap_or(usize::MAX);
        t = if s >= 512 { U512::zero() } else { t >> s };
    } else {
        let s = usize::try_from(shifts).unwrap_or(usize::MAX);
        // t < 2^(256+17); shifting by more than 240 certainly exceeds the limit.
        t = if s > 240 { limit << 16 } else { t << s };
    }
    t >>= 16;
    if t.is_zero() {
        t = U512::one();
    }
    if t > limit {
        t = limit;
    }
    Target::from_u256(U256::try_from(t).unwrap_or(U256::MAX))
}

/// Median of up to [`MEDIAN_TIME_SPAN`] ancestor timestamps (the lower
/// median for an even count); 0 for none.
pub fn median_time_past(timestamps: &[Timestamp]) -> Timestamp {
    let mut v: Vec<Timestamp> = timestamps
        .iter()
        .rev()
        .take(MEDIAN_TIME_SPAN)
        .copied()
        .collect();
    v.sort_unstable();
    let mid = v.len().saturating_sub(1) / 2;
    v.get(mid).copied().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(window: u64) -> ConsensusParams {
        let mut initial = [0u8; 32];
        initial[2] = 0xff;
        ConsensusParams {
            target_block_time_ms: 6000,
            initial_target: Target(initial),
            pow_limit: Target::MAX,
            retarget_window: window,
            block_reward: 1,
            minimum_fee: 1,
            max_future_drift_ms: 30_000,
            max_block_transactions: 1000,
            max_block_bytes: 1 << 20,
            duplicate_reporter_share_percent: 50,
            fee_per_byte: 0,
        }
    }

    #[test]
    fn the_minimum_fee_is_per_byte_above_the_flat_floor() {
        let p = ConsensusParams {
            minimum_fee: 1_000_000,
            fee_per_byte: 1_000,
            ..params(0)
        };
        assert_eq!(p.minimum_fee_for(150), 1_000_000, "small: the floor");
        assert_eq!(p.minimum_fee_for(1_000), 1_000_000);
        assert_eq!(p.minimum_fee_for(1_001), 1_001_000);
        assert_eq!(p.minimum_fee_for(64 * 1024), 65_536_000);
        assert_eq!(params(0).minimum_fee_for(64 * 1024), 1, "no per-byte price");
        assert_eq!(
            ConsensusParams {
                fee_per_byte: Balance::MAX,
                ..params(0)
            }
            .minimum_fee_for(2),
            Balance::MAX,
            "saturates"
        );
    }

    #[test]
    fn on_schedule_keeps_the_initial_target() {
        let p = params(100);
        let t = next_target(
            &p,
            RetargetInput {
                parent_number: 11,
                parent_timestamp: 1000 + 10 * 6000,
                anchor_timestamp: 1000,
            },
        );
        assert_eq!(t, p.initial_target);
    }

    #[test]
    fn one_half_life_behind_schedule_doubles_the_target() {
        let p = params(100);
        let t = next_target(
            &p,
            RetargetInput {
                parent_number: 11,
                parent_timestamp: 1000 + 10 * 6000 + 100 * 6000,
                anchor_timestamp: 1000,
            },
        );
        assert_eq!(t.to_u256(), p.initial_target.to_u256() * 2);
    }

    #[test]
    fn one_half_life_ahead_halves_the_target() {
        let p = params(100);
        let t = next_target(
            &p,
            RetargetInput {
                parent_number: 101,
                parent_timestamp: 1000 + 100 * 6000 - 100 * 6000,
                anchor_timestamp: 1000,
            },
        );
        assert_eq!(t.to_u256(), p.initial_target.to_u256() / 2);
    }

    #[test]
    fn retargeting_is_clamped_to_the_limit_and_never_zero() {
        let mut p = params(1);
        p.pow_limit = p.initial_target;
        let slow = next_target(
            &p,
            RetargetInput {
                parent_number: 2,
                parent_timestamp: u64::MAX,
                anchor_timestamp: 0,
            },
        );
        assert_eq!(slow, p.pow_limit);
        let fast = next_target(
            &p,
            RetargetInput {
                parent_number: u64::MAX,
                parent_timestamp: 0,
                anchor_timestamp: u64::MAX,
            },
        );
        assert_eq!(fast.to_u256(), U256::one());
    }

    #[test]
    fn work_of_the_max_target_is_one_and_grows_as_targets_fall() {
        assert_eq!(Target::MAX.work(), U256::one());
        let mut t = [0u8; 32];
        t[0] = 0x7f;
        t[1..].fill(0xff);
        assert_eq!(Target(t).work(), U256::from(2));
    }

    #[test]
    fn median_uses_the_last_eleven() {
        let ts: Vec<u64> = (0..20).collect();
        assert_eq!(median_time_past(&ts), 14);
        assert_eq!(median_time_past(&[5]), 5);
        assert_eq!(median_time_past(&[]), 0);
    }
}
