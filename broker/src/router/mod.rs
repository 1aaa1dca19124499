//! The subscription index and the fan-out of a message to the bounded outboxes of the
//! sessions whose subscriptions match it.
//!
//! The index sits behind one `RwLock` taken for reading on every PUBLISH and never held
//! across an `.await`: routing only does `try_send`, so a slow subscriber never blocks a
//! publisher; a full outbox drops the message for that subscriber and the drop is counted.
//! The router knows nothing about sockets, packets or packet identifiers.

pub mod tree;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use bytestring::ByteString;
use tokio::sync::mpsc;

use crate::codec::SubscriptionOptions;
use crate::message::{Delivery, Message};
use crate::topic::TopicFilter;
use crate::types::{ClientId, QoS};
use tree::SubscriptionTree;

/// The sending side of a session's outbox.
pub type Outbox = mpsc::Sender<Delivery>;

/// One subscription of one session.
#[derive(Debug, Clone)]
pub struct Subscriber {
    /// Where matching messages go.
    pub outbox: Outbox,
    /// The options from SUBSCRIBE.
    pub options: SubscriptionOptions,
    /// MQTT 5 Subscription Identifier, if any.
    pub subscription_id: Option<u32>,
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
}

/// The subscription index.
#[derive(Default)]
pub struct Router {
    index: RwLock<Index>,
}

/// Per-session aggregation of overlapping matches [MQTT-3.3.4-2], [MQTT-3.3.4-3].
struct Pending<'a> {
    client: &'a ClientId,
    outbox: &'a Outbox,
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
        index.shared.for_each(|_, _, g| shared += g.members.len());
        index.normal.len() + shared
    }

    /// True when nobody subscribes to anything.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Sends `message` to every matching session, once per session with the highest
    /// granted QoS and all matching subscription identifiers.
    pub fn route(&self, message: &Arc<Message>) -> RouteOutcome {
        let index = self.read();
        let mut pending: Vec<Pending<'_>> = Vec::new();
        index
            .normal
            .for_each_match(&message.topic, |_, client, sub| {
                // [MQTT-3.8.3-3] No Local: never back to the publisher.
                if sub.options.no_local && message.publisher.as_ref() == Some(client) {
                    return;
                }
                let qos = message.qos.min(sub.options.qos);
                match pending.iter_mut().find(|p| p.client == client) {
                    Some(p) => {
                        p.qos = p.qos.max(qos);
                        p.retain_as_published |= sub.options.retain_as_published;
                        p.subscription_ids.extend(sub.subscription_id);
                    }
                    None => pending.push(Pending {
                        client,
                        outbox: &sub.outbox,
                        qos,
                        retain_as_published: sub.options.retain_as_published,
                        subscription_ids: sub.subscription_id.into_iter().collect(),
                    }),
                }
            });
        let mut outcome = RouteOutcome::default();
        for p in pending {
            let delivery = Delivery {
                message: Arc::clone(message),
                qos: p.qos,
                // [MQTT-3.3.1-12] / [MQTT-3.3.1-13]: retain cleared unless Retain As Published.
                retain: p.retain_as_published && message.retain,
                subscription_ids: p.subscription_ids,
            };
            count(&mut outcome, p.outbox.try_send(delivery));
        }
        index.shared.for_each_match(&message.topic, |_, _, group| {
            route_shared(group, message, &mut outcome);
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

fn count(outcome: &mut RouteOutcome, result: Result<(), mpsc::error::TrySendError<Delivery>>) {
    match result {
        Ok(()) => outcome.delivered += 1,
        Err(mpsc::error::TrySendError::Full(_)) => outcome.dropped += 1,
        // The session ended between lookup and send; its subscriptions are being removed.
        Err(mpsc::error::TrySendError::Closed(_)) => {}
    }
}

/// Round-robin over the group's members, skipping members whose outbox is full or
/// closed, so each message reaches exactly one member [MQTT-4.8.2-?].
fn route_shared(group: &SharedGroup, message: &Arc<Message>, outcome: &mut RouteOutcome) {
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
        };
        match sub.outbox.try_send(delivery) {
            Ok(()) => {
                outcome.delivered += 1;
                return;
            }
            Err(mpsc::error::TrySendError::Full(_)) => full = true,
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }
    if full {
        outcome.dropped += 1;
    }
}
