//! QoS 0, 1 and 2 in both directions with rumqttc (3.1.1 and 5.0), QoS
//! downgrade, exactly-once under retransmission, packet identifier reuse and
//! the PUBLISH packets a broker must refuse.

use integration::packets::{self, Props, Publish, kind, parse_ack, prop};
use integration::{Config, QUIET, QoS5, RawClient, TestBroker, V5, V311};
use rumqttc::QoS;

async fn roundtrip_v311(qos: QoS) {
    let b = TestBroker::start_default().await;
    let mut sub = V311::connect(b.addr, "sub").await;
    sub.subscribe("q/t", qos).await;
    let mut publisher = V311::connect(b.addr, "pub").await;
    for i in 0..3 {
        publisher
            .publish("q/t", qos, false, format!("m{i}").as_bytes())
            .await;
    }
    for i in 0..3 {
        let p = sub.recv().await;
        assert_eq!(p.topic, "q/t");
        assert_eq!(p.payload, format!("m{i}").as_bytes(), "in order");
        assert_eq!(p.qos, qos);
        assert!(!p.retain);
    }
    sub.expect_none(QUIET).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qos0_roundtrip_rumqttc_v311() {
    roundtrip_v311(QoS::AtMostOnce).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qos1_roundtrip_rumqttc_v311() {
    roundtrip_v311(QoS::AtLeastOnce).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qos2_roundtrip_rumqttc_v311() {
    roundtrip_v311(QoS::ExactlyOnce).await;
}

async fn roundtrip_v5(qos: QoS5) {
    let b = TestBroker::start_default().await;
    let mut sub = V5::connect(b.addr, "sub5").await;
    sub.subscribe("q5/t", qos).await;
    let mut publisher = V5::connect(b.addr, "pub5").await;
    for i in 0..3 {
        publisher
            .publish("q5/t", qos, false, format!("m{i}").as_bytes())
            .await;
    }
    for i in 0..3 {
        let p = sub.recv().await;
        assert_eq!(p.topic, "q5/t");
        assert_eq!(p.payload, format!("m{i}").as_bytes(), "in order");
        assert_eq!(p.qos, qos);
    }
    sub.expect_none(QUIET).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qos0_roundtrip_rumqttc_v5() {
    roundtrip_v5(QoS5::AtMostOnce).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qos1_roundtrip_rumqttc_v5() {
    roundtrip_v5(QoS5::AtLeastOnce).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qos2_roundtrip_rumqttc_v5() {
    roundtrip_v5(QoS5::ExactlyOnce).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_cross_protocol_versions() {
    // A 3.1.1 publisher reaches a 5.0 subscriber and the other way round.
    let b = TestBroker::start_default().await;
    let mut s5 = V5::connect(b.addr, "s5").await;
    s5.subscribe("x/5", QoS5::ExactlyOnce).await;
    let mut s3 = V311::connect(b.addr, "s3").await;
    s3.subscribe("x/3", QoS::ExactlyOnce).await;
    let mut p3 = V311::connect(b.addr, "p3").await;
    let mut p5 = V5::connect(b.addr, "p5").await;
    p3.publish("x/5", QoS::ExactlyOnce, false, b"from 3.1.1")
        .await;
    p5.publish("x/3", QoS5::ExactlyOnce, false, b"from 5.0")
        .await;
    let m5 = s5.recv().await;
    assert_eq!(
        (m5.payload.as_ref(), m5.qos),
        (&b"from 3.1.1"[..], QoS5::ExactlyOnce)
    );
    let m3 = s3.recv().await;
    assert_eq!(
        (m3.payload.as_ref(), m3.qos),
        (&b"from 5.0"[..], QoS::ExactlyOnce)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_qos_is_minimum_of_publish_and_subscription() {
    // [MQTT-3.8.4-6] (3.1.1) / [MQTT-3.8.4-8] (5.0): delivered QoS is
    // min(published QoS, granted QoS).
    let b = TestBroker::start_default().await;
    let mut sub = RawClient::connect_v311(b.addr, "downgrade").await;
    assert_eq!(sub.subscribe("d/0", 0).await, vec![0]);
    assert_eq!(sub.subscribe("d/1", 1).await, vec![1]);
    assert_eq!(sub.subscribe("d/2", 2).await, vec![2]);
    let mut publisher = RawClient::connect_v311(b.addr, "downgrade-pub").await;
    for (topic, pub_qos, expect) in [
        ("d/0", 2, 0),
        ("d/1", 2, 1),
        ("d/2", 1, 1),
        ("d/2", 0, 0),
        ("d/1", 1, 1),
    ] {
        publisher
            .publish(Publish::new(topic, b"x").qos(pub_qos, 0))
            .await;
        let p = sub.recv_publish_acked().await;
        assert_eq!(
            (p.topic.as_str(), p.qos),
            (topic, expect),
            "published at QoS {pub_qos}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledgements_carry_the_publish_packet_id() {
    // [MQTT-3.3.4-1] / [MQTT-4.3.2-2] / [MQTT-4.3.3-2]: PUBACK and PUBREC
    // echo the packet identifier; PUBCOMP echoes the PUBREL's.
    let b = TestBroker::start_default().await;
    let mut c = RawClient::connect_v311(b.addr, "ids").await;
    c.send(&Publish::new("ids/t", b"1").qos(1, 0x1234).bytes())
        .await;
    let (f, body) = c.recv_packet().await;
    assert_eq!((f, body), (0x40, vec![0x12, 0x34]), "PUBACK 40 02 12 34");
    c.send(&Publish::new("ids/t", b"2").qos(2, 0xFFFF).bytes())
        .await;
    let (f, body) = c.recv_packet().await;
    assert_eq!((f, body), (0x50, vec![0xFF, 0xFF]), "PUBREC 50 02 ff ff");
    c.send(&packets::pubrel(0xFFFF)).await;
    let (f, body) = c.recv_packet().await;
    assert_eq!((f, body), (0x70, vec![0xFF, 0xFF]), "PUBCOMP 70 02 ff ff");
}

async fn qos2_retransmission_delivers_once(v5: bool) {
    // [MQTT-4.3.3-2] (3.1.1) / [MQTT-4.3.3-10] (5.0): until PUBREL, a PUBLISH
    // with the same packet id is answered with PUBREC and MUST NOT cause a
    // duplicate delivery.
    let b = TestBroker::start_default().await;
    let (mut sub, _) = RawClient::connect_with(b.addr, &conn(v5, "eo-sub")).await;
    assert_eq!(sub.subscribe("eo/t", 2).await, vec![2]);
    let (mut publisher, _) = RawClient::connect_with(b.addr, &conn(v5, "eo-pub")).await;
    let mut p = Publish::new("eo/t", b"once").qos(2, 7);
    if v5 {
        p = p.v5();
    }
    publisher.send(&p.bytes()).await;
    expect_ack(&mut publisher, kind::PUBREC, 7).await;
    // Retransmissions with DUP [MQTT-3.3.1-1], twice.
    for _ in 0..2 {
        publisher.send(&p.clone().dup().bytes()).await;
        expect_ack(&mut publisher, kind::PUBREC, 7).await;
    }
    publisher.send(&packets::pubrel(7)).await;
    expect_ack(&mut publisher, kind::PUBCOMP, 7).await;
    let got = sub.recv_publish_acked().await;
    assert_eq!((got.payload_str(), got.qos), ("once", 2));
    sub.expect_no_packet(QUIET).await;
}

fn conn(v5: bool, id: &str) -> packets::Connect {
    if v5 {
        packets::Connect::v5(id)
    } else {
        packets::Connect::v311(id)
    }
}

async fn expect_ack(c: &mut RawClient, ack_kind: u8, id: u16) -> u8 {
    let (f, body) = c.recv_packet().await;
    assert_eq!(
        f >> 4,
        ack_kind,
        "expected {}, got {} {body:02x?}",
        kind::name(ack_kind << 4),
        kind::name(f)
    );
    assert_eq!(
        f & 0x0F,
        if ack_kind == kind::PUBREL { 2 } else { 0 },
        "fixed header flags"
    );
    let (got, reason, _) = parse_ack(&body);
    assert_eq!(got, id, "packet id of {}", kind::name(f));
    reason
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qos2_retransmitted_publish_is_delivered_once_v311() {
    qos2_retransmission_delivers_once(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qos2_retransmitted_publish_is_delivered_once_v5() {
    qos2_retransmission_delivers_once(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qos2_republish_without_dup_is_never_delivered_twice() {
    // A client that reuses an in-flight QoS 2 id without DUP breaks
    // [MQTT-3.3.1-1]; the broker may treat it as a retry (PUBREC) or close
    // the connection, but MUST NOT deliver a duplicate [MQTT-4.3.3-2].
    let b = TestBroker::start_default().await;
    let mut sub = RawClient::connect_v311(b.addr, "nodup-sub").await;
    sub.subscribe("nd/t", 2).await;
    let mut publisher = RawClient::connect_v311(b.addr, "nodup-pub").await;
    let p = Publish::new("nd/t", b"once").qos(2, 8);
    publisher.send(&p.bytes()).await;
    expect_ack(&mut publisher, kind::PUBREC, 8).await;
    publisher.send(&p.bytes()).await;
    let completed = match publisher.next(integration::raw::RECV_TIMEOUT).await {
        integration::raw::Next::Packet(0x50, body) => {
            assert_eq!(parse_ack(&body).0, 8);
            publisher.send(&packets::pubrel(8)).await;
            expect_ack(&mut publisher, kind::PUBCOMP, 8).await;
            true
        }
        integration::raw::Next::Closed => false,
        other => panic!("expected PUBREC or close, got {other:?}"),
    };
    let mut copies = 0;
    while let integration::raw::Next::Packet(f, body) = sub.next(integration::ms(500)).await {
        let got = packets::parse_publish(f, &body, false);
        sub.ack(&got).await;
        copies += 1;
    }
    assert!(copies <= 1, "{copies} copies delivered");
    if completed {
        assert_eq!(copies, 1, "completed QoS 2 flow delivers exactly once");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pubrel_for_unknown_packet_id_gets_pubcomp_0x92_v5() {
    // MQTT 5.0 3.7.2.1: PUBCOMP with 0x92 (Packet Identifier not found).
    let b = TestBroker::start_default().await;
    let (mut c, _) = RawClient::connect_v5(b.addr, "relunknown", Props::new()).await;
    c.send(&packets::pubrel(99)).await;
    let reason = expect_ack(&mut c, kind::PUBCOMP, 99).await;
    assert_eq!(reason, 0x92, "PUBCOMP reason for an unknown id");
    c.ping().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pubrel_for_unknown_packet_id_gets_pubcomp_v311() {
    // [MQTT-4.3.3-2] (3.1.1): the receiver MUST respond to a PUBREL with a
    // PUBCOMP carrying the same id; the connection stays up.
    let b = TestBroker::start_default().await;
    let mut c = RawClient::connect_v311(b.addr, "relunknown3").await;
    c.send(&packets::pubrel(99)).await;
    expect_ack(&mut c, kind::PUBCOMP, 99).await;
    c.ping().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packet_id_reused_after_completion_is_a_new_message() {
    // [MQTT-4.3.2-5]/[MQTT-4.3.3-12] (5.0) / [MQTT-4.3.3-2] (3.1.1): once the
    // flow is complete the id is free, a PUBLISH reusing it is a new message.
    let b = TestBroker::start_default().await;
    let mut sub = RawClient::connect_v311(b.addr, "reuse-sub").await;
    sub.subscribe("reuse/t", 2).await;
    let mut publisher = RawClient::connect_v311(b.addr, "reuse-pub").await;
    for (qos, payload) in [(1, "a"), (1, "b"), (2, "c"), (2, "d")] {
        publisher
            .publish(Publish::new("reuse/t", payload.as_bytes()).qos(qos, 5))
            .await;
    }
    for payload in ["a", "b", "c", "d"] {
        assert_eq!(sub.recv_publish_acked().await.payload_str(), payload);
    }
    sub.expect_no_packet(QUIET).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qos1_reused_packet_id_before_puback_is_still_acknowledged() {
    // QoS 1 is at-least-once: a retransmission (DUP) before PUBACK is
    // acknowledged again; the subscriber gets it at least once.
    let b = TestBroker::start_default().await;
    let mut sub = RawClient::connect_v311(b.addr, "al1-sub").await;
    sub.subscribe("al1/t", 1).await;
    let mut publisher = RawClient::connect_v311(b.addr, "al1-pub").await;
    let p = Publish::new("al1/t", b"x").qos(1, 3);
    publisher.send(&p.bytes()).await;
    publisher.send(&p.clone().dup().bytes()).await;
    expect_ack(&mut publisher, kind::PUBACK, 3).await;
    expect_ack(&mut publisher, kind::PUBACK, 3).await;
    let first = sub.recv_publish_acked().await;
    assert_eq!(first.payload_str(), "x");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dup_flag_is_not_propagated_to_subscribers() {
    // [MQTT-3.3.1-3]: the outgoing DUP flag is set only on retransmission.
    let b = TestBroker::start_default().await;
    let mut sub = RawClient::connect_v311(b.addr, "dup-sub").await;
    sub.subscribe("dup/t", 1).await;
    let mut publisher = RawClient::connect_v311(b.addr, "dup-pub").await;
    publisher
        .publish(Publish::new("dup/t", b"x").qos(1, 9).dup())
        .await;
    let p = sub.recv_publish_acked().await;
    assert!(!p.dup, "DUP must not be propagated");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_with_qos_3_closes_connection() {
    // [MQTT-3.3.1-4] both QoS bits set: close (5.0: malformed, DISCONNECT
    // 0x81 optional).
    let b = TestBroker::start_default().await;
    let mut c = RawClient::connect_v311(b.addr, "qos3").await;
    c.send(&[0x36, 0x07, 0x00, 0x03, b'a', b'/', b'b', 0x00, 0x01])
        .await;
    c.expect_closed().await;
    let (mut c, _) = RawClient::connect_v5(b.addr, "qos3v5", Props::new()).await;
    c.send(&[0x36, 0x08, 0x00, 0x03, b'a', b'/', b'b', 0x00, 0x01, 0x00])
        .await;
    let reason = c.expect_error_close().await;
    assert!(matches!(reason, None | Some(0x81)), "reason {reason:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qos1_publish_with_packet_id_zero_closes_connection() {
    // [MQTT-2.3.1-1] (3.1.1) / [MQTT-2.2.1-3] (5.0): QoS > 0 needs a non-zero id.
    let b = TestBroker::start_default().await;
    let mut c = RawClient::connect_v311(b.addr, "pid0").await;
    c.send(&Publish::new("a/b", b"x").qos(1, 0).bytes()).await;
    c.expect_closed().await;
    let (mut c, _) = RawClient::connect_v5(b.addr, "pid0v5", Props::new()).await;
    c.send(&Publish::new("a/b", b"x").qos(2, 0).v5().bytes())
        .await;
    c.expect_error_close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wildcard_in_publish_topic_closes_v311_connection() {
    // [MQTT-3.3.2-2] the topic name MUST NOT contain wildcards.
    let b = TestBroker::start_default().await;
    for topic in ["a/+", "a/#", "#", "+", "a+b"] {
        let mut c = RawClient::connect_v311(b.addr, "wild").await;
        c.send(&Publish::new(topic, b"x").bytes()).await;
        c.expect_closed().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wildcard_in_publish_topic_gets_v5_disconnect_0x90() {
    // [MQTT-3.3.2-2]: DISCONNECT 0x90 (Topic Name invalid).
    let b = TestBroker::start_default().await;
    for topic in ["a/+", "a/#"] {
        let (mut c, _) = RawClient::connect_v5(b.addr, "wild5", Props::new()).await;
        c.send(&Publish::new(topic, b"x").qos(1, 1).v5().bytes())
            .await;
        c.expect_disconnect(0x90).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_never_receive_wildcard_topics_from_rejected_publishes() {
    // [MQTT-3.3.2-2] a refused PUBLISH is not routed.
    let b = TestBroker::start_default().await;
    let mut sub = RawClient::connect_v311(b.addr, "watch").await;
    sub.subscribe("#", 0).await;
    let mut c = RawClient::connect_v311(b.addr, "wild").await;
    c.send(&Publish::new("a/+", b"x").bytes()).await;
    c.expect_closed().await;
    sub.expect_no_packet(QUIET).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_utf8_in_topic_closes_connection() {
    // [MQTT-1.5.3-1] (3.1.1) / [MQTT-1.5.4-1] (5.0): ill-formed UTF-8
    // (a lone continuation byte, a UTF-16 surrogate, an overlong NUL).
    let b = TestBroker::start_default().await;
    for topic in [&b"a/\x80"[..], b"a/\xED\xA0\x80", b"a/\xC0\x80"] {
        let mut c = RawClient::connect_v311(b.addr, "utf8").await;
        c.send(&Publish::new("", b"x").raw_topic(topic).bytes())
            .await;
        c.expect_closed().await;
        let (mut c, _) = RawClient::connect_v5(b.addr, "utf8v5", Props::new()).await;
        c.send(&Publish::new("", b"x").raw_topic(topic).v5().bytes())
            .await;
        c.expect_error_close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn null_character_in_topic_closes_connection() {
    // [MQTT-1.5.3-2] (3.1.1) / [MQTT-1.5.4-2] (5.0): U+0000 is not allowed.
    let b = TestBroker::start_default().await;
    let mut c = RawClient::connect_v311(b.addr, "nul").await;
    c.send(&Publish::new("", b"x").raw_topic(b"a/\0").bytes())
        .await;
    c.expect_closed().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_topic_name_closes_connection() {
    // [MQTT-4.7.3-1] topic names are at least one character long; in 5.0 an
    // empty topic without a Topic Alias is a protocol error (0x82).
    let b = TestBroker::start_default().await;
    let mut c = RawClient::connect_v311(b.addr, "empty").await;
    c.send(&Publish::new("", b"x").bytes()).await;
    c.expect_closed().await;
    let (mut c, _) = RawClient::connect_v5(b.addr, "empty5", Props::new()).await;
    c.send(&Publish::new("", b"x").v5().bytes()).await;
    let reason = c.expect_error_close().await;
    assert!(matches!(reason, None | Some(0x82)), "reason {reason:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qos2_publish_over_maximum_qos_gets_disconnect_0x9b() {
    // MQTT 5.0 3.2.2.3.4: Maximum QoS 1 in CONNACK; a QoS 2 PUBLISH gets
    // DISCONNECT 0x9B (QoS not supported).
    let mut config = Config::default();
    config.mqtt.maximum_qos = 1;
    let b = TestBroker::start(config).await;
    let (mut c, ack) = RawClient::connect_v5(b.addr, "maxqos", Props::new()).await;
    assert_eq!(
        ack.props.int(prop::MAXIMUM_QOS),
        Some(1),
        "[MQTT-3.2.2-9] CONNACK Maximum QoS"
    );
    // [MQTT-3.2.2-10] SUBSCRIBE with QoS 2 is still accepted (granted <= 1).
    let granted = c.subscribe("mq/t", 2).await;
    assert!(
        matches!(granted.as_slice(), [0] | [1]),
        "SUBACK {granted:?}"
    );
    c.publish(Publish::new("mq/t", b"ok").qos(1, 0)).await;
    let p = c.recv_publish_acked().await;
    assert_eq!((p.payload_str(), p.qos), ("ok", 1));
    c.send(&Publish::new("mq/t", b"no").qos(2, 50).v5().bytes())
        .await;
    c.expect_disconnect(0x9B).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn will_qos_above_maximum_qos_is_refused_with_0x9b() {
    // [MQTT-3.2.2-12]: a Will QoS beyond the server's capability: CONNACK
    // 0x9B (QoS not supported), then close.
    let mut config = Config::default();
    config.mqtt.maximum_qos = 0;
    let b = TestBroker::start(config).await;
    let mut c = RawClient::connect(b.addr).await;
    c.expect_refused(
        &packets::Connect::v5("willq").will(packets::Will::new("w/t", b"x").qos(1)),
        0x9B,
    )
    .await;
    let (mut ok, ack) = RawClient::connect_v5(b.addr, "q0", Props::new()).await;
    assert_eq!(ack.props.int(prop::MAXIMUM_QOS), Some(0));
    ok.send(&Publish::new("q/t", b"x").qos(1, 1).v5().bytes())
        .await;
    ok.expect_disconnect(0x9B).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledgements_with_reason_codes_and_properties_are_understood() {
    // MQTT 5.0 3.4-3.7: PUBACK, PUBREC, PUBREL and PUBCOMP may carry a reason
    // code and properties (Reason String, User Property).
    let b = TestBroker::start_default().await;
    let (mut sub, _) = RawClient::connect_v5(
        b.addr,
        "longacks",
        Props::new().u16(prop::RECEIVE_MAXIMUM, 1),
    )
    .await;
    sub.subscribe("la/t", 2).await;
    let (mut publisher, _) = RawClient::connect_v5(b.addr, "longacks-pub", Props::new()).await;
    let long_ack = |first: u8, id: u16| {
        let mut body = id.to_be_bytes().to_vec();
        body.push(0x00);
        body.extend(
            Props::new()
                .string(prop::REASON_STRING, "fine")
                .user("k", "v")
                .encode(),
        );
        packets::frame(first, &body)
    };
    // Inbound QoS 2 with a long-form PUBREL.
    publisher
        .send(&Publish::new("la/t", b"one").qos(2, 1).v5().bytes())
        .await;
    assert_eq!(publisher.recv_kind(kind::PUBREC).await.0, 0x50);
    publisher.send(&long_ack(0x62, 1)).await;
    let (_, body) = publisher.recv_kind(kind::PUBCOMP).await;
    assert_eq!(parse_ack(&body).0, 1);
    // Outbound QoS 2 completed with long-form PUBREC and PUBCOMP.
    let m = sub.recv_publish().await;
    sub.send(&long_ack(0x50, m.packet_id)).await;
    assert_eq!(sub.recv_kind(kind::PUBREL).await.0, 0x62);
    sub.send(&long_ack(0x70, m.packet_id)).await;
    // Outbound QoS 1 completed with a long-form PUBACK; the window of 1 frees.
    publisher
        .publish(Publish::new("la/t", b"two").qos(1, 0))
        .await;
    publisher
        .publish(Publish::new("la/t", b"three").qos(1, 0))
        .await;
    for want in ["two", "three"] {
        let m = sub.recv_publish().await;
        assert_eq!(m.payload_str(), want);
        sub.send(&long_ack(0x40, m.packet_id)).await;
    }
    sub.send(&packets::disconnect_v5(
        0x00,
        &Props::new().string(prop::REASON_STRING, "bye"),
    ))
    .await;
    sub.expect_closed().await;
}
