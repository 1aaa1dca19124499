//! Topic filters: `+`, `#`, `$`-topics, overlapping subscriptions,
//! subscription identifiers, no-local, retain-as-published, unsubscribe and
//! the filters a broker must refuse.

use std::collections::BTreeSet;

use integration::packets::{self, Props, Publish, kind, prop, sub_options};
use integration::raw::Next;
use integration::{Config, QUIET, RawClient, TestBroker, ms};

/// Publishes each topic at QoS 0 from a fresh 3.1.1 client, then a marker
/// on `marker`, and returns the topics the subscriber got before the marker.
async fn delivered_topics(
    sub: &mut RawClient,
    addr: std::net::SocketAddr,
    topics: &[&str],
) -> Vec<String> {
    let mut publisher = RawClient::connect_v311(addr, "topics-pub").await;
    for t in topics {
        publisher
            .publish(Publish::new(t, t.as_bytes()).qos(1, 0))
            .await;
    }
    publisher
        .publish(Publish::new("marker", b"end").qos(1, 0))
        .await;
    let mut got = Vec::new();
    loop {
        let p = sub.recv_publish_acked().await;
        if p.topic == "marker" {
            return got;
        }
        got.push(p.topic);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_level_wildcard_matches_exactly_one_level() {
    // [MQTT-4.7.1-3] `+` matches one whole level (possibly empty).
    let b = TestBroker::start_default().await;
    let mut sub = RawClient::connect_v311(b.addr, "plus").await;
    sub.subscribe_with(&[("a/+/c", 1), ("+", 1), ("marker", 1)], Props::new())
        .await;
    let got = delivered_topics(
        &mut sub,
        b.addr,
        &[
            "a/b/c", "a/b/d", "a/b/x/c", "a//c", "a/c", "top", "x/y", "/c",
        ],
    )
    .await;
    assert_eq!(got, vec!["a/b/c", "a//c", "top"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_level_wildcard_matches_parent_and_descendants() {
    // [MQTT-4.7.1-2] `a/#` matches `a`, `a/b`, `a/b/c`, not `ab` or `b/a`.
    let b = TestBroker::start_default().await;
    let mut sub = RawClient::connect_v311(b.addr, "hash").await;
    sub.subscribe_with(&[("a/#", 1), ("marker", 1)], Props::new())
        .await;
    let got = delivered_topics(&mut sub, b.addr, &["a", "a/b", "a/b/c", "ab", "b/a", "a/"]).await;
    assert_eq!(got, vec!["a", "a/b", "a/b/c", "a/"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_matching_is_case_sensitive_and_exact() {
    // 4.7.3: topics are case sensitive; no normalisation of spaces or slashes.
    let b = TestBroker::start_default().await;
    let mut sub = RawClient::connect_v311(b.addr, "exact").await;
    sub.subscribe_with(&[("Room/Temp", 1), ("marker", 1)], Props::new())
        .await;
    let got = delivered_topics(
        &mut sub,
        b.addr,
        &[
            "room/temp",
            "Room/Temp",
            "Room/Temp/",
            "/Room/Temp",
            "Room /Temp",
        ],
    )
    .await;
    assert_eq!(got, vec!["Room/Temp"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dollar_topics_are_not_matched_by_leading_wildcards() {
    // [MQTT-4.7.2-1] `#` and `+/...` do not match topics starting with `$`.
    let b = TestBroker::start_default().await;
    let mut wild = RawClient::connect_v311(b.addr, "wild").await;
    wild.subscribe_with(&[("#", 1), ("+/x", 1), ("+/+", 1)], Props::new())
        .await;
    let mut dollar = RawClient::connect_v311(b.addr, "dollar").await;
    dollar
        .subscribe_with(&[("$app/#", 1), ("$app/+", 1)], Props::new())
        .await;
    let mut publisher = RawClient::connect_v311(b.addr, "dollar-pub").await;
    publisher
        .publish(Publish::new("$app/x", b"dollar").qos(1, 0))
        .await;
    publisher
        .publish(Publish::new("plain/x", b"plain").qos(1, 0))
        .await;
    let p = wild.recv_publish_acked().await;
    assert_eq!(
        p.topic, "plain/x",
        "wildcard subscriber got a $-topic first"
    );
    wild.expect_no_packet(QUIET).await;
    let p = dollar.recv_publish_acked().await;
    assert_eq!(p.topic, "$app/x", "an explicit $ filter matches");
    dollar.expect_no_packet(QUIET).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlapping_subscriptions_v311_deliver_one_copy_at_highest_qos() {
    // [MQTT-3.3.5-1] (3.1.1) deliver respecting the maximum QoS of all
    // matching subscriptions; the issue asks for one copy in 3.1.1.
    let b = TestBroker::start_default().await;
    let mut sub = RawClient::connect_v311(b.addr, "overlap").await;
    assert_eq!(
        sub.subscribe_with(&[("o/#", 0), ("o/+", 2), ("o/t", 1)], Props::new())
            .await,
        vec![0, 2, 1]
    );
    let mut publisher = RawClient::connect_v311(b.addr, "overlap-pub").await;
    publisher.publish(Publish::new("o/t", b"x").qos(2, 0)).await;
    let p = sub.recv_publish_acked().await;
    assert_eq!((p.topic.as_str(), p.qos), ("o/t", 2));
    sub.expect_no_packet(QUIET).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlapping_subscriptions_v5_carry_every_subscription_identifier() {
    // [MQTT-3.3.4-3] / [MQTT-3.3.4-4] / [MQTT-3.3.4-5]: a single copy carries
    // all matching identifiers; separate copies carry their own.
    let b = TestBroker::start_default().await;
    let (mut sub, _) = RawClient::connect_v5(b.addr, "subids", Props::new()).await;
    sub.subscribe_with(
        &[("s/#", 1)],
        Props::new().varint(prop::SUBSCRIPTION_IDENTIFIER, 1),
    )
    .await;
    sub.subscribe_with(
        &[("s/+", 1)],
        Props::new().varint(prop::SUBSCRIPTION_IDENTIFIER, 268_435_455),
    )
    .await;
    sub.subscribe_with(&[("s/t", 0)], Props::new()).await; // no identifier
    let (mut publisher, _) = RawClient::connect_v5(b.addr, "subids-pub", Props::new()).await;
    publisher.publish(Publish::new("s/t", b"x").qos(1, 0)).await;
    let mut ids = Vec::new();
    let mut copies = 0;
    let mut max_qos = 0;
    while let Next::Packet(f, body) = sub.next(ms(500)).await {
        let p = packets::parse_publish(f, &body, true);
        sub.ack(&p).await;
        copies += 1;
        max_qos = max_qos.max(p.qos);
        ids.extend(p.props.subscription_ids());
    }
    assert!((1..=3).contains(&copies), "{copies} copies");
    ids.sort_unstable();
    assert_eq!(
        ids,
        vec![1, 268_435_455],
        "every identifier exactly once over the copies"
    );
    assert_eq!(
        max_qos, 1,
        "[MQTT-3.3.4-2] highest QoS of the matching subscriptions"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscription_identifier_is_sent_with_matching_messages_only() {
    // MQTT 5.0 3.8.2.1.2: the identifier is associated with the subscription.
    let b = TestBroker::start_default().await;
    let (mut sub, _) = RawClient::connect_v5(b.addr, "subid", Props::new()).await;
    sub.subscribe_with(
        &[("id/a", 0)],
        Props::new().varint(prop::SUBSCRIPTION_IDENTIFIER, 42),
    )
    .await;
    sub.subscribe_with(&[("id/b", 0)], Props::new()).await;
    let (mut publisher, _) = RawClient::connect_v5(b.addr, "subid-pub", Props::new()).await;
    publisher.publish(Publish::new("id/a", b"a")).await;
    publisher.publish(Publish::new("id/b", b"b")).await;
    let a = sub.recv_publish().await;
    assert_eq!(
        (a.topic.as_str(), a.props.subscription_ids()),
        ("id/a", vec![42])
    );
    let b2 = sub.recv_publish().await;
    assert_eq!(
        (b2.topic.as_str(), b2.props.subscription_ids()),
        ("id/b", vec![])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscription_identifier_zero_is_a_protocol_error() {
    // MQTT 5.0 3.8.2.1.2: a Subscription Identifier of 0 is a Protocol Error.
    let b = TestBroker::start_default().await;
    let (mut c, _) = RawClient::connect_v5(b.addr, "subid0", Props::new()).await;
    c.send(&packets::subscribe_v5(
        1,
        &[("z/t", 0)],
        &Props::new().varint(prop::SUBSCRIPTION_IDENTIFIER, 0),
    ))
    .await;
    let reason = c.expect_error_close().await;
    assert!(
        matches!(reason, None | Some(0x82) | Some(0x81)),
        "reason {reason:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_local_suppresses_own_messages() {
    // [MQTT-3.8.3-3] No Local: not forwarded to the publishing connection.
    let b = TestBroker::start_default().await;
    let (mut me, _) = RawClient::connect_v5(b.addr, "nolocal", Props::new()).await;
    me.subscribe("nl/t", sub_options(1, true, false, 0)).await;
    me.publish(Publish::new("nl/t", b"mine").qos(1, 0)).await;
    let (mut other, _) = RawClient::connect_v5(b.addr, "nolocal-other", Props::new()).await;
    other
        .publish(Publish::new("nl/t", b"theirs").qos(1, 0))
        .await;
    let p = me.recv_publish_acked().await;
    assert_eq!(p.payload_str(), "theirs");
    me.expect_no_packet(QUIET).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_no_local_own_messages_are_delivered() {
    let b = TestBroker::start_default().await;
    let (mut me, _) = RawClient::connect_v5(b.addr, "local", Props::new()).await;
    me.subscribe("l/t", sub_options(1, false, false, 0)).await;
    me.publish(Publish::new("l/t", b"mine").qos(1, 0)).await;
    assert_eq!(me.recv_publish_acked().await.payload_str(), "mine");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retain_as_published_keeps_the_retain_flag_on_live_delivery() {
    // [MQTT-3.3.1-12] RAP 0: RETAIN forwarded as 0; [MQTT-3.3.1-13] RAP 1:
    // RETAIN as in the received PUBLISH.
    let b = TestBroker::start_default().await;
    let (mut rap, _) = RawClient::connect_v5(b.addr, "rap", Props::new()).await;
    rap.subscribe("rap/t", sub_options(0, false, true, 2)).await;
    let (mut plain, _) = RawClient::connect_v5(b.addr, "norap", Props::new()).await;
    plain
        .subscribe("rap/t", sub_options(0, false, false, 2))
        .await;
    let (mut publisher, _) = RawClient::connect_v5(b.addr, "rap-pub", Props::new()).await;
    publisher
        .publish(Publish::new("rap/t", b"r").retain().qos(1, 0))
        .await;
    publisher
        .publish(Publish::new("rap/t", b"n").qos(1, 0))
        .await;
    let (r, n) = (rap.recv_publish().await, rap.recv_publish().await);
    assert_eq!(
        (r.payload_str(), r.retain, n.payload_str(), n.retain),
        ("r", true, "n", false)
    );
    let (r, n) = (plain.recv_publish().await, plain.recv_publish().await);
    assert_eq!(
        (r.payload_str(), r.retain, n.payload_str(), n.retain),
        ("r", false, "n", false)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsubscribe_stops_delivery_v311() {
    // [MQTT-3.10.4-1] the matching subscription is deleted; [MQTT-3.10.4-4]
    // UNSUBACK with the same packet id.
    let b = TestBroker::start_default().await;
    let mut sub = RawClient::connect_v311(b.addr, "unsub").await;
    sub.subscribe("u/t", 1).await;
    sub.subscribe("u/other", 1).await;
    assert!(
        sub.unsubscribe("u/t").await.is_empty(),
        "3.1.1 UNSUBACK has no payload"
    );
    let mut publisher = RawClient::connect_v311(b.addr, "unsub-pub").await;
    publisher
        .publish(Publish::new("u/t", b"gone").qos(1, 0))
        .await;
    publisher
        .publish(Publish::new("u/other", b"still").qos(1, 0))
        .await;
    assert_eq!(sub.recv_publish_acked().await.payload_str(), "still");
    sub.expect_no_packet(QUIET).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsubscribe_stops_delivery_v5() {
    let b = TestBroker::start_default().await;
    let (mut sub, _) = RawClient::connect_v5(b.addr, "unsub5", Props::new()).await;
    sub.subscribe("u5/+", 1).await;
    assert_eq!(
        sub.unsubscribe("u5/+").await,
        vec![0x00],
        "UNSUBACK success"
    );
    let (mut publisher, _) = RawClient::connect_v5(b.addr, "unsub5-pub", Props::new()).await;
    publisher
        .publish(Publish::new("u5/t", b"gone").qos(1, 0))
        .await;
    sub.expect_no_packet(QUIET).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsubscribe_of_unknown_filter_gets_0x11_v5() {
    // MQTT 5.0 3.11.3: 0x11 No subscription existed.
    let b = TestBroker::start_default().await;
    let (mut c, _) = RawClient::connect_v5(b.addr, "unsub-unknown", Props::new()).await;
    c.subscribe("known", 0).await;
    let id = c.next_packet_id();
    c.send(&packets::unsubscribe_v5(id, &["unknown", "known", "kno/+"]))
        .await;
    let (_, body) = c.recv_kind(kind::UNSUBACK).await;
    let (got, codes) = packets::parse_suback(&body, true);
    assert_eq!(
        (got, codes),
        (id, vec![0x11, 0x00, 0x11]),
        "one reason code per filter, in order"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsubscribe_of_unknown_filter_is_acknowledged_v311() {
    // [MQTT-3.10.4-5] UNSUBACK even when nothing was deleted.
    let b = TestBroker::start_default().await;
    let mut c = RawClient::connect_v311(b.addr, "unsub-unknown3").await;
    c.unsubscribe("never/subscribed").await;
    c.ping().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_filters_get_suback_0x8f_v5() {
    // [MQTT-4.7.1-1..3] invalid filters: 0x8F (Topic Filter invalid), one
    // reason code per filter [MQTT-3.8.4-6] (5.0), valid ones still granted.
    let b = TestBroker::start_default().await;
    let (mut c, _) = RawClient::connect_v5(b.addr, "badfilter", Props::new()).await;
    let codes = c
        .subscribe_with(
            &[
                ("a/#/b", 0),
                ("ok/+", 1),
                ("a/b#", 0),
                ("a+/b", 0),
                ("", 0),
                ("ok/#", 2),
            ],
            Props::new(),
        )
        .await;
    assert_eq!(codes, vec![0x8F, 0x01, 0x8F, 0x8F, 0x8F, 0x02]);
    c.ping().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_filter_v311_is_refused_with_0x80_or_closes() {
    // 3.1.1 4.7.1: a malformed filter either gets SUBACK 0x80 or the
    // connection is closed; it never becomes a subscription.
    let b = TestBroker::start_default().await;
    for filter in ["a/#/b", "a/b#", "a+/b"] {
        let mut c = RawClient::connect_v311(b.addr, "badfilter3").await;
        c.send(&packets::subscribe(1, &[(filter, 0)])).await;
        match c.next(integration::raw::RECV_TIMEOUT).await {
            Next::Closed => {}
            Next::Packet(0x90, body) => assert_eq!(body, vec![0x00, 0x01, 0x80], "filter {filter}"),
            other => panic!("filter {filter}: expected SUBACK 0x80 or close, got {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resubscribing_replaces_the_subscription() {
    // [MQTT-3.8.4-3] an identical filter replaces the existing subscription
    // (here: new maximum QoS), no second copy.
    let b = TestBroker::start_default().await;
    let mut sub = RawClient::connect_v311(b.addr, "resub").await;
    sub.subscribe("r/t", 2).await;
    sub.subscribe("r/t", 0).await;
    let mut publisher = RawClient::connect_v311(b.addr, "resub-pub").await;
    publisher.publish(Publish::new("r/t", b"x").qos(2, 0)).await;
    let p = sub.recv_publish().await;
    assert_eq!(p.qos, 0, "the replacing subscription's QoS applies");
    sub.expect_no_packet(QUIET).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_without_filters_closes_connection() {
    // [MQTT-3.8.3-3] (3.1.1) / [MQTT-3.8.3-2] (5.0): at least one filter.
    let b = TestBroker::start_default().await;
    let mut c = RawClient::connect_v311(b.addr, "nofilter").await;
    c.send(&packets::subscribe(1, &[])).await;
    c.expect_closed().await;
    let (mut c, _) = RawClient::connect_v5(b.addr, "nofilter5", Props::new()).await;
    c.send(&packets::subscribe_v5(1, &[], &Props::new())).await;
    c.expect_error_close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_with_wrong_header_flags_closes_connection() {
    // [MQTT-3.8.1-1] SUBSCRIBE fixed header flags MUST be 0010.
    let b = TestBroker::start_default().await;
    let mut c = RawClient::connect_v311(b.addr, "subflags").await;
    let mut bytes = packets::subscribe(1, &[("a", 0)]);
    bytes[0] = 0x80;
    c.send(&bytes).await;
    c.expect_closed().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_with_requested_qos_3_or_reserved_bits_closes_connection() {
    // [MQTT-3.8.3-4] (3.1.1) reserved bits / QoS 3: malformed; 5.0
    // [MQTT-3.8.3-5] reserved bits 6-7, retain handling 3 is a protocol error.
    let b = TestBroker::start_default().await;
    let mut c = RawClient::connect_v311(b.addr, "subqos3").await;
    c.send(&packets::subscribe(1, &[("a", 3)])).await;
    c.expect_closed().await;
    let mut c = RawClient::connect_v311(b.addr, "subresv").await;
    c.send(&packets::subscribe(1, &[("a", 0x40)])).await;
    c.expect_closed().await;
    let (mut c, _) = RawClient::connect_v5(b.addr, "subrh3", Props::new()).await;
    c.send(&packets::subscribe_v5(1, &[("a", 0x30)], &Props::new()))
        .await;
    c.expect_error_close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wildcards_disabled_refuse_wildcard_filters_with_0xa2() {
    // MQTT 5.0 3.2.2.3.11: Wildcard Subscription Available 0; 0xA2 for
    // wildcard filters.
    let mut config = Config::default();
    config.mqtt.wildcard_subscriptions = false;
    let b = TestBroker::start(config).await;
    let (mut c, ack) = RawClient::connect_v5(b.addr, "nowild", Props::new()).await;
    assert_eq!(
        ack.props.int(prop::WILDCARD_SUBSCRIPTION_AVAILABLE),
        Some(0)
    );
    assert_eq!(
        c.subscribe_with(&[("w/+", 0), ("w/#", 0), ("w/t", 0)], Props::new())
            .await,
        vec![0xA2, 0xA2, 0x00]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscription_identifiers_disabled_refuse_them() {
    // MQTT 5.0 3.2.2.3.12: Subscription Identifiers Available 0; a SUBSCRIBE
    // with one is answered with DISCONNECT 0xA1.
    let mut config = Config::default();
    config.mqtt.subscription_identifiers = false;
    let b = TestBroker::start(config).await;
    let (mut c, ack) = RawClient::connect_v5(b.addr, "nosubid", Props::new()).await;
    assert_eq!(
        ack.props.int(prop::SUBSCRIPTION_IDENTIFIER_AVAILABLE),
        Some(0)
    );
    c.send(&packets::subscribe_v5(
        1,
        &[("a", 0)],
        &Props::new().varint(prop::SUBSCRIPTION_IDENTIFIER, 5),
    ))
    .await;
    c.expect_disconnect(0xA1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscription_limit_refuses_extra_filters() {
    // limits.max_subscriptions_per_session: the extra filter is refused
    // (5.0: 0x97 Quota exceeded or another failure code; 3.1.1: 0x80).
    let mut config = Config::default();
    config.limits.max_subscriptions_per_session = 2;
    let b = TestBroker::start(config).await;
    let (mut c, _) = RawClient::connect_v5(b.addr, "sublimit", Props::new()).await;
    let codes = c
        .subscribe_with(&[("l/1", 0), ("l/2", 0), ("l/3", 0)], Props::new())
        .await;
    assert_eq!(&codes[..2], &[0, 0]);
    assert!(codes[2] >= 0x80, "third subscription granted: {codes:?}");
    // Re-subscribing an existing filter is a replacement, not a new one.
    assert_eq!(c.subscribe("l/1", 1).await, vec![1]);
    let mut c3 = RawClient::connect_v311(b.addr, "sublimit3").await;
    assert_eq!(
        c3.subscribe_with(&[("l/1", 0), ("l/2", 0), ("l/3", 0)], Props::new())
            .await,
        vec![0, 0, 0x80]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_subscribe_with_many_filters_is_handled_like_many_subscribes() {
    // [MQTT-3.8.4-4] (3.1.1) / [MQTT-3.8.4-5] (5.0)
    let b = TestBroker::start_default().await;
    let mut sub = RawClient::connect_v311(b.addr, "many").await;
    let filters: Vec<String> = (0..20).map(|i| format!("m/{i}")).collect();
    let pairs: Vec<(&str, u8)> = filters.iter().map(|f| (f.as_str(), 1)).collect();
    assert_eq!(sub.subscribe_with(&pairs, Props::new()).await, vec![1; 20]);
    let mut publisher = RawClient::connect_v311(b.addr, "many-pub").await;
    for f in &filters {
        publisher.publish(Publish::new(f, b"x").qos(1, 0)).await;
    }
    let mut got = BTreeSet::new();
    for _ in 0..20 {
        got.insert(sub.recv_publish_acked().await.topic);
    }
    assert_eq!(got.len(), 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retained_dollar_topics_are_not_sent_to_leading_wildcard_subscriptions() {
    // [MQTT-4.7.2-1] holds for retained messages delivered on subscribe too
    // ($SYS values are retained; here with $SYS published every second).
    let mut config = Config::default();
    config.sys.interval_secs = 1;
    let b = TestBroker::start(config).await;
    let mut p = RawClient::connect_v311(b.addr, "rd-pub").await;
    p.publish(Publish::new("$app/state", b"hidden").qos(1, 0).retain())
        .await;
    p.publish(Publish::new("app/state", b"visible").qos(1, 0).retain())
        .await;
    tokio::time::sleep(ms(1300)).await; // $SYS values have been published
    let mut c = RawClient::connect_v311(b.addr, "rd-sub").await;
    c.subscribe_with(&[("#", 0), ("+/state", 0)], Props::new())
        .await;
    let mut topics = BTreeSet::new();
    while let Next::Packet(f, body) = c.next(ms(1500)).await {
        let m = packets::parse_publish(f, &body, false);
        assert!(
            !m.topic.starts_with('$'),
            "{} delivered to a leading wildcard",
            m.topic
        );
        topics.insert(m.topic);
    }
    assert!(topics.contains("app/state"), "got {topics:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_local_subscription_does_not_contribute_to_an_overlapping_delivery() {
    // [MQTT-3.8.3-3] with [MQTT-3.3.4-3]: an own message matching a No Local
    // subscription (id 1) and an ordinary one (id 2) arrives for the
    // ordinary one only, so it carries identifier 2 and never 1.
    let b = TestBroker::start_default().await;
    let (mut c, _) = RawClient::connect_v5(b.addr, "mixed", Props::new()).await;
    c.subscribe_with(
        &[("nlo/#", sub_options(1, true, false, 0))],
        Props::new().varint(prop::SUBSCRIPTION_IDENTIFIER, 1),
    )
    .await;
    c.subscribe_with(
        &[("nlo/+", sub_options(0, false, false, 0))],
        Props::new().varint(prop::SUBSCRIPTION_IDENTIFIER, 2),
    )
    .await;
    c.publish(Publish::new("nlo/t", b"own").qos(1, 0)).await;
    let mut ids = Vec::new();
    while let Next::Packet(f, body) = c.next(ms(500)).await {
        let p = packets::parse_publish(f, &body, true);
        assert_eq!(p.qos, 0, "the No Local subscription's QoS 1 must not apply");
        c.ack(&p).await;
        ids.extend(p.props.subscription_ids());
    }
    assert_eq!(ids, vec![2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_level_limit_refuses_deep_filters_and_topics() {
    // limits.max_topic_levels: a deeper filter is refused in SUBACK, a deeper
    // topic name is not routed.
    let mut config = Config::default();
    config.limits.max_topic_levels = 3;
    let b = TestBroker::start(config).await;
    let (mut c, _) = RawClient::connect_v5(b.addr, "levels", Props::new()).await;
    let codes = c
        .subscribe_with(&[("a/b/c", 0), ("a/b/c/d", 0), ("#", 0)], Props::new())
        .await;
    assert_eq!(codes[0], 0);
    assert!(codes[1] >= 0x80, "a 4-level filter was granted: {codes:?}");
    let mut p = RawClient::connect_v311(b.addr, "deep-pub").await;
    p.send(&Publish::new("a/b/c/d", b"deep").bytes()).await;
    let _ = p.next(ms(200)).await; // closed or ignored, either is fine
    let mut p = RawClient::connect_v311(b.addr, "flat-pub").await;
    p.publish(Publish::new("a/b/c", b"flat").qos(1, 0)).await;
    let m = c.recv_publish().await;
    assert_eq!(m.payload_str(), "flat", "the 4-level topic was routed");
}
