//! Routing to overlapping subscriptions: one delivery per session, at the highest
//! granted QoS, with every matching subscription identifier [MQTT-3.3.4-2],
//! [MQTT-3.3.4-3], whether a client's earlier match is found by a scan or a map.

use std::sync::Arc;

use super::outbox::{self, OutboxRx};
use super::{Router, SCAN_MAX, Subscriber};
use crate::codec::SubscriptionOptions;
use crate::message::{Delivery, Message, MessageProperties};
use crate::session::Durable;
use crate::store::Store;
use crate::topic::{TopicFilter, TopicName};
use crate::types::{ClientId, QoS};

/// Subscribes `client` to `filter` at `qos` with subscription identifier `id`.
fn subscribe(router: &Router, client: &str, filter: &str, qos: QoS, id: u32) -> OutboxRx {
    let (outbox, rx) = outbox::channel(16);
    router.subscribe(
        &ClientId::new(client.to_owned()),
        None,
        &TopicFilter::new(filter).unwrap(),
        Subscriber {
            outbox,
            options: SubscriptionOptions {
                qos,
                ..SubscriptionOptions::default()
            },
            subscription_id: Some(id),
            durable: Arc::new(Durable::default()),
        },
    );
    rx
}

fn message(topic: &str) -> Arc<Message> {
    Arc::new(Message {
        topic: TopicName::new(topic).unwrap(),
        payload: bytes::Bytes::from_static(b"x"),
        qos: QoS::ExactlyOnce,
        retain: false,
        properties: MessageProperties::default(),
        expires_at: None,
        publisher: None,
    })
}

/// Everything in the outbox.
fn drain(rx: &mut OutboxRx) -> Vec<Delivery> {
    std::iter::from_fn(|| rx.try_recv().ok()).collect()
}

/// The outbox holds one delivery, at `qos`, with subscription identifier `id` alone.
fn assert_one(rx: &mut OutboxRx, qos: QoS, id: u32) {
    let got = drain(rx);
    assert_eq!(got.len(), 1);
    assert_eq!((got[0].qos, &got[0].subscription_ids[..]), (qos, &[id][..]));
}

/// `clients` clients, each on `a/#` (QoS 0, id 1), `a/+` (QoS 1, id 2) and `a/b`
/// (QoS 2, id 3) (in the tree's order of filters, whichever that is), and as many
/// others on `a/+` alone: every one gets one delivery of a message to `a/b`.
fn overlapping(clients: usize) {
    let router = Router::default();
    let mut all = Vec::new();
    for i in 0..clients {
        let name = format!("c{i}");
        all.push((subscribe(&router, &name, "a/#", QoS::AtMostOnce, 1), 3));
        // The later subscriptions of the same client replace nothing (other filters) and
        // share its outbox in a real session; here each has its own, so read all three.
        let b = subscribe(&router, &name, "a/+", QoS::AtLeastOnce, 2);
        let c = subscribe(&router, &name, "a/b", QoS::ExactlyOnce, 3);
        all.push((b, 3));
        all.push((c, 3));
    }
    let mut alone = Vec::new();
    for i in 0..clients {
        alone.push(subscribe(
            &router,
            &format!("alone{i}"),
            "a/+",
            QoS::AtLeastOnce,
            2,
        ));
    }
    let outcome = router.route(&message("a/b"), &Store::memory());
    assert_eq!(outcome.delivered, 2 * clients, "one delivery per client");

    // A client's one delivery went to the outbox of its first matching filter.
    let mut got = Vec::new();
    for (rx, _) in &mut all {
        got.extend(drain(rx));
    }
    assert_eq!(got.len(), clients);
    for d in &got {
        assert_eq!(d.qos, QoS::ExactlyOnce, "the highest granted QoS");
        let mut ids = d.subscription_ids.clone();
        ids.sort_unstable();
        assert_eq!(ids, [1, 2, 3], "every matching subscription identifier");
    }
    for rx in &mut alone {
        assert_one(rx, QoS::AtLeastOnce, 2);
    }
}

#[test]
fn overlapping_filters_of_a_few_clients_deliver_once_each() {
    // Earlier filters collect at most SCAN_MAX deliveries: found by a scan.
    overlapping(SCAN_MAX / 2 - 1);
}

#[test]
fn overlapping_filters_of_many_clients_deliver_once_each() {
    // Earlier filters collect more than SCAN_MAX: found through the map, which the
    // third filter also reads.
    overlapping(4 * SCAN_MAX);
}

#[test]
fn one_filter_of_many_clients_delivers_once_each() {
    let router = Router::default();
    let mut rxs: Vec<OutboxRx> = (0..200)
        .map(|i| subscribe(&router, &format!("s{i}"), "t/#", QoS::AtLeastOnce, 7))
        .collect();
    let outcome = router.route(&message("t/x"), &Store::memory());
    assert_eq!(outcome.delivered, 200);
    for rx in &mut rxs {
        assert_one(rx, QoS::AtLeastOnce, 7);
    }
}
