//! The sandbox limits of one store: a memory cap (a `ResourceLimiter`) and the call
//! deadline checked on every epoch tick.
//!
//! Going past the memory cap traps the call instead of letting `memory.grow` return -1,
//! so a hog stops at once and is reported as such. The deadline is wall-clock time: the
//! engine's ticker bumps the epoch every [`super::engine::EPOCH_TICK`], and on each tick
//! a running call either yields to tokio (so a spinning plugin never starves other
//! tasks, even on a current-thread runtime) or, once past its deadline, traps.

use std::time::Instant;

use wasmtime::{ResourceLimiter, UpdateDeadline};

/// Most table elements one store may hold (function references).
const MAX_TABLE_ELEMENTS: usize = 100_000;
/// Most instances, memories and tables: a plugin component has a handful.
const MAX_INSTANCES: usize = 64;
const MAX_MEMORIES: usize = 16;
const MAX_TABLES: usize = 64;

/// Caps the total linear memory of one store.
#[derive(Debug)]
pub(super) struct MemoryLimiter {
    max_bytes: usize,
    used: usize,
    /// Set when a growth was refused: the call failed on its memory cap.
    pub(super) exceeded: bool,
}

impl MemoryLimiter {
    pub(super) fn new(max_bytes: usize) -> Self {
        Self {
            max_bytes,
            used: 0,
            exceeded: false,
        }
    }
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let growth = desired.saturating_sub(current);
        let total = self.used.saturating_add(growth);
        if total > self.max_bytes {
            self.exceeded = true;
            wasmtime::bail!(
                "linear memory would grow to {total} bytes, over the cap of {} bytes",
                self.max_bytes
            );
        }
        self.used = total;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }

    fn instances(&self) -> usize {
        MAX_INSTANCES
    }

    fn memories(&self) -> usize {
        MAX_MEMORIES
    }

    fn tables(&self) -> usize {
        MAX_TABLES
    }
}

/// The deadline of the call in progress, checked on every epoch tick.
#[derive(Debug, Default)]
pub(super) struct Deadline {
    at: Option<Instant>,
    /// Set when the tick found the call past its deadline.
    pub(super) hit: bool,
}

impl Deadline {
    /// Arms the deadline for the next call.
    pub(super) fn arm(&mut self, at: Instant) {
        self.at = Some(at);
        self.hit = false;
    }

    /// Called on each epoch tick while wasm runs: yield, or trap once past the deadline.
    pub(super) fn on_tick(&mut self) -> wasmtime::Result<UpdateDeadline> {
        match self.at {
            // `yield_now` defers the wake-up until tokio has run the other ready tasks
            // and polled its I/O driver, so a busy plugin goes to the back of the line.
            Some(at) if Instant::now() < at => Ok(UpdateDeadline::YieldCustom(
                1,
                Box::pin(tokio::task::yield_now()),
            )),
            _ => {
                self.hit = true;
                wasmtime::bail!("deadline exceeded")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::time::Duration;

    use super::*;

    #[test]
    fn memory_cap_counts_total_growth_and_flags_the_refusal() {
        let mut limiter = MemoryLimiter::new(100);
        assert!(limiter.memory_growing(0, 60, None).unwrap());
        assert!(limiter.memory_growing(60, 100, None).unwrap());
        assert!(limiter.memory_growing(100, 101, None).is_err());
        assert!(limiter.exceeded);
    }

    #[test]
    fn deadline_yields_before_and_traps_after() {
        let mut deadline = Deadline::default();
        assert!(deadline.on_tick().is_err(), "an unarmed deadline traps");
        deadline.arm(Instant::now() + Duration::from_secs(60));
        assert!(matches!(
            deadline.on_tick(),
            Ok(UpdateDeadline::YieldCustom(1, _))
        ));
        assert!(!deadline.hit);
        deadline.arm(Instant::now());
        assert!(deadline.on_tick().is_err());
        assert!(deadline.hit);
    }
}
