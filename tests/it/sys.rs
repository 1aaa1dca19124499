//! `$SYS/broker/...` statistics (names as in broker/src/sys.rs, which follows
//! mosquitto), published periodically as retained messages.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use integration::packets::{self, Publish};
use integration::raw::Next;
use integration::{Config, RawClient, TestBroker, ms};

fn sys_every_second() -> Config {
    let mut config = Config::default();
    config.sys.enabled = true;
    config.sys.interval_secs = 1;
    config
}

/// Collects `$SYS` values for at least 1.2 s (one publication interval, so
/// retained values from before the subscription are refreshed) and until
/// every topic in `wanted` has been seen or `within` passes; the latest
/// value wins.
async fn collect(c: &mut RawClient, wanted: &[&str], within: Duration) -> HashMap<String, String> {
    let mut seen = HashMap::new();
    let start = Instant::now();
    let deadline = start + within;
    while Instant::now() < deadline
        && (start.elapsed() < ms(1200) || !wanted.iter().all(|t| seen.contains_key(*t)))
    {
        if let Next::Packet(f, body) = c.next(ms(200)).await {
            let p = packets::parse_publish(f, &body, c.v5);
            seen.insert(p.topic.clone(), p.payload_str().to_string());
        }
    }
    seen
}

const TOPICS: &[&str] = &[
    "$SYS/broker/version",
    "$SYS/broker/uptime",
    "$SYS/broker/clients/connected",
    "$SYS/broker/messages/received",
    "$SYS/broker/messages/sent",
    "$SYS/broker/bytes/received",
    "$SYS/broker/bytes/sent",
    "$SYS/broker/retained messages/count",
    "$SYS/broker/subscriptions/count",
];

fn number(values: &HashMap<String, String>, topic: &str) -> u64 {
    let v = values
        .get(topic)
        .unwrap_or_else(|| panic!("{topic} missing"));
    v.split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{topic} = {v:?} is not a number"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sys_topics_publish_the_broker_statistics() {
    let b = TestBroker::start(sys_every_second()).await;
    let mut c = RawClient::connect_v311(b.addr, "sys").await;
    c.subscribe("$SYS/#", 0).await;
    let values = collect(&mut c, TOPICS, Duration::from_secs(4)).await;
    let missing: Vec<&&str> = TOPICS
        .iter()
        .filter(|t| !values.contains_key(**t))
        .collect();
    assert!(
        missing.is_empty(),
        "missing $SYS topics {missing:?}; got {:?}",
        values.keys().collect::<Vec<_>>()
    );
    assert!(!values["$SYS/broker/version"].is_empty());
    number(&values, "$SYS/broker/uptime");
    assert!(
        number(&values, "$SYS/broker/clients/connected") >= 1,
        "this client is connected"
    );
    assert!(
        number(&values, "$SYS/broker/subscriptions/count") >= 1,
        "this client's subscription"
    );
    number(&values, "$SYS/broker/bytes/received");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sys_counters_follow_the_traffic() {
    let b = TestBroker::start(sys_every_second()).await;
    let mut c = RawClient::connect_v311(b.addr, "sys-count").await;
    c.subscribe("$SYS/broker/#", 0).await;
    let before = collect(&mut c, TOPICS, Duration::from_secs(4)).await;
    let mut p = RawClient::connect_v311(b.addr, "sys-pub").await;
    p.subscribe("traffic/t", 0).await;
    for i in 0..10 {
        p.publish(Publish::new("traffic/t", &[i; 100]).qos(1, 0))
            .await;
    }
    p.publish(Publish::new("traffic/kept", b"r").qos(1, 0).retain())
        .await;
    // Wait for a fresh round of values.
    tokio::time::sleep(ms(1200)).await;
    while let Next::Packet(..) = c.next(ms(50)).await {}
    let after = collect(&mut c, TOPICS, Duration::from_secs(4)).await;
    let grew = |t: &str, by: u64| {
        let (x, y) = (number(&before, t), number(&after, t));
        assert!(
            y >= x + by,
            "{t}: {x} -> {y}, expected growth of at least {by}"
        );
    };
    grew("$SYS/broker/messages/received", 11);
    grew("$SYS/broker/messages/sent", 10);
    grew("$SYS/broker/bytes/received", 1000);
    grew("$SYS/broker/bytes/sent", 1000);
    grew("$SYS/broker/clients/connected", 1);
    grew("$SYS/broker/retained messages/count", 1);
    grew("$SYS/broker/subscriptions/count", 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sys_values_are_retained_for_late_subscribers() {
    let b = TestBroker::start(sys_every_second()).await;
    tokio::time::sleep(ms(1500)).await;
    let mut c = RawClient::connect_v311(b.addr, "late-sys").await;
    c.subscribe("$SYS/broker/version", 0).await;
    let p = c.recv_publish().await;
    assert_eq!(p.topic, "$SYS/broker/version");
    assert!(p.retain, "delivered on subscribe as a retained message");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sys_topics_are_absent_when_disabled() {
    let mut config = Config::default();
    config.sys.enabled = false;
    config.sys.interval_secs = 1;
    let b = TestBroker::start(config).await;
    let mut c = RawClient::connect_v311(b.addr, "nosys").await;
    c.subscribe("$SYS/#", 0).await;
    c.expect_no_packet(ms(1500)).await;
}
