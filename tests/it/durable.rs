//! Durable state across a restart of the broker on the same data directory (graceful
//! stop here; `broker/tests/crash.rs` kills the process): retained messages, persistent
//! sessions with their subscriptions and queues, messages in flight both ways with
//! their packet identifiers, session expiry that keeps counting, delayed wills.

use std::path::Path;
use std::time::Duration;

use integration::packets::{self, Connect, Props, Publish, Will, kind, parse_ack, prop};
use integration::{Config, QUIET, RawClient, TestBroker};

fn config(dir: &Path) -> Config {
    Config {
        storage: cauldron::config::StorageConfig::in_dir(dir),
        ..Config::default()
    }
}

fn persistent5(id: &str, expiry: u32) -> Connect {
    Connect::v5(id)
        .clean(false)
        .props(Props::new().u32(prop::SESSION_EXPIRY_INTERVAL, expiry))
}

async fn restart(broker: TestBroker, dir: &Path) -> TestBroker {
    broker.stop().await;
    TestBroker::start(config(dir)).await
}

#[tokio::test]
async fn retained_messages_survive_a_restart_and_deletes_too() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(config(dir.path())).await;
    let mut p = RawClient::connect_v311(broker.addr, "retainer").await;
    for (topic, payload) in [("keep/a", "1"), ("keep/b", "2"), ("keep/c", "3")] {
        p.publish(Publish::new(topic, payload.as_bytes()).qos(1, 0).retain())
            .await;
    }
    // [MQTT-3.3.1-10] an empty retained payload deletes, on disk as well
    p.publish(Publish::new("keep/b", b"").qos(1, 0).retain())
        .await;
    p.disconnect().await;

    let broker = restart(broker, dir.path()).await;
    let mut s = RawClient::connect_v311(broker.addr, "reader").await;
    s.subscribe("keep/#", 1).await;
    let mut got = Vec::new();
    for _ in 0..2 {
        let m = s.recv_publish_acked().await;
        assert!(m.retain, "[MQTT-3.3.1-9] sent as retained");
        got.push((m.topic.clone(), m.payload_str().to_owned()));
    }
    got.sort();
    assert_eq!(
        got,
        [("keep/a".into(), "1".into()), ("keep/c".into(), "3".into())]
    );
    s.expect_no_packet(QUIET).await;
    broker.stop().await;
}

#[tokio::test]
async fn a_persistent_311_session_keeps_subscriptions_and_queue_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(config(dir.path())).await;
    let (mut s, _) =
        RawClient::connect_with(broker.addr, &Connect::v311("durable-311").clean(false)).await;
    assert_eq!(s.subscribe("q/#", 1).await, [1]);
    s.disconnect().await;
    let mut p = RawClient::connect_v311(broker.addr, "pub").await;
    for i in 0..3 {
        let code = p
            .publish(Publish::new("q/x", format!("m{i}").as_bytes()).qos(1, 0))
            .await;
        assert_eq!(code, 0);
    }
    p.disconnect().await;

    let broker = restart(broker, dir.path()).await;
    let (mut s, ack) =
        RawClient::connect_with(broker.addr, &Connect::v311("durable-311").clean(false)).await;
    assert!(ack.session_present, "[MQTT-3.2.2-2] the session survived");
    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(s.recv_publish_acked().await.payload_str().to_owned());
    }
    assert_eq!(got, ["m0", "m1", "m2"], "queued messages, in order");
    // and the subscription itself survived: a new message arrives without SUBSCRIBE
    let mut p = RawClient::connect_v311(broker.addr, "pub").await;
    p.publish(Publish::new("q/y", b"live").qos(1, 0)).await;
    assert_eq!(s.recv_publish_acked().await.payload_str(), "live");
    broker.stop().await;
}

#[tokio::test]
async fn an_inbound_qos2_id_stays_known_across_a_restart() {
    // [MQTT-4.3.3-9]: a PUBLISH with a packet id awaiting PUBREL is not routed again,
    // even when the broker restarted in between.
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(config(dir.path())).await;
    let (mut s, _) = RawClient::connect_with(broker.addr, &persistent5("q2-sub", 3600)).await;
    assert_eq!(s.subscribe("x/#", 2).await, [2]);
    s.disconnect().await;
    let (mut p, _) = RawClient::connect_with(broker.addr, &persistent5("q2-pub", 3600)).await;
    p.send(&Publish::new("x/1", b"once").v5().qos(2, 7).bytes())
        .await;
    let (_, body) = p.recv_kind(kind::PUBREC).await;
    assert_eq!(parse_ack(&body).0, 7);
    p.drop_connection();

    let broker = restart(broker, dir.path()).await;
    let (mut p, ack) = RawClient::connect_with(broker.addr, &persistent5("q2-pub", 3600)).await;
    assert!(ack.session_present);
    // the retransmission is acknowledged, not routed a second time
    p.send(&Publish::new("x/1", b"once").v5().qos(2, 7).dup().bytes())
        .await;
    let (_, body) = p.recv_kind(kind::PUBREC).await;
    let (id, code, _) = parse_ack(&body);
    assert_eq!((id, code), (7, 0));
    p.send(&packets::pubrel(7)).await;
    let (_, body) = p.recv_kind(kind::PUBCOMP).await;
    let (id, code, _) = parse_ack(&body);
    assert_eq!(
        (id, code),
        (7, 0),
        "the id was known: PUBCOMP success, not 0x92"
    );

    let (mut s, ack) = RawClient::connect_with(broker.addr, &persistent5("q2-sub", 3600)).await;
    assert!(ack.session_present);
    assert_eq!(s.recv_publish_acked().await.payload_str(), "once");
    s.expect_no_packet(QUIET).await;
    broker.stop().await;
}

#[tokio::test]
async fn a_refused_qos2_id_is_free_again_after_a_restart() {
    // A PUBREC with a failure code ends the QoS 2 exchange [MQTT-4.4.0-2], so the client
    // may reuse the id. The broker once kept the refused id on disk: after a restart the
    // next message under that id was taken for a retransmission [MQTT-4.3.3-9],
    // acknowledged and never routed.
    let dir = tempfile::tempdir().unwrap();
    let with_acl = |dir: &Path| Config {
        acl: cauldron::config::AclConfig {
            rules: vec![cauldron::acl::RuleConfig {
                who: "all".to_owned(),
                action: cauldron::acl::Action::All,
                topic: "ok/#".to_owned(),
                permission: cauldron::acl::Permission::Allow,
            }],
            ..Default::default()
        },
        ..config(dir)
    };
    let broker = TestBroker::start(with_acl(dir.path())).await;
    let (mut s, _) = RawClient::connect_with(broker.addr, &persistent5("r-sub", 3600)).await;
    assert_eq!(s.subscribe("ok/#", 2).await, [2]);
    s.disconnect().await;
    let (mut p, _) = RawClient::connect_with(broker.addr, &persistent5("r-pub", 3600)).await;
    p.send(&Publish::new("denied/1", b"no").v5().qos(2, 9).bytes())
        .await;
    let (_, body) = p.recv_kind(kind::PUBREC).await;
    assert_eq!(parse_ack(&body).0, 9);
    assert_eq!(parse_ack(&body).1, 0x87, "refused by the ACL");
    p.drop_connection();

    broker.stop().await;
    let broker = TestBroker::start(with_acl(dir.path())).await;
    let (mut p, ack) = RawClient::connect_with(broker.addr, &persistent5("r-pub", 3600)).await;
    assert!(ack.session_present);
    // a new message under the same id
    assert_eq!(
        p.publish(Publish::new("ok/1", b"new").v5().qos(2, 9)).await,
        0
    );
    let (mut s, ack) = RawClient::connect_with(broker.addr, &persistent5("r-sub", 3600)).await;
    assert!(ack.session_present);
    assert_eq!(
        s.recv_publish_acked().await.payload_str(),
        "new",
        "routed, not taken for a retransmission"
    );
    broker.stop().await;
}

#[tokio::test]
async fn outbound_messages_in_flight_resume_with_their_ids_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(config(dir.path())).await;
    let (mut s, _) = RawClient::connect_with(broker.addr, &persistent5("inflight", 3600)).await;
    assert_eq!(s.subscribe("f/2", 2).await, [2]);
    assert_eq!(s.subscribe("f/1", 1).await, [1]);
    let mut p = RawClient::connect_v311(broker.addr, "pub").await;
    p.publish(Publish::new("f/2", b"two").qos(2, 0)).await;
    p.publish(Publish::new("f/1", b"one").qos(1, 0)).await;
    // QoS 2: PUBREC sent, PUBREL received, PUBCOMP not sent yet
    let m2 = s.recv_publish().await;
    assert_eq!((m2.qos, m2.payload_str()), (2, "two"));
    s.send(&packets::pubrec(m2.packet_id)).await;
    let (_, body) = s.recv_kind(kind::PUBREL).await;
    assert_eq!(parse_ack(&body).0, m2.packet_id);
    // QoS 1: received, not acknowledged
    let m1 = s.recv_publish().await;
    assert_eq!((m1.qos, m1.payload_str()), (1, "one"));
    s.drop_connection();
    p.disconnect().await;

    let broker = restart(broker, dir.path()).await;
    let (mut s, ack) = RawClient::connect_with(broker.addr, &persistent5("inflight", 3600)).await;
    assert!(ack.session_present);
    // [MQTT-4.4.0-1] in the original order: PUBREL for the released one (never the
    // message again), then the unacknowledged QoS 1 PUBLISH with DUP and its id
    let (first, body) = s.recv_packet().await;
    assert_eq!(first >> 4, kind::PUBREL, "PUBREL first, got {first:#04x}");
    assert_eq!(parse_ack(&body).0, m2.packet_id);
    s.send(&packets::pubcomp(m2.packet_id)).await;
    let again = s.recv_publish().await;
    assert!(again.dup, "[MQTT-3.3.1-1] DUP on the retransmission");
    assert_eq!(
        (again.packet_id, again.payload_str()),
        (m1.packet_id, "one")
    );
    s.send(&packets::puback(again.packet_id)).await;
    s.expect_no_packet(QUIET).await;
    s.disconnect().await;

    // everything was acknowledged: nothing comes back after another restart
    let broker = restart(broker, dir.path()).await;
    let (mut s, ack) = RawClient::connect_with(broker.addr, &persistent5("inflight", 3600)).await;
    assert!(ack.session_present);
    s.expect_no_packet(QUIET).await;
    broker.stop().await;
}

#[tokio::test]
async fn session_expiry_keeps_counting_while_the_broker_is_down() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(config(dir.path())).await;
    let (mut short, _) = RawClient::connect_with(broker.addr, &persistent5("short", 2)).await;
    short.subscribe("s/#", 1).await;
    short.disconnect().await;
    let (mut long, _) = RawClient::connect_with(broker.addr, &persistent5("long", 3600)).await;
    long.subscribe("s/#", 1).await;
    long.disconnect().await;
    broker.stop().await;
    tokio::time::sleep(Duration::from_millis(2500)).await;

    let broker = TestBroker::start(config(dir.path())).await;
    let (_, ack) = RawClient::connect_with(broker.addr, &persistent5("short", 2)).await;
    assert!(
        !ack.session_present,
        "[MQTT-3.1.2-23] expired during the 2.5 s the broker was down"
    );
    let (_, ack) = RawClient::connect_with(broker.addr, &persistent5("long", 3600)).await;
    assert!(ack.session_present);
    broker.stop().await;
}

#[tokio::test]
async fn a_delayed_will_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(config(dir.path())).await;
    let will =
        Will::new("wills/dev", b"gone").props(Props::new().u32(prop::WILL_DELAY_INTERVAL, 2));
    let (c, _) = RawClient::connect_with(broker.addr, &persistent5("dev", 3600).will(will)).await;
    c.drop_connection(); // abnormal: the will waits 2 s [MQTT-3.1.3-9]
    tokio::time::sleep(Duration::from_millis(200)).await;
    let broker = restart(broker, dir.path()).await;
    let mut o = RawClient::connect_v311(broker.addr, "observer").await;
    o.subscribe("wills/#", 1).await;
    let m = o.recv_publish_acked().await;
    assert_eq!((m.topic.as_str(), m.payload_str()), ("wills/dev", "gone"));
    o.expect_no_packet(QUIET).await;
    broker.stop().await;
}

/// An engine that stores nothing and fails every write while `full` is set, with the
/// error a full disk gives.
struct FullDisk {
    full: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl cauldron::store::Engine for FullDisk {
    fn load(
        &mut self,
        _: std::time::Instant,
        _: std::time::SystemTime,
    ) -> Result<cauldron::store::Snapshot, cauldron::store::OpenError> {
        Ok(cauldron::store::Snapshot::default())
    }

    fn apply(
        &mut self,
        _: &[cauldron::store::Op],
        _: bool,
    ) -> Result<(), cauldron::store::WriteError> {
        if self.full.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(cauldron::store::WriteError::NoSpace);
        }
        Ok(())
    }

    fn sync(&mut self) -> Result<(), cauldron::store::WriteError> {
        self.apply(&[], true)
    }
}

#[tokio::test]
async fn a_full_disk_refuses_durable_publishes_instead_of_acknowledging_them() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let full = std::sync::Arc::new(AtomicBool::new(false));
    let config = Config::default();
    let (store, snapshot) = cauldron::store::Store::start(
        Box::new(FullDisk {
            full: std::sync::Arc::clone(&full),
        }),
        cauldron::store::Snapshot::default(),
        &config.storage,
        None,
    )
    .expect("store");
    let broker = TestBroker::start_with_store(config, store, snapshot).await;
    let (mut durable, _) = RawClient::connect_with(broker.addr, &persistent5("keeper", 3600)).await;
    assert_eq!(durable.subscribe("disk/kept", 1).await, [1]);
    let mut clean = RawClient::connect_v311(broker.addr, "clean").await;
    clean.subscribe("disk/volatile", 1).await;
    let (mut p5, _) = RawClient::connect_v5(broker.addr, "p5", Props::new()).await;

    full.store(true, Ordering::SeqCst);
    // A message that must reach a persistent session is refused with 0x97 (quota
    // exceeded), QoS 1 and QoS 2 alike.
    assert_eq!(
        p5.publish(Publish::new("disk/kept", b"x").v5().qos(1, 0))
            .await,
        0x97
    );
    assert_eq!(
        p5.publish(Publish::new("disk/kept", b"y").v5().qos(2, 0))
            .await,
        0x97
    );
    // Nothing durable involved: acknowledged as usual.
    assert_eq!(
        p5.publish(Publish::new("disk/volatile", b"z").v5().qos(1, 0))
            .await,
        0
    );
    assert_eq!(clean.recv_publish_acked().await.payload_str(), "z");
    // MQTT 3.1.1 has no negative PUBACK: the client is disconnected unacknowledged.
    let mut p3 = RawClient::connect_v311(broker.addr, "p3").await;
    p3.send(&Publish::new("disk/kept", b"v3").qos(1, 9).bytes())
        .await;
    p3.expect_closed().await;
    let rejected = broker
        .broker()
        .stats
        .messages_rejected
        .load(Ordering::Relaxed);
    assert!(rejected >= 3, "refusals are counted: {rejected}");

    // Space again: durable work is accepted again.
    full.store(false, Ordering::SeqCst);
    assert_eq!(
        p5.publish(Publish::new("disk/kept", b"back").v5().qos(1, 0))
            .await,
        0
    );
    let mut got = Vec::new();
    while let integration::raw::Next::Packet(f, body) = durable.next(QUIET).await {
        let p = packets::parse_publish(f, &body, true);
        durable.ack(&p).await;
        got.push(p.payload_str().to_owned());
    }
    assert!(got.contains(&"back".to_owned()), "{got:?}");
    broker.stop().await;
}

#[tokio::test]
async fn sessions_and_retained_messages_that_expire_while_running_leave_the_disk() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(config(dir.path())).await;
    let (mut c, _) = RawClient::connect_with(broker.addr, &persistent5("brief", 1)).await;
    c.subscribe("b/#", 1).await;
    c.disconnect().await;
    let mut p = RawClient::connect_v5(broker.addr, "p", Props::new())
        .await
        .0;
    let short = Props::new().u32(prop::MESSAGE_EXPIRY_INTERVAL, 1);
    p.publish(
        Publish::new("b/r", b"soon gone")
            .v5()
            .props(short)
            .qos(1, 0)
            .retain(),
    )
    .await;
    p.disconnect().await;
    tokio::time::sleep(Duration::from_millis(2600)).await; // expiry + a sweep
    broker.stop().await;

    // The running broker removed them itself: start-up finds nothing left to clean.
    let (store, snapshot) =
        cauldron::store::Store::open(&cauldron::config::StorageConfig::in_dir(dir.path()))
            .expect("store");
    assert!(snapshot.sessions.is_empty(), "{:?}", snapshot.sessions);
    assert!(snapshot.retained.is_empty());
    assert_eq!(snapshot.removed, 0);
    store.close();
}
