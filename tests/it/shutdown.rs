//! Graceful shutdown: cancelling the token stops accepting, tells MQTT 5
//! clients with DISCONNECT 0x8B (Server shutting down), closes 3.1.1 clients
//! and flushes what is already on its way to them.

use std::time::{Duration, Instant};

use integration::packets::{self, Props, Publish};
use integration::raw::Next;
use integration::{RawClient, TestBroker, ms};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_sends_v5_clients_disconnect_0x8b_and_closes_v311_clients() {
    let b = TestBroker::start_default().await;
    let (mut v5, _) = RawClient::connect_v5(b.addr, "v5", Props::new()).await;
    let mut v311 = RawClient::connect_v311(b.addr, "v311").await;
    let mut fresh = RawClient::connect(b.addr).await; // no CONNECT yet
    let t0 = Instant::now();
    b.stop().await;
    assert!(
        t0.elapsed() < Duration::from_secs(3),
        "shutdown took {:?}",
        t0.elapsed()
    );
    v5.expect_disconnect(0x8B).await;
    v311.expect_closed().await;
    fresh.expect_closed().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_stops_accepting_connections() {
    let b = TestBroker::start_default().await;
    let addr = b.addr;
    b.stop().await;
    match tokio::time::timeout(ms(2000), tokio::net::TcpStream::connect(addr)).await {
        Ok(Err(_)) => {}
        Ok(Ok(stream)) => {
            // Accepted by a lingering backlog at most: it must not serve MQTT.
            let mut c = RawClient::connect(addr).await;
            drop(stream);
            c.send(&packets::Connect::v311("late").bytes()).await;
            c.expect_closed().await;
        }
        Err(_) => panic!("connect to a stopped broker hung"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_qos1_messages_are_flushed_before_the_close() {
    // The issue: "flush what is in flight". The publisher's PUBACKs prove the
    // messages were routed; the subscriber, which has not read yet, must
    // still find all of them before the DISCONNECT 0x8B.
    let b = TestBroker::start_default().await;
    let (mut sub, _) = RawClient::connect_v5(b.addr, "late-reader", Props::new()).await;
    sub.subscribe("flush/t", 1).await;
    let (mut publisher, _) = RawClient::connect_v5(b.addr, "flusher", Props::new()).await;
    for i in 0..50 {
        publisher
            .publish(Publish::new("flush/t", format!("{i}").as_bytes()).qos(1, 0))
            .await;
    }
    b.stop().await;
    let mut got = Vec::new();
    loop {
        match sub.next(ms(3000)).await {
            Next::Packet(f, body) if f >> 4 == 3 => got.push(
                packets::parse_publish(f, &body, true)
                    .payload_str()
                    .to_string(),
            ),
            Next::Packet(0xE0, body) => {
                assert_eq!(
                    packets::parse_disconnect(&body).0,
                    0x8B,
                    "DISCONNECT reason"
                );
                break;
            }
            other => panic!(
                "after {} messages: expected PUBLISH or DISCONNECT, got {other:?}",
                got.len()
            ),
        }
    }
    let want: Vec<String> = (0..50).map(|i| i.to_string()).collect();
    assert_eq!(
        got, want,
        "every routed message arrives, in order, before the DISCONNECT"
    );
}
