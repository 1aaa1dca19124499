//! The plugin's key-value store in the broker, shared by all instances of this plugin (and only
//! this plugin): state such as rate-limit counters belongs here, not in globals, since the
//! broker runs several instances of a plugin and replaces one after a trap.
//!
//! Counters written by [`incr`] read back through [`get`] as decimal text (`b"42"`). Under
//! `cargo test` the store is an in-memory fake that follows the same rules; its clock is
//! [`crate::testing::advance_millis`].
//!
//! ```
//! use std::time::Duration;
//! use cauldron_sdk::kv;
//!
//! let window = Some(Duration::from_secs(1));
//! assert_eq!(kv::incr("rate/sensor-1", 1, window), 1);
//! assert_eq!(kv::incr("rate/sensor-1", 1, window), 2);
//! assert_eq!(kv::get("rate/sensor-1"), Some(b"2".to_vec()));
//! kv::set("greeting", "hello", None);
//! assert_eq!(kv::get_str("greeting").as_deref(), Some("hello"));
//! kv::delete("greeting");
//! assert_eq!(kv::get("greeting"), None);
//! ```

use std::time::Duration;

/// The value stored under `key`, `None` when missing or expired.
pub fn get(key: &str) -> Option<Vec<u8>> {
    crate::backend::kv_get(key)
}

/// The value stored under `key` as text, `None` when missing, expired or not UTF-8.
pub fn get_str(key: &str) -> Option<String> {
    get(key).and_then(|v| String::from_utf8(v).ok())
}

/// Stores `value` under `key`, expiring after `ttl` (none: kept until deleted).
pub fn set(key: &str, value: impl AsRef<[u8]>, ttl: Option<Duration>) {
    crate::backend::kv_set(key, value.as_ref(), ttl.map(millis));
}

/// Atomically adds `delta` to the counter under `key` and returns the new value. A missing or
/// expired key counts as 0; `ttl` applies when the counter is created, so a counter with a TTL
/// is a fixed window.
pub fn incr(key: &str, delta: i64, ttl: Option<Duration>) -> i64 {
    crate::backend::kv_incr(key, delta, ttl.map(millis))
}

/// Deletes `key` (nothing happens when it is missing).
pub fn delete(key: &str) {
    crate::backend::kv_delete(key);
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing;

    #[test]
    fn counter_with_ttl_resets_after_the_window() {
        let ttl = Some(Duration::from_millis(500));
        assert_eq!(incr("c", 1, ttl), 1);
        assert_eq!(incr("c", 1, ttl), 2);
        testing::advance_millis(500);
        assert_eq!(incr("c", 1, ttl), 1);
    }

    #[test]
    fn huge_ttl_saturates() {
        set("k", "v", Some(Duration::MAX));
        testing::advance_millis(u64::MAX / 2);
        assert_eq!(get_str("k").as_deref(), Some("v"));
    }
}
