//! The block export file (`export-blocks` / `import-blocks`).
//!
//! ```text
//! magic   8 bytes   "CCHBLK\0\x01" (format version 1)
//! genesis 32 bytes  genesis hash of the chain the blocks belong to
//! then, per block, in ascending height:
//!   length  u32 little-endian   byte length of the next field
//!   block   SCALE(Block)
//! ```
//!
//! A reader rejects a wrong magic, another chain's genesis, a length above
//! the chain's block-size limit and a truncated record, each with a clear
//! error, and never allocates more than one block's limit.

use cachecash_runtime::{Block, Hash};
use parity_scale_codec::Encode;
use std::io::{Read, Write};

/// File magic including the format version.
pub const MAGIC: [u8; 8] = *b"CCHBLK\x00\x01";

/// Block-file errors.
#[derive(Debug, thiserror::Error)]
pub enum BlockFileError {
    /// I/O.
    #[error("block file I/O: {0}")]
    Io(#[from] std::io::Error),
    /// Not a block file.
    #[error("not a cachecash block file (bad magic); export one with `cachecash export-blocks`")]
    BadMagic,
    /// Other chain.
    #[error(
        "the file holds blocks of the chain with genesis {found}, but this chain's genesis is {expected}; pass the matching --chain"
    )]
    WrongChain {
        /// In file.
        found: Hash,
        /// Expected.
        expected: Hash,
    },
    /// Record too large.
    #[error(
        "record {index} claims {size} bytes, above the block limit of {limit}; the file is corrupt"
    )]
    TooLarge {
        /// Record index.
        index: u64,
        /// Claimed size.
        size: usize,
        /// Limit.
        limit: usize,
    },
    /// Truncated.
    #[error("record {0} is truncated; the file is incomplete")]
    Truncated(u64),
}

/// Writes a block file.
#[derive(Debug)]
pub struct BlockFileWriter<W: Write> {
    out: W,
}

impl<W: Write> BlockFileWriter<W> {
    /// Writes the header.
    pub fn new(mut out: W, genesis: &Hash) -> Result<Self, BlockFileError> {
        out.write_all(&MAGIC)?;
        out.write_all(genesis.as_bytes())?;
        Ok(BlockFileWriter { out })
    }

    /// Appends a block.
    pub fn write(&mut self, block: &Block) -> Result<(), BlockFileError> {
        let bytes = block.encode();
        let len = u32::try_from(bytes.len())
            .map_err(|_| BlockFileError::Io(std::io::Error::other("block larger than 4 GiB")))?;
        self.out.write_all(&len.to_le_bytes())?;
        self.out.write_all(&bytes)?;
        Ok(())
    }

    /// Flushes and returns the writer.
    pub fn finish(mut self) -> Result<W, BlockFileError> {
        self.out.flush()?;
        Ok(self.out)
    }
}

/// Reads a block file, yielding encoded blocks.
#[derive(Debug)]
pub struct BlockFileReader<R: Read> {
    input: R,
    limit: usize,
    index: u64,
}

impl<R: Read> BlockFileReader<R> {
    /// Checks the header against `genesis`; records may be at most `limit` bytes.
    pub fn new(mut input: R, genesis: &Hash, limit: usize) -> Result<Self, BlockFileError> {
        let mut magic = [0u8; 8];
        input
            .read_exact(&mut magic)
            .map_err(|_| BlockFileError::BadMagic)?;
        if magic != MAGIC {
            return Err(BlockFileError::BadMagic);
        }
        let mut g = [0u8; 32];
        input
            .read_exact(&mut g)
            .map_err(|_| BlockFileError::BadMagic)?;
        if Hash(g) != *genesis {
            return Err(BlockFileError::WrongChain {
                found: Hash(g),
                expected: *genesis,
            });
        }
        Ok(BlockFileReader {
            input,
            limit,
            index: 0,
        })
    }

    /// The next encoded block, or `None` at a clean end of file.
    pub fn next_encoded(&mut self) -> Result<Option<Vec<u8>>, BlockFileError> {
        let mut len = [0u8; 4];
        let mut filled = 0;
        while filled < len.len() {
            let n = self.input.read(&mut len[filled..])?;
            if n == 0 {
                if filled == 0 {
                    return Ok(None);
                }
                return Err(BlockFileError::Truncated(self.index));
            }
            filled += n;
        }
        let size = usize::try_from(u32::from_le_bytes(len)).unwrap_or(usize::MAX);
        if size > self.limit {
            return Err(BlockFileError::TooLarge {
                index: self.index,
                size,
                limit: self.limit,
            });
        }
        let mut buf = vec![0u8; size];
        self.input
            .read_exact(&mut buf)
            .map_err(|_| BlockFileError::Truncated(self.index))?;
        self.index += 1;
        Ok(Some(buf))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reader_rejects_other_chains_bad_magic_and_truncation() {
        let g = Hash([1; 32]);
        let mut w = BlockFileWriter::new(Vec::new(), &g).unwrap();
        let block = Block {
            header: cachecash_runtime::Header {
                parent_hash: Hash([2; 32]),
                number: 1,
                timestamp: 5,
                transactions_root: Hash([3; 32]),
                state_root: Hash([4; 32]),
                target: cachecash_runtime::Target::MAX,
                miner: Default::default(),
                nonce: 9,
            },
            transactions: vec![],
        };
        w.write(&block).unwrap();
        let bytes = w.finish().unwrap();
        let mut r = BlockFileReader::new(&bytes[..], &g, 1 << 20).unwrap();
        assert_eq!(r.next_encoded().unwrap().unwrap(), block.encode());
        assert!(r.next_encoded().unwrap().is_none());
        assert!(matches!(
            BlockFileReader::new(&bytes[..], &Hash([9; 32]), 1 << 20),
            Err(BlockFileError::WrongChain { .. })
        ));
        assert!(matches!(
            BlockFileReader::new(
                &b"garbage-garbage-garbage-garbage-garbage-garbage"[..],
                &g,
                10
            ),
            Err(BlockFileError::BadMagic)
        ));
        let mut r = BlockFileReader::new(&bytes[..bytes.len() - 3], &g, 1 << 20).unwrap();
        assert!(matches!(
            r.next_encoded(),
            Err(BlockFileError::Truncated(0))
        ));
        let mut r = BlockFileReader::new(&bytes[..], &g, 10).unwrap();
        assert!(matches!(
            r.next_encoded(),
            Err(BlockFileError::TooLarge { .. })
        ));
    }
}
