//! The connection scenarios: a storm (CONNECT, CONNACK, DISCONNECT as fast as
//! `--concurrency` workers can, timing each handshake) and idle connections (each
//! connects and subscribes to its own topic, then waits, and the broker's RSS growth is
//! divided by their number). Knows nothing about message delivery.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tokio::io::AsyncWriteExt;
use tokio::sync::Mutex;

use crate::args::Args;
use crate::client::{self, Conn};
use crate::latency::Histogram;
use crate::procmem::{self, PeakSampler, RssReport};
use crate::report::{LatencySummary, Outcome};
use crate::scenario::{connect_options, rate, run_id};
use crate::wire;

/// What a pool of connecting workers achieved.
struct Opened {
    /// Connections that got a successful CONNACK (and SUBACK, when subscribing).
    conns: Vec<Conn>,
    /// Handshakes that failed.
    failed: u64,
    /// Time from TCP connect to CONNACK, in nanoseconds.
    latency: Histogram,
    /// Seconds from the first connect to the last handshake.
    secs: f64,
}

impl Opened {
    /// Handshakes started: those that succeeded and those that failed.
    fn attempted(&self) -> u64 {
        self.latency.count() + self.failed
    }
}

/// How many connections a pool opens.
#[derive(Debug, Clone, Copy)]
enum Until {
    /// This many.
    Count(usize),
    /// As many as it can start before this moment.
    Deadline(Instant),
}

impl Until {
    /// Whether the `i`th connection (from 0) is still to be opened.
    fn wants(self, i: usize) -> bool {
        match self {
            Until::Count(n) => i < n,
            Until::Deadline(d) => Instant::now() < d,
        }
    }
}

/// Opens `n` connections, `concurrency` at a time. `keep` holds them open (and
/// subscribes each to `ml/<run>/idle/<i>`); otherwise each sends DISCONNECT at once.
async fn open(a: &Args, n: usize, keep: bool) -> Opened {
    open_until(a, Until::Count(n), keep).await
}

/// [`open`], up to a count or a deadline.
async fn open_until(a: &Args, until: Until, keep: bool) -> Opened {
    let run = run_id();
    let next = Arc::new(AtomicUsize::new(0));
    let kept = Arc::new(Mutex::new(Vec::new()));
    let start = Instant::now();
    let mut workers = Vec::new();
    let workers_max = match until {
        Until::Count(n) => n.max(1),
        Until::Deadline(_) => usize::MAX,
    };
    for _ in 0..a.concurrency.min(workers_max) {
        let (a, run, next, kept) = (a.clone(), run.clone(), Arc::clone(&next), Arc::clone(&kept));
        workers.push(tokio::spawn(async move {
            let (mut latency, mut failed) = (Histogram::default(), 0u64);
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if !until.wants(i) {
                    break;
                }
                let t0 = Instant::now();
                let o = connect_options(&a, format!("ml{run}c{i}"), true);
                match handshake(&a.addr, &o, keep.then(|| format!("ml/{run}/idle/{i}")), i).await {
                    Ok(mut conn) => {
                        latency.record(t0.elapsed().as_nanos() as u64);
                        if keep {
                            kept.lock().await.push(conn);
                        } else {
                            let _ = conn.1.write_all(&wire::DISCONNECT).await;
                        }
                    }
                    Err(_) => failed += 1,
                }
            }
            (latency, failed)
        }));
    }
    let mut opened = Opened {
        conns: Vec::new(),
        failed: 0,
        latency: Histogram::default(),
        secs: 0.0,
    };
    for w in workers {
        if let Ok((latency, failed)) = w.await {
            opened.latency.merge(&latency);
            opened.failed += failed;
        }
    }
    opened.secs = start.elapsed().as_secs_f64();
    opened.conns = std::mem::take(&mut *kept.lock().await);
    opened
}

/// CONNECT (and SUBSCRIBE to `filter`, if any), waiting for the acknowledgements.
async fn handshake(
    addr: &str,
    o: &wire::ConnectOptions,
    filter: Option<String>,
    n: usize,
) -> Result<Conn> {
    let (mut r, mut w) = client::connect_from(addr, o, n).await?;
    if let Some(f) = filter {
        w.write_all(&wire::subscribe(1, &f, 1)).await?;
        let (first, _) = tokio::time::timeout(Duration::from_secs(10), r.next())
            .await
            .context("no SUBACK")??;
        anyhow::ensure!(
            first >> 4 == wire::SUBACK,
            "expected SUBACK, got {first:#x}"
        );
    }
    Ok((r, w))
}

/// The storm: connection setup rate and handshake latency. `--connections` of them, or
/// as many as start within `--duration-secs` when that is set: a storm of 2000 took
/// 0.08 s, where one scheduler hiccup moves the rate by a fifth.
pub async fn storm(a: &Args) -> Result<Outcome> {
    let sampler = a.broker_pid.map(PeakSampler::start);
    let before = a.broker_pid.and_then(procmem::rss_kib);
    let until = if a.duration_secs > 0.0 {
        Until::Deadline(Instant::now() + Duration::from_secs_f64(a.duration_secs))
    } else {
        Until::Count(a.connections)
    };
    let opened = open_until(a, until, false).await;
    let accepted = opened.latency.count();
    let rss = sampler.map(|s| RssReport {
        before: before.unwrap_or(0),
        peak: s.stop(),
        after: a.broker_pid.and_then(procmem::rss_kib).unwrap_or(0),
    });
    Ok(Outcome {
        sent: opened.attempted(),
        expected: opened.attempted(),
        delivered: accepted,
        publish_secs: opened.secs,
        elapsed_secs: opened.secs,
        rate: rate(accepted, opened.secs),
        latency: LatencySummary::of(&opened.latency),
        rss,
        ..Outcome::for_args(a)
    })
}

/// Sends DISCONNECT on every connection and closes it.
async fn close_all(mut conns: Vec<Conn>) {
    for (_, w) in &mut conns {
        let _ = w.write_all(&wire::DISCONNECT).await;
    }
}

/// Idle connections: broker RSS per held connection.
pub async fn idle(a: &Args) -> Result<Outcome> {
    if a.warmup > 0 {
        // The broker's first connections run its code for the first time and may set
        // up allocator arenas: a one-time cost that is not any connection's.
        let warm = open(a, a.warmup, true).await;
        if warm.conns.len() < a.warmup {
            anyhow::bail!(
                "warm-up: {} of {} connections failed",
                a.warmup - warm.conns.len(),
                a.warmup
            );
        }
        close_all(warm.conns).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let before = a.broker_pid.and_then(procmem::rss_kib);
    let mut opened = open(a, a.idle, true).await;
    let held = opened.conns.len() as u64;
    let deadline = Instant::now() + Duration::from_secs_f64(a.hold_secs);
    // Keep alive is 60 s: ping while holding longer than that.
    while Instant::now() < deadline {
        tokio::time::sleep_until(
            deadline
                .min(Instant::now() + Duration::from_secs(30))
                .into(),
        )
        .await;
        for (_, w) in &mut opened.conns {
            let _ = w.write_all(&wire::PINGREQ).await;
        }
    }
    let during = a.broker_pid.and_then(procmem::rss_kib);
    close_all(opened.conns).await;
    let rss = match (before, during, a.broker_pid) {
        (Some(before), Some(during), Some(pid)) => {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let after = procmem::rss_kib(pid).unwrap_or(0);
            Some(RssReport {
                before,
                peak: during,
                after,
            })
        }
        _ => None,
    };
    let per_conn = rss
        .filter(|_| held > 0)
        .map(|r| r.peak.saturating_sub(r.before) as f64 / held as f64);
    Ok(Outcome {
        sent: a.idle as u64,
        expected: a.idle as u64,
        delivered: held,
        publish_secs: opened.secs,
        elapsed_secs: opened.secs,
        rate: rate(held, opened.secs),
        latency: LatencySummary::of(&opened.latency),
        rss,
        rss_per_conn_kib: per_conn,
        ..Outcome::for_args(a)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str, addr: std::net::SocketAddr) -> Args {
        let mut argv: Vec<String> = line.split_whitespace().map(String::from).collect();
        argv.extend(["--addr".into(), addr.to_string()]);
        Args::parse(argv.into_iter()).unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn storm_counts_every_accepted_connection() {
        let broker = integration::TestBroker::start(integration::Config::default()).await;
        let o = storm(&args("storm --connections 60 --concurrency 7", broker.addr))
            .await
            .unwrap();
        assert_eq!((o.sent, o.delivered), (60, 60));
        assert_eq!(o.latency.map(|l| l.count), Some(60));
        assert!(o.rate > 0.0);
        broker.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_timed_storm_counts_every_connection_it_started() {
        let broker = integration::TestBroker::start(integration::Config::default()).await;
        let a = args("storm --duration-secs 0.3 --concurrency 4", broker.addr);
        assert_eq!(a.name, "storm 0.3s x4");
        let o = storm(&a).await.unwrap();
        assert!(o.sent > 4, "a few rounds of 4 in 0.3 s: {}", o.sent);
        assert_eq!((o.expected, o.delivered), (o.sent, o.sent));
        assert_eq!(o.latency.map(|l| l.count), Some(o.sent));
        let stats = &broker.broker().stats;
        assert_eq!(stats.connections_total.load(Ordering::Relaxed), o.sent);
        assert!(o.elapsed_secs >= 0.3, "{}", o.elapsed_secs);
        broker.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn storm_counts_refusals_as_not_delivered() {
        let mut config = integration::Config::default();
        config.limits.max_connections = 5;
        let broker = integration::TestBroker::start(config).await;
        // 5 idle connections fill the broker; the storm then finds no room.
        let held = open(&args("idle --concurrency 5", broker.addr), 5, true).await;
        assert_eq!(held.conns.len(), 5);
        let o = storm(&args("storm --connections 10 --concurrency 2", broker.addr))
            .await
            .unwrap();
        assert_eq!((o.sent, o.delivered), (10, 0));
        drop(held);
        broker.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn idle_holds_every_connection_and_reads_the_broker_rss() {
        let broker = integration::TestBroker::start(integration::Config::default()).await;
        // The broker runs in this process, so its pid is ours.
        let line = format!(
            "idle --idle 40 --hold-secs 0.2 --broker-pid {}",
            std::process::id()
        );
        let o = idle(&args(&line, broker.addr)).await.unwrap();
        assert_eq!((o.sent, o.delivered), (40, 40));
        let rss = o.rss.unwrap();
        assert!(rss.before > 0 && rss.peak > 0 && rss.after > 0);
        assert!(o.rss_per_conn_kib.is_some());
        broker.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn idle_warm_up_connections_are_opened_and_closed_and_not_counted_as_held() {
        let broker = integration::TestBroker::start(integration::Config::default()).await;
        let line = format!(
            "idle --idle 30 --warmup 20 --hold-secs 0.2 --broker-pid {}",
            std::process::id()
        );
        let o = idle(&args(&line, broker.addr)).await.unwrap();
        assert_eq!((o.sent, o.expected, o.delivered), (30, 30, 30));
        assert!(o.rss.is_some() && o.rss_per_conn_kib.is_some());
        let stats = &broker.broker().stats;
        assert_eq!(
            stats.connections_total.load(Ordering::Relaxed),
            50,
            "20 + 30 opened"
        );
        // The warm-up clients and then the held ones disconnected.
        let deadline = Instant::now() + Duration::from_secs(10);
        while stats.clients_connected.load(Ordering::Relaxed) > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(stats.clients_connected.load(Ordering::Relaxed), 0);
        broker.stop().await;
    }
}
