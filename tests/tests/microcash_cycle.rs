//! The whole MicroCash cycle on a mining node, over JSON-RPC: open an
//! escrow, issue batch-signed tickets, wait for the draw, claim a winner,
//! watch the cache's balance, and close the escrow once it unlocks.

use cachecash_node::service::Storage;
use cachecash_runtime::microcash::{
    EscrowTerms, Ticket, escrow_id, secret_commitment, sign_tickets_batch,
};
use cachecash_runtime::primitives::encode_hex;
use cachecash_runtime::transaction::TicketClaimItem;
use cachecash_runtime::{Call, Hash, SignedTransaction, Transaction};
use cachecash_tests::*;
use parity_scale_codec::Encode;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::time::Duration;

const FEE: u128 = 1_000_000;
const FACE: u128 = 10_000_000_000_000;

async fn submit(addr: SocketAddr, tx: &SignedTransaction) -> Result<Value, String> {
    rpc(
        addr,
        "author_submitTransaction",
        vec![json!(encode_hex(&tx.encode()))],
    )
    .await
}

async fn balance(addr: SocketAddr, who: &str) -> u128 {
    rpc(addr, "state_getBalance", vec![json!(dev(who))])
        .await
        .unwrap()
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn escrow_ticket_draw_claim_and_close_cycle() {
    let spec = fast_dev_spec(50);
    let genesis = spec.genesis_hash().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(&spec, dir.path(), Storage::Memory, Some(dev("ferdie"))).await;
    let addr = node.rpc_addr().unwrap();
    let alice = cachecash_chain_spec::dev_accounts::dev_signing_key("alice").unwrap();
    let bob = cachecash_chain_spec::dev_accounts::dev_signing_key("bob").unwrap();

    // Open: 4 tickets per round, 2 winners, rounds of 4 blocks.
    wait_for_height(&node, 1, Duration::from_secs(30)).await;
    let head = node.chain().head().header.number;
    let round = (head + 4) / 4 + 1;
    let terms = EscrowTerms {
        signer: dev("alice"),
        face_value: FACE,
        tickets_per_round: 4,
        winners_per_round: 2,
        round_length: 4,
        first_round: round,
        last_round: round,
        draw_delay: 1,
        claim_window: 200,
    };
    let payment = terms.payment_required(1).unwrap();
    let open = Transaction {
        signer: dev("alice"),
        nonce: 0,
        fee: FEE,
        call: Call::EscrowOpen {
            terms: terms.clone(),
            payment,
            penalty: FACE,
        },
    }
    .sign(&alice, &genesis);
    submit(addr, &open).await.unwrap();
    wait_for_inclusion(&node, open.hash(), Duration::from_secs(30)).await;
    let id = escrow_id(&genesis, &dev("alice"), 0);
    let listed = rpc(addr, "escrow_listByFunder", vec![json!(dev("alice"))])
        .await
        .unwrap();
    assert_eq!(listed, json!([id]));
    let shown = rpc(addr, "state_getEscrow", vec![json!(id)]).await.unwrap();
    assert_eq!(shown["payment"], json!(payment.to_string()));

    // Issue all four tickets of the round to bob, batch-signed.
    let secret = [7u8; 32];
    let tickets = sign_tickets_batch(
        &alice,
        (0..4)
            .map(|number| Ticket {
                escrow: id,
                round,
                number,
                cache: dev("bob"),
                client: dev("charlie"),
                chunk: Hash::of(b"chunk"),
                secret_hash: secret_commitment(&secret),
            })
            .collect(),
    );

    // Before the draw, nothing is claimable.
    let early = rpc(addr, "escrow_getWinners", vec![json!(id), json!(round)])
        .await
        .unwrap();
    let draw = terms.draw_height(round).unwrap();
    assert_eq!(early["drawHeight"], json!(draw));
    if node.chain().head().header.number < draw {
        assert_eq!(early["drawn"], json!(false));
    }

    wait_for_height(&node, draw + 1, Duration::from_secs(60)).await;
    let drawn = rpc(addr, "escrow_getWinners", vec![json!(id), json!(round)])
        .await
        .unwrap();
    assert_eq!(drawn["drawn"], json!(true));
    let winners: Vec<u32> = serde_json::from_value(drawn["winners"].clone()).unwrap();
    assert_eq!(winners.len(), 2);
    let loser = (0..4).find(|n| !winners.contains(n)).unwrap();

    // A losing ticket is refused with the reason.
    let lose = Transaction {
        signer: dev("bob"),
        nonce: 0,
        fee: FEE,
        call: Call::TicketClaim {
            claims: vec![TicketClaimItem {
                ticket: tickets[loser as usize].clone(),
                preimage: secret,
            }],
        },
    }
    .sign(&bob, &genesis);
    let refused = submit(addr, &lose).await.unwrap_err();
    assert!(refused.contains("did not win"), "{refused}");

    // Both winners in one claim pay 2·β to bob.
    let before = balance(addr, "bob").await;
    let claim = Transaction {
        signer: dev("bob"),
        nonce: 0,
        fee: FEE,
        call: Call::TicketClaim {
            claims: winners
                .iter()
                .map(|&n| TicketClaimItem {
                    ticket: tickets[n as usize].clone(),
                    preimage: secret,
                })
                .collect(),
        },
    }
    .sign(&bob, &genesis);
    submit(addr, &claim).await.unwrap();
    wait_for_inclusion(&node, claim.hash(), Duration::from_secs(30)).await;
    assert_eq!(balance(addr, "bob").await, before + 2 * FACE - FEE);
    let status = rpc(
        addr,
        "escrow_getClaim",
        vec![json!(id), json!(round), json!(winners[0])],
    )
    .await
    .unwrap();
    assert_eq!(status["status"], json!("claimed"));

    // Closing before the unlock height is refused; the funds stay locked.
    let close = Transaction {
        signer: dev("alice"),
        nonce: 1,
        fee: FEE,
        call: Call::EscrowClose { escrow: id },
    }
    .sign(&alice, &genesis);
    let locked = submit(addr, &close).await.unwrap_err();
    assert!(locked.contains("locked until block"), "{locked}");

    node.stop().await;
}
