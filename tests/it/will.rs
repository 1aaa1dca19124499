//! The last will: published on an abnormal close (socket drop, keep-alive
//! timeout, protocol error), not on DISCONNECT; MQTT 5 DISCONNECT 0x04, will
//! delay and its interplay with session expiry, will retain and will QoS.

use std::time::{Duration, Instant};

use integration::packets::{self, Connect, Props, Publish, Will, prop};
use integration::{QUIET, RawClient, TestBroker, ms};

async fn watcher(addr: std::net::SocketAddr, filter: &str) -> RawClient {
    let mut w = RawClient::connect_v311(addr, "watcher").await;
    w.subscribe(filter, 2).await;
    w
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn will_is_published_when_the_socket_drops() {
    // [MQTT-3.1.2-8] published when the connection closes without DISCONNECT.
    let b = TestBroker::start_default().await;
    let mut w = watcher(b.addr, "will/#").await;
    let (c, _) = RawClient::connect_with(
        b.addr,
        &Connect::v311("dies").will(Will::new("will/dies", b"gone")),
    )
    .await;
    w.expect_no_packet(QUIET).await;
    c.drop_connection();
    let p = w.recv_publish_acked().await;
    assert_eq!(
        (p.topic.as_str(), p.payload_str(), p.retain),
        ("will/dies", "gone", false)
    );
    // [MQTT-3.1.2-10] published once, then removed.
    w.expect_no_packet(QUIET).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn will_is_not_published_after_disconnect() {
    // [MQTT-3.1.2-10] / [MQTT-3.14.4-3]: DISCONNECT (5.0: reason 0x00)
    // deletes the will.
    let b = TestBroker::start_default().await;
    let mut w = watcher(b.addr, "will/#").await;
    let (c, _) = RawClient::connect_with(
        b.addr,
        &Connect::v311("polite").will(Will::new("will/polite", b"x")),
    )
    .await;
    c.disconnect().await;
    let (c5, _) = RawClient::connect_with(
        b.addr,
        &Connect::v5("polite5").will(Will::new("will/polite5", b"x")),
    )
    .await;
    c5.disconnect().await;
    w.expect_no_packet(ms(600)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn will_is_published_on_keep_alive_timeout() {
    // [MQTT-3.1.2-24] (3.1.1) the server closes "as if the network had
    // failed", so the will is published.
    let b = TestBroker::start_default().await;
    let mut w = watcher(b.addr, "will/#").await;
    let t0 = Instant::now();
    let (_silent, _) = RawClient::connect_with(
        b.addr,
        &Connect::v311("sleepy")
            .keep_alive(1)
            .will(Will::new("will/sleepy", b"timeout")),
    )
    .await;
    let p = w.recv_publish_acked().await;
    assert_eq!(p.payload_str(), "timeout");
    assert!(
        t0.elapsed() >= ms(1000),
        "will published before the keep alive ran out: {:?}",
        t0.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn will_is_published_after_a_protocol_error() {
    // 3.1.1 3.1.2.5: the will is published when "the server closes the
    // network connection because of a protocol error".
    let b = TestBroker::start_default().await;
    let mut w = watcher(b.addr, "will/#").await;
    let (mut c, _) = RawClient::connect_with(
        b.addr,
        &Connect::v311("rude").will(Will::new("will/rude", b"bad")),
    )
    .await;
    c.send(&Publish::new("a/+", b"x").bytes()).await;
    c.expect_closed().await;
    assert_eq!(w.recv_publish_acked().await.payload_str(), "bad");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_disconnect_with_will_message_reason_publishes_the_will() {
    // MQTT 5.0 3.14.2.1: DISCONNECT 0x04 (Disconnect with Will Message).
    let b = TestBroker::start_default().await;
    let mut w = watcher(b.addr, "will/#").await;
    let (mut c, _) = RawClient::connect_with(
        b.addr,
        &Connect::v5("leaver").will(Will::new("will/leaver", b"bye")),
    )
    .await;
    c.send(&packets::disconnect_v5(0x04, &Props::new())).await;
    assert_eq!(w.recv_publish_acked().await.payload_str(), "bye");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn will_retain_publishes_a_retained_message() {
    // [MQTT-3.1.2-17]: Will Retain 1 publishes a retained message.
    let b = TestBroker::start_default().await;
    let (c, _) = RawClient::connect_with(
        b.addr,
        &Connect::v311("ret").will(Will::new("will/ret", b"last").retain().qos(1)),
    )
    .await;
    c.drop_connection();
    tokio::time::sleep(ms(300)).await;
    let mut late = RawClient::connect_v311(b.addr, "late").await;
    late.subscribe("will/ret", 1).await;
    let p = late.recv_publish_acked().await;
    assert_eq!((p.payload_str(), p.retain, p.qos), ("last", true, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn will_qos_is_honoured() {
    // [MQTT-3.1.2-14]: the will is published at its QoS (QoS 2 here).
    let b = TestBroker::start_default().await;
    let mut w = watcher(b.addr, "will/#").await;
    let (c, _) = RawClient::connect_with(
        b.addr,
        &Connect::v311("q2").will(Will::new("will/q2", b"x").qos(2)),
    )
    .await;
    c.drop_connection();
    assert_eq!(w.recv_publish_acked().await.qos, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn will_properties_are_forwarded() {
    // MQTT 5.0 3.1.3.2: will properties go with the will message.
    let b = TestBroker::start_default().await;
    let (mut w, _) = RawClient::connect_v5(b.addr, "watch5", Props::new()).await;
    w.subscribe("will/#", 1).await;
    let will = Will::new("will/p", b"x").qos(1).props(
        Props::new()
            .string(prop::CONTENT_TYPE, "application/x-will")
            .string(prop::RESPONSE_TOPIC, "reply/here")
            .user("why", "crash"),
    );
    let (c, _) = RawClient::connect_with(b.addr, &Connect::v5("propwill").will(will)).await;
    c.drop_connection();
    let p = w.recv_publish_acked().await;
    assert_eq!(p.props.str(prop::CONTENT_TYPE), Some("application/x-will"));
    assert_eq!(p.props.str(prop::RESPONSE_TOPIC), Some("reply/here"));
    assert_eq!(p.props.user(), vec![("why".into(), "crash".into())]);
}

fn delayed(client_id: &str, delay: u32, session_expiry: u32) -> Connect {
    Connect::v5(client_id)
        .clean(false)
        .props(Props::new().u32(prop::SESSION_EXPIRY_INTERVAL, session_expiry))
        .will(
            Will::new(&format!("will/{client_id}"), b"late")
                .props(Props::new().u32(prop::WILL_DELAY_INTERVAL, delay)),
        )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn will_delay_postpones_the_will() {
    // MQTT 5.0 3.1.3.2.2: the will is published after the Will Delay Interval.
    let b = TestBroker::start_default().await;
    let mut w = watcher(b.addr, "will/#").await;
    let (c, _) = RawClient::connect_with(b.addr, &delayed("delayed", 1, 60)).await;
    let t0 = Instant::now();
    c.drop_connection();
    let p = w.recv_publish_acked().await;
    let took = t0.elapsed();
    assert_eq!(p.topic, "will/delayed");
    assert!(took >= ms(900), "published before the delay: {took:?}");
    assert!(
        took < Duration::from_secs(4),
        "published too late: {took:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn will_is_not_sent_if_the_client_reconnects_within_the_delay() {
    // [MQTT-3.1.3-9] (5.0): a new connection to the session before the delay
    // passes cancels the will.
    let b = TestBroker::start_default().await;
    let mut w = watcher(b.addr, "will/#").await;
    let (c, _) = RawClient::connect_with(b.addr, &delayed("back", 2, 60)).await;
    c.drop_connection();
    tokio::time::sleep(ms(300)).await;
    let (mut again, ack) = RawClient::connect_with(
        b.addr,
        &Connect::v5("back")
            .clean(false)
            .props(Props::new().u32(prop::SESSION_EXPIRY_INTERVAL, 60)),
    )
    .await;
    assert!(ack.session_present);
    w.expect_no_packet(Duration::from_millis(2500)).await;
    again.ping().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn will_is_sent_when_the_session_expires_before_the_will_delay() {
    // MQTT 5.0 3.1.3.2.2: published when the delay passes "or the Session
    // ends, whichever happens first" (session expiry 1 s, will delay 30 s).
    let b = TestBroker::start_default().await;
    let mut w = watcher(b.addr, "will/#").await;
    let (c, _) = RawClient::connect_with(b.addr, &delayed("expiring", 30, 1)).await;
    let t0 = Instant::now();
    c.drop_connection();
    let p = w.recv_publish_acked().await;
    assert_eq!(p.topic, "will/expiring");
    assert!(
        t0.elapsed() < Duration::from_secs(4),
        "will waited for the delay, not the session end: {:?}",
        t0.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_disconnect_with_an_error_reason_publishes_the_will() {
    // [MQTT-3.1.2-8] / [MQTT-3.14.4-3]: only DISCONNECT 0x00 deletes the will;
    // a client closing with an error code (0x80 Unspecified error) keeps it.
    let b = TestBroker::start_default().await;
    let mut w = watcher(b.addr, "will/#").await;
    let (mut c, _) = RawClient::connect_with(
        b.addr,
        &Connect::v5("failing").will(Will::new("will/failing", b"error")),
    )
    .await;
    c.send(&packets::disconnect_v5(0x80, &Props::new())).await;
    assert_eq!(w.recv_publish_acked().await.payload_str(), "error");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_and_disconnect_in_one_write_do_not_publish_the_will() {
    // [MQTT-3.14.4-3]: a DISCONNECT sent right behind the CONNECT (same TCP
    // segment) still deletes the will before the socket closes.
    let b = TestBroker::start_default().await;
    let mut w = watcher(b.addr, "will/#").await;
    let mut c = RawClient::connect(b.addr).await;
    let mut bytes = Connect::v311("brief")
        .will(Will::new("will/brief", b"x"))
        .bytes();
    bytes.extend(packets::disconnect());
    c.send(&bytes).await;
    let (f, _) = c.recv_packet().await;
    assert_eq!(f, 0x20, "CONNACK");
    c.shutdown_write().await;
    c.expect_closed().await;
    w.expect_no_packet(ms(600)).await;
}
