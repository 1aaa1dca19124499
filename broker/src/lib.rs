//! Cauldron: an MQTT 3.1, 3.1.1 and 5.0 broker on tokio.
//!
//! Layout (dependencies point down the list; see `ARCHITECTURE.md`):
//! - [`server`]: listeners, accept loop, limits, graceful shutdown
//! - [`transport`]: PROXY protocol, TLS and WebSocket between the socket and MQTT
//! - [`connection`]: one task per socket, the only layer doing I/O
//! - [`broker`]: shared state and cross-cutting operations (publish, sweeps)
//! - [`registry`]: live and offline sessions, takeover
//! - [`sys`], [`stats`]: `$SYS` topics and counters; [`metrics`]: Prometheus and health
//!   probes over HTTP; [`probe`]: the `cauldron probe` health check client
//! - [`session`]: per-session protocol state (no I/O)
//! - [`router`]: subscription index and fan-out; [`retain`]: retained messages
//! - [`codec`]: bytes ↔ packets; [`message`], [`topic`], [`types`]: domain types;
//!   [`small_map`]: the map behind per-client subscriptions
//! - [`contain`]: a panic (a bug) caught, logged and counted where it happens
//! - [`config`]: figment configuration; [`file_watch`]: noticing that a file the
//!   broker re-reads (password file, JWT keys, certificates) changed on disk

pub mod acl;
pub mod auth;
pub mod broker;
pub mod codec;
pub mod config;
pub mod connection;
pub mod contain;
pub mod control;
pub mod file_watch;
pub mod heap;
pub mod lazy_deque;
pub mod message;
pub mod metrics;
pub mod passwd_cli;
pub mod plugin;
pub mod probe;
pub mod registry;
pub mod restore;
pub mod retain;
pub mod router;
pub mod server;
pub mod session;
pub mod small_map;
pub mod stats;
pub mod store;
pub mod sys;
#[cfg(test)]
pub(crate) mod test_waker;
pub mod topic;
pub mod transport;
pub mod types;
