//! The monitoring endpoint: the broker's counters and gauges in the Prometheus text
//! exposition format ([`render()`]) and the `/health` and `/ready` probes, served over
//! HTTP/1.1 ([`Endpoint`]).
//!
//! It only reads: [`Snapshot`] copies what the broker, its registry, router, retained
//! store and plugin chain report. It must not know about MQTT connections, packets or
//! sessions' contents, and nothing here takes a lock across an `.await`.

mod http;
mod render;
#[cfg(test)]
mod render_tests;

pub use http::{Endpoint, Running};
pub use render::{CONTENT_TYPE, render};

use crate::broker::Broker;
use crate::plugin::PluginStats;
use crate::stats::Stats;

/// What one scrape reports: the live counters plus gauges read once.
#[derive(Debug)]
pub struct Snapshot<'a> {
    /// The broker's counters (read while rendering).
    pub stats: &'a Stats,
    /// Seconds since the broker started.
    pub uptime_secs: u64,
    /// Sessions with a live connection.
    pub sessions_online: usize,
    /// Sessions kept for clients that are not connected.
    pub sessions_offline: usize,
    /// Subscriptions in the router (shared-subscription members count once each).
    pub subscriptions: usize,
    /// Retained messages stored.
    pub retained: usize,
    /// Per plugin and hook counters, in chain order.
    pub plugins: Vec<PluginStats>,
}

impl<'a> Snapshot<'a> {
    /// Reads the gauges of `broker` now.
    pub fn of(broker: &'a Broker) -> Snapshot<'a> {
        let sessions = broker.registry.len();
        let offline = broker.registry.offline();
        Snapshot {
            stats: &broker.stats,
            uptime_secs: broker.started.elapsed().as_secs(),
            // Two separate reads of the registry: a session may change state in between.
            sessions_online: sessions.saturating_sub(offline),
            sessions_offline: offline,
            subscriptions: broker.router.len(),
            retained: broker.retained_count(),
            plugins: broker.plugins().stats(),
        }
    }
}
