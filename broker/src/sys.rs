//! The `$SYS/broker/...` statistics topics, published as retained messages every
//! `sys.interval_secs` (the names follow Mosquitto's so existing dashboards work).

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio_util::sync::CancellationToken;

use crate::broker::Broker;
use crate::message::{Message, MessageProperties};
use crate::plugin::PluginStats;
use crate::stats::Stats;
use crate::topic::TopicName;
use crate::types::QoS;

/// The broker version announced on `$SYS/broker/version`.
pub const VERSION: &str = concat!("cauldron ", env!("CARGO_PKG_VERSION"));

/// Publishes the statistics until shutdown.
pub async fn publish_loop(broker: Arc<Broker>, shutdown: CancellationToken) {
    let period = Duration::from_secs(broker.config.sys.interval_secs.max(1));
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {
                crate::contain::run(&broker.stats, "the $SYS publish", || publish_once(&broker));
            }
        }
    }
}

/// The current statistics as (topic, value) pairs: the broker's, then the plugins'.
pub fn snapshot(broker: &Broker) -> Vec<(Cow<'static, str>, String)> {
    let mut out: Vec<(Cow<'static, str>, String)> = broker_snapshot(broker)
        .into_iter()
        .map(|(topic, value)| (Cow::Borrowed(topic), value))
        .collect();
    for stats in broker.plugins().stats() {
        plugin_snapshot(&stats, &mut out);
    }
    out
}

/// Per plugin and hook counters under `$SYS/broker/plugins/{plugin}/{hook}/...`.
fn plugin_snapshot(stats: &PluginStats, out: &mut Vec<(Cow<'static, str>, String)>) {
    let base = format!("$SYS/broker/plugins/{}", stats.plugin);
    out.push((
        Cow::Owned(format!("{base}/failed")),
        stats.failed.to_string(),
    ));
    out.push((
        Cow::Owned(format!("{base}/kv/keys")),
        stats.kv_keys.to_string(),
    ));
    for h in &stats.hooks {
        let prefix = format!("{base}/{}", h.hook.as_str());
        let quantile = |q| {
            h.latency_quantile_us(q)
                .map_or_else(|| "0".to_owned(), |us| us.to_string())
        };
        let mean_ns = h.latency_sum_ns.checked_div(h.calls).unwrap_or(0);
        let values = [
            ("calls", h.calls.to_string()),
            ("allow", h.allow.to_string()),
            ("deny", h.deny.to_string()),
            ("no_opinion", h.no_opinion.to_string()),
            ("continue", h.continued.to_string()),
            ("replace", h.replaced.to_string()),
            ("drop", h.dropped.to_string()),
            ("failures", h.failures.to_string()),
            ("timeouts", h.timeouts.to_string()),
            ("invalid_answers", h.invalid_answers.to_string()),
            ("skipped_failed", h.skipped_failed.to_string()),
            ("latency/mean_ns", mean_ns.to_string()),
            ("latency/p50_us", quantile(0.5)),
            ("latency/p99_us", quantile(0.99)),
        ];
        for (name, value) in values {
            out.push((Cow::Owned(format!("{prefix}/{name}")), value));
        }
    }
}

fn broker_snapshot(broker: &Broker) -> Vec<(&'static str, String)> {
    let s = &broker.stats;
    vec![
        ("$SYS/broker/version", VERSION.to_string()),
        (
            "$SYS/broker/uptime",
            format!("{} seconds", broker.started.elapsed().as_secs()),
        ),
        (
            "$SYS/broker/clients/connected",
            Stats::get(&s.clients_connected).to_string(),
        ),
        (
            "$SYS/broker/clients/total",
            broker.registry.len().to_string(),
        ),
        (
            "$SYS/broker/clients/disconnected",
            broker.registry.offline().to_string(),
        ),
        (
            "$SYS/broker/messages/received",
            s.messages_received.total().to_string(),
        ),
        (
            "$SYS/broker/messages/sent",
            s.messages_sent.total().to_string(),
        ),
        ("$SYS/broker/messages/dropped", dropped(s).to_string()),
        (
            "$SYS/broker/messages/rejected",
            Stats::get(&s.messages_rejected).to_string(),
        ),
        (
            "$SYS/broker/bytes/received",
            s.bytes_received.get().to_string(),
        ),
        ("$SYS/broker/bytes/sent", s.bytes_sent.get().to_string()),
        (
            "$SYS/broker/retained messages/count",
            broker.retained_count().to_string(),
        ),
        (
            "$SYS/broker/subscriptions/count",
            broker.router.len().to_string(),
        ),
    ]
}

fn dropped(s: &Stats) -> u64 {
    s.dropped_queue_full.get() + s.dropped_expired.get() + s.dropped_too_large.get()
}

fn publish_once(broker: &Broker) {
    for (topic, value) in snapshot(broker) {
        let Ok(topic) = TopicName::new(topic.into_owned()) else {
            continue;
        };
        broker.publish(Message {
            topic,
            payload: Bytes::from(value),
            qos: QoS::AtMostOnce,
            retain: true,
            properties: MessageProperties::default(),
            expires_at: None,
            publisher: None,
        });
    }
}
