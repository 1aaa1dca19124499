//! The sandbox limits: a spinning plugin is cut off at its deadline (epoch interruption)
//! while other clients keep flowing, and a memory hog is stopped by its store's cap; in
//! both cases the hook's `on_error` policy decides and the broker stays healthy.

use std::time::{Duration, Instant};

use cauldron::config::FailurePolicy;
use cauldron::plugin::Hook;
use integration::packets::{Connect, Publish};
use integration::plugins::{FIXTURE_MEMORY_HOG_WASM, FIXTURE_SPIN_WASM};
use integration::raw::Next;
use integration::{QUIET, RawClient, assert_healthy, ms};
use serde_json::json;

use super::{SLACK, hook_stats, plugin, start, with_policy};

/// The spin fixture with this deadline, `instances` instances and `on_error = deny`.
fn spin(deadline_ms: u64, instances: usize) -> Vec<cauldron::config::PluginConfig> {
    let mut p = with_policy(
        plugin("spin", FIXTURE_SPIN_WASM, json!({})),
        FailurePolicy::Deny,
    );
    p.hook_timeout_ms = deadline_ms;
    p.instances = Some(instances);
    vec![p]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spinning_publish_hook_is_cut_off_at_its_deadline_and_the_policy_applies() {
    // Issue 3: "every call has a deadline (epoch interruption)"; "a spinning plugin is cut
    // off within its deadline". With on_error.publish = deny the publish that hit it is
    // dropped: PUBACK 0x80, nothing delivered, one timeout counted.
    let b = start(spin(50, 1)).await;
    let mut sub = RawClient::connect_v5(b.addr, "sub", Default::default())
        .await
        .0;
    assert_eq!(sub.subscribe("spin/#", 1).await, vec![1]);
    let mut c = RawClient::connect_v5(b.addr, "spinner", Default::default())
        .await
        .0;

    let started = Instant::now();
    let code = c.publish(Publish::new("spin/now", b"x").qos(1, 0)).await;
    let took = started.elapsed();
    assert_eq!(code, 0x80, "PUBACK carries the deny policy's code");
    assert!(
        took >= ms(50) && took < ms(50) + SLACK,
        "PUBACK after {took:?}: expected the 50 ms deadline to cut the call off"
    );
    sub.expect_no_packet(QUIET).await;

    let stats = hook_stats(&b, "spin", Hook::Publish);
    assert_eq!(
        (stats.failures, stats.timeouts),
        (1, 1),
        "one timeout counted"
    );
    assert_healthy(b.addr).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_clients_keep_flowing_while_a_plugin_spins() {
    // Issue 3: "The broker never crashes or stalls: other clients keep flowing while one
    // plugin spins". A 1 s deadline keeps the spin call running while another client's
    // publish goes through the same plugin (a second instance) to a subscriber.
    let deadline = ms(1000);
    let b = start(spin(1000, 2)).await;
    let mut sub = RawClient::connect_v5(b.addr, "sub", Default::default())
        .await
        .0;
    assert_eq!(sub.subscribe("calm/#", 1).await, vec![1]);
    let mut spinner = RawClient::connect_v5(b.addr, "spinner", Default::default())
        .await
        .0;
    let mut calm = RawClient::connect_v5(b.addr, "calm", Default::default())
        .await
        .0;

    let started = Instant::now();
    spinner
        .send(&Publish::new("spin/now", b"x").qos(1, 7).v5().bytes())
        .await;
    tokio::time::sleep(ms(50)).await;
    let code = calm.publish(Publish::new("calm/x", b"ok").qos(1, 0)).await;
    let p = sub.recv_publish_acked().await;
    let flowed = started.elapsed();
    assert_eq!((code, p.topic.as_str()), (0x00, "calm/x"));
    assert!(
        flowed < deadline,
        "the other client's round trip took {flowed:?}, as long as the spin call"
    );
    assert!(
        matches!(spinner.next(Duration::ZERO).await, Next::Timeout),
        "the spinning call was still running while the other client's message flowed"
    );

    let (_, body) = spinner.recv_kind(integration::packets::kind::PUBACK).await;
    let (id, reason, _) = integration::packets::parse_ack(&body);
    let cut = started.elapsed();
    assert_eq!(
        (id, reason),
        (7, 0x80),
        "the spinning publish gets the deny policy"
    );
    assert!(
        cut >= deadline && cut < deadline + SLACK,
        "spin call cut off after {cut:?}, deadline {deadline:?}"
    );
    assert_healthy(b.addr).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spinning_connect_hook_is_cut_off_and_the_connect_policy_refuses() {
    // Issue 3: on_error "deny by default for connect"; the deny policy answers CONNACK 0x88
    // (server unavailable) once the 50 ms deadline cuts the spin off.
    let mut chain = spin(50, 1);
    chain[0].on_error = Default::default();
    let b = start(chain).await;
    let mut c = RawClient::connect(b.addr).await;
    let started = Instant::now();
    c.expect_refused(&Connect::v5("s").credentials("spin-user", b"pw"), 0x88)
        .await;
    let took = started.elapsed();
    assert!(took < ms(50) + SLACK, "CONNACK after {took:?}");
    let stats = hook_stats(&b, "spin", Hook::Connect);
    assert_eq!(stats.timeouts, 1, "one connect timeout counted");
    assert_healthy(b.addr).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_hog_is_stopped_by_its_cap_and_the_broker_stays_healthy() {
    // Issue 3: "every store a memory cap"; "a memory hog is stopped". The hog allocates
    // past 16 MiB; the call fails (not by the generous deadline), on_error.publish = deny
    // drops the message with 0x80, and the next normal publish through the same plugin
    // (a fresh instance) is delivered.
    let mut p = with_policy(
        plugin("hog", FIXTURE_MEMORY_HOG_WASM, json!({})),
        FailurePolicy::Deny,
    );
    p.memory_limit_mib = 16;
    p.hook_timeout_ms = 5000;
    let b = start(vec![p]).await;
    let mut sub = RawClient::connect_v5(b.addr, "sub", Default::default())
        .await
        .0;
    assert_eq!(sub.subscribe("hog/#", 1).await, vec![1]);
    assert_eq!(sub.subscribe("fine/#", 1).await, vec![1]);
    let mut c = RawClient::connect_v5(b.addr, "greedy", Default::default())
        .await
        .0;

    let code = c.publish(Publish::new("hog/eat", b"x").qos(1, 0)).await;
    assert_eq!(code, 0x80, "the hogging publish gets the deny policy");
    sub.expect_no_packet(QUIET).await;
    let stats = hook_stats(&b, "hog", Hook::Publish);
    assert_eq!(
        (stats.failures, stats.timeouts),
        (1, 0),
        "stopped by the memory cap, not the deadline"
    );

    let code = c.publish(Publish::new("fine/x", b"ok").qos(1, 0)).await;
    assert_eq!(code, 0x00, "the next normal publish is accepted");
    let p = sub.recv_publish_acked().await;
    assert_eq!((p.topic.as_str(), p.payload_str()), ("fine/x", "ok"));
    assert_healthy(b.addr).await;
}
