//! The `[metrics]` table: whether the HTTP endpoint for Prometheus metrics and health
//! probes runs, and where it listens. Knows nothing about HTTP.

use std::net::{Ipv4Addr, SocketAddr};

use serde::{Deserialize, Serialize};

use super::Config;
use super::validate::{Violation, binds_conflict, violation};

/// The metrics and health endpoint (`GET /metrics`, `/health`, `/ready`).
///
/// Off by default: it is one more open port, and what it tells (client counts, plugin
/// names, traffic) is for operators. When enabled it binds loopback unless told
/// otherwise, so exposing it beyond the host is an explicit choice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Whether the endpoint runs.
    pub enabled: bool,
    /// Address to bind; port 0 asks the OS for a free port. Must not overlap an MQTT
    /// listener.
    pub bind: SocketAddr,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            bind: SocketAddr::from((Ipv4Addr::LOCALHOST, 9883)),
        }
    }
}

/// An enabled endpoint must not bind an address an MQTT listener binds.
pub(super) fn check_metrics(config: &Config) -> Result<(), Violation> {
    let m = &config.metrics;
    if !m.enabled {
        return Ok(());
    }
    match config
        .listeners
        .iter()
        .enumerate()
        .find(|(_, l)| binds_conflict(l.bind, m.bind))
    {
        Some((i, l)) => Err(violation(
            "metrics.bind",
            format!(
                "{} conflicts with {} of listener `{}` (listeners.{i})",
                m.bind, l.bind, l.name
            ),
        )),
        None => Ok(()),
    }
}
