//! Failing plugins: a trap discards the instance and a fresh one serves the next call;
//! repeated failures mark the plugin failed; an invalid answer counts as a failure. In
//! every case the hook's `on_error` policy decides the outcome.

use cauldron::config::FailurePolicy;
use cauldron::plugin::Hook;
use integration::packets::{Connect, Publish};
use integration::plugins::{FIXTURE_INVALID_ANSWER_WASM, FIXTURE_TRAP_WASM};
use integration::{QUIET, RawClient, TestBroker};
use serde_json::json;

use super::{hook_stats, plugin, plugin_stats, start, with_policy};

/// The trap fixture, one instance, on_error = deny for every hook.
fn trap(max_consecutive_failures: u32) -> Vec<cauldron::config::PluginConfig> {
    let mut p = with_policy(
        plugin("trap", FIXTURE_TRAP_WASM, json!({})),
        FailurePolicy::Deny,
    );
    p.max_consecutive_failures = max_consecutive_failures;
    vec![p]
}

/// Publishes `topic` and returns the PUBACK code and, when it was delivered to `sub`,
/// the fixture's `fixture-instance` user property.
async fn round_trip(c: &mut RawClient, sub: &mut RawClient, topic: &str) -> (u8, Option<String>) {
    let code = c.publish(Publish::new(topic, b"x").qos(1, 0)).await;
    if code >= 0x80 {
        sub.expect_no_packet(QUIET).await;
        return (code, None);
    }
    let p = sub.recv_publish_acked().await;
    assert_eq!(p.topic, topic);
    let instance = p
        .props
        .user()
        .into_iter()
        .find(|(k, _)| k == "fixture-instance")
        .map(|(_, v)| v);
    (code, instance)
}

/// A subscriber to every topic (`#` does not trigger the fixture) and a publisher.
async fn clients(b: &TestBroker) -> (RawClient, RawClient) {
    let mut sub = RawClient::connect_v5(b.addr, "sub", Default::default())
        .await
        .0;
    assert_eq!(sub.subscribe("#", 1).await, vec![1]);
    let publisher = RawClient::connect_v5(b.addr, "pub", Default::default())
        .await
        .0;
    (sub, publisher)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trapping_publish_gets_the_policy_and_a_fresh_instance_serves_the_next_call() {
    // Issue 3: "On a trap ... the instance is discarded and a fresh one made from a
    // pre-instantiated template; the hook's failure policy decides the outcome". The
    // fixture's `fixture-instance` property shows which instance answered.
    let b = start(trap(5)).await;
    let (mut sub, mut c) = clients(&b).await;

    let (code, before) = round_trip(&mut c, &mut sub, "ok/1").await;
    assert_eq!(
        (code, before.as_deref()),
        (0x00, Some("1")),
        "first instance"
    );
    let (code, _) = round_trip(&mut c, &mut sub, "trap/now").await;
    assert_eq!(code, 0x80, "the trapping publish gets the deny policy");
    let (code, after) = round_trip(&mut c, &mut sub, "ok/2").await;
    assert_eq!(code, 0x00, "the next call works");
    assert_eq!(after.as_deref(), Some("2"), "answered by a new instance");

    let stats = hook_stats(&b, "trap", Hook::Publish);
    assert_eq!((stats.calls, stats.failures), (3, 1));
    assert!(
        !plugin_stats(&b, "trap").failed,
        "one failure does not mark it failed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_is_no_longer_called_after_max_consecutive_failures() {
    // Issue 3: "after repeated failures the plugin is marked failed, logged and counted,
    // and the policy applies without calling it". After 3 traps in a row even a harmless
    // publish gets the deny policy, and the plugin's call counter stands still.
    let b = start(trap(3)).await;
    let (mut sub, mut c) = clients(&b).await;
    for i in 0..3 {
        let (code, _) = round_trip(&mut c, &mut sub, &format!("trap/{i}")).await;
        assert_eq!(code, 0x80, "trap {i} gets the deny policy");
    }
    assert!(
        plugin_stats(&b, "trap").failed,
        "marked failed after 3 failures"
    );

    let (code, _) = round_trip(&mut c, &mut sub, "ok/after").await;
    assert_eq!(code, 0x80, "the policy answers for the failed plugin");
    let stats = hook_stats(&b, "trap", Hook::Publish);
    assert_eq!(
        (stats.calls, stats.failures, stats.skipped_failed),
        (3, 3, 1),
        "the harmless publish was not passed to the plugin"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trapping_connect_and_subscribe_get_their_deny_policies() {
    // Issue 3: on_error "deny by default for connect and subscribe": a trap in on-connect
    // refuses the client (CONNACK 0x88, server unavailable), a trap in on-subscribe
    // refuses the filter (SUBACK 0x80); the connection itself stays up.
    let mut chain = trap(5);
    chain[0].on_error = Default::default();
    let b = start(chain).await;
    let mut refused = RawClient::connect(b.addr).await;
    refused
        .expect_refused(&Connect::v5("t").credentials("trap", b"pw"), 0x88)
        .await;

    let mut c = RawClient::connect_v5(b.addr, "sub", Default::default())
        .await
        .0;
    assert_eq!(
        c.subscribe("trap/#", 1).await,
        vec![0x80],
        "trapping subscribe"
    );
    assert_eq!(
        c.subscribe("ok/#", 1).await,
        vec![1],
        "next subscribe works"
    );
    let failures: Vec<u64> = [Hook::Connect, Hook::Subscribe]
        .iter()
        .map(|&h| hook_stats(&b, "trap", h).failures)
        .collect();
    assert_eq!(
        failures,
        vec![1, 1],
        "connect and subscribe failures counted"
    );
}

/// The invalid-answer fixture (one instance) with every hook's `on_error` = `policy`.
fn invalid(policy: FailurePolicy) -> Vec<cauldron::config::PluginConfig> {
    vec![with_policy(
        plugin("invalid", FIXTURE_INVALID_ANSWER_WASM, json!({})),
        policy,
    )]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wildcard_rewrite_is_a_failure_and_allow_passes_the_message_unchanged() {
    // Issue 3: "Everything a plugin returns is validated (... no wildcards in topic
    // names ...); an invalid answer counts as a plugin failure". The fixture rewrites
    // `invalid/anything` to `invalid/#`; with on_error.publish = allow the original
    // message is delivered unchanged.
    let b = start(invalid(FailurePolicy::Allow)).await;
    let mut sub = RawClient::connect_v5(b.addr, "sub", Default::default())
        .await
        .0;
    assert_eq!(sub.subscribe("#", 1).await, vec![1]);
    let mut c = RawClient::connect_v5(b.addr, "pub", Default::default())
        .await
        .0;
    for topic in ["invalid/anything", "invalid/plus"] {
        let code = c.publish(Publish::new(topic, b"body").qos(1, 0)).await;
        assert_eq!(code, 0x00, "{topic}: allow policy");
        let p = sub.recv_publish_acked().await;
        assert_eq!(
            (p.topic.as_str(), p.payload_str()),
            (topic, "body"),
            "unchanged"
        );
    }
    sub.expect_no_packet(QUIET).await;
    let stats = hook_stats(&b, "invalid", Hook::Publish);
    assert_eq!(
        (stats.failures, stats.invalid_answers),
        (2, 2),
        "invalid answers counted as failures"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wildcard_rewrite_is_a_failure_and_deny_drops_the_message() {
    // The same invalid rewrite with on_error.publish = deny: PUBACK 0x80, not delivered.
    // A drop with the success code 0x00 is invalid too.
    let b = start(invalid(FailurePolicy::Deny)).await;
    let mut sub = RawClient::connect_v5(b.addr, "sub", Default::default())
        .await
        .0;
    assert_eq!(sub.subscribe("#", 1).await, vec![1]);
    let mut c = RawClient::connect_v5(b.addr, "pub", Default::default())
        .await
        .0;
    for topic in ["invalid/anything", "invalid/success-code"] {
        let code = c.publish(Publish::new(topic, b"body").qos(1, 0)).await;
        assert_eq!(code, 0x80, "{topic}: deny policy");
    }
    sub.expect_no_packet(QUIET).await;
    let stats = hook_stats(&b, "invalid", Hook::Publish);
    assert_eq!((stats.failures, stats.invalid_answers), (2, 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_granted_above_the_requested_qos_is_a_failure() {
    // Issue 3: on-subscribe allow "with a granted QoS no higher than requested". The
    // fixture grants QoS 2 for a QoS 1 request: with the default subscribe policy (deny)
    // the SUBACK refuses; with allow the request is granted as asked (1), never 2.
    let mut deny = invalid(FailurePolicy::Deny);
    deny[0].on_error = Default::default();
    let b = start(deny).await;
    let mut c = RawClient::connect_v5(b.addr, "sub", Default::default())
        .await
        .0;
    assert_eq!(c.subscribe("invalid/x", 1).await, vec![0x80], "deny policy");
    let stats = hook_stats(&b, "invalid", Hook::Subscribe);
    assert_eq!((stats.failures, stats.invalid_answers), (1, 1));
    drop(b);

    let b = start(invalid(FailurePolicy::Allow)).await;
    let mut c = RawClient::connect_v5(b.addr, "sub", Default::default())
        .await
        .0;
    assert_eq!(c.subscribe("invalid/x", 1).await, vec![1], "allow policy");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_with_a_code_puback_cannot_carry_is_an_invalid_answer() {
    // Issue 3: "Everything a plugin returns is validated"; [MQTT-3.4.2-1] a PUBACK carries
    // one of the PUBACK reason codes, and 0x96 (message rate too high) is not one (rate-limit
    // README, "Why 0x97": "the broker would reject it as an invalid answer"). rate-limit
    // configured with 0x96 and a budget of 0 drops with it: the broker must count an
    // invalid answer and apply on_error.publish (allow: the message continues).
    let b = start(vec![plugin(
        "rate-limit",
        integration::plugins::RATE_LIMIT_WASM,
        json!({"messages_per_window": 0, "reason_code": 0x96}),
    )])
    .await;
    let mut sub = RawClient::connect_v5(b.addr, "sub", Default::default())
        .await
        .0;
    assert_eq!(sub.subscribe("rl/#", 1).await, vec![1]);
    let mut c = RawClient::connect_v5(b.addr, "pub", Default::default())
        .await
        .0;
    let code = c.publish(Publish::new("rl/x", b"x").qos(1, 0)).await;
    assert_eq!(
        code, 0x00,
        "PUBACK {code:#04x}: 0x96 must not reach the wire [MQTT-3.4.2-1]; allow policy"
    );
    let p = sub.recv_publish_acked().await;
    assert_eq!(
        p.topic, "rl/x",
        "the allow policy lets the message continue"
    );
    let stats = hook_stats(&b, "rate-limit", Hook::Publish);
    assert_eq!((stats.failures, stats.invalid_answers), (1, 1));
}
