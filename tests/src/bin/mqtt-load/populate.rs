//! `populate`: fills a broker with durable state for a restart benchmark: `--messages`
//! retained messages (QoS 1, acknowledged, topics `ml/populate/r/<i>`) and
//! `--connections` persistent sessions (Clean Session 0, one QoS 1 subscription each),
//! `--concurrency` of them being set up at once. Restart the broker afterwards and time
//! how long it takes to serve again with all of it loaded.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use tokio::io::AsyncWriteExt;

use crate::args::Args;
use crate::client;
use crate::report::Outcome;
use crate::scenario::connect_options;
use crate::wire;

/// How long one acknowledgement may take.
const ACK_TIMEOUT: Duration = Duration::from_secs(30);

/// Publishes the retained messages, then opens and leaves the sessions.
pub async fn populate(a: &Args) -> Result<Outcome> {
    let start = Instant::now();
    let retained = retain(a).await?;
    let sessions = sessions(a).await?;
    let secs = start.elapsed().as_secs_f64();
    let done = retained + sessions;
    Ok(Outcome {
        sent: a.messages + a.connections as u64,
        expected: a.messages + a.connections as u64,
        delivered: done,
        publish_secs: secs,
        elapsed_secs: secs,
        rate: done as f64 / secs.max(1e-9),
        ..Outcome::for_args(a)
    })
}

async fn retain(a: &Args) -> Result<u64> {
    let o = connect_options(a, "ml-populate-retained".into(), true);
    let (mut r, mut w) = client::connect(&a.addr, &o).await?;
    let payload = vec![b'r'; a.payload];
    let window = a.inflight.max(1);
    let (mut sent, mut acked, mut in_flight) = (0u64, 0u64, 0usize);
    let mut out = Vec::new();
    while sent < a.messages || in_flight > 0 {
        out.clear();
        while in_flight < window && sent < a.messages {
            let first = out.len();
            let id = (sent % 65_535) as u16 + 1;
            wire::put_publish(&mut out, &format!("ml/populate/r/{sent}"), 1, id, &payload);
            out[first] |= 0x01; // RETAIN
            in_flight += 1;
            sent += 1;
        }
        if !out.is_empty() {
            w.write_all(&out).await?;
        }
        let (first, _) = tokio::time::timeout(ACK_TIMEOUT, r.next())
            .await
            .context("no PUBACK")??;
        if first >> 4 == wire::PUBACK {
            in_flight -= 1;
            acked += 1;
        }
    }
    w.write_all(&wire::DISCONNECT).await?;
    Ok(acked)
}

async fn sessions(a: &Args) -> Result<u64> {
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..a.concurrency.clamp(1, a.connections.max(1)) {
        let (a, next) = (a.clone(), Arc::clone(&next));
        workers.push(tokio::spawn(async move {
            let mut done = 0u64;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= a.connections {
                    return Ok::<u64, anyhow::Error>(done);
                }
                let o = connect_options(&a, format!("ml-populate-s{i}"), false);
                let (mut r, mut w) = client::connect(&a.addr, &o).await?;
                w.write_all(&wire::subscribe(1, &format!("ml/populate/s/{i}"), 1))
                    .await?;
                let (first, _) = tokio::time::timeout(ACK_TIMEOUT, r.next())
                    .await
                    .context("no SUBACK")??;
                ensure!(
                    first >> 4 == wire::SUBACK,
                    "expected SUBACK, got {first:#x}"
                );
                w.write_all(&wire::DISCONNECT).await?;
                done += 1;
            }
        }));
    }
    let mut done = 0;
    for w in workers {
        done += w.await??;
    }
    Ok(done)
}
