//! Native test support: inspect and steer the in-memory fake host that stands in for the broker
//! when plugin code runs under `cargo test` (any target but wasm32).
//!
//! The fake keeps one state per thread, so each `#[test]` starts clean. Its clock starts at
//! [`START_MILLIS`] and moves only when a test moves it.
//!
//! ```
//! use cauldron_sdk::prelude::*;
//! use cauldron_sdk::{kv, testing};
//!
//! #[derive(Default)]
//! struct Counter;
//!
//! impl Plugin for Counter {
//!     const HOOKS: Hooks = Hooks::PUBLISH;
//!     fn on_publish(&self, client: &Client, _msg: &Message) -> Verdict {
//!         kv::incr(client.client_id(), 1, None);
//!         Verdict::Continue
//!     }
//! }
//!
//! let plugin: Counter = testing::instantiate("{}").unwrap();
//! let client = Client::new("c1");
//! plugin.on_publish(&client, &Message::new("a", "x"));
//! plugin.on_publish(&client, &Message::new("a", "y"));
//! assert_eq!(kv::get_str("c1").as_deref(), Some("2"));
//! ```

use crate::backend::native::{reset as reset_host, with_host};
use crate::config::Config;
use crate::log::Level;
use crate::message::Message;
use crate::plugin::Plugin;

/// Where the fake clock starts: 2023-11-14T22:13:20Z, in milliseconds since the Unix epoch.
pub const START_MILLIS: u64 = 1_700_000_000_000;

/// One line a plugin logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    /// Level.
    pub level: Level,
    /// Formatted message.
    pub message: String,
    /// `key = value` fields, values formatted with `Display`.
    pub fields: Vec<(String, String)>,
}

/// Makes a plugin the way the broker does: `P::default()`, then `init` with `config_json`.
///
/// # Errors
/// The config's parse error or the plugin's own `init` error.
pub fn instantiate<P: Plugin>(config_json: &str) -> Result<P, String> {
    let config = Config::from_json(config_json)?;
    let mut plugin = P::default();
    plugin.init(&config)?;
    Ok(plugin)
}

/// Forgets every key, log line and published message on this thread and resets the clock.
pub fn reset() {
    reset_host();
}

/// Sets the fake clock.
pub fn set_now_millis(now: u64) {
    with_host(|h| h.now_millis = now);
}

/// Moves the fake clock forward (keys with a TTL expire as time passes).
pub fn advance_millis(delta: u64) {
    with_host(|h| h.now_millis = h.now_millis.saturating_add(delta));
}

/// The lines logged so far.
pub fn logs() -> Vec<LogRecord> {
    with_host(|h| h.logs.clone())
}

/// The lines logged so far, forgetting them.
pub fn take_logs() -> Vec<LogRecord> {
    with_host(|h| std::mem::take(&mut h.logs))
}

/// The messages published so far through [`crate::publish`].
pub fn published() -> Vec<Message> {
    with_host(|h| h.published.clone())
}

/// The messages published so far, forgetting them.
pub fn take_published() -> Vec<Message> {
    with_host(|h| std::mem::take(&mut h.published))
}

/// Makes the fake refuse every publish with `reason` (as the broker's loop protection would),
/// or accept them again with `None`.
pub fn refuse_publish(reason: Option<&str>) {
    with_host(|h| h.refuse_publish = reason.map(str::to_owned));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{clock, kv};

    #[test]
    fn reset_forgets_state_and_clock() {
        kv::set("k", "v", None);
        advance_millis(5);
        crate::log::info!("x");
        reset();
        assert_eq!(kv::get("k"), None);
        assert!(logs().is_empty());
        assert_eq!(clock::now_millis(), START_MILLIS);
    }

    #[test]
    fn take_drains_logs_and_messages() {
        crate::log::info!("x");
        crate::publish(Message::new("t", "p")).unwrap();
        assert_eq!(take_logs().len(), 1);
        assert!(take_logs().is_empty());
        assert_eq!(take_published().len(), 1);
        assert!(published().is_empty());
    }

    #[test]
    fn refusing_publish_surfaces_the_reason() {
        refuse_publish(Some("loop"));
        let e = crate::publish(Message::new("t", "p")).unwrap_err();
        assert_eq!(e.to_string(), "broker refused the message: loop");
        refuse_publish(None);
        assert!(crate::publish(Message::new("t", "p")).is_ok());
    }

    #[test]
    fn set_now_millis_moves_the_clock() {
        set_now_millis(42);
        assert_eq!(clock::now_millis(), 42);
    }
}
