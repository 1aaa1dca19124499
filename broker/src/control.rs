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

/// One connection's stop signal and deadlines.
#[derive(Debug)]
pub struct Control {
    /// A [`Stop`] once told to stop; 0 while running. The first reason wins.
    stop: AtomicU8,
    /// The task waiting in [`Control::poll_stop`].
    waker: AtomicWaker,
    /// When the last packet arrived.
    last_packet: AtomicU64,
    /// 1.5 times the keep alive; [`NEVER`] without one.
    keep_alive: Ms,
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
        let keep_alive = keep_alive.map_or(NEVER, |ka| {
            // [MQTT-3.1.2-24]: one and a half times the keep alive
            u64::try_from((ka + ka / 2).as_millis()).unwrap_or(NEVER)
        });
        Arc::new(Control {
            stop: AtomicU8::new(0),
            waker: AtomicWaker::new(),
            last_packet: AtomicU64::new(deadlines.now_ms()),
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
        let keep_alive = self
            .last_packet
            .load(Ordering::Relaxed)
            .saturating_add(self.keep_alive);
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

    /// Watches `control` from now until its connection ends.
    pub fn watch(&self, control: &Arc<Control>) {
        if let Some((at, _)) = control.deadline() {
            self.lock().entry(at).or_default().push(Arc::clone(control));
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
            // Ended (only this list holds it) or already stopping: forget it.
            if Arc::strong_count(&control) == 1 || control.stopped().is_some() {
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
                map.entry(at).or_default().push(control);
            }
        }
        stopped
    }

    /// Connections watched (for tests).
    #[cfg(test)]
    fn len(&self) -> usize {
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
        assert!(size_of::<Control>() <= 64, "{}", size_of::<Control>());
    }
}
