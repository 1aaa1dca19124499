//! Bad input from the network: truncated and malformed packets, packets a
//! client may not send, bad fixed-header flags, MQTT 5 property errors and a
//! deterministic fuzz run. Each gets the spec's answer (close, or DISCONNECT
//! with a reason code) and never takes the broker down.

use std::time::Duration;

use integration::packets::{self, Connect, Props, Publish, prop};
use integration::raw::Next;
use integration::{QUIET, RawClient, TestBroker, ms};

/// Sends `bytes` after a 3.1.1 CONNECT; returns a failure description unless
/// the broker closes the connection.
async fn v311_closes_on(addr: std::net::SocketAddr, bytes: &[u8], what: &str) -> Option<String> {
    let mut c = RawClient::connect_v311(addr, "bad").await;
    c.send(bytes).await;
    match c.next(ms(2000)).await {
        Next::Closed => None,
        other => Some(format!(
            "{what}: expected the connection to be closed, got {other:?}"
        )),
    }
}

async fn v5_error_closes_on(addr: std::net::SocketAddr, bytes: &[u8], what: &str) -> Option<u8> {
    let (mut c, _) = RawClient::connect_v5(addr, "bad5", Props::new()).await;
    c.send(bytes).await;
    match c.next(integration::raw::RECV_TIMEOUT).await {
        Next::Closed => None,
        Next::Packet(0xE0, body) => {
            let (reason, _) = packets::parse_disconnect(&body);
            assert!(
                reason >= 0x80,
                "{what}: DISCONNECT with success code {reason:#04x}"
            );
            c.expect_closed().await;
            Some(reason)
        }
        other => panic!("{what}: expected DISCONNECT or close, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_packets_close_the_connection() {
    // 3.1.1 4.8 / [MQTT-4.8.0-1] and 5.0 4.13: a malformed packet closes the
    // connection (5.0: optionally after DISCONNECT 0x81).
    let b = TestBroker::start_default().await;
    let cases: &[(&str, &[u8])] = &[
        (
            "topic length beyond remaining length",
            &[0x30, 0x05, 0x00, 0x10, b'a', b'b', b'c'],
        ),
        (
            "SUBSCRIBE filter cut short",
            &[0x82, 0x06, 0x00, 0x01, 0x00, 0x05, b'a', b'b'],
        ),
        ("PUBACK of one byte", &[0x40, 0x01, 0x00]),
        ("PINGREQ with a body", &[0xC0, 0x01, 0x00]),
        (
            "remaining length over four bytes",
            &[0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F],
        ),
        (
            "QoS 1 PUBLISH without room for a packet id",
            &[0x32, 0x03, 0x00, 0x01, b'a'],
        ),
        ("UNSUBSCRIBE without filters", &[0xA2, 0x02, 0x00, 0x01]),
        ("reserved packet type 0", &[0x00, 0x00]),
        ("AUTH in 3.1.1", &[0xF0, 0x00]),
        ("PUBREL with flags 0000", &[0x60, 0x02, 0x00, 0x01]),
        (
            "UNSUBSCRIBE with flags 0000",
            &[0xA0, 0x05, 0x00, 0x01, 0x00, 0x01, b'a'],
        ),
        ("PINGREQ with flags 0001", &[0xC1, 0x00]),
        (
            "SUBSCRIBE filter with invalid UTF-8",
            &[0x82, 0x06, 0x00, 0x01, 0x00, 0x01, 0xFF, 0x00],
        ),
    ];
    let mut failures = Vec::new();
    for (what, bytes) in cases {
        failures.extend(v311_closes_on(b.addr, bytes, what).await);
    }
    assert!(failures.is_empty(), "{failures:#?}");
    integration::assert_healthy(b.addr).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packets_only_a_server_sends_close_the_connection() {
    // CONNACK, SUBACK, UNSUBACK and PINGRESP flow server to client only
    // (2.1.2): a protocol violation.
    let b = TestBroker::start_default().await;
    for (what, bytes) in [
        ("CONNACK", &[0x20u8, 0x02, 0x00, 0x00][..]),
        ("SUBACK", &[0x90, 0x03, 0x00, 0x01, 0x00]),
        ("UNSUBACK", &[0xB0, 0x02, 0x00, 0x01]),
        ("PINGRESP", &[0xD0, 0x00]),
    ] {
        let failure = v311_closes_on(b.addr, bytes, what).await;
        assert!(failure.is_none(), "{failure:?}");
        v5_error_closes_on(b.addr, bytes, what).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_closed_in_the_middle_of_a_packet_is_cleaned_up() {
    // A truncated packet followed by EOF: the broker closes its side too and
    // treats it as an abnormal close (the will is published).
    let b = TestBroker::start_default().await;
    let mut w = RawClient::connect_v311(b.addr, "watch").await;
    w.subscribe("trunc/#", 0).await;
    let (mut c, _) = RawClient::connect_with(
        b.addr,
        &Connect::v311("cut").will(integration::Will::new("trunc/will", b"cut")),
    )
    .await;
    let bytes = Publish::new("trunc/t", &[0u8; 100]).bytes();
    c.send(&bytes[..20]).await;
    c.shutdown_write().await;
    c.expect_closed().await;
    assert_eq!(w.recv_publish().await.payload_str(), "cut");
    w.expect_no_packet(QUIET).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_connect_followed_by_eof_is_closed() {
    let b = TestBroker::start_default().await;
    let mut c = RawClient::connect(b.addr).await;
    c.send(&Connect::v5("trunc").bytes()[..8]).await;
    c.shutdown_write().await;
    c.expect_closed().await;
    integration::assert_healthy(b.addr).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_properties_are_a_protocol_error() {
    // MQTT 5.0 2.2.2.2: including a property more than once (other than User
    // Property / Subscription Identifier where allowed) is a Protocol Error.
    let b = TestBroker::start_default().await;
    let twice = Props::new()
        .byte(prop::PAYLOAD_FORMAT_INDICATOR, 0)
        .byte(prop::PAYLOAD_FORMAT_INDICATOR, 1);
    let reason = v5_error_closes_on(
        b.addr,
        &Publish::new("a/b", b"x").props(twice).bytes(),
        "duplicate property",
    )
    .await;
    assert!(
        matches!(reason, None | Some(0x81) | Some(0x82)),
        "reason {reason:?}"
    );
    // In CONNECT: CONNACK 0x81/0x82 or close.
    let mut c = RawClient::connect(b.addr).await;
    let props = Props::new()
        .u32(prop::SESSION_EXPIRY_INTERVAL, 1)
        .u32(prop::SESSION_EXPIRY_INTERVAL, 2);
    let code = c
        .expect_connect_refused_or_closed(&Connect::v5("dupconnect").props(props))
        .await;
    assert!(
        matches!(code, None | Some(0x81) | Some(0x82)),
        "CONNACK {code:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_properties_close_the_connection() {
    // MQTT 5.0 2.2.2: a property not valid for the packet, an unknown
    // identifier, a length beyond the packet or an invalid UTF-8 string is a
    // malformed packet (0x81).
    let b = TestBroker::start_default().await;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "Session Expiry Interval in PUBLISH",
            Publish::new("a/b", b"x")
                .props(Props::new().u32(prop::SESSION_EXPIRY_INTERVAL, 5))
                .bytes(),
        ),
        (
            "unknown property 0x7F",
            Publish::new("a/b", b"x")
                .props(Props::new().raw(&[0x7F, 0x00]))
                .bytes(),
        ),
        (
            "property length beyond the packet",
            vec![0x30, 0x07, 0x00, 0x03, b'a', b'/', b'b', 0x20, 0x01],
        ),
        (
            "user property with invalid UTF-8",
            Publish::new("a/b", b"x")
                .props(Props::new().raw(&[0x26, 0x00, 0x01, 0xFF, 0x00, 0x00]))
                .bytes(),
        ),
        (
            "content type with a NUL",
            Publish::new("a/b", b"x")
                .props(Props::new().raw(&[0x03, 0x00, 0x01, 0x00]))
                .bytes(),
        ),
    ];
    for (what, bytes) in cases {
        let reason = v5_error_closes_on(b.addr, &bytes, what).await;
        assert!(
            matches!(reason, None | Some(0x81) | Some(0x82)),
            "{what}: reason {reason:?}"
        );
    }
    integration::assert_healthy(b.addr).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_receive_maximum_or_maximum_packet_size_in_connect_is_refused() {
    // MQTT 5.0 3.1.2.11.3 / 3.1.2.11.4: a value of 0 is a Protocol Error.
    let b = TestBroker::start_default().await;
    for (what, props) in [
        (
            "Receive Maximum 0",
            Props::new().u16(prop::RECEIVE_MAXIMUM, 0),
        ),
        (
            "Maximum Packet Size 0",
            Props::new().u32(prop::MAXIMUM_PACKET_SIZE, 0),
        ),
    ] {
        let mut c = RawClient::connect(b.addr).await;
        let code = c
            .expect_connect_refused_or_closed(&Connect::v5("zero").props(props))
            .await;
        assert!(
            matches!(code, None | Some(0x81) | Some(0x82)),
            "{what}: CONNACK {code:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnect_setting_session_expiry_after_connect_with_zero_is_a_protocol_error() {
    // MQTT 5.0 3.14.2.2.2: with a zero Session Expiry Interval in CONNECT, a
    // non-zero one in DISCONNECT is a Protocol Error; the server answers with
    // DISCONNECT 0x82 and the session is not kept.
    let b = TestBroker::start_default().await;
    let (mut c, _) = RawClient::connect_with(b.addr, &Connect::v5("sneaky").clean(false)).await;
    c.subscribe("sn/t", 1).await;
    c.send(&packets::disconnect_v5(
        0x00,
        &Props::new().u32(prop::SESSION_EXPIRY_INTERVAL, 300),
    ))
    .await;
    let reason = c.expect_error_close().await;
    assert!(matches!(reason, None | Some(0x82)), "reason {reason:?}");
    let (_c, ack) = RawClient::connect_with(b.addr, &Connect::v5("sneaky").clean(false)).await;
    assert!(
        !ack.session_present,
        "the session must not outlive the connection"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledgements_for_unknown_packet_ids_do_not_hurt_the_broker() {
    // PUBACK / PUBREC / PUBCOMP for ids the broker never used: no panic, no
    // message appears; the broker keeps serving everybody.
    let b = TestBroker::start_default().await;
    for v5 in [false, true] {
        let mut c = if v5 {
            RawClient::connect_v5(b.addr, "stray5", Props::new())
                .await
                .0
        } else {
            RawClient::connect_v311(b.addr, "stray").await
        };
        c.send(&packets::puback(4242)).await;
        c.send(&packets::pubrec(4243)).await;
        c.send(&packets::pubcomp(4244)).await;
        match c.next(ms(500)).await {
            Next::Timeout | Next::Closed => {}
            Next::Packet(0x62, body) => assert_eq!(
                packets::parse_ack(&body).0,
                4243,
                "PUBREL for the stray PUBREC"
            ),
            Next::Packet(0xE0, _) => {}
            other => panic!("unexpected answer to stray acks: {other:?}"),
        }
    }
    integration::assert_healthy(b.addr).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn byte_order_mark_in_topic_is_not_stripped() {
    // [MQTT-1.5.4-3] (5.0) / [MQTT-1.5.3-3] (3.1.1): U+FEFF is a character.
    let b = TestBroker::start_default().await;
    let mut sub = RawClient::connect_v311(b.addr, "bom").await;
    sub.subscribe("\u{FEFF}bom", 0).await;
    sub.subscribe("bom", 0).await;
    let mut p = RawClient::connect_v311(b.addr, "bom-pub").await;
    p.publish(Publish::new("\u{FEFF}bom", b"with").qos(1, 0))
        .await;
    let got = sub.recv_publish().await;
    assert_eq!(
        (got.topic.as_str(), got.payload_str()),
        ("\u{FEFF}bom", "with")
    );
    sub.expect_no_packet(QUIET).await;
}

/// xorshift64*: deterministic pseudo-random bytes for the fuzz run.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_and_mutated_packets_never_take_the_broker_down() {
    // The issue: anything from the network gets an answer and never a panic.
    // 300 connections send random bytes or valid packets with random bytes
    // flipped, before and after CONNECT; the broker must keep serving.
    let b = TestBroker::start_default().await;
    let seeds: Vec<Vec<u8>> = vec![
        Connect::v5("fz")
            .props(
                Props::new()
                    .u32(prop::SESSION_EXPIRY_INTERVAL, 10)
                    .user("k", "v"),
            )
            .bytes(),
        Connect::v311("fz")
            .will(integration::Will::new("w/t", b"x").qos(1))
            .bytes(),
        Publish::new("f/t", b"payload")
            .qos(1, 3)
            .props(Props::new().u16(prop::TOPIC_ALIAS, 1).user("a", "b"))
            .bytes(),
        Publish::new("f/t", b"payload").qos(2, 9).retain().bytes(),
        packets::subscribe_v5(
            1,
            &[("f/#", 0x2E), ("$share/g/f", 1)],
            &Props::new().varint(prop::SUBSCRIPTION_IDENTIFIER, 7),
        ),
        packets::subscribe(2, &[("a/+/b", 1), ("#", 2)]),
        packets::unsubscribe_v5(3, &["f/#"]),
        packets::disconnect_v5(0x04, &Props::new().u32(prop::SESSION_EXPIRY_INTERVAL, 0)),
    ];
    let mut rng = Rng(0x5EED_CAFE_F00D_BEEF);
    let mut cases = Vec::new();
    for i in 0..300 {
        let mut bytes = if i % 5 == 0 {
            (0..1 + rng.below(64)).map(|_| rng.next() as u8).collect()
        } else {
            seeds[rng.below(seeds.len())].clone()
        };
        for _ in 0..1 + rng.below(4) {
            let pos = rng.below(bytes.len());
            bytes[pos] = rng.next() as u8;
        }
        cases.push((i % 2 == 0, bytes));
    }
    let addr = b.addr;
    let mut tasks = Vec::new();
    for chunk in cases.chunks(30) {
        let chunk = chunk.to_vec();
        tasks.push(tokio::spawn(async move {
            for (after_connect, bytes) in chunk {
                let mut c = RawClient::connect(addr).await;
                if after_connect {
                    c.handshake(&Connect::v5("")).await;
                }
                if c.try_send(&bytes).await.is_ok() {
                    // Read whatever comes back until close or a short silence.
                    while let Next::Packet(..) = c.next(ms(50)).await {}
                }
            }
        }));
    }
    for t in tasks {
        tokio::time::timeout(Duration::from_secs(60), t)
            .await
            .expect("fuzz run hung")
            .expect("fuzz task");
    }
    integration::assert_healthy(b.addr).await;
}
