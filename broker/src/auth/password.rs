//! The built-in password authenticator: checks a CONNECT's username and password
//! against an argon2id password file (see [`super::password_file`] for the format).
//! Verifications run on tokio's blocking pool, at most `max_concurrent_checks` at a
//! time; recent successes are cached so reconnecting clients skip argon2; failures
//! are counted per peer and throttle that peer; unknown users cost a dummy
//! verification so timing does not reveal which usernames exist. The file is
//! re-read on demand ([`PasswordAuth::reload`], [`PasswordAuth::reload_if_changed`]).
//! It knows nothing about sockets, MQTT packets or the rest of the auth chain, and
//! never logs a password or a hash.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::Duration;

use argon2::password_hash::{self, PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, PasswordHash, Version};
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tracing::{debug, error, warn};

use crate::file_watch::FileWatch;

use super::password_limits::{
    Admission, FailureTracker, ThrottlePolicy, VerifyCache, cache_digest,
};

pub use super::password_file::{EntryError, Error, PasswordFile, SetOutcome};

/// Settings of the password-file authenticator (`[auth.password_file]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PasswordFileConfig {
    /// The password file; must be non-empty when the authenticator is enabled.
    pub path: PathBuf,
    /// Argon2 verifications running at once (0 is treated as 1).
    pub max_concurrent_checks: usize,
    /// How long a successful check is cached, in seconds (0 = no cache).
    pub cache_secs: u64,
    /// Failed checks per client IP (IPv6: per /64) before throttling (0 = never throttle).
    pub max_failures: u32,
    /// A peer's failures are forgotten this many seconds after its latest one.
    pub failure_window_secs: u64,
    /// Delay of the first throttled attempt; doubles with each further failure.
    pub throttle_delay_ms: u64,
    /// Cap of one delay, and of how far ahead one peer's attempts may queue.
    pub max_throttle_delay_ms: u64,
    /// Parameters `cauldron passwd` hashes with (and of the dummy hash for unknown users).
    pub argon2: Argon2Params,
}

impl Default for PasswordFileConfig {
    fn default() -> Self {
        Self {
            path: PathBuf::new(),
            max_concurrent_checks: 2,
            cache_secs: 60,
            max_failures: 5,
            failure_window_secs: 60,
            throttle_delay_ms: 1000,
            max_throttle_delay_ms: 30_000,
            argon2: Argon2Params::default(),
        }
    }
}

/// Argon2id cost parameters; the defaults are OWASP's recommendation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Argon2Params {
    /// Memory cost in KiB (at least 8 × parallelism).
    pub memory_kib: u32,
    /// Number of passes (at least 1).
    pub iterations: u32,
    /// Lanes (at least 1).
    pub parallelism: u32,
}

impl Default for Argon2Params {
    fn default() -> Self {
        Self {
            memory_kib: 19_456,
            iterations: 2,
            parallelism: 1,
        }
    }
}

impl Argon2Params {
    /// The `argon2` crate's parameters; an error when out of range.
    pub fn to_argon2(&self) -> Result<argon2::Params, Error> {
        argon2::Params::new(self.memory_kib, self.iterations, self.parallelism, None)
            .map_err(Error::Params)
    }
}

/// Hashes `password` as an argon2id (v19) PHC string with a fresh random salt.
pub fn hash_password(password: &[u8], params: &Argon2Params) -> Result<String, Error> {
    if password.is_empty() {
        return Err(Error::EmptyPassword);
    }
    Ok(hash_phc(password, params)?.to_string())
}

fn hash_phc(password: &[u8], params: &Argon2Params) -> Result<PasswordHash, Error> {
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.to_argon2()?);
    argon2.hash_password(password).map_err(Error::Hash)
}

/// The outcome of [`PasswordAuth::check`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordVerdict {
    /// The password matches the user's hash.
    Accepted,
    /// The user exists and the password does not match.
    Rejected,
    /// The file has no such user: the chain should ask the next authenticator.
    UnknownUser,
    /// The peer has too many attempts queued; refused without verifying.
    Throttled,
}

/// Verification counters (cheap atomics, kept for tests and future metrics).
#[derive(Debug, Default)]
struct Counters {
    verifications: AtomicU64,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
}

/// Marks one verification in flight while alive.
struct InFlight<'a>(&'a Counters);

impl<'a> InFlight<'a> {
    fn enter(counters: &'a Counters) -> Self {
        counters.verifications.fetch_add(1, Ordering::Relaxed);
        let now = counters.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        counters.max_in_flight.fetch_max(now, Ordering::SeqCst);
        Self(counters)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

type Users = HashMap<String, Arc<PasswordHash>>;

/// The password-file authenticator. `Send + Sync`; share it behind an `Arc`.
/// Lock order: the file watch → `users` → `cache`; `failures` alone. No lock is held
/// across an `.await`.
pub struct PasswordAuth {
    /// The file, and the version of it last read (its lock also serialises reloads).
    watch: FileWatch,
    cache_ttl: Option<Duration>,
    users: RwLock<Users>,
    cache: Mutex<VerifyCache>,
    failures: Mutex<FailureTracker>,
    permits: Arc<Semaphore>,
    cache_key: [u8; 16],
    dummy: Arc<PasswordHash>,
    counters: Arc<Counters>,
}

impl fmt::Debug for PasswordAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PasswordAuth")
            .field("path", &self.watch.path())
            .field("users", &self.users())
            .finish_non_exhaustive()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn random_key() -> Result<[u8; 16], Error> {
    password_hash::try_generate_salt().map_err(|_| Error::Hash(password_hash::Error::RngFailure))
}

impl PasswordAuth {
    /// Reads the password file and prepares the authenticator. Blocking (file I/O
    /// and one argon2 hash for the dummy entry): call it at startup or from
    /// `spawn_blocking`.
    pub fn load(cfg: &PasswordFileConfig) -> Result<PasswordAuth, Error> {
        let dummy = hash_phc(&random_key()?, &cfg.argon2)?;
        let auth = PasswordAuth {
            watch: FileWatch::new(&cfg.path),
            cache_ttl: (cfg.cache_secs > 0).then(|| Duration::from_secs(cfg.cache_secs)),
            users: RwLock::new(HashMap::new()),
            cache: Mutex::new(VerifyCache::default()),
            failures: Mutex::new(FailureTracker::new(ThrottlePolicy {
                max_failures: cfg.max_failures,
                window: Duration::from_secs(cfg.failure_window_secs),
                base_delay: Duration::from_millis(cfg.throttle_delay_ms),
                max_delay: Duration::from_millis(cfg.max_throttle_delay_ms),
            })),
            permits: Arc::new(Semaphore::new(cfg.max_concurrent_checks.max(1))),
            cache_key: random_key()?,
            dummy: Arc::new(dummy),
            counters: Arc::default(),
        };
        auth.reload()?;
        Ok(auth)
    }

    /// Re-reads the file. On error the old users stay in force and the error is
    /// returned for the caller to log. Users whose entry changed or disappeared lose
    /// their cached successes. Blocking (file I/O).
    pub fn reload(&self) -> Result<usize, Error> {
        self.watch.read(|path| {
            let file = PasswordFile::load(path)?;
            let count = self.install(file.into_users());
            debug!(path = %path.display(), users = count, "password file loaded");
            Ok(count)
        })
    }

    /// Reloads when the file changed since it was last read and the change has held
    /// since the previous call ([`FileWatch::changed`]); `Ok(None)` otherwise. Called
    /// every few seconds by the server's file watcher. A file that failed to load is not
    /// retried until it changes again, so each bad version is reported once.
    pub fn reload_if_changed(&self) -> Result<Option<usize>, Error> {
        let changed = self.watch.changed().map_err(|source| Error::Read {
            path: self.watch.path().to_path_buf(),
            source,
        })?;
        if changed {
            self.reload().map(Some)
        } else {
            Ok(None)
        }
    }

    /// Number of users currently loaded.
    pub fn users(&self) -> usize {
        self.users
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// The file this authenticator reads.
    pub fn path(&self) -> &Path {
        self.watch.path()
    }

    /// Checks `username`/`password` for a client connecting from `peer`.
    ///
    /// Throttling comes first and does not depend on the username: a peer with
    /// `max_failures` recent failures waits (`tokio::time::sleep`) for its delay and
    /// is then verified normally, so the verdict is still `Accepted`/`Rejected`;
    /// only when its queued attempts would wait longer than `max_throttle_delay_ms`
    /// is it refused with [`PasswordVerdict::Throttled`], without verifying.
    /// Then a cached success for the same username and password accepts at once.
    /// Otherwise argon2 verifies on the blocking pool under the concurrency limit;
    /// an unknown username is verified against a dummy hash (same cost) and yields
    /// `UnknownUser`. Only `Rejected` counts as a failure of `peer`; see
    /// [`PasswordAuth::record_failure`] for the rest of the chain.
    pub async fn check(&self, username: &str, password: &[u8], peer: IpAddr) -> PasswordVerdict {
        let admission = lock(&self.failures).admit(peer, Instant::now());
        match admission {
            Admission::Now => {}
            Admission::After(delay) => {
                debug!(%peer, delay_ms = delay.as_millis(), "password check delayed: peer throttled");
                tokio::time::sleep(delay).await;
            }
            Admission::Refuse => {
                debug!(%peer, "password check refused: peer throttled");
                return PasswordVerdict::Throttled;
            }
        }
        let entry = self
            .users
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(username)
            .cloned();
        let Some(hash) = entry else {
            self.verify(password, Arc::clone(&self.dummy)).await;
            return PasswordVerdict::UnknownUser;
        };
        let digest = self
            .cache_ttl
            .map(|_| cache_digest(&self.cache_key, username, password));
        if let Some(digest) = &digest
            && lock(&self.cache).hit(username, digest, Instant::now())
        {
            return PasswordVerdict::Accepted;
        }
        if self.verify(password, Arc::clone(&hash)).await {
            if let (Some(digest), Some(ttl)) = (digest, self.cache_ttl) {
                self.remember(username, &hash, digest, ttl);
            }
            PasswordVerdict::Accepted
        } else {
            self.record_failure(peer);
            debug!(username, %peer, "password rejected");
            PasswordVerdict::Rejected
        }
    }

    /// Counts a failed authentication of `peer` towards its throttling. `check`
    /// already counts its own `Rejected` verdicts; call this when the whole chain
    /// rejected a client this authenticator answered `UnknownUser` for, so that
    /// guessing usernames is throttled too (and throttling onset reveals nothing).
    pub fn record_failure(&self, peer: IpAddr) {
        lock(&self.failures).record_failure(peer, Instant::now());
    }

    /// Caches a success unless `username`'s entry changed while it was verified.
    fn remember(&self, username: &str, hash: &Arc<PasswordHash>, digest: [u8; 32], ttl: Duration) {
        let users = self.users.read().unwrap_or_else(PoisonError::into_inner);
        if users
            .get(username)
            .is_some_and(|current| Arc::ptr_eq(current, hash))
        {
            lock(&self.cache).insert(username, digest, Instant::now() + ttl);
        }
    }

    /// Swaps in a new user set, keeping unchanged entries (and their cache) as they are.
    fn install(&self, fresh: HashMap<String, PasswordHash>) -> usize {
        let mut users = self.users.write().unwrap_or_else(PoisonError::into_inner);
        let mut cache = lock(&self.cache);
        let mut next = Users::with_capacity(fresh.len());
        for (name, hash) in fresh {
            let kept = users.get(&name).filter(|old| ***old == hash).cloned();
            next.insert(name, kept.unwrap_or_else(|| Arc::new(hash)));
        }
        for (name, old) in users.iter() {
            if !next.get(name).is_some_and(|new| Arc::ptr_eq(new, old)) {
                cache.invalidate(name);
            }
        }
        *users = next;
        users.len()
    }

    /// Runs one argon2 verification on the blocking pool under the concurrency limit.
    async fn verify(&self, password: &[u8], hash: Arc<PasswordHash>) -> bool {
        // The semaphore is never closed; treat that impossible case as a mismatch.
        let Ok(permit) = Arc::clone(&self.permits).acquire_owned().await else {
            return false;
        };
        let mut secret = password.to_vec();
        let counters = Arc::clone(&self.counters);
        // The permit moves into the task: if the caller goes away, the verification
        // still holds its slot until argon2 is done.
        let joined = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let _in_flight = InFlight::enter(&counters);
            let result = Argon2::default().verify_password(&secret, &*hash);
            secret.iter_mut().for_each(|b| *b = 0);
            std::hint::black_box(&secret);
            result
        })
        .await;
        match joined {
            Ok(Ok(())) => true,
            Ok(Err(password_hash::Error::PasswordInvalid)) => false,
            Ok(Err(e)) => {
                warn!(error = %e, "password verification failed");
                false
            }
            Err(e) => {
                error!(error = %e, "password verification task failed");
                false
            }
        }
    }

    /// Argon2 verifications run so far (dummy ones included).
    #[cfg(test)]
    pub(crate) fn verifications(&self) -> u64 {
        self.counters.verifications.load(Ordering::SeqCst)
    }

    /// Most verifications ever in flight at once.
    #[cfg(test)]
    pub(crate) fn max_in_flight(&self) -> usize {
        self.counters.max_in_flight.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
#[path = "password_tests.rs"]
mod tests;
