//! Broker-wide counters, updated with relaxed atomics on the hot path and read by the
//! `$SYS` publisher and the metrics endpoint. Knows nothing else.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::types::QoS;

/// One counter per QoS level, indexed by the wire value.
#[derive(Debug, Default)]
pub struct PerQos([AtomicU64; 3]);

impl PerQos {
    /// Adds `n` to the counter of `qos`.
    pub fn add(&self, qos: QoS, n: u64) {
        self.0[usize::from(qos.as_u8())].fetch_add(n, Ordering::Relaxed);
    }

    /// The counter of `qos`.
    pub fn get(&self, qos: QoS) -> u64 {
        self.0[usize::from(qos.as_u8())].load(Ordering::Relaxed)
    }

    /// The sum over all QoS levels.
    pub fn total(&self) -> u64 {
        self.0.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }
}

/// Counters since start.
#[derive(Debug, Default)]
pub struct Stats {
    /// Clients connected right now.
    pub clients_connected: AtomicU64,
    /// Connections accepted in total.
    pub connections_total: AtomicU64,
    /// Connections refused because a connection limit was reached.
    pub connections_refused: AtomicU64,
    /// PUBLISH packets received from clients, by their QoS.
    pub messages_received: PerQos,
    /// PUBLISH packets sent to clients (retransmissions included), by the delivery QoS.
    pub messages_sent: PerQos,
    /// Payload bytes of the PUBLISH packets received, by QoS.
    pub payload_bytes_received: PerQos,
    /// Payload bytes of the PUBLISH packets sent, by QoS.
    pub payload_bytes_sent: PerQos,
    /// Bytes read from sockets.
    pub bytes_received: AtomicU64,
    /// Bytes written to sockets.
    pub bytes_sent: AtomicU64,
    /// Deliveries dropped because a session's queue was full.
    pub dropped_queue_full: AtomicU64,
    /// Deliveries dropped because the message expired before it could be sent.
    pub dropped_expired: AtomicU64,
    /// Deliveries dropped because they exceeded the client's Maximum Packet Size.
    pub dropped_too_large: AtomicU64,
    /// Messages refused by the broker (QoS, retain or validation refusals).
    pub messages_rejected: AtomicU64,
    /// Connections closed for a protocol violation.
    pub protocol_errors: AtomicU64,
    /// Clients the authentication chain accepted (anonymous ones included).
    pub auth_accepted: AtomicU64,
    /// Clients the authentication chain refused.
    pub auth_refused: AtomicU64,
    /// Subscriptions refused by the ACL or a plugin.
    pub denied_subscribe: AtomicU64,
    /// Publishes (and wills at connect) refused by the ACL.
    pub acl_denied_publish: AtomicU64,
    /// Deliveries withheld by a deny rule covering part of a granted filter.
    pub acl_denied_delivery: AtomicU64,
    /// Connections closed because their credentials (a JWT) expired.
    pub credentials_expired: AtomicU64,
    /// Panics the broker caught (a bug): connections it closed, background jobs that
    /// go on (see [`crate::contain`]).
    pub internal_errors: AtomicU64,
}

impl Stats {
    /// Counts one PUBLISH received from a client.
    pub fn publish_received(&self, qos: QoS, payload_bytes: usize) {
        self.messages_received.add(qos, 1);
        self.payload_bytes_received.add(qos, payload_bytes as u64);
    }

    /// Counts one PUBLISH written for a client.
    pub fn publish_sent(&self, qos: QoS, payload_bytes: usize) {
        self.messages_sent.add(qos, 1);
        self.payload_bytes_sent.add(qos, payload_bytes as u64);
    }

    /// Adds `n` to a counter.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Adds one to a counter.
    pub fn incr(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Subtracts one from a gauge.
    pub fn decr(counter: &AtomicU64) {
        counter.fetch_sub(1, Ordering::Relaxed);
    }

    /// Reads a counter.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}
