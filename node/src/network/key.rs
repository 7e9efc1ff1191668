//! The node key: an ed25519 keypair whose public key is the node's PeerId.
//!
//! It lives in `<base>/chains/<id>/network/secret_ed25519` (or the file
//! named by `--node-key-file`) as 64 hex characters — the 32-byte secret —
//! written with mode 0600. It is generated on first start, so the PeerId is
//! stable across restarts and can be written into other nodes' `--bootnodes`.

use libp2p::identity::{Keypair, ed25519};
use std::path::{Path, PathBuf};

/// Why the node key could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum NodeKeyError {
    /// The file could not be read or written.
    #[error("node key file {path}: {source}; check the path and its permissions")]
    Io {
        /// The file.
        path: PathBuf,
        /// OS error.
        source: std::io::Error,
    },
    /// The file does not hold a key.
    #[error(
        "node key file {path} does not hold a node key ({why}); it must contain 64 hex characters (a 32-byte ed25519 secret). Move it away to generate a new key, which changes the PeerId"
    )]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
}

/// Loads the key at `path`, creating it (and its directory) if missing.
pub fn load_or_generate(path: &Path) -> Result<Keypair, NodeKeyError> {
    let io = |source| NodeKeyError::Io {
        path: path.to_path_buf(),
        source,
    };
    match std::fs::read_to_string(path) {
        Ok(text) => parse(text.trim()).map_err(|why| NodeKeyError::Malformed {
            path: path.to_path_buf(),
            why,
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(io)?;
            }
            let secret = ed25519::SecretKey::generate();
            let text = hex::encode(secret.as_ref());
            write_private(path, &text).map_err(io)?;
            let pair = ed25519::Keypair::from(secret);
            Ok(Keypair::from(pair))
        }
        Err(e) => Err(io(e)),
    }
}

/// The ed25519 signing key of a node keypair: the node's account in the
/// CDN roles, so a peer's libp2p identity and its ledger account are one key.
pub fn signing_key(key: &Keypair) -> Result<ed25519_dalek::SigningKey, NodeKeyError> {
    let pair = key
        .clone()
        .try_into_ed25519()
        .map_err(|e| NodeKeyError::Malformed {
            path: PathBuf::new(),
            why: format!("not an ed25519 key: {e}"),
        })?;
    let secret = pair.secret();
    let bytes: &[u8] = secret.as_ref();
    let mut seed = [0u8; 32];
    if bytes.len() != 32 {
        return Err(NodeKeyError::Malformed {
            path: PathBuf::new(),
            why: "the ed25519 secret is not 32 bytes".into(),
        });
    }
    seed.copy_from_slice(bytes);
    Ok(ed25519_dalek::SigningKey::from_bytes(&seed))
}

fn parse(text: &str) -> Result<Keypair, String> {
    // `cachecash key generate -o FILE` writes the seed with a 0x prefix.
    let text = text.strip_prefix("0x").unwrap_or(text);
    let mut bytes = hex::decode(text).map_err(|e| format!("not hex: {e}"))?;
    if bytes.len() != 32 {
        return Err(format!("{} bytes instead of 32", bytes.len()));
    }
    let secret = ed25519::SecretKey::try_from_bytes(&mut bytes).map_err(|e| e.to_string())?;
    Ok(Keypair::from(ed25519::Keypair::from(secret)))
}

#[cfg(unix)]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    std::fs::write(path, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_key_is_reloaded_with_the_same_peer_id() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("network").join("secret_ed25519");
        let a = load_or_generate(&path).unwrap();
        let b = load_or_generate(&path).unwrap();
        assert_eq!(a.public().to_peer_id(), b.public().to_peer_id());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn a_malformed_key_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        std::fs::write(&path, "not a key").unwrap();
        let err = load_or_generate(&path).unwrap_err().to_string();
        assert!(err.contains("64 hex characters"), "{err}");
        std::fs::write(&path, "00".repeat(31)).unwrap();
        let err = load_or_generate(&path).unwrap_err().to_string();
        assert!(err.contains("31 bytes"), "{err}");
    }

    #[test]
    fn a_known_secret_gives_a_known_peer_id() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        std::fs::write(&path, "01".repeat(32)).unwrap();
        let id = load_or_generate(&path).unwrap().public().to_peer_id();
        // Golden: the PeerId of the ed25519 secret 0x0101…01.
        assert_eq!(id.to_string(), GOLDEN_PEER_ID);
    }

    // Checked independently: base58(identity multihash(protobuf{Ed25519, pk})).
    const GOLDEN_PEER_ID: &str = "12D3KooWK99VoVxNE7XzyBwXEzW7xhK7Gpv85r9F3V3fyKSUKPH5";
}
