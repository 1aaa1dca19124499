//! The writer thread: takes queued operations in batches, applies each batch in one
//! transaction and reports the batch's tickets done (group commit).

use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::time::{Duration, Instant};

use super::{Engine, Op, Progress, WriteError};
use crate::config::{FsyncPolicy, StorageConfig};

/// The most operations one transaction takes.
const MAX_BATCH: usize = 8192;

/// How the writer groups and syncs.
#[derive(Debug, Clone, Copy)]
pub(super) enum Policy {
    /// One operation per transaction, each synced.
    Always,
    /// Everything queued (plus `window` after the first) per synced transaction.
    Group { window: Duration },
    /// Unsynced transactions; a sync every `interval`.
    Periodic { interval: Duration },
}

impl Policy {
    pub(super) fn from_config(c: &StorageConfig) -> Policy {
        match c.fsync {
            FsyncPolicy::Always => Policy::Always,
            FsyncPolicy::Group => Policy::Group {
                window: Duration::from_micros(c.group_commit_window_us),
            },
            FsyncPolicy::Periodic => Policy::Periodic {
                interval: Duration::from_millis(c.periodic_interval_ms),
            },
        }
    }
}

pub(super) fn run(
    mut engine: Box<dyn Engine>,
    rx: Receiver<(u64, Op)>,
    progress: Arc<Progress>,
    policy: Policy,
) {
    let mut batch: Vec<Op> = Vec::new();
    let mut unsynced = false;
    let mut last_sync = Instant::now();
    loop {
        // The first operation of the next batch.
        let first = match policy {
            Policy::Periodic { interval } if unsynced => {
                let left = interval.saturating_sub(last_sync.elapsed());
                match rx.recv_timeout(left) {
                    Ok(op) => Some(op),
                    Err(RecvTimeoutError::Timeout) => None,
                    Err(RecvTimeoutError::Disconnected) => break,
                }
            }
            _ => match rx.recv() {
                Ok(op) => Some(op),
                Err(_) => break,
            },
        };
        let Some((first_ticket, op)) = first else {
            sync(&mut *engine);
            unsynced = false;
            last_sync = Instant::now();
            continue;
        };
        batch.push(op);
        let mut last_ticket = first_ticket;
        let mut closed = false;
        if !matches!(policy, Policy::Always) {
            let deadline = match policy {
                Policy::Group { window } if !window.is_zero() => Some(Instant::now() + window),
                _ => None,
            };
            while batch.len() < MAX_BATCH {
                let next = match deadline {
                    Some(d) => match rx.recv_timeout(d.saturating_duration_since(Instant::now())) {
                        Ok(op) => Some(op),
                        Err(RecvTimeoutError::Timeout) => None,
                        Err(RecvTimeoutError::Disconnected) => {
                            closed = true;
                            None
                        }
                    },
                    None => match rx.try_recv() {
                        Ok(op) => Some(op),
                        Err(TryRecvError::Empty) => None,
                        Err(TryRecvError::Disconnected) => {
                            closed = true;
                            None
                        }
                    },
                };
                let Some((t, op)) = next else { break };
                batch.push(op);
                last_ticket = t;
            }
        }
        let synced = !matches!(policy, Policy::Periodic { .. });
        // An engine that panics fails its batch; the writer (and every waiter) goes on.
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            engine.apply(&batch, synced)
        }))
        .unwrap_or_else(|_| Err(WriteError::Failed("the storage engine panicked".to_owned())));
        if let Err(e) = &result {
            log_failure(e, batch.len());
            progress.fail(first_ticket, last_ticket, e.clone());
        }
        progress.advance(last_ticket);
        batch.clear();
        if synced {
            last_sync = Instant::now();
        } else {
            unsynced = true;
            if last_sync.elapsed() >= policy_interval(policy) {
                sync(&mut *engine);
                unsynced = false;
                last_sync = Instant::now();
            }
        }
        if closed {
            break;
        }
    }
    // Closed: everything queued has been applied; make it durable.
    if unsynced {
        sync(&mut *engine);
    }
}

fn policy_interval(p: Policy) -> Duration {
    match p {
        Policy::Periodic { interval } => interval,
        _ => Duration::ZERO,
    }
}

fn sync(engine: &mut dyn Engine) {
    if let Err(e) = engine.sync() {
        log_failure(&e, 0);
    }
}

fn log_failure(e: &WriteError, ops: usize) {
    tracing::error!(error = %e, ops, "store write failed; the affected acknowledgements are refused");
}
