//! A session's outbox: the bounded queue between the router (many senders, one per
//! subscription) and the session's connection task (the one receiver).
//!
//! Built for many quiet sessions: an outbox that never held a message holds no buffer
//! (tokio's `mpsc` allocates a 32-slot block, 1.8 KiB here, for every channel up front),
//! and a buffer that grew during a burst is given back when the receiver finds it empty.
//! One short mutex section per send and per receive; senders never wait: a full outbox
//! refuses the delivery ([`TrySendError::Full`]) and the router counts the drop.

use std::collections::VecDeque;
use std::fmt;
use std::future::poll_fn;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use crate::message::Delivery;

/// A buffer that grew beyond this many slots is released once the receiver drains it.
const KEEP_SLOTS: usize = 32;

/// Creates an outbox holding at most `capacity` deliveries (at least one).
pub fn channel(capacity: usize) -> (Outbox, OutboxRx) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            queue: VecDeque::new(),
            waker: None,
            senders: 1,
            receiver: true,
        }),
        capacity: u32::try_from(capacity.max(1)).unwrap_or(u32::MAX),
    });
    (
        Outbox {
            shared: Arc::clone(&shared),
        },
        OutboxRx { shared },
    )
}

/// Every session has one: `u32` counts keep it in the 96-byte allocation size class
/// (112 with `usize`).
struct Shared {
    state: Mutex<State>,
    capacity: u32,
}

struct State {
    queue: VecDeque<Delivery>,
    /// The receiver's waker while it waits on an empty queue.
    waker: Option<Waker>,
    senders: u32,
    receiver: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing in a critical section can panic halfway through an update.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Why a delivery was not queued; it is handed back.
#[derive(Debug)]
pub enum TrySendError {
    /// The outbox holds its capacity.
    Full(Delivery),
    /// The receiver is gone (the session ended).
    Closed(Delivery),
}

/// Why nothing was received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TryRecvError {
    /// Nothing queued now.
    Empty,
    /// Nothing queued and every sender is gone.
    Disconnected,
}

/// The sending side; cloned into every subscription of the session.
pub struct Outbox {
    shared: Arc<Shared>,
}

impl Outbox {
    /// Queues `delivery` unless the outbox is full or closed; never waits.
    pub fn try_send(&self, delivery: Delivery) -> Result<(), TrySendError> {
        let waker = {
            let mut state = self.shared.lock();
            if !state.receiver {
                return Err(TrySendError::Closed(delivery));
            }
            if state.queue.len() >= self.shared.capacity as usize {
                return Err(TrySendError::Full(delivery));
            }
            state.queue.push_back(delivery);
            state.waker.take()
        };
        // Woken outside the lock, so the receiver does not wake into a held mutex.
        if let Some(waker) = waker {
            waker.wake();
        }
        Ok(())
    }
}

impl Clone for Outbox {
    fn clone(&self) -> Self {
        self.shared.lock().senders += 1;
        Outbox {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl Drop for Outbox {
    fn drop(&mut self) {
        let waker = {
            let mut state = self.shared.lock();
            state.senders -= 1;
            if state.senders == 0 {
                state.waker.take()
            } else {
                None
            }
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl fmt::Debug for Outbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Outbox")
            .field("capacity", &self.shared.capacity)
            .finish_non_exhaustive()
    }
}

/// The receiving side, held by the session (its connection, or the registry while the
/// client is offline).
pub struct OutboxRx {
    shared: Arc<Shared>,
}

impl OutboxRx {
    /// The next delivery; `None` once the outbox is empty and every sender is gone.
    /// Cancel safe: nothing is taken from the queue unless it is returned.
    pub async fn recv(&mut self) -> Option<Delivery> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// Polls for the next delivery, registering the task's waker when there is none.
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Delivery>> {
        let mut state = self.shared.lock();
        if let Some(delivery) = state.queue.pop_front() {
            return Poll::Ready(Some(delivery));
        }
        release_burst_buffer(&mut state.queue);
        if state.senders == 0 {
            return Poll::Ready(None);
        }
        register(&mut state.waker, cx);
        Poll::Pending
    }

    /// Ready once a delivery is queued (without taking it); registers the task's waker
    /// while there is none. A closed, empty outbox stays pending: a parked connection
    /// waits for deliveries, not for the end of its senders.
    pub fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let mut state = self.shared.lock();
        if !state.queue.is_empty() {
            return Poll::Ready(());
        }
        register(&mut state.waker, cx);
        Poll::Pending
    }

    /// Drops the waker of the task that waited here: its connection ended, and the
    /// outbox may stay with an offline session for as long as that lasts. A waker kept
    /// here keeps tokio's whole task allocation (640 bytes) of the ended connection.
    pub fn forget_waker(&mut self) {
        let waker = self.shared.lock().waker.take();
        drop(waker);
    }

    /// The next delivery if one is queued.
    pub fn try_recv(&mut self) -> Result<Delivery, TryRecvError> {
        let mut state = self.shared.lock();
        if let Some(delivery) = state.queue.pop_front() {
            return Ok(delivery);
        }
        release_burst_buffer(&mut state.queue);
        if state.senders == 0 {
            Err(TryRecvError::Disconnected)
        } else {
            Err(TryRecvError::Empty)
        }
    }

    /// Deliveries queued now.
    pub fn len(&self) -> usize {
        self.shared.lock().queue.len()
    }

    /// True when nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Slots the buffer holds now (allocated, not queued), for tests.
    #[cfg(test)]
    fn allocated_slots(&self) -> usize {
        self.shared.lock().queue.capacity()
    }
}

/// Keeps the task's waker for the next send (no clone when it is already the one kept).
fn register(slot: &mut Option<Waker>, cx: &Context<'_>) {
    match slot {
        Some(waker) if waker.will_wake(cx.waker()) => {}
        slot => *slot = Some(cx.waker().clone()),
    }
}

/// An empty queue whose buffer grew during a burst gives it back.
fn release_burst_buffer(queue: &mut VecDeque<Delivery>) {
    if queue.capacity() > KEEP_SLOTS {
        *queue = VecDeque::new();
    }
}

impl Drop for OutboxRx {
    fn drop(&mut self) {
        // Senders see `Closed` from now on; what is queued goes now, not when the last
        // subscription that still points here is removed.
        let queued = {
            let mut state = self.shared.lock();
            state.receiver = false;
            std::mem::take(&mut state.queue)
        };
        drop(queued);
    }
}

impl fmt::Debug for OutboxRx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutboxRx")
            .field("capacity", &self.shared.capacity)
            .field("queued", &self.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn an_outbox_forgets_the_waker_of_an_ended_connection() {
        // An offline session keeps its outbox; a waker left in it kept the ended
        // connection's task allocation until the session expired.
        let (tx, mut rx) = channel(4);
        let waker = crate::test_waker::TrackedWaker::new();
        let w = waker.waker(None);
        assert!(rx.poll_ready(&mut Context::from_waker(&w)).is_pending());
        drop(w);
        assert_eq!(waker.kept(), 1);
        rx.forget_waker();
        assert_eq!(waker.kept(), 0);
        assert!(
            tx.try_send(delivery(1)).is_ok(),
            "still open for deliveries"
        );
        assert_eq!(rx.len(), 1);
    }

    #[test]
    fn the_shared_state_of_an_outbox_fits_the_96_byte_allocation_class() {
        // 80 bytes with `usize` counts: 96 with the Arc's counts, 112 allocated.
        let size = std::mem::size_of::<Shared>();
        assert!(size <= 72, "Shared is {size} bytes");
    }

    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use bytes::Bytes;

    use super::*;
    use crate::message::{Message, MessageProperties};
    use crate::topic::TopicName;
    use crate::types::QoS;

    fn message(topic: &str, payload: String) -> Arc<Message> {
        Arc::new(Message {
            topic: TopicName::new(topic).expect("valid topic"),
            payload: Bytes::from(payload),
            qos: QoS::AtMostOnce,
            retain: false,
            properties: MessageProperties::default(),
            expires_at: None,
            publisher: None,
        })
    }

    fn wrap(message: Arc<Message>) -> Delivery {
        Delivery {
            message,
            qos: QoS::AtMostOnce,
            retain: false,
            subscription_ids: Vec::new(),
            store_seq: None,
        }
    }

    fn delivery(n: usize) -> Delivery {
        wrap(message("t", n.to_string()))
    }

    fn payload(d: &Delivery) -> String {
        String::from_utf8(d.message.payload.to_vec()).expect("utf-8")
    }

    #[tokio::test]
    async fn poll_ready_waits_for_a_delivery_and_takes_nothing() {
        let (tx, mut rx) = channel(10);
        let waiter = tokio::spawn(async move {
            std::future::poll_fn(|cx| rx.poll_ready(cx)).await;
            // ready again at once, and the delivery is still there
            std::future::poll_fn(|cx| rx.poll_ready(cx)).await;
            rx.try_recv().map(|d| payload(&d))
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished(), "nothing queued: pending");
        tx.try_send(delivery(7)).expect("room");
        assert_eq!(waiter.await.expect("task"), Ok("7".to_owned()));
    }

    #[test]
    fn an_unused_outbox_allocates_no_buffer() {
        let (tx, rx) = channel(1000);
        assert_eq!(rx.allocated_slots(), 0);
        let _more = tx.clone();
        assert_eq!(rx.allocated_slots(), 0);
    }

    #[test]
    fn deliveries_come_out_in_order_and_a_full_outbox_refuses_the_rest() {
        let (tx, mut rx) = channel(3);
        for n in 0..3 {
            tx.try_send(delivery(n)).expect("room");
        }
        match tx.try_send(delivery(3)) {
            Err(TrySendError::Full(d)) => assert_eq!(payload(&d), "3", "handed back"),
            other => panic!("expected Full, got {other:?}"),
        }
        let got: Vec<_> = (0..3).map(|_| payload(&rx.try_recv().unwrap())).collect();
        assert_eq!(got, ["0", "1", "2"]);
        assert_eq!(rx.try_recv().unwrap_err(), TryRecvError::Empty);
        tx.try_send(delivery(4)).expect("room again after draining");
    }

    #[test]
    fn a_buffer_grown_by_a_burst_is_released_when_drained() {
        let (tx, mut rx) = channel(10_000);
        for n in 0..1000 {
            tx.try_send(delivery(n)).unwrap();
        }
        assert!(rx.allocated_slots() >= 1000);
        while rx.try_recv().is_ok() {}
        assert_eq!(rx.allocated_slots(), 0, "released once empty");
        // a small steady flow keeps its small buffer
        for n in 0..4 {
            tx.try_send(delivery(n)).unwrap();
        }
        while rx.try_recv().is_ok() {}
        assert!(rx.allocated_slots() > 0 && rx.allocated_slots() <= KEEP_SLOTS);
    }

    #[test]
    fn sending_after_the_receiver_is_gone_is_closed_and_queued_deliveries_are_freed() {
        let (tx, rx) = channel(10);
        let message = message("t", "x".into());
        tx.try_send(wrap(Arc::clone(&message))).unwrap();
        assert_eq!(Arc::strong_count(&message), 2);
        drop(rx);
        assert_eq!(Arc::strong_count(&message), 1, "freed with the receiver");
        assert!(matches!(
            tx.try_send(delivery(1)),
            Err(TrySendError::Closed(_))
        ));
    }

    #[tokio::test]
    async fn recv_waits_for_a_sender_and_ends_when_all_senders_are_gone() {
        let (tx, mut rx) = channel(10);
        let tx2 = tx.clone();
        let task = tokio::spawn(async move {
            let mut got = Vec::new();
            while let Some(d) = rx.recv().await {
                got.push(payload(&d));
            }
            got
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        tx.try_send(delivery(1)).unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        tx2.try_send(delivery(2)).unwrap();
        drop(tx);
        drop(tx2);
        let got = tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("recv ended after the last sender went")
            .unwrap();
        assert_eq!(got, ["1", "2"]);
    }

    #[test]
    fn many_senders_on_threads_lose_nothing_below_capacity() {
        const THREADS: usize = 4;
        const EACH: usize = 5000;
        let (tx, mut rx) = channel(THREADS * EACH);
        let refused = Arc::new(AtomicUsize::new(0));
        std::thread::scope(|s| {
            for t in 0..THREADS {
                let tx = tx.clone();
                let refused = Arc::clone(&refused);
                s.spawn(move || {
                    for n in 0..EACH {
                        if tx.try_send(delivery(t * EACH + n)).is_err() {
                            refused.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                });
            }
        });
        assert_eq!(refused.load(Ordering::Relaxed), 0);
        let mut seen = vec![false; THREADS * EACH];
        while let Ok(d) = rx.try_recv() {
            let n: usize = payload(&d).parse().unwrap();
            assert!(!seen[n], "{n} received twice");
            seen[n] = true;
        }
        assert!(seen.iter().all(|s| *s), "every delivery received once");
    }
}
