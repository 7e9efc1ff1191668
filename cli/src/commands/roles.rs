//! The CDN role flags of `cachecash [run]` (`--publisher`, `--cache`) and
//! their config file: what an operator sets once goes in the file, flags
//! override it.
//!
//! ```toml
//! [publisher]
//! origin = "https://files.example.org"   # or a directory
//! funder = "alice"                        # key that funds the escrow (dev name, 0x seed or key file)
//! # escrow = "0x…"                        # or adopt an escrow opened elsewhere
//! caches = ["/ip4/10.0.0.5/tcp/30333/p2p/12D3KooW…"]
//! discover_caches = 20                    # also hire caches found in the DHT
//! discover_per_address = 1                # …at most this many per IPv4 address or IPv6 /64 (Sybil bound)
//! bundle_chunks = 4
//! chunk_size = 131072                     # bytes per chunk of new manifests
//! puzzle_rounds = 2                       # rounds R of the colocation puzzle
//! puzzle_start_range = 8192               # its start range (the solver's work factor)
//! puzzle_covered = 0                      # chunks it covers; 0 = all, 3 with 4-chunk bundles = "3 of 4"
//! max_window = 2                          # bundles issued ahead of the paid ones
//! max_sessions = 1024                     # concurrent sessions, all peers together
//! max_streams_per_peer = 512              # concurrent sessions and fills of one peer (a gateway is one peer)
//! request_rate = 1000                     # session opens and fills per second per peer
//! spool_quota = "16GiB"                   # HTTP-origin objects kept on disk (least recently used evicted)
//!
//! [publisher.terms]                       # terms of the escrows it opens
//! face_value = "1CCH"
//! tickets_per_round = 100000
//! winners_per_round = 4
//! round_length = 100
//! rounds = 100
//! draw_delay = 5
//! claim_window = 200
//! penalty = "100CCH"                     # default: the safe minimum, w·β·(⌈c/L⌉+⌈d/L⌉+1)/(1−s)
//! top_up_rounds = 50                      # add 50 rounds when fewer are left…
//! budget = "2000CCH"                      # …while all payment deposits stay within this
//! rotate_rounds = 10                      # then open a fresh escrow when 10 rounds are left
//!
//! [cache]
//! dir = "/var/lib/cachecash/cache"
//! quota = "20GiB"
//! min_penalty = "10CCH"
//! require_safe_penalty = true  # also the safe penalty of each escrow's terms (docs/microcash.md §9)
//! claim_depth = 6              # confirmations before a claim counts as final
//! claim_max_fee_percent = 10   # hold a claim back while its fee exceeds this share of β
//! claim_urgent_blocks = 10     # …until this many blocks before its window closes
//! max_streams_per_peer = 8     # concurrent control and chunk streams of one peer
//! control_rate = 2000          # offers and secret relays per second per peer
//! ```

use crate::commands::wallet::parse_amount;
use anyhow::Context;
use cachecash_chain_spec::ChainSpec;
use cachecash_node::cdn::cache::{CacheConfig, CacheModule};
use cachecash_node::cdn::publisher::escrow::{EscrowPlan, EscrowSource};
use cachecash_node::cdn::publisher::origin::Origin;
use cachecash_node::cdn::publisher::{PublisherConfig, PublisherModule};
use cachecash_node::service::NodeModule;
use clap::Args;
use std::path::{Path, PathBuf};

/// CDN roles of the node.
#[derive(Debug, Clone, Default, Args)]
pub struct RoleArgs {
    /// Run the publisher role (needs --origin, and --funder or --escrow).
    #[arg(long, help_heading = "CDN roles")]
    pub publisher: bool,
    /// Publisher origin: an http(s):// base URL or a directory.
    #[arg(long, value_name = "URL|DIR", help_heading = "CDN roles")]
    pub origin: Option<String>,
    /// Key that funds the publisher's escrow: a dev name, a 0x seed or a key file.
    #[arg(long, value_name = "KEY", help_heading = "CDN roles")]
    pub funder: Option<String>,
    /// Adopt this escrow (its ticket signer must be this node's account) instead of opening one.
    #[arg(long, value_name = "ESCROW_ID", help_heading = "CDN roles")]
    pub escrow: Option<String>,
    /// A cache to hire, /ip4/ADDR/tcp/PORT/p2p/PEER_ID (repeatable or comma-separated).
    #[arg(
        long,
        value_name = "MULTIADDR",
        value_delimiter = ',',
        help_heading = "CDN roles"
    )]
    pub hire: Vec<String>,
    /// Also hire caches announced in the DHT, up to N in all (0: only --hire).
    #[arg(long, value_name = "N", help_heading = "CDN roles")]
    pub discover_caches: Option<usize>,
    /// Run the cache role.
    #[arg(long, help_heading = "CDN roles")]
    pub cache: bool,
    /// Cache directory [default: BASE/cdn/cache].
    #[arg(long, value_name = "DIR", help_heading = "CDN roles")]
    pub cache_dir: Option<PathBuf>,
    /// Cache byte quota, e.g. 512MiB or 20GiB [default: 1GiB].
    #[arg(long, value_name = "SIZE", help_heading = "CDN roles")]
    pub cache_quota: Option<String>,
    /// CDN config file (TOML) with [publisher], [publisher.terms], [cache] and [gateway] tables.
    #[arg(long, value_name = "FILE", help_heading = "CDN roles")]
    pub cdn_config: Option<PathBuf>,
    /// The HTTP gateway.
    #[command(flatten)]
    pub gateway: crate::commands::gateway::GatewayArgs,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    publisher: Option<PublisherFile>,
    cache: Option<CacheFile>,
    gateway: Option<crate::commands::gateway::GatewayFile>,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PublisherFile {
    origin: Option<String>,
    funder: Option<String>,
    escrow: Option<String>,
    #[serde(default)]
    caches: Vec<String>,
    dir: Option<PathBuf>,
    discover_caches: Option<usize>,
    discover_per_address: Option<usize>,
    bundle_chunks: Option<usize>,
    chunk_size: Option<u32>,
    puzzle_rounds: Option<u8>,
    puzzle_start_range: Option<u32>,
    puzzle_covered: Option<usize>,
    max_window: Option<u8>,
    issue_margin: Option<u64>,
    max_sessions: Option<usize>,
    max_streams_per_peer: Option<usize>,
    request_rate: Option<u32>,
    spool_quota: Option<String>,
    terms: Option<TermsFile>,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct TermsFile {
    face_value: Option<String>,
    tickets_per_round: Option<u32>,
    winners_per_round: Option<u32>,
    round_length: Option<u32>,
    rounds: Option<u64>,
    draw_delay: Option<u32>,
    claim_window: Option<u32>,
    penalty: Option<String>,
    fee: Option<String>,
    top_up_rounds: Option<u64>,
    budget: Option<String>,
    rotate_rounds: Option<u64>,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct CacheFile {
    dir: Option<PathBuf>,
    quota: Option<String>,
    min_penalty: Option<String>,
    require_safe_penalty: Option<bool>,
    claim_depth: Option<u64>,
    claim_max_fee_percent: Option<u8>,
    claim_urgent_blocks: Option<u64>,
    max_streams_per_peer: Option<usize>,
    control_rate: Option<u32>,
}

/// Parses a byte size: a number with an optional B, KiB, MiB, GiB, TiB (or KB, MB, GB, TB) suffix.
pub fn parse_size(s: &str) -> anyhow::Result<u64> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .with_context(|| format!("'{s}' is not a size; write e.g. 512MiB or 20GiB"))?;
    let mult: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kib" => 1024.0,
        "kb" => 1e3,
        "m" | "mib" => 1024.0 * 1024.0,
        "mb" => 1e6,
        "g" | "gib" => 1024.0 * 1024.0 * 1024.0,
        "gb" => 1e9,
        "t" | "tib" => 1024.0_f64.powi(4),
        "tb" => 1e12,
        other => anyhow::bail!("'{s}': unknown size unit '{other}'; use B, KiB, MiB, GiB or TiB"),
    };
    Ok((n * mult) as u64)
}

fn token(spec: &ChainSpec) -> (u8, String) {
    let p = spec.properties_json();
    let decimals = p
        .get("tokenDecimals")
        .and_then(serde_json::Value::as_u64)
        .and_then(|d| u8::try_from(d).ok())
        .unwrap_or(12);
    let symbol = p
        .get("tokenSymbol")
        .and_then(serde_json::Value::as_str)
        .unwrap_or("CCH")
        .to_string();
    (decimals, symbol)
}

/// The modules the role flags ask for.
pub fn modules(
    args: &RoleArgs,
    spec: &ChainSpec,
    base_path: &Path,
) -> anyhow::Result<Vec<Box<dyn NodeModule>>> {
    let file: FileConfig = match &args.cdn_config {
        None => FileConfig::default(),
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read --cdn-config {}", path.display()))?;
            toml::from_str(&text).with_context(|| {
                format!("--cdn-config {} is not a valid CDN config", path.display())
            })?
        }
    };
    let mut out: Vec<Box<dyn NodeModule>> = Vec::new();
    let (decimals, symbol) = token(spec);
    let amount = |s: &str, what: &str| {
        parse_amount(s, decimals, &symbol).with_context(|| format!("invalid {what} '{s}'"))
    };
    let cdn_base = base_path.join("chains").join(&spec.id).join("cdn");
    if args.publisher {
        let pf = file.publisher.unwrap_or_default();
        let origin = args.origin.clone().or(pf.origin).context(
            "--publisher needs --origin URL|DIR (or origin in the [publisher] table of --cdn-config)",
        )?;
        let origin = Origin::parse(&origin).map_err(anyhow::Error::msg)?;
        let escrow = match (
            args.escrow.clone().or(pf.escrow),
            args.funder.clone().or(pf.funder),
        ) {
            (Some(id), _) => EscrowSource::Existing(
                crate::commands::escrow::parse_escrow_id(&id).context("invalid --escrow")?,
            ),
            (None, Some(funder)) => {
                let key = spec
                    .resolve_signing_key(&funder)
                    .with_context(|| format!("invalid --funder '{funder}'"))?;
                let t = pf.terms.unwrap_or_default();
                let unit = 10u128.pow(u32::from(decimals));
                let mut plan = EscrowPlan {
                    face_value: match &t.face_value {
                        Some(v) => amount(v, "face_value")?,
                        None => unit,
                    },
                    tickets_per_round: t.tickets_per_round.unwrap_or(100_000),
                    winners_per_round: t.winners_per_round.unwrap_or(4),
                    round_length: t.round_length.unwrap_or(100),
                    rounds: t.rounds.unwrap_or(100),
                    draw_delay: t.draw_delay.unwrap_or(5),
                    claim_window: t.claim_window.unwrap_or(200),
                    penalty: match &t.penalty {
                        Some(v) => amount(v, "penalty")?,
                        None => 0, // derived below
                    },
                    fee: match &t.fee {
                        Some(v) => amount(v, "fee")?,
                        None => 1_000_000,
                    },
                    top_up_rounds: t.top_up_rounds.unwrap_or(0),
                    budget: match &t.budget {
                        Some(v) => amount(v, "budget")?,
                        None => 0,
                    },
                    rotate_rounds: t.rotate_rounds.unwrap_or(0),
                };
                if t.penalty.is_none() {
                    // The safe minimum for the terms (docs/microcash.md §9).
                    let terms = cachecash_runtime::microcash::EscrowTerms {
                        signer: Default::default(),
                        face_value: plan.face_value,
                        tickets_per_round: plan.tickets_per_round,
                        winners_per_round: plan.winners_per_round,
                        round_length: plan.round_length,
                        first_round: 0,
                        last_round: 0,
                        draw_delay: plan.draw_delay,
                        claim_window: plan.claim_window,
                    };
                    plan.penalty = terms
                        .safe_penalty(spec.consensus.duplicate_reporter_share_percent)
                        .context(
                            "cannot derive a safe penalty from [publisher.terms]; set penalty",
                        )?;
                }
                EscrowSource::Open {
                    funder: std::sync::Arc::new(key),
                    plan,
                }
            }
            (None, None) => anyhow::bail!(
                "--publisher needs --funder KEY to open its escrow, or --escrow ID to adopt one"
            ),
        };
        let mut caches = crate::commands::run::multiaddrs("--hire", &args.hire)?;
        caches.extend(crate::commands::run::multiaddrs(
            "caches in --cdn-config",
            &pf.caches,
        )?);
        let mut c = PublisherConfig::new(
            pf.dir.unwrap_or_else(|| cdn_base.join("publisher")),
            origin,
            escrow,
        );
        c.caches = caches;
        c.discover = args.discover_caches.or(pf.discover_caches).unwrap_or(0);
        if let Some(n) = pf.discover_per_address {
            anyhow::ensure!(
                n >= 1,
                "discover_per_address must be at least 1 (caches hired per network address), not 0"
            );
            c.discover_per_address = n;
        }
        if c.caches.is_empty() && c.discover == 0 {
            anyhow::bail!(
                "--publisher needs caches: --hire MULTIADDR, or --discover-caches N to hire caches announced in the DHT"
            );
        }
        if let Some(v) = pf.bundle_chunks {
            c.bundle_chunks = v;
        }
        if let Some(v) = pf.chunk_size {
            c.chunk_size = v;
        }
        if let Some(v) = pf.puzzle_rounds {
            c.puzzle_rounds = v;
        }
        if let Some(v) = pf.puzzle_start_range {
            c.puzzle_start_range = v;
        }
        if let Some(v) = pf.puzzle_covered {
            c.puzzle_covered = v;
        }
        if let Some(v) = pf.max_window {
            c.max_window = v;
        }
        if let Some(v) = pf.issue_margin {
            c.issue_margin = v;
        }
        if let Some(v) = pf.max_sessions {
            c.max_sessions = at_least_one(v, "publisher max_sessions")?;
        }
        if let Some(v) = pf.max_streams_per_peer {
            c.max_streams_per_peer = at_least_one(v, "publisher max_streams_per_peer")?;
        }
        if let Some(v) = pf.request_rate {
            c.request_rate = at_least_one(v, "publisher request_rate")?;
        }
        if let Some(q) = &pf.spool_quota {
            c.spool_quota = parse_size(q).context("invalid publisher spool_quota")?;
        }
        out.push(Box::new(PublisherModule::new(c)));
    }
    if args.cache {
        let cf = file.cache.unwrap_or_default();
        let dir = args
            .cache_dir
            .clone()
            .or(cf.dir)
            .unwrap_or_else(|| cdn_base.join("cache"));
        let quota = match args.cache_quota.clone().or(cf.quota) {
            Some(q) => parse_size(&q).context("invalid --cache-quota")?,
            None => 1 << 30,
        };
        let mut c = CacheConfig::new(dir, quota);
        if let Some(p) = &cf.min_penalty {
            c.min_penalty = amount(p, "min_penalty")?;
        }
        if let Some(r) = cf.require_safe_penalty {
            c.require_safe_penalty = r;
        }
        if let Some(d) = cf.claim_depth {
            c.claimer.depth = d;
        }
        if let Some(p) = cf.claim_max_fee_percent {
            anyhow::ensure!(
                p <= 100,
                "claim_max_fee_percent is a percentage: 0 to 100, not {p}"
            );
            c.claimer.max_fee_percent = p;
        }
        if let Some(u) = cf.claim_urgent_blocks {
            c.claimer.urgent_blocks = u;
        }
        if let Some(v) = cf.max_streams_per_peer {
            c.max_streams_per_peer = at_least_one(v, "cache max_streams_per_peer")?;
        }
        if let Some(v) = cf.control_rate {
            c.control_rate = at_least_one(v, "cache control_rate")?;
        }
        let module = CacheModule::open(c).map_err(anyhow::Error::msg)?;
        out.push(Box::new(module));
    }
    if let Some(g) = crate::commands::gateway::module(&args.gateway, file.gateway.as_ref())? {
        tracing::info!("HTTP gateway on http://{}", g.local_addr());
        out.push(Box::new(g));
    }
    Ok(out)
}

/// A limit that must admit something: 0 would refuse every peer.
fn at_least_one<T: PartialOrd + From<u8> + std::fmt::Display>(
    v: T,
    what: &str,
) -> anyhow::Result<T> {
    anyhow::ensure!(
        v >= T::from(1),
        "{what} must be at least 1 (0 would refuse every peer), not {v}"
    );
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_binary_and_decimal_units() {
        assert_eq!(parse_size("512").unwrap(), 512);
        assert_eq!(parse_size("1KiB").unwrap(), 1024);
        assert_eq!(parse_size("2 MiB").unwrap(), 2 << 20);
        assert_eq!(parse_size("1.5GiB").unwrap(), 3 << 29);
        assert_eq!(parse_size("1GB").unwrap(), 1_000_000_000);
        assert!(parse_size("12 furlongs").is_err());
        assert!(parse_size("lots").is_err());
    }

    #[test]
    fn a_config_file_parses_and_unknown_keys_are_refused() {
        let ok: FileConfig = toml::from_str(
            "[publisher]\norigin = \"/tmp\"\nfunder = \"alice\"\n[publisher.terms]\nrounds = 3\n[cache]\nquota = \"1GiB\"\n",
        )
        .unwrap();
        assert_eq!(ok.publisher.unwrap().terms.unwrap().rounds, Some(3));
        assert!(toml::from_str::<FileConfig>("[cache]\nquotta = \"1GiB\"\n").is_err());
        let limits: FileConfig = toml::from_str(
            "[publisher]\nmax_streams_per_peer = 512\nrequest_rate = 50\n[cache]\ncontrol_rate = 10\n",
        )
        .unwrap();
        assert_eq!(limits.publisher.unwrap().max_streams_per_peer, Some(512));
        assert_eq!(limits.cache.unwrap().control_rate, Some(10));
        assert!(
            at_least_one(0usize, "x")
                .unwrap_err()
                .to_string()
                .contains("at least 1")
        );
    }
}
