//! Flow control and size limits: the broker's Maximum Packet Size (checked
//! from the header), the client's Maximum Packet Size, Receive Maximum in
//! both directions, the outbound inflight window, and slow consumers that
//! must not slow anybody else.

use std::time::{Duration, Instant};

use integration::packets::{self, Connect, Props, Publish, kind, parse_ack, prop};
use integration::raw::Next;
use integration::{Config, QUIET, RawClient, TestBroker, ms};

fn limited(max_packet_bytes: u32) -> Config {
    let mut config = Config::default();
    config.limits.max_packet_bytes = max_packet_bytes;
    config
}

/// A QoS 1 PUBLISH (3.1.1 or 5.0 layout) of exactly `total` bytes on the wire.
fn publish_of_size(total: usize, v5: bool) -> Vec<u8> {
    // fixed header 1 + varint(remaining), topic 2 + 3, id 2, props 1 (v5)
    let overhead_body = 2 + 3 + 2 + usize::from(v5);
    let varint_len = if total - 1 - 2 > 127 { 2 } else { 1 };
    let payload = vec![b'x'; total - 1 - varint_len - overhead_body];
    let mut p = Publish::new("a/b", &payload).qos(1, 1);
    if v5 {
        p = p.v5();
    }
    let bytes = p.bytes();
    assert_eq!(bytes.len(), total, "test helper size");
    bytes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packet_at_the_size_limit_is_accepted_and_one_byte_more_is_refused() {
    // Maximum Packet Size counts the whole packet, fixed header included
    // (MQTT 5.0 3.1.2.11.4); over it: DISCONNECT 0x95 (Packet too large).
    let b = TestBroker::start(limited(1024)).await;
    let (mut c, ack) = RawClient::connect_v5(b.addr, "edge", Props::new()).await;
    assert_eq!(ack.props.int(prop::MAXIMUM_PACKET_SIZE), Some(1024));
    c.send(&publish_of_size(1024, true)).await;
    let (f, _) = c.recv_packet().await;
    assert_eq!(f, 0x40, "a 1024-byte packet is within the limit");
    c.send(&publish_of_size(1025, true)).await;
    c.expect_disconnect(0x95).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_packet_closes_a_v311_connection() {
    // 3.1.1 has no Packet too large code: the connection is closed.
    let b = TestBroker::start(limited(1024)).await;
    let mut c = RawClient::connect_v311(b.addr, "big311").await;
    c.send(&publish_of_size(1024, false)).await;
    assert_eq!(c.recv_packet().await.0, 0x40);
    c.send(&publish_of_size(1500, false)).await;
    c.expect_closed().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_packet_is_refused_from_its_header_before_buffering() {
    // The issue: the maximum packet size is checked before the packet is
    // buffered, so a header announcing 100 MB is refused at once.
    let b = TestBroker::start(limited(64 * 1024)).await;
    let (mut c, _) = RawClient::connect_v5(b.addr, "liar", Props::new()).await;
    let mut bytes = vec![0x30];
    bytes.extend(packets::varint(100 * 1024 * 1024));
    bytes.extend_from_slice(&[0x00, 0x03, b'a', b'/', b'b', 0x00]);
    let t0 = Instant::now();
    c.send(&bytes).await;
    c.expect_disconnect(0x95).await;
    assert!(
        t0.elapsed() < Duration::from_secs(2),
        "waited for the body: {:?}",
        t0.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_connect_is_refused() {
    // An oversized CONNECT: 5.0 may answer CONNACK 0x95; either way closed.
    let b = TestBroker::start(limited(512)).await;
    let mut c = RawClient::connect(b.addr).await;
    let connect = Connect::v5("big-connect").props(Props::new().user("padding", &"p".repeat(1000)));
    let code = c.expect_connect_refused_or_closed(&connect).await;
    assert!(matches!(code, None | Some(0x95)), "got CONNACK {code:?}");
    integration::assert_healthy(b.addr).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_larger_than_the_client_maximum_packet_size_are_dropped_for_that_client() {
    // [MQTT-3.1.2-24] never send more than the client's Maximum Packet Size;
    // [MQTT-3.1.2-25] discard it and behave as if it had been sent: a QoS 1
    // oversized message does not hold the client's only inflight slot.
    let b = TestBroker::start_default().await;
    let props = Props::new()
        .u32(prop::MAXIMUM_PACKET_SIZE, 128)
        .u16(prop::RECEIVE_MAXIMUM, 1);
    let (mut small, _) = RawClient::connect_v5(b.addr, "small", props).await;
    small.subscribe("mps/t", 1).await;
    let (mut large, _) = RawClient::connect_v5(b.addr, "large", Props::new()).await;
    large.subscribe("mps/t", 1).await;
    let (mut publisher, _) = RawClient::connect_v5(b.addr, "mps-pub", Props::new()).await;
    for payload in [&b"before"[..], &[b'B'; 300][..], b"after"] {
        publisher
            .publish(Publish::new("mps/t", payload).qos(1, 0))
            .await;
    }
    for want in ["before", "after"] {
        let p = small.recv_publish().await;
        assert!(
            p.wire_len <= 128,
            "packet of {} bytes sent to a client allowing 128",
            p.wire_len
        );
        assert_eq!(p.payload_str(), want);
        small.ack(&p).await;
    }
    small.expect_no_packet(QUIET).await;
    // Other clients are unaffected.
    assert_eq!(large.recv_publish_acked().await.payload_str(), "before");
    assert_eq!(large.recv_publish_acked().await.payload.len(), 300);
    assert_eq!(large.recv_publish_acked().await.payload_str(), "after");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_retained_message_is_not_sent_on_subscribe() {
    // [MQTT-3.1.2-24] applies to retained messages too.
    let b = TestBroker::start_default().await;
    let (mut publisher, _) = RawClient::connect_v5(b.addr, "rbig-pub", Props::new()).await;
    publisher
        .publish(Publish::new("rbig/a", &[b'R'; 500]).qos(1, 0).retain())
        .await;
    publisher
        .publish(Publish::new("rbig/b", b"fits").qos(1, 0).retain())
        .await;
    let (mut c, _) = RawClient::connect_v5(
        b.addr,
        "rbig",
        Props::new().u32(prop::MAXIMUM_PACKET_SIZE, 100),
    )
    .await;
    c.subscribe("rbig/+", 1).await;
    let p = c.recv_publish_acked().await;
    assert_eq!(p.topic, "rbig/b");
    c.expect_no_packet(QUIET).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exceeding_the_broker_receive_maximum_gets_disconnect_0x93() {
    // [MQTT-3.3.4-7] / 3.2.2.3.3: more unacknowledged QoS 2 PUBLISHes than
    // the broker's Receive Maximum: DISCONNECT 0x93 (Receive Maximum exceeded).
    let mut config = Config::default();
    config.limits.receive_maximum = 2;
    let b = TestBroker::start(config).await;
    let (mut c, ack) = RawClient::connect_v5(b.addr, "greedy", Props::new()).await;
    assert_eq!(ack.props.int(prop::RECEIVE_MAXIMUM), Some(2));
    for id in 1..=2 {
        c.send(&Publish::new("rm/t", b"x").qos(2, id).v5().bytes())
            .await;
        let (f, body) = c.recv_packet().await;
        assert_eq!(
            (f, parse_ack(&body).0),
            (0x50, id),
            "PUBREC within the window"
        );
    }
    c.send(&Publish::new("rm/t", b"x").qos(2, 3).v5().bytes())
        .await;
    c.expect_disconnect(0x93).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completed_qos2_flows_free_the_broker_receive_window() {
    // 4.9: the quota is returned on PUBCOMP, so a client that completes its
    // flows may send far more than Receive Maximum messages in total.
    let mut config = Config::default();
    config.limits.receive_maximum = 2;
    let b = TestBroker::start(config).await;
    let (mut c, _) = RawClient::connect_v5(b.addr, "polite", Props::new()).await;
    for round in 0..5u16 {
        let ids = [round * 2 + 1, round * 2 + 2];
        for id in ids {
            c.send(&Publish::new("rm/t", b"x").qos(2, id).v5().bytes())
                .await;
            assert_eq!(c.recv_kind(kind::PUBREC).await.0, 0x50);
        }
        for id in ids {
            c.send(&packets::pubrel(id)).await;
            assert_eq!(c.recv_kind(kind::PUBCOMP).await.0, 0x70);
        }
    }
    c.ping().await;
}

async fn count_until_quiet(c: &mut RawClient) -> Vec<packets::Received> {
    let mut out = Vec::new();
    while let Next::Packet(f, body) = c.next(ms(400)).await {
        out.push(packets::parse_publish(f, &body, c.v5));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbound_inflight_is_bounded_by_the_client_receive_maximum() {
    // [MQTT-3.3.4-9]: no more than the client's Receive Maximum unacknowledged
    // QoS 1/2 PUBLISHes; each PUBACK releases one more.
    let b = TestBroker::start_default().await;
    let (mut sub, _) =
        RawClient::connect_v5(b.addr, "rm2", Props::new().u16(prop::RECEIVE_MAXIMUM, 2)).await;
    sub.subscribe("win/t", 1).await;
    let (mut publisher, _) = RawClient::connect_v5(b.addr, "win-pub", Props::new()).await;
    for i in 0..6 {
        publisher
            .publish(Publish::new("win/t", format!("{i}").as_bytes()).qos(1, 0))
            .await;
    }
    let first = count_until_quiet(&mut sub).await;
    assert_eq!(first.len(), 2, "got {} with Receive Maximum 2", first.len());
    sub.ack(&first[0]).await;
    let next = count_until_quiet(&mut sub).await;
    assert_eq!(
        next.len(),
        1,
        "one PUBACK frees one slot; got {:?}",
        next.iter()
            .map(|p| (p.packet_id, p.dup, p.payload_str().to_string()))
            .collect::<Vec<_>>()
    );
    let mut got: Vec<String> = first
        .iter()
        .chain(next.iter())
        .map(|p| p.payload_str().to_string())
        .collect();
    let mut inflight = vec![first[1].clone(), next[0].clone()];
    while got.len() < 6 {
        for p in inflight.drain(..) {
            sub.ack(&p).await;
        }
        let more = count_until_quiet(&mut sub).await;
        assert!(
            !more.is_empty() && more.len() <= 2,
            "window of 2 violated or stalled: {}",
            more.len()
        );
        got.extend(more.iter().map(|p| p.payload_str().to_string()));
        inflight = more;
    }
    assert_eq!(
        got,
        vec!["0", "1", "2", "3", "4", "5"],
        "in order, none lost"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qos2_outbound_slot_is_released_by_pubcomp_not_pubrec() {
    // 4.9: for QoS 2 the send quota is returned on PUBCOMP.
    let b = TestBroker::start_default().await;
    let (mut sub, _) =
        RawClient::connect_v5(b.addr, "rm1", Props::new().u16(prop::RECEIVE_MAXIMUM, 1)).await;
    sub.subscribe("w2/t", 2).await;
    let (mut publisher, _) = RawClient::connect_v5(b.addr, "w2-pub", Props::new()).await;
    publisher
        .publish(Publish::new("w2/t", b"a").qos(2, 0))
        .await;
    publisher
        .publish(Publish::new("w2/t", b"b").qos(2, 0))
        .await;
    let a = sub.recv_publish().await;
    sub.send(&packets::pubrec(a.packet_id)).await;
    let (f, _) = sub.recv_packet().await;
    assert_eq!(f, 0x62, "PUBREL next, not the second PUBLISH");
    sub.expect_no_packet(QUIET).await;
    sub.send(&packets::pubcomp(a.packet_id)).await;
    assert_eq!(sub.recv_publish_acked().await.payload_str(), "b");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbound_inflight_is_bounded_by_max_inflight_messages_for_v311() {
    // limits.max_inflight_messages bounds the window for 3.1.1 clients too.
    let mut config = Config::default();
    config.limits.max_inflight_messages = 3;
    let b = TestBroker::start(config).await;
    let mut sub = RawClient::connect_v311(b.addr, "win311").await;
    sub.subscribe("w3/t", 1).await;
    let mut publisher = RawClient::connect_v311(b.addr, "w3-pub").await;
    for i in 0..5 {
        publisher
            .publish(Publish::new("w3/t", format!("{i}").as_bytes()).qos(1, 0))
            .await;
    }
    let first = count_until_quiet(&mut sub).await;
    assert_eq!(first.len(), 3);
    for p in &first {
        sub.ack(p).await;
    }
    assert_eq!(count_until_quiet(&mut sub).await.len(), 2);
}

/// The latest value of a `$SYS` topic as a number, polled for `within`.
async fn sys_counter_above(
    addr: std::net::SocketAddr,
    topic: &str,
    above: u64,
    within: Duration,
) -> u64 {
    let mut c = RawClient::connect_v311(addr, "sys-reader").await;
    c.subscribe(topic, 0).await;
    let deadline = Instant::now() + within;
    let mut last = 0;
    while Instant::now() < deadline {
        if let Next::Packet(f, body) = c.next(ms(500)).await {
            let p = packets::parse_publish(f, &body, false);
            last = p
                .payload_str()
                .trim()
                .parse()
                .unwrap_or_else(|_| panic!("{topic} is not a number: {:?}", p.payload_str()));
            if last > above {
                return last;
            }
        }
    }
    panic!("{topic} stayed at {last} (expected > {above}) for {within:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_consumer_does_not_slow_other_clients_and_its_overflow_is_counted() {
    // The issue: a stuck subscriber's queue is bounded and its overflow is
    // counted; a fast publisher/subscriber pair keeps its pace meanwhile.
    let mut config = Config::default();
    config.limits.max_queued_messages = 10;
    config.limits.write_buffer_high_water_bytes = 64 * 1024;
    config.sys.interval_secs = 1;
    let b = TestBroker::start(config).await;
    // Two stuck subscribers (QoS 0 and QoS 1) with tiny socket buffers.
    let mut stuck0 = RawClient::connect_small_buffer(b.addr, 4096).await;
    stuck0.handshake(&Connect::v311("stuck0")).await;
    assert_eq!(stuck0.subscribe("flood/#", 0).await, vec![0]);
    let mut stuck1 = RawClient::connect_small_buffer(b.addr, 4096).await;
    stuck1.handshake(&Connect::v311("stuck1")).await;
    assert_eq!(stuck1.subscribe("flood/#", 1).await, vec![1]);
    let mut fast = RawClient::connect_v311(b.addr, "fast").await;
    fast.subscribe("flood/#", 1).await;
    const N: usize = 400;
    const SIZE: usize = 32 * 1024; // 12.5 MiB in total, far beyond socket buffers
    let t0 = Instant::now();
    let mut publisher = RawClient::connect_v311(b.addr, "firehose").await;
    // Lockstep: each message must reach the fast subscriber before the next is sent, so
    // the fast pair's own queue never fills; only the stuck subscribers overflow.
    let lockstep = async {
        for i in 0..N {
            publisher
                .publish(Publish::new("flood/t", &vec![(i % 251) as u8; SIZE]).qos(1, 0))
                .await;
            let p = fast.recv_publish_acked().await;
            assert_eq!(p.payload.len(), SIZE);
        }
    };
    tokio::time::timeout(Duration::from_secs(20), lockstep)
        .await
        .unwrap_or_else(|_| {
            panic!(
                "fast subscriber starved behind stuck ones after {:?}",
                t0.elapsed()
            )
        });
    drop(fast);
    sys_counter_above(
        b.addr,
        "$SYS/broker/messages/dropped",
        0,
        Duration::from_secs(4),
    )
    .await;
    integration::assert_healthy(b.addr).await;
    drop((stuck0, stuck1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_oversized_message_does_not_establish_a_topic_alias() {
    // [MQTT-3.1.2-25] with 3.3.2.3.4: a PUBLISH discarded for the client's
    // Maximum Packet Size was never sent, so an alias it would have set up
    // does not exist for the client; every alias received must resolve.
    let b = TestBroker::start_default().await;
    let props = Props::new()
        .u32(prop::MAXIMUM_PACKET_SIZE, 200)
        .u16(prop::TOPIC_ALIAS_MAXIMUM, 5);
    let (mut sub, _) = RawClient::connect_v5(b.addr, "alias-small", props).await;
    sub.subscribe("al/#", 0).await;
    let (mut publisher, _) = RawClient::connect_v5(b.addr, "alias-big-pub", Props::new()).await;
    let topic = "al/a-rather-long-topic-name-worth-aliasing";
    publisher
        .publish(Publish::new(topic, &[b'x'; 400]).qos(1, 0))
        .await; // too big for the subscriber
    for i in 0..3 {
        publisher
            .publish(Publish::new(topic, format!("small {i}").as_bytes()).qos(1, 0))
            .await;
    }
    let mut known: std::collections::HashMap<u32, String> = std::collections::HashMap::new();
    for i in 0..3 {
        let p = sub.recv_publish().await;
        let resolved = match (p.topic.is_empty(), p.props.int(prop::TOPIC_ALIAS)) {
            (false, Some(a)) => {
                known.insert(a, p.topic.clone());
                p.topic.clone()
            }
            (false, None) => p.topic.clone(),
            (true, Some(a)) => known
                .get(&a)
                .cloned()
                .unwrap_or_else(|| panic!("alias {a} was never set up for this client")),
            (true, None) => panic!("empty topic without alias"),
        };
        assert_eq!(
            (resolved.as_str(), p.payload_str()),
            (topic, format!("small {i}").as_str())
        );
    }
}
