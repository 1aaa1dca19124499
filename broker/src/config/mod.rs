//! Broker configuration: the [`Config`] tree, its defaults, layered loading with figment
//! (built-in defaults → TOML file → `CAULDRON_*` environment variables) and semantic
//! validation into [`Error`].
//!
//! This module knows only figment and serde. It must not know about sockets, sessions or
//! the codec: other modules read plain values out of [`Config`] and decide what they mean.
//! The documented default file `cauldron.toml` is compiled in as [`DEFAULT_CONFIG_TOML`];
//! a test keeps it equal to [`Config::default()`].

mod auth;
#[cfg(test)]
mod auth_tests;
mod error;
mod listener;
#[cfg(test)]
mod listener_tests;
mod load;
mod metrics;
#[cfg(test)]
mod metrics_tests;
mod plugins;
#[cfg(test)]
mod plugins_tests;
mod storage;
#[cfg(test)]
mod storage_tests;
#[cfg(test)]
mod test_support;
#[cfg(test)]
mod tests;
mod validate;

use std::net::{Ipv4Addr, SocketAddr};

use serde::{Deserialize, Serialize};

pub use crate::acl::AclConfig;
pub use auth::{
    Argon2Params, AuthConfig, ChainEntry, DeniedPublish, JwtConfig, PasswordFileConfig,
};
pub use error::Error;
pub use listener::{CertUsername, ListenerProtocol, TlsConfig};
pub use load::{ENV_PREFIX, figment, from_figment, load};
pub use metrics::MetricsConfig;
pub use plugins::{FailurePolicy, OnError, PluginConfig, PluginHostConfig};
pub use storage::{FsyncPolicy, OnCorrupt, StorageBackend, StorageConfig};

/// The documented default configuration file, printed by `cauldron --print-default-config`.
pub const DEFAULT_CONFIG_TOML: &str = include_str!("../../cauldron.toml");

/// The whole broker configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// TCP listeners; at least one, names and bind addresses unique.
    pub listeners: Vec<ListenerConfig>,
    /// Resource limits and protocol windows.
    pub limits: Limits,
    /// Optional MQTT features and what the broker advertises in CONNACK.
    pub mqtt: MqttConfig,
    /// The `$SYS` statistics topics.
    pub sys: SysConfig,
    /// Settings shared by all WebAssembly plugins.
    pub plugin_host: PluginHostConfig,
    /// The WebAssembly plugin chain, in call order; empty by default.
    pub plugins: Vec<PluginConfig>,
    /// Authentication: the chain, anonymous access, password file, JWT.
    pub auth: AuthConfig,
    /// Per-topic access rules; none by default (no ACL in the chain).
    pub acl: AclConfig,
    /// The HTTP endpoint for Prometheus metrics and health probes; off by default.
    pub metrics: MetricsConfig,
    /// Durable state: the data directory, the engine and the fsync policy.
    pub storage: StorageConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listeners: vec![ListenerConfig::default()],
            limits: Limits::default(),
            mqtt: MqttConfig::default(),
            sys: SysConfig::default(),
            plugin_host: PluginHostConfig::default(),
            plugins: Vec::new(),
            auth: AuthConfig::default(),
            acl: AclConfig::default(),
            metrics: MetricsConfig::default(),
            storage: StorageConfig::default(),
        }
    }
}

/// One listener: a TCP address and what is spoken on it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ListenerConfig {
    /// Unique, non-empty name used in logs and metrics.
    pub name: String,
    /// Address to bind; port 0 asks the OS for a free port.
    pub bind: SocketAddr,
    /// Connection limit for this listener; 0 means only the global `limits.max_connections`.
    pub max_connections: usize,
    /// This listener's own authentication chain (entries as in `auth.chain`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_chain: Option<Vec<String>>,
    /// This listener's own `auth.allow_anonymous`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow_anonymous: Option<bool>,
    /// `tcp`, `tls`, `ws` or `wss`.
    pub protocol: ListenerProtocol,
    /// Whether every connection starts with a PROXY protocol v1 or v2 header, whose
    /// source address then stands for the client's.
    pub proxy_protocol: bool,
    /// The HTTP path of the WebSocket upgrade (`ws` and `wss` only).
    pub ws_path: String,
    /// Certificates and client verification; required for `tls` and `wss`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsConfig>,
}

impl Default for ListenerConfig {
    fn default() -> Self {
        Self {
            name: "tcp".to_owned(),
            bind: SocketAddr::from((Ipv4Addr::UNSPECIFIED, 1883)),
            max_connections: 0,
            auth_chain: None,
            allow_anonymous: None,
            protocol: ListenerProtocol::Tcp,
            proxy_protocol: false,
            ws_path: "/mqtt".to_owned(),
            tls: None,
        }
    }
}

/// Resource limits. Every value is validated by [`Config::validate`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Global limit on open client connections across all listeners (>= 1).
    pub max_connections: usize,
    /// Largest accepted packet, fixed header included (1..=268435455, the MQTT maximum).
    /// Sent to v5 clients as Maximum Packet Size.
    pub max_packet_bytes: u32,
    /// The broker's inbound QoS 1/2 window, sent to v5 clients in CONNACK (>= 1).
    pub receive_maximum: u16,
    /// Outbound QoS 1/2 window per client (>= 1), also capped by the client's Receive Maximum.
    pub max_inflight_messages: u16,
    /// Per-session queue depth, for the online outbox and the offline queue (>= 1).
    pub max_queued_messages: usize,
    /// 0 accepts the client's keep alive; otherwise v5 clients asking for more, or for 0,
    /// get Server Keep Alive = this value.
    pub max_keep_alive_secs: u16,
    /// Upper bound on the session expiry a client may request.
    pub max_session_expiry_secs: u32,
    /// Topic Alias Maximum advertised to v5 clients; 0 disables inbound topic aliases.
    pub topic_alias_maximum: u16,
    /// Most `/`-separated levels allowed in a topic name or filter (>= 1).
    pub max_topic_levels: usize,
    /// Most subscriptions one session may hold; 0 means unlimited.
    pub max_subscriptions_per_session: usize,
    /// Time allowed between TCP accept and a complete CONNECT (>= 1).
    pub connect_timeout_secs: u64,
    /// Longest accepted client identifier in bytes (1..=65535).
    pub client_id_max_bytes: usize,
    /// The connection stops pulling from its outbox while more than this many bytes
    /// wait to be written to the socket.
    pub write_buffer_high_water_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 10_000,
            max_packet_bytes: 1_048_576,
            receive_maximum: 1024,
            max_inflight_messages: 100,
            max_queued_messages: 1000,
            max_keep_alive_secs: 0,
            max_session_expiry_secs: 604_800,
            topic_alias_maximum: 64,
            max_topic_levels: 128,
            max_subscriptions_per_session: 0,
            connect_timeout_secs: 10,
            client_id_max_bytes: 128,
            write_buffer_high_water_bytes: 1_048_576,
        }
    }
}

/// Optional MQTT features; a disabled feature is advertised as unavailable to v5 clients.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MqttConfig {
    /// Highest QoS the broker accepts and grants (0, 1 or 2).
    pub maximum_qos: u8,
    /// Whether retained messages are supported.
    pub retain_available: bool,
    /// Whether subscriptions may use `+` and `#`.
    pub wildcard_subscriptions: bool,
    /// Whether `$share/<group>/<filter>` subscriptions are supported.
    pub shared_subscriptions: bool,
    /// Whether v5 Subscription Identifiers are supported.
    pub subscription_identifiers: bool,
    /// Whether an empty client id gets a broker-assigned one (v5 Assigned Client
    /// Identifier; 3.1.1 only with clean session).
    pub allow_empty_client_id: bool,
    /// Response Information returned to v5 clients that request it (at most 65535 bytes).
    pub response_information: Option<String>,
    /// Most retained messages stored; 0 means unlimited.
    pub max_retained_messages: usize,
}

impl Default for MqttConfig {
    fn default() -> Self {
        Self {
            maximum_qos: 2,
            retain_available: true,
            wildcard_subscriptions: true,
            shared_subscriptions: true,
            subscription_identifiers: true,
            allow_empty_client_id: true,
            response_information: None,
            max_retained_messages: 0,
        }
    }
}

/// The `$SYS` statistics topics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SysConfig {
    /// Whether `$SYS` topics are published.
    pub enabled: bool,
    /// Seconds between `$SYS` updates (>= 1).
    pub interval_secs: u64,
}

impl Default for SysConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interval_secs: 10,
        }
    }
}
