//! The testnet's built-in demo content, written into its origin directory
//! when no `--origin` is given: a few files of different sizes (their bytes
//! derived from their names, so digests are reproducible) and a PEP 503
//! package index with one small pure-Python wheel that pip installs.

use anyhow::Context;
use base64::Engine;
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::Path;

/// The demo files: (path, size).
pub const FILES: &[(&str, usize)] = &[
    ("demo/hello.txt", 0),
    ("demo/1MiB.bin", 1 << 20),
    ("demo/16MiB.bin", 16 << 20),
];

/// The demo package.
pub const PACKAGE: &str = "cachecash-demo";
const MODULE: &str = "cachecash_demo";
const VERSION: &str = "1.0";

/// Deterministic bytes for `name`: SHA-256 in counter mode.
pub fn bytes_for(name: &str, size: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(size + 32);
    let mut counter = 0u64;
    while out.len() < size {
        let mut h = Sha256::new();
        h.update(name.as_bytes());
        h.update(counter.to_le_bytes());
        out.extend_from_slice(&h.finalize());
        counter += 1;
    }
    out.truncate(size);
    out
}

/// Writes the demo content under `root` (idempotent: existing files are kept).
pub fn write(root: &Path) -> anyhow::Result<()> {
    for (name, size) in FILES {
        let path = root.join(name);
        if path.exists() {
            continue;
        }
        std::fs::create_dir_all(path.parent().unwrap_or(root))?;
        let body = if *size == 0 {
            b"Hello from the cachecash testnet: this file came through the CDN, paid for with tickets.\n".to_vec()
        } else {
            bytes_for(name, *size)
        };
        std::fs::write(&path, body).with_context(|| format!("cannot write {}", path.display()))?;
    }
    let wheel_name = format!("{MODULE}-{VERSION}-py3-none-any.whl");
    let wheel_path = root.join("packages").join(&wheel_name);
    if !wheel_path.exists() {
        std::fs::create_dir_all(root.join("packages"))?;
        std::fs::write(&wheel_path, wheel()?)
            .with_context(|| format!("cannot write {}", wheel_path.display()))?;
    }
    let digest = hex::encode(Sha256::digest(std::fs::read(&wheel_path)?));
    let project = root.join("simple").join(PACKAGE);
    std::fs::create_dir_all(&project)?;
    std::fs::write(
        root.join("simple/index.html"),
        format!(
            "<!DOCTYPE html>\n<html><body>\n<a href=\"{PACKAGE}/\">{PACKAGE}</a>\n</body></html>\n"
        ),
    )?;
    std::fs::write(
        project.join("index.html"),
        format!(
            "<!DOCTYPE html>\n<html><body>\n<a href=\"../../packages/{wheel_name}#sha256={digest}\">{wheel_name}</a><br/>\n</body></html>\n"
        ),
    )?;
    Ok(())
}

/// A pure-Python wheel (PEP 427): the module, METADATA, WHEEL and a RECORD
/// with each file's urlsafe-base64 SHA-256.
fn wheel() -> anyhow::Result<Vec<u8>> {
    let dist = format!("{MODULE}-{VERSION}.dist-info");
    let files = [
        (
            format!("{MODULE}/__init__.py"),
            format!(
                "\"\"\"Installed through the cachecash CDN by unmodified pip.\"\"\"\n\nVERSION = \"{VERSION}\"\n"
            ),
        ),
        (
            format!("{dist}/METADATA"),
            format!(
                "Metadata-Version: 2.1\nName: {PACKAGE}\nVersion: {VERSION}\nSummary: The cachecash testnet's demo package\n"
            ),
        ),
        (
            format!("{dist}/WHEEL"),
            "Wheel-Version: 1.0\nGenerator: cachecash testnet\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
                .to_string(),
        ),
    ];
    let mut record = String::new();
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for (name, text) in &files {
        zip.start_file(name.as_str(), options)?;
        zip.write_all(text.as_bytes())?;
        let h = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(text));
        record.push_str(&format!("{name},sha256={h},{}\n", text.len()));
    }
    record.push_str(&format!("{dist}/RECORD,,\n"));
    zip.start_file(format!("{dist}/RECORD"), options)?;
    zip.write_all(record.as_bytes())?;
    Ok(zip.finish()?.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_content_is_reproducible_and_the_index_names_the_wheel_digest() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        write(a.path()).unwrap();
        write(b.path()).unwrap();
        for (name, size) in FILES {
            let x = std::fs::read(a.path().join(name)).unwrap();
            assert_eq!(x, std::fs::read(b.path().join(name)).unwrap());
            if *size > 0 {
                assert_eq!(x.len(), *size);
            }
        }
        let wheel = std::fs::read(
            a.path()
                .join("packages/cachecash_demo-1.0-py3-none-any.whl"),
        )
        .unwrap();
        assert_eq!(&wheel[..2], b"PK", "a zip archive");
        let index =
            std::fs::read_to_string(a.path().join("simple/cachecash-demo/index.html")).unwrap();
        assert!(index.contains(&format!("#sha256={}", hex::encode(Sha256::digest(&wheel)))));
    }
}
