//! Test harness for the Cauldron integration suite: an in-process broker on
//! port 0 ([`TestBroker`]), a raw-byte client ([`RawClient`]) with packet
//! builders written from the specifications (independent from the broker's
//! codec), and rumqttc wrappers for the ordinary 3.1.1 and 5.0 flows.

pub mod broker;
pub mod clients;
pub mod packets;
pub mod raw;
pub mod tls;

pub use broker::TestBroker;
pub use cauldron::config::Config;
pub use clients::{QoS5, V5, V311};
pub use packets::{Connect, Props, Publish, Will, prop};
pub use raw::RawClient;

use std::time::Duration;

/// A short wait used to show that something does *not* happen.
pub const QUIET: Duration = Duration::from_millis(300);

/// Milliseconds as a Duration.
pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Asserts the broker still serves clients: a fresh MQTT 5 client subscribes
/// and gets its own QoS 1 message back.
pub async fn assert_healthy(addr: std::net::SocketAddr) {
    let (mut c, _) = RawClient::connect_v5(addr, "health-check", Props::new()).await;
    assert_eq!(
        c.subscribe("health/check", 1).await,
        vec![1],
        "health check SUBACK"
    );
    c.publish(Publish::new("health/check", b"ok").qos(1, 0))
        .await;
    let p = c.recv_publish().await;
    assert_eq!(
        (p.topic.as_str(), p.payload.as_slice()),
        ("health/check", &b"ok"[..]),
        "health check message"
    );
    c.ack(&p).await;
    c.disconnect().await;
}

/// Paths of the plugin components built by `tests/build.rs` for `wasm32-wasip2`.
pub mod plugins {
    include!(concat!(env!("OUT_DIR"), "/plugins.rs"));
}
