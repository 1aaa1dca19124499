//! The `[storage]` table: where durable state lives (retained messages, persistent
//! sessions, their queued and in-flight messages), how often it reaches the disk, and
//! what happens when the store on disk cannot be read. Plain values only; the `store`
//! module decides what they mean.

use std::path::PathBuf;

use figment::value::magic::RelativePathBuf;
use serde::{Deserialize, Serialize};

use super::validate::{Violation, within};

/// Which storage engine keeps the durable state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StorageBackend {
    /// redb: one crash-safe file (`cauldron.redb`) in `storage.dir`.
    Redb,
    /// Nothing is written; everything is lost when the broker stops.
    Memory,
}

/// When a write reaches the disk (fsync), and so when a publish waiting for it is
/// acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FsyncPolicy {
    /// One transaction and one fsync per write: the slowest, for comparison.
    Always,
    /// Group commit: every write queued while the previous fsync ran (and, with
    /// `group_commit_window_us`, for that long after the first) shares one fsync.
    Group,
    /// Written at once but synced every `periodic_interval_ms`; acknowledgements do
    /// not wait, so a crash (not a clean stop) loses up to that interval.
    Periodic,
}

/// What a store that cannot be opened or read does at start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnCorrupt {
    /// Refuse to start, naming the file and the reason (the default: never a silent
    /// start from empty).
    Fail,
    /// Rename the bad file to `cauldron.redb.corrupt-<unix time>` and start empty.
    MoveAside,
}

/// Durable state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// The storage engine.
    pub backend: StorageBackend,
    /// The data directory, created when missing. Relative paths are relative to the
    /// config file (to the working directory for the embedded defaults).
    pub dir: RelativePathBuf,
    /// The fsync policy.
    pub fsync: FsyncPolicy,
    /// With `fsync = "group"`: how long the writer keeps collecting after the first
    /// write of a batch, in microseconds. 0 takes only what queued up meanwhile.
    pub group_commit_window_us: u64,
    /// With `fsync = "periodic"`: the longest time between two syncs.
    pub periodic_interval_ms: u64,
    /// Verify every page's checksum when opening (slower start, but a damaged file is
    /// found at start instead of later).
    pub verify_on_open: bool,
    /// What to do when the store cannot be opened or read.
    pub on_corrupt: OnCorrupt,
    /// Memory for the engine's page cache, in MiB.
    pub cache_mib: u64,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            backend: StorageBackend::Redb,
            dir: RelativePathBuf::from(PathBuf::from("data")),
            fsync: FsyncPolicy::Group,
            group_commit_window_us: 0,
            periodic_interval_ms: 1000,
            verify_on_open: true,
            on_corrupt: OnCorrupt::Fail,
            cache_mib: 64,
        }
    }
}

impl StorageConfig {
    /// The data directory, resolved against the config file's directory.
    pub fn dir_path(&self) -> PathBuf {
        self.dir.relative()
    }

    /// The default engine and policy in `dir`.
    pub fn in_dir(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: RelativePathBuf::from(dir.into()),
            ..Self::default()
        }
    }

    /// An in-memory store (what in-process tests use unless they test storage).
    pub fn memory() -> Self {
        Self {
            backend: StorageBackend::Memory,
            ..Self::default()
        }
    }
}

pub(super) fn check_storage(s: &StorageConfig) -> Result<(), Violation> {
    within(
        "storage.group_commit_window_us",
        s.group_commit_window_us,
        0,
        100_000,
    )?;
    within(
        "storage.periodic_interval_ms",
        s.periodic_interval_ms,
        1,
        60_000,
    )?;
    within("storage.cache_mib", s.cache_mib, 1, 65_536)
}
