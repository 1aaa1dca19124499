//! Broker-wide counters, updated with relaxed atomics on the hot path and read by the
//! `$SYS` publisher and the metrics endpoint. Knows nothing else.
//!
//! The counters every message or read passes ([`Counter`], [`PerQos`]) are sharded:
//! each thread that counts has a slot of its own, a cache line apart from the others',
//! that only it writes (a plain load and store, no locked instruction), and a read sums
//! the slots. One shared counter was a cache line that the workers took from each other
//! at every delivery: its `lock add` was 3 % of the broker's CPU in fan-out of 16 B QoS 2
//! messages to 50 subscribers, three quarters of `Conn::deliver`; a `lock add` to a
//! slot of the thread's own still cost half of that (it waits for the thread's earlier
//! stores).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crate::types::QoS;

/// One slot of a sharded counter: 128 bytes, so that no two threads' slots share a
/// cache line or the pair of lines that x86 prefetches together.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Slot<T>(T);

/// How many threads have a slot of their own: twice the CPUs (the tokio workers, one
/// per CPU, and whatever else counts), at least 4, at most 128.
fn slot_count() -> usize {
    std::thread::available_parallelism()
        .map_or(4, |n| n.get())
        .saturating_mul(2)
        .clamp(4, 128)
}

/// This thread's number, given when it first counts: the index of its slot, if it has
/// one. Numbers are never reused, so a slot has one writer for ever.
fn thread_index() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static INDEX: usize = NEXT.fetch_add(1, Ordering::Relaxed);
    }
    INDEX.with(|i| *i)
}

/// The slots of a sharded counter, and the one that threads past them share.
#[derive(Debug)]
struct Slots<T> {
    own: Box<[Slot<T>]>,
    shared: Slot<T>,
}

impl<T: Default> Default for Slots<T> {
    fn default() -> Self {
        Slots {
            own: (0..slot_count()).map(|_| Slot::default()).collect(),
            shared: Slot::default(),
        }
    }
}

impl<T> Slots<T> {
    /// Applies `add` to this thread's slot (`true`: its own, which only it writes) or
    /// to the shared one (`false`: others add to it as well).
    fn with(&self, add: impl FnOnce(&T, bool)) {
        match self.own.get(thread_index()) {
            Some(slot) => add(&slot.0, true),
            None => add(&self.shared.0, false),
        }
    }

    fn iter(&self) -> impl Iterator<Item = &T> {
        self.own.iter().chain([&self.shared]).map(|slot| &slot.0)
    }
}

/// Adds `n` to `c`; `alone` when this thread is its only writer.
fn add_to(c: &AtomicU64, n: u64, alone: bool) {
    if alone {
        c.store(c.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
    } else {
        c.fetch_add(n, Ordering::Relaxed);
    }
}

/// A counter that every worker adds to often (see the module's text).
#[derive(Debug, Default)]
pub struct Counter(Slots<AtomicU64>);

impl Counter {
    /// Adds `n`.
    pub fn add(&self, n: u64) {
        self.0.with(|c, alone| add_to(c, n, alone));
    }

    /// Adds one.
    pub fn incr(&self) {
        self.add(1);
    }

    /// The sum over the slots.
    pub fn get(&self) -> u64 {
        self.0
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .fold(0, u64::wrapping_add)
    }
}

/// One counter per QoS level, indexed by the wire value; sharded like [`Counter`].
#[derive(Debug, Default)]
pub struct PerQos(Slots<[AtomicU64; 3]>);

impl PerQos {
    /// Adds `n` to the counter of `qos`.
    pub fn add(&self, qos: QoS, n: u64) {
        self.0
            .with(|c, alone| add_to(&c[usize::from(qos.as_u8())], n, alone));
    }

    /// The counter of `qos`.
    pub fn get(&self, qos: QoS) -> u64 {
        let i = usize::from(qos.as_u8());
        self.0
            .iter()
            .map(|c| c[i].load(Ordering::Relaxed))
            .fold(0, u64::wrapping_add)
    }

    /// The sum over all QoS levels.
    pub fn total(&self) -> u64 {
        self.0
            .iter()
            .flat_map(|c| c.iter())
            .map(|c| c.load(Ordering::Relaxed))
            .fold(0, u64::wrapping_add)
    }
}

/// Counters since start.
#[derive(Debug, Default)]
pub struct Stats {
    /// Clients connected right now.
    pub clients_connected: AtomicU64,
    /// Connections accepted in total.
    pub connections_total: AtomicU64,
    /// Connections refused because a connection limit was reached.
    pub connections_refused: AtomicU64,
    /// PUBLISH packets received from clients, by their QoS.
    pub messages_received: PerQos,
    /// PUBLISH packets sent to clients (retransmissions included), by the delivery QoS.
    pub messages_sent: PerQos,
    /// Payload bytes of the PUBLISH packets received, by QoS.
    pub payload_bytes_received: PerQos,
    /// Payload bytes of the PUBLISH packets sent, by QoS.
    pub payload_bytes_sent: PerQos,
    /// Bytes read from sockets.
    pub bytes_received: Counter,
    /// Bytes written to sockets.
    pub bytes_sent: Counter,
    /// Deliveries dropped because a session's queue was full.
    pub dropped_queue_full: Counter,
    /// Deliveries dropped because the message expired before it could be sent.
    pub dropped_expired: Counter,
    /// Deliveries dropped because they exceeded the client's Maximum Packet Size.
    pub dropped_too_large: Counter,
    /// Messages refused by the broker (QoS, retain or validation refusals).
    pub messages_rejected: AtomicU64,
    /// Connections closed for a protocol violation.
    pub protocol_errors: AtomicU64,
    /// Clients the authentication chain accepted (anonymous ones included).
    pub auth_accepted: AtomicU64,
    /// Clients the authentication chain refused.
    pub auth_refused: AtomicU64,
    /// Subscriptions refused by the ACL or a plugin.
    pub denied_subscribe: AtomicU64,
    /// Publishes (and wills at connect) refused by the ACL.
    pub acl_denied_publish: AtomicU64,
    /// Deliveries withheld by a deny rule covering part of a granted filter.
    pub acl_denied_delivery: AtomicU64,
    /// Connections closed because their credentials (a JWT) expired.
    pub credentials_expired: AtomicU64,
    /// Panics the broker caught (a bug): connections it closed, background jobs that
    /// go on (see [`crate::contain`]).
    pub internal_errors: AtomicU64,
}

impl Stats {
    /// Counts one PUBLISH received from a client.
    pub fn publish_received(&self, qos: QoS, payload_bytes: usize) {
        self.messages_received.add(qos, 1);
        self.payload_bytes_received.add(qos, payload_bytes as u64);
    }

    /// Counts one PUBLISH written for a client.
    pub fn publish_sent(&self, qos: QoS, payload_bytes: usize) {
        self.messages_sent.add(qos, 1);
        self.payload_bytes_sent.add(qos, payload_bytes as u64);
    }

    /// Adds `n` to a counter.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Adds one to a counter.
    pub fn incr(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Subtracts one from a gauge.
    pub fn decr(counter: &AtomicU64) {
        counter.fetch_sub(1, Ordering::Relaxed);
    }

    /// Reads a counter.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_from_many_threads_add_up() {
        let counter = Counter::default();
        let by_qos = PerQos::default();
        std::thread::scope(|scope| {
            for t in 0..9u64 {
                let (counter, by_qos) = (&counter, &by_qos);
                scope.spawn(move || {
                    for _ in 0..1000 {
                        counter.incr();
                        by_qos.add(QoS::AtLeastOnce, t);
                    }
                    by_qos.add(QoS::ExactlyOnce, 1);
                });
            }
        });
        assert_eq!(counter.get(), 9000);
        assert_eq!(by_qos.get(QoS::AtMostOnce), 0);
        assert_eq!(by_qos.get(QoS::AtLeastOnce), 1000 * (0..9).sum::<u64>());
        assert_eq!(by_qos.get(QoS::ExactlyOnce), 9);
        assert_eq!(by_qos.total(), 36_000 + 9);
    }

    #[test]
    fn threads_past_the_own_slots_share_one_and_lose_nothing() {
        let counter = Counter::default();
        let threads = slot_count() + 8;
        std::thread::scope(|scope| {
            for _ in 0..threads {
                scope.spawn(|| {
                    for _ in 0..1000 {
                        counter.incr();
                    }
                });
            }
        });
        assert_eq!(counter.get(), 1000 * threads as u64);
    }

    #[test]
    fn each_slot_has_its_cache_lines_to_itself() {
        assert_eq!(std::mem::size_of::<Slot<AtomicU64>>(), 128);
        assert_eq!(std::mem::size_of::<Slot<[AtomicU64; 3]>>(), 128);
        let counter = Counter::default();
        let n = counter.0.own.len();
        assert!((4..=128).contains(&n), "{n} slots");
        assert_eq!(
            counter.0.own.as_ptr() as usize % 128,
            0,
            "slots are 128-byte aligned"
        );
    }
}
