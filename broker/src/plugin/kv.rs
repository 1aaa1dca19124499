//! The per-plugin key-value store behind `host.kv-*`: shared by all instances of one
//! plugin, bounded in keys and bytes, with optional expiry.
//!
//! The lock is a `std::sync::Mutex` held only for one map operation, never across an
//! `.await`. Counters are stored as decimal text so `kv-get` reads them as `"42"`.
//! When the store is full (after dropping expired keys), a write of a new key is refused:
//! `kv-set` leaves the store unchanged and `kv-incr` returns the value without storing it.
//! The caller logs the refusal; a full store is not a plugin failure.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug)]
struct Entry {
    value: Vec<u8>,
    expires_at: Option<Instant>,
}

impl Entry {
    fn live(&self, now: Instant) -> bool {
        self.expires_at.is_none_or(|at| at > now)
    }
}

#[derive(Debug, Default)]
struct Map {
    entries: HashMap<String, Entry>,
    /// Bytes of all keys plus values.
    bytes: usize,
}

/// A bounded key-value store with expiry.
#[derive(Debug)]
pub struct KvStore {
    map: Mutex<Map>,
    max_keys: usize,
    max_bytes: usize,
}

/// Why a write was not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KvRefused {
    /// The store holds `max_keys` live keys.
    TooManyKeys,
    /// The write would take the store past `max_bytes`.
    TooManyBytes,
}

impl KvStore {
    /// An empty store holding at most `max_keys` keys and `max_bytes` bytes.
    pub fn new(max_keys: usize, max_bytes: usize) -> Self {
        Self {
            map: Mutex::new(Map::default()),
            max_keys,
            max_bytes,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Map> {
        // A panic while holding this lock cannot leave the map inconsistent in a way
        // that matters more than losing the store; keep serving.
        self.map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The value of a live key.
    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        let now = Instant::now();
        let map = self.lock();
        map.entries
            .get(key)
            .filter(|e| e.live(now))
            .map(|e| e.value.clone())
    }

    /// Stores `value` under `key`, expiring after `ttl` if given.
    pub fn set(&self, key: &str, value: Vec<u8>, ttl: Option<Duration>) -> Result<(), KvRefused> {
        let now = Instant::now();
        let expires_at = ttl.map(|t| now + t);
        let mut map = self.lock();
        self.insert(&mut map, key, Entry { value, expires_at }, now)
    }

    /// Adds `delta` to the counter at `key` (missing, expired or non-numeric counts as 0,
    /// saturating at the `i64` range) and returns the new value. `ttl` applies when the
    /// key is created; an existing key keeps its expiry.
    pub fn incr(
        &self,
        key: &str,
        delta: i64,
        ttl: Option<Duration>,
    ) -> (i64, Result<(), KvRefused>) {
        let now = Instant::now();
        let mut map = self.lock();
        let existing = map.entries.get(key).filter(|e| e.live(now));
        let (current, expires_at) = match existing {
            Some(e) => (parse_counter(&e.value), e.expires_at),
            None => (0, ttl.map(|t| now + t)),
        };
        let value = current.saturating_add(delta);
        let entry = Entry {
            value: value.to_string().into_bytes(),
            expires_at,
        };
        (value, self.insert(&mut map, key, entry, now))
    }

    /// Removes `key`.
    pub fn delete(&self, key: &str) {
        let mut map = self.lock();
        if let Some(old) = map.entries.remove(key) {
            map.bytes -= key.len() + old.value.len();
        }
    }

    /// Number of keys held, expired ones included until they are purged.
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// True when no key is held.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn insert(
        &self,
        map: &mut Map,
        key: &str,
        entry: Entry,
        now: Instant,
    ) -> Result<(), KvRefused> {
        let new_size = key.len() + entry.value.len();
        if self.room_for(map, key, new_size).is_err() {
            purge_expired(map, now);
        }
        self.room_for(map, key, new_size)?;
        let old_size = map
            .entries
            .insert(key.to_owned(), entry)
            .map_or(0, |old| key.len() + old.value.len());
        map.bytes = map.bytes - old_size + new_size;
        Ok(())
    }

    /// Whether `key` can take `new_size` bytes (key plus value).
    fn room_for(&self, map: &Map, key: &str, new_size: usize) -> Result<(), KvRefused> {
        let old_size = map.entries.get(key).map(|old| key.len() + old.value.len());
        if old_size.is_none() && map.entries.len() >= self.max_keys {
            return Err(KvRefused::TooManyKeys);
        }
        if map.bytes - old_size.unwrap_or(0) + new_size > self.max_bytes {
            return Err(KvRefused::TooManyBytes);
        }
        Ok(())
    }
}

fn purge_expired(map: &mut Map, now: Instant) {
    let mut freed = 0;
    map.entries.retain(|k, e| {
        let keep = e.live(now);
        if !keep {
            freed += k.len() + e.value.len();
        }
        keep
    });
    map.bytes -= freed;
}

fn parse_counter(value: &[u8]) -> i64 {
    std::str::from_utf8(value)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn set_get_delete_round_trip() {
        let kv = KvStore::new(10, 1000);
        kv.set("a", b"1".to_vec(), None).unwrap();
        assert_eq!(kv.get("a").as_deref(), Some(&b"1"[..]));
        kv.delete("a");
        assert_eq!(kv.get("a"), None);
        assert!(kv.is_empty());
    }

    #[test]
    fn expired_keys_read_as_missing_and_restart_counters() {
        let kv = KvStore::new(10, 1000);
        kv.set("a", b"x".to_vec(), Some(Duration::ZERO)).unwrap();
        assert_eq!(kv.get("a"), None);
        assert_eq!(kv.incr("n", 5, Some(Duration::ZERO)).0, 5);
        assert_eq!(kv.incr("n", 1, None).0, 1, "expired counter restarts at 0");
    }

    #[test]
    fn incr_counts_from_zero_and_stores_decimal_text() {
        let kv = KvStore::new(10, 1000);
        assert_eq!(kv.incr("n", 2, None), (2, Ok(())));
        assert_eq!(kv.incr("n", -5, None).0, -3);
        assert_eq!(kv.get("n").as_deref(), Some(&b"-3"[..]));
        kv.set("n", b"not a number".to_vec(), None).unwrap();
        assert_eq!(kv.incr("n", 1, None).0, 1);
        kv.set("big", i64::MAX.to_string().into_bytes(), None)
            .unwrap();
        assert_eq!(kv.incr("big", 1, None).0, i64::MAX);
    }

    #[test]
    fn refuses_new_keys_when_full_but_updates_existing_ones() {
        let kv = KvStore::new(2, 1000);
        kv.set("a", vec![], None).unwrap();
        kv.set("b", vec![], None).unwrap();
        assert_eq!(kv.set("c", vec![], None), Err(KvRefused::TooManyKeys));
        assert_eq!(kv.incr("c", 1, None), (1, Err(KvRefused::TooManyKeys)));
        assert_eq!(kv.set("a", b"new".to_vec(), None), Ok(()));
        assert_eq!(kv.get("c"), None);
    }

    #[test]
    fn purges_expired_keys_to_make_room() {
        let kv = KvStore::new(1, 1000);
        kv.set("old", vec![], Some(Duration::ZERO)).unwrap();
        assert_eq!(kv.set("new", vec![], None), Ok(()));
        assert_eq!(kv.len(), 1);
    }

    #[test]
    fn enforces_total_bytes() {
        let kv = KvStore::new(100, 10);
        kv.set("k", vec![0; 9], None).unwrap();
        assert_eq!(kv.set("j", vec![0; 1], None), Err(KvRefused::TooManyBytes));
        assert_eq!(
            kv.set("k", vec![0; 5], None),
            Ok(()),
            "replacing frees the old value"
        );
        assert_eq!(kv.set("j", vec![0; 3], None), Ok(()));
    }
}
