//! The WebAssembly plugin host: loads the configured components (interface
//! `cauldron:plugin@0.4.0`, see `wit/plugin.wit`) with wasmtime and runs their hooks as
//! a chain: `on_connect`, `on_subscribe`, `on_publish`, `on_disconnect`.
//!
//! Every call has a deadline (epoch interruption) and every store a memory cap; a trap,
//! a deadline or an invalid answer discards that instance and the hook's failure policy
//! (`on_error`) decides. Plugins get an empty WASI context (no files, network,
//! environment or arguments) plus the host functions of `host.rs`.
//!
//! Layout: `chain.rs` (the public [`PluginChain`]), `loaded.rs` (one plugin: calls,
//! failures, policies), `pool.rs` (its instances), `interface.rs` (checking a component
//! against the WIT), `engine.rs` (the shared engine and artefact cache), `bindings.rs` (every `bindgen!` and WASI detail), `convert.rs` (WIT ↔
//! domain types and answer validation), `host.rs` + `kv.rs` (host functions), `limits.rs`,
//! `output.rs`, `stats.rs`.
//!
//! This module knows the domain types (`types`, `topic`, `message`) and the plugin
//! config. It must not know about the codec, connections, the server or sockets: the
//! connection layer hands it plain [`ClientInfo`] records and messages.

mod bindings;
mod chain;
mod convert;
mod engine;
mod error;
mod host;
mod interface;
mod kv;
mod limits;
mod loaded;
mod output;
mod pool;
mod stats;
#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;

pub use crate::config::{FailurePolicy, OnError, PluginConfig, PluginHostConfig};
use crate::message::Message;
use crate::topic::TopicName;
use crate::types::{ClientId, ProtocolVersion, QoS, ReasonCode};
pub use chain::{HookClient, PluginChain};
pub use convert::Invalid;
pub use error::Error;
pub use stats::{HookStats, LATENCY_BUCKETS_US, PluginStats};

/// What the broker knows about a client, as plugins see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientInfo {
    /// Client identifier (broker-assigned when the client sent none).
    pub client_id: ClientId,
    /// User name from CONNECT.
    pub username: Option<String>,
    /// Protocol version.
    pub protocol: ProtocolVersion,
    /// Remote socket address.
    pub remote_addr: SocketAddr,
    /// Name of the listener the client connected to (shared by its connections).
    pub listener: Arc<str>,
    /// TLS client certificate subject, when the client presented one.
    pub tls_peer: Option<String>,
    /// Keep alive in seconds (0: none).
    pub keep_alive: u16,
    /// Clean session (3.1.1) / clean start (5.0).
    pub clean_start: bool,
    /// The will, if the client set one.
    pub will: Option<WillInfo>,
    /// Attributes granted at connect by the chain's `Allow`; empty during `on_connect`.
    pub attributes: Vec<(String, String)>,
}

/// The will a client registered in CONNECT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WillInfo {
    /// Will topic.
    pub topic: TopicName,
    /// Will QoS.
    pub qos: QoS,
    /// Will retain flag.
    pub retain: bool,
}

/// Credentials from CONNECT. Never logged.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Credentials {
    /// User name.
    pub username: Option<String>,
    /// Password bytes.
    pub password: Option<Bytes>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// The chain's answer to a connecting client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectOutcome {
    /// Accept; the attributes are granted to the session (put them in
    /// [`ClientInfo::attributes`] for later hooks).
    Allow {
        /// Granted attributes, e.g. `("role", "admin")`.
        attributes: Vec<(String, String)>,
    },
    /// Refuse with this CONNACK reason code (0x80 and above).
    Deny {
        /// MQTT 5 reason code.
        reason_code: ReasonCode,
        /// Reason string for MQTT 5 clients.
        reason: String,
    },
    /// Nobody decided: the broker's default applies.
    NoOpinion,
}

/// The chain's answer to a subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubscribeOutcome {
    /// Grant with this QoS (never above the requested one).
    Allow(QoS),
    /// Refuse with this SUBACK reason code (0x80 and above).
    Deny {
        /// MQTT 5 reason code.
        reason_code: ReasonCode,
        /// Reason string for MQTT 5 clients.
        reason: String,
    },
    /// Nobody decided: the broker's default applies.
    NoOpinion,
}

/// The chain's answer to a publish.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(clippy::large_enum_variant)] // the message moves through by value, once per publish
pub enum PublishOutcome {
    /// Route this message (the original, or as rewritten by the chain).
    Continue(Message),
    /// Do not route it; MQTT 5 publishers get the reason code in PUBACK/PUBREC.
    Drop {
        /// MQTT 5 reason code (0x80 and above).
        reason_code: ReasonCode,
        /// Reason string for MQTT 5 clients.
        reason: String,
    },
}

/// Why a client's connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisconnectReason {
    /// The client sent DISCONNECT.
    Normal,
    /// The client sent DISCONNECT with reason 0x04 (publish the will).
    WithWill,
    /// The socket closed without DISCONNECT.
    ConnectionLost,
    /// The broker closed it for a protocol violation.
    ProtocolError,
    /// Keep alive expired.
    KeepAliveTimeout,
    /// Another connection took over the client id.
    TakenOver,
    /// The broker is shutting down.
    ServerShutdown,
}

/// A hook a plugin may declare.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Hook {
    /// `on-connect`.
    Connect = 0,
    /// `on-subscribe`.
    Subscribe = 1,
    /// `on-publish`.
    Publish = 2,
    /// `on-disconnect`.
    Disconnect = 3,
}

impl Hook {
    /// Every hook, in this order.
    pub const ALL: [Hook; 4] = [
        Hook::Connect,
        Hook::Subscribe,
        Hook::Publish,
        Hook::Disconnect,
    ];

    /// The WIT name, e.g. `on-connect`.
    pub fn as_str(self) -> &'static str {
        match self {
            Hook::Connect => "on-connect",
            Hook::Subscribe => "on-subscribe",
            Hook::Publish => "on-publish",
            Hook::Disconnect => "on-disconnect",
        }
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

impl std::fmt::Display for Hook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where messages published by plugins (`host.publish`) go; the broker implements it.
///
/// The chain has already run them through the `on_publish` hooks of the plugins after
/// the publishing one (as the WIT contract says), so the broker must route them as they
/// are (retain store and subscribers) and must not run the chain on them again: that is
/// what keeps plugins from looping. They are broker-made (`publisher == None`).
pub trait PluginPublisher: Send + Sync {
    /// Routes `message`. An error is logged, not returned to the plugin.
    fn publish(&self, message: Message) -> Result<(), String>;
}

/// A publisher that refuses everything, for a chain made without one.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoPublisher;

impl PluginPublisher for NoPublisher {
    fn publish(&self, _message: Message) -> Result<(), String> {
        Err("no publisher configured".to_owned())
    }
}
