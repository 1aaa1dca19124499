//! A [`Snapshot`] in the Prometheus text exposition format 0.0.4: one `# HELP` and one
//! `# TYPE` line per family, counters suffixed `_total`, plugin latencies as a histogram
//! in seconds (`_bucket{le=...}` cumulative, `_sum`, `_count`), label values escaped.

use std::fmt::{Display, Write};

use super::Snapshot;
use crate::plugin::{Hook, HookStats, LATENCY_BUCKETS_US, PluginStats};
use crate::stats::{PerQos, Stats};
use crate::types::QoS;

/// The `Content-Type` of [`render`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The whole exposition for one scrape.
pub fn render(s: &Snapshot<'_>) -> String {
    let mut w = Writer::default();
    gauges(&mut w, s);
    traffic(&mut w, s.stats);
    refusals(&mut w, s.stats);
    if !s.plugins.is_empty() {
        plugins(&mut w, &s.plugins);
    }
    w.out
}

fn gauges(w: &mut Writer, s: &Snapshot<'_>) {
    w.header(
        "cauldron_build_info",
        Kind::Gauge,
        "Cauldron version; always 1.",
    );
    w.sample(
        "cauldron_build_info",
        &[("version", env!("CARGO_PKG_VERSION"))],
        1,
    );
    let single = [
        (
            "cauldron_uptime_seconds",
            "Seconds since the broker started.",
            s.uptime_secs,
        ),
        (
            "cauldron_clients_connected",
            "Clients connected now (CONNECT accepted, not yet closed).",
            Stats::get(&s.stats.clients_connected),
        ),
        (
            "cauldron_subscriptions",
            "Subscriptions held by sessions; each shared-subscription member counts once.",
            s.subscriptions as u64,
        ),
        (
            "cauldron_retained_messages",
            "Retained messages stored.",
            s.retained as u64,
        ),
    ];
    for (name, help, value) in single {
        w.header(name, Kind::Gauge, help);
        w.sample(name, &[], value);
    }
    w.header(
        "cauldron_sessions",
        Kind::Gauge,
        "Sessions by state: online (connected) or offline (kept for a returning client).",
    );
    w.sample(
        "cauldron_sessions",
        &[("state", "online")],
        s.sessions_online,
    );
    w.sample(
        "cauldron_sessions",
        &[("state", "offline")],
        s.sessions_offline,
    );
}

fn traffic(w: &mut Writer, st: &Stats) {
    let by_qos = [
        (
            "cauldron_messages_received_total",
            "PUBLISH packets received from clients, by QoS.",
            &st.messages_received,
        ),
        (
            "cauldron_messages_sent_total",
            "PUBLISH packets sent to clients (retransmissions included), by delivery QoS.",
            &st.messages_sent,
        ),
        (
            "cauldron_payload_bytes_received_total",
            "Payload bytes of the PUBLISH packets received, by QoS.",
            &st.payload_bytes_received,
        ),
        (
            "cauldron_payload_bytes_sent_total",
            "Payload bytes of the PUBLISH packets sent, by delivery QoS.",
            &st.payload_bytes_sent,
        ),
    ];
    for (name, help, counters) in by_qos {
        w.header(name, Kind::Counter, help);
        per_qos(w, name, counters);
    }
    let single = [
        (
            "cauldron_network_bytes_received_total",
            "Bytes read from MQTT client sockets.",
            st.bytes_received.get(),
        ),
        (
            "cauldron_network_bytes_sent_total",
            "Bytes written to MQTT client sockets.",
            st.bytes_sent.get(),
        ),
        (
            "cauldron_connections_total",
            "TCP connections accepted, refused ones included.",
            Stats::get(&st.connections_total),
        ),
        (
            "cauldron_connections_refused_total",
            "TCP connections closed at once because a connection limit was reached.",
            Stats::get(&st.connections_refused),
        ),
    ];
    for (name, help, value) in single {
        w.header(name, Kind::Counter, help);
        w.sample(name, &[], value);
    }
    let name = "cauldron_messages_dropped_total";
    w.header(
        name,
        Kind::Counter,
        "Deliveries dropped: queue_full (session queue full), expired (Message Expiry \
         Interval passed), too_large (above the client's Maximum Packet Size).",
    );
    for (reason, counter) in [
        ("queue_full", &st.dropped_queue_full),
        ("expired", &st.dropped_expired),
        ("too_large", &st.dropped_too_large),
    ] {
        w.sample(name, &[("reason", reason)], counter.get());
    }
}

fn per_qos(w: &mut Writer, name: &str, counters: &PerQos) {
    for (label, qos) in [
        ("0", QoS::AtMostOnce),
        ("1", QoS::AtLeastOnce),
        ("2", QoS::ExactlyOnce),
    ] {
        w.sample(name, &[("qos", label)], counters.get(qos));
    }
}

fn refusals(w: &mut Writer, st: &Stats) {
    let name = "cauldron_authentications_total";
    w.header(
        name,
        Kind::Counter,
        "Connect authentication outcomes: success (anonymous included) or failure.",
    );
    w.sample(
        name,
        &[("result", "success")],
        Stats::get(&st.auth_accepted),
    );
    w.sample(name, &[("result", "failure")], Stats::get(&st.auth_refused));
    let name = "cauldron_authorization_denied_total";
    w.header(
        name,
        Kind::Counter,
        "Refusals by action: subscribe (ACL or plugin), publish (ACL; wills at connect \
         included), delivery (withheld by an ACL deny rule).",
    );
    for (action, counter) in [
        ("subscribe", &st.denied_subscribe),
        ("publish", &st.acl_denied_publish),
        ("delivery", &st.acl_denied_delivery),
    ] {
        w.sample(name, &[("action", action)], Stats::get(counter));
    }
    let single = [
        (
            "cauldron_messages_rejected_total",
            "Messages refused by the broker: QoS, retain, validation, ACL or plugin refusals.",
            &st.messages_rejected,
        ),
        (
            "cauldron_protocol_errors_total",
            "Connections closed for a protocol violation.",
            &st.protocol_errors,
        ),
        (
            "cauldron_credentials_expired_total",
            "Connections closed because their credentials (a JWT) expired.",
            &st.credentials_expired,
        ),
        (
            "cauldron_internal_errors_total",
            "Panics the broker caught: a connection closed, or a background job that went on (a bug; the log has the message).",
            &st.internal_errors,
        ),
    ];
    for (name, help, counter) in single {
        w.header(name, Kind::Counter, help);
        w.sample(name, &[], Stats::get(counter));
    }
}

fn plugins(w: &mut Writer, plugins: &[PluginStats]) {
    let name = "cauldron_plugin_failed";
    w.header(
        name,
        Kind::Gauge,
        "1 once a plugin reached max_consecutive_failures and is no longer called.",
    );
    for p in plugins {
        w.sample(name, &[("plugin", &p.plugin)], u8::from(p.failed));
    }
    let name = "cauldron_plugin_kv_keys";
    w.header(name, Kind::Gauge, "Keys in the plugin's key-value store.");
    for p in plugins {
        w.sample(name, &[("plugin", &p.plugin)], p.kv_keys);
    }
    hook_counters(w, plugins);
    latency_histograms(w, plugins);
}

/// Every declared hook of every plugin, with its label values.
fn hooks(plugins: &[PluginStats]) -> impl Iterator<Item = (&str, &'static str, &HookStats)> {
    plugins.iter().flat_map(|p| {
        p.hooks
            .iter()
            .map(|h| (p.plugin.as_str(), h.hook.as_str(), h))
    })
}

fn hook_counters(w: &mut Writer, plugins: &[PluginStats]) {
    let name = "cauldron_plugin_hook_calls_total";
    w.header(
        name,
        Kind::Counter,
        "Calls into a plugin hook, failed ones included.",
    );
    for (plugin, hook, h) in hooks(plugins) {
        w.sample(name, &[("plugin", plugin), ("hook", hook)], h.calls);
    }
    let name = "cauldron_plugin_hook_decisions_total";
    w.header(
        name,
        Kind::Counter,
        "Answers by decision: allow, deny or no_opinion (on-connect, on-subscribe); \
         continue, replace or drop (on-publish).",
    );
    for (plugin, hook, h) in hooks(plugins) {
        for (decision, value) in decisions(h) {
            let labels = [("plugin", plugin), ("hook", hook), ("decision", decision)];
            w.sample(name, &labels, value);
        }
    }
    let name = "cauldron_plugin_hook_failures_total";
    w.header(
        name,
        Kind::Counter,
        "Failed calls by kind: timeout (deadline), invalid_answer, other (trap, memory cap).",
    );
    for (plugin, hook, h) in hooks(plugins) {
        let other = h.failures.saturating_sub(h.timeouts + h.invalid_answers);
        for (kind, value) in [
            ("timeout", h.timeouts),
            ("invalid_answer", h.invalid_answers),
            ("other", other),
        ] {
            w.sample(
                name,
                &[("plugin", plugin), ("hook", hook), ("kind", kind)],
                value,
            );
        }
    }
    let name = "cauldron_plugin_hook_skipped_total";
    w.header(
        name,
        Kind::Counter,
        "Calls not made because the plugin is marked failed; its on_error policy answered.",
    );
    for (plugin, hook, h) in hooks(plugins) {
        w.sample(
            name,
            &[("plugin", plugin), ("hook", hook)],
            h.skipped_failed,
        );
    }
}

/// The decisions a hook can return; `on-disconnect` returns none.
fn decisions(h: &HookStats) -> Vec<(&'static str, u64)> {
    match h.hook {
        Hook::Connect | Hook::Subscribe => vec![
            ("allow", h.allow),
            ("deny", h.deny),
            ("no_opinion", h.no_opinion),
        ],
        Hook::Publish => vec![
            ("continue", h.continued),
            ("replace", h.replaced),
            ("drop", h.dropped),
        ],
        Hook::Disconnect => Vec::new(),
    }
}

fn latency_histograms(w: &mut Writer, plugins: &[PluginStats]) {
    let name = "cauldron_plugin_hook_duration_seconds";
    w.header(name, Kind::Histogram, "Duration of plugin hook calls.");
    let bucket = format!("{name}_bucket");
    for (plugin, hook, h) in hooks(plugins) {
        let mut cumulative = 0u64;
        for (i, count) in h.latency_buckets.iter().enumerate() {
            cumulative += count;
            let le = match LATENCY_BUCKETS_US.get(i) {
                Some(us) => seconds(*us as f64 / 1e6),
                None => "+Inf".to_owned(),
            };
            let labels = [("plugin", plugin), ("hook", hook), ("le", le.as_str())];
            w.sample(&bucket, &labels, cumulative);
        }
        let labels = [("plugin", plugin), ("hook", hook)];
        w.sample(
            &format!("{name}_sum"),
            &labels,
            seconds(h.latency_sum_ns as f64 / 1e9),
        );
        // The bucket total, not `calls`: the two are read separately and a scrape must
        // be self-consistent (`_count` equals the `+Inf` bucket).
        w.sample(&format!("{name}_count"), &labels, cumulative);
    }
}

/// A float the way Prometheus clients print it: shortest round-trip decimal.
fn seconds(value: f64) -> String {
    format!("{value}")
}

#[derive(Clone, Copy)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// Appends exposition lines to a `String` (writing to a `String` cannot fail, so the
/// `fmt::Result`s are ignored).
#[derive(Default)]
struct Writer {
    out: String,
}

impl Writer {
    fn header(&mut self, name: &str, kind: Kind, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.out, "# TYPE {name} {}", kind.as_str());
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl Display) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (label, value)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{label}=\"{}\"", escape_label_value(value));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }
}

/// `# HELP` text: backslash and line feed escaped.
pub(super) fn escape_help(text: &str) -> String {
    text.replace('\\', "\\\\").replace('\n', "\\n")
}

/// A label value: backslash, double quote and line feed escaped.
pub(super) fn escape_label_value(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
