//! Semantic checks that serde cannot express: ranges, uniqueness, cross-field conflicts.

use std::net::SocketAddr;

use super::error::Error;
use super::{Config, Limits, ListenerConfig, MqttConfig};

/// Where the value came from when [`Config::validate`] is called without a figment.
const IN_MEMORY_SOURCE: &str = "in-memory config";

/// Largest value of MQTT's variable byte integer (Remaining Length), used as the cap on
/// the whole packet.
const MQTT_MAX_PACKET_BYTES: u32 = 268_435_455;
/// MQTT strings (client id, Response Information) are length-prefixed by a u16.
const MQTT_MAX_STRING_BYTES: usize = 65_535;

/// One failed check: the dotted key and what is wrong with its value.
pub(super) struct Violation {
    pub(super) key: String,
    pub(super) message: String,
}

pub(super) fn violation(key: impl Into<String>, message: impl Into<String>) -> Violation {
    Violation {
        key: key.into(),
        message: message.into(),
    }
}

pub(super) fn at_least<T: PartialOrd + std::fmt::Display>(
    key: &str,
    value: T,
    min: T,
) -> Result<(), Violation> {
    if value < min {
        return Err(violation(
            key,
            format!("must be at least {min}, got {value}"),
        ));
    }
    Ok(())
}

pub(super) fn within<T: PartialOrd + std::fmt::Display>(
    key: &str,
    value: T,
    min: T,
    max: T,
) -> Result<(), Violation> {
    if value < min || value > max {
        return Err(violation(
            key,
            format!("must be between {min} and {max}, got {value}"),
        ));
    }
    Ok(())
}

impl Config {
    /// Checks ranges and cross-field rules. Errors are [`Error::Invalid`]; since a bare
    /// `Config` does not know where its values came from, `source_name` is
    /// `in-memory config` (use [`super::from_figment`] to get file or variable names).
    pub fn validate(&self) -> Result<(), Error> {
        self.check().map_err(|v| Error::Invalid {
            key: v.key,
            source_name: IN_MEMORY_SOURCE.to_owned(),
            message: v.message,
        })
    }

    /// The first violated rule, if any.
    pub(super) fn check(&self) -> Result<(), Violation> {
        check_listeners(&self.listeners)?;
        check_limits(&self.limits)?;
        check_mqtt(&self.mqtt)?;
        at_least("sys.interval_secs", self.sys.interval_secs, 1)?;
        super::plugins::check_plugins(&self.plugins)?;
        super::metrics::check_metrics(self)?;
        super::storage::check_storage(&self.storage)?;
        super::auth::check_auth(self)
    }
}

fn check_listeners(listeners: &[ListenerConfig]) -> Result<(), Violation> {
    if listeners.is_empty() {
        return Err(violation("listeners", "at least one listener is required"));
    }
    for (i, listener) in listeners.iter().enumerate() {
        if listener.name.trim().is_empty() {
            return Err(violation(
                format!("listeners.{i}.name"),
                "must not be empty",
            ));
        }
        super::listener::check_transport(i, listener)?;
        for (j, earlier) in listeners[..i].iter().enumerate() {
            if earlier.name == listener.name {
                return Err(violation(
                    format!("listeners.{i}.name"),
                    format!(
                        "duplicate listener name `{}` (also listeners.{j})",
                        listener.name
                    ),
                ));
            }
            if binds_conflict(earlier.bind, listener.bind) {
                return Err(violation(
                    format!("listeners.{i}.bind"),
                    format!(
                        "{} conflicts with {} of listener `{}` (listeners.{j})",
                        listener.bind, earlier.bind, earlier.name
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// Two binds conflict when they share a non-zero port and either the same IP, or one of
/// them is the unspecified address of the same family (`0.0.0.0:1883` covers
/// `127.0.0.1:1883`, so the second bind would fail at start-up). Port 0 never conflicts:
/// the OS picks a distinct port for each.
pub(super) fn binds_conflict(a: SocketAddr, b: SocketAddr) -> bool {
    if a.port() == 0 || a.port() != b.port() || a.is_ipv4() != b.is_ipv4() {
        return false;
    }
    a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified()
}

fn check_limits(l: &Limits) -> Result<(), Violation> {
    at_least("limits.max_connections", l.max_connections, 1)?;
    within(
        "limits.max_packet_bytes",
        l.max_packet_bytes,
        1,
        MQTT_MAX_PACKET_BYTES,
    )?;
    at_least("limits.receive_maximum", l.receive_maximum, 1)?;
    at_least("limits.max_inflight_messages", l.max_inflight_messages, 1)?;
    at_least("limits.max_queued_messages", l.max_queued_messages, 1)?;
    at_least("limits.max_topic_levels", l.max_topic_levels, 1)?;
    at_least("limits.connect_timeout_secs", l.connect_timeout_secs, 1)?;
    within(
        "limits.client_id_max_bytes",
        l.client_id_max_bytes,
        1,
        MQTT_MAX_STRING_BYTES,
    )
}

fn check_mqtt(m: &MqttConfig) -> Result<(), Violation> {
    if m.maximum_qos > 2 {
        return Err(violation(
            "mqtt.maximum_qos",
            format!("must be 0, 1 or 2, got {}", m.maximum_qos),
        ));
    }
    if let Some(info) = &m.response_information
        && info.len() > MQTT_MAX_STRING_BYTES
    {
        return Err(violation(
            "mqtt.response_information",
            format!(
                "must be at most {MQTT_MAX_STRING_BYTES} bytes, got {}",
                info.len()
            ),
        ));
    }
    Ok(())
}
