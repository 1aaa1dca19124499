//! MQTT 5 features: properties forwarded to subscribers, message expiry,
//! topic aliases in both directions, request/response information, reason
//! strings and the CONNACK properties taken from the configuration.

use integration::packets::{self, Connect, Props, Publish, kind, prop};
use integration::{Config, QUIET, RawClient, TestBroker, ms};
use std::collections::HashMap;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_properties_are_forwarded_unaltered_and_in_order() {
    // [MQTT-3.3.2-17] unaltered, [MQTT-3.3.2-18] order kept (duplicates too).
    let b = TestBroker::start_default().await;
    let (mut sub, _) = RawClient::connect_v5(b.addr, "up-sub", Props::new()).await;
    sub.subscribe("up/t", 1).await;
    let (mut publisher, _) = RawClient::connect_v5(b.addr, "up-pub", Props::new()).await;
    let pairs = [
        ("z", "1"),
        ("a", "2"),
        ("z", "3"),
        ("ключ", "значение"),
        ("", ""),
    ];
    let mut props = Props::new();
    for (k, v) in pairs {
        props = props.user(k, v);
    }
    publisher
        .publish(Publish::new("up/t", b"x").qos(1, 0).props(props))
        .await;
    let p = sub.recv_publish_acked().await;
    let want: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert_eq!(p.props.user(), want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_response_properties_are_forwarded() {
    // [MQTT-3.3.2-4] Payload Format Indicator, [MQTT-3.3.2-15] Response Topic,
    // [MQTT-3.3.2-16] Correlation Data, [MQTT-3.3.2-20] Content Type: all
    // forwarded unaltered.
    let b = TestBroker::start_default().await;
    let (mut sub, _) = RawClient::connect_v5(b.addr, "rr-sub", Props::new()).await;
    sub.subscribe("rr/t", 2).await;
    let (mut publisher, _) = RawClient::connect_v5(b.addr, "rr-pub", Props::new()).await;
    let props = Props::new()
        .byte(prop::PAYLOAD_FORMAT_INDICATOR, 1)
        .string(prop::CONTENT_TYPE, "application/json; charset=utf-8")
        .string(prop::RESPONSE_TOPIC, "rr/reply/42")
        .binary(prop::CORRELATION_DATA, &[0, 1, 2, 0xFF]);
    publisher
        .publish(Publish::new("rr/t", br#"{"q":1}"#).qos(2, 0).props(props))
        .await;
    let p = sub.recv_publish_acked().await;
    assert_eq!(p.props.int(prop::PAYLOAD_FORMAT_INDICATOR), Some(1));
    assert_eq!(
        p.props.str(prop::CONTENT_TYPE),
        Some("application/json; charset=utf-8")
    );
    assert_eq!(p.props.str(prop::RESPONSE_TOPIC), Some("rr/reply/42"));
    assert_eq!(
        p.props.bin(prop::CORRELATION_DATA),
        Some(&[0u8, 1, 2, 0xFF][..])
    );
    assert_eq!(p.payload_str(), r#"{"q":1}"#);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn properties_are_not_invented_for_3_1_1_publishers() {
    // A 3.1.1 message reaches a 5.0 subscriber without properties it never had.
    let b = TestBroker::start_default().await;
    let (mut sub, _) = RawClient::connect_v5(b.addr, "np-sub", Props::new()).await;
    sub.subscribe("np/t", 1).await;
    let mut publisher = RawClient::connect_v311(b.addr, "np-pub").await;
    publisher
        .publish(Publish::new("np/t", b"x").qos(1, 0))
        .await;
    let p = sub.recv_publish_acked().await;
    for id in [
        prop::PAYLOAD_FORMAT_INDICATOR,
        prop::MESSAGE_EXPIRY_INTERVAL,
        prop::CONTENT_TYPE,
        prop::RESPONSE_TOPIC,
        prop::CORRELATION_DATA,
        prop::TOPIC_ALIAS,
    ] {
        assert!(
            !p.props.has(id),
            "unexpected property {id:#04x}: {:?}",
            p.props
        );
    }
}

async fn offline_subscriber(addr: std::net::SocketAddr, id: &str, topic: &str) {
    let connect = Connect::v5(id)
        .clean(false)
        .props(Props::new().u32(prop::SESSION_EXPIRY_INTERVAL, 300));
    let (mut c, _) = RawClient::connect_with(addr, &connect).await;
    c.subscribe(topic, 1).await;
    c.disconnect().await;
}

async fn reconnect(addr: std::net::SocketAddr, id: &str) -> RawClient {
    let connect = Connect::v5(id)
        .clean(false)
        .props(Props::new().u32(prop::SESSION_EXPIRY_INTERVAL, 300));
    let (c, ack) = RawClient::connect_with(addr, &connect).await;
    assert!(ack.session_present);
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_queued_message_is_not_delivered() {
    // [MQTT-3.3.2-5]: once the Message Expiry Interval has passed without
    // onward delivery starting, the copy is deleted.
    let b = TestBroker::start_default().await;
    offline_subscriber(b.addr, "exp-sub", "mx/t").await;
    let (mut publisher, _) = RawClient::connect_v5(b.addr, "exp-pub", Props::new()).await;
    publisher
        .publish(
            Publish::new("mx/t", b"short")
                .qos(1, 0)
                .props(Props::new().u32(prop::MESSAGE_EXPIRY_INTERVAL, 1)),
        )
        .await;
    publisher
        .publish(
            Publish::new("mx/t", b"long")
                .qos(1, 0)
                .props(Props::new().u32(prop::MESSAGE_EXPIRY_INTERVAL, 60)),
        )
        .await;
    tokio::time::sleep(ms(2100)).await;
    let mut c = reconnect(b.addr, "exp-sub").await;
    let p = c.recv_publish_acked().await;
    assert_eq!(p.payload_str(), "long", "the expired message was delivered");
    c.expect_no_packet(QUIET).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivered_message_carries_the_remaining_expiry_interval() {
    // [MQTT-3.3.2-6]: received value minus the time spent waiting.
    let b = TestBroker::start_default().await;
    offline_subscriber(b.addr, "rem-sub", "rem/t").await;
    let (mut publisher, _) = RawClient::connect_v5(b.addr, "rem-pub", Props::new()).await;
    publisher
        .publish(
            Publish::new("rem/t", b"x")
                .qos(1, 0)
                .props(Props::new().u32(prop::MESSAGE_EXPIRY_INTERVAL, 10)),
        )
        .await;
    tokio::time::sleep(ms(2100)).await;
    let mut c = reconnect(b.addr, "rem-sub").await;
    let p = c.recv_publish_acked().await;
    let left = p
        .props
        .int(prop::MESSAGE_EXPIRY_INTERVAL)
        .expect("Message Expiry Interval forwarded");
    assert!(
        (1..=8).contains(&left),
        "remaining interval {left} after waiting 2 s of 10"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_retained_message_is_not_delivered() {
    // [MQTT-3.3.2-5] applies to retained messages as well (3.3.2.3.3).
    let b = TestBroker::start_default().await;
    let (mut publisher, _) = RawClient::connect_v5(b.addr, "rexp-pub", Props::new()).await;
    let expiring = Props::new().u32(prop::MESSAGE_EXPIRY_INTERVAL, 1);
    publisher
        .publish(
            Publish::new("rexp/a", b"a")
                .qos(1, 0)
                .retain()
                .props(expiring),
        )
        .await;
    publisher
        .publish(Publish::new("rexp/b", b"b").qos(1, 0).retain())
        .await;
    tokio::time::sleep(ms(2100)).await;
    let (mut sub, _) = RawClient::connect_v5(b.addr, "rexp-sub", Props::new()).await;
    sub.subscribe("rexp/+", 1).await;
    assert_eq!(sub.recv_publish_acked().await.topic, "rexp/b");
    sub.expect_no_packet(QUIET).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbound_topic_alias_is_set_then_used_with_an_empty_topic() {
    // [MQTT-3.3.2-12] the server accepts aliases 1..=its maximum; an alias
    // can be remapped later (3.3.2.3.4).
    let mut config = Config::default();
    config.limits.topic_alias_maximum = 5;
    let b = TestBroker::start(config).await;
    let mut sub = RawClient::connect_v311(b.addr, "alias-sub").await;
    sub.subscribe("al/#", 1).await;
    let (mut c, ack) = RawClient::connect_v5(b.addr, "aliaser", Props::new()).await;
    assert_eq!(
        ack.props.int(prop::TOPIC_ALIAS_MAXIMUM),
        Some(5),
        "CONNACK Topic Alias Maximum from config"
    );
    let alias = |n| Props::new().u16(prop::TOPIC_ALIAS, n);
    c.publish(Publish::new("al/one", b"1").qos(1, 0).props(alias(5)))
        .await;
    c.publish(Publish::new("", b"2").qos(1, 0).props(alias(5)))
        .await;
    c.publish(Publish::new("al/two", b"3").qos(1, 0).props(alias(5)))
        .await;
    c.publish(Publish::new("", b"4").qos(1, 0).props(alias(5)))
        .await;
    let got: Vec<(String, String)> = {
        let mut v = Vec::new();
        for _ in 0..4 {
            let p = sub.recv_publish_acked().await;
            v.push((p.topic.clone(), p.payload_str().to_string()));
        }
        v
    };
    let want = [
        ("al/one", "1"),
        ("al/one", "2"),
        ("al/two", "3"),
        ("al/two", "4"),
    ];
    assert_eq!(
        got,
        want.map(|(t, p)| (t.to_string(), p.to_string())).to_vec()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_alias_zero_gets_disconnect_0x94() {
    // [MQTT-3.3.2-8]: alias 0 is not allowed; DISCONNECT 0x94 (Topic Alias
    // invalid) as the issue asks; 0x82 (Protocol Error) is also defensible
    // since the spec names no code for this case.
    let b = TestBroker::start_default().await;
    let (mut c, _) = RawClient::connect_v5(b.addr, "alias0", Props::new()).await;
    c.send(
        &Publish::new("a/b", b"x")
            .props(Props::new().u16(prop::TOPIC_ALIAS, 0))
            .bytes(),
    )
    .await;
    let reason = c.expect_error_close().await;
    assert!(
        matches!(reason, Some(0x94) | Some(0x82)),
        "expected DISCONNECT 0x94, got {reason:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_alias_above_the_maximum_gets_disconnect_0x94() {
    // [MQTT-3.2.2-17]: the client must not exceed the server's maximum.
    let mut config = Config::default();
    config.limits.topic_alias_maximum = 3;
    let b = TestBroker::start(config).await;
    let (mut c, _) = RawClient::connect_v5(b.addr, "alias4", Props::new()).await;
    c.send(
        &Publish::new("a/b", b"x")
            .props(Props::new().u16(prop::TOPIC_ALIAS, 4))
            .bytes(),
    )
    .await;
    c.expect_disconnect(0x94).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_topic_alias_with_empty_topic_is_a_protocol_error() {
    // 3.3.2.3.4: an empty topic with an alias that has no mapping is a
    // Protocol Error (0x82).
    let b = TestBroker::start_default().await;
    let (mut c, _) = RawClient::connect_v5(b.addr, "aliasnew", Props::new()).await;
    c.send(
        &Publish::new("", b"x")
            .props(Props::new().u16(prop::TOPIC_ALIAS, 1))
            .bytes(),
    )
    .await;
    let reason = c.expect_error_close().await;
    assert!(
        matches!(reason, Some(0x82) | Some(0x94)),
        "reason {reason:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_topic_aliases_are_sent_to_a_client_that_did_not_allow_them() {
    // [MQTT-3.1.2-27]: Topic Alias Maximum absent or 0: no aliases at all.
    let b = TestBroker::start_default().await;
    let (mut sub, _) = RawClient::connect_v5(b.addr, "noalias", Props::new()).await;
    sub.subscribe("na/#", 0).await;
    let (mut publisher, _) = RawClient::connect_v5(b.addr, "noalias-pub", Props::new()).await;
    for i in 0..20 {
        publisher
            .publish(Publish::new(&format!("na/{}", i % 3), b"x"))
            .await;
    }
    for _ in 0..20 {
        let p = sub.recv_publish().await;
        assert!(!p.props.has(prop::TOPIC_ALIAS), "alias sent: {:?}", p.props);
        assert!(!p.topic.is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbound_topic_aliases_stay_within_the_client_maximum() {
    // [MQTT-3.1.2-26]: never above the client's Topic Alias Maximum; every
    // alias the server uses resolves to the right topic.
    let b = TestBroker::start_default().await;
    let (mut sub, _) = RawClient::connect_v5(
        b.addr,
        "alias-rx",
        Props::new().u16(prop::TOPIC_ALIAS_MAXIMUM, 2),
    )
    .await;
    sub.subscribe("oa/#", 0).await;
    let (mut publisher, _) = RawClient::connect_v5(b.addr, "alias-tx", Props::new()).await;
    let topics: Vec<String> = (0..40).map(|i| format!("oa/topic/{}", i % 5)).collect();
    for t in &topics {
        publisher.publish(Publish::new(t, t.as_bytes())).await;
    }
    let mut map: HashMap<u32, String> = HashMap::new();
    for expected in &topics {
        let p = sub.recv_publish().await;
        let topic = match p.props.int(prop::TOPIC_ALIAS) {
            Some(a) => {
                assert!((1..=2).contains(&a), "alias {a} outside 1..=2");
                if p.topic.is_empty() {
                    map.get(&a)
                        .unwrap_or_else(|| panic!("alias {a} used before it was set"))
                        .clone()
                } else {
                    map.insert(a, p.topic.clone());
                    p.topic.clone()
                }
            }
            None => p.topic.clone(),
        };
        assert_eq!(&topic, expected);
        assert_eq!(p.payload_str(), expected, "payload matches topic");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn response_information_is_returned_only_when_requested() {
    // MQTT 5.0 3.1.2.11.6: Request Response Information 1 may get Response
    // Information; [MQTT-3.1.2-28] with 0 the server MUST NOT return it.
    let mut config = Config::default();
    config.mqtt.response_information = Some("responses/".into());
    let b = TestBroker::start(config).await;
    let (_c, ack) = RawClient::connect_v5(
        b.addr,
        "asks",
        Props::new().byte(prop::REQUEST_RESPONSE_INFORMATION, 1),
    )
    .await;
    let info = ack
        .props
        .str(prop::RESPONSE_INFORMATION)
        .expect("Response Information in CONNACK");
    assert!(info.starts_with("responses/"), "got {info:?}");
    let (_c, ack) = RawClient::connect_v5(b.addr, "silent", Props::new()).await;
    assert!(
        !ack.props.has(prop::RESPONSE_INFORMATION),
        "[MQTT-3.1.2-28]"
    );
    let (_c, ack) = RawClient::connect_v5(
        b.addr,
        "declines",
        Props::new().byte(prop::REQUEST_RESPONSE_INFORMATION, 0),
    )
    .await;
    assert!(
        !ack.props.has(prop::RESPONSE_INFORMATION),
        "[MQTT-3.1.2-28]"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connack_carries_the_limits_from_the_configuration() {
    // MQTT 5.0 3.2.2.3: Receive Maximum, Maximum QoS, Retain Available,
    // Maximum Packet Size, Topic Alias Maximum, Wildcard / Subscription
    // Identifier / Shared Subscription Available. Absent means the default
    // (65535, 2, 1, unlimited, 0, 1, 1, 1).
    let mut config = Config::default();
    config.limits.receive_maximum = 7;
    config.limits.max_packet_bytes = 4096;
    config.limits.topic_alias_maximum = 9;
    config.mqtt.maximum_qos = 1;
    config.mqtt.retain_available = false;
    config.mqtt.wildcard_subscriptions = false;
    config.mqtt.shared_subscriptions = false;
    config.mqtt.subscription_identifiers = false;
    let b = TestBroker::start(config).await;
    let (_c, ack) = RawClient::connect_v5(b.addr, "limits", Props::new()).await;
    let p = &ack.props;
    assert_eq!(p.int(prop::RECEIVE_MAXIMUM), Some(7), "Receive Maximum");
    assert_eq!(p.int(prop::MAXIMUM_QOS), Some(1), "Maximum QoS");
    assert_eq!(p.int(prop::RETAIN_AVAILABLE), Some(0), "Retain Available");
    assert_eq!(
        p.int(prop::MAXIMUM_PACKET_SIZE),
        Some(4096),
        "Maximum Packet Size"
    );
    assert_eq!(
        p.int(prop::TOPIC_ALIAS_MAXIMUM),
        Some(9),
        "Topic Alias Maximum"
    );
    assert_eq!(
        p.int(prop::WILDCARD_SUBSCRIPTION_AVAILABLE),
        Some(0),
        "Wildcard Subscription Available"
    );
    assert_eq!(
        p.int(prop::SUBSCRIPTION_IDENTIFIER_AVAILABLE),
        Some(0),
        "Subscription Identifiers Available"
    );
    assert_eq!(
        p.int(prop::SHARED_SUBSCRIPTION_AVAILABLE),
        Some(0),
        "Shared Subscription Available"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connack_defaults_announce_full_support() {
    let b = TestBroker::start_default().await;
    let (_c, ack) = RawClient::connect_v5(b.addr, "defaults", Props::new()).await;
    let p = &ack.props;
    assert_eq!(p.int(prop::MAXIMUM_QOS).unwrap_or(2), 2);
    assert_eq!(p.int(prop::RETAIN_AVAILABLE).unwrap_or(1), 1);
    assert_eq!(p.int(prop::WILDCARD_SUBSCRIPTION_AVAILABLE).unwrap_or(1), 1);
    assert_eq!(p.int(prop::SHARED_SUBSCRIPTION_AVAILABLE).unwrap_or(1), 1);
    assert_eq!(
        p.int(prop::SUBSCRIPTION_IDENTIFIER_AVAILABLE).unwrap_or(1),
        1
    );
    let rm = p.int(prop::RECEIVE_MAXIMUM).unwrap_or(65535);
    assert!(rm >= 1, "Receive Maximum 0 is a protocol error");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_reason_string_when_problem_information_is_declined() {
    // [MQTT-3.1.2-29]: Request Problem Information 0: no Reason String or
    // User Property on packets other than PUBLISH, CONNACK and DISCONNECT.
    let b = TestBroker::start_default().await;
    let (mut c, _) = RawClient::connect_v5(
        b.addr,
        "noproblem",
        Props::new().byte(prop::REQUEST_PROBLEM_INFORMATION, 0),
    )
    .await;
    c.send(&packets::subscribe_v5(1, &[("bad/#/x", 0)], &Props::new()))
        .await;
    let (_, body) = c.recv_kind(kind::SUBACK).await;
    let mut r = packets::Reader::new(&body);
    r.u16();
    let props = r.properties();
    assert!(
        !props.has(prop::REASON_STRING) && !props.has(prop::USER_PROPERTY),
        "SUBACK properties {props:?}"
    );
    c.send(&packets::unsubscribe_v5(2, &["nothing"])).await;
    let (_, body) = c.recv_kind(kind::UNSUBACK).await;
    let mut r = packets::Reader::new(&body);
    r.u16();
    let props = r.properties();
    assert!(
        !props.has(prop::REASON_STRING),
        "UNSUBACK properties {props:?}"
    );
    c.send(&packets::pubrel(77)).await;
    let (_, body) = c.recv_kind(kind::PUBCOMP).await;
    let (_, _, props) = packets::parse_ack(&body);
    assert!(
        !props.has(prop::REASON_STRING),
        "PUBCOMP properties {props:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscription_identifier_in_client_publish_is_a_protocol_error() {
    // [MQTT-3.3.4-6]: a PUBLISH from a client MUST NOT contain a
    // Subscription Identifier.
    let b = TestBroker::start_default().await;
    let (mut c, _) = RawClient::connect_v5(b.addr, "pubsubid", Props::new()).await;
    c.send(
        &Publish::new("a/b", b"x")
            .props(Props::new().varint(prop::SUBSCRIPTION_IDENTIFIER, 3))
            .bytes(),
    )
    .await;
    let reason = c.expect_error_close().await;
    assert!(
        matches!(reason, None | Some(0x82) | Some(0x81)),
        "reason {reason:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_expiry_is_forwarded_on_live_delivery() {
    // [MQTT-3.3.2-6] on immediate delivery the interval is at most the sent one.
    let b = TestBroker::start_default().await;
    let (mut sub, _) = RawClient::connect_v5(b.addr, "live-exp", Props::new()).await;
    sub.subscribe("le/t", 0).await;
    let (mut publisher, _) = RawClient::connect_v5(b.addr, "live-exp-pub", Props::new()).await;
    publisher
        .publish(
            Publish::new("le/t", b"x").props(Props::new().u32(prop::MESSAGE_EXPIRY_INTERVAL, 30)),
        )
        .await;
    let p = sub.recv_publish().await;
    let left = p
        .props
        .int(prop::MESSAGE_EXPIRY_INTERVAL)
        .expect("forwarded");
    assert!((29..=30).contains(&left), "remaining {left}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_expiring_while_queued_behind_a_full_window_is_not_delivered() {
    // [MQTT-3.3.2-5]: the subscriber's Receive Maximum 1 is taken by an
    // unacknowledged message; a second one expires while it waits.
    let b = TestBroker::start_default().await;
    let (mut sub, _) = RawClient::connect_v5(
        b.addr,
        "window1",
        Props::new().u16(prop::RECEIVE_MAXIMUM, 1),
    )
    .await;
    sub.subscribe("wq/t", 1).await;
    let (mut publisher, _) = RawClient::connect_v5(b.addr, "wq-pub", Props::new()).await;
    publisher
        .publish(Publish::new("wq/t", b"first").qos(1, 0))
        .await;
    publisher
        .publish(
            Publish::new("wq/t", b"expiring")
                .qos(1, 0)
                .props(Props::new().u32(prop::MESSAGE_EXPIRY_INTERVAL, 1)),
        )
        .await;
    publisher
        .publish(Publish::new("wq/t", b"last").qos(1, 0))
        .await;
    let first = sub.recv_publish().await;
    assert_eq!(first.payload_str(), "first");
    tokio::time::sleep(ms(2100)).await;
    sub.ack(&first).await;
    let next = sub.recv_publish_acked().await;
    assert_eq!(
        next.payload_str(),
        "last",
        "an expired message was delivered"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resubscribing_replaces_the_subscription_identifier() {
    // [MQTT-3.8.4-3] the new subscription (with its identifier) replaces the
    // old one; 3.8.2.1.2 the identifier goes with the subscription.
    let b = TestBroker::start_default().await;
    let (mut c, _) = RawClient::connect_v5(b.addr, "resubid", Props::new()).await;
    c.subscribe_with(
        &[("ri/t", 0)],
        Props::new().varint(prop::SUBSCRIPTION_IDENTIFIER, 1),
    )
    .await;
    c.subscribe_with(
        &[("ri/t", 0)],
        Props::new().varint(prop::SUBSCRIPTION_IDENTIFIER, 2),
    )
    .await;
    c.publish(Publish::new("ri/t", b"x")).await;
    assert_eq!(c.recv_publish().await.props.subscription_ids(), vec![2]);
    c.subscribe_with(&[("ri/t", 0)], Props::new()).await;
    c.publish(Publish::new("ri/t", b"y")).await;
    assert_eq!(
        c.recv_publish().await.props.subscription_ids(),
        Vec::<u32>::new()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retained_message_sent_on_subscribe_carries_the_subscription_identifier() {
    // MQTT 5.0 3.3.4: identifiers go on every PUBLISH sent for the
    // subscription, the retained ones included.
    let b = TestBroker::start_default().await;
    let (mut p, _) = RawClient::connect_v5(b.addr, "rsid-pub", Props::new()).await;
    p.publish(Publish::new("rsid/t", b"kept").qos(1, 0).retain())
        .await;
    let (mut c, _) = RawClient::connect_v5(b.addr, "rsid", Props::new()).await;
    c.subscribe_with(
        &[("rsid/#", 1)],
        Props::new().varint(prop::SUBSCRIPTION_IDENTIFIER, 9),
    )
    .await;
    let m = c.recv_publish_acked().await;
    assert_eq!((m.retain, m.props.subscription_ids()), (true, vec![9]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsupported_authentication_method_is_refused() {
    // [MQTT-4.12.0-1]: an Authentication Method the server does not support:
    // CONNACK 0x8C (Bad authentication method) or 0x87, then close.
    let b = TestBroker::start_default().await;
    let mut c = RawClient::connect(b.addr).await;
    let connect =
        Connect::v5("authy").props(Props::new().string(prop::AUTHENTICATION_METHOD, "SCRAM-SHA-1"));
    let code = c.expect_connect_refused_or_closed(&connect).await;
    assert!(matches!(code, Some(0x8C) | Some(0x87)), "CONNACK {code:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pubrec_with_an_error_code_ends_the_qos2_flow() {
    // MQTT 5.0 4.3.3 / 4.9: a PUBREC >= 0x80 acknowledges the message: no
    // PUBREL follows and the send quota is returned.
    let b = TestBroker::start_default().await;
    let (mut sub, _) = RawClient::connect_v5(
        b.addr,
        "refuser",
        Props::new().u16(prop::RECEIVE_MAXIMUM, 1),
    )
    .await;
    sub.subscribe("pr/t", 2).await;
    let (mut publisher, _) = RawClient::connect_v5(b.addr, "pr-pub", Props::new()).await;
    publisher
        .publish(Publish::new("pr/t", b"refused").qos(2, 0))
        .await;
    publisher
        .publish(Publish::new("pr/t", b"next").qos(2, 0))
        .await;
    let first = sub.recv_publish().await;
    sub.send(&packets::ack_v5(0x50, first.packet_id, 0x80))
        .await;
    let next = sub.recv_publish().await;
    assert_eq!(
        next.payload_str(),
        "next",
        "expected the next message, not a PUBREL"
    );
    sub.ack(&next).await;
    sub.expect_no_packet(QUIET).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_pubrec_for_an_unknown_id_gets_no_pubrel() {
    // [MQTT-4.3.3-4]: PUBREL answers only a PUBREC with a reason code below 0x80.
    // A successful PUBREC for an unknown id gets PUBREL 0x92 (MQTT 5.0 §3.6.2.1); a
    // failed one ends nothing and is not answered.
    let b = TestBroker::start_default().await;
    let (mut c, _) = RawClient::connect_v5(b.addr, "stray-failed-rec", Props::new()).await;
    c.send(&packets::ack_v5(0x50, 77, 0x80)).await;
    c.expect_no_packet(QUIET).await;
    c.send(&packets::ack_v5(0x50, 78, 0x00)).await;
    let (first, body) = c.recv_kind(kind::PUBREL).await;
    assert_eq!(first & 0x0F, 2, "PUBREL flags [MQTT-3.6.1-1]");
    let (id, reason, _) = packets::parse_ack(&body);
    assert_eq!(id, 78, "the PUBREL answers the second PUBREC");
    assert_eq!(reason, 0x92, "PUBREL reason for an unknown id");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn puback_with_an_error_code_is_not_retransmitted_after_reconnect() {
    // [MQTT-4.4.0-2]: a PUBACK >= 0x80 acknowledges the message; it MUST NOT
    // be retransmitted.
    let b = TestBroker::start_default().await;
    let connect = Connect::v5("nacker")
        .clean(false)
        .props(Props::new().u32(prop::SESSION_EXPIRY_INTERVAL, 60));
    let (mut sub, _) = RawClient::connect_with(b.addr, &connect).await;
    sub.subscribe("na/t", 1).await;
    let (mut publisher, _) = RawClient::connect_v5(b.addr, "na-pub", Props::new()).await;
    publisher
        .publish(Publish::new("na/t", b"nacked").qos(1, 0))
        .await;
    let m = sub.recv_publish().await;
    sub.send(&packets::ack_v5(0x40, m.packet_id, 0x80)).await;
    sub.ping().await;
    sub.drop_connection();
    let (mut sub, ack) = RawClient::connect_with(b.addr, &connect).await;
    assert!(ack.session_present);
    sub.expect_no_packet(QUIET).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbound_topic_aliases_do_not_survive_the_connection() {
    // MQTT 5.0 3.3.2.3.4: alias mappings last only for the network
    // connection; after reconnecting (even to the same session) an empty
    // topic with the old alias is a Protocol Error.
    let b = TestBroker::start_default().await;
    let connect = Connect::v5("forgetful-alias")
        .clean(false)
        .props(Props::new().u32(prop::SESSION_EXPIRY_INTERVAL, 60));
    let (mut c, _) = RawClient::connect_with(b.addr, &connect).await;
    c.publish(
        Publish::new("ta/t", b"1")
            .qos(1, 0)
            .props(Props::new().u16(prop::TOPIC_ALIAS, 1)),
    )
    .await;
    c.disconnect().await;
    let (mut c, ack) = RawClient::connect_with(b.addr, &connect).await;
    assert!(ack.session_present);
    c.send(
        &Publish::new("", b"2")
            .qos(1, 5)
            .props(Props::new().u16(prop::TOPIC_ALIAS, 1))
            .bytes(),
    )
    .await;
    let reason = c.expect_error_close().await;
    assert!(
        matches!(reason, Some(0x82) | Some(0x94)),
        "reason {reason:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbound_topic_aliases_start_fresh_on_a_new_connection() {
    // MQTT 5.0 3.3.2.3.4: the server may not use a mapping from an earlier
    // connection; the first message on a topic after reconnect names it.
    let b = TestBroker::start_default().await;
    let connect = Connect::v5("alias-session").clean(false).props(
        Props::new()
            .u32(prop::SESSION_EXPIRY_INTERVAL, 60)
            .u16(prop::TOPIC_ALIAS_MAXIMUM, 5),
    );
    let (mut sub, _) = RawClient::connect_with(b.addr, &connect).await;
    sub.subscribe("as/t", 0).await;
    let (mut publisher, _) = RawClient::connect_v5(b.addr, "as-pub", Props::new()).await;
    for _ in 0..3 {
        publisher
            .publish(Publish::new("as/t", b"x").qos(1, 0))
            .await;
        sub.recv_publish().await;
    }
    sub.disconnect().await;
    let (mut sub, ack) = RawClient::connect_with(b.addr, &connect).await;
    assert!(ack.session_present);
    publisher
        .publish(Publish::new("as/t", b"after").qos(1, 0))
        .await;
    let p = sub.recv_publish().await;
    assert_eq!(
        p.topic, "as/t",
        "first message after reconnect used an alias from the old connection: {:?}",
        p.props
    );
}
