//! The native backend: an in-memory fake of the broker's host functions, so that plugin code
//! that logs, counts in the key-value store or publishes runs unchanged under `cargo test`.
//!
//! State is per thread (the test harness runs each test on its own thread), so tests do not
//! see each other's keys, logs or messages. [`crate::testing`] inspects and steers it. The
//! semantics follow the WIT contract: counters are stored as decimal text, a missing, expired
//! or non-numeric key counts as 0 for `kv_incr`, and a TTL applies when a counter is created.

use std::cell::RefCell;
use std::collections::HashMap;

use crate::client::Client;
use crate::log::Level;
use crate::message::Message;
use crate::testing::{LogRecord, START_MILLIS};

struct Entry {
    value: Vec<u8>,
    expires_at: Option<u64>,
}

pub(crate) struct FakeHost {
    pub(crate) now_millis: u64,
    kv: HashMap<String, Entry>,
    pub(crate) logs: Vec<LogRecord>,
    pub(crate) published: Vec<Message>,
    pub(crate) refuse_publish: Option<String>,
    /// What `current_client` answers: the client of the hook being run.
    pub(crate) client: Option<Client>,
    /// How many times `current_client` was asked.
    pub(crate) client_lookups: usize,
}

impl FakeHost {
    fn new() -> FakeHost {
        FakeHost {
            now_millis: START_MILLIS,
            kv: HashMap::new(),
            logs: Vec::new(),
            published: Vec::new(),
            refuse_publish: None,
            client: None,
            client_lookups: 0,
        }
    }

    fn live(&mut self, key: &str) -> Option<&mut Entry> {
        let now = self.now_millis;
        if self
            .kv
            .get(key)
            .is_some_and(|e| e.expires_at.is_some_and(|t| t <= now))
        {
            self.kv.remove(key);
        }
        self.kv.get_mut(key)
    }
}

thread_local! {
    static HOST: RefCell<FakeHost> = RefCell::new(FakeHost::new());
}

/// Runs `f` on this thread's fake host.
pub(crate) fn with_host<T>(f: impl FnOnce(&mut FakeHost) -> T) -> T {
    HOST.with(|h| f(&mut h.borrow_mut()))
}

/// Forgets everything: keys, logs, published messages, the clock and refusals.
pub(crate) fn reset() {
    with_host(|h| *h = FakeHost::new());
}

pub(crate) fn log(level: Level, message: &str, fields: Vec<(String, String)>) {
    with_host(|h| {
        h.logs.push(LogRecord {
            level,
            message: message.to_owned(),
            fields,
        });
    });
}

pub(crate) fn current_client() -> Option<Client> {
    with_host(|h| {
        h.client_lookups += 1;
        h.client.clone()
    })
}

pub(crate) fn now_millis() -> u64 {
    with_host(|h| h.now_millis)
}

pub(crate) fn kv_get(key: &str) -> Option<Vec<u8>> {
    with_host(|h| h.live(key).map(|e| e.value.clone()))
}

pub(crate) fn kv_set(key: &str, value: &[u8], ttl_ms: Option<u64>) {
    with_host(|h| {
        let expires_at = ttl_ms.map(|ttl| h.now_millis.saturating_add(ttl));
        h.kv.insert(
            key.to_owned(),
            Entry {
                value: value.to_vec(),
                expires_at,
            },
        );
    });
}

pub(crate) fn kv_incr(key: &str, delta: i64, ttl_ms: Option<u64>) -> i64 {
    with_host(|h| {
        let now = h.now_millis;
        let (current, expires_at) = match h.live(key) {
            Some(e) => (parse_counter(&e.value), e.expires_at),
            None => (0, ttl_ms.map(|ttl| now.saturating_add(ttl))),
        };
        let next = current.saturating_add(delta);
        h.kv.insert(
            key.to_owned(),
            Entry {
                value: next.to_string().into_bytes(),
                expires_at,
            },
        );
        next
    })
}

pub(crate) fn kv_delete(key: &str) {
    with_host(|h| {
        h.kv.remove(key);
    });
}

pub(crate) fn publish(message: Message) -> Result<(), String> {
    with_host(|h| match &h.refuse_publish {
        Some(reason) => Err(reason.clone()),
        None => {
            h.published.push(message);
            Ok(())
        }
    })
}

fn parse_counter(value: &[u8]) -> i64 {
    std::str::from_utf8(value)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incr_counts_from_zero_and_stores_decimal_text() {
        assert_eq!(kv_incr("n", 1, None), 1);
        assert_eq!(kv_incr("n", 41, None), 42);
        assert_eq!(kv_get("n"), Some(b"42".to_vec()));
        assert_eq!(kv_incr("n", -50, None), -8);
    }

    #[test]
    fn incr_ttl_applies_only_when_the_counter_is_created() {
        with_host(|h| h.now_millis = 1_000);
        assert_eq!(kv_incr("w", 1, Some(100)), 1);
        with_host(|h| h.now_millis = 1_050);
        assert_eq!(kv_incr("w", 1, Some(100)), 2, "ttl not extended");
        with_host(|h| h.now_millis = 1_100);
        assert_eq!(kv_get("w"), None, "expired at creation + ttl");
        assert_eq!(kv_incr("w", 1, Some(100)), 1, "expired counts as 0");
    }

    #[test]
    fn incr_treats_non_numeric_values_as_zero() {
        kv_set("s", b"hello", None);
        assert_eq!(kv_incr("s", 2, None), 2);
    }

    #[test]
    fn set_overwrites_value_and_ttl() {
        kv_set("k", b"a", Some(10));
        kv_set("k", b"b", None);
        with_host(|h| h.now_millis += 1_000);
        assert_eq!(kv_get("k"), Some(b"b".to_vec()));
        kv_delete("k");
        assert_eq!(kv_get("k"), None);
    }

    #[test]
    fn refused_publish_is_not_recorded() {
        with_host(|h| h.refuse_publish = Some("loop".into()));
        assert_eq!(publish(Message::new("a", "b")), Err("loop".to_owned()));
        with_host(|h| assert!(h.published.is_empty()));
        reset();
        assert_eq!(publish(Message::new("a", "b")), Ok(()));
        with_host(|h| assert_eq!(h.published.len(), 1));
    }
}
