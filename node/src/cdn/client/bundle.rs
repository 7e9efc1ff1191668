//! Processing one bundle at the client: check, fetch in parallel, remove
//! the outer layers, solve, open the L2, remove the inner layers, verify.

use super::conn::{Fetched, Job, Links};
use super::{BundleTrace, FetchError, FetchOptions};
use crate::network::NetworkHandle;
use cachecash_cdn::keys::PuzzleSecret;
use cachecash_cdn::layers::LayerCipher;
use cachecash_cdn::manifest::Manifest;
use cachecash_cdn::messages::{Fault, IssuedBundle, text};
use cachecash_runtime::{AccountId, Hash};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::oneshot;

/// What every bundle of a fetch shares.
#[derive(Debug)]
pub struct Context {
    /// This client's account.
    pub me: AccountId,
    /// The escrow's ticket signer (from the chain).
    pub signer: AccountId,
    /// The verified manifest.
    pub manifest: Arc<Manifest>,
    /// Limits.
    pub options: FetchOptions,
    /// Cache links (shared by a gateway's sessions).
    pub links: std::sync::Arc<Links>,
    /// The network (to learn cache addresses).
    pub network: NetworkHandle,
    /// When the fetch started.
    pub started: Instant,
}

/// How a bundle ended.
#[derive(Debug)]
pub enum Outcome {
    /// Solved and verified: pay with the secret, write the chunks.
    Done {
        /// Bundle sequence.
        sequence: u64,
        /// The puzzle secret.
        secret: PuzzleSecret,
        /// Plaintext chunks by object index.
        chunks: Vec<(u64, Vec<u8>)>,
        /// The caches that served.
        per_cache: Vec<AccountId>,
        /// Phases.
        trace: Box<BundleTrace>,
    },
    /// A cache failed: blame it.
    Failed {
        /// Bundle sequence.
        sequence: u64,
        /// Position.
        position: u8,
        /// Evidence.
        fault: Fault,
        /// For the user.
        reason: String,
    },
    /// The publisher sent an invalid bundle: stop.
    Fatal(FetchError),
}

fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Processes one issued bundle.
pub async fn process(ctx: &Context, issued: IssuedBundle) -> Outcome {
    let arrived = ctx.started.elapsed();
    let bundle = Arc::new(issued.bundle);
    let sequence = bundle.remainder.sequence;
    if let Err(e) = bundle.verify_for_client(&ctx.me, &ctx.signer) {
        return Outcome::Fatal(FetchError::Protocol(format!(
            "bundle {sequence} does not verify: {e}"
        )));
    }
    if let Err(e) = bundle.check_manifest(&ctx.manifest) {
        return Outcome::Fatal(FetchError::Protocol(format!(
            "bundle {sequence} does not match the manifest: {e}"
        )));
    }
    let puzzle = bundle.remainder.puzzle;
    if puzzle.rounds > ctx.options.max_rounds || puzzle.start_range > ctx.options.max_start_range {
        return Outcome::Fatal(FetchError::Protocol(format!(
            "bundle {sequence} asks for a puzzle of {} rounds over a start range of {}; this client accepts at most {} rounds and {} (raise --max-puzzle-rounds / --max-puzzle-start-range to accept)",
            puzzle.rounds, puzzle.start_range, ctx.options.max_rounds, ctx.options.max_start_range
        )));
    }
    let mut distinct: Vec<AccountId> = bundle.chunks.iter().map(|c| c.request.cache).collect();
    distinct.sort();
    distinct.dedup();
    if distinct.len() != bundle.chunks.len() {
        return Outcome::Fatal(FetchError::Protocol(format!(
            "bundle {sequence} puts one cache at two positions"
        )));
    }

    // Fetch every position in parallel.
    let mut waits = Vec::with_capacity(bundle.chunks.len());
    for (position, chunk) in bundle.chunks.iter().enumerate() {
        let cache = chunk.request.cache;
        if let (Some(peer), Some(contact)) = (
            crate::cdn::peer_of(&cache),
            issued.caches.get(position).filter(|c| c.account == cache),
        ) {
            ctx.network
                .add_addresses(peer, crate::cdn::decode_addrs(&contact.addrs))
                .await;
        }
        let Some(request) = bundle.cache_request(position) else {
            continue;
        };
        let (tx, rx) = oneshot::channel();
        ctx.links
            .submit(
                cache,
                Job {
                    request,
                    l1: chunk.l1.clone(),
                    size: chunk.request.size,
                    reply: tx,
                },
            )
            .await;
        waits.push(rx);
    }
    let mut fetched: Vec<Fetched> = Vec::with_capacity(waits.len());
    for (position, rx) in futures::future::join_all(waits)
        .await
        .into_iter()
        .enumerate()
    {
        let position_u8 = u8::try_from(position).unwrap_or(u8::MAX);
        match rx {
            Ok(Ok(f)) => fetched.push(f),
            Ok(Err(fault)) => {
                let reason = match &fault {
                    Fault::Refused(r) => {
                        format!("cache at position {position} refused: {}", text(r))
                    }
                    Fault::Stalled => format!("cache at position {position} stalled or went away"),
                    Fault::Corrupt(_) => format!("cache at position {position} sent bad bytes"),
                };
                return Outcome::Failed {
                    sequence,
                    position: position_u8,
                    fault,
                    reason,
                };
            }
            Err(_) => {
                return Outcome::Failed {
                    sequence,
                    position: position_u8,
                    fault: Fault::Stalled,
                    reason: format!("cache at position {position} link closed"),
                };
            }
        }
    }
    let mut trace = BundleTrace {
        sequence,
        first_chunk: bundle
            .chunks
            .first()
            .map(|c| c.request.chunk_index)
            .unwrap_or(0),
        chunks: bundle.chunks.len(),
        publisher_ms: ms(arrived),
        ttfb_ms: fetched.iter().map(|f| ms(f.ttfb)).collect(),
        transfer_ms: fetched.iter().map(|f| ms(f.transfer)).collect(),
        ..Default::default()
    };
    let per_cache = bundle.chunks.iter().map(|c| c.request.cache).collect();

    // The crypto runs on the blocking pool.
    let threads = ctx.options.solver_threads.max(1);
    let manifest = ctx.manifest.clone();
    let b = bundle.clone();
    let result = tokio::task::spawn_blocking(move || {
        let mut data: Vec<Vec<u8>> = Vec::with_capacity(fetched.len());
        let t0 = Instant::now();
        for (f, c) in fetched.into_iter().zip(&b.chunks) {
            let mut d = f.data;
            LayerCipher::for_chunk(&f.outer, &c.request.at(&b.remainder.object)).apply(&mut d);
            data.push(d);
        }
        let outer = t0.elapsed();
        let evidence = || -> Vec<Hash> {
            data.iter()
                .map(|d| Hash(Sha256::digest(d).into()))
                .collect()
        };
        let t1 = Instant::now();
        let covered: Vec<&[u8]> = b
            .remainder
            .puzzle
            .covered_positions()
            .into_iter()
            .filter_map(|p| data.get(p).map(|d| d.as_slice()))
            .collect();
        let solved = b.solve(&covered, threads);
        let puzzle = t1.elapsed();
        let (secret, keys) = match solved.and_then(|s| b.open_l2(&s.secret).map(|k| (s.secret, k)))
        {
            Ok(v) => v,
            Err(e) => return Err((evidence(), format!("the puzzle did not open the L2 ({e})"))),
        };
        let digests = evidence();
        let t2 = Instant::now();
        for ((d, c), key) in data.iter_mut().zip(&b.chunks).zip(&keys.inner) {
            LayerCipher::for_chunk(key, &c.request.at(&b.remainder.object)).apply(d);
        }
        let inner = t2.elapsed();
        let t3 = Instant::now();
        for (d, c) in data.iter().zip(&b.chunks) {
            if let Err(e) = manifest.verify_chunk(c.request.chunk_index, d) {
                return Err((
                    digests,
                    format!("chunk {} fails the manifest ({e})", c.request.chunk_index),
                ));
            }
        }
        let verify = t3.elapsed();
        let chunks = data
            .into_iter()
            .zip(&b.chunks)
            .map(|(d, c)| (c.request.chunk_index, d))
            .collect::<Vec<_>>();
        Ok((secret, chunks, [outer, puzzle, inner, verify]))
    })
    .await;
    match result {
        Ok(Ok((secret, chunks, [outer, puzzle, inner, verify]))) => {
            trace.outer_ms = ms(outer);
            trace.puzzle_ms = ms(puzzle);
            trace.inner_ms = ms(inner);
            trace.verify_ms = ms(verify);
            Outcome::Done {
                sequence,
                secret,
                chunks,
                per_cache,
                trace: Box::new(trace),
            }
        }
        Ok(Err((digests, reason))) => Outcome::Failed {
            sequence,
            position: 0,
            fault: Fault::Corrupt(digests),
            reason,
        },
        Err(e) => Outcome::Fatal(FetchError::Protocol(format!("bundle task failed: {e}"))),
    }
}
