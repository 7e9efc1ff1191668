//! Tests of the puzzle: walks, solver, parameters and golden vectors.

use super::*;
use crate::layers::LayerCipher;

#[test]
fn one_compression_step_is_sha256_of_48_bytes() {
    let state: [u8; 32] = core::array::from_fn(|i| i as u8);
    let block: [u8; 16] = core::array::from_fn(|i| 0xf0 ^ i as u8);
    let mut lane = Lane::new(&to_words(&state), 0);
    let mut expected = state;
    for round in 0..3u8 {
        let mut message = expected.to_vec();
        message.extend_from_slice(&block.map(|b| b ^ round));
        let prev = expected;
        expected = Sha256::digest(message.as_slice()).into();
        lane.step(&block.map(|b| b ^ round), false);
        assert_eq!(to_bytes(&lane.state), expected);
        assert_eq!(to_bytes(&lane.prev), prev);
        // The next compression input starts with the new chain value.
        assert_eq!(lane.message[..32], expected);
        let mut tail = [0u8; 8];
        tail.copy_from_slice(&expected[24..]);
        assert_eq!(lane.tail(), u64::from_le_bytes(tail));
    }
}

#[test]
fn masks_and_divisions_reduce_alike() {
    for count in [1u64, 2, 3, 7, 8, 8192, 8193, 1 << 40] {
        let m = Modulus::new(count);
        assert_eq!(m.mask.is_some(), count.is_power_of_two());
        for v in [0u64, 1, count - 1, count, u64::MAX, 0x0123_4567_89ab_cdef] {
            assert_eq!(m.reduce(v), v % count, "{v} mod {count}");
        }
    }
    assert_eq!(Modulus::new(0).reduce(5), 0);
}

#[test]
fn degenerate_parameters_are_rejected() {
    let p = |rounds, covered| PuzzleParams {
        rounds,
        start_range: 8,
        covered,
    };
    assert_eq!(
        p(1, 0b1).check(1),
        Err(PuzzleError::Degenerate { product: 1 })
    );
    assert_eq!(
        p(0, 0b1111).check(4),
        Err(PuzzleError::Degenerate { product: 0 })
    );
    assert_eq!(
        p(2, 0b1).check(1),
        Err(PuzzleError::Degenerate { product: 2 })
    );
    assert_eq!(
        p(1, 0b1111).check(4),
        Err(PuzzleError::TooFewRounds { rounds: 1 })
    );
    assert_eq!(
        p(33, 0b1).check(1),
        Err(PuzzleError::TooManyRounds {
            rounds: 33,
            max: MAX_ROUNDS
        })
    );
    assert_eq!(p(2, 0).check(4), Err(PuzzleError::NothingCovered));
    assert!(matches!(
        p(2, 0b10000).check(4),
        Err(PuzzleError::CoverOutOfRange { .. })
    ));
    assert!(matches!(
        p(2, 1).check(17),
        Err(PuzzleError::BundleSize { .. })
    ));
    assert_eq!(
        PuzzleParams {
            rounds: 2,
            start_range: 0,
            covered: 0b11
        }
        .check(2),
        Err(PuzzleError::EmptyStartRange)
    );
    assert_eq!(p(2, 0b1011).check(4), Ok(3));
    assert_eq!(p(3, 0b1).check(1), Ok(1));
    assert_eq!(PuzzleParams::covering_all(2, 8, 16).covered, u16::MAX);
    assert_eq!(
        PuzzleParams::covering_all(2, 8, 4).covered_positions(),
        [0, 1, 2, 3]
    );
}

#[test]
fn padded_blocks_zero_fill_the_tail() {
    let chunk = [7u8; 20];
    let blocks = ChunkBlocks::new(&chunk);
    assert_eq!(blocks.block(0), [7u8; 16]);
    let mut tail = [0u8; 16];
    tail[..4].copy_from_slice(&[7; 4]);
    assert_eq!(blocks.block(1), tail);
    // Offsets are reduced below the block count; anything past it reads
    // as the padded tail rather than panicking.
    assert_eq!(blocks.block(u64::MAX), tail);
    let exact = ChunkBlocks::new(&[9u8; 32]);
    assert_eq!(exact.block(1), [9u8; 16]);
    assert_eq!(exact.block(2), [0u8; 16]);
}

#[test]
fn generate_then_solve_in_every_shape() {
    // Chunk lengths with a full, a ragged and a sub-block last chunk.
    for lens in [[64u32, 64, 64, 64], [64, 64, 64, 5], [33, 16, 1, 48]] {
        let chunk_size = 64u32;
        let data: Vec<u8> = (0..(chunk_size * 3 + lens[3]))
            .map(|i| (i * 31 + 7) as u8)
            .collect();
        let keys: Vec<SessionKey> = (0..4u8)
            .map(|i| SessionKey::from_bytes([i + 1; 16]))
            .collect();
        // Inner-encrypted copies of the chunks, as a client holds them.
        let mut encrypted = Vec::new();
        let mut pchunks = Vec::new();
        for (i, len) in lens.iter().enumerate() {
            let start = i * chunk_size as usize;
            let key = keys[i].clone();
            let iv = key.chunk_iv(&crate::keys::ChunkAt::new(
                Hash([1; 32]),
                Hash([2; 32]),
                i as u64,
            ));
            let mut bytes = data[start..start + *len as usize].to_vec();
            LayerCipher::new(&key, &iv).apply(&mut bytes);
            encrypted.push(bytes);
            pchunks.push(PuzzleChunk {
                chunk: i as u64,
                len: *len,
                key,
                iv,
            });
        }
        // The source serves each chunk's first `len` bytes of its slot.
        let mut source = |c: u64, b: u64, out: &mut [u8]| -> Result<(), SourceError> {
            let s = (c * u64::from(chunk_size) + b * 16) as usize;
            out.copy_from_slice(&data[s..s + out.len()]);
            Ok(())
        };
        let params = PuzzleParams::covering_all(2, 8192, 4);
        let generated = generate(&params, &pchunks, &mut source).unwrap();
        let views: Vec<&[u8]> = encrypted.iter().map(Vec::as_slice).collect();
        let solved = solve(&params, &views, &generated.goal).unwrap();
        assert_eq!(solved.secret, generated.secret, "lens {lens:?}");
        let parallel = solve_parallel(&params, &views, &generated.goal, 3).unwrap();
        assert_eq!(parallel.secret, generated.secret);
        assert_eq!(
            verify(&params, &views, solved.start, &generated.goal).unwrap(),
            generated.secret
        );
    }
}

/// Chunks of `lens` bytes in 64-byte slots, their publisher view and the
/// client's inner-encrypted copies.
fn shaped(lens: &[u32]) -> (Vec<u8>, Vec<PuzzleChunk>, Vec<Vec<u8>>) {
    let data: Vec<u8> = (0..64 * lens.len() as u32)
        .map(|i| (i * 29 + 3) as u8)
        .collect();
    let mut publisher = Vec::new();
    let mut client = Vec::new();
    for (i, len) in lens.iter().enumerate() {
        let key = SessionKey::from_bytes([0x70 ^ i as u8; 16]);
        let iv = key.chunk_iv(&crate::keys::ChunkAt::new(
            Hash([1; 32]),
            Hash([2; 32]),
            i as u64,
        ));
        let mut bytes = data[i * 64..i * 64 + *len as usize].to_vec();
        LayerCipher::new(&key, &iv).apply(&mut bytes);
        client.push(bytes);
        publisher.push(PuzzleChunk {
            chunk: i as u64,
            len: *len,
            key,
            iv,
        });
    }
    (data, publisher, client)
}

#[test]
fn generation_reads_only_the_visited_blocks_and_stops_at_a_failed_read() {
    let lens = [64u32, 40, 64, 7];
    let (data, publisher, _) = shaped(&lens);
    let params = PuzzleParams::covering_all(3, 8192, 4);
    let mut reads = Vec::new();
    let mut source = |c: u64, b: u64, out: &mut [u8]| -> Result<(), SourceError> {
        reads.push((c, b, out.len()));
        let at = (c * 64 + b * 16) as usize;
        out.copy_from_slice(&data[at..at + out.len()]);
        Ok(())
    };
    generate(&params, &publisher, &mut source).unwrap();
    // R·k − 1 reads, round-robin from chunk 0, each one block (or the
    // bytes of a partial last block) inside its chunk.
    assert_eq!(reads.len(), 3 * 4 - 1);
    for (t, (c, b, n)) in reads.iter().enumerate() {
        assert_eq!(*c, t as u64 % 4);
        let len = u64::from(lens[*c as usize]);
        assert!(*b < block_count(len));
        assert_eq!(*n as u64, (len - b * 16).min(16));
    }

    let mut calls = 0;
    let mut failing = |_: u64, _: u64, _: &mut [u8]| -> Result<(), SourceError> {
        calls += 1;
        if calls == 2 {
            Err("disk gone".into())
        } else {
            Ok(())
        }
    };
    let err = generate(&params, &publisher, &mut failing).unwrap_err();
    assert!(matches!(err, PuzzleError::Source { chunk: 1, .. }), "{err}");
    assert_eq!(calls, 2, "no read after the failed one");
}

#[test]
fn start_offsets_are_drawn_across_the_whole_range() {
    // 64 KiB chunks: 4096 blocks, start range 4096.
    let lens = [65_536u32; 2];
    let publisher: Vec<PuzzleChunk> = lens
        .iter()
        .enumerate()
        .map(|(i, len)| {
            let key = SessionKey::from_bytes([i as u8 + 1; 16]);
            PuzzleChunk {
                chunk: i as u64,
                len: *len,
                iv: key.chunk_iv(&crate::keys::ChunkAt::new(
                    Hash([1; 32]),
                    Hash([2; 32]),
                    i as u64,
                )),
                key,
            }
        })
        .collect();
    let params = PuzzleParams::covering_all(2, 4096, 2);
    let mut zeros = |_: u64, _: u64, out: &mut [u8]| -> Result<(), SourceError> {
        out.fill(0);
        Ok(())
    };
    let starts: Vec<u64> = (0..64)
        .map(|_| generate(&params, &publisher, &mut zeros).unwrap().start)
        .collect();
    assert!(starts.iter().all(|&s| s < 4096));
    let mut distinct = starts.clone();
    distinct.sort_unstable();
    distinct.dedup();
    // 64 uniform draws from 4096 repeat about once; 9 repeats would
    // happen about once in 10⁹ runs.
    assert!(distinct.len() >= 56, "{} distinct of 64", distinct.len());
    assert!(starts.iter().any(|&s| s < 1024) && starts.iter().any(|&s| s >= 3072));
}

#[test]
fn the_walk_starts_in_the_largest_chunk_and_verification_checks_the_goal() {
    // The 1-byte chunk first must not shrink the range to one start:
    // the walk starts in the 64-byte chunk (4 blocks).
    let (data, publisher, client) = shaped(&[1, 16, 33, 64]);
    let views: Vec<&[u8]> = client.iter().map(Vec::as_slice).collect();
    let params = PuzzleParams::covering_all(2, 8192, 4);
    assert_eq!(
        walk(&params, &views, 4),
        Err(PuzzleError::StartOutOfRange { start: 4, range: 4 })
    );
    let mut source = MemorySource::new(&data, 64);
    for start in 0..4 {
        let generated = generate_at(&params, &publisher, &mut source, start).unwrap();
        let (goal, secret) = walk(&params, &views, start).unwrap();
        assert_eq!((goal, &secret), (generated.goal, &generated.secret));
        assert_eq!(solve(&params, &views, &goal).unwrap().start, start);
        assert_eq!(verify(&params, &views, start, &goal), Ok(secret));
        let other = (start + 1) % 4;
        assert_eq!(
            verify(&params, &views, other, &goal),
            Err(PuzzleError::WrongGoal { start: other })
        );
    }
    assert!(matches!(
        generate_at(&params, &publisher, &mut source, 4),
        Err(PuzzleError::StartOutOfRange { start: 4, range: 4 })
    ));
}

#[test]
fn memory_source_reads_chunk_relative_blocks() {
    let data: Vec<u8> = (0..100u8).collect();
    let mut src = MemorySource::new(&data, 32);
    let mut out = [0u8; 16];
    src.read_block(1, 1, &mut out).unwrap();
    assert_eq!(out[0], 48);
    let mut short = [0u8; 4];
    src.read_block(3, 0, &mut short).unwrap();
    assert_eq!(short, [96, 97, 98, 99]);
    assert!(src.read_block(3, 1, &mut out).is_err());
}

#[test]
fn empty_chunks_and_wrong_counts_are_rejected() {
    let params = PuzzleParams::covering_all(2, 8, 2);
    let a = [1u8; 16];
    assert_eq!(
        solve(&params, &[&a, &[]], &Hash([0; 32])),
        Err(PuzzleError::EmptyChunk { chunk: 1 })
    );
    assert_eq!(
        solve(&params, &[&a], &Hash([0; 32])),
        Err(PuzzleError::ChunkCount {
            expected: 2,
            got: 1
        })
    );
    assert_eq!(
        solve(&params, &[&a, &a], &Hash([0; 32])),
        Err(PuzzleError::NoSolution { tried: 1 })
    );
}
