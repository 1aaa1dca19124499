//! Delivery under load and odd framing: message ordering, fan-out,
//! concurrent publishers, large payloads, packets split across writes or
//! batched in one, and packet identifier wrap-around.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use integration::packets::{self, Props, Publish, kind};
use integration::{Config, QUIET, QoS5, RawClient, TestBroker, V5, V311, ms};
use rumqttc::QoS;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_keep_their_order_per_topic_and_qos() {
    // [MQTT-4.6.0-6]: PUBLISH packets go to consumers, for the same topic and
    // QoS, in the order they were received from a given client.
    let b = TestBroker::start_default().await;
    let mut sub = V5::connect(b.addr, "order-sub").await;
    sub.subscribe("order/t", QoS5::ExactlyOnce).await;
    let publisher = V5::connect(b.addr, "order-pub").await;
    const N: usize = 300;
    for i in 0..N {
        let qos = if i % 2 == 0 {
            QoS5::AtLeastOnce
        } else {
            QoS5::ExactlyOnce
        };
        publisher
            .client
            .publish("order/t", qos, false, i.to_string())
            .await
            .unwrap();
    }
    let (mut last1, mut last2) = (None::<usize>, None::<usize>);
    for _ in 0..N {
        let p = sub.recv().await;
        let i: usize = std::str::from_utf8(&p.payload).unwrap().parse().unwrap();
        let last = if p.qos == QoS5::AtLeastOnce {
            &mut last1
        } else {
            &mut last2
        };
        assert!(
            last.is_none_or(|l| l < i),
            "message {i} at {:?} after {last:?}",
            p.qos
        );
        *last = Some(i);
    }
    sub.expect_none(QUIET).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_subscriber_of_a_fan_out_gets_every_message() {
    let b = TestBroker::start_default().await;
    let mut subs = Vec::new();
    for i in 0..20 {
        let mut s = V311::connect(b.addr, &format!("fan-{i}")).await;
        s.subscribe("fan/#", QoS::AtLeastOnce).await;
        subs.push(s);
    }
    let mut publisher = V311::connect(b.addr, "fan-pub").await;
    for i in 0..100 {
        publisher
            .publish(
                &format!("fan/{}", i % 7),
                QoS::AtLeastOnce,
                false,
                i.to_string().as_bytes(),
            )
            .await;
    }
    let checks = subs.into_iter().map(|mut s| {
        tokio::spawn(async move {
            for i in 0..100 {
                let p = s.recv().await;
                assert_eq!(p.payload, i.to_string().as_bytes(), "fan-out order");
            }
            s.expect_none(QUIET).await;
        })
    });
    for c in checks.collect::<Vec<_>>() {
        c.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_publishers_lose_nothing_and_keep_per_publisher_order() {
    let b = TestBroker::start_default().await;
    let mut sub = V311::connect(b.addr, "many-pubs-sub").await;
    sub.subscribe("cp/+", QoS::AtLeastOnce).await;
    const PUBS: usize = 4;
    const N: usize = 200;
    let mut tasks = Vec::new();
    for p in 0..PUBS {
        let addr = b.addr;
        tasks.push(tokio::spawn(async move {
            let mut c = V311::connect(addr, &format!("cp-{p}")).await;
            for i in 0..N {
                c.publish(
                    &format!("cp/{p}"),
                    QoS::AtLeastOnce,
                    false,
                    i.to_string().as_bytes(),
                )
                .await;
            }
        }));
    }
    let mut next = [0usize; PUBS];
    for _ in 0..PUBS * N {
        let m = sub.recv().await;
        let p: usize = m.topic.trim_start_matches("cp/").parse().unwrap();
        let i: usize = std::str::from_utf8(&m.payload).unwrap().parse().unwrap();
        assert_eq!(i, next[p], "publisher {p} out of order");
        next[p] += 1;
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(next, [N; PUBS]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_payloads_arrive_intact() {
    // Remaining lengths of three and four bytes; payload bytes unchanged.
    let b = TestBroker::start_default().await;
    let payload: Vec<u8> = (0..700_000u32).map(|i| (i % 253) as u8).collect();
    let mut s3 = RawClient::connect_v311(b.addr, "big-3").await;
    s3.subscribe("big/t", 1).await;
    let (mut s5, _) = RawClient::connect_v5(b.addr, "big-5", Props::new()).await;
    s5.subscribe("big/t", 2).await;
    let (mut publisher, _) = RawClient::connect_v5(b.addr, "big-pub", Props::new()).await;
    publisher
        .publish(Publish::new("big/t", &payload).qos(2, 0))
        .await;
    let p3 = s3.recv_publish_acked().await;
    assert!(
        p3.payload == payload,
        "3.1.1 payload differs ({} bytes)",
        p3.payload.len()
    );
    let p5 = s5.recv_publish_acked().await;
    assert!(
        p5.payload == payload,
        "5.0 payload differs ({} bytes)",
        p5.payload.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_and_small_payloads_interleaved_reach_late_readers_intact() {
    // Payloads of 8 KiB and more go out from the message's own buffer, in one vectored
    // write with the encoded packets around them. Subscribers that start reading only
    // after everything was published make those writes short, so that writing resumes
    // in the middle of a head or a payload.
    let b = TestBroker::start_default().await;
    const SIZES: [usize; 10] = [10, 9_000, 8_191, 70_000, 5, 8_192, 200_000, 0, 65_536, 3];
    const N: usize = 40;
    let payload = |i: usize| -> Vec<u8> {
        (0..SIZES[i % SIZES.len()])
            .map(|j| (j % 251) as u8 ^ i as u8)
            .collect()
    };
    let mut s3 = RawClient::connect_v311(b.addr, "mix-3").await;
    s3.subscribe("mix/#", 1).await;
    let (mut s5, _) = RawClient::connect_v5(b.addr, "mix-5", Props::new()).await;
    s5.subscribe("mix/#", 1).await;
    let (mut publisher, _) = RawClient::connect_v5(b.addr, "mix-pub", Props::new()).await;
    for i in 0..N {
        let qos = (i % 2) as u8;
        publisher
            .publish(Publish::new(&format!("mix/{i}"), &payload(i)).qos(qos, 0))
            .await;
    }
    for (s, name) in [(&mut s3, "3.1.1"), (&mut s5, "5.0")] {
        let mut seen = HashSet::new();
        for _ in 0..N {
            let p = s.recv_publish_acked().await;
            let i: usize = p.topic["mix/".len()..].parse().unwrap();
            assert!(
                p.payload == payload(i),
                "{name} message {i}: {} bytes, {} expected, or other bytes",
                p.payload.len(),
                SIZES[i % SIZES.len()]
            );
            assert_eq!(p.qos, (i % 2) as u8, "{name} message {i}");
            assert!(seen.insert(i), "{name} message {i} twice");
        }
        s.expect_no_packet(QUIET).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packet_split_into_single_bytes_is_reassembled() {
    let b = TestBroker::start_default().await;
    let mut sub = RawClient::connect_v311(b.addr, "split-sub").await;
    sub.subscribe("split/t", 1).await;
    let mut c = RawClient::connect_v311(b.addr, "split").await;
    let bytes = Publish::new("split/t", &[7u8; 300]).qos(1, 77).bytes();
    for byte in &bytes {
        c.send(std::slice::from_ref(byte)).await;
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
    let (f, body) = c.recv_packet().await;
    assert_eq!((f, body), (0x40, vec![0, 77]), "PUBACK");
    let p = sub.recv_publish_acked().await;
    assert_eq!(p.payload, vec![7u8; 300]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_packets_in_one_write_are_all_processed_in_order() {
    let b = TestBroker::start_default().await;
    let mut c = RawClient::connect_v311(b.addr, "batch").await;
    let mut bytes = packets::subscribe(1, &[("batch/t", 1)]);
    for i in 0..50u16 {
        bytes.extend(
            Publish::new("batch/t", i.to_string().as_bytes())
                .qos(1, 100 + i)
                .bytes(),
        );
    }
    bytes.extend(packets::pingreq());
    c.send(&bytes).await;
    let (f, body) = c.recv_packet().await;
    assert_eq!((f, body), (0x90, vec![0, 1, 1]), "SUBACK comes first");
    let mut acks = Vec::new();
    let mut got = Vec::new();
    let mut pong = false;
    while acks.len() < 50 || got.len() < 50 || !pong {
        let (f, body) = c.recv_packet().await;
        match f >> 4 {
            kind::PUBACK => acks.push(packets::parse_ack(&body).0),
            kind::PUBLISH => {
                let p = packets::parse_publish(f, &body, false);
                c.ack(&p).await;
                got.push(p.payload_str().parse::<u16>().unwrap());
            }
            kind::PINGRESP => pong = true,
            _ => panic!("unexpected {}", kind::name(f)),
        }
    }
    assert_eq!(acks, (100..150).collect::<Vec<u16>>(), "PUBACKs in order");
    assert_eq!(got, (0..50).collect::<Vec<u16>>(), "deliveries in order");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packet_ids_wrap_around_without_reusing_one_still_in_flight() {
    // [MQTT-2.2.1-4]: each new QoS > 0 PUBLISH from the server gets a
    // non-zero packet identifier that is currently unused. The subscriber
    // keeps its first message unacknowledged while 70,000 others pass.
    let mut config = Config::default();
    config.limits.max_queued_messages = 100_000;
    let b = TestBroker::start(config).await;
    let mut sub = RawClient::connect_v311(b.addr, "wrap-sub").await;
    sub.subscribe("wrap/t", 1).await;
    const N: usize = 70_000;
    const BATCH: usize = 500;
    let received = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&received);
    let reader = tokio::spawn(async move {
        let held = sub.recv_publish().await; // never acknowledged
        counter.fetch_add(1, Ordering::SeqCst);
        let mut ids = HashSet::new();
        for _ in 1..N {
            let p = sub.recv_publish().await;
            assert_ne!(
                p.packet_id,
                held.packet_id,
                "packet id {} reused while in flight (dup {}, message {})",
                held.packet_id,
                p.dup,
                counter.load(Ordering::SeqCst)
            );
            ids.insert(p.packet_id);
            sub.send(&packets::puback(p.packet_id)).await;
            counter.fetch_add(1, Ordering::SeqCst);
        }
        ids.len()
    });
    let mut publisher = RawClient::connect_v311(b.addr, "wrap-pub").await;
    for batch in 0..N / BATCH {
        let mut bytes = Vec::new();
        for i in 0..BATCH {
            bytes.extend(Publish::new("wrap/t", b"w").qos(1, (i + 1) as u16).bytes());
        }
        publisher.send(&bytes).await;
        for _ in 0..BATCH {
            publisher.recv_kind(kind::PUBACK).await;
        }
        // Keep the subscriber's queue short so nothing is dropped.
        let want = (batch + 1) * BATCH;
        let t0 = std::time::Instant::now();
        while received.load(Ordering::SeqCst) < want {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "subscriber stalled at {}",
                received.load(Ordering::SeqCst)
            );
            tokio::time::sleep(ms(1)).await;
        }
    }
    let distinct = tokio::time::timeout(Duration::from_secs(30), reader)
        .await
        .expect("reader hung")
        .unwrap();
    assert!(
        distinct >= 65_000,
        "only {distinct} distinct packet ids used"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscription_churn_during_traffic_leaves_a_consistent_router() {
    // Subscribing and unsubscribing 200 times while messages flow: afterwards
    // the last subscription (and only it) is in effect.
    let b = TestBroker::start_default().await;
    let addr = b.addr;
    let traffic = tokio::spawn(async move {
        let mut p = RawClient::connect_v311(addr, "churn-pub").await;
        for i in 0..400 {
            p.send(&Publish::new("churn/t", i.to_string().as_bytes()).bytes())
                .await;
            tokio::task::yield_now().await;
        }
        p.ping().await;
    });
    let mut c = RawClient::connect_v311(b.addr, "churner").await;
    for _ in 0..200 {
        let id = c.next_packet_id();
        c.send(&packets::subscribe(id, &[("churn/#", 0)])).await;
        let id = c.next_packet_id();
        c.send(&packets::unsubscribe(id, &["churn/#"])).await;
    }
    // Every SUBSCRIBE and UNSUBSCRIBE is answered, in order [MQTT-3.8.4-1] /
    // [MQTT-3.10.4-4]; messages may arrive in between.
    let (mut subacks, mut unsubacks) = (Vec::new(), Vec::new());
    while subacks.len() < 200 || unsubacks.len() < 200 {
        let (f, body) = c.recv_packet().await;
        match f >> 4 {
            kind::SUBACK => subacks.push(packets::parse_suback(&body, false).0),
            kind::UNSUBACK => unsubacks.push(packets::parse_suback(&body, false).0),
            kind::PUBLISH => {}
            _ => panic!("unexpected {}", kind::name(f)),
        }
    }
    assert_eq!(subacks, (0..200).map(|i| 2 * i + 1).collect::<Vec<u16>>());
    assert_eq!(unsubacks, (0..200).map(|i| 2 * i + 2).collect::<Vec<u16>>());
    traffic.await.unwrap();
    while let integration::raw::Next::Packet(..) = c.next(ms(300)).await {}
    c.subscribe("churn/#", 1).await;
    let mut p = RawClient::connect_v311(b.addr, "churn-marker").await;
    p.publish(Publish::new("churn/end", b"marker").qos(1, 0))
        .await;
    let m = c.recv_publish_acked().await;
    assert_eq!((m.topic.as_str(), m.qos), ("churn/end", 1));
    c.expect_no_packet(QUIET).await;
    assert_eq!(c.unsubscribe("churn/#").await, Vec::<u8>::new());
    p.publish(Publish::new("churn/end", b"after").qos(1, 0))
        .await;
    c.expect_no_packet(QUIET).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_idle_past_the_cool_down_still_deliver_and_read_large_packets() {
    // An idle connection's task parks and, after 20 ms, gives back its active phase and
    // its read buffer; the next packet arrives through a 128-byte stack read. Every
    // wake-up source must still work then: a delivery, a packet larger than that read,
    // and a QoS 1 exchange.
    let b = TestBroker::start_default().await;
    let mut sub = V311::connect(b.addr, "cold-sub").await;
    sub.subscribe("cold/t", QoS::AtLeastOnce).await;
    let mut publisher = V311::connect(b.addr, "cold-pub").await;
    for size in [10usize, 5000, 70_000] {
        tokio::time::sleep(ms(200)).await;
        let payload = vec![b'x'; size];
        publisher
            .publish("cold/t", QoS::AtLeastOnce, false, &payload)
            .await;
        let got = sub.recv().await;
        assert_eq!(got.payload.len(), size, "delivered after a quiet spell");
    }
    // Both sides went quiet again; the subscriber is woken by its outbox alone.
    tokio::time::sleep(ms(200)).await;
    publisher
        .publish("cold/t", QoS::AtMostOnce, false, b"last")
        .await;
    assert_eq!(&sub.recv().await.payload[..], b"last");
}
