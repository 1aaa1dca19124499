//! Shared subscriptions `$share/{group}/{filter}` (MQTT 5.0 4.8.2): fair
//! distribution without duplicates, coexistence with ordinary subscriptions,
//! invalid share names and the options a shared subscription refuses.

use std::collections::BTreeSet;

use integration::packets::{self, Props, Publish, sub_options};
use integration::raw::Next;
use integration::{Config, QUIET, RawClient, TestBroker, ms};

/// Reads and acknowledges publishes until `quiet` passes without one.
async fn drain(c: &mut RawClient) -> Vec<String> {
    let mut out = Vec::new();
    while let Next::Packet(f, body) = c.next(ms(500)).await {
        let p = packets::parse_publish(f, &body, c.v5);
        c.ack(&p).await;
        out.push(p.payload_str().to_string());
    }
    out
}

async fn publish_n(addr: std::net::SocketAddr, topic: &str, n: usize, qos: u8) {
    let (mut p, _) = RawClient::connect_v5(addr, "share-pub", Props::new()).await;
    for i in 0..n {
        p.publish(Publish::new(topic, format!("{i:03}").as_bytes()).qos(qos, 0))
            .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_subscription_distributes_messages_between_members() {
    // 4.8.2: each message goes to exactly one member of the group; the issue
    // asks for a fair distribution (every member gets some).
    let b = TestBroker::start_default().await;
    let (mut one, _) = RawClient::connect_v5(b.addr, "member-1", Props::new()).await;
    let (mut two, _) = RawClient::connect_v5(b.addr, "member-2", Props::new()).await;
    assert_eq!(one.subscribe("$share/g/sh/t", 1).await, vec![1]);
    assert_eq!(two.subscribe("$share/g/sh/t", 1).await, vec![1]);
    publish_n(b.addr, "sh/t", 40, 1).await;
    let (a, bb) = tokio::join!(drain(&mut one), drain(&mut two));
    assert!(
        a.len() >= 5 && bb.len() >= 5,
        "unfair distribution: {} and {}",
        a.len(),
        bb.len()
    );
    let mut all: Vec<String> = a.iter().chain(bb.iter()).cloned().collect();
    all.sort();
    let unique: BTreeSet<&String> = all.iter().collect();
    assert_eq!(unique.len(), all.len(), "a message went to both members");
    assert_eq!(all.len(), 40, "messages lost");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_subscription_works_for_3_1_1_clients() {
    let b = TestBroker::start_default().await;
    let mut one = RawClient::connect_v311(b.addr, "m311-1").await;
    let mut two = RawClient::connect_v311(b.addr, "m311-2").await;
    one.subscribe("$share/g311/s3/t", 0).await;
    two.subscribe("$share/g311/s3/t", 0).await;
    publish_n(b.addr, "s3/t", 20, 1).await;
    let (a, bb) = tokio::join!(drain(&mut one), drain(&mut two));
    assert_eq!(a.len() + bb.len(), 20);
    assert!(
        !a.is_empty() && !bb.is_empty(),
        "{} / {}",
        a.len(),
        bb.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_and_ordinary_subscriptions_each_get_a_copy() {
    // 4.8.2: each share group gets one copy; a non-shared subscription gets
    // its own copy as usual.
    let b = TestBroker::start_default().await;
    let (mut g1, _) = RawClient::connect_v5(b.addr, "g1", Props::new()).await;
    let (mut g2, _) = RawClient::connect_v5(b.addr, "g2", Props::new()).await;
    let (mut plain, _) = RawClient::connect_v5(b.addr, "plain", Props::new()).await;
    g1.subscribe("$share/one/mix/t", 1).await;
    g2.subscribe("$share/two/mix/t", 1).await;
    plain.subscribe("mix/t", 1).await;
    publish_n(b.addr, "mix/t", 5, 1).await;
    let (a, bb, c) = tokio::join!(drain(&mut g1), drain(&mut g2), drain(&mut plain));
    assert_eq!((a.len(), bb.len(), c.len()), (5, 5, 5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsubscribed_member_no_longer_receives() {
    let b = TestBroker::start_default().await;
    let (mut one, _) = RawClient::connect_v5(b.addr, "stay", Props::new()).await;
    let (mut two, _) = RawClient::connect_v5(b.addr, "leave", Props::new()).await;
    one.subscribe("$share/g/u/t", 1).await;
    two.subscribe("$share/g/u/t", 1).await;
    assert_eq!(two.unsubscribe("$share/g/u/t").await, vec![0]);
    publish_n(b.addr, "u/t", 10, 1).await;
    let (a, bb) = tokio::join!(drain(&mut one), drain(&mut two));
    assert_eq!((a.len(), bb.len()), (10, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retained_messages_are_not_sent_to_a_new_shared_subscription() {
    // MQTT 5.0 3.3.1.3 / 4.8.2: retained messages are sent when a new
    // *non-shared* subscription is made, not for shared subscriptions.
    let b = TestBroker::start_default().await;
    let (mut p, _) = RawClient::connect_v5(b.addr, "ret-pub", Props::new()).await;
    p.publish(Publish::new("sr/t", b"stored").qos(1, 0).retain())
        .await;
    let (mut m, _) = RawClient::connect_v5(b.addr, "ret-member", Props::new()).await;
    m.subscribe("$share/g/sr/t", 1).await;
    m.expect_no_packet(QUIET).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_share_names_are_refused() {
    // [MQTT-4.8.2-1] a ShareName of at least one character, [MQTT-4.8.2-2]
    // without `/`, `+` or `#`, followed by `/` and a filter: 0x8F otherwise.
    let b = TestBroker::start_default().await;
    let (mut c, _) = RawClient::connect_v5(b.addr, "badshare", Props::new()).await;
    let codes = c
        .subscribe_with(
            &[
                ("$share/g", 0),
                ("$share//t", 0),
                ("$share/g+/t", 0),
                ("$share/g#/t", 0),
                ("$share/g/", 0),
                ("$share/ok/t", 0),
            ],
            Props::new(),
        )
        .await;
    assert_eq!(codes, vec![0x8F, 0x8F, 0x8F, 0x8F, 0x8F, 0x00]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_local_on_a_shared_subscription_is_a_protocol_error() {
    // [MQTT-3.8.3-4]: No Local 1 on a shared subscription is a Protocol Error.
    let b = TestBroker::start_default().await;
    let (mut c, _) = RawClient::connect_v5(b.addr, "nolocalshare", Props::new()).await;
    c.send(&packets::subscribe_v5(
        1,
        &[("$share/g/t", sub_options(0, true, false, 0))],
        &Props::new(),
    ))
    .await;
    c.expect_disconnect(0x82).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_subscriptions_disabled_are_refused_with_0x9e() {
    // MQTT 5.0 3.2.2.3.13: Shared Subscription Available 0; 0x9E in SUBACK.
    let mut config = Config::default();
    config.mqtt.shared_subscriptions = false;
    let b = TestBroker::start(config).await;
    let (mut c, ack) = RawClient::connect_v5(b.addr, "noshare", Props::new()).await;
    assert_eq!(
        ack.props
            .int(integration::prop::SHARED_SUBSCRIPTION_AVAILABLE),
        Some(0)
    );
    assert_eq!(
        c.subscribe_with(&[("$share/g/t", 0), ("t", 0)], Props::new())
            .await,
        vec![0x9E, 0x00]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disconnected_member_does_not_swallow_group_messages() {
    // 4.8.2: messages go to connected members; a member that left (clean
    // session, subscription gone) gets nothing and nothing is lost.
    let b = TestBroker::start_default().await;
    let (mut one, _) = RawClient::connect_v5(b.addr, "alive", Props::new()).await;
    let (two, _) = RawClient::connect_v5(b.addr, "gone", Props::new()).await;
    one.subscribe("$share/g/d/t", 1).await;
    let mut two = two;
    two.subscribe("$share/g/d/t", 1).await;
    two.disconnect().await;
    publish_n(b.addr, "d/t", 10, 1).await;
    assert_eq!(drain(&mut one).await.len(), 10);
}
