//! The CDN services' wire messages: what publishers, caches and clients
//! say to each other over libp2p streams.
//!
//! # Protocols and framing
//!
//! Two stream protocols carry them, both namespaced by the genesis hash:
//!
//! - **control** (`/cachecash/<genesis>/cdn/publisher/1` at publishers,
//!   `/cachecash/<genesis>/cdn/cache/1` at caches): one
//!   [`ControlRequest`] opens a stream and decides what follows:
//!   - `Offer`: publisher → cache, answered by one [`OfferReply`];
//!   - `Fill`: cache → publisher, answered by one [`FillReply`], and on
//!     `Data { len }` by exactly `len` raw plaintext bytes;
//!   - `Open`: client → publisher, a session: the publisher sends
//!     [`SessionReply`] messages (the object, then bundles), the client sends
//!     [`SessionRequest`] messages (puzzle secrets, blame);
//!   - `Relay`: publisher → cache, the L2 and secret of a solved bundle.
//! - **chunk** (`/cachecash/<genesis>/cdn/chunk/1`): a long-lived stream
//!   per client–cache pair. The client sends [`ChunkRequest`]s, the cache
//!   answers each with one [`ChunkReply`]; `Data { len }` is followed by
//!   exactly `len` raw doubly-encrypted bytes.
//!
//! Every message is framed as `u32 LE length ‖ SCALE value` and decoded by
//! [`decode_bounded`]: the length is checked against the type's limit before
//! anything is read, trailing bytes are refused, vector lengths are capped.
//! Bulk bytes (chunks) are never framed as messages, so no reader buffers
//! more than one message; chunk bytes are streamed into the caller's buffer.

use cachecash_runtime::microcash::{EscrowId, SignedTicket};
use cachecash_runtime::{AccountId, Hash};
use parity_scale_codec::{Decode, Encode};

use crate::bundle::{Bundle, CacheRequest, L2Claim};
use crate::codec::{WireMessage, decode_bounded};
use crate::error::DecodeError;
use crate::keys::{MasterKey, PuzzleSecret, SessionKey};
use crate::manifest::{ObjectId, SignedManifest};
use crate::puzzle::MAX_BUNDLE_CHUNKS;

/// Longest object path in bytes.
pub const MAX_PATH: usize = 1024;
/// Longest reason or error text in bytes.
pub const MAX_TEXT: usize = 512;
/// Longest header value passed through (content type, ETag, dates).
pub const MAX_HEADER: usize = 256;
/// Most addresses per cache contact.
pub const MAX_ADDRS: usize = 8;
/// Longest encoded multiaddress.
pub const MAX_ADDR_BYTES: usize = 256;
/// Most bundles a client may ask to have in flight.
pub const MAX_WINDOW: u8 = 8;
/// Largest chunk body announced by `Data { len }` (the manifest's chunk limit).
pub const MAX_CHUNK_BYTES: u32 = crate::manifest::MAX_CHUNK_SIZE;

fn check_text(what: &str, text: &[u8], max: usize) -> Result<(), String> {
    if text.len() > max {
        return Err(format!("{what} of {} bytes, over {max}", text.len()));
    }
    Ok(())
}

/// A publisher hires a cache for an escrow: the cache's own master keys.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode)]
pub struct EscrowOffer {
    /// The escrow, which must exist on chain.
    pub escrow: EscrowId,
    /// The escrow's ticket signer; must be the offering peer's key.
    pub signer: AccountId,
    /// The cache's inner-layer master key.
    pub inner: MasterKey,
    /// The cache's outer-layer master key.
    pub outer: MasterKey,
}

/// A cache's answer to an offer.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode)]
pub enum OfferReply {
    /// Hired.
    #[codec(index = 0)]
    Accepted,
    /// Refused, with the reason.
    #[codec(index = 1)]
    Refused(Vec<u8>),
}

/// A cache asks its publisher for a chunk it lacks.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Encode, Decode)]
pub struct FillRequest {
    /// The escrow the cache was hired for.
    pub escrow: EscrowId,
    /// The object.
    pub object: ObjectId,
    /// The chunk's index in the object.
    pub chunk_index: u64,
    /// The chunk's id (manifest digest), which the cache checks the bytes against.
    pub chunk_id: Hash,
}

/// A publisher's answer to a fill.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode)]
pub enum FillReply {
    /// `len` plaintext bytes follow.
    #[codec(index = 0)]
    Data {
        /// Byte count.
        len: u32,
    },
    /// Refused, with the reason.
    #[codec(index = 1)]
    Refused(Vec<u8>),
}

/// A client opens a session for an object (or a byte range of it).
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode)]
pub struct OpenRequest {
    /// The object's path at the publisher, starting with `/`.
    pub path: Vec<u8>,
    /// Byte range `[start, end)`; the whole object when absent.
    pub range: Option<(u64, u64)>,
    /// Bundles the client wants in flight (the publisher may give fewer).
    pub window: u8,
}

/// The publisher relays a solved bundle's L2 and secret to one of its caches.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode)]
pub struct SecretRelay {
    /// The escrow.
    pub escrow: EscrowId,
    /// The client the bundle was for.
    pub client: AccountId,
    /// The bundle sequence.
    pub sequence: u64,
    /// The sealed L2 and the secret that opens it.
    pub claim: L2Claim,
}

/// The first message of every control stream.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode)]
pub enum ControlRequest {
    /// Publisher → cache.
    #[codec(index = 0)]
    Offer(EscrowOffer),
    /// Cache → publisher.
    #[codec(index = 1)]
    Fill(FillRequest),
    /// Client → publisher.
    #[codec(index = 2)]
    Open(OpenRequest),
    /// Publisher → cache.
    #[codec(index = 3)]
    Relay(SecretRelay),
}

/// What an object is, as the client needs it before the first bundle.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode)]
pub struct ObjectInfo {
    /// The manifest, signed by the publisher's key.
    pub manifest: SignedManifest,
    /// The escrow that pays for the bundles.
    pub escrow: EscrowId,
    /// First chunk the session delivers.
    pub first_chunk: u64,
    /// Chunks the session delivers.
    pub chunk_count: u64,
    /// Origin `Content-Type`, when known.
    pub content_type: Vec<u8>,
    /// Origin `ETag`, when known.
    pub etag: Vec<u8>,
    /// Origin `Last-Modified`, when known.
    pub last_modified: Vec<u8>,
    /// Origin `Cache-Control`, when known.
    pub cache_control: Vec<u8>,
}

/// How a client reaches one cache of a bundle.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode)]
pub struct CacheContact {
    /// The cache's account (its libp2p ed25519 key).
    pub account: AccountId,
    /// Its addresses (encoded multiaddresses).
    pub addrs: Vec<Vec<u8>>,
}

/// A bundle as issued in a session.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode)]
pub struct IssuedBundle {
    /// The signed bundle.
    pub bundle: Bundle,
    /// Contacts of its caches, in position order.
    pub caches: Vec<CacheContact>,
    /// The sequence of the bundle this one replaces (after a blame).
    pub replaces: Option<u64>,
}

/// Why a publisher could not serve.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Encode, Decode)]
pub enum ErrorKind {
    /// The request was malformed or not allowed (path escapes, bad range).
    #[codec(index = 0)]
    BadRequest,
    /// The origin has no such object.
    #[codec(index = 1)]
    NotFound,
    /// The origin failed or timed out.
    #[codec(index = 2)]
    Upstream,
    /// The publisher cannot issue (no caches, escrow exhausted, shutting down).
    #[codec(index = 3)]
    Unavailable,
    /// The client broke the protocol (wrong secret, too many blames).
    #[codec(index = 4)]
    Protocol,
}

/// Publisher → client, in a session.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode)]
pub enum SessionReply {
    /// The object; always first.
    #[codec(index = 0)]
    Object(Box<ObjectInfo>),
    /// A bundle.
    #[codec(index = 1)]
    Bundle(Box<IssuedBundle>),
    /// Every bundle of the session is issued and paid for.
    #[codec(index = 2)]
    Done,
    /// The session failed.
    #[codec(index = 3)]
    Error {
        /// What kind of failure.
        kind: ErrorKind,
        /// What went wrong, for the user.
        message: Vec<u8>,
    },
}

/// What the client blames a cache for.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode)]
pub enum Fault {
    /// The cache refused, with its reason.
    #[codec(index = 0)]
    Refused(Vec<u8>),
    /// The cache did not answer within the deadline, or the link failed.
    #[codec(index = 1)]
    Stalled,
    /// The puzzle did not open the L2: the SHA-256 of each covered
    /// position's inner ciphertext as received (outer layer removed), in
    /// position order. The publisher recomputes them to find the liar.
    #[codec(index = 2)]
    Corrupt(Vec<Hash>),
}

/// Client → publisher, in a session.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode)]
pub enum SessionRequest {
    /// The secret of a solved bundle: payment.
    #[codec(index = 0)]
    Secret {
        /// Bundle sequence.
        sequence: u64,
        /// The puzzle secret.
        secret: PuzzleSecret,
    },
    /// A cache failed; the publisher re-issues the bundle.
    #[codec(index = 1)]
    Blame {
        /// Bundle sequence.
        sequence: u64,
        /// Position of the failed cache (any, for `Corrupt`).
        position: u8,
        /// What happened.
        fault: Fault,
    },
}

/// Client → cache, on a chunk stream.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode)]
pub enum ChunkRequest {
    /// Serve this chunk.
    #[codec(index = 0)]
    Get(Box<CacheRequest>),
    /// The L1 of the chunk just served; the cache answers with the outer key.
    #[codec(index = 1)]
    L1(Box<SignedTicket>),
}

/// Cache → client, on a chunk stream.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode)]
pub enum ChunkReply {
    /// `len` doubly encrypted bytes follow.
    #[codec(index = 0)]
    Data {
        /// Byte count.
        len: u32,
    },
    /// The outer session key for the chunk just served.
    #[codec(index = 1)]
    OuterKey(SessionKey),
    /// Refused, with the reason.
    #[codec(index = 2)]
    Refused(Vec<u8>),
}

impl WireMessage for ControlRequest {
    const NAME: &'static str = "ControlRequest";
    const MAX_BYTES: usize = 2048;

    fn check_bounds(&self) -> Result<(), String> {
        match self {
            ControlRequest::Open(o) => {
                check_text("path", &o.path, MAX_PATH)?;
                if o.window == 0 || o.window > MAX_WINDOW {
                    return Err(format!("window of {}; 1 to {MAX_WINDOW}", o.window));
                }
                Ok(())
            }
            ControlRequest::Relay(r) => r.claim.check_bounds(),
            ControlRequest::Offer(_) | ControlRequest::Fill(_) => Ok(()),
        }
    }
}

impl WireMessage for OfferReply {
    const NAME: &'static str = "OfferReply";
    const MAX_BYTES: usize = MAX_TEXT + 8;

    fn check_bounds(&self) -> Result<(), String> {
        match self {
            OfferReply::Refused(r) => check_text("reason", r, MAX_TEXT),
            OfferReply::Accepted => Ok(()),
        }
    }
}

impl WireMessage for FillReply {
    const NAME: &'static str = "FillReply";
    const MAX_BYTES: usize = MAX_TEXT + 8;

    fn check_bounds(&self) -> Result<(), String> {
        match self {
            FillReply::Refused(r) => check_text("reason", r, MAX_TEXT),
            FillReply::Data { len } if *len > MAX_CHUNK_BYTES => {
                Err(format!("chunk of {len} bytes, over {MAX_CHUNK_BYTES}"))
            }
            FillReply::Data { .. } => Ok(()),
        }
    }
}

impl WireMessage for SessionReply {
    const NAME: &'static str = "SessionReply";
    const MAX_BYTES: usize = SignedManifest::MAX_BYTES + 4096;

    fn check_bounds(&self) -> Result<(), String> {
        match self {
            SessionReply::Object(o) => {
                o.manifest.check_bounds()?;
                check_text("content type", &o.content_type, MAX_HEADER)?;
                check_text("ETag", &o.etag, MAX_HEADER)?;
                check_text("Last-Modified", &o.last_modified, MAX_HEADER)?;
                check_text("Cache-Control", &o.cache_control, MAX_HEADER)
            }
            SessionReply::Bundle(b) => {
                b.bundle.check_bounds()?;
                if b.caches.len() != b.bundle.chunks.len() {
                    return Err(format!(
                        "{} cache contacts for {} chunks",
                        b.caches.len(),
                        b.bundle.chunks.len()
                    ));
                }
                for c in &b.caches {
                    if c.addrs.len() > MAX_ADDRS {
                        return Err(format!("{} addresses, over {MAX_ADDRS}", c.addrs.len()));
                    }
                    for a in &c.addrs {
                        check_text("address", a, MAX_ADDR_BYTES)?;
                    }
                }
                Ok(())
            }
            SessionReply::Error { message, .. } => check_text("message", message, MAX_TEXT),
            SessionReply::Done => Ok(()),
        }
    }
}

impl WireMessage for SessionRequest {
    const NAME: &'static str = "SessionRequest";
    const MAX_BYTES: usize = 1024;

    fn check_bounds(&self) -> Result<(), String> {
        match self {
            SessionRequest::Blame {
                position, fault, ..
            } => {
                if usize::from(*position) >= MAX_BUNDLE_CHUNKS {
                    return Err(format!("position {position}, over {MAX_BUNDLE_CHUNKS}"));
                }
                match fault {
                    Fault::Refused(r) => check_text("reason", r, MAX_TEXT),
                    Fault::Corrupt(d) if d.len() > MAX_BUNDLE_CHUNKS => {
                        Err(format!("{} digests, over {MAX_BUNDLE_CHUNKS}", d.len()))
                    }
                    _ => Ok(()),
                }
            }
            SessionRequest::Secret { .. } => Ok(()),
        }
    }
}

impl WireMessage for ChunkRequest {
    const NAME: &'static str = "ChunkRequest";
    const MAX_BYTES: usize = 4096;

    fn check_bounds(&self) -> Result<(), String> {
        match self {
            ChunkRequest::Get(r) => r.check_bounds(),
            ChunkRequest::L1(t) => t.check_bounds(),
        }
    }
}

impl WireMessage for ChunkReply {
    const NAME: &'static str = "ChunkReply";
    const MAX_BYTES: usize = MAX_TEXT + 8;

    fn check_bounds(&self) -> Result<(), String> {
        match self {
            ChunkReply::Refused(r) => check_text("reason", r, MAX_TEXT),
            ChunkReply::Data { len } if *len > MAX_CHUNK_BYTES => {
                Err(format!("chunk of {len} bytes, over {MAX_CHUNK_BYTES}"))
            }
            _ => Ok(()),
        }
    }
}

/// Decodes any service message from one frame (see [`crate::codec`]).
pub fn decode<T: WireMessage>(bytes: &[u8]) -> Result<T, DecodeError> {
    decode_bounded(bytes)
}

/// Text from the wire, for logs and errors: lossy UTF-8, control
/// characters replaced, so a peer cannot forge log lines.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .chars()
        .map(|c| if c.is_control() { '�' } else { c })
        .collect()
}

/// Text for the wire, cut to [`MAX_TEXT`] bytes on a character boundary.
pub fn wire_text(s: &str) -> Vec<u8> {
    let mut end = s.len().min(MAX_TEXT);
    while !s.is_char_boundary(end) {
        end = end.saturating_sub(1);
    }
    s.as_bytes().get(..end).unwrap_or_default().to_vec()
}
