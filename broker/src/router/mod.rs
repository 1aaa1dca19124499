//! The subscription index and the fan-out of a message to the bounded outboxes of the
//! sessions whose subscriptions match it.
//!
//! The index sits behind one `RwLock` taken for reading on every PUBLISH and never held
//! across an `.await`: routing only does `try_send`, so a slow subscriber never blocks a
//! publisher; a full outbox drops the message for that subscriber and the drop is counted.
//! The router knows nothing about sockets, packets or packet identifiers.

pub mod outbox;
pub mod tree;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use bytestring::ByteString;

use crate::codec::SubscriptionOptions;
use crate::message::{Delivery, Message};
use crate::session::Durable;
use crate::small_map::SmallMap;
use crate::store::{Op, Store, Ticket};
use crate::topic::TopicFilter;
use crate::types::{ClientId, QoS};
use tree::SubscriptionTree;

pub use outbox::{Outbox, OutboxRx};

/// One subscription of one session.
#[derive(Debug, Clone)]
pub struct Subscriber {
    /// Where matching messages go.
    pub outbox: Outbox,
    /// The options from SUBSCRIBE.
    pub options: SubscriptionOptions,
    /// MQTT 5 Subscription Identifier, if any.
    pub subscription_id: Option<u32>,
    /// The session's store state: QoS 1 and 2 deliveries to a durable session are
    /// queued in the store before they enter the outbox.
    pub durable: Arc<Durable>,
}

/// A shared subscription group (`$share/{group}/{filter}`) [MQTT-4.8.2].
#[derive(Debug, Default)]
pub struct SharedGroup {
    members: Vec<(ClientId, Subscriber)>,
    next: AtomicUsize,
}

#[derive(Default)]
struct Index {
    normal: SubscriptionTree<ClientId, Subscriber>,
    shared: SubscriptionTree<ByteString, SharedGroup>,
}

/// What became of one routed message.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RouteOutcome {
    /// Deliveries queued in an outbox.
    pub delivered: usize,
    /// Deliveries dropped because an outbox was full.
    pub dropped: usize,
    /// What to wait for before the message counts as stored for every durable session
    /// it reached.
    pub ticket: Ticket,
}

/// The subscription index.
#[derive(Default)]
pub struct Router {
    index: RwLock<Index>,
}

/// Up to this many deliveries collected from earlier filters, a client's own is found by a
/// scan; above it, through a map.
const SCAN_MAX: usize = 16;

/// Per-session aggregation of overlapping matches [MQTT-3.3.4-2], [MQTT-3.3.4-3].
struct Pending<'a> {
    client: &'a ClientId,
    outbox: &'a Outbox,
    durable: &'a Durable,
    qos: QoS,
    retain_as_published: bool,
    subscription_ids: Vec<u32>,
}

impl Router {
    /// Adds or replaces the subscription of `client` to `filter` [MQTT-3.8.4-3]; returns
    /// true when it replaced an existing one.
    pub fn subscribe(
        &self,
        client: &ClientId,
        share_group: Option<&ByteString>,
        filter: &TopicFilter,
        subscriber: Subscriber,
    ) -> bool {
        let mut index = self.write();
        match share_group {
            None => index
                .normal
                .insert(filter, client.clone(), subscriber)
                .is_some(),
            Some(group) => {
                if let Some(existing) = index.shared.get_mut(filter, group) {
                    if let Some(slot) = existing.members.iter_mut().find(|(c, _)| c == client) {
                        slot.1 = subscriber;
                        return true;
                    }
                    existing.members.push((client.clone(), subscriber));
                    return false;
                }
                let shared = SharedGroup {
                    members: vec![(client.clone(), subscriber)],
                    next: AtomicUsize::new(0),
                };
                index.shared.insert(filter, group.clone(), shared);
                false
            }
        }
    }

    /// Removes a subscription; true when it existed.
    pub fn unsubscribe(
        &self,
        client: &ClientId,
        share_group: Option<&ByteString>,
        filter: &TopicFilter,
    ) -> bool {
        let mut index = self.write();
        match share_group {
            None => index.normal.remove(filter, client).is_some(),
            Some(group) => {
                let Some(existing) = index.shared.get_mut(filter, group) else {
                    return false;
                };
                let before = existing.members.len();
                existing.members.retain(|(c, _)| c != client);
                let removed = existing.members.len() != before;
                if existing.members.is_empty() {
                    index.shared.remove(filter, group);
                }
                removed
            }
        }
    }

    /// Number of subscriptions (shared members count once each).
    pub fn len(&self) -> usize {
        let index = self.read();
        let mut shared = 0;
        index.shared.for_each(|_, g| shared += g.members.len());
        index.normal.len() + shared
    }

    /// True when nobody subscribes to anything.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Sends `message` to every matching session, once per session with the highest
    /// granted QoS and all matching subscription identifiers.
    pub fn route(&self, message: &Arc<Message>, store: &Store) -> RouteOutcome {
        let index = self.read();
        let mut pending: Vec<Pending<'_>> = Vec::new();
        // Where each client's delivery is in `pending`, once earlier filters collected
        // more than `SCAN_MAX` deliveries.
        let mut positions: Option<HashMap<&ClientId, usize>> = None;
        index
            .normal
            .for_each_matching_filter(&message.topic, |entries| {
                merge_filter(&mut pending, &mut positions, entries, message);
            });
        let mut outcome = RouteOutcome::default();
        // The message's id in the store, taken by its first durable delivery.
        let mut message_id = None;
        for p in pending {
            let delivery = Delivery {
                message: Arc::clone(message),
                qos: p.qos,
                // [MQTT-3.3.1-12] / [MQTT-3.3.1-13]: retain cleared unless Retain As Published.
                retain: p.retain_as_published && message.retain,
                subscription_ids: p.subscription_ids,
                store_seq: None,
            };
            send(
                &mut outcome,
                store,
                &mut message_id,
                p.client,
                p.durable,
                p.outbox,
                delivery,
            );
        }
        index.shared.for_each_match(&message.topic, |_, group| {
            route_shared(group, message, store, &mut message_id, &mut outcome);
        });
        outcome
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Index> {
        // A panic while holding the lock cannot leave the index half-updated in a way
        // that matters more than stopping the broker would; keep serving.
        self.index.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Index> {
        self.index.write().unwrap_or_else(|e| e.into_inner())
    }
}

/// Adds the deliveries of one matching filter's `entries` to `pending`, merging a client
/// that an earlier filter matched too into its delivery: the highest QoS, every
/// subscription identifier.
///
/// A client appears once per filter, so only the deliveries of the filters before this
/// one can be its own. (Looking through all of them for every subscriber made fan-out to
/// N clients of one filter cost N^2 / 2 comparisons of client ids per message.)
fn merge_filter<'s>(
    pending: &mut Vec<Pending<'s>>,
    positions: &mut Option<HashMap<&'s ClientId, usize>>,
    entries: &'s SmallMap<ClientId, Subscriber>,
    message: &Message,
) {
    let earlier = pending.len();
    if earlier > SCAN_MAX && positions.is_none() {
        *positions = Some(
            pending
                .iter()
                .enumerate()
                .map(|(i, p)| (p.client, i))
                .collect(),
        );
    }
    for (client, sub) in entries {
        // [MQTT-3.8.3-3] No Local: never back to the publisher.
        if sub.options.no_local && message.publisher.as_ref() == Some(client) {
            continue;
        }
        let qos = message.qos.min(sub.options.qos);
        let found = match positions {
            _ if earlier == 0 => None,
            Some(positions) => positions.get(client).copied(),
            None => pending[..earlier].iter().position(|p| p.client == client),
        };
        if let Some(i) = found {
            let p = &mut pending[i];
            p.qos = p.qos.max(qos);
            p.retain_as_published |= sub.options.retain_as_published;
            p.subscription_ids.extend(sub.subscription_id);
            continue;
        }
        if let Some(positions) = positions {
            positions.insert(client, pending.len());
        }
        pending.push(Pending {
            client,
            outbox: &sub.outbox,
            durable: &sub.durable,
            qos,
            retain_as_published: sub.options.retain_as_published,
            subscription_ids: sub.subscription_id.into_iter().collect(),
        });
    }
}

/// Queues a delivery in the store first when it goes to a durable session at QoS 1 or
/// 2 (so that the store sees it before the subscriber can acknowledge it), then offers
/// it to the outbox; a refused delivery leaves the store again. True when delivered.
fn send(
    outcome: &mut RouteOutcome,
    store: &Store,
    message_id: &mut Option<u64>,
    client: &ClientId,
    durable: &Durable,
    outbox: &Outbox,
    mut delivery: Delivery,
) -> bool {
    let generation = durable
        .generation()
        .filter(|_| delivery.qos != QoS::AtMostOnce && store.is_durable());
    let mut ticket = Ticket::NONE;
    if let Some(generation) = generation {
        let seq = store.next_seq();
        delivery.store_seq = Some(seq);
        ticket = store.submit(Op::Enqueue {
            client: client.clone(),
            generation,
            seq,
            message_id: *message_id.get_or_insert_with(|| store.next_seq()),
            delivery: delivery.clone(),
        });
    }
    let seq = delivery.store_seq;
    let result = outbox.try_send(delivery);
    if result.is_err()
        && let Some(seq) = seq
    {
        store.submit(Op::Dequeue {
            client: client.clone(),
            seq,
        });
    }
    match result {
        Ok(()) => {
            outcome.delivered += 1;
            outcome.ticket = outcome.ticket.max(ticket);
            true
        }
        Err(outbox::TrySendError::Full(_)) => {
            outcome.dropped += 1;
            false
        }
        // The session ended between lookup and send; its subscriptions are being removed.
        Err(outbox::TrySendError::Closed(_)) => false,
    }
}

/// Round-robin over the group's members, skipping members whose outbox is full or
/// closed, so each message reaches exactly one member (MQTT 5.0 §4.8.2).
fn route_shared(
    group: &SharedGroup,
    message: &Arc<Message>,
    store: &Store,
    message_id: &mut Option<u64>,
    outcome: &mut RouteOutcome,
) {
    let n = group.members.len();
    if n == 0 {
        return;
    }
    let start = group.next.fetch_add(1, Ordering::Relaxed);
    let mut full = false;
    for i in 0..n {
        let (client, sub) = &group.members[(start + i) % n];
        if sub.options.no_local && message.publisher.as_ref() == Some(client) {
            continue;
        }
        let delivery = Delivery {
            message: Arc::clone(message),
            qos: message.qos.min(sub.options.qos),
            retain: sub.options.retain_as_published && message.retain,
            subscription_ids: sub.subscription_id.into_iter().collect(),
            store_seq: None,
        };
        let mut attempt = RouteOutcome::default();
        if send(
            &mut attempt,
            store,
            message_id,
            client,
            &sub.durable,
            &sub.outbox,
            delivery,
        ) {
            outcome.delivered += 1;
            outcome.ticket = outcome.ticket.max(attempt.ticket);
            return;
        }
        full |= attempt.dropped > 0;
    }
    if full {
        outcome.dropped += 1;
    }
}

#[cfg(test)]
mod tests;
