//! The `$SYS/broker/...` statistics topics, published as retained messages every
//! `sys.interval_secs` (the names follow Mosquitto's so existing dashboards work).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio_util::sync::CancellationToken;

use crate::broker::Broker;
use crate::message::{Message, MessageProperties};
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
            _ = tick.tick() => publish_once(&broker),
        }
    }
}

/// The current statistics as (topic, value) pairs.
pub fn snapshot(broker: &Broker) -> Vec<(&'static str, String)> {
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
            Stats::get(&s.messages_received).to_string(),
        ),
        (
            "$SYS/broker/messages/sent",
            Stats::get(&s.messages_sent).to_string(),
        ),
        ("$SYS/broker/messages/dropped", dropped(s).to_string()),
        (
            "$SYS/broker/bytes/received",
            Stats::get(&s.bytes_received).to_string(),
        ),
        (
            "$SYS/broker/bytes/sent",
            Stats::get(&s.bytes_sent).to_string(),
        ),
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
    Stats::get(&s.dropped_queue_full)
        + Stats::get(&s.dropped_expired)
        + Stats::get(&s.dropped_too_large)
}

fn publish_once(broker: &Broker) {
    for (topic, value) in snapshot(broker) {
        let Ok(topic) = TopicName::new(topic) else {
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
