//! A connection's control block: why it must stop (taken over, server shutdown, keep
//! alive, expired credentials) and the deadlines the broker watches for it.
//!
//! Shared between the connection (which waits on it), the registry (a takeover or the
//! server stopping sets it) and the broker's [`Deadlines`] (keep alive and credential
//! expiry, checked by the sweeper). It replaces a cancellation token and a timer per
//! connection: an idle connection's wait is a poll of one atomic, and a busy one does
//! not re-arm a timer on every wake-up.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::task::AtomicWaker;
use tokio::time::Instant;

/// Why a connection is told to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Stop {
    /// Another connection took the client id over [MQTT-3.1.4-3].
    TakenOver = 1,
    /// The server is shutting down.
    Shutdown = 2,
    /// No packet within 1.5 times the keep alive [MQTT-3.1.2-24].
    KeepAlive = 3,
    /// The credentials the client connected with (a JWT) expired.
    CredentialsExpired = 4,
}

impl Stop {
    fn from_u8(v: u8) -> Option<Stop> {
        match v {
            1 => Some(Stop::TakenOver),
            2 => Some(Stop::Shutdown),
            3 => Some(Stop::KeepAlive),
            4 => Some(Stop::CredentialsExpired),
            _ => None,
        }
    }
}

/// Milliseconds on the broker's clock (see [`Deadlines::now_ms`]).
type Ms = u64;

/// No deadline.
const NEVER: Ms = u64::MAX;

/// The `stop` value of a connection that ended: not a [`Stop`], and never watched again.
const ENDED: u8 = u8::MAX;

/// One connection's stop signal and deadlines.
#[derive(Debug)]
pub struct Control {
    /// A [`Stop`] once told to stop; 0 while running. The first reason wins.
    stop: AtomicU8,
    /// The task waiting in [`Control::poll_stop`].
    waker: AtomicWaker,
    /// When the last packet arrived.
    last_packet: AtomicU64,
    /// The key [`Deadlines`] filed it under; [`NEVER`] while not filed. Changed only
    /// under the deadlines' lock.
    filed: AtomicU64,
    /// 1.5 times the keep alive in milliseconds; `u32::MAX` without one (the longest,
    /// 1.5 x 65535 s, fits).
    keep_alive: u32,
    /// When the credentials expire; [`NEVER`] without.
    expires: Ms,
}

impl Control {
    /// A control block for a connection with this keep alive (`None`: no timeout) whose
    /// credentials expire at `expires`.
    pub fn new(
        deadlines: &Deadlines,
        keep_alive: Option<Duration>,
        expires: Option<Instant>,
    ) -> Arc<Control> {
        let keep_alive = keep_alive.map_or(u32::MAX, |ka| {
            // [MQTT-3.1.2-24]: one and a half times the keep alive
            u32::try_from((ka + ka / 2).as_millis()).unwrap_or(u32::MAX)
        });
        Arc::new(Control {
            stop: AtomicU8::new(0),
            waker: AtomicWaker::new(),
            last_packet: AtomicU64::new(deadlines.now_ms()),
            filed: AtomicU64::new(NEVER),
            keep_alive,
            expires: expires.map_or(NEVER, |at| deadlines.ms_of(at)),
        })
    }

    /// Tells the connection to stop for `reason` (unless it already was) and wakes it.
    pub fn stop(&self, reason: Stop) {
        let _ = self
            .stop
            .compare_exchange(0, reason as u8, Ordering::AcqRel, Ordering::Acquire);
        self.waker.wake();
    }

    /// False once told to stop or ended.
    fn running(&self) -> bool {
        self.stop.load(Ordering::Acquire) == 0
    }

    /// Why the connection was told to stop, if it was.
    pub fn stopped(&self) -> Option<Stop> {
        Stop::from_u8(self.stop.load(Ordering::Acquire))
    }

    /// Ready with the reason once the connection is told to stop.
    pub fn poll_stop(&self, cx: &mut Context<'_>) -> Poll<Stop> {
        if let Some(stop) = self.stopped() {
            return Poll::Ready(stop);
        }
        self.waker.register(cx.waker());
        // A stop between the load and the registration found no waker: look again.
        match self.stopped() {
            Some(stop) => Poll::Ready(stop),
            None => Poll::Pending,
        }
    }

    /// Records that a packet arrived at `now` (broker clock).
    pub fn touch(&self, now: Ms) {
        self.last_packet.store(now, Ordering::Relaxed);
    }

    /// The next instant this connection must be looked at, and the reason it would stop
    /// then; `None` when it has no deadline.
    fn deadline(&self) -> Option<(Ms, Stop)> {
        let keep_alive = match self.keep_alive {
            u32::MAX => NEVER,
            ka => self
                .last_packet
                .load(Ordering::Relaxed)
                .saturating_add(u64::from(ka)),
        };
        match (keep_alive, self.expires) {
            (NEVER, NEVER) => None,
            (k, e) if e <= k => Some((e, Stop::CredentialsExpired)),
            (k, _) => Some((k, Stop::KeepAlive)),
        }
    }
}

/// The deadlines of every connection that has one, by the millisecond they fall due.
///
/// A connection is filed once at connect, at its keep-alive (or credential) deadline.
/// When that comes, [`Deadlines::fire`] looks at it: a connection that heard from its
/// client since is filed again at its new deadline, a silent one is stopped. So each
/// connection costs one look per keep-alive period, not a timer reset per packet.
#[derive(Debug)]
pub struct Deadlines {
    start: Instant,
    due: Mutex<BTreeMap<Ms, Vec<Arc<Control>>>>,
}

impl Default for Deadlines {
    fn default() -> Self {
        Deadlines {
            start: Instant::now(),
            due: Mutex::new(BTreeMap::new()),
        }
    }
}

impl Deadlines {
    /// Milliseconds since the broker started.
    pub fn now_ms(&self) -> Ms {
        self.ms_of(Instant::now())
    }

    fn ms_of(&self, at: Instant) -> Ms {
        u64::try_from(at.saturating_duration_since(self.start).as_millis()).unwrap_or(NEVER)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<Ms, Vec<Arc<Control>>>> {
        self.due.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Watches `control` from now until its connection ends (see [`Deadlines::end`]).
    pub fn watch(&self, control: &Arc<Control>) {
        if let Some((at, _)) = control.deadline() {
            let mut map = self.lock();
            control.filed.store(at, Ordering::Relaxed);
            map.entry(at).or_default().push(Arc::clone(control));
        }
    }

    /// The connection of `control` ended: it is no longer watched, and the waker of its
    /// task is dropped now.
    ///
    /// Without this the list kept the block until its deadline (one and a half keep
    /// alives after the connection ended), and the block kept the task's waker, which
    /// keeps tokio's whole task allocation (640 bytes): a connection storm with a 60 s
    /// keep alive held each connection's memory for 90 s after it closed.
    pub fn end(&self, control: &Arc<Control>) {
        control.stop.store(ENDED, Ordering::Release);
        drop(control.waker.take());
        let mut map = self.lock();
        let at = control.filed.swap(NEVER, Ordering::Relaxed);
        // Not found when `fire` holds it right now: it sees `ENDED` and drops it.
        if let Some(list) = map.get_mut(&at) {
            if let Some(i) = list.iter().position(|c| Arc::ptr_eq(c, control)) {
                list.swap_remove(i);
            }
            if list.is_empty() {
                map.remove(&at);
            }
        }
    }

    /// Stops every connection whose deadline passed by `now`; returns how many.
    pub fn fire(&self, now: Ms) -> usize {
        let due = {
            let mut map = self.lock();
            let later = map.split_off(&now.saturating_add(1));
            std::mem::replace(&mut *map, later)
        };
        let mut stopped = 0;
        let mut again = Vec::new();
        for control in due.into_values().flatten() {
            // Ended (or only this list holds it) or already stopping: forget it.
            if Arc::strong_count(&control) == 1 || !control.running() {
                control.filed.store(NEVER, Ordering::Relaxed);
                continue;
            }
            match control.deadline() {
                Some((at, reason)) if at <= now => {
                    control.stop(reason);
                    stopped += 1;
                }
                Some((at, _)) => again.push((at, control)),
                None => {}
            }
        }
        if !again.is_empty() {
            let mut map = self.lock();
            for (at, control) in again {
                // Ended since it was looked at above: `end` found nothing to remove.
                if !control.running() {
                    control.filed.store(NEVER, Ordering::Relaxed);
                    continue;
                }
                control.filed.store(at, Ordering::Relaxed);
                map.entry(at).or_default().push(control);
            }
        }
        stopped
    }

    /// Connections watched (for tests).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().values().map(Vec::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::poll_fn;

    fn secs(s: u64) -> Option<Duration> {
        Some(Duration::from_secs(s))
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_connection_is_stopped_after_one_and_a_half_keep_alives() {
        // [MQTT-3.1.2-24]
        let d = Deadlines::default();
        let c = Control::new(&d, secs(2), None);
        d.watch(&c);
        assert_eq!(d.fire(d.now_ms() + 2999), 0, "not before 1.5 x 2 s");
        assert_eq!(c.stopped(), None);
        assert_eq!(d.fire(d.now_ms() + 3000), 1);
        assert_eq!(c.stopped(), Some(Stop::KeepAlive));
        assert_eq!(d.len(), 0, "a stopped connection is not watched any more");
    }

    #[tokio::test(start_paused = true)]
    async fn a_packet_moves_the_deadline() {
        let d = Deadlines::default();
        let c = Control::new(&d, secs(2), None);
        d.watch(&c);
        tokio::time::advance(Duration::from_millis(2500)).await;
        c.touch(d.now_ms());
        assert_eq!(
            d.fire(d.now_ms() + 500),
            0,
            "heard from 0.5 s before the deadline"
        );
        assert_eq!(c.stopped(), None);
        assert_eq!(d.len(), 1, "filed again at its new deadline");
        tokio::time::advance(Duration::from_millis(3000)).await;
        assert_eq!(d.fire(d.now_ms()), 1);
        assert_eq!(c.stopped(), Some(Stop::KeepAlive));
    }

    #[tokio::test(start_paused = true)]
    async fn expiring_credentials_stop_the_connection_even_without_keep_alive() {
        let d = Deadlines::default();
        let c = Control::new(&d, None, Some(Instant::now() + Duration::from_secs(5)));
        d.watch(&c);
        assert_eq!(d.fire(d.now_ms() + 4999), 0);
        assert_eq!(d.fire(d.now_ms() + 5000), 1);
        assert_eq!(c.stopped(), Some(Stop::CredentialsExpired));
    }

    #[tokio::test(start_paused = true)]
    async fn keep_alive_zero_is_never_watched_and_ended_connections_are_dropped() {
        // 3.1.2.10: keep alive 0 turns the mechanism off
        let d = Deadlines::default();
        let c = Control::new(&d, None, None);
        d.watch(&c);
        assert_eq!(d.len(), 0);
        let gone = Control::new(&d, secs(1), None);
        d.watch(&gone);
        drop(gone);
        assert_eq!(d.fire(d.now_ms() + 10_000), 0, "its connection ended");
        assert_eq!(d.len(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn an_ended_connection_is_forgotten_at_once_and_its_waker_dropped() {
        // Before `end`, the block stayed filed until its deadline and kept the waker,
        // which keeps the ended task's memory.
        let d = Deadlines::default();
        let stay = Control::new(&d, secs(60), None);
        let c = Control::new(&d, secs(60), None);
        d.watch(&stay);
        d.watch(&c);
        let waker = crate::test_waker::TrackedWaker::new();
        let w = waker.waker(None);
        assert!(c.poll_stop(&mut Context::from_waker(&w)).is_pending());
        drop(w);
        assert_eq!(waker.kept(), 1);
        d.end(&c);
        assert_eq!(waker.kept(), 0, "the waker is dropped");
        assert_eq!(d.len(), 1, "only the other connection is watched");
        assert_eq!(Arc::strong_count(&c), 1, "the list let go of it");
        assert_eq!(c.stopped(), None, "ended is not a reason to stop");
        c.stop(Stop::Shutdown);
        assert_eq!(
            c.stopped(),
            None,
            "an ended connection is not stopped again"
        );
        d.end(&c);
        assert_eq!(d.len(), 1, "ending twice does nothing");
        tokio::time::advance(Duration::from_secs(100)).await;
        assert_eq!(d.fire(d.now_ms()), 1, "the other one is still watched");
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_that_ended_is_not_filed_again() {
        // `fire` looks at a block that is still running and files it again; one that
        // ended in between (its `end` found nothing to remove) is let go.
        let d = Deadlines::default();
        let c = Control::new(&d, secs(2), None);
        d.watch(&c);
        tokio::time::advance(Duration::from_millis(2500)).await;
        c.touch(d.now_ms());
        assert_eq!(d.fire(d.now_ms() + 500), 0);
        assert_eq!(d.len(), 1, "heard from: filed again");
        let at = c.filed.load(Ordering::Relaxed);
        assert_ne!(at, NEVER);
        // What `end` does while `fire` holds the block outside the map.
        let held = d.lock().remove(&at).unwrap_or_default();
        d.end(&c);
        d.lock().insert(at, held);
        assert_eq!(d.fire(at), 0, "not stopped: it ended");
        assert_eq!(d.len(), 0, "and not filed again");
        assert_eq!(Arc::strong_count(&c), 1);
    }

    #[tokio::test]
    async fn the_first_reason_wins_and_wakes_the_waiter() {
        let d = Deadlines::default();
        let c = Control::new(&d, None, None);
        let waiter = {
            let c = Arc::clone(&c);
            tokio::spawn(async move { poll_fn(|cx| c.poll_stop(cx)).await })
        };
        tokio::task::yield_now().await;
        c.stop(Stop::TakenOver);
        c.stop(Stop::Shutdown);
        assert_eq!(waiter.await.unwrap(), Stop::TakenOver);
        assert_eq!(c.stopped(), Some(Stop::TakenOver));
    }

    #[test]
    fn a_control_block_is_small() {
        // one per connection, in place of a cancellation token (112 bytes) and a timer
        // 56 bytes: with the Arc's counts, the 80-byte allocation class
        assert!(size_of::<Control>() <= 56, "{}", size_of::<Control>());
    }
}
