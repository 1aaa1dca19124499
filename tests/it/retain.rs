//! Retained messages: stored, delivered on subscribe with RETAIN 1, live
//! deliveries with RETAIN 0, deletion by an empty payload, replacement, and
//! the MQTT 5 Retain Handling option.

use integration::packets::{Connect, Props, Publish, Will, prop, sub_options};
use integration::{Config, QUIET, RawClient, TestBroker, ms};

async fn retain(addr: std::net::SocketAddr, topic: &str, payload: &[u8], qos: u8) {
    let mut c = RawClient::connect_v311(addr, "retainer").await;
    c.publish(Publish::new(topic, payload).qos(qos, 0).retain())
        .await;
    c.disconnect().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retained_message_is_delivered_on_subscribe_with_retain_flag() {
    // [MQTT-3.3.1-5] (3.1.1) stored; [MQTT-3.3.1-6] sent to new subscribers;
    // [MQTT-3.3.1-8] with RETAIN 1.
    let b = TestBroker::start_default().await;
    retain(b.addr, "r/a", b"state", 1).await;
    let mut sub = RawClient::connect_v311(b.addr, "late").await;
    sub.subscribe("r/a", 1).await;
    let p = sub.recv_publish_acked().await;
    assert_eq!(
        (p.topic.as_str(), p.payload_str(), p.retain, p.qos),
        ("r/a", "state", true, 1)
    );
    sub.expect_no_packet(QUIET).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retained_delivery_qos_is_minimum_of_stored_and_granted() {
    // [MQTT-3.8.4-6] applies to retained messages too.
    let b = TestBroker::start_default().await;
    retain(b.addr, "rq/2", b"two", 2).await;
    retain(b.addr, "rq/1", b"one", 1).await;
    let mut sub = RawClient::connect_v311(b.addr, "rq").await;
    sub.subscribe("rq/2", 1).await;
    let p = sub.recv_publish_acked().await;
    assert_eq!((p.payload_str(), p.qos, p.retain), ("two", 1, true));
    sub.subscribe("rq/1", 2).await;
    let p = sub.recv_publish_acked().await;
    assert_eq!((p.payload_str(), p.qos, p.retain), ("one", 1, true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wildcard_subscribe_receives_every_matching_retained_message() {
    let b = TestBroker::start_default().await;
    for t in ["w/a", "w/b", "w/c/d", "x/a"] {
        retain(b.addr, t, t.as_bytes(), 0).await;
    }
    let mut sub = RawClient::connect_v311(b.addr, "wsub").await;
    sub.subscribe("w/#", 0).await;
    let mut got = Vec::new();
    for _ in 0..3 {
        let p = sub.recv_publish().await;
        assert!(p.retain);
        got.push(p.topic);
    }
    got.sort();
    assert_eq!(got, vec!["w/a", "w/b", "w/c/d"]);
    sub.expect_no_packet(QUIET).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_delivery_of_a_retained_publish_has_retain_0_v311() {
    // [MQTT-3.3.1-9] (3.1.1): RETAIN 0 for an established subscription.
    let b = TestBroker::start_default().await;
    let mut sub = RawClient::connect_v311(b.addr, "live").await;
    sub.subscribe("live/t", 1).await;
    retain(b.addr, "live/t", b"now", 1).await;
    let p = sub.recv_publish_acked().await;
    assert_eq!((p.payload_str(), p.retain), ("now", false));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_delivery_of_a_retained_publish_has_retain_0_v5() {
    // [MQTT-3.3.1-12] (5.0) with Retain As Published 0.
    let b = TestBroker::start_default().await;
    let (mut sub, _) = RawClient::connect_v5(b.addr, "live5", Props::new()).await;
    sub.subscribe("live5/t", 1).await;
    retain(b.addr, "live5/t", b"now", 1).await;
    let p = sub.recv_publish_acked().await;
    assert_eq!((p.payload_str(), p.retain), ("now", false));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_retained_payload_deletes_the_retained_message() {
    // [MQTT-3.3.1-10] / [MQTT-3.3.1-11] (3.1.1): processed as normal
    // (delivered to current subscribers) and the retained message removed;
    // the empty message itself is not stored.
    let b = TestBroker::start_default().await;
    retain(b.addr, "del/t", b"old", 1).await;
    let mut current = RawClient::connect_v311(b.addr, "current").await;
    current.subscribe("del/t", 1).await;
    assert_eq!(current.recv_publish_acked().await.payload_str(), "old");
    retain(b.addr, "del/t", b"", 1).await;
    let p = current.recv_publish_acked().await;
    assert_eq!(
        (p.payload.len(), p.retain),
        (0, false),
        "the delete is delivered as an empty message"
    );
    let mut late = RawClient::connect_v311(b.addr, "late").await;
    late.subscribe("del/#", 1).await;
    late.expect_no_packet(QUIET).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn newer_retained_message_replaces_older() {
    // [MQTT-3.3.1-5] (5.0): replace any existing retained message.
    let b = TestBroker::start_default().await;
    retain(b.addr, "rep/t", b"v1", 0).await;
    retain(b.addr, "rep/t", b"v2", 1).await;
    let mut sub = RawClient::connect_v311(b.addr, "rep").await;
    sub.subscribe("rep/t", 1).await;
    assert_eq!(sub.recv_publish_acked().await.payload_str(), "v2");
    sub.expect_no_packet(QUIET).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_retained_publish_leaves_retained_message_alone() {
    // [MQTT-3.3.1-12] (3.1.1) / [MQTT-3.3.1-8] (5.0): RETAIN 0 neither stores
    // nor removes.
    let b = TestBroker::start_default().await;
    retain(b.addr, "keep/t", b"kept", 0).await;
    let mut c = RawClient::connect_v311(b.addr, "plain").await;
    c.publish(Publish::new("keep/t", b"transient").qos(1, 0))
        .await;
    c.publish(Publish::new("keep/t", b"").qos(1, 0)).await;
    let mut sub = RawClient::connect_v311(b.addr, "keep").await;
    sub.subscribe("keep/t", 0).await;
    assert_eq!(sub.recv_publish().await.payload_str(), "kept");
    sub.expect_no_packet(QUIET).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retain_handling_0_sends_retained_on_every_subscribe() {
    // [MQTT-3.3.1-9] (5.0)
    let b = TestBroker::start_default().await;
    retain(b.addr, "rh/t", b"r", 0).await;
    let (mut c, _) = RawClient::connect_v5(b.addr, "rh0", Props::new()).await;
    for _ in 0..2 {
        c.subscribe("rh/t", sub_options(0, false, false, 0)).await;
        let p = c.recv_publish().await;
        assert_eq!((p.payload_str(), p.retain), ("r", true));
    }
    c.expect_no_packet(QUIET).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retain_handling_1_sends_retained_only_for_a_new_subscription() {
    // [MQTT-3.3.1-10] (5.0)
    let b = TestBroker::start_default().await;
    retain(b.addr, "rh/t", b"r", 0).await;
    let (mut c, _) = RawClient::connect_v5(b.addr, "rh1", Props::new()).await;
    c.subscribe("rh/t", sub_options(0, false, false, 1)).await;
    let p = c.recv_publish().await;
    assert_eq!((p.payload_str(), p.retain), ("r", true));
    c.subscribe("rh/t", sub_options(0, false, false, 1)).await;
    c.expect_no_packet(QUIET).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retain_handling_2_never_sends_retained() {
    // [MQTT-3.3.1-11] (5.0)
    let b = TestBroker::start_default().await;
    retain(b.addr, "rh/t", b"r", 0).await;
    let (mut c, _) = RawClient::connect_v5(b.addr, "rh2", Props::new()).await;
    c.subscribe("rh/t", sub_options(0, false, false, 2)).await;
    c.expect_no_packet(QUIET).await;
    // Live messages still flow.
    retain(b.addr, "rh/t", b"live", 0).await;
    assert_eq!(c.recv_publish().await.payload_str(), "live");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retained_message_properties_are_kept() {
    // [MQTT-3.3.2-17] / [MQTT-3.3.2-20]: user properties and content type
    // travel with the stored message.
    let b = TestBroker::start_default().await;
    let (mut p, _) = RawClient::connect_v5(b.addr, "rprops-pub", Props::new()).await;
    let props = Props::new()
        .string(prop::CONTENT_TYPE, "text/plain")
        .user("k", "v");
    p.publish(Publish::new("rp/t", b"x").qos(1, 0).retain().props(props))
        .await;
    let (mut s, _) = RawClient::connect_v5(b.addr, "rprops", Props::new()).await;
    s.subscribe("rp/t", 1).await;
    let m = s.recv_publish_acked().await;
    assert_eq!(m.props.str(prop::CONTENT_TYPE), Some("text/plain"));
    assert_eq!(m.props.user(), vec![("k".to_string(), "v".to_string())]);
    assert!(m.retain);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retain_unavailable_is_announced_and_enforced() {
    // MQTT 5.0 3.2.2.3.5: Retain Available 0 in CONNACK; a will with Will
    // Retain is refused with CONNACK 0x9A [MQTT-3.2.2-13]; a retained PUBLISH
    // gets DISCONNECT 0x9A [MQTT-3.2.2-14].
    let mut config = Config::default();
    config.mqtt.retain_available = false;
    let b = TestBroker::start(config).await;
    let (mut c, ack) = RawClient::connect_v5(b.addr, "noretain", Props::new()).await;
    assert_eq!(ack.props.int(prop::RETAIN_AVAILABLE), Some(0));
    let mut w = RawClient::connect(b.addr).await;
    w.expect_refused(
        &Connect::v5("willretain").will(Will::new("w", b"x").retain()),
        0x9A,
    )
    .await;
    c.send(&Publish::new("nr/t", b"x").retain().v5().bytes())
        .await;
    c.expect_disconnect(0x9A).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retained_store_limit_keeps_existing_topics_and_still_delivers_live() {
    // mqtt.max_retained_messages: a full store refuses new topics (the
    // message is still delivered live), replacing or deleting stored ones works.
    let mut config = Config::default();
    config.mqtt.max_retained_messages = 2;
    // $SYS is on (the default): its statistics must not use up the quota
    // meant for clients' retained messages.
    config.sys.enabled = true;
    let b = TestBroker::start(config).await;
    let mut live = RawClient::connect_v311(b.addr, "live").await;
    live.subscribe("cap/#", 0).await;
    retain(b.addr, "cap/a", b"a1", 0).await;
    retain(b.addr, "cap/b", b"b1", 0).await;
    retain(b.addr, "cap/c", b"c1", 0).await; // over the limit
    retain(b.addr, "cap/a", b"a2", 0).await; // replacement
    let got: Vec<String> = {
        let mut v = Vec::new();
        for _ in 0..4 {
            v.push(live.recv_publish().await.payload_str().to_string());
        }
        v
    };
    assert_eq!(
        got,
        vec!["a1", "b1", "c1", "a2"],
        "live delivery is unaffected by the limit"
    );
    let mut late = RawClient::connect_v311(b.addr, "late-cap").await;
    late.subscribe("cap/#", 0).await;
    let mut stored = Vec::new();
    while let integration::raw::Next::Packet(f, body) = late.next(ms(500)).await {
        stored.push(
            integration::packets::parse_publish(f, &body, false)
                .payload_str()
                .to_string(),
        );
    }
    stored.sort();
    assert_eq!(
        stored,
        vec!["a2", "b1"],
        "retained messages after filling the store"
    );
    // Deleting frees a slot.
    retain(b.addr, "cap/b", b"", 0).await;
    retain(b.addr, "cap/c", b"c2", 0).await;
    let mut later = RawClient::connect_v311(b.addr, "later-cap").await;
    later.subscribe("cap/c", 0).await;
    assert_eq!(later.recv_publish().await.payload_str(), "c2");
}
