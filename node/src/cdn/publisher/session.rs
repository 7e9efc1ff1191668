//! A client session at the publisher: the object, then bundles, paid for
//! with puzzle secrets.
//!
//! # Payment is not voluntary
//!
//! The publisher keeps at most `window` bundles unpaid: bundle `i + window`
//! is issued only once the client has sent bundle `i`'s puzzle secret. The
//! secret proves the client solved the puzzle, i.e. held every chunk; the
//! publisher checks it against the L1s' commitment and relays the L2 and
//! secret to the bundle's caches, so a client cannot pay one colluding
//! cache only. A client that withholds secrets stalls after `window`
//! bundles; when the session ends (closed, idle, or failed) the publisher
//! relays the secrets of every bundle it issued, so the caches that served
//! it still hold redeemable tickets. A cache holds an L1 only if it served
//! the chunk (the client hands it over for the outer key), so relaying to
//! every cache of a bundle credits none that did not serve.
//!
//! # Blame
//!
//! A client reports a cache that refused, stalled or sent bad bytes; the
//! bundle's chunks are re-issued in a new bundle (new sequence, new ticket
//! numbers) without that cache. Corruption comes with evidence: the hash of
//! each position's inner ciphertext as received. The publisher recomputes
//! them from the origin bytes and benches the caches whose bytes differ for
//! long; a corrupt claim that matches everywhere is the client's lie and
//! counts against the session. Stalls and refusals cannot be proven, so they
//! bench briefly.

use super::Publisher;
use super::catalog::CatalogEntry;
use super::escrow::ActiveEscrow;
use super::hire::{BENCH_CORRUPT, BENCH_STALL};
use crate::cdn::framing::{FrameError, read_msg, write_msg};
use cachecash_cdn::bundle::{BundleOrder, ChunkOrder, L2Claim, prepare_bundle, sign_bundles};
use cachecash_cdn::keys::{ChunkAt, Layer, PuzzleSecret};
use cachecash_cdn::layers::LayerCipher;
use cachecash_cdn::messages::{
    CacheContact, ErrorKind, Fault, IssuedBundle, ObjectInfo, OpenRequest, SecretRelay,
    SessionReply, SessionRequest, text, wire_text,
};
use cachecash_cdn::puzzle::PuzzleParams;
use cachecash_runtime::{AccountId, Hash};
use futures::AsyncReadExt;
use libp2p::{PeerId, Stream};
use sha2::{Digest, Sha256};
use std::collections::VecDeque;
use std::sync::Arc;

type Failure = (ErrorKind, String);

/// A bundle issued and not yet paid.
#[derive(Debug, Clone)]
struct Outstanding {
    sequence: u64,
    first_chunk: u64,
    count: u64,
    caches: Vec<AccountId>,
    claim: L2Claim,
    commitment: Hash,
    /// Inner session keys per position (to check corruption evidence).
    chunk_indexes: Vec<u64>,
}

struct Session<'a> {
    p: &'a Publisher,
    client: AccountId,
    entry: CatalogEntry,
    escrow: Arc<ActiveEscrow>,
    pending: VecDeque<(u64, u64)>,
    outstanding: Vec<Outstanding>,
    abandoned: Vec<Outstanding>,
    paid: Vec<Outstanding>,
    blames: u64,
    lies: u64,
}

/// Runs a session to its end.
pub async fn run(p: &Publisher, peer: PeerId, stream: Stream, open: OpenRequest) {
    let t = p.state.config.io_timeout;
    let (mut rd, mut wr) = stream.split();
    let Some(client) = crate::cdn::account_of(&peer) else {
        return;
    };
    p.state.counters.sessions.inc();
    let mut session = match start(p, client, &open).await {
        Ok((s, info)) => {
            if write_msg(&mut wr, &SessionReply::Object(Box::new(info)), t)
                .await
                .is_err()
            {
                return;
            }
            s
        }
        Err((kind, message)) => {
            tracing::info!(target: "cachecash::cdn", %peer, "session refused: {message}");
            let _ = write_msg(
                &mut wr,
                &SessionReply::Error {
                    kind,
                    message: wire_text(&message),
                },
                t,
            )
            .await;
            return;
        }
    };
    let window = usize::from(open.window.min(p.state.config.max_window).max(1));
    let result: Result<(), Failure> = async {
        loop {
            // Issue up to the window.
            while session.outstanding.len() < window && !session.pending.is_empty() {
                let replaces = None;
                let issued = session.issue(replaces).await?;
                write_msg(&mut wr, &SessionReply::Bundle(Box::new(issued)), t)
                    .await
                    .map_err(gone)?;
            }
            if session.outstanding.is_empty() && session.pending.is_empty() {
                write_msg(&mut wr, &SessionReply::Done, t)
                    .await
                    .map_err(gone)?;
                return Ok(());
            }
            let request: SessionRequest = match read_msg(&mut rd, p.state.config.session_idle).await
            {
                Ok(r) => r,
                Err(e) => {
                    if e.is_violation() {
                        p.network.ban_peer(peer, "cdn_malformed", e.to_string());
                    }
                    return Err(gone(e));
                }
            };
            match request {
                SessionRequest::Secret { sequence, secret } => {
                    session.on_secret(sequence, secret).await?;
                }
                SessionRequest::Blame {
                    sequence,
                    position,
                    fault,
                } => {
                    let replaces = session.on_blame(sequence, position, fault).await?;
                    if let Some(old) = replaces {
                        let issued = session.issue(Some(old)).await?;
                        write_msg(&mut wr, &SessionReply::Bundle(Box::new(issued)), t)
                            .await
                            .map_err(gone)?;
                    }
                }
            }
        }
    }
    .await;
    if let Err((kind, message)) = &result {
        tracing::info!(target: "cachecash::cdn", %peer, "session ended: {message}");
        if *kind != ErrorKind::Unavailable || !message.starts_with("client gone") {
            let _ = write_msg(
                &mut wr,
                &SessionReply::Error {
                    kind: *kind,
                    message: wire_text(message),
                },
                t,
            )
            .await;
        }
    }
    session.finish().await;
}

fn gone(e: FrameError) -> Failure {
    (ErrorKind::Unavailable, format!("client gone: {e}"))
}

async fn start<'a>(
    p: &'a Publisher,
    client: AccountId,
    open: &OpenRequest,
) -> Result<(Session<'a>, ObjectInfo), Failure> {
    let escrow = p.state.escrow().ok_or((
        ErrorKind::Unavailable,
        "the publisher's escrow is not ready yet; retry shortly".to_string(),
    ))?;
    if p.state.caches.is_empty() {
        return Err((
            ErrorKind::Unavailable,
            "the publisher has no hired cache yet; retry shortly".into(),
        ));
    }
    let path = std::str::from_utf8(&open.path)
        .map_err(|_| (ErrorKind::BadRequest, "the path is not UTF-8".to_string()))?;
    let entry = p
        .state
        .catalog
        .resolve(path)
        .await
        .map_err(|e| (e.kind, e.message))?;
    let manifest = &entry.manifest.manifest;
    let layout = manifest
        .layout()
        .map_err(|e| (ErrorKind::Unavailable, e.to_string()))?;
    let size = manifest.size;
    let (first, count) = match open.range {
        None => (0, layout.count()),
        // An empty range asks for the metadata only (HEAD, conditional
        // requests): no bundle is issued.
        Some((start, end)) if start == end && end <= size => (0, 0),
        Some((start, end)) => {
            if start >= end || end > size {
                return Err((
                    ErrorKind::BadRequest,
                    format!("range {start}-{end} is not within {path} of {size} bytes"),
                ));
            }
            let first = layout.chunk_of(start).unwrap_or(0);
            let last = layout.chunk_of(end - 1).unwrap_or(0);
            (first, last - first + 1)
        }
    };
    let info = ObjectInfo {
        manifest: entry.manifest.clone(),
        escrow: escrow.id,
        first_chunk: first,
        chunk_count: count,
        content_type: entry.content_type.as_bytes().to_vec(),
        etag: entry.etag.as_bytes().to_vec(),
        last_modified: entry.last_modified.as_bytes().to_vec(),
        cache_control: entry.cache_control.as_bytes().to_vec(),
    };
    let mut pending = VecDeque::new();
    if count > 0 {
        pending.push_back((first, count));
    }
    Ok((
        Session {
            p,
            client,
            entry,
            escrow,
            pending,
            outstanding: Vec::new(),
            abandoned: Vec::new(),
            paid: Vec::new(),
            blames: 0,
            lies: 0,
        },
        info,
    ))
}

impl Session<'_> {
    /// Issues the next bundle from the pending ranges.
    async fn issue(&mut self, replaces: Option<u64>) -> Result<IssuedBundle, Failure> {
        let p = self.p;
        let (first, count) = self
            .pending
            .pop_front()
            .ok_or((ErrorKind::Protocol, "nothing left to issue".to_string()))?;
        let table = p.state.caches.table().ok_or((
            ErrorKind::Unavailable,
            "the publisher has no hired cache".to_string(),
        ))?;
        let k = (count.min(p.state.config.bundle_chunks as u64)) as usize;
        let object = self.entry.object();
        // Only caches that accepted this session's escrow (after a
        // rotation, some may not have yet).
        let escrow_id = self.escrow.id;
        let hired = |a: &AccountId| p.state.caches.is_hired_for(a, &escrow_id);
        let mut caches = table.place(&object, first, k, |a| {
            hired(a) && p.state.caches.is_healthy(a)
        });
        if caches.is_empty() {
            // Every cache is benched: fall back to any hired one rather than stall.
            caches = table.place(&object, first, k, hired);
        }
        if caches.is_empty() {
            self.pending.push_front((first, count));
            return Err((ErrorKind::Unavailable, "no cache can serve".into()));
        }
        let m = caches.len() as u64;
        if m < count {
            self.pending.push_front((first + m, count - m));
        }
        let numbers = &self.escrow.numbers;
        let kv = &p.state.kv;
        let internal = |e: String| (ErrorKind::Unavailable, e);
        let (round, ticket_numbers) = numbers
            .take_numbers(
                kv,
                &self.escrow.terms(),
                p.ledger.head_number(),
                p.state.config.issue_margin,
                caches.len(),
            )
            .map_err(|e| internal(e.to_string()))?;
        let sequence = numbers
            .next_sequence(kv)
            .map_err(|e| internal(e.to_string()))?;
        let manifest = &self.entry.manifest.manifest;
        let layout = manifest.layout().map_err(|e| internal(e.to_string()))?;
        let mut chunks = Vec::with_capacity(caches.len());
        for (i, (cache, number)) in caches.iter().zip(&ticket_numbers).enumerate() {
            let index = first + i as u64;
            chunks.push(ChunkOrder {
                chunk_index: index,
                chunk_id: *manifest
                    .chunk_id(index)
                    .ok_or_else(|| internal(format!("chunk {index} missing")))?,
                size: layout.chunk_len(index).unwrap_or(0),
                cache: *cache,
                ticket_number: *number,
            });
        }
        // The covered chunks: all, or the first `puzzle_covered` of them.
        let k = match p.state.config.puzzle_covered {
            0 => chunks.len(),
            c => c.min(chunks.len()),
        };
        let mut rounds = p.state.config.puzzle_rounds.max(2);
        if usize::from(rounds) * k < 3 {
            rounds = u8::try_from(3usize.div_ceil(k)).unwrap_or(3);
        }
        let order = BundleOrder {
            escrow: self.escrow.id,
            round,
            object,
            object_size: manifest.size,
            chunk_size: manifest.chunk_size,
            client: self.client,
            sequence,
            puzzle: PuzzleParams::covering_all(rounds, p.state.config.puzzle_start_range, k),
            chunks,
        };
        let escrow = self.escrow.clone();
        // Keeps the spool from evicting it while the session reads it.
        self.p.state.catalog.touch(&self.entry);
        let file = self.entry.file();
        let chunk_size = u64::from(manifest.chunk_size);
        let key = p.network.signing_key();
        let (bundle, secret) = tokio::task::spawn_blocking(move || {
            use std::os::unix::fs::FileExt;
            let f = std::fs::File::open(&file).map_err(|e| e.to_string())?;
            let mut source = |chunk: u64, block: u64, out: &mut [u8]| {
                let off = chunk
                    .checked_mul(chunk_size)
                    .and_then(|c| c.checked_add(block.checked_mul(16)?))
                    .ok_or("offset overflow")?;
                f.read_exact_at(out, off)
                    .map_err(cachecash_cdn::puzzle::SourceError::from)
            };
            let prepared =
                prepare_bundle(&order, &escrow.secret, &mut source).map_err(|e| e.to_string())?;
            let secret = prepared.secret().clone();
            let mut signed = sign_bundles(&key, vec![prepared]).map_err(|e| e.to_string())?;
            signed
                .pop()
                .map(|b| (b, secret))
                .ok_or_else(|| "signing produced no bundle".to_string())
        })
        .await
        .map_err(|e| internal(e.to_string()))?
        .map_err(|e| internal(format!("cannot build a bundle: {e}")))?;
        let contacts = caches
            .iter()
            .map(|a| CacheContact {
                account: *a,
                addrs: crate::cdn::encode_addrs(&p.state.caches.addrs(a)),
            })
            .collect();
        self.outstanding.push(Outstanding {
            sequence,
            first_chunk: first,
            count: m.min(count),
            caches: caches.clone(),
            claim: L2Claim {
                sealed: bundle.l2.clone(),
                secret,
            },
            commitment: bundle
                .chunks
                .first()
                .map(|c| c.l1.ticket.secret_hash)
                .unwrap_or(Hash([0; 32])),
            chunk_indexes: bundle
                .chunks
                .iter()
                .map(|c| c.request.chunk_index)
                .collect(),
        });
        p.state.counters.bundles.inc();
        if replaces.is_some() {
            p.state.counters.reissued.inc();
        }
        Ok(IssuedBundle {
            bundle,
            caches: contacts,
            replaces,
        })
    }

    fn take(&mut self, sequence: u64) -> Result<Outstanding, Failure> {
        let i = self
            .outstanding
            .iter()
            .position(|o| o.sequence == sequence)
            .ok_or((
                ErrorKind::Protocol,
                format!("bundle {sequence} is not outstanding in this session"),
            ))?;
        Ok(self.outstanding.remove(i))
    }

    async fn on_secret(&mut self, sequence: u64, secret: PuzzleSecret) -> Result<(), Failure> {
        let o = self.take(sequence)?;
        if secret.commitment() != o.commitment {
            return Err((
                ErrorKind::Protocol,
                format!("the secret for bundle {sequence} is wrong; solve the puzzle"),
            ));
        }
        self.p.state.counters.secrets.inc();
        self.relay(&o).await;
        self.paid.push(o);
        // Only the latest few are kept for the session's bookkeeping.
        if self.paid.len() > 64 {
            self.paid.remove(0);
        }
        Ok(())
    }

    /// Handles a blame; returns the sequence to re-issue for.
    async fn on_blame(
        &mut self,
        sequence: u64,
        position: u8,
        fault: Fault,
    ) -> Result<Option<u64>, Failure> {
        self.blames += 1;
        let limit = 8 + 2 * (self.paid.len() as u64 + self.outstanding.len() as u64);
        if self.blames > limit {
            return Err((ErrorKind::Protocol, "too many blames in one session".into()));
        }
        let o = self.take(sequence)?;
        let p = self.p;
        match &fault {
            Fault::Corrupt(digests) => {
                let liars = self.check_evidence(&o, digests).await?;
                if liars.is_empty() {
                    self.lies += 1;
                    tracing::info!(target: "cachecash::cdn", client = %self.client, sequence, "corruption claim not confirmed by the origin bytes");
                    if self.lies > 2 {
                        return Err((
                            ErrorKind::Protocol,
                            "corruption claims that the origin bytes do not confirm".into(),
                        ));
                    }
                }
                for a in liars {
                    tracing::warn!(target: "cachecash::cdn", cache = %a, sequence, "cache served corrupt bytes; benched");
                    p.state.caches.bench(&a, BENCH_CORRUPT);
                }
            }
            Fault::Refused(reason) => {
                if let Some(a) = o.caches.get(usize::from(position)) {
                    tracing::info!(target: "cachecash::cdn", cache = %a, "cache refused a client: {}", text(reason));
                    p.state.caches.bench(a, BENCH_STALL);
                }
            }
            Fault::Stalled => {
                if let Some(a) = o.caches.get(usize::from(position)) {
                    tracing::info!(target: "cachecash::cdn", cache = %a, "cache stalled for a client");
                    p.state.caches.bench(a, BENCH_STALL);
                }
            }
        }
        self.pending.push_front((o.first_chunk, o.count));
        let seq = o.sequence;
        self.abandoned.push(o);
        Ok(Some(seq))
    }

    /// The positions whose inner ciphertext differs from `digests`.
    async fn check_evidence(
        &self,
        o: &Outstanding,
        digests: &[Hash],
    ) -> Result<Vec<AccountId>, Failure> {
        if digests.len() != o.caches.len() {
            return Err((
                ErrorKind::Protocol,
                format!(
                    "corruption evidence holds {} digests for {} chunks",
                    digests.len(),
                    o.caches.len()
                ),
            ));
        }
        // Keeps the spool from evicting it while the session reads it.
        self.p.state.catalog.touch(&self.entry);
        let file = self.entry.file();
        let object = self.entry.object();
        let chunk_ids: Vec<Hash> = o
            .chunk_indexes
            .iter()
            .map(|&i| {
                self.entry
                    .manifest
                    .manifest
                    .chunk_id(i)
                    .copied()
                    .unwrap_or_default()
            })
            .collect();
        let layout = self
            .entry
            .manifest
            .manifest
            .layout()
            .map_err(|e| (ErrorKind::Unavailable, e.to_string()))?;
        let escrow = self.escrow.clone();
        let client = self.client;
        let o = o.clone();
        let digests = digests.to_vec();
        tokio::task::spawn_blocking(move || {
            let mut liars = Vec::new();
            for (i, cache) in o.caches.iter().enumerate() {
                let index = o.chunk_indexes.get(i).copied().unwrap_or(0);
                let len = layout.chunk_len(index).unwrap_or(0) as usize;
                let off = layout.chunk_offset(index).unwrap_or(0);
                let mut buf = vec![0u8; len];
                super::origin::read_at(&file, off, &mut buf).map_err(|e| e.to_string())?;
                let key = escrow
                    .secret
                    .master_key(&escrow.id, cache, Layer::Inner)
                    .session_key(&client, o.sequence);
                let chunk_id = chunk_ids.get(i).copied().unwrap_or_default();
                LayerCipher::for_chunk(&key, &ChunkAt::new(object, chunk_id, index))
                    .apply(&mut buf);
                let h = Hash(Sha256::digest(&buf).into());
                if digests.get(i) != Some(&h) {
                    liars.push(*cache);
                }
            }
            Ok::<_, String>(liars)
        })
        .await
        .map_err(|e| (ErrorKind::Unavailable, e.to_string()))?
        .map_err(|e| (ErrorKind::Unavailable, e))
    }

    /// Queues a bundle's L2 and secret for each of its caches (waiting
    /// while a cache's relay queue is full: see [`super::relay`]).
    async fn relay(&self, o: &Outstanding) {
        for cache in o.caches.iter().copied() {
            let msg = SecretRelay {
                escrow: self.escrow.id,
                client: self.client,
                sequence: o.sequence,
                claim: o.claim.clone(),
            };
            self.p.state.relays.send(self.p, cache, msg).await;
        }
    }

    /// Relays the secrets of every bundle the client did not pay for.
    async fn finish(mut self) {
        let unpaid: Vec<Outstanding> = self
            .outstanding
            .drain(..)
            .chain(self.abandoned.drain(..))
            .collect();
        for o in &unpaid {
            self.relay(o).await;
        }
    }
}
