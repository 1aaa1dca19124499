//! The state of one plugin store and the host functions plugins import
//! (`cauldron:plugin/host`): logging, the clock, the key-value store and publishing.
//!
//! Host functions never block: the key-value store's lock is held for one map operation,
//! and `publish` only validates and queues the message. The chain takes the queue after
//! the hook returns and sends it on (see `chain.rs`); a call that fails loses its queue.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::bindings::{WasiState, empty_wasi, wit};
use super::convert;
use super::kv::{KvRefused, KvStore};
use super::limits::{Deadline, MemoryLimiter};
use crate::message::Message;

/// Most messages one hook call may publish.
pub(super) const MAX_PUBLISHES_PER_CALL: usize = 16;
/// Longest log message kept; the rest is cut.
const MAX_LOG_BYTES: usize = 4096;

/// What every instance of one plugin shares.
#[derive(Debug)]
pub(super) struct PluginShared {
    /// The configured name.
    pub(super) name: Arc<str>,
    /// The plugin's key-value store.
    pub(super) kv: KvStore,
}

/// The data of one plugin store (`Store<HostState>`).
pub(crate) struct HostState {
    pub(super) wasi: WasiState,
    pub(super) limiter: MemoryLimiter,
    pub(super) deadline: Deadline,
    pub(super) shared: Arc<PluginShared>,
    /// Messages published during the current call; `None` outside hook calls (init).
    published: Option<Vec<Message>>,
    /// The record of the client whose hook runs (`host.current-client`); `None` outside hooks.
    client: Option<Arc<wit::ClientResult>>,
    /// True while a call runs; still true at the next acquisition when a call was
    /// abandoned (its future dropped), which makes the pool discard the instance.
    pub(super) in_call: bool,
}

impl HostState {
    pub(super) fn new(shared: Arc<PluginShared>, memory_limit_bytes: usize) -> Self {
        Self {
            wasi: WasiState {
                ctx: empty_wasi(&shared.name),
                table: wasmtime::component::ResourceTable::new(),
            },
            limiter: MemoryLimiter::new(memory_limit_bytes),
            deadline: Deadline::default(),
            shared,
            published: None,
            client: None,
            in_call: false,
        }
    }

    /// Opens the publish queue for a hook call about `client`.
    pub(super) fn begin_hook(&mut self, client: Arc<wit::ClientResult>) {
        self.published = Some(Vec::new());
        self.client = Some(client);
    }

    /// Ends the hook call: forgets its client, closes the publish queue and returns
    /// what the call published.
    pub(super) fn take_published(&mut self) -> Vec<Message> {
        self.client = None;
        self.published.take().unwrap_or_default()
    }

    /// `host.current-client`: the record of the client whose hook runs.
    pub(super) fn current_client(&self) -> Option<wit::ClientResult> {
        self.client.as_deref().cloned()
    }

    fn name(&self) -> &str {
        &self.shared.name
    }

    pub(super) fn log(&mut self, level: wit::LogLevel, message: &str, fields: &[wit::PairResult]) {
        let message = truncate(message, MAX_LOG_BYTES);
        let fields = Fields(fields);
        let plugin = self.name();
        match level {
            wit::LogLevel::Trace => tracing::trace!(target: "plugin", plugin, %fields, "{message}"),
            wit::LogLevel::Debug => tracing::debug!(target: "plugin", plugin, %fields, "{message}"),
            wit::LogLevel::Info => tracing::info!(target: "plugin", plugin, %fields, "{message}"),
            wit::LogLevel::Warn => tracing::warn!(target: "plugin", plugin, %fields, "{message}"),
            wit::LogLevel::Error => tracing::error!(target: "plugin", plugin, %fields, "{message}"),
        }
    }

    pub(super) fn now_millis(&mut self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub(super) fn kv_get(&mut self, key: &str) -> Option<Vec<u8>> {
        self.shared.kv.get(key)
    }

    pub(super) fn kv_set(&mut self, key: &str, value: Vec<u8>, ttl_ms: Option<u64>) {
        if let Err(refused) = self
            .shared
            .kv
            .set(key, value, ttl_ms.map(Duration::from_millis))
        {
            self.warn_kv_refused(refused);
        }
    }

    pub(super) fn kv_incr(&mut self, key: &str, delta: i64, ttl_ms: Option<u64>) -> i64 {
        let (value, stored) = self
            .shared
            .kv
            .incr(key, delta, ttl_ms.map(Duration::from_millis));
        if let Err(refused) = stored {
            self.warn_kv_refused(refused);
        }
        value
    }

    pub(super) fn kv_delete(&mut self, key: &str) {
        self.shared.kv.delete(key);
    }

    fn warn_kv_refused(&self, refused: KvRefused) {
        tracing::warn!(target: "plugin", plugin = self.name(), ?refused, "key-value write refused: store full");
    }

    /// Validates and queues a message; the chain sends it on after the hook returns.
    pub(super) fn publish(&mut self, message: wit::MessageResult) -> Result<(), String> {
        let Some(queue) = self.published.as_mut() else {
            return Err("publish is only available inside hooks, not in init".to_owned());
        };
        if queue.len() >= MAX_PUBLISHES_PER_CALL {
            return Err(format!(
                "at most {MAX_PUBLISHES_PER_CALL} messages may be published per hook call"
            ));
        }
        let message = convert::new_message(message).map_err(|e| e.to_string())?;
        queue.push(message);
        Ok(())
    }
}

/// Log fields as `key=value, key=value`.
struct Fields<'a>(&'a [wit::PairResult]);

impl std::fmt::Display for Fields<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, pair) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(
                f,
                "{}={}",
                truncate(&pair.key, MAX_LOG_BYTES),
                truncate(&pair.value, MAX_LOG_BYTES)
            )?;
        }
        Ok(())
    }
}

/// `s` cut to at most `max` bytes on a character boundary.
fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
