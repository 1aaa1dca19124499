//! Rebuilding the broker's live state from the store at start: retained messages,
//! offline persistent sessions with their subscriptions in the router, their queued
//! messages in the outbox, their in-flight messages and inbound QoS 2 packet ids, and
//! the wills that fell due while the broker was down.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::broker::Broker;
use crate::registry::{DelayedWill, StoredSession};
use crate::router::Subscriber;
use crate::session::{Session, SessionSubscription};
use crate::store::Snapshot;
use crate::store::record::{self, unix_ms_to_instant};

/// What was restored.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Restored {
    /// Retained messages.
    pub retained: usize,
    /// Persistent sessions.
    pub sessions: usize,
    /// Messages queued or in flight towards them.
    pub queued: usize,
    /// Wills published because they fell due while the broker was down.
    pub wills: usize,
}

/// Loads `snapshot` into a broker that has not started serving.
pub fn restore(broker: &Broker, snapshot: Snapshot) -> Restored {
    let now = Instant::now();
    let wall = SystemTime::now();
    let mut done = Restored::default();
    {
        let mut retained = broker.retained.write().unwrap_or_else(|e| e.into_inner());
        for m in snapshot.retained {
            retained.insert(m.topic.clone(), std::sync::Arc::new(m));
            done.retained += 1;
        }
    }
    for loaded in snapshot.sessions {
        let client = loaded.client_id;
        let r = loaded.record;
        let mut session = Session::new(client.clone(), r.expiry_interval_secs);
        session.durable.set(Some(r.generation));
        let pending = loaded.queue.iter().filter(|(_, s)| s.is_none()).count();
        let capacity = broker.config.limits.max_queued_messages.max(pending).max(1);
        let (tx, rx) = crate::router::outbox::channel(capacity);
        for s in r.subscriptions.iter().cloned() {
            // invariant: the engine decoded every subscription before loading
            let Ok((key, sub)) = s.into_subscription() else {
                continue;
            };
            let Some((group, filter)) = SessionSubscription::target(&key) else {
                continue;
            };
            broker.router.subscribe(
                &client,
                group.as_ref(),
                &filter,
                Subscriber {
                    outbox: tx.clone(),
                    options: sub.options,
                    subscription_id: sub.subscription_id,
                    durable: std::sync::Arc::clone(&session.durable),
                },
            );
            session.subscriptions.insert(key, sub);
        }
        for (delivery, state) in loaded.queue {
            done.queued += 1;
            match state {
                Some((packet_id, state)) => session.outbound.restore(packet_id, delivery, state),
                // invariant: the channel holds every pending entry (capacity above)
                None => {
                    let _ = tx.try_send(delivery);
                }
            }
        }
        session.inbound_qos2.extend(loaded.inbound_qos2);
        let expires_at = r
            .expires_at_ms()
            .map(|ms| unix_ms_to_instant(ms, now, wall));
        let delayed_will = r.delayed_will.and_then(|(m, due)| {
            let message = m.into_message(now, wall).ok()?;
            Some(DelayedWill {
                message,
                at: unix_ms_to_instant(due, now, wall),
            })
        });
        let offline_since = UNIX_EPOCH
            + std::time::Duration::from_millis(
                r.offline_since_ms.unwrap_or_else(|| record::unix_ms(wall)),
            );
        broker.registry.restore(StoredSession {
            session,
            outbox_tx: tx,
            outbox_rx: rx,
            expires_at,
            delayed_will,
            offline_since,
        });
        done.sessions += 1;
    }
    for will in snapshot.due_wills {
        broker.publish(will);
        done.wills += 1;
    }
    done
}
