//! Golden tests of the exposition text for fixed counters.

use std::sync::atomic::AtomicU64;

use super::render::{escape_help, escape_label_value};
use super::{Snapshot, render};
use crate::plugin::LATENCY_BUCKETS_US;
use crate::plugin::{Hook, HookStats, PluginStats};
use crate::stats::Stats;
use crate::types::QoS;

fn set(counter: &AtomicU64, n: u64) {
    Stats::add(counter, n);
}

fn fixed_stats() -> Stats {
    let s = Stats::default();
    set(&s.clients_connected, 2);
    set(&s.connections_total, 4);
    set(&s.connections_refused, 1);
    s.publish_received(QoS::AtLeastOnce, 10);
    s.publish_received(QoS::AtLeastOnce, 5);
    s.publish_received(QoS::ExactlyOnce, 7);
    s.publish_sent(QoS::AtMostOnce, 3);
    s.bytes_received.add(100);
    s.bytes_sent.add(80);
    s.dropped_queue_full.add(1);
    s.dropped_expired.add(2);
    s.dropped_too_large.add(3);
    set(&s.auth_accepted, 3);
    set(&s.auth_refused, 1);
    set(&s.denied_subscribe, 4);
    set(&s.acl_denied_publish, 5);
    set(&s.acl_denied_delivery, 6);
    set(&s.messages_rejected, 7);
    set(&s.protocol_errors, 8);
    set(&s.credentials_expired, 9);
    set(&s.internal_errors, 10);
    s
}

fn snapshot(stats: &Stats, plugins: Vec<PluginStats>) -> Snapshot<'_> {
    Snapshot {
        stats,
        uptime_secs: 42,
        sessions_online: 2,
        sessions_offline: 1,
        subscriptions: 3,
        retained: 5,
        plugins,
    }
}

/// The exposition of [`fixed_stats`] without plugins; `{VERSION}` stands for the crate
/// version.
const GOLDEN_BROKER: &str = r#"# HELP cauldron_build_info Cauldron version; always 1.
# TYPE cauldron_build_info gauge
cauldron_build_info{version="{VERSION}"} 1
# HELP cauldron_uptime_seconds Seconds since the broker started.
# TYPE cauldron_uptime_seconds gauge
cauldron_uptime_seconds 42
# HELP cauldron_clients_connected Clients connected now (CONNECT accepted, not yet closed).
# TYPE cauldron_clients_connected gauge
cauldron_clients_connected 2
# HELP cauldron_subscriptions Subscriptions held by sessions; each shared-subscription member counts once.
# TYPE cauldron_subscriptions gauge
cauldron_subscriptions 3
# HELP cauldron_retained_messages Retained messages stored.
# TYPE cauldron_retained_messages gauge
cauldron_retained_messages 5
# HELP cauldron_sessions Sessions by state: online (connected) or offline (kept for a returning client).
# TYPE cauldron_sessions gauge
cauldron_sessions{state="online"} 2
cauldron_sessions{state="offline"} 1
# HELP cauldron_messages_received_total PUBLISH packets received from clients, by QoS.
# TYPE cauldron_messages_received_total counter
cauldron_messages_received_total{qos="0"} 0
cauldron_messages_received_total{qos="1"} 2
cauldron_messages_received_total{qos="2"} 1
# HELP cauldron_messages_sent_total PUBLISH packets sent to clients (retransmissions included), by delivery QoS.
# TYPE cauldron_messages_sent_total counter
cauldron_messages_sent_total{qos="0"} 1
cauldron_messages_sent_total{qos="1"} 0
cauldron_messages_sent_total{qos="2"} 0
# HELP cauldron_payload_bytes_received_total Payload bytes of the PUBLISH packets received, by QoS.
# TYPE cauldron_payload_bytes_received_total counter
cauldron_payload_bytes_received_total{qos="0"} 0
cauldron_payload_bytes_received_total{qos="1"} 15
cauldron_payload_bytes_received_total{qos="2"} 7
# HELP cauldron_payload_bytes_sent_total Payload bytes of the PUBLISH packets sent, by delivery QoS.
# TYPE cauldron_payload_bytes_sent_total counter
cauldron_payload_bytes_sent_total{qos="0"} 3
cauldron_payload_bytes_sent_total{qos="1"} 0
cauldron_payload_bytes_sent_total{qos="2"} 0
# HELP cauldron_network_bytes_received_total Bytes read from MQTT client sockets.
# TYPE cauldron_network_bytes_received_total counter
cauldron_network_bytes_received_total 100
# HELP cauldron_network_bytes_sent_total Bytes written to MQTT client sockets.
# TYPE cauldron_network_bytes_sent_total counter
cauldron_network_bytes_sent_total 80
# HELP cauldron_connections_total TCP connections accepted, refused ones included.
# TYPE cauldron_connections_total counter
cauldron_connections_total 4
# HELP cauldron_connections_refused_total TCP connections closed at once because a connection limit was reached.
# TYPE cauldron_connections_refused_total counter
cauldron_connections_refused_total 1
# HELP cauldron_messages_dropped_total Deliveries dropped: queue_full (session queue full), expired (Message Expiry Interval passed), too_large (above the client's Maximum Packet Size).
# TYPE cauldron_messages_dropped_total counter
cauldron_messages_dropped_total{reason="queue_full"} 1
cauldron_messages_dropped_total{reason="expired"} 2
cauldron_messages_dropped_total{reason="too_large"} 3
# HELP cauldron_authentications_total Connect authentication outcomes: success (anonymous included) or failure.
# TYPE cauldron_authentications_total counter
cauldron_authentications_total{result="success"} 3
cauldron_authentications_total{result="failure"} 1
# HELP cauldron_authorization_denied_total Refusals by action: subscribe (ACL or plugin), publish (ACL; wills at connect included), delivery (withheld by an ACL deny rule).
# TYPE cauldron_authorization_denied_total counter
cauldron_authorization_denied_total{action="subscribe"} 4
cauldron_authorization_denied_total{action="publish"} 5
cauldron_authorization_denied_total{action="delivery"} 6
# HELP cauldron_messages_rejected_total Messages refused by the broker: QoS, retain, validation, ACL or plugin refusals.
# TYPE cauldron_messages_rejected_total counter
cauldron_messages_rejected_total 7
# HELP cauldron_protocol_errors_total Connections closed for a protocol violation.
# TYPE cauldron_protocol_errors_total counter
cauldron_protocol_errors_total 8
# HELP cauldron_credentials_expired_total Connections closed because their credentials (a JWT) expired.
# TYPE cauldron_credentials_expired_total counter
cauldron_credentials_expired_total 9
# HELP cauldron_internal_errors_total Panics the broker caught: a connection closed, or a background job that went on (a bug; the log has the message).
# TYPE cauldron_internal_errors_total counter
cauldron_internal_errors_total 10
"#;

#[test]
fn renders_broker_counters_and_gauges_as_golden_text() {
    let stats = fixed_stats();
    let text = render(&snapshot(&stats, Vec::new()));
    let expected = GOLDEN_BROKER.replace("{VERSION}", env!("CARGO_PKG_VERSION"));
    assert_eq!(text, expected);
}

/// Counters of one hook; `buckets` are (bucket index, calls) pairs.
fn hook(hook: Hook, buckets: &[(usize, u64)], latency_sum_ns: u64) -> HookStats {
    let mut latency_buckets = vec![0; LATENCY_BUCKETS_US.len() + 1];
    for (i, n) in buckets {
        latency_buckets[*i] = *n;
    }
    HookStats {
        hook,
        calls: buckets.iter().map(|(_, n)| n).sum(),
        allow: 0,
        deny: 0,
        no_opinion: 0,
        continued: 0,
        replaced: 0,
        dropped: 0,
        failures: 0,
        timeouts: 0,
        invalid_answers: 0,
        skipped_failed: 0,
        latency_sum_ns,
        latency_buckets,
    }
}

fn fixed_plugins() -> Vec<PluginStats> {
    // "auth": 3 on-connect calls (two under 1 µs, one under 20 µs), 2 allowed, 1 denied.
    let mut connect = hook(Hook::Connect, &[(0, 2), (4, 1)], 15_500);
    (connect.allow, connect.deny) = (2, 1);
    // "rw": marked failed after 3 failed on-publish calls (a timeout, an invalid answer,
    // a trap), one of them in the open bucket; 2 calls skipped since.
    let mut publish = hook(Hook::Publish, &[(9, 2), (16, 1)], 2_250_000_000);
    (publish.failures, publish.timeouts, publish.invalid_answers) = (3, 1, 1);
    publish.skipped_failed = 2;
    vec![
        PluginStats {
            plugin: "auth".to_owned(),
            failed: false,
            kv_keys: 4,
            hooks: vec![connect],
        },
        PluginStats {
            plugin: "rw".to_owned(),
            failed: true,
            kv_keys: 0,
            hooks: vec![publish, hook(Hook::Disconnect, &[], 0)],
        },
    ]
}

/// The plugin part of the exposition for [`fixed_plugins`]: decisions only for the
/// hooks that make them, cumulative buckets in seconds, `_count` equal to `+Inf`.
const GOLDEN_PLUGINS: &str = r#"# HELP cauldron_plugin_failed 1 once a plugin reached max_consecutive_failures and is no longer called.
# TYPE cauldron_plugin_failed gauge
cauldron_plugin_failed{plugin="auth"} 0
cauldron_plugin_failed{plugin="rw"} 1
# HELP cauldron_plugin_kv_keys Keys in the plugin's key-value store.
# TYPE cauldron_plugin_kv_keys gauge
cauldron_plugin_kv_keys{plugin="auth"} 4
cauldron_plugin_kv_keys{plugin="rw"} 0
# HELP cauldron_plugin_hook_calls_total Calls into a plugin hook, failed ones included.
# TYPE cauldron_plugin_hook_calls_total counter
cauldron_plugin_hook_calls_total{plugin="auth",hook="on-connect"} 3
cauldron_plugin_hook_calls_total{plugin="rw",hook="on-publish"} 3
cauldron_plugin_hook_calls_total{plugin="rw",hook="on-disconnect"} 0
# HELP cauldron_plugin_hook_decisions_total Answers by decision: allow, deny or no_opinion (on-connect, on-subscribe); continue, replace or drop (on-publish).
# TYPE cauldron_plugin_hook_decisions_total counter
cauldron_plugin_hook_decisions_total{plugin="auth",hook="on-connect",decision="allow"} 2
cauldron_plugin_hook_decisions_total{plugin="auth",hook="on-connect",decision="deny"} 1
cauldron_plugin_hook_decisions_total{plugin="auth",hook="on-connect",decision="no_opinion"} 0
cauldron_plugin_hook_decisions_total{plugin="rw",hook="on-publish",decision="continue"} 0
cauldron_plugin_hook_decisions_total{plugin="rw",hook="on-publish",decision="replace"} 0
cauldron_plugin_hook_decisions_total{plugin="rw",hook="on-publish",decision="drop"} 0
# HELP cauldron_plugin_hook_failures_total Failed calls by kind: timeout (deadline), invalid_answer, other (trap, memory cap).
# TYPE cauldron_plugin_hook_failures_total counter
cauldron_plugin_hook_failures_total{plugin="auth",hook="on-connect",kind="timeout"} 0
cauldron_plugin_hook_failures_total{plugin="auth",hook="on-connect",kind="invalid_answer"} 0
cauldron_plugin_hook_failures_total{plugin="auth",hook="on-connect",kind="other"} 0
cauldron_plugin_hook_failures_total{plugin="rw",hook="on-publish",kind="timeout"} 1
cauldron_plugin_hook_failures_total{plugin="rw",hook="on-publish",kind="invalid_answer"} 1
cauldron_plugin_hook_failures_total{plugin="rw",hook="on-publish",kind="other"} 1
cauldron_plugin_hook_failures_total{plugin="rw",hook="on-disconnect",kind="timeout"} 0
cauldron_plugin_hook_failures_total{plugin="rw",hook="on-disconnect",kind="invalid_answer"} 0
cauldron_plugin_hook_failures_total{plugin="rw",hook="on-disconnect",kind="other"} 0
# HELP cauldron_plugin_hook_skipped_total Calls not made because the plugin is marked failed; its on_error policy answered.
# TYPE cauldron_plugin_hook_skipped_total counter
cauldron_plugin_hook_skipped_total{plugin="auth",hook="on-connect"} 0
cauldron_plugin_hook_skipped_total{plugin="rw",hook="on-publish"} 2
cauldron_plugin_hook_skipped_total{plugin="rw",hook="on-disconnect"} 0
# HELP cauldron_plugin_hook_duration_seconds Duration of plugin hook calls.
# TYPE cauldron_plugin_hook_duration_seconds histogram
cauldron_plugin_hook_duration_seconds_bucket{plugin="auth",hook="on-connect",le="0.000001"} 2
cauldron_plugin_hook_duration_seconds_bucket{plugin="auth",hook="on-connect",le="0.000002"} 2
cauldron_plugin_hook_duration_seconds_bucket{plugin="auth",hook="on-connect",le="0.000005"} 2
cauldron_plugin_hook_duration_seconds_bucket{plugin="auth",hook="on-connect",le="0.00001"} 2
cauldron_plugin_hook_duration_seconds_bucket{plugin="auth",hook="on-connect",le="0.00002"} 3
cauldron_plugin_hook_duration_seconds_bucket{plugin="auth",hook="on-connect",le="0.00005"} 3
cauldron_plugin_hook_duration_seconds_bucket{plugin="auth",hook="on-connect",le="0.0001"} 3
cauldron_plugin_hook_duration_seconds_bucket{plugin="auth",hook="on-connect",le="0.0002"} 3
cauldron_plugin_hook_duration_seconds_bucket{plugin="auth",hook="on-connect",le="0.0005"} 3
cauldron_plugin_hook_duration_seconds_bucket{plugin="auth",hook="on-connect",le="0.001"} 3
cauldron_plugin_hook_duration_seconds_bucket{plugin="auth",hook="on-connect",le="0.002"} 3
cauldron_plugin_hook_duration_seconds_bucket{plugin="auth",hook="on-connect",le="0.005"} 3
cauldron_plugin_hook_duration_seconds_bucket{plugin="auth",hook="on-connect",le="0.01"} 3
cauldron_plugin_hook_duration_seconds_bucket{plugin="auth",hook="on-connect",le="0.02"} 3
cauldron_plugin_hook_duration_seconds_bucket{plugin="auth",hook="on-connect",le="0.05"} 3
cauldron_plugin_hook_duration_seconds_bucket{plugin="auth",hook="on-connect",le="0.1"} 3
cauldron_plugin_hook_duration_seconds_bucket{plugin="auth",hook="on-connect",le="+Inf"} 3
cauldron_plugin_hook_duration_seconds_sum{plugin="auth",hook="on-connect"} 0.0000155
cauldron_plugin_hook_duration_seconds_count{plugin="auth",hook="on-connect"} 3
cauldron_plugin_hook_duration_seconds_bucket{plugin="rw",hook="on-publish",le="0.000001"} 0
cauldron_plugin_hook_duration_seconds_bucket{plugin="rw",hook="on-publish",le="0.000002"} 0
cauldron_plugin_hook_duration_seconds_bucket{plugin="rw",hook="on-publish",le="0.000005"} 0
cauldron_plugin_hook_duration_seconds_bucket{plugin="rw",hook="on-publish",le="0.00001"} 0
cauldron_plugin_hook_duration_seconds_bucket{plugin="rw",hook="on-publish",le="0.00002"} 0
cauldron_plugin_hook_duration_seconds_bucket{plugin="rw",hook="on-publish",le="0.00005"} 0
cauldron_plugin_hook_duration_seconds_bucket{plugin="rw",hook="on-publish",le="0.0001"} 0
cauldron_plugin_hook_duration_seconds_bucket{plugin="rw",hook="on-publish",le="0.0002"} 0
cauldron_plugin_hook_duration_seconds_bucket{plugin="rw",hook="on-publish",le="0.0005"} 0
cauldron_plugin_hook_duration_seconds_bucket{plugin="rw",hook="on-publish",le="0.001"} 2
cauldron_plugin_hook_duration_seconds_bucket{plugin="rw",hook="on-publish",le="0.002"} 2
cauldron_plugin_hook_duration_seconds_bucket{plugin="rw",hook="on-publish",le="0.005"} 2
cauldron_plugin_hook_duration_seconds_bucket{plugin="rw",hook="on-publish",le="0.01"} 2
cauldron_plugin_hook_duration_seconds_bucket{plugin="rw",hook="on-publish",le="0.02"} 2
cauldron_plugin_hook_duration_seconds_bucket{plugin="rw",hook="on-publish",le="0.05"} 2
cauldron_plugin_hook_duration_seconds_bucket{plugin="rw",hook="on-publish",le="0.1"} 2
cauldron_plugin_hook_duration_seconds_bucket{plugin="rw",hook="on-publish",le="+Inf"} 3
cauldron_plugin_hook_duration_seconds_sum{plugin="rw",hook="on-publish"} 2.25
cauldron_plugin_hook_duration_seconds_count{plugin="rw",hook="on-publish"} 3
cauldron_plugin_hook_duration_seconds_bucket{plugin="rw",hook="on-disconnect",le="0.000001"} 0
cauldron_plugin_hook_duration_seconds_bucket{plugin="rw",hook="on-disconnect",le="0.000002"} 0
cauldron_plugin_hook_duration_seconds_bucket{plugin="rw",hook="on-disconnect",le="0.000005"} 0
cauldron_plugin_hook_duration_seconds_bucket{plugin="rw",hook="on-disconnect",le="0.00001"} 0
cauldron_plugin_hook_duration_seconds_bucket{plugin="rw",hook="on-disconnect",le="0.00002"} 0
cauldron_plugin_hook_duration_seconds_bucket{plugin="rw",hook="on-disconnect",le="0.00005"} 0
cauldron_plugin_hook_duration_seconds_bucket{plugin="rw",hook="on-disconnect",le="0.0001"} 0
cauldron_plugin_hook_duration_seconds_bucket{plugin="rw",hook="on-disconnect",le="0.0002"} 0
cauldron_plugin_hook_duration_seconds_bucket{plugin="rw",hook="on-disconnect",le="0.0005"} 0
cauldron_plugin_hook_duration_seconds_bucket{plugin="rw",hook="on-disconnect",le="0.001"} 0
cauldron_plugin_hook_duration_seconds_bucket{plugin="rw",hook="on-disconnect",le="0.002"} 0
cauldron_plugin_hook_duration_seconds_bucket{plugin="rw",hook="on-disconnect",le="0.005"} 0
cauldron_plugin_hook_duration_seconds_bucket{plugin="rw",hook="on-disconnect",le="0.01"} 0
cauldron_plugin_hook_duration_seconds_bucket{plugin="rw",hook="on-disconnect",le="0.02"} 0
cauldron_plugin_hook_duration_seconds_bucket{plugin="rw",hook="on-disconnect",le="0.05"} 0
cauldron_plugin_hook_duration_seconds_bucket{plugin="rw",hook="on-disconnect",le="0.1"} 0
cauldron_plugin_hook_duration_seconds_bucket{plugin="rw",hook="on-disconnect",le="+Inf"} 0
cauldron_plugin_hook_duration_seconds_sum{plugin="rw",hook="on-disconnect"} 0
cauldron_plugin_hook_duration_seconds_count{plugin="rw",hook="on-disconnect"} 0
"#;

#[test]
fn renders_plugin_hook_counters_and_latency_histograms_as_golden_text() {
    let stats = fixed_stats();
    let text = render(&snapshot(&stats, fixed_plugins()));
    let plugins = text
        .find("# HELP cauldron_plugin_failed")
        .map(|start| &text[start..]);
    assert_eq!(plugins, Some(GOLDEN_PLUGINS));
}

#[test]
fn omits_plugin_families_without_plugins() {
    let stats = fixed_stats();
    let text = render(&snapshot(&stats, Vec::new()));
    assert!(!text.contains("cauldron_plugin_"), "{text}");
}

#[test]
fn escapes_label_values_and_help_text() {
    assert_eq!(escape_label_value(r#"a"b\c"#), r#"a\"b\\c"#);
    assert_eq!(escape_label_value("line\nbreak"), r"line\nbreak");
    assert_eq!(
        escape_help("back\\slash\nand \"quotes\""),
        r#"back\\slash\nand "quotes""#
    );
}

#[test]
fn every_family_has_help_and_type_and_counters_end_in_total() {
    let stats = fixed_stats();
    let text = render(&snapshot(&stats, fixed_plugins()));
    let mut typed = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or_default();
            assert!(
                text.contains(&format!("# HELP {name} ")),
                "{name} has no HELP"
            );
            assert!(kind != "counter" || name.ends_with("_total"), "{name}");
            typed.push(name.to_owned());
        } else if !line.starts_with('#') {
            let name = line.split(['{', ' ']).next().unwrap_or_default();
            assert!(
                typed.iter().any(|t| name.starts_with(t.as_str())),
                "{name} sampled before its TYPE"
            );
        }
    }
}
