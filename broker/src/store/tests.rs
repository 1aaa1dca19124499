//! The store against real files: what goes in comes back after close and reopen,
//! housekeeping at start, damaged files and records, tickets.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use bytestring::ByteString;
use figment::value::magic::RelativePathBuf;

use super::record::{self, MessageRecord, SessionRecord, SubscriptionRecord};
use super::*;
use crate::codec::{RetainHandling, SubscriptionOptions};
use crate::message::MessageProperties;
use crate::session::SessionSubscription;
use crate::types::QoS;

fn config(dir: &Path) -> StorageConfig {
    StorageConfig {
        dir: RelativePathBuf::from(dir.to_path_buf()),
        ..StorageConfig::default()
    }
}

fn message(topic: &str, payload: &'static [u8]) -> Message {
    Message {
        topic: TopicName::new(topic).unwrap(),
        payload: Bytes::from_static(payload),
        qos: QoS::AtLeastOnce,
        retain: true,
        properties: MessageProperties::default(),
        expires_at: None,
        publisher: Some(ClientId::new("pub")),
    }
}

fn delivery(m: Message, qos: QoS) -> Delivery {
    Delivery {
        message: Arc::new(m),
        qos,
        retain: false,
        subscription_ids: vec![7],
        store_seq: None,
    }
}

fn session_record(generation: u64, offline_since_ms: Option<u64>, expiry: u32) -> SessionRecord {
    let sub = SessionSubscription {
        options: SubscriptionOptions {
            qos: QoS::ExactlyOnce,
            no_local: true,
            retain_as_published: false,
            retain_handling: RetainHandling::OnNewSubscribe,
        },
        subscription_id: Some(7),
    };
    SessionRecord {
        generation,
        expiry_interval_secs: expiry,
        subscriptions: vec![SubscriptionRecord::new(&"a/+".into(), &sub)],
        offline_since_ms,
        delayed_will: None,
        will: None,
    }
}

fn pid(n: u16) -> PacketId {
    PacketId::new(n).unwrap()
}

async fn submit_and_wait(store: &Store, ops: Vec<Op>) {
    let t = store.submit_all(ops);
    assert!(!t.is_none(), "group commit makes acknowledgements wait");
    store.wait(t).await.expect("durable");
}

#[tokio::test]
async fn everything_written_comes_back_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let (store, snap) = Store::open(&cfg).unwrap();
    assert!(snap.retained.is_empty() && snap.sessions.is_empty());
    let c = ClientId::new("c1");
    let g = store.next_seq();
    let (s1, s2, s3) = (store.next_seq(), store.next_seq(), store.next_seq());
    submit_and_wait(
        &store,
        vec![
            Op::RetainPut(Arc::new(message("r/1", b"one"))),
            Op::RetainPut(Arc::new(message("r/2", b"two"))),
            Op::RetainDelete(TopicName::new("r/2").unwrap()),
            Op::SessionPut(c.clone(), Box::new(session_record(g, None, 3600))),
            Op::Enqueue {
                client: c.clone(),
                generation: g,
                seq: s1,
                message_id: 9_000_000 + s1,
                delivery: delivery(message("a/1", b"first"), QoS::ExactlyOnce),
            },
            Op::Enqueue {
                client: c.clone(),
                generation: g,
                seq: s2,
                message_id: 9_000_000 + s2,
                delivery: delivery(message("a/2", b"second"), QoS::AtLeastOnce),
            },
            Op::Enqueue {
                client: c.clone(),
                generation: g,
                seq: s3,
                message_id: 9_000_000 + s3,
                delivery: delivery(message("a/3", b"third"), QoS::AtLeastOnce),
            },
            Op::Inflight {
                client: c.clone(),
                seq: s1,
                packet_id: pid(5),
                state: InflightState::AwaitingPubComp,
            },
            Op::Dequeue {
                client: c.clone(),
                seq: s2,
            },
            Op::Qos2In {
                client: c.clone(),
                packet_id: pid(9),
                present: true,
            },
            Op::Qos2In {
                client: c.clone(),
                packet_id: pid(10),
                present: true,
            },
            Op::Qos2In {
                client: c.clone(),
                packet_id: pid(10),
                present: false,
            },
        ],
    )
    .await;
    store.close();

    let (store, snap) = Store::open(&cfg).unwrap();
    assert_eq!(snap.retained.len(), 1);
    assert_eq!(snap.retained[0].payload, Bytes::from_static(b"one"));
    assert_eq!(snap.sessions.len(), 1);
    let s = &snap.sessions[0];
    assert_eq!(s.client_id, c);
    assert_eq!(s.record.generation, g);
    // connected when it stopped: offline from the restart on
    assert!(s.record.offline_since_ms.is_some());
    let (key, sub) = s.record.subscriptions[0]
        .clone()
        .into_subscription()
        .unwrap();
    assert_eq!(&*key, "a/+");
    assert!(sub.options.no_local && sub.options.qos == QoS::ExactlyOnce);
    let queue: Vec<_> = s
        .queue
        .iter()
        .map(|(d, st)| (d.store_seq, d.message.payload.clone(), *st))
        .collect();
    assert_eq!(
        queue,
        vec![
            (
                Some(s1),
                Bytes::from_static(b"first"),
                Some((pid(5), InflightState::AwaitingPubComp))
            ),
            (Some(s3), Bytes::from_static(b"third"), None),
        ]
    );
    assert_eq!(s.queue[0].0.subscription_ids, vec![7]);
    assert_eq!(s.inbound_qos2, vec![pid(9)]);
    // sequence numbers continue after the highest one stored
    assert!(store.next_seq() > s3);
    store.close();
}

#[tokio::test]
async fn start_up_removes_what_expired_and_returns_due_wills() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let (store, _) = Store::open(&cfg).unwrap();
    let now = Instant::now();
    let wall = SystemTime::now();
    let now_ms = record::unix_ms(wall);
    let mut short = message("r/short", b"gone");
    short.expires_at = Some(now + Duration::from_millis(1));
    let live = ClientId::new("live");
    let dead = ClientId::new("dead");
    let willing = ClientId::new("willing");
    let will = MessageRecord::from_message(&message("will/w", b"bye"), now, wall);
    let mut with_will = session_record(30, Some(now_ms), 3600);
    with_will.delayed_will = Some((will.clone(), now_ms.saturating_sub(1)));
    let mut expired_with_will = session_record(20, Some(now_ms - 10_000), 5);
    expired_with_will.delayed_will = Some((will, now_ms + 60_000));
    submit_and_wait(
        &store,
        vec![
            Op::RetainPut(Arc::new(short)),
            Op::RetainPut(Arc::new(message("r/long", b"kept"))),
            Op::SessionPut(
                live.clone(),
                Box::new(session_record(10, Some(now_ms), 3600)),
            ),
            Op::SessionPut(dead.clone(), Box::new(expired_with_will)),
            Op::SessionPut(willing.clone(), Box::new(with_will)),
            // queued for an older generation of `live`: an orphan
            Op::Enqueue {
                client: live.clone(),
                generation: 9,
                seq: 100,
                message_id: 9_000_000 + 100,
                delivery: delivery(message("a/x", b"old"), QoS::AtLeastOnce),
            },
            Op::Enqueue {
                client: dead.clone(),
                generation: 20,
                seq: 101,
                message_id: 9_000_000 + 101,
                delivery: delivery(message("a/y", b"dead"), QoS::AtLeastOnce),
            },
        ],
    )
    .await;
    store.close();
    std::thread::sleep(Duration::from_millis(5));

    let (store, snap) = Store::open(&cfg).unwrap();
    let topics: Vec<_> = snap.retained.iter().map(|m| m.topic.to_string()).collect();
    assert_eq!(topics, ["r/long"]);
    let clients: Vec<_> = snap
        .sessions
        .iter()
        .map(|s| s.client_id.to_string())
        .collect();
    assert_eq!(clients, ["live", "willing"]);
    assert!(snap.sessions.iter().all(|s| s.queue.is_empty()));
    assert!(
        snap.sessions
            .iter()
            .all(|s| s.record.delayed_will.is_none()),
        "a will that fell due leaves the record"
    );
    // the due will of `willing` and the will of the expired session `dead`
    assert_eq!(snap.due_wills.len(), 2);
    assert_eq!(
        snap.removed, 4,
        "short retained, dead session, two queue entries"
    );
    store.close();

    // and the removals were written: a second start finds nothing more to do
    let (store, snap) = Store::open(&cfg).unwrap();
    assert_eq!(snap.removed, 0);
    assert!(snap.due_wills.is_empty(), "a will goes out once");
    store.close();
}

#[test]
fn a_shared_subscription_record_comes_back_under_its_key_and_a_bad_key_is_refused() {
    let sub = SessionSubscription {
        options: SubscriptionOptions::default(),
        subscription_id: None,
    };
    let key: ByteString = "$share/g/t/+".into();
    let record = SubscriptionRecord::new(&key, &sub);
    // Written as the earlier release wrote it: share name and filter beside the key.
    let json = serde_json::to_value(&record).unwrap();
    assert_eq!(
        (json["share_group"].as_str(), json["filter"].as_str()),
        (Some("g"), Some("t/+"))
    );
    let (back, back_sub) = record.into_subscription().unwrap();
    assert_eq!((back, back_sub), (key, sub.clone()));
    let bad = SubscriptionRecord::new(&"a/#/b".into(), &sub);
    assert!(matches!(
        bad.into_subscription(),
        Err(record::DecodeError::Invalid("topic filter"))
    ));
}

#[test]
fn a_damaged_file_is_an_error_naming_it_unless_moved_aside() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(FILE_NAME);
    std::fs::write(&path, vec![0xA5; 64 * 1024]).unwrap();
    let err = Store::open(&config(dir.path())).unwrap_err();
    let text = err.to_string();
    assert!(text.contains(&path.display().to_string()), "{text}");
    assert!(text.contains("move-aside"), "{text}");

    let cfg = StorageConfig {
        on_corrupt: OnCorrupt::MoveAside,
        ..config(dir.path())
    };
    let (store, snap) = Store::open(&cfg).expect("starts empty");
    assert!(snap.retained.is_empty());
    store.close();
    let aside: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("cauldron.redb.corrupt-"))
        .collect();
    assert_eq!(aside.len(), 1, "the bad file is kept for inspection");
}

#[test]
fn an_unreadable_record_names_table_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(FILE_NAME);
    {
        let db = redb::Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let def: redb::TableDefinition<&str, &[u8]> = redb::TableDefinition::new("retained");
            let mut t = txn.open_table(def).unwrap();
            t.insert("bad/topic", [record::FORMAT, 0xff, 0xff].as_slice())
                .unwrap();
        }
        txn.commit().unwrap();
    }
    let err = Store::open(&config(dir.path())).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("retained") && text.contains("bad/topic"),
        "{text}"
    );
}

#[test]
fn a_second_broker_on_the_same_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = Store::open(&config(dir.path())).unwrap();
    let err = Store::open(&config(dir.path())).unwrap_err();
    assert!(err.to_string().contains("another"), "{err}");
    store.close();
}

#[tokio::test]
async fn tickets_after_close_fail_and_memory_never_waits() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = Store::open(&config(dir.path())).unwrap();
    store.close();
    let t = store.submit(Op::RetainDelete(TopicName::new("x").unwrap()));
    assert_eq!(store.wait(t).await, Err(WriteError::Closed));

    let memory = Store::memory();
    assert!(!memory.is_durable());
    let t = memory.submit(Op::RetainDelete(TopicName::new("x").unwrap()));
    assert!(t.is_none());
    assert_eq!(memory.poll(t), Some(Ok(())));
}

#[tokio::test]
async fn periodic_fsync_does_not_make_anyone_wait_but_keeps_the_data() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = StorageConfig {
        fsync: FsyncPolicy::Periodic,
        ..config(dir.path())
    };
    let (store, _) = Store::open(&cfg).unwrap();
    let t = store.submit(Op::RetainPut(Arc::new(message("p/1", b"x"))));
    assert!(t.is_none());
    store.close();
    let (store, snap) = Store::open(&cfg).unwrap();
    assert_eq!(snap.retained.len(), 1, "a clean close syncs");
    store.close();
}

#[tokio::test]
async fn disk_use_stays_bounded_under_churn() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = Store::open(&config(dir.path())).unwrap();
    let c = ClientId::new("churn");
    let g = store.next_seq();
    submit_and_wait(
        &store,
        vec![Op::SessionPut(
            c.clone(),
            Box::new(session_record(g, None, 3600)),
        )],
    )
    .await;
    let payload: &'static [u8] = Box::leak(vec![b'x'; 1024].into_boxed_slice());
    let mut sizes = Vec::new();
    for _ in 0..6 {
        let seqs: Vec<u64> = (0..2000).map(|_| store.next_seq()).collect();
        let enqueue = seqs.iter().map(|&seq| Op::Enqueue {
            client: c.clone(),
            generation: g,
            seq,
            message_id: 9_000_000 + seq,
            delivery: delivery(message("churn/t", payload), QoS::AtLeastOnce),
        });
        submit_and_wait(&store, enqueue.collect()).await;
        let dequeue = seqs.iter().map(|&seq| Op::Dequeue {
            client: c.clone(),
            seq,
        });
        submit_and_wait(&store, dequeue.collect()).await;
        sizes.push(std::fs::metadata(dir.path().join(FILE_NAME)).unwrap().len());
    }
    store.close();
    eprintln!("store file size per round: {sizes:?}");
    // freed pages are reused: the file stops growing after the first rounds
    let (first, last) = (sizes[1], sizes[5]);
    assert!(
        last <= first + first / 2,
        "file grew under churn: {sizes:?}"
    );
}

#[test]
fn a_full_disk_is_reported_as_no_space() {
    for code in [28, 122] {
        let e = redb::Error::Io(std::io::Error::from_raw_os_error(code));
        assert_eq!(engine::write_error(e), WriteError::NoSpace);
    }
    let e = redb::Error::Io(std::io::Error::from_raw_os_error(5));
    assert!(matches!(engine::write_error(e), WriteError::Failed(_)));
}

/// A redb backend in memory whose writes fail with ENOSPC while `full` is set.
#[derive(Debug)]
struct FlakyDisk {
    inner: Arc<redb::backends::InMemoryBackend>,
    full: Arc<std::sync::atomic::AtomicBool>,
}

impl FlakyDisk {
    fn check(&self) -> Result<(), std::io::Error> {
        if self.full.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(std::io::Error::from_raw_os_error(28));
        }
        Ok(())
    }
}

impl redb::StorageBackend for FlakyDisk {
    fn len(&self) -> Result<u64, std::io::Error> {
        self.inner.len()
    }
    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), std::io::Error> {
        self.inner.read(offset, out)
    }
    fn set_len(&self, len: u64) -> Result<(), std::io::Error> {
        if len > self.inner.len()? {
            self.check()?;
        }
        self.inner.set_len(len)
    }
    fn sync_data(&self) -> Result<(), std::io::Error> {
        self.check()?;
        self.inner.sync_data()
    }
    fn write(&self, offset: u64, data: &[u8]) -> Result<(), std::io::Error> {
        self.check()?;
        self.inner.write(offset, data)
    }
}

fn flaky_engine(
    inner: &Arc<redb::backends::InMemoryBackend>,
    full: &Arc<std::sync::atomic::AtomicBool>,
) -> RedbEngine {
    let (inner, full) = (Arc::clone(inner), Arc::clone(full));
    let opener = move |verify: bool| {
        redb::Builder::new()
            .set_check_integrity_on_open(verify)
            .create_with_backend(FlakyDisk {
                inner: Arc::clone(&inner),
                full: Arc::clone(&full),
            })
    };
    RedbEngine::with_opener(Path::new("flaky-disk"), false, Box::new(opener)).unwrap()
}

#[tokio::test]
async fn after_a_full_disk_writes_fail_with_no_space_then_resume_without_the_failed_batch() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let inner = Arc::new(redb::backends::InMemoryBackend::new());
    let full = Arc::new(AtomicBool::new(false));
    let mut engine = flaky_engine(&inner, &full);
    let snapshot = engine.load(Instant::now(), SystemTime::now()).unwrap();
    let (store, _) =
        Store::start(Box::new(engine), snapshot, &StorageConfig::default(), None).unwrap();
    let put = |t: &str| Op::RetainPut(Arc::new(message(t, b"v")));

    store.wait(store.submit(put("d/before"))).await.unwrap();
    full.store(true, Ordering::SeqCst);
    assert_eq!(
        store.wait(store.submit(put("d/during"))).await,
        Err(WriteError::NoSpace)
    );
    assert_eq!(
        store.wait(store.submit(put("d/during-2"))).await,
        Err(WriteError::NoSpace),
        "still full: still refused"
    );
    full.store(false, Ordering::SeqCst);
    store.wait(store.submit(put("d/after"))).await.unwrap();
    store.close();

    let mut engine = flaky_engine(&inner, &full);
    let snapshot = engine.load(Instant::now(), SystemTime::now()).unwrap();
    let mut topics: Vec<String> = snapshot
        .retained
        .iter()
        .map(|m| m.topic.to_string())
        .collect();
    topics.sort();
    assert_eq!(
        topics,
        ["d/after", "d/before"],
        "failed writes are not half there"
    );
}

/// An engine that panics on its first batch and works afterwards.
struct PanicsOnce(bool);

impl Engine for PanicsOnce {
    fn load(&mut self, _: Instant, _: SystemTime) -> Result<Snapshot, OpenError> {
        Ok(Snapshot::default())
    }
    fn apply(&mut self, _: &[Op], _: bool) -> Result<(), WriteError> {
        if !self.0 {
            self.0 = true;
            panic!("engine bug");
        }
        Ok(())
    }
    fn sync(&mut self) -> Result<(), WriteError> {
        Ok(())
    }
}

#[tokio::test]
async fn a_panicking_engine_fails_its_batch_and_the_writer_goes_on() {
    let config = StorageConfig {
        fsync: FsyncPolicy::Always,
        ..StorageConfig::default()
    };
    let (store, _) = Store::start(
        Box::new(PanicsOnce(false)),
        Snapshot::default(),
        &config,
        None,
    )
    .unwrap();
    let op = || Op::RetainDelete(TopicName::new("x").unwrap());
    assert!(matches!(
        store.wait(store.submit(op())).await,
        Err(WriteError::Failed(_))
    ));
    assert_eq!(store.wait(store.submit(op())).await, Ok(()));
    store.close();
}

fn table_len(dir: &Path, table: &str) -> u64 {
    use redb::{ReadableDatabase, ReadableTableMetadata};
    let db = redb::Database::create(dir.join(FILE_NAME)).unwrap();
    let txn = db.begin_read().unwrap();
    match table {
        "messages" => txn
            .open_table(redb::TableDefinition::<u64, &[u8]>::new("messages"))
            .unwrap()
            .len()
            .unwrap(),
        _ => txn
            .open_table(redb::TableDefinition::<(&str, u64), &[u8]>::new("queue"))
            .unwrap()
            .len()
            .unwrap(),
    }
}

#[tokio::test]
async fn a_message_queued_for_many_sessions_is_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let (store, _) = Store::open(&cfg).unwrap();
    let big: &'static [u8] = Box::leak(vec![b'p'; 64 * 1024].into_boxed_slice());
    let m = message("fan/out", big);
    let message_id = store.next_seq();
    let clients: Vec<ClientId> = (0..3).map(|i| ClientId::new(format!("s{i}"))).collect();
    let mut ops = Vec::new();
    let mut seqs = Vec::new();
    for c in &clients {
        let g = store.next_seq();
        ops.push(Op::SessionPut(
            c.clone(),
            Box::new(session_record(g, None, 3600)),
        ));
        let seq = store.next_seq();
        seqs.push(seq);
        ops.push(Op::Enqueue {
            client: c.clone(),
            generation: g,
            seq,
            message_id,
            delivery: delivery(m.clone(), QoS::AtLeastOnce),
        });
    }
    submit_and_wait(&store, ops).await;
    store.close();
    assert_eq!(
        table_len(dir.path(), "messages"),
        1,
        "one copy of the payload"
    );
    assert_eq!(table_len(dir.path(), "queue"), 3);

    let (store, snap) = Store::open(&cfg).unwrap();
    let loaded: Vec<&Arc<Message>> = snap
        .sessions
        .iter()
        .map(|s| &s.queue[0].0.message)
        .collect();
    assert_eq!(loaded.len(), 3);
    assert!(
        loaded.windows(2).all(|w| Arc::ptr_eq(w[0], w[1])),
        "and one copy in memory after a restart"
    );
    // two deliveries done, one session ends: the message goes with the last reference
    submit_and_wait(
        &store,
        vec![
            Op::Dequeue {
                client: clients[0].clone(),
                seq: seqs[0],
            },
            Op::Dequeue {
                client: clients[1].clone(),
                seq: seqs[1],
            },
        ],
    )
    .await;
    store.close();
    assert_eq!(table_len(dir.path(), "messages"), 1, "still queued for s2");
    let (store, _) = Store::open(&cfg).unwrap();
    submit_and_wait(&store, vec![Op::SessionDelete(clients[2].clone())]).await;
    store.close();
    assert_eq!(table_len(dir.path(), "messages"), 0);
    assert_eq!(table_len(dir.path(), "queue"), 0);
}

#[tokio::test]
async fn ids_after_a_restart_never_reuse_a_stored_message_id() {
    // The router takes the delivery's seq, then the message id: the message id is the
    // highest number stored when one message is queued for one session.
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let c = ClientId::new("c");
    let (store, _) = Store::open(&cfg).unwrap();
    let g = store.next_seq();
    let (seq, message_id) = (store.next_seq(), store.next_seq());
    submit_and_wait(
        &store,
        vec![
            Op::SessionPut(c.clone(), Box::new(session_record(g, None, 3600))),
            Op::Enqueue {
                client: c.clone(),
                generation: g,
                seq,
                message_id,
                delivery: delivery(message("a/1", b"first"), QoS::AtLeastOnce),
            },
        ],
    )
    .await;
    store.close();

    let (store, _) = Store::open(&cfg).unwrap();
    let (seq2, message_id2) = (store.next_seq(), store.next_seq());
    assert!(seq2 > message_id && message_id2 > message_id);
    submit_and_wait(
        &store,
        vec![Op::Enqueue {
            client: c.clone(),
            generation: g,
            seq: seq2,
            message_id: message_id2,
            delivery: delivery(message("a/2", b"second"), QoS::AtLeastOnce),
        }],
    )
    .await;
    store.close();

    let (store, snap) = Store::open(&cfg).unwrap();
    let payloads: Vec<Bytes> = snap.sessions[0]
        .queue
        .iter()
        .map(|(d, _)| d.message.payload.clone())
        .collect();
    assert_eq!(
        payloads,
        [Bytes::from_static(b"first"), Bytes::from_static(b"second")]
    );
    store.close();
}
