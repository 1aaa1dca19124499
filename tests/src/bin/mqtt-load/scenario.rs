//! The message scenarios (fan-in, shared, fan-out, p2p, flood): which clients to start,
//! on which topics, when the run is over, and what it counted. Every topic and client id
//! carries a per-run id, so runs never see each other's messages or sessions.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::args::{Args, Scenario};
use crate::client::{self, PublisherPlan, Received, Shared, SubscriberPlan};
use crate::procmem::{self, PeakSampler, RssReport};
use crate::report::{LatencySummary, Outcome};
use crate::wire::ConnectOptions;

/// The run ends when no message arrived for this long after the last publish.
const QUIET: Duration = Duration::from_secs(2);
/// How long the subscribers may take to connect and subscribe.
const SETUP_TIMEOUT: Duration = Duration::from_secs(30);
/// Pause before the last RSS reading, so the broker can release what the run used.
const SETTLE: Duration = Duration::from_secs(1);

/// A short id unique to this run (process id and clock), for topics and client ids.
pub fn run_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "{:06x}",
        (std::process::id() ^ nanos.rotate_left(11)) & 0xff_ffff
    )
}

/// CONNECT options of the run's client `id`.
pub fn connect_options(a: &Args, id: String, clean_session: bool) -> ConnectOptions {
    ConnectOptions {
        client_id: id,
        clean_session,
        keep_alive_secs: 60,
        username: a.username.clone(),
        password: a.password.clone(),
    }
}

/// The topic of publisher `p`.
fn topic(run: &str, p: usize) -> String {
    format!("ml/{run}/{p}")
}

/// The filter of subscriber `s`.
fn filter(a: &Args, run: &str, s: usize) -> String {
    match a.scenario {
        Scenario::P2p => topic(run, s),
        Scenario::Shared => format!("$share/ml{run}/ml/{run}/#"),
        _ => format!("ml/{run}/#"),
    }
}

/// How many subscribers receive each message.
fn copies(a: &Args) -> u64 {
    match a.scenario {
        Scenario::P2p | Scenario::Shared => 1,
        _ => a.subscribers as u64,
    }
}

/// Runs a message scenario and returns what it measured.
pub async fn run(a: &Args) -> Result<Outcome> {
    let run = run_id();
    let shared = Shared::new(copies(a), a.max_ahead);
    let subs = start_subscribers(a, &run, &shared).await?;
    let rss_before = a.broker_pid.and_then(procmem::rss_kib);
    let sampler = a.broker_pid.map(PeakSampler::start);
    let start = Instant::now();
    let start_nanos = shared.now_nanos();
    let deadline =
        (a.duration_secs > 0.0).then(|| start + Duration::from_secs_f64(a.duration_secs));
    let mut pubs = Vec::new();
    for p in 0..a.publishers {
        let plan = PublisherPlan {
            index: p as u32,
            connect: connect_options(a, format!("ml{run}p{p}"), true),
            topic: topic(&run, p),
            qos: a.qos,
            payload: a.payload,
            messages: if deadline.is_some() {
                u64::MAX
            } else {
                a.messages
            },
            deadline,
            rate: a.rate,
            inflight: a.inflight,
        };
        pubs.push(tokio::spawn(client::publish(
            a.addr.clone(),
            plan,
            Arc::clone(&shared),
        )));
    }
    let mut sent = 0;
    for p in pubs {
        match p.await {
            Ok(Ok(n)) => sent += n,
            Ok(Err(e)) => return Err(stop(&shared, e.context("publisher failed"))),
            Err(e) => return Err(stop(&shared, anyhow::Error::new(e))),
        }
    }
    let publish_secs = start.elapsed().as_secs_f64();
    let expected = sent * copies(a);
    wait_for_deliveries(&shared, expected, Duration::from_secs_f64(a.drain_secs)).await;
    shared.stop.cancel();
    let mut total = Received::default();
    for s in subs {
        let got = s.await.context("subscriber panicked")??;
        total.messages += got.messages;
        total.out_of_order += got.out_of_order;
        total.latency.merge(&got.latency);
    }
    let rss = match (a.broker_pid, sampler) {
        (Some(pid), Some(sampler)) => {
            let peak = sampler.stop();
            tokio::time::sleep(SETTLE).await;
            Some(RssReport {
                before: rss_before.unwrap_or(0),
                peak,
                after: procmem::rss_kib(pid).unwrap_or(0),
            })
        }
        _ => None,
    };
    let last = shared.last_delivery.load(Ordering::Relaxed);
    let elapsed_secs = last.saturating_sub(start_nanos) as f64 / 1e9;
    Ok(Outcome {
        sent,
        expected,
        delivered: total.messages,
        out_of_order: total.out_of_order,
        publish_secs,
        elapsed_secs,
        rate: rate(total.messages, elapsed_secs),
        latency: LatencySummary::of(&total.latency),
        rss,
        ..Outcome::for_args(a)
    })
}

/// Cancels the run's subscribers and passes the error on.
fn stop(shared: &Shared, e: anyhow::Error) -> anyhow::Error {
    shared.stop.cancel();
    e
}

/// Events per second, 0 when no time passed.
pub fn rate(n: u64, secs: f64) -> f64 {
    if secs > 0.0 { n as f64 / secs } else { 0.0 }
}

type SubTask = JoinHandle<Result<Received>>;

/// Starts the subscribers and waits until every one has its SUBACK.
async fn start_subscribers(a: &Args, run: &str, shared: &Arc<Shared>) -> Result<Vec<SubTask>> {
    let (ready_tx, mut ready_rx) = mpsc::channel(a.subscribers.max(1));
    let mut subs = Vec::new();
    for s in 0..a.subscribers {
        let plan = SubscriberPlan {
            connect: connect_options(a, format!("ml{run}s{s}"), a.clean_session),
            filter: filter(a, run, s),
            qos: a.qos,
            rate: a.sub_rate,
        };
        subs.push(tokio::spawn(client::subscribe(
            a.addr.clone(),
            plan,
            Arc::clone(shared),
            ready_tx.clone(),
        )));
    }
    drop(ready_tx);
    let mut ready = 0;
    while ready < a.subscribers {
        match tokio::time::timeout(SETUP_TIMEOUT, ready_rx.recv()).await {
            Ok(Some(())) => ready += 1,
            Ok(None) | Err(_) => break,
        }
    }
    if ready < a.subscribers {
        shared.stop.cancel();
        for s in subs {
            if let Ok(Err(e)) = s.await {
                return Err(e.context("subscriber failed"));
            }
        }
        bail!("only {ready} of {} subscribers subscribed", a.subscribers);
    }
    Ok(subs)
}

/// Waits until `expected` deliveries arrived, nothing arrived for [`QUIET`], or `drain`
/// passed since the last publish.
async fn wait_for_deliveries(shared: &Shared, expected: u64, drain: Duration) {
    let done = Instant::now();
    let (mut seen, mut progress) = (shared.delivered.load(Ordering::Relaxed), Instant::now());
    loop {
        let now = shared.delivered.load(Ordering::Relaxed);
        if now >= expected || done.elapsed() >= drain {
            return;
        }
        if now != seen {
            (seen, progress) = (now, Instant::now());
        } else if progress.elapsed() >= QUIET {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn run_args(addr: std::net::SocketAddr, line: &str) -> Outcome {
        let mut argv: Vec<String> = line.split_whitespace().map(String::from).collect();
        argv.extend(["--addr".into(), addr.to_string()]);
        let a = Args::parse(argv.into_iter()).unwrap();
        run(&a).await.unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn qos1_fan_in_delivers_every_message_to_every_subscriber() {
        let broker = integration::TestBroker::start(integration::Config::default()).await;
        let o = run_args(
            broker.addr,
            "fan-in --qos 1 --publishers 3 --subscribers 2 --messages 300 --inflight 20 --max-ahead 50",
        )
        .await;
        assert_eq!(o.sent, 900);
        assert_eq!(o.expected, 1800);
        assert_eq!(o.delivered, 1800, "delivered == sent * subscribers");
        assert_eq!(o.out_of_order, 0);
        assert_eq!(
            o.latency.map(|l| l.count),
            Some(1800),
            "one latency sample each"
        );
        assert!(o.rate > 0.0);
        broker.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn qos2_p2p_with_durable_sessions_delivers_exactly_once() {
        let broker = integration::TestBroker::start(integration::Config::default()).await;
        let o = run_args(
            broker.addr,
            "p2p --qos 2 --publishers 4 --messages 250 --payload 64 --clean-session false",
        )
        .await;
        assert_eq!((o.sent, o.expected, o.delivered), (1000, 1000, 1000));
        assert_eq!(o.out_of_order, 0, "no duplicates at QoS 2");
        broker.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn shared_group_receives_each_message_once_in_total() {
        let broker = integration::TestBroker::start(integration::Config::default()).await;
        let o = run_args(
            broker.addr,
            "shared --qos 1 --publishers 2 --subscribers 3 --messages 200",
        )
        .await;
        assert_eq!((o.sent, o.expected, o.delivered), (400, 400, 400));
        broker.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rate_limited_fan_out_publishes_for_about_the_planned_time() {
        let broker = integration::TestBroker::start(integration::Config::default()).await;
        // 2 publishers x 40 messages at 200 msg/s: about 0.2 s of publishing.
        let o = run_args(
            broker.addr,
            "fan-out --qos 0 --publishers 2 --subscribers 5 --messages 40 --rate 200",
        )
        .await;
        assert_eq!((o.sent, o.expected, o.delivered), (80, 400, 400));
        assert!(o.publish_secs >= 0.19, "paced: {} s", o.publish_secs);
        broker.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn refused_connection_is_an_error_not_a_hang() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let a = Args::parse(
            ["fan-in", "--addr", &addr.to_string(), "--messages", "1"]
                .into_iter()
                .map(String::from),
        )
        .unwrap();
        assert!(run(&a).await.is_err());
    }

    #[test]
    fn topics_and_filters_per_scenario() {
        let a = |s: &str| Args::parse([s.to_string()].into_iter()).unwrap();
        assert_eq!(filter(&a("fan-in"), "r1", 0), "ml/r1/#");
        assert_eq!(filter(&a("shared"), "r1", 2), "$share/mlr1/ml/r1/#");
        assert_eq!(filter(&a("p2p"), "r1", 3), topic("r1", 3));
        assert_eq!(copies(&a("fan-out")), 50);
        assert_eq!(copies(&a("shared")), 1);
        assert_eq!(run_id().len(), 6);
    }
}
