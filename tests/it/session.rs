//! Sessions: clean session / clean start, persistent sessions with queued
//! messages, MQTT 5 session expiry, takeover, retransmission of unacknowledged
//! messages after reconnect and the offline queue limit.

use std::collections::BTreeSet;
use std::time::Duration;

use integration::packets::{self, Connect, Props, Publish, kind, parse_ack, prop};
use integration::raw::Next;
use integration::{Config, QUIET, RawClient, TestBroker, ms};

fn persistent311(id: &str) -> Connect {
    Connect::v311(id).clean(false)
}

fn persistent5(id: &str, expiry: u32) -> Connect {
    Connect::v5(id)
        .clean(false)
        .props(Props::new().u32(prop::SESSION_EXPIRY_INTERVAL, expiry))
}

async fn publish_all(addr: std::net::SocketAddr, topic: &str, msgs: &[(u8, &str)]) {
    let mut p = RawClient::connect_v311(addr, "session-pub").await;
    for (qos, payload) in msgs {
        p.publish(Publish::new(topic, payload.as_bytes()).qos(*qos, 0))
            .await;
    }
    p.disconnect().await;
}

/// Reads publishes until `quiet` passes without one; acknowledges each.
async fn drain(c: &mut RawClient, quiet: Duration) -> Vec<packets::Received> {
    let mut out = Vec::new();
    while let Next::Packet(f, body) = c.next(quiet).await {
        let p = packets::parse_publish(f, &body, c.v5);
        c.ack(&p).await;
        out.push(p);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_session_keeps_subscriptions_and_queues_qos1_and_qos2() {
    // [MQTT-3.1.2-4] (3.1.1) resume the session; [MQTT-3.2.2-2] Session
    // Present 1; QoS 1 and 2 messages published while offline are delivered.
    let b = TestBroker::start_default().await;
    let (mut c, ack) = RawClient::connect_with(b.addr, &persistent311("keeper")).await;
    assert!(!ack.session_present, "[MQTT-3.2.2-3] no stored session yet");
    c.subscribe("s/t", 2).await;
    c.disconnect().await;
    publish_all(b.addr, "s/t", &[(1, "one"), (2, "two"), (0, "zero")]).await;
    let (mut c, ack) = RawClient::connect_with(b.addr, &persistent311("keeper")).await;
    assert!(ack.session_present, "[MQTT-3.2.2-2] Session Present 1");
    let got = drain(&mut c, ms(500)).await;
    let qos12: Vec<(&str, u8)> = got
        .iter()
        .filter(|p| p.qos > 0)
        .map(|p| (p.payload_str(), p.qos))
        .collect();
    assert_eq!(
        qos12,
        vec![("one", 1), ("two", 2)],
        "queued QoS 1 and 2 in order"
    );
    // The subscription survived too.
    publish_all(b.addr, "s/t", &[(1, "live")]).await;
    assert_eq!(c.recv_publish_acked().await.payload_str(), "live");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clean_session_discards_the_previous_session() {
    // [MQTT-3.1.2-6] (3.1.1): CleanSession 1 discards any previous session;
    // [MQTT-3.2.2-1] Session Present 0.
    let b = TestBroker::start_default().await;
    let (mut c, _) = RawClient::connect_with(b.addr, &persistent311("cleaner")).await;
    c.subscribe("c/t", 1).await;
    c.disconnect().await;
    publish_all(b.addr, "c/t", &[(1, "queued")]).await;
    let (mut c, ack) = RawClient::connect_with(b.addr, &Connect::v311("cleaner")).await;
    assert!(!ack.session_present);
    c.expect_no_packet(QUIET).await;
    c.disconnect().await;
    // The clean session ended with the connection: nothing is stored.
    let (mut c, ack) = RawClient::connect_with(b.addr, &persistent311("cleaner")).await;
    assert!(
        !ack.session_present,
        "a clean session is not kept after disconnect"
    );
    publish_all(b.addr, "c/t", &[(1, "after")]).await;
    c.expect_no_packet(QUIET).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_session_expiry_0_discards_the_session_on_disconnect() {
    // MQTT 5.0 3.1.2.11.2: absent / 0 session expiry ends the session when
    // the connection closes; [MQTT-3.2.2-3] Session Present 0 afterwards.
    let b = TestBroker::start_default().await;
    let (mut c, _) = RawClient::connect_with(b.addr, &Connect::v5("short").clean(false)).await;
    c.subscribe("e/t", 1).await;
    c.disconnect().await;
    publish_all(b.addr, "e/t", &[(1, "lost")]).await;
    let (mut c, ack) = RawClient::connect_with(b.addr, &Connect::v5("short").clean(false)).await;
    assert!(!ack.session_present);
    c.expect_no_packet(QUIET).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_session_is_kept_until_its_expiry_interval_passes() {
    // [MQTT-3.1.2-23] (5.0): session state stored while the interval runs.
    let b = TestBroker::start_default().await;
    let (mut c, _) = RawClient::connect_with(b.addr, &persistent5("exp", 1)).await;
    c.subscribe("x/t", 1).await;
    c.disconnect().await;
    publish_all(b.addr, "x/t", &[(1, "kept")]).await;
    let (mut c, ack) = RawClient::connect_with(b.addr, &persistent5("exp", 1)).await;
    assert!(
        ack.session_present,
        "[MQTT-3.2.2-3] session within its expiry"
    );
    assert_eq!(c.recv_publish_acked().await.payload_str(), "kept");
    c.disconnect().await;
    tokio::time::sleep(ms(2200)).await;
    let (mut c, ack) = RawClient::connect_with(b.addr, &persistent5("exp", 1)).await;
    assert!(!ack.session_present, "session expired after 1 s");
    publish_all(b.addr, "x/t", &[(1, "gone")]).await;
    c.expect_no_packet(QUIET).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_clean_start_discards_an_existing_session() {
    // [MQTT-3.1.2-4] (5.0) / [MQTT-3.2.2-2]: Session Present 0.
    let b = TestBroker::start_default().await;
    let (mut c, _) = RawClient::connect_with(b.addr, &persistent5("fresh", 60)).await;
    c.subscribe("f/t", 1).await;
    c.disconnect().await;
    let (mut c, ack) = RawClient::connect_with(
        b.addr,
        &Connect::v5("fresh").props(Props::new().u32(prop::SESSION_EXPIRY_INTERVAL, 60)),
    )
    .await;
    assert!(!ack.session_present);
    publish_all(b.addr, "f/t", &[(1, "x")]).await;
    c.expect_no_packet(QUIET).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_expiry_above_the_maximum_is_capped_in_connack() {
    // MQTT 5.0 3.2.2.3.2: the server announces the interval it will use.
    let mut config = Config::default();
    config.limits.max_session_expiry_secs = 10;
    let b = TestBroker::start(config).await;
    let (_c, ack) = RawClient::connect_with(b.addr, &persistent5("capped", 100_000)).await;
    assert_eq!(ack.props.int(prop::SESSION_EXPIRY_INTERVAL), Some(10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn takeover_closes_the_existing_v311_connection() {
    // [MQTT-3.1.4-2] (3.1.1): the server disconnects the existing client.
    let b = TestBroker::start_default().await;
    let (mut old, _) = RawClient::connect_with(b.addr, &persistent311("dup-id")).await;
    old.subscribe("tk/t", 1).await;
    let (mut new, ack) = RawClient::connect_with(b.addr, &persistent311("dup-id")).await;
    assert!(
        ack.session_present,
        "the session moves to the new connection"
    );
    old.expect_closed().await;
    publish_all(b.addr, "tk/t", &[(1, "to new")]).await;
    assert_eq!(new.recv_publish_acked().await.payload_str(), "to new");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn takeover_sends_disconnect_0x8e_to_the_existing_v5_connection() {
    // [MQTT-3.1.4-3] (5.0): DISCONNECT 0x8E (Session taken over), then close.
    let b = TestBroker::start_default().await;
    let (mut old, _) = RawClient::connect_v5(b.addr, "taken", Props::new()).await;
    let (mut new, _) = RawClient::connect_v5(b.addr, "taken", Props::new()).await;
    old.expect_disconnect(0x8E).await;
    new.ping().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unacknowledged_qos1_is_retransmitted_with_dup_after_reconnect() {
    // [MQTT-4.4.0-1]: resend unacknowledged PUBLISH with the original packet
    // identifier; [MQTT-3.3.1-1] DUP 1 on re-delivery.
    let b = TestBroker::start_default().await;
    let (mut c, _) = RawClient::connect_with(b.addr, &persistent311("forgetful")).await;
    c.subscribe("rt/t", 1).await;
    publish_all(b.addr, "rt/t", &[(1, "again")]).await;
    let first = c.recv_publish().await;
    assert!(!first.dup);
    c.drop_connection(); // no PUBACK
    let (mut c, ack) = RawClient::connect_with(b.addr, &persistent311("forgetful")).await;
    assert!(ack.session_present);
    let again = c.recv_publish().await;
    assert_eq!(
        (again.payload_str(), again.packet_id, again.dup, again.qos),
        ("again", first.packet_id, true, 1)
    );
    c.ack(&again).await;
    c.expect_no_packet(QUIET).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unacknowledged_qos1_is_retransmitted_after_v5_reconnect() {
    let b = TestBroker::start_default().await;
    let (mut c, _) = RawClient::connect_with(b.addr, &persistent5("forgetful5", 60)).await;
    c.subscribe("rt5/t", 1).await;
    publish_all(b.addr, "rt5/t", &[(1, "again")]).await;
    let first = c.recv_publish().await;
    c.drop_connection();
    let (mut c, ack) = RawClient::connect_with(b.addr, &persistent5("forgetful5", 60)).await;
    assert!(ack.session_present);
    let again = c.recv_publish().await;
    assert_eq!(
        (again.payload_str(), again.packet_id, again.dup),
        ("again", first.packet_id, true)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pubrel_is_retransmitted_after_reconnect_and_the_message_is_not_redelivered() {
    // [MQTT-4.4.0-1]: an unacknowledged PUBREL is resent; the QoS 2 message
    // itself is not delivered again (exactly once).
    let b = TestBroker::start_default().await;
    let (mut c, _) = RawClient::connect_with(b.addr, &persistent311("halfway")).await;
    c.subscribe("q2/t", 2).await;
    publish_all(b.addr, "q2/t", &[(2, "once")]).await;
    let p = c.recv_publish().await;
    c.send(&packets::pubrec(p.packet_id)).await;
    let (_, body) = c.recv_kind(kind::PUBREL).await;
    assert_eq!(parse_ack(&body).0, p.packet_id);
    c.drop_connection(); // no PUBCOMP
    let (mut c, ack) = RawClient::connect_with(b.addr, &persistent311("halfway")).await;
    assert!(ack.session_present);
    let (first, body) = c.recv_packet().await;
    assert_eq!(
        first,
        0x62,
        "expected PUBREL retransmission, got {}",
        kind::name(first)
    );
    assert_eq!(parse_ack(&body).0, p.packet_id, "original packet id");
    c.send(&packets::pubcomp(p.packet_id)).await;
    c.expect_no_packet(QUIET).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbound_qos2_survives_publisher_reconnect_and_is_delivered_once() {
    // [MQTT-4.4.0-1] / [MQTT-4.3.3-2]: the publisher resends PUBREL after
    // reconnecting; the broker completes with PUBCOMP and delivers once.
    let b = TestBroker::start_default().await;
    let mut sub = RawClient::connect_v311(b.addr, "q2-sub").await;
    sub.subscribe("q2in/t", 2).await;
    let (mut publisher, _) = RawClient::connect_with(b.addr, &persistent311("q2-pub")).await;
    let p = Publish::new("q2in/t", b"one").qos(2, 11);
    publisher.send(&p.bytes()).await;
    let (f, _) = publisher.recv_packet().await;
    assert_eq!(f, 0x50, "PUBREC");
    publisher.drop_connection();
    let (mut publisher, ack) = RawClient::connect_with(b.addr, &persistent311("q2-pub")).await;
    assert!(ack.session_present);
    // A client may also resend the PUBLISH with DUP before PUBREL.
    publisher.send(&p.clone().dup().bytes()).await;
    let (f, _) = publisher.recv_kind(kind::PUBREC).await;
    assert_eq!(f, 0x50);
    publisher.send(&packets::pubrel(11)).await;
    let (f, body) = publisher.recv_kind(kind::PUBCOMP).await;
    assert_eq!((f, parse_ack(&body).0), (0x70, 11));
    let got = drain(&mut sub, ms(500)).await;
    assert_eq!(
        got.iter().map(|p| p.payload_str()).collect::<Vec<_>>(),
        vec!["one"],
        "exactly once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_queue_is_bounded_by_max_queued_messages() {
    // limits.max_queued_messages: at most N queued messages arrive after
    // reconnect, the rest are dropped (and counted), the broker stays healthy.
    let mut config = Config::default();
    config.limits.max_queued_messages = 5;
    let b = TestBroker::start(config).await;
    let (mut c, _) = RawClient::connect_with(b.addr, &persistent311("slowpoke")).await;
    c.subscribe("oq/t", 1).await;
    c.disconnect().await;
    let msgs: Vec<String> = (0..30).map(|i| format!("m{i:02}")).collect();
    let pairs: Vec<(u8, &str)> = msgs.iter().map(|m| (1, m.as_str())).collect();
    publish_all(b.addr, "oq/t", &pairs).await;
    let (mut c, ack) = RawClient::connect_with(b.addr, &persistent311("slowpoke")).await;
    assert!(ack.session_present);
    let got = drain(&mut c, ms(500)).await;
    let payloads: BTreeSet<&str> = got.iter().map(|p| p.payload_str()).collect();
    assert!(!got.is_empty(), "nothing queued at all");
    assert!(
        got.len() <= 5,
        "{} messages delivered from a queue bounded at 5: {payloads:?}",
        got.len()
    );
    assert_eq!(payloads.len(), got.len(), "duplicates");
    integration::assert_healthy(b.addr).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_disconnect_can_end_the_session_with_expiry_zero() {
    // MQTT 5.0 3.14.2.2.2: the DISCONNECT's Session Expiry Interval replaces
    // the CONNECT's; 0 ends the session now.
    let b = TestBroker::start_default().await;
    let (mut c, _) = RawClient::connect_with(b.addr, &persistent5("ender", 300)).await;
    c.subscribe("end/t", 1).await;
    c.send(&packets::disconnect_v5(
        0x00,
        &Props::new().u32(prop::SESSION_EXPIRY_INTERVAL, 0),
    ))
    .await;
    c.expect_closed().await;
    let (_c, ack) = RawClient::connect_with(b.addr, &persistent5("ender", 300)).await;
    assert!(
        !ack.session_present,
        "session survived a DISCONNECT with expiry 0"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_disconnect_can_extend_the_session_expiry() {
    // MQTT 5.0 3.14.2.2.2: a non-zero CONNECT interval may be raised on
    // DISCONNECT (1 s -> 60 s): the session outlives the original 1 s.
    let b = TestBroker::start_default().await;
    let (mut c, _) = RawClient::connect_with(b.addr, &persistent5("extender", 1)).await;
    c.subscribe("ext/t", 1).await;
    c.send(&packets::disconnect_v5(
        0x00,
        &Props::new().u32(prop::SESSION_EXPIRY_INTERVAL, 60),
    ))
    .await;
    c.expect_closed().await;
    tokio::time::sleep(ms(1800)).await;
    publish_all(b.addr, "ext/t", &[(1, "still here")]).await;
    let (mut c, ack) = RawClient::connect_with(b.addr, &persistent5("extender", 60)).await;
    assert!(
        ack.session_present,
        "session expired with the CONNECT's interval"
    );
    assert_eq!(c.recv_publish_acked().await.payload_str(), "still here");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn takeover_moves_unacknowledged_messages_to_the_new_connection() {
    // [MQTT-3.1.4-2] / [MQTT-4.4.0-1]: the session (with its inflight QoS 1
    // message) continues on the new connection, which gets it with DUP.
    let b = TestBroker::start_default().await;
    let (mut old, _) = RawClient::connect_with(b.addr, &persistent311("mover")).await;
    old.subscribe("mv/t", 1).await;
    publish_all(b.addr, "mv/t", &[(1, "inflight")]).await;
    let first = old.recv_publish().await;
    let (mut new, ack) = RawClient::connect_with(b.addr, &persistent311("mover")).await;
    assert!(ack.session_present);
    old.expect_closed().await;
    let again = new.recv_publish().await;
    assert_eq!(
        (again.payload_str(), again.packet_id, again.dup),
        ("inflight", first.packet_id, true)
    );
    new.ack(&again).await;
    new.expect_no_packet(QUIET).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retransmissions_come_before_messages_queued_while_offline() {
    // [MQTT-4.4.0-1] with [MQTT-4.6.0-6]: unacknowledged messages are resent
    // first (with DUP), then the ones queued while offline, in order.
    let b = TestBroker::start_default().await;
    let (mut c, _) = RawClient::connect_with(b.addr, &persistent311("orderly")).await;
    c.subscribe("ord/t", 1).await;
    publish_all(b.addr, "ord/t", &[(1, "1"), (1, "2")]).await;
    let (one, two) = (c.recv_publish().await, c.recv_publish().await);
    assert_eq!((one.payload_str(), two.payload_str()), ("1", "2"));
    c.drop_connection();
    tokio::time::sleep(ms(200)).await;
    publish_all(b.addr, "ord/t", &[(1, "3"), (1, "4")]).await;
    let (mut c, _) = RawClient::connect_with(b.addr, &persistent311("orderly")).await;
    let got: Vec<(String, bool)> = drain(&mut c, ms(500))
        .await
        .iter()
        .map(|p| (p.payload_str().to_string(), p.dup))
        .collect();
    let want = [("1", true), ("2", true), ("3", false), ("4", false)]
        .map(|(p, d)| (p.to_string(), d))
        .to_vec();
    assert_eq!(got, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_queue_overflow_is_counted() {
    // The issue: bounded queues for offline sessions "with counted drops",
    // visible as $SYS/broker/messages/dropped.
    let mut config = Config::default();
    config.limits.max_queued_messages = 3;
    config.sys.interval_secs = 1;
    let b = TestBroker::start(config).await;
    let (mut c, _) = RawClient::connect_with(b.addr, &persistent311("overflow")).await;
    c.subscribe("of/t", 1).await;
    c.disconnect().await;
    let msgs: Vec<String> = (0..10).map(|i| i.to_string()).collect();
    let pairs: Vec<(u8, &str)> = msgs.iter().map(|m| (1, m.as_str())).collect();
    publish_all(b.addr, "of/t", &pairs).await;
    let mut sys = RawClient::connect_v311(b.addr, "sys-watch").await;
    sys.subscribe("$SYS/broker/messages/dropped", 0).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(4);
    let mut last = String::new();
    while std::time::Instant::now() < deadline {
        if let Next::Packet(f, body) = sys.next(ms(300)).await {
            last = packets::parse_publish(f, &body, false)
                .payload_str()
                .to_string();
            if last.parse::<u64>().is_ok_and(|n| n >= 7) {
                return;
            }
        }
    }
    panic!(
        "$SYS/broker/messages/dropped = {last:?}, expected at least 7 (10 sent to a queue of 3)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn takeover_with_clean_session_discards_the_old_session() {
    // [MQTT-3.1.4-2] the old connection is closed, and [MQTT-3.1.2-6]
    // (3.1.1) CleanSession 1 starts a new session without its subscriptions.
    let b = TestBroker::start_default().await;
    let (mut old, _) = RawClient::connect_with(b.addr, &persistent311("switch")).await;
    old.subscribe("sw/t", 1).await;
    let (mut new, ack) = RawClient::connect_with(b.addr, &Connect::v311("switch")).await;
    assert!(!ack.session_present);
    old.expect_closed().await;
    publish_all(b.addr, "sw/t", &[(1, "old subscription")]).await;
    new.expect_no_packet(QUIET).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_retransmission_on_a_live_v5_connection() {
    // [MQTT-4.4.0-1] (5.0): resending happens on reconnect only; "Clients and
    // Servers MUST NOT resend messages at any other time".
    let b = TestBroker::start_default().await;
    let (mut c, _) = RawClient::connect_v5(b.addr, "patient", Props::new()).await;
    c.subscribe("pt/t", 1).await;
    publish_all(b.addr, "pt/t", &[(1, "once")]).await;
    let m = c.recv_publish().await;
    assert!(!m.dup);
    c.expect_no_packet(ms(3000)).await;
    c.ack(&m).await;
    c.ping().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_connects_with_one_client_id_leave_one_working_session() {
    // [MQTT-3.1.4-2] under contention: 20 simultaneous CONNECTs with the same
    // id; every earlier connection is closed, the survivor works.
    let b = TestBroker::start_default().await;
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let addr = b.addr;
        tasks.push(tokio::spawn(async move {
            RawClient::connect_with(addr, &persistent311("crowd"))
                .await
                .0
        }));
    }
    let mut clients = Vec::new();
    for t in tasks {
        clients.push(t.await.unwrap());
    }
    let mut alive = Vec::new();
    for mut c in clients {
        if c.try_send(&packets::pingreq()).await.is_err() {
            continue;
        }
        match c.next(ms(1000)).await {
            Next::Packet(0xD0, _) => alive.push(c),
            Next::Closed => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(
        alive.len(),
        1,
        "{} connections of one client id survived",
        alive.len()
    );
    let mut last = alive.pop().unwrap();
    last.subscribe("crowd/t", 1).await;
    publish_all(b.addr, "crowd/t", &[(1, "hello")]).await;
    assert_eq!(last.recv_publish_acked().await.payload_str(), "hello");
    integration::assert_healthy(b.addr).await;
}
