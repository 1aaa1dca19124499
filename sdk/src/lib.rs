//! The SDK for Cauldron plugins: WebAssembly components that the Cauldron MQTT broker calls to
//! authenticate clients, authorise subscriptions and inspect, rewrite or drop messages.
//!
//! A plugin is a `cdylib` crate that depends on this crate only, implements [`Plugin`] and
//! exports it with [`export_plugin!`]; `cargo build --target wasm32-wasip2 --release` turns it
//! into a component for the WIT world `cauldron:plugin/plugin@0.4.0`. The README walks through
//! it from an empty directory.
//!
//! ```
//! use cauldron_sdk::prelude::*;
//!
//! #[derive(Default)]
//! struct NoSecrets;
//!
//! impl Plugin for NoSecrets {
//!     const HOOKS: Hooks = Hooks::PUBLISH;
//!
//!     fn on_publish(&self, _client: &Client, msg: &Message) -> Verdict {
//!         if msg.topic().starts_with("secret/") {
//!             Verdict::drop("blocked")
//!         } else {
//!             Verdict::Continue
//!         }
//!     }
//! }
//!
//! cauldron_sdk::export_plugin!(NoSecrets);
//! ```
//!
//! What the SDK offers:
//! - the [`Plugin`] trait, one method per hook, each with a default that passes;
//! - plain Rust types for what hooks see and answer ([`Client`], [`Credentials`], [`Message`],
//!   [`ConnectDecision`], [`SubscribeDecision`], [`Verdict`], [`reason`] codes);
//! - the plugin's [`Config`] table with typed accessors and serde;
//! - the host functions: [`log`] macros, the shared [`kv`] store, the [`clock`] and
//!   [`publish()`];
//! - [`topic`] helpers that match like the broker does;
//! - [`testing`]: natively, the host functions run against an in-memory fake, so plugin logic
//!   (key-value counters and republishing included) is tested with plain `cargo test`.
//!
//! A panic in a plugin is logged through the broker's log, then traps; the broker discards that
//! instance and applies the hook's failure policy.

#![deny(missing_docs)]

extern crate self as cauldron_sdk;

pub use serde;
pub use serde_json;
pub use wit_bindgen;

mod backend;
mod client;
mod client_cache;
pub mod clock;
mod config;
mod convert;
mod decision;
mod export;
pub mod kv;
pub mod log;
mod message;
mod plugin;
mod publish;
#[cfg(not(target_arch = "wasm32"))]
pub mod testing;
pub mod topic;

pub use client::{Client, Credentials, DisconnectReason, Protocol, Will};
pub use config::{Config, ConfigError};
pub use decision::{ConnectDecision, Hooks, SubscribeDecision, Verdict, reason};
pub use message::{Message, QoS};
pub use plugin::Plugin;
pub use publish::{PublishError, publish};

/// Everything a plugin's `lib.rs` usually needs: `use cauldron_sdk::prelude::*;`.
pub mod prelude {
    pub use crate::{
        Client, Config, ConnectDecision, Credentials, DisconnectReason, Hooks, Message, Plugin,
        Protocol, QoS, SubscribeDecision, Verdict, Will, reason,
    };
}

/// Bindings generated from `wit/` (the WIT package `cauldron:plugin@0.4.0`). Used by
/// [`export_plugin!`]; plugin code should not need them.
#[doc(hidden)]
#[allow(missing_docs, unsafe_op_in_unsafe_fn, clippy::all)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "plugin",
        pub_export_macro: true,
        default_bindings_module: "cauldron_sdk::bindings",
        runtime_path: "cauldron_sdk::wit_bindgen::rt",
    });
}

/// What [`export_plugin!`] expands to; not part of the API.
#[doc(hidden)]
pub mod __private {
    pub use crate::bindings::cauldron::plugin::types as wit;
    pub use crate::bindings::exports::cauldron::plugin::hooks::Guest;
    pub use crate::export::{
        declared_hooks, init, on_connect, on_disconnect, on_publish, on_publish_batch, on_subscribe,
    };
}
