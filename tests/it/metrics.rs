//! The metrics and health endpoint (issue 5): a scrape of `/metrics` parsed and checked
//! against the traffic the test sent, the probes `/health` and `/ready`, and the
//! endpoint's life with the server.

mod exposition;

use std::net::SocketAddr;

use cauldron::config::Config;
use integration::packets::Connect;
use integration::plugins::FIXTURE_PASSTHROUGH_WASM;
use integration::{Props, Publish, RawClient, TestBroker};
use serde_json::json;

use crate::auth::{connack_code, password_config, password_file};
use exposition::{Exposition, get};

/// A config with the endpoint on 127.0.0.1:0 and `$SYS` off (its messages would count).
fn with_metrics() -> Config {
    let mut config = Config::default();
    config.metrics.enabled = true;
    config.metrics.bind = SocketAddr::from(([127, 0, 0, 1], 0));
    config.sys.enabled = false;
    config
}

fn metrics_addr(b: &TestBroker) -> SocketAddr {
    b.metrics.expect("metrics endpoint enabled")
}

async fn scrape(b: &TestBroker) -> Exposition {
    let r = get(metrics_addr(b), "/metrics").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.headers.get("content-type").map(String::as_str),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    Exposition::parse(&r.body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_scrape_counts_the_traffic_sent() {
    // Issue 5: connections, sessions, subscriptions, messages and bytes in and out by
    // QoS, retained count, auth successes and failures, plugin hook counters and
    // latency histograms, checked against known traffic.
    crate::plugins::warm_cache().await;
    let (_dir, passwd) = password_file(&[("alice", "wonderland")]);
    let mut config = with_metrics();
    config.auth.password_file = Some(password_config(&passwd));
    config.plugin_host.cache_dir = Some(crate::plugins::cache_dir().into());
    config.plugins = vec![crate::plugins::plugin(
        "passthrough",
        FIXTURE_PASSTHROUGH_WASM,
        json!({}),
    )];
    let b = TestBroker::start(config).await;

    let (mut sub, _) = RawClient::connect_v5(b.addr, "sub", Props::new()).await;
    assert_eq!(sub.subscribe("m/#", 1).await, vec![1]);
    let mut publisher = RawClient::connect_v311(b.addr, "pub").await;
    let refused = Connect::v5("intruder").credentials("alice", b"looking-glass");
    assert_eq!(connack_code(&b, &refused).await, 0x86);

    for _ in 0..5 {
        publisher
            .publish(Publish::new("m/one", &[1; 10]).qos(1, 0))
            .await;
    }
    for _ in 0..2 {
        publisher.publish(Publish::new("m/zero", &[0; 3])).await;
    }
    let retained = Publish::new("m/two", &[2; 7]).qos(2, 0).retain();
    assert_eq!(publisher.publish(retained).await, 0);
    let mut delivered = [0u32; 3];
    for _ in 0..8 {
        let p = sub.recv_publish_acked().await;
        delivered[usize::from(p.qos)] += 1;
    }
    assert_eq!(
        delivered,
        [2, 6, 0],
        "QoS 2 is delivered at the subscription's QoS 1"
    );

    let m = scrape(&b).await;
    for (qos, received, received_bytes, sent, sent_bytes) in
        [("0", 2, 6, 2, 6), ("1", 5, 50, 6, 57), ("2", 1, 7, 0, 0)]
    {
        let q = [("qos", qos)];
        assert_eq!(
            m.value("cauldron_messages_received_total", &q),
            received as f64
        );
        assert_eq!(
            m.value("cauldron_payload_bytes_received_total", &q),
            received_bytes as f64
        );
        assert_eq!(m.value("cauldron_messages_sent_total", &q), sent as f64);
        assert_eq!(
            m.value("cauldron_payload_bytes_sent_total", &q),
            sent_bytes as f64
        );
    }
    assert!(m.value("cauldron_network_bytes_received_total", &[]) > 63.0);
    assert!(m.value("cauldron_network_bytes_sent_total", &[]) > 63.0);
    assert_eq!(m.value("cauldron_connections_total", &[]), 3.0);
    assert_eq!(m.value("cauldron_clients_connected", &[]), 2.0);
    assert_eq!(m.value("cauldron_sessions", &[("state", "online")]), 2.0);
    assert_eq!(m.value("cauldron_sessions", &[("state", "offline")]), 0.0);
    assert_eq!(m.value("cauldron_subscriptions", &[]), 1.0);
    assert_eq!(m.value("cauldron_retained_messages", &[]), 1.0);
    let auth = |result| m.value("cauldron_authentications_total", &[("result", result)]);
    assert_eq!((auth("success"), auth("failure")), (2.0, 1.0));
    for reason in ["queue_full", "expired", "too_large"] {
        assert_eq!(
            m.value("cauldron_messages_dropped_total", &[("reason", reason)]),
            0.0
        );
    }
    assert_eq!(m.kind("cauldron_sessions"), Some("gauge"));
    assert_eq!(m.kind("cauldron_messages_received_total"), Some("counter"));
    check_plugin_metrics(&m);
    b.stop().await;
}

/// The passthrough plugin saw the 8 publishes: one decision each, calls (publishes that
/// arrived in one read, like the QoS 0 pair sent without waiting, share a batch call)
/// and a histogram whose buckets are cumulative and end in `+Inf` = `_count` = calls.
fn check_plugin_metrics(m: &Exposition) {
    let hook = [("plugin", "passthrough"), ("hook", "on-publish")];
    let calls = m.value("cauldron_plugin_hook_calls_total", &hook);
    assert!((6.0..=8.0).contains(&calls), "calls: {calls}");
    let decision = |d| {
        let labels = [hook[0], hook[1], ("decision", d)];
        m.value("cauldron_plugin_hook_decisions_total", &labels)
    };
    assert_eq!(
        (decision("continue"), decision("replace"), decision("drop")),
        (8.0, 0.0, 0.0)
    );
    assert_eq!(m.value("cauldron_plugin_failed", &[hook[0]]), 0.0);
    assert_eq!(
        m.kind("cauldron_plugin_hook_duration_seconds"),
        Some("histogram")
    );
    let mut buckets: Vec<(f64, f64)> = m
        .matching("cauldron_plugin_hook_duration_seconds_bucket", &hook)
        .into_iter()
        .map(|(labels, v)| {
            let le = labels.iter().find(|(k, _)| k == "le").expect("le label");
            let bound = if le.1 == "+Inf" {
                f64::INFINITY
            } else {
                le.1.parse().expect("numeric le")
            };
            (bound, v)
        })
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    assert_eq!(buckets.len(), 17, "16 bounds and +Inf");
    assert!(
        buckets.windows(2).all(|w| w[0].1 <= w[1].1),
        "cumulative: {buckets:?}"
    );
    assert_eq!(buckets.last().copied(), Some((f64::INFINITY, calls)));
    assert_eq!(
        m.value("cauldron_plugin_hook_duration_seconds_count", &hook),
        calls
    );
    assert!(m.value("cauldron_plugin_hook_duration_seconds_sum", &hook) > 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_ready_answer_200_and_unknown_paths_404() {
    let b = TestBroker::start(with_metrics()).await;
    let addr = metrics_addr(&b);
    let health = get(addr, "/health").await;
    assert_eq!((health.status, health.body.as_str()), (200, "ok\n"));
    let ready = get(addr, "/ready").await;
    assert_eq!((ready.status, ready.body.as_str()), (200, "ready\n"));
    assert_eq!(get(addr, "/").await.status, 404);
    assert_eq!(get(addr, "/metrics/extra").await.status, 404);
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_endpoint_closes_with_the_server() {
    let b = TestBroker::start(with_metrics()).await;
    let addr = metrics_addr(&b);
    assert_eq!(get(addr, "/health").await.status, 200);
    b.stop().await;
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "the endpoint still accepts after shutdown"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_endpoint_is_off_unless_enabled() {
    let b = TestBroker::start(Config::default()).await;
    assert_eq!(b.metrics, None);
    b.stop().await;
}
