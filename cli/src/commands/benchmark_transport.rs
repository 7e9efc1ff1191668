//! `cachecash benchmark transport`: one-direction throughput of a single
//! libp2p stream on loopback over each transport stack the CDN could run on
//! (TCP + Noise + Yamux, TCP + TLS + Yamux, QUIC), with the same stream
//! behaviour the chunk protocol uses (`libp2p-stream`).
//!
//! Two swarms in this process: the receiver accepts one stream and reads
//! it to the end; the sender opens it, writes `size` bytes in 64 KiB writes
//! and closes it. The figure is bytes over the time from the first write to
//! the receiver's end of stream. The better of `rounds` runs is kept, since
//! loopback on a shared machine only loses time to noise. Both ends share
//! the machine's cores, so the figure is a CPU-bound upper bound of what one
//! cache can push to one client, not a network measurement.

use anyhow::Context;
use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use libp2p::{Multiaddr, PeerId, StreamProtocol, Swarm, noise, tcp, tls, yamux};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const PROTOCOL: StreamProtocol = StreamProtocol::new("/cachecash/bench/transport/1");
const WRITE: usize = 64 * 1024;

/// The stacks measured, by name.
pub const STACKS: [&str; 3] = ["tcp+noise+yamux", "tcp+tls+yamux", "quic"];

fn swarm(stack: &str) -> anyhow::Result<Swarm<libp2p_stream::Behaviour>> {
    let idle = |c: libp2p::swarm::Config| c.with_idle_connection_timeout(Duration::from_secs(60));
    let b = libp2p::SwarmBuilder::with_new_identity().with_tokio();
    Ok(match stack {
        "tcp+noise+yamux" => b
            .with_tcp(
                tcp::Config::default(),
                noise::Config::new,
                yamux::Config::default,
            )?
            .with_behaviour(|_| libp2p_stream::Behaviour::new())?
            .with_swarm_config(idle)
            .build(),
        "tcp+tls+yamux" => b
            .with_tcp(
                tcp::Config::default(),
                tls::Config::new,
                yamux::Config::default,
            )?
            .with_behaviour(|_| libp2p_stream::Behaviour::new())?
            .with_swarm_config(idle)
            .build(),
        "quic" => b
            .with_quic()
            .with_behaviour(|_| libp2p_stream::Behaviour::new())?
            .with_swarm_config(idle)
            .build(),
        other => anyhow::bail!("unknown transport {other}; choose from {STACKS:?}"),
    })
}

fn listen_on(stack: &str) -> Multiaddr {
    let a = if stack == "quic" {
        "/ip4/127.0.0.1/udp/0/quic-v1"
    } else {
        "/ip4/127.0.0.1/tcp/0"
    };
    a.parse().unwrap_or_else(|_| Multiaddr::empty())
}

/// One run: seconds to move `size` bytes over a fresh connection of `stack`.
async fn once(stack: &str, size: u64) -> anyhow::Result<f64> {
    let mut server = swarm(stack)?;
    let mut client = swarm(stack)?;
    server
        .listen_on(listen_on(stack))
        .context("listening on loopback")?;
    let addr = loop {
        if let libp2p::swarm::SwarmEvent::NewListenAddr { address, .. } =
            server.select_next_some().await
        {
            break address;
        }
    };
    let server_id: PeerId = *server.local_peer_id();
    let mut incoming = server
        .behaviour()
        .new_control()
        .accept(PROTOCOL)
        .map_err(|e| anyhow::anyhow!("accept: {e}"))?;
    let mut control = client.behaviour().new_control();
    client.dial(
        addr.with_p2p(server_id)
            .map_err(|_| anyhow::anyhow!("bad address"))?,
    )?;
    let drive = |mut s: Swarm<libp2p_stream::Behaviour>| {
        tokio::spawn(async move {
            loop {
                s.select_next_some().await;
            }
        })
    };
    let (hs, hc) = (drive(server), drive(client));
    let reader = tokio::spawn(async move {
        let (_, mut stream) = incoming.next().await.context("no stream arrived")?;
        let mut buf = vec![0u8; WRITE];
        let mut got = 0u64;
        loop {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            got += n as u64;
        }
        anyhow::Ok((got, Instant::now()))
    });
    let mut stream = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match control.open_stream(server_id, PROTOCOL).await {
                Ok(s) => break Ok(s),
                Err(libp2p_stream::OpenStreamError::UnsupportedProtocol(p)) => {
                    break Err(anyhow::anyhow!("the receiver does not speak {p}"));
                }
                // Not connected yet: the dial is under way.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
    })
    .await
    .context("no connection within 30 s")??;
    let data = vec![0x5au8; WRITE];
    let start = Instant::now();
    let mut left = size;
    while left > 0 {
        let n = left.min(WRITE as u64) as usize;
        stream.write_all(&data[..n]).await?;
        left -= n as u64;
    }
    stream.close().await?;
    let (got, end) = reader.await??;
    hs.abort();
    hc.abort();
    anyhow::ensure!(got == size, "{stack}: {got} of {size} bytes arrived");
    Ok(end.duration_since(start).as_secs_f64())
}

/// Measures every stack; `size_mib` per run, the best of `rounds`.
pub fn run(size_mib: u64, rounds: usize) -> anyhow::Result<Value> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let size = size_mib << 20;
    let mut rows = Vec::new();
    for stack in STACKS {
        let mut best = f64::MAX;
        for _ in 0..rounds.max(1) {
            best = best.min(rt.block_on(once(stack, size))?);
        }
        let mib_s = size as f64 / (1 << 20) as f64 / best;
        rows.push(json!({
            "transport": stack,
            "bytes": size,
            "seconds": best,
            "mibPerSecond": mib_s,
            "gbitPerSecond": mib_s * 8.0 * 1.048576 / 1000.0,
        }));
    }
    Ok(json!({ "sizeMib": size_mib, "rounds": rounds, "transports": rows }))
}

/// Prints the result as a table.
pub fn print(r: &Value) {
    println!(
        "transport          MiB/s   Gbit/s   ({} MiB, best of {})",
        r["sizeMib"], r["rounds"]
    );
    for t in r["transports"].as_array().into_iter().flatten() {
        println!(
            "{:<16} {:>8.0} {:>8.2}",
            t["transport"].as_str().unwrap_or(""),
            t["mibPerSecond"].as_f64().unwrap_or(0.0),
            t["gbitPerSecond"].as_f64().unwrap_or(0.0)
        );
    }
}
