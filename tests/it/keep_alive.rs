//! Keep alive: the 1.5x rule, PINGREQ/PINGRESP, keep alive 0 and the MQTT 5
//! Server Keep Alive.

use std::time::{Duration, Instant};

use integration::packets::{Connect, Props, prop};
use integration::{Config, RawClient, TestBroker, ms};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_client_is_closed_after_one_and_a_half_keep_alives() {
    // [MQTT-3.1.2-24] (3.1.1) / [MQTT-3.1.2-22] (5.0): keep alive 1 s, so the
    // close comes after 1.5 s of silence (not before 1 s, not after 3 s).
    let b = TestBroker::start_default().await;
    for connect in [
        Connect::v311("idle").keep_alive(1),
        Connect::v5("idle5").keep_alive(1),
    ] {
        let (mut c, _) = RawClient::connect_with(b.addr, &connect).await;
        let t0 = Instant::now();
        if connect.is_v5() {
            // A DISCONNECT 0x8D (Keep Alive timeout) before the close is allowed.
            let reason = c.expect_error_close().await;
            assert!(matches!(reason, None | Some(0x8D)), "reason {reason:?}");
        } else {
            c.expect_closed().await;
        }
        let took = t0.elapsed();
        assert!(
            took >= ms(1000),
            "{}: closed too early: {took:?}",
            connect.client_id
        );
        assert!(
            took <= ms(3000),
            "{}: closed too late: {took:?}",
            connect.client_id
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pingreq_gets_pingresp_and_keeps_the_connection_alive() {
    // [MQTT-3.12.4-1] and any control packet resets the keep-alive timer.
    let b = TestBroker::start_default().await;
    let (mut c, _) = RawClient::connect_with(b.addr, &Connect::v311("pinger").keep_alive(1)).await;
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_millis(3200) {
        tokio::time::sleep(ms(600)).await;
        c.ping().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_zero_disables_the_timeout() {
    // 3.1.2.10: a Keep Alive of 0 turns the mechanism off.
    let mut config = Config::default();
    config.limits.max_keep_alive_secs = 65535;
    let b = TestBroker::start(config).await;
    let (mut c, _) = RawClient::connect_with(b.addr, &Connect::v311("forever").keep_alive(0)).await;
    c.expect_no_packet(ms(2500)).await;
    c.ping().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_keep_alive_is_returned_when_the_client_asks_for_more_than_the_maximum() {
    // MQTT 5.0 3.2.2.3.14 / [MQTT-3.2.2-21]: Server Keep Alive in CONNACK.
    let mut config = Config::default();
    config.limits.max_keep_alive_secs = 20;
    let b = TestBroker::start(config).await;
    let (_c, ack) = RawClient::connect_with(b.addr, &Connect::v5("eager").keep_alive(600)).await;
    assert_eq!(ack.props.int(prop::SERVER_KEEP_ALIVE), Some(20));
    let (_c, ack) = RawClient::connect_with(b.addr, &Connect::v5("modest").keep_alive(15)).await;
    let ska = ack.props.int(prop::SERVER_KEEP_ALIVE);
    assert!(
        matches!(ska, None | Some(15)),
        "a keep alive under the maximum is kept, got {ska:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_keep_alive_is_enforced() {
    // [MQTT-3.2.2-21]: the client must use the Server Keep Alive, and the
    // server closes after 1.5x of it (max 1 s here, the client asked 60 s).
    let mut config = Config::default();
    config.limits.max_keep_alive_secs = 1;
    let b = TestBroker::start(config).await;
    let (mut c, ack) = RawClient::connect_with(
        b.addr,
        &Connect::v5("capped").keep_alive(60).props(Props::new()),
    )
    .await;
    assert_eq!(ack.props.int(prop::SERVER_KEEP_ALIVE), Some(1));
    let t0 = Instant::now();
    c.expect_error_close().await;
    assert!(t0.elapsed() <= ms(3000), "closed after {:?}", t0.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_control_packet_from_the_client_resets_the_keep_alive() {
    // [MQTT-3.1.2-24] (3.1.1): "does not receive a Control Packet", so a
    // PUBLISH counts as much as a PINGREQ.
    let b = TestBroker::start_default().await;
    let (mut c, _) = RawClient::connect_with(b.addr, &Connect::v311("talker").keep_alive(1)).await;
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_millis(3200) {
        tokio::time::sleep(ms(600)).await;
        c.send(&integration::Publish::new("ka/t", b"x").bytes())
            .await;
    }
    c.ping().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traffic_from_the_broker_does_not_keep_a_silent_client_alive() {
    // [MQTT-3.1.2-24]: only packets *from the client* count. A subscriber
    // that receives a message every 200 ms but sends nothing is closed.
    let b = TestBroker::start_default().await;
    let (mut c, _) =
        RawClient::connect_with(b.addr, &Connect::v311("listener").keep_alive(1)).await;
    c.subscribe("ka/feed", 0).await;
    let addr = b.addr;
    let feeder = tokio::spawn(async move {
        let mut p = RawClient::connect_v311(addr, "feeder").await;
        for _ in 0..25 {
            p.publish(integration::Publish::new("ka/feed", b"tick"))
                .await;
            tokio::time::sleep(ms(200)).await;
        }
    });
    let t0 = Instant::now();
    loop {
        match c.next(ms(4000)).await {
            integration::raw::Next::Packet(f, _) if f >> 4 == 3 => continue,
            integration::raw::Next::Closed => break,
            other => panic!("expected messages then a close, got {other:?}"),
        }
    }
    let took = t0.elapsed();
    assert!(
        took <= ms(3000),
        "closed after {took:?}; broker traffic kept a silent client alive"
    );
    feeder.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_keep_alive_is_returned_when_the_client_disables_keep_alive() {
    // MQTT 5.0 3.2.2.3.14: keep alive 0 means "never"; with a configured
    // maximum the server answers with its Server Keep Alive.
    let mut config = Config::default();
    config.limits.max_keep_alive_secs = 30;
    let b = TestBroker::start(config).await;
    let (_c, ack) = RawClient::connect_with(b.addr, &Connect::v5("zero-ka").keep_alive(0)).await;
    assert_eq!(ack.props.int(prop::SERVER_KEEP_ALIVE), Some(30));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_allows_the_one_and_a_half_grace() {
    // [MQTT-3.1.2-24]: the server waits 1.5x the keep alive; a client pinging
    // every 1.25 s with keep alive 1 s is late but within the grace.
    let b = TestBroker::start_default().await;
    let (mut c, _) = RawClient::connect_with(b.addr, &Connect::v311("laggard").keep_alive(1)).await;
    for _ in 0..3 {
        tokio::time::sleep(ms(1250)).await;
        c.ping().await;
    }
}
