//! The mempool checks a sender's sequence without holding its lock across
//! storage reads; these tests hold it to the same answers: concurrent
//! admissions keep every sender's sequence gapless and unique, and a new
//! block drops exactly what it included or made invalid.

use cachecash_chain_spec::ChainSpec;
use cachecash_node::chain::{BlockOrigin, Chain};
use cachecash_node::{Mempool, PoolError, PoolLimits};
use cachecash_runtime::{Call, SignedTransaction, Transaction};
use cachecash_tests::{dev, fast_dev_spec, memory_chain, mine_chain_block, spec_transfer};
use std::sync::Arc;

fn open(spec: &ChainSpec) -> Arc<Chain> {
    Arc::new(memory_chain(spec))
}

fn transfer(spec: &ChainSpec, from: &str, nonce: u64, amount: u128) -> SignedTransaction {
    spec_transfer(spec, from, nonce, dev("charlie"), amount)
}

fn apply(pool: &Mempool, chain: &Chain, block: cachecash_runtime::Block) {
    let mut events = chain.subscribe();
    chain.import_block(block, BlockOrigin::File).unwrap();
    while let Ok(event) = events.try_recv() {
        pool.on_chain_event(&event);
    }
}

#[test]
fn concurrent_admissions_keep_every_senders_sequence_gapless_and_unique() {
    let spec = fast_dev_spec(150);
    let chain = open(&spec);
    let pool = Arc::new(Mempool::new(chain.clone(), PoolLimits::default()));
    const N: u64 = 40;
    // Four threads race over the same sender's nonces (each retries a nonce
    // until it is pending), and two more fill other senders' sequences.
    std::thread::scope(|scope| {
        for _ in 0..4 {
            let (pool, spec) = (pool.clone(), spec.clone());
            scope.spawn(move || {
                for nonce in 0..N {
                    loop {
                        match pool.submit(transfer(&spec, "alice", nonce, 1)) {
                            Ok(_) | Err(PoolError::AlreadyPending(_)) => break,
                            Err(PoolError::Invalid(cachecash_runtime::TxError::FutureNonce {
                                ..
                            })) => std::thread::yield_now(),
                            Err(e) => panic!("nonce {nonce}: {e}"),
                        }
                    }
                }
            });
        }
        for who in ["bob", "dave"] {
            let (pool, spec) = (pool.clone(), spec.clone());
            scope.spawn(move || {
                for nonce in 0..N {
                    pool.submit(transfer(&spec, who, nonce, 1)).unwrap();
                }
            });
        }
    });
    assert_eq!(pool.len(), 3 * N as usize);
    let pending = pool.pending();
    for who in ["alice", "bob", "dave"] {
        let mut nonces: Vec<u64> = pending
            .iter()
            .filter(|(_, tx)| tx.tx.signer == dev(who))
            .map(|(_, tx)| tx.tx.nonce)
            .collect();
        nonces.sort_unstable();
        assert_eq!(nonces, (0..N).collect::<Vec<_>>(), "{who}");
    }
    // A block takes them all, in order.
    let ready = pool.ready(1000);
    assert_eq!(ready.len(), 3 * N as usize);
    let block = mine_chain_block(&chain, ready, dev("ferdie"), 0);
    apply(&pool, &chain, block);
    assert!(pool.is_empty());
}

#[test]
fn a_block_drops_what_it_included_and_what_it_made_invalid_and_keeps_the_rest() {
    let spec = fast_dev_spec(150);
    let chain = open(&spec);
    let pool = Mempool::new(chain.clone(), PoolLimits::default());
    for nonce in 0..4 {
        pool.submit(transfer(&spec, "alice", nonce, 10)).unwrap();
    }
    pool.submit(transfer(&spec, "bob", 0, 10)).unwrap();

    // A block with Alice's first two.
    let first_two: Vec<_> = (0..2).map(|n| transfer(&spec, "alice", n, 10)).collect();
    let block = mine_chain_block(&chain, first_two, dev("ferdie"), 0);
    apply(&pool, &chain, block);
    assert_eq!(pool.len(), 3, "alice 2, alice 3 and bob 0 stay");

    // A block with a different transaction at Alice's nonce 2: the pool's
    // nonce 2 is stale and goes; nonce 3 still applies and stays.
    let other = transfer(&spec, "alice", 2, 99);
    let block = mine_chain_block(&chain, vec![other], dev("ferdie"), 0);
    apply(&pool, &chain, block);
    let left: Vec<(String, u64)> = pool
        .pending()
        .iter()
        .map(|(_, tx)| {
            let who = if tx.tx.signer == dev("alice") {
                "alice"
            } else {
                "bob"
            };
            (who.to_string(), tx.tx.nonce)
        })
        .collect();
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(left.contains(&("alice".into(), 3)), "{left:?}");
    assert!(left.contains(&("bob".into(), 0)), "{left:?}");
}

#[test]
fn a_sender_that_can_no_longer_pay_loses_the_unpayable_transaction_and_all_after_it() {
    let spec = fast_dev_spec(150);
    let chain = open(&spec);
    let pool = Mempool::new(chain.clone(), PoolLimits::default());
    let balance = chain.account(&dev("eve"), None).unwrap().0.balance;
    let fee = spec.consensus.minimum_fee;
    // Two transfers of a third of the balance each: fine today.
    let third = balance / 3;
    pool.submit(transfer(&spec, "eve", 0, third)).unwrap();
    pool.submit(transfer(&spec, "eve", 1, third)).unwrap();
    // A block with a different nonce-0 transfer of almost everything.
    let key = cachecash_chain_spec::dev_accounts::dev_signing_key("eve").unwrap();
    let drain = Transaction {
        signer: dev("eve"),
        nonce: 0,
        fee,
        call: Call::Transfer {
            dest: dev("charlie"),
            amount: balance - fee - third / 2,
        },
    }
    .sign(&key, &spec.genesis_hash().unwrap());
    let block = mine_chain_block(&chain, vec![drain], dev("ferdie"), 0);
    apply(&pool, &chain, block);
    assert!(
        pool.is_empty(),
        "nonce 0 is stale, nonce 1 cannot pay: {:?}",
        pool.pending()
    );
}

#[test]
fn a_large_transaction_pays_by_the_byte_and_a_small_one_the_flat_minimum() {
    use parity_scale_codec::{Decode, Encode};
    let spec = fast_dev_spec(150);
    let chain = open(&spec);
    let pool = Mempool::new(chain.clone(), PoolLimits::default());
    let params = chain.params().clone();
    assert!(params.fee_per_byte > 0, "the dev chain prices bytes");
    // A transfer is far below 1,000 bytes: the flat minimum.
    let small = transfer(&spec, "alice", 0, 1);
    assert_eq!(
        params.minimum_fee_for(small.encoded_size()),
        params.minimum_fee
    );
    pool.submit(small).unwrap();

    // A claim of 16 tickets is several KiB: the flat minimum is refused,
    // and the error names the fee its size requires.
    let key = cachecash_chain_spec::dev_accounts::dev_signing_key("bob").unwrap();
    let item = cachecash_runtime::transaction::TicketClaimItem {
        ticket: cachecash_runtime::microcash::SignedTicket::decode(&mut &[0u8; 512][..]).unwrap(),
        preimage: [1; 32],
    };
    let claim = |fee| {
        Transaction {
            signer: dev("bob"),
            nonce: 0,
            fee,
            call: Call::TicketClaim {
                claims: vec![item.clone(); 16],
            },
        }
        .sign(&key, &spec.genesis_hash().unwrap())
    };
    let size = claim(0).encoded_size();
    assert!(size > 4_000, "{size} bytes");
    let required = params.minimum_fee_for(size);
    assert_eq!(
        required,
        params.fee_per_byte * u128::try_from(size).unwrap()
    );
    match pool.submit(claim(params.minimum_fee)) {
        Err(PoolError::Invalid(cachecash_runtime::TxError::FeeTooLow { minimum, .. })) => {
            assert_eq!(minimum, required)
        }
        other => panic!("a flat fee on {size} bytes: {other:?}"),
    }
    // Paying by the byte passes the fee rule (the dummy tickets then fail
    // on their escrow, which is another check).
    let result = pool.submit(claim(required));
    assert!(
        !matches!(
            result,
            Err(PoolError::Invalid(
                cachecash_runtime::TxError::FeeTooLow { .. }
            ))
        ),
        "the per-byte fee is enough: {result:?}"
    );
}
