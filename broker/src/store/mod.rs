//! Durable state: retained messages, persistent sessions with their subscriptions,
//! queued and in-flight messages, inbound QoS 2 packet ids and delayed wills.
//!
//! The broker's live state stays in memory; the store is a write-behind log of its
//! changes. Callers describe a change as an [`Op`] and [`Store::submit`] it: a writer
//! thread applies queued operations in batches, one transaction and one fsync per batch
//! (group commit), and reports which [`Ticket`]s are durable. Whoever must not answer
//! before the disk has the change (a PUBACK to a publisher whose message reached a
//! persistent session) waits for its ticket; nobody else waits. At start, [`Store::open`]
//! reads everything back into a [`Snapshot`] the broker rebuilds its state from.
//!
//! The engine sits behind [`Engine`], so another one could replace redb; the memory
//! mode has no engine and no thread. Nothing here knows about sockets or the router.

mod engine;
pub mod record;
#[cfg(test)]
mod tests;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use tokio::sync::watch;

use crate::config::{FsyncPolicy, OnCorrupt, StorageBackend, StorageConfig};
use crate::message::{Delivery, Message};
use crate::session::InflightState;
use crate::topic::TopicName;
use crate::types::{ClientId, PacketId};
pub use engine::RedbEngine;
pub use record::SessionRecord;

/// The file name of the redb store inside the data directory.
pub const FILE_NAME: &str = "cauldron.redb";

/// A change to the durable state.
#[derive(Debug)]
pub enum Op {
    /// Store a retained message (replacing the topic's previous one).
    RetainPut(Arc<Message>),
    /// Remove the retained message of a topic.
    RetainDelete(TopicName),
    /// Create or replace a persistent session's record.
    SessionPut(ClientId, Box<SessionRecord>),
    /// Remove a session with its queue, in-flight states and inbound QoS 2 ids.
    SessionDelete(ClientId),
    /// Queue a delivery for a persistent session. The message is written once per
    /// `message_id` and removed with the last delivery that refers to it.
    Enqueue {
        /// The session.
        client: ClientId,
        /// The session's generation.
        generation: u64,
        /// The delivery's store sequence number.
        seq: u64,
        /// The message's id, shared by every delivery of one routed message.
        message_id: u64,
        /// The delivery.
        delivery: Delivery,
    },
    /// A queued delivery was sent with a packet id, or moved on in its QoS 2 flow.
    Inflight {
        /// The session.
        client: ClientId,
        /// The delivery's store sequence number.
        seq: u64,
        /// Its packet identifier.
        packet_id: PacketId,
        /// Its acknowledgement state.
        state: InflightState,
    },
    /// A queued delivery is done (acknowledged, expired or dropped).
    Dequeue {
        /// The session.
        client: ClientId,
        /// The delivery's store sequence number.
        seq: u64,
    },
    /// The will of a connected client whose session is not stored (clean), with its
    /// delay: published after a crash, since the crash ended the connection without
    /// DISCONNECT [MQTT-3.1.2-8].
    WillPut(ClientId, Box<Message>, u32),
    /// That client's connection ended; its will is handled (or discarded) in memory.
    WillDelete(ClientId),
    /// An inbound QoS 2 packet id now awaits PUBREL (`true`) or was released (`false`).
    Qos2In {
        /// The session.
        client: ClientId,
        /// The packet identifier.
        packet_id: PacketId,
        /// Awaiting PUBREL.
        present: bool,
    },
}

/// A submitted batch of operations; wait for it with [`Store::wait`]. `Ticket::NONE`
/// is durable already (nothing was written, or the policy does not make anyone wait).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Ticket(pub u64);

impl Ticket {
    /// Nothing to wait for.
    pub const NONE: Ticket = Ticket(0);

    /// The later of two tickets.
    pub fn max(self, other: Ticket) -> Ticket {
        Ticket(self.0.max(other.0))
    }

    /// True when there is nothing to wait for.
    pub fn is_none(self) -> bool {
        self.0 == 0
    }
}

/// Why a write did not reach the disk.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    /// The disk (or the file system's quota) is full.
    #[error("no space left on the device holding the store")]
    NoSpace,
    /// Any other failure of the engine or the disk.
    #[error("store write failed: {0}")]
    Failed(String),
    /// The store was closed (the broker is stopping).
    #[error("the store is closed")]
    Closed,
}

/// Why the store could not be opened or read at start.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The data directory cannot be created or used.
    #[error("data directory {path}: {source}")]
    Dir {
        /// The directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The store file cannot be opened (damaged, locked by another broker, unreadable).
    #[error(
        "store {path} cannot be opened: {reason} (set storage.on_corrupt = \"move-aside\" to move it aside and start empty)"
    )]
    Open {
        /// The file.
        path: PathBuf,
        /// What the engine said.
        reason: String,
    },
    /// A record in the store does not decode.
    #[error(
        "store {path}: {table} record {key:?} is unreadable: {reason} (set storage.on_corrupt = \"move-aside\" to move the store aside and start empty)"
    )]
    Record {
        /// The file.
        path: PathBuf,
        /// The table.
        table: &'static str,
        /// The record's key.
        key: String,
        /// Why.
        reason: String,
    },
    /// Moving a bad store aside failed.
    #[error("cannot move the bad store {path} aside: {source}")]
    MoveAside {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// A session read back from the store.
#[derive(Debug)]
pub struct LoadedSession {
    /// The client identifier.
    pub client_id: ClientId,
    /// The session record.
    pub record: SessionRecord,
    /// Queued deliveries in queue order, with their in-flight state when they were sent.
    pub queue: Vec<(Delivery, Option<(PacketId, InflightState)>)>,
    /// Inbound QoS 2 packet ids awaiting PUBREL.
    pub inbound_qos2: Vec<PacketId>,
}

/// Everything the store held at start, expired entries already removed.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Retained messages.
    pub retained: Vec<Message>,
    /// Persistent sessions.
    pub sessions: Vec<LoadedSession>,
    /// Wills that fell due while the broker was down (delayed, or their session expired).
    pub due_wills: Vec<Message>,
    /// What the start-up housekeeping removed: expired sessions, expired or orphaned
    /// messages.
    pub removed: usize,
    /// The highest number the store holds: queue sequence numbers, session generations
    /// and message ids come from one counter, which continues after it.
    pub last_id: u64,
}

/// What a storage engine does. Called from the writer thread (apply) and once at
/// start (load); never from async code.
pub trait Engine: Send + 'static {
    /// Reads everything back, removing what expired while the broker was down.
    fn load(&mut self, now: Instant, wall_now: SystemTime) -> Result<Snapshot, OpenError>;
    /// Applies `ops` in one transaction; `sync` makes it durable before returning.
    fn apply(&mut self, ops: &[Op], sync: bool) -> Result<(), WriteError>;
    /// Makes every earlier `apply` durable.
    fn sync(&mut self) -> Result<(), WriteError>;
}

#[derive(Debug)]
struct Progress {
    /// Every ticket up to this one has been applied (or has failed).
    done: watch::Sender<u64>,
    /// Failed ticket ranges, newest last (bounded).
    failures: Mutex<std::collections::VecDeque<(u64, u64, WriteError)>>,
}

const MAX_REMEMBERED_FAILURES: usize = 1024;

impl Progress {
    /// Records that tickets `from..=to` failed (before they are reported done).
    fn fail(&self, from: u64, to: u64, e: WriteError) {
        let mut f = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if f.len() == MAX_REMEMBERED_FAILURES {
            f.pop_front();
        }
        f.push_back((from, to, e));
    }

    /// Every ticket up to `upto` is finished.
    fn advance(&self, upto: u64) {
        self.done.send_modify(|d| *d = (*d).max(upto));
    }

    fn outcome(&self, t: u64) -> Result<(), WriteError> {
        let f = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        match f.iter().rev().find(|(lo, hi, _)| *lo <= t && t <= *hi) {
            Some((_, _, e)) => Err(e.clone()),
            None => Ok(()),
        }
    }
}

/// The last ticket handed out and the queue to the writer (`None` once closed).
type Queue = (u64, Option<std::sync::mpsc::Sender<(u64, Op)>>);

struct Inner {
    /// Under one lock, so that tickets reach the writer in order.
    queue: Mutex<Queue>,
    progress: Arc<Progress>,
    next_seq: AtomicU64,
    waits: bool,
    durable: bool,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    path: Option<PathBuf>,
}

/// The handle to the store; cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("durable", &self.inner.durable)
            .field("path", &self.inner.path)
            .finish()
    }
}

impl Store {
    /// A store that keeps nothing.
    pub fn memory() -> Store {
        Store::with_parts(None, false, None, 1)
    }

    fn with_parts(
        tx: Option<std::sync::mpsc::Sender<(u64, Op)>>,
        waits: bool,
        path: Option<PathBuf>,
        next_seq: u64,
    ) -> Store {
        let durable = tx.is_some();
        Store {
            inner: Arc::new(Inner {
                queue: Mutex::new((0, tx)),
                progress: Arc::new(Progress {
                    done: watch::channel(0).0,
                    failures: Mutex::default(),
                }),
                next_seq: AtomicU64::new(next_seq),
                waits,
                durable,
                writer: Mutex::new(None),
                path,
            }),
        }
    }

    /// Opens the configured store and reads it back. Blocking (file I/O): call it
    /// before serving, or from `spawn_blocking`.
    pub fn open(config: &StorageConfig) -> Result<(Store, Snapshot), OpenError> {
        if config.backend == StorageBackend::Memory {
            return Ok((Store::memory(), Snapshot::default()));
        }
        let dir = config.dir_path();
        std::fs::create_dir_all(&dir).map_err(|source| OpenError::Dir {
            path: dir.clone(),
            source,
        })?;
        let path = dir.join(FILE_NAME);
        let (engine, snapshot) = match open_and_load(&path, config) {
            Ok(pair) => pair,
            Err(e) if config.on_corrupt == OnCorrupt::MoveAside && path.exists() => {
                let aside = move_aside(&path)?;
                tracing::error!(error = %e, moved_to = %aside.display(), "the store could not be read; moved aside, starting empty (storage.on_corrupt = \"move-aside\")");
                open_and_load(&path, config)?
            }
            Err(e) => return Err(e),
        };
        Store::start(Box::new(engine), snapshot, config, Some(path))
    }

    /// Starts the writer thread on an engine whose state was loaded into `snapshot`
    /// (what [`Store::open`] does for redb; tests use it with engines of their own).
    pub fn start(
        engine: Box<dyn Engine>,
        snapshot: Snapshot,
        config: &StorageConfig,
        path: Option<PathBuf>,
    ) -> Result<(Store, Snapshot), OpenError> {
        let (tx, rx) = std::sync::mpsc::channel();
        let waits = config.fsync != FsyncPolicy::Periodic;
        let store = Store::with_parts(Some(tx), waits, path.clone(), snapshot.last_id + 1);
        let progress = Arc::clone(&store.inner.progress);
        let policy = writer::Policy::from_config(config);
        let handle = std::thread::Builder::new()
            .name("cauldron-store".to_owned())
            .spawn(move || writer::run(engine, rx, progress, policy))
            .map_err(|source| OpenError::Dir {
                path: path.unwrap_or_default(),
                source,
            })?;
        *store.inner.writer.lock().unwrap_or_else(|e| e.into_inner()) = Some(handle);
        Ok((store, snapshot))
    }

    /// True when changes are written somewhere (not the memory mode).
    pub fn is_durable(&self) -> bool {
        self.inner.durable
    }

    /// The store file, when there is one.
    pub fn path(&self) -> Option<&Path> {
        self.inner.path.as_deref()
    }

    /// A fresh sequence number (queue entries and session generations).
    pub fn next_seq(&self) -> u64 {
        self.inner.next_seq.fetch_add(1, Ordering::Relaxed)
    }

    /// Queues one change for the writer.
    pub fn submit(&self, op: Op) -> Ticket {
        self.submit_all(std::iter::once(op))
    }

    /// Queues changes for the writer, in order. The ticket is `NONE` when nobody needs
    /// to wait (memory mode, periodic fsync, no ops).
    pub fn submit_all(&self, ops: impl IntoIterator<Item = Op>) -> Ticket {
        if !self.inner.durable {
            return Ticket::NONE;
        }
        let mut q = self.inner.queue.lock().unwrap_or_else(|e| e.into_inner());
        let mut last = None;
        for op in ops {
            q.0 += 1;
            let t = q.0;
            let sent = q.1.as_ref().is_some_and(|tx| tx.send((t, op)).is_ok());
            if !sent {
                // Closed: whoever waits for it learns so once `close` has finished.
                self.inner.progress.fail(t, t, WriteError::Closed);
            }
            last = Some(t);
        }
        match last {
            Some(t) if self.inner.waits => Ticket(t),
            _ => Ticket::NONE,
        }
    }

    /// The outcome of `ticket` if it is known already.
    pub fn poll(&self, ticket: Ticket) -> Option<Result<(), WriteError>> {
        if ticket.is_none() {
            return Some(Ok(()));
        }
        (*self.inner.progress.done.borrow() >= ticket.0)
            .then(|| self.inner.progress.outcome(ticket.0))
    }

    /// Waits until `ticket` is durable (or failed).
    pub async fn wait(&self, ticket: Ticket) -> Result<(), WriteError> {
        if ticket.is_none() {
            return Ok(());
        }
        let mut rx = self.inner.progress.done.subscribe();
        if rx.wait_for(|d| *d >= ticket.0).await.is_err() {
            return Err(WriteError::Closed);
        }
        self.inner.progress.outcome(ticket.0)
    }

    /// Stops the writer after it has applied and synced everything queued. Later
    /// submissions fail with [`WriteError::Closed`]. Blocking.
    pub fn close(&self) {
        {
            let mut q = self.inner.queue.lock().unwrap_or_else(|e| e.into_inner());
            q.1 = None;
        }
        let handle = self
            .inner
            .writer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(h) = handle
            && h.join().is_err()
        {
            tracing::error!("the store writer thread panicked");
        }
        // Everything queued was applied (or failed); later tickets failed at submit.
        self.inner.progress.advance(u64::MAX);
    }
}

fn open_and_load(path: &Path, config: &StorageConfig) -> Result<(RedbEngine, Snapshot), OpenError> {
    let mut engine = RedbEngine::open(path, config)?;
    let snapshot = engine.load(Instant::now(), SystemTime::now())?;
    Ok((engine, snapshot))
}

fn move_aside(path: &Path) -> Result<PathBuf, OpenError> {
    let stamp = record::unix_ms(SystemTime::now()) / 1000;
    let mut aside = path.as_os_str().to_owned();
    aside.push(format!(".corrupt-{stamp}"));
    let aside = PathBuf::from(aside);
    std::fs::rename(path, &aside).map_err(|source| OpenError::MoveAside {
        path: path.to_owned(),
        source,
    })?;
    Ok(aside)
}
