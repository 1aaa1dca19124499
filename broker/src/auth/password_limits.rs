//! The two pieces of bookkeeping that keep password checks cheap and slow down
//! guessing: [`VerifyCache`] (recent successful checks, keyed by a keyed digest of the
//! password, so a reconnecting client skips argon2) and [`FailureTracker`] (failed
//! attempts per peer network, which turn into growing delays). Both are plain data
//! driven by the `now` the caller passes in; no locking, sleeping, files or argon2.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use blake2::{Blake2b256, Digest};
use tokio::time::Instant;

/// How many peers the failure tracker remembers at most; beyond that expired
/// entries are dropped, then the stalest one.
pub const MAX_TRACKED_PEERS: usize = 65_536;

/// A keyed digest of (username, password); the key is random per process.
pub type CacheDigest = [u8; 32];

/// Computes the cache digest of a username and password under `key`.
pub fn cache_digest(key: &[u8; 16], username: &str, password: &[u8]) -> CacheDigest {
    let mut hasher = Blake2b256::new();
    hasher.update(key);
    hasher.update((username.len() as u64).to_le_bytes());
    hasher.update(username.as_bytes());
    hasher.update(password);
    hasher.finalize().into()
}

/// Successful checks, one per user (only one password matches a hash), each valid
/// until its expiry.
#[derive(Debug, Default)]
pub struct VerifyCache {
    entries: HashMap<String, (CacheDigest, Instant)>,
}

impl VerifyCache {
    /// True when `username` was verified with this `digest` and that has not expired.
    pub fn hit(&self, username: &str, digest: &CacheDigest, now: Instant) -> bool {
        self.entries
            .get(username)
            .is_some_and(|(cached, expires)| now < *expires && constant_time_eq(cached, digest))
    }

    /// Remembers a successful check until `expires`.
    pub fn insert(&mut self, username: &str, digest: CacheDigest, expires: Instant) {
        self.entries.insert(username.to_owned(), (digest, expires));
    }

    /// Forgets `username` (its entry changed or was removed).
    pub fn invalidate(&mut self, username: &str) {
        self.entries.remove(username);
    }

    /// Number of cached users.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

fn constant_time_eq(a: &CacheDigest, b: &CacheDigest) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Throttling settings, from the authenticator's config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottlePolicy {
    /// Failures tolerated before delays start; 0 disables throttling.
    pub max_failures: u32,
    /// A peer's failures are forgotten this long after its latest failure.
    pub window: Duration,
    /// Delay after `max_failures` failures; doubles with each further failure.
    pub base_delay: Duration,
    /// Upper bound of one delay, and of how far ahead a peer's attempts may queue.
    pub max_delay: Duration,
}

/// What a peer must do before its check may run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Check immediately.
    Now,
    /// Wait this long, then check.
    After(Duration),
    /// Too many attempts already queued: refuse without checking.
    Refuse,
}

#[derive(Debug, Clone, Copy)]
struct PeerRecord {
    failures: u32,
    last_failure: Instant,
    /// When the latest admitted delayed attempt of this peer is released.
    released_at: Instant,
}

/// Failed attempts per peer network (an IPv4 address, or an IPv6 /64).
#[derive(Debug)]
pub struct FailureTracker {
    policy: ThrottlePolicy,
    peers: HashMap<IpAddr, PeerRecord>,
}

impl FailureTracker {
    /// A tracker with no failures recorded.
    pub fn new(policy: ThrottlePolicy) -> Self {
        Self {
            policy,
            peers: HashMap::new(),
        }
    }

    /// Decides whether `peer` may check now. Below `max_failures` recent failures it
    /// may; beyond, each attempt waits `base_delay · 2^(failures − max_failures)`
    /// (capped at `max_delay`) after the previous delayed attempt of the same peer,
    /// and is refused when that would put it more than `max_delay` ahead. This keeps
    /// one peer to one guess per delay even when it opens many connections at once.
    pub fn admit(&mut self, peer: IpAddr, now: Instant) -> Admission {
        let policy = self.policy;
        if policy.max_failures == 0 {
            return Admission::Now;
        }
        let Some(record) = self.live_record(peer, now) else {
            return Admission::Now;
        };
        if record.failures < policy.max_failures {
            return Admission::Now;
        }
        let excess = record.failures - policy.max_failures;
        let delay = policy
            .base_delay
            .saturating_mul(1u32.checked_shl(excess).unwrap_or(u32::MAX))
            .min(policy.max_delay);
        let start = record.released_at.max(now);
        let release = start + delay;
        if release.saturating_duration_since(now) > policy.max_delay {
            return Admission::Refuse;
        }
        record.released_at = release;
        Admission::After(release.saturating_duration_since(now))
    }

    /// Counts a failed check of `peer`.
    pub fn record_failure(&mut self, peer: IpAddr, now: Instant) {
        if self.policy.max_failures == 0 {
            return;
        }
        if let Some(record) = self.live_record(peer, now) {
            record.failures = record.failures.saturating_add(1);
            record.last_failure = now;
            return;
        }
        self.make_room(now);
        self.peers.insert(
            peer_key(peer),
            PeerRecord {
                failures: 1,
                last_failure: now,
                released_at: now,
            },
        );
    }

    /// Recent failures of `peer`.
    pub fn failures(&mut self, peer: IpAddr, now: Instant) -> u32 {
        self.live_record(peer, now).map_or(0, |r| r.failures)
    }

    /// Number of peers remembered.
    pub fn tracked(&self) -> usize {
        self.peers.len()
    }

    /// The record of `peer`, dropping it first when its failures have expired.
    fn live_record(&mut self, peer: IpAddr, now: Instant) -> Option<&mut PeerRecord> {
        let key = peer_key(peer);
        let window = self.policy.window;
        if self
            .peers
            .get(&key)
            .is_some_and(|r| is_expired(r, window, now))
        {
            self.peers.remove(&key);
        }
        self.peers.get_mut(&key)
    }

    fn make_room(&mut self, now: Instant) {
        if self.peers.len() < MAX_TRACKED_PEERS {
            return;
        }
        let window = self.policy.window;
        self.peers.retain(|_, r| !is_expired(r, window, now));
        if self.peers.len() >= MAX_TRACKED_PEERS {
            let stalest = self
                .peers
                .iter()
                .min_by_key(|(_, r)| r.last_failure)
                .map(|(key, _)| *key);
            if let Some(key) = stalest {
                self.peers.remove(&key);
            }
        }
    }
}

/// Failures expire a window after the latest one, once no delayed attempt is pending.
fn is_expired(record: &PeerRecord, window: Duration, now: Instant) -> bool {
    now >= record.last_failure + window && now >= record.released_at
}

/// The unit failures are counted per: IPv4 addresses (IPv4-mapped IPv6 included) as
/// they are, IPv6 addresses by their /64 network, which one host usually controls.
pub fn peer_key(peer: IpAddr) -> IpAddr {
    match peer {
        IpAddr::V4(_) => peer,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let bits = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(bits.into())
            }
        },
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn policy() -> ThrottlePolicy {
        ThrottlePolicy {
            max_failures: 2,
            window: Duration::from_secs(60),
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(1000),
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn concurrent_attempts_queue_behind_each_other_and_overflow_is_refused() {
        let mut t = FailureTracker::new(policy());
        let now = Instant::now();
        let peer = ip("192.0.2.1");
        let mut delays = Vec::new();
        for _ in 0..7 {
            delays.push(t.admit(peer, now));
            t.record_failure(peer, now);
        }
        let ms = |m| Admission::After(Duration::from_millis(m));
        // All attempts arrive at the same instant, as from many parallel connections:
        // each delayed one is released after the previous one.
        assert_eq!(delays[0], Admission::Now);
        assert_eq!(delays[1], Admission::Now);
        assert_eq!(delays[2], ms(100));
        assert_eq!(delays[3], ms(300)); // queued after the first: 100 + 200
        assert_eq!(delays[4], ms(700)); // 300 + 400
        assert_eq!(delays[5], Admission::Refuse); // 700 + 800 > 1000
    }

    #[test]
    fn sequential_delays_double_and_cap() {
        let mut t = FailureTracker::new(policy());
        let mut now = Instant::now();
        let peer = ip("192.0.2.1");
        let mut delays = Vec::new();
        for _ in 0..7 {
            let admission = t.admit(peer, now);
            if let Admission::After(d) = admission {
                now += d;
            }
            delays.push(admission);
            t.record_failure(peer, now);
        }
        let ms = |m| Admission::After(Duration::from_millis(m));
        let expected = [
            Admission::Now,
            Admission::Now,
            ms(100),
            ms(200),
            ms(400),
            ms(800),
            ms(1000),
        ];
        assert_eq!(delays, expected);
    }

    #[test]
    fn failures_expire_after_window() {
        let mut t = FailureTracker::new(policy());
        let now = Instant::now();
        let peer = ip("192.0.2.1");
        t.record_failure(peer, now);
        t.record_failure(peer, now);
        assert_eq!(t.failures(peer, now), 2);
        assert_eq!(t.failures(peer, now + Duration::from_secs(61)), 0);
        assert_eq!(t.admit(peer, now + Duration::from_secs(61)), Admission::Now);
    }

    #[test]
    fn zero_max_failures_disables_throttling() {
        let mut t = FailureTracker::new(ThrottlePolicy {
            max_failures: 0,
            ..policy()
        });
        let now = Instant::now();
        let peer = ip("192.0.2.1");
        for _ in 0..10 {
            t.record_failure(peer, now);
        }
        assert_eq!(t.admit(peer, now), Admission::Now);
        assert_eq!(t.tracked(), 0);
    }

    #[test]
    fn ipv6_counted_per_slash_64_and_mapped_v4_as_v4() {
        assert_eq!(
            peer_key(ip("2001:db8::1")),
            peer_key(ip("2001:db8::ffff:2"))
        );
        assert_ne!(peer_key(ip("2001:db8::1")), peer_key(ip("2001:db8:0:1::1")));
        assert_eq!(peer_key(ip("::ffff:192.0.2.7")), ip("192.0.2.7"));
    }

    #[test]
    fn tracker_memory_is_bounded() {
        let mut t = FailureTracker::new(policy());
        let now = Instant::now();
        for i in 0..(MAX_TRACKED_PEERS as u32 + 10) {
            t.record_failure(IpAddr::V4(i.into()), now);
        }
        assert_eq!(t.tracked(), MAX_TRACKED_PEERS);
    }

    #[test]
    fn cache_hits_only_for_same_password_before_expiry() {
        let key = [7u8; 16];
        let mut cache = VerifyCache::default();
        let now = Instant::now();
        let expires = now + Duration::from_secs(10);
        cache.insert("alice", cache_digest(&key, "alice", b"pw"), expires);
        assert!(cache.hit("alice", &cache_digest(&key, "alice", b"pw"), now));
        assert!(!cache.hit("alice", &cache_digest(&key, "alice", b"other"), now));
        assert!(!cache.hit("alice", &cache_digest(&[8u8; 16], "alice", b"pw"), now));
        assert!(!cache.hit("alice", &cache_digest(&key, "alice", b"pw"), expires));
        cache.invalidate("alice");
        assert!(cache.is_empty());
    }
}
