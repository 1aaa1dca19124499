//! Which sessions exist, which are online, and the hand-over of a session from one
//! connection to the next (reconnect and takeover of a live client id [MQTT-3.1.4-3]).
//!
//! One `std::sync::Mutex` guards the map and is never held across an `.await`. A live
//! session belongs to its connection task; an offline one is stored here together with
//! its outbox, which keeps queueing messages (bounded) while the client is away.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use std::sync::Arc;

use tokio::sync::oneshot;

use crate::control::{Control, Stop};

use crate::message::Message;
use crate::router::Outbox;
use crate::session::Session;
use crate::small_map::shrink_when_sparse;
use crate::store::Op;
use crate::store::record::{self, MessageRecord, SessionRecord};
use crate::types::ClientId;

/// A session that is not attached to a connection.
#[derive(Debug)]
pub struct StoredSession {
    /// The session state.
    pub session: Session,
    /// The outbox sender the router holds for this session's subscriptions.
    pub outbox_tx: Outbox,
    /// The outbox receiver: messages queued while offline.
    pub outbox_rx: crate::router::OutboxRx,
    /// When the session expires; `None` never.
    pub expires_at: Option<Instant>,
    /// A will waiting for its Will Delay Interval [MQTT-3.1.3-9].
    pub delayed_will: Option<DelayedWill>,
    /// When the client went away (wall clock, for the store).
    pub offline_since: std::time::SystemTime,
}

impl StoredSession {
    /// The store record of this offline session.
    pub fn record(&self) -> SessionRecord {
        let now = Instant::now();
        let wall = std::time::SystemTime::now();
        let will = self.delayed_will.as_ref().map(|w| {
            (
                MessageRecord::from_message(&w.message, now, wall),
                record::instant_to_unix_ms(w.at, now, wall),
            )
        });
        SessionRecord::of(
            &self.session,
            Some(record::unix_ms(self.offline_since)),
            will,
        )
    }
}

/// A will message to publish at `at` unless the session is resumed first.
#[derive(Debug)]
pub struct DelayedWill {
    /// The will.
    pub message: Message,
    /// When to publish it.
    pub at: Instant,
}

#[derive(Debug)]
enum Slot {
    Online {
        conn_id: u64,
        /// Stops the connection (takeover, server shutdown).
        control: Arc<Control>,
        /// The previous owner's connection id and where it must hand its session over.
        /// Boxed: only a takeover in progress has one, and the slot sits in every
        /// client's table entry.
        handoff: Option<Box<(u64, oneshot::Sender<StoredSession>)>>,
    },
    Offline(Box<StoredSession>),
}

/// Result of claiming a client id for a new connection.
#[derive(Debug)]
pub enum Claim {
    /// No session existed.
    Fresh,
    /// An offline session was taken over.
    Resumed(Box<StoredSession>),
    /// A live connection owns the session; it was told to stop and will hand over.
    TakingOver(oneshot::Receiver<StoredSession>),
}

/// What happened when a connection gave its session back.
#[derive(Debug)]
pub enum Released {
    /// Stored offline.
    Stored,
    /// Handed to the connection that took over.
    HandedOver,
    /// Nothing stored (the session ended, or the slot belonged to someone else).
    Dropped(Option<Box<StoredSession>>),
}

/// The session registry.
#[derive(Debug, Default)]
pub struct Registry {
    slots: Mutex<HashMap<ClientId, Slot>>,
}

impl Registry {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ClientId, Slot>> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes `conn_id` the owner of `client`'s session.
    pub fn claim(&self, client: &ClientId, conn_id: u64, control: Arc<Control>) -> Claim {
        let mut slots = self.lock();
        let (tx, rx) = oneshot::channel();
        let new = Slot::Online {
            conn_id,
            control,
            handoff: None,
        };
        match slots.insert(client.clone(), new) {
            None => Claim::Fresh,
            Some(Slot::Offline(stored)) => Claim::Resumed(stored),
            Some(Slot::Online {
                conn_id: old,
                control: old_control,
                ..
            }) => {
                old_control.stop(Stop::TakenOver);
                if let Some(Slot::Online { handoff, .. }) = slots.get_mut(client) {
                    *handoff = Some(Box::new((old, tx)));
                }
                Claim::TakingOver(rx)
            }
        }
    }

    /// Gives the session back when connection `conn_id` ends. `stored` is `None` when the
    /// session ends with the connection.
    pub fn release(
        &self,
        client: &ClientId,
        conn_id: u64,
        stored: Option<StoredSession>,
    ) -> Released {
        let mut slots = self.lock();
        match slots.get_mut(client) {
            Some(Slot::Online { conn_id: owner, .. }) if *owner == conn_id => match stored {
                Some(s) => {
                    slots.insert(client.clone(), Slot::Offline(Box::new(s)));
                    Released::Stored
                }
                None => {
                    slots.remove(client);
                    shrink_when_sparse(&mut slots);
                    Released::Dropped(None)
                }
            },
            Some(Slot::Online { handoff, .. })
                if handoff.as_ref().is_some_and(|pair| pair.0 == conn_id) =>
            {
                let Some(pair) = handoff.take() else {
                    return Released::Dropped(stored.map(Box::new));
                };
                let (_, tx) = *pair;
                match stored {
                    Some(s) => match tx.send(s) {
                        Ok(()) => Released::HandedOver,
                        Err(s) => Released::Dropped(Some(Box::new(s))),
                    },
                    None => Released::Dropped(None),
                }
            }
            _ => Released::Dropped(stored.map(Box::new)),
        }
    }

    /// Removes offline sessions whose expiry passed and collects delayed wills that are
    /// due: (expired sessions, wills, sessions still alive whose will went out).
    pub fn sweep(&self, now: Instant) -> (Vec<StoredSession>, Vec<Message>, Vec<ClientId>) {
        let mut slots = self.lock();
        let mut expired = Vec::new();
        let mut wills = Vec::new();
        let mut fired = Vec::new();
        let ended: Vec<_> = slots
            .extract_if(|client, slot| {
                let Slot::Offline(stored) = slot else {
                    return false;
                };
                if stored.delayed_will.as_ref().is_some_and(|w| w.at <= now)
                    && let Some(w) = stored.delayed_will.take()
                {
                    wills.push(w.message);
                    fired.push(client.clone());
                }
                stored.expires_at.is_some_and(|at| at <= now)
            })
            .collect();
        shrink_when_sparse(&mut slots);
        for (_, slot) in ended {
            let Slot::Offline(s) = slot else { continue };
            let mut s = *s;
            // the session ends: a will still waiting goes out now [MQTT-3.1.2-8]
            if let Some(w) = s.delayed_will.take() {
                wills.push(w.message);
            }
            expired.push(s);
        }
        (expired, wills, fired)
    }

    /// The store's `SessionPut` for `client` when it is offline and durable.
    pub fn offline_record(&self, client: &ClientId) -> Option<Op> {
        let slots = self.lock();
        let Some(Slot::Offline(stored)) = slots.get(client) else {
            return None;
        };
        stored.session.durable.generation()?;
        Some(Op::SessionPut(client.clone(), Box::new(stored.record())))
    }

    /// Adds an offline session read back from the store (at start, before serving).
    pub fn restore(&self, stored: StoredSession) {
        let client = stored.session.client_id.clone();
        self.lock().insert(client, Slot::Offline(Box::new(stored)));
    }

    /// Tells every live connection to stop for `reason` (the server shutting down).
    pub fn stop_all(&self, reason: Stop) {
        for slot in self.lock().values() {
            if let Slot::Online { control, .. } = slot {
                control.stop(reason);
            }
        }
    }

    /// Sessions known (online and offline).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// True when no session exists.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Offline sessions.
    pub fn offline(&self) -> usize {
        self.lock()
            .values()
            .filter(|s| matches!(s, Slot::Offline(_)))
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bug this guards against: after a burst of clients the table kept its
    /// buckets (about 60 bytes per client that had been connected).
    #[test]
    fn the_table_gives_its_buckets_back_when_clients_leave() {
        let registry = Registry::default();
        let deadlines = crate::control::Deadlines::default();
        let clients: Vec<ClientId> = (0..2000).map(|i| ClientId::new(format!("c{i}"))).collect();
        for (i, c) in clients.iter().enumerate() {
            let control = Control::new(&deadlines, None, None);
            assert!(matches!(registry.claim(c, i as u64, control), Claim::Fresh));
        }
        let grown = registry.lock().capacity();
        for (i, c) in clients.iter().enumerate().skip(10) {
            assert!(matches!(
                registry.release(c, i as u64, None),
                Released::Dropped(None)
            ));
        }
        assert_eq!(registry.len(), 10);
        assert!(registry.lock().capacity() < grown / 16);
    }

    /// A slot is in every client's table entry, beside its 32-byte client id.
    #[test]
    fn a_slot_is_three_words() {
        assert!(size_of::<Slot>() <= 24, "{}", size_of::<Slot>());
    }
}
