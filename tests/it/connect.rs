//! CONNECT and CONNACK in MQTT 3.1, 3.1.1 and 5.0, and the ways a connection
//! attempt must fail.

use std::time::{Duration, Instant};

use integration::packets::{self, Connect, Props, Publish, Will, prop};
use integration::{Config, RawClient, TestBroker};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v311_connect_gets_connack_accepted_without_session() {
    // [MQTT-3.2.2-1] clean session accepted: Session Present 0, return code 0.
    let b = TestBroker::start_default().await;
    let mut c = RawClient::connect(b.addr).await;
    c.send(&Connect::v311("c311").bytes()).await;
    let (first, body) = c.recv_packet().await;
    assert_eq!(
        (first, body),
        (0x20, vec![0x00, 0x00]),
        "CONNACK 20 02 00 00"
    );
    c.ping().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v31_connect_with_mqisdp_is_accepted() {
    // MQTT 3.1: protocol name "MQIsdp", level 3.
    let b = TestBroker::start_default().await;
    let mut c = RawClient::connect(b.addr).await;
    let ack = c.handshake(&Connect::v31("c31")).await;
    assert_eq!((ack.code, ack.session_present), (0, false));
    assert_eq!(c.subscribe("v31/t", 1).await, vec![1]);
    c.publish(Publish::new("v31/t", b"hi").qos(1, 0)).await;
    let p = c.recv_publish_acked().await;
    assert_eq!(
        (p.topic.as_str(), p.payload_str(), p.qos),
        ("v31/t", "hi", 1)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_connect_gets_connack_with_properties() {
    let b = TestBroker::start_default().await;
    let mut c = RawClient::connect(b.addr).await;
    let ack = c
        .handshake(&Connect::v5("c5").props(Props::new().u32(prop::SESSION_EXPIRY_INTERVAL, 0)))
        .await;
    assert_eq!(
        (ack.code, ack.session_present),
        (0, false),
        "[MQTT-3.2.2-2] clean start gives Session Present 0"
    );
    assert!(
        !ack.props.has(prop::ASSIGNED_CLIENT_IDENTIFIER),
        "no assigned id for a client that sent one"
    );
    c.ping().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_packet_other_than_connect_closes_connection() {
    // [MQTT-3.1.0-1] the first packet from the client MUST be CONNECT.
    let b = TestBroker::start_default().await;
    for bytes in [
        packets::pingreq(),
        Publish::new("a/b", b"x").bytes(),
        packets::subscribe(1, &[("a/b", 0)]),
    ] {
        let mut c = RawClient::connect(b.addr).await;
        c.send(&bytes).await;
        c.expect_closed().await;
    }
    integration::assert_healthy(b.addr).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_connect_closes_v311_connection() {
    // [MQTT-3.1.0-2] a second CONNECT is a protocol violation.
    let b = TestBroker::start_default().await;
    let mut c = RawClient::connect_v311(b.addr, "twice").await;
    c.send(&Connect::v311("twice").bytes()).await;
    c.expect_closed().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_connect_gets_v5_disconnect_protocol_error() {
    // [MQTT-3.1.0-2] protocol error: DISCONNECT 0x82, then close.
    let b = TestBroker::start_default().await;
    let (mut c, _) = RawClient::connect_v5(b.addr, "twice5", Props::new()).await;
    c.send(&Connect::v5("twice5").bytes()).await;
    c.expect_disconnect(0x82).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsupported_protocol_level_is_refused_then_closed() {
    // [MQTT-3.1.2-2] 3.1.1: CONNACK 0x01 (unacceptable protocol level) then
    // close; 5.0 allows CONNACK 0x84 (unsupported protocol version) instead.
    let b = TestBroker::start_default().await;
    for level in [6u8, 2, 0x7f] {
        let mut c = RawClient::connect(b.addr).await;
        let code = c
            .expect_connect_refused_or_closed(&Connect::v311("lvl").level(level))
            .await;
        assert!(
            matches!(code, Some(0x01) | Some(0x84)),
            "level {level}: expected CONNACK 0x01 or 0x84, got {code:?}"
        );
    }
    integration::assert_healthy(b.addr).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_protocol_name_is_refused_or_closed() {
    // [MQTT-3.1.2-1] (3.1.1) / 5.0: a protocol name other than "MQTT" (or
    // "MQIsdp" for 3.1): the server may refuse (0x01 / 0x84) and must not
    // accept the connection.
    let b = TestBroker::start_default().await;
    let mut connect = Connect::v311("name");
    connect.protocol_name = "MQTX".into();
    let mut c = RawClient::connect(b.addr).await;
    let code = c.expect_connect_refused_or_closed(&connect).await;
    assert!(
        matches!(code, None | Some(0x01) | Some(0x84)),
        "got CONNACK {code:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reserved_connect_flag_closes_connection() {
    // [MQTT-3.1.2-3] the reserved flag in CONNECT MUST be 0.
    let b = TestBroker::start_default().await;
    let mut c = RawClient::connect(b.addr).await;
    c.send(&Connect::v311("resv").reserved_flag().bytes()).await;
    c.expect_closed().await;
    // 5.0: a malformed packet; a CONNACK 0x81 before the close is allowed.
    let mut c = RawClient::connect(b.addr).await;
    let code = c
        .expect_connect_refused_or_closed(&Connect::v5("resv5").reserved_flag())
        .await;
    assert!(matches!(code, None | Some(0x81)), "got CONNACK {code:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn will_qos_3_closes_connection() {
    // [MQTT-3.1.2-14] the will QoS MUST NOT be 3.
    let b = TestBroker::start_default().await;
    let mut c = RawClient::connect(b.addr).await;
    let code = c
        .expect_connect_refused_or_closed(&Connect::v311("wq3").will(Will::new("w", b"x").qos(3)))
        .await;
    assert!(
        code.is_none(),
        "3.1.1 has no CONNACK code for a malformed CONNECT, got {code:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn will_flags_without_will_flag_close_connection() {
    // [MQTT-3.1.2-11] with Will Flag 0, Will QoS and Will Retain MUST be 0.
    let b = TestBroker::start_default().await;
    let mut bytes = Connect::v311("wflags").bytes();
    // byte layout: 10 len 00 04 'MQTT' 04 flags ...: the flags byte is index 9
    assert_eq!(bytes[9], 0x02);
    bytes[9] |= 0x08; // Will QoS 1 without Will Flag
    let mut c = RawClient::connect(b.addr).await;
    c.send(&bytes).await;
    c.expect_closed().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_without_username_closes_v311_connection() {
    // [MQTT-3.1.2-22] 3.1.1: with User Name Flag 0 the Password Flag MUST be 0.
    let b = TestBroker::start_default().await;
    let mut connect = Connect::v311("pwonly");
    connect.password = Some(b"secret".to_vec());
    let mut c = RawClient::connect(b.addr).await;
    let code = c.expect_connect_refused_or_closed(&connect).await;
    assert!(
        matches!(code, None | Some(0x04) | Some(0x05)),
        "got CONNACK {code:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_client_id_with_persistent_session_is_rejected_v311() {
    // [MQTT-3.1.3-8] zero-byte ClientId with CleanSession 0: CONNACK 0x02, close.
    let b = TestBroker::start_default().await;
    let mut c = RawClient::connect(b.addr).await;
    c.expect_refused(&Connect::v311("").clean(false), 0x02)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_client_id_with_clean_session_is_accepted_v311() {
    // [MQTT-3.1.3-6] / [MQTT-3.1.3-7] the server assigns a unique id.
    let b = TestBroker::start_default().await;
    let mut first = RawClient::connect_with(b.addr, &Connect::v311("")).await.0;
    let mut second = RawClient::connect_with(b.addr, &Connect::v311("")).await.0;
    // Both stay connected: the assigned ids differ (no takeover).
    first.ping().await;
    second.ping().await;
    assert_eq!(first.subscribe("anon/t", 0).await, vec![0]);
    second.publish(Publish::new("anon/t", b"x")).await;
    assert_eq!(first.recv_publish().await.payload_str(), "x");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_client_id_v5_gets_assigned_client_identifier() {
    // [MQTT-3.2.2-16] CONNACK carries an Assigned Client Identifier not used by
    // any other session.
    let b = TestBroker::start_default().await;
    let (mut one, ack1) = RawClient::connect_v5(b.addr, "", Props::new()).await;
    let (mut two, ack2) = RawClient::connect_v5(b.addr, "", Props::new()).await;
    let id1 = ack1
        .props
        .str(prop::ASSIGNED_CLIENT_IDENTIFIER)
        .expect("Assigned Client Identifier")
        .to_string();
    let id2 = ack2
        .props
        .str(prop::ASSIGNED_CLIENT_IDENTIFIER)
        .expect("Assigned Client Identifier")
        .to_string();
    assert!(!id1.is_empty() && !id2.is_empty());
    assert_ne!(id1, id2, "assigned identifiers must be unique");
    one.ping().await;
    two.ping().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_client_id_refused_when_config_disallows_it() {
    // The config refuses zero-length ids: 3.1.1 CONNACK 0x02 [MQTT-3.1.3-9],
    // 5.0 CONNACK 0x85 (Client Identifier not valid).
    let mut config = Config::default();
    config.mqtt.allow_empty_client_id = false;
    let b = TestBroker::start(config).await;
    RawClient::connect(b.addr)
        .await
        .expect_refused(&Connect::v311(""), 0x02)
        .await;
    RawClient::connect(b.addr)
        .await
        .expect_refused(&Connect::v5(""), 0x85)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_id_longer_than_limit_is_refused() {
    // [MQTT-3.1.3-9] a rejected ClientId: 3.1.1 CONNACK 0x02, 5.0 0x85, then close.
    let mut config = Config::default();
    config.limits.client_id_max_bytes = 16;
    let b = TestBroker::start(config).await;
    let long = "x".repeat(17);
    RawClient::connect(b.addr)
        .await
        .expect_refused(&Connect::v311(&long), 0x02)
        .await;
    RawClient::connect(b.addr)
        .await
        .expect_refused(&Connect::v5(&long), 0x85)
        .await;
    // Exactly at the limit is fine.
    RawClient::connect_v311(b.addr, &"y".repeat(16))
        .await
        .ping()
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_id_with_invalid_utf8_closes_connection() {
    // [MQTT-1.5.3-1] (3.1.1) / [MQTT-1.5.4-1] (5.0): ill-formed UTF-8 closes.
    let b = TestBroker::start_default().await;
    for connect in [Connect::v311("bad?"), Connect::v5("bad?")] {
        let mut bytes = connect.bytes();
        let pos = bytes.iter().position(|&x| x == b'?').expect("marker");
        bytes[pos] = 0xFF;
        let mut c = RawClient::connect(b.addr).await;
        c.v5 = connect.is_v5();
        c.send(&bytes).await;
        match c.next(integration::raw::RECV_TIMEOUT).await {
            integration::raw::Next::Closed => {}
            integration::raw::Next::Packet(0x20, body) => {
                assert!(
                    body.len() >= 2 && body[1] != 0,
                    "CONNECT with invalid UTF-8 accepted"
                );
                c.expect_closed().await;
            }
            other => panic!("expected close, got {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_socket_is_closed_after_connect_timeout() {
    // A socket that never sends CONNECT is closed after connect_timeout_secs.
    let mut config = Config::default();
    config.limits.connect_timeout_secs = 1;
    let b = TestBroker::start(config).await;
    let t0 = Instant::now();
    let mut silent = RawClient::connect(b.addr).await;
    let mut partial = RawClient::connect(b.addr).await;
    partial.send(&Connect::v311("partial").bytes()[..5]).await;
    silent.expect_closed().await;
    partial.expect_closed().await;
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(900),
        "closed too early: {took:?}"
    );
    assert!(took < Duration::from_secs(4), "closed too late: {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_limit_refuses_extra_clients() {
    // limits.max_connections: the connection over the limit is refused
    // (closed, or CONNACK 0x03 / 0x97 / 0x9F), the others keep working.
    let mut config = Config::default();
    config.limits.max_connections = 2;
    for l in &mut config.listeners {
        l.max_connections = 2;
    }
    let b = TestBroker::start(config).await;
    let mut one = RawClient::connect_v311(b.addr, "one").await;
    let mut two = RawClient::connect_v311(b.addr, "two").await;
    let mut three = RawClient::connect(b.addr).await;
    let code = three
        .expect_connect_refused_or_closed(&Connect::v311("three"))
        .await;
    assert!(matches!(code, None | Some(0x03)), "got CONNACK {code:?}");
    one.ping().await;
    two.ping().await;
    drop(one);
    // The slot is released.
    tokio::time::sleep(integration::ms(200)).await;
    RawClient::connect_v311(b.addr, "four").await.ping().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packets_pipelined_behind_connect_are_answered_after_connack() {
    // 3.1.4 (3.1.1): clients may send packets right after CONNECT without
    // waiting; [MQTT-3.2.0-1] (5.0) CONNACK is the first packet sent back.
    let b = TestBroker::start_default().await;
    let mut c = RawClient::connect(b.addr).await;
    let mut bytes = Connect::v311("eager").bytes();
    bytes.extend(packets::subscribe(1, &[("eager/t", 1)]));
    bytes.extend(Publish::new("eager/t", b"me").qos(1, 2).bytes());
    bytes.extend(packets::pingreq());
    c.send(&bytes).await;
    let (f, body) = c.recv_packet().await;
    assert_eq!((f, body), (0x20, vec![0, 0]), "CONNACK first");
    let (f, body) = c.recv_packet().await;
    assert_eq!((f, body), (0x90, vec![0, 1, 1]), "then SUBACK");
    let mut seen = (false, false, false);
    while seen != (true, true, true) {
        let (f, body) = c.recv_packet().await;
        match f >> 4 {
            packets::kind::PUBACK => seen.0 = true,
            packets::kind::PUBLISH => {
                let p = packets::parse_publish(f, &body, false);
                assert_eq!(p.payload_str(), "me");
                c.ack(&p).await;
                seen.1 = true;
            }
            packets::kind::PINGRESP => seen.2 = true,
            _ => panic!("unexpected {}", packets::kind::name(f)),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_are_accepted_without_authentication_configured() {
    // [MQTT-3.1.2-19] / [MQTT-3.1.2-21]: user name and password fields parsed
    // in both generations (5.0 allows a password without user name).
    let b = TestBroker::start_default().await;
    RawClient::connect_with(
        b.addr,
        &Connect::v311("user").credentials("alice", b"secret"),
    )
    .await
    .0
    .ping()
    .await;
    RawClient::connect_with(
        b.addr,
        &Connect::v5("user5").credentials("bob", &[0, 159, 146, 150]),
    )
    .await
    .0
    .ping()
    .await;
    let mut pw_only = Connect::v5("pw5");
    pw_only.password = Some(b"token".to_vec());
    RawClient::connect_with(b.addr, &pw_only)
        .await
        .0
        .ping()
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn will_topic_with_a_wildcard_is_refused() {
    // 4.7.1: the will topic is a topic name, so no wildcards. 3.1.1 closes
    // ([MQTT-3.1.4-1]) or refuses with a CONNACK ([MQTT-3.1.4-2]); 5.0 may
    // answer CONNACK 0x90 or 0x82.
    let b = TestBroker::start_default().await;
    let mut c = RawClient::connect(b.addr).await;
    c.expect_connect_refused_or_closed(&Connect::v311("ww").will(Will::new("w/#", b"x")))
        .await;
    let mut c = RawClient::connect(b.addr).await;
    let code = c
        .expect_connect_refused_or_closed(&Connect::v5("ww5").will(Will::new("w/+", b"x")))
        .await;
    assert!(
        matches!(code, None | Some(0x90) | Some(0x82) | Some(0x81)),
        "CONNACK {code:?}"
    );
}
