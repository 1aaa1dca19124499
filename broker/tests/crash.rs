//! Crash safety of the `cauldron` binary: a QoS 1 and a QoS 2 stream run towards
//! persistent subscribers (two connected, one offline), with retained messages on the
//! side; the broker is killed with SIGKILL (or stopped with SIGTERM) in the middle and
//! restarted on the same data directory. Every message the broker acknowledged must
//! then reach every subscriber, QoS 1 at least once and QoS 2 exactly once, and every
//! acknowledged retained message must be there.
//!
//! The clients are small blocking MQTT clients over real sockets, written on the
//! broker's codec, because the exactly-once check needs a receiver that keeps its QoS 2
//! state (packet ids awaiting PUBREL) across the broker's restart, as the specification
//! asks of a client with a persistent session [MQTT-4.3.3-10] (rumqttc forgets it on
//! reconnect).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use cauldron::codec::{
    self, AckProperties, Connect, ConnectProperties, LastWill, Packet, PubResp, Publish,
    PublishProperties, Subscribe, SubscribeProperties, SubscriptionOptions,
};
use cauldron::types::{PacketId, ProtocolVersion, QoS, ReasonCode};

const BIN: &str = env!("CARGO_BIN_EXE_cauldron");
const WINDOW: usize = 32;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

struct Broker {
    child: Child,
}

impl Broker {
    fn start(dir: &Path, port: u16) -> Broker {
        let config = dir.join("cauldron.toml");
        std::fs::write(
            &config,
            format!(
                "[[listeners]]\nname = \"tcp\"\nbind = \"127.0.0.1:{port}\"\n\
                 [limits]\nmax_queued_messages = 100000\n\
                 [storage]\ndir = \"data\"\n"
            ),
        )
        .expect("config");
        let child = Command::new(BIN)
            .arg("--config")
            .arg(&config)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn cauldron");
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "cauldron did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Broker { child }
    }

    fn signal(&mut self, signal: &str) -> std::process::ExitStatus {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "cauldron did not end after {signal}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A blocking MQTT client on the broker's codec.
struct Client {
    stream: TcpStream,
    buf: BytesMut,
    version: ProtocolVersion,
}

fn pid(n: u16) -> PacketId {
    PacketId::new(n).expect("non-zero packet id")
}

fn ack(packet_id: PacketId) -> PubResp {
    PubResp {
        packet_id,
        reason_code: ReasonCode::SUCCESS,
        properties: AckProperties::default(),
    }
}

impl Client {
    /// Connects; `expiry` > 0 asks MQTT 5 for a persistent session, `clean = false`
    /// does so in 3.1.1. Returns the client and Session Present.
    fn connect(
        port: u16,
        id: &str,
        version: ProtocolVersion,
        clean: bool,
        expiry: u32,
    ) -> std::io::Result<(Client, bool)> {
        Client::connect_will(port, id, version, clean, expiry, None)
    }

    /// [`Client::connect`] with a will.
    fn connect_will(
        port: u16,
        id: &str,
        version: ProtocolVersion,
        clean: bool,
        expiry: u32,
        will: Option<LastWill>,
    ) -> std::io::Result<(Client, bool)> {
        let stream = TcpStream::connect(("127.0.0.1", port))?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_millis(100)))?;
        let mut c = Client {
            stream,
            buf: BytesMut::new(),
            version,
        };
        c.send(&Packet::Connect(Box::new(Connect {
            protocol: version,
            clean_start: clean,
            keep_alive: 30,
            client_id: id.into(),
            will,
            username: None,
            password: None,
            properties: ConnectProperties {
                session_expiry_interval: (expiry > 0).then_some(expiry),
                ..Default::default()
            },
        })))?;
        match c.recv_until(Duration::from_secs(10))? {
            Some(Packet::ConnAck(a)) if a.reason_code == ReasonCode::SUCCESS => {
                Ok((c, a.session_present))
            }
            other => Err(std::io::Error::other(format!(
                "CONNACK expected: {other:?}"
            ))),
        }
    }

    fn send(&mut self, p: &Packet) -> std::io::Result<()> {
        let mut out = BytesMut::new();
        codec::encode(p, self.version, &mut out).map_err(std::io::Error::other)?;
        self.stream.write_all(&out)
    }

    /// The next packet, `None` after one read timeout (100 ms); errors when closed.
    fn recv(&mut self) -> std::io::Result<Option<Packet>> {
        loop {
            match codec::decode(&mut self.buf, Some(self.version), 1 << 20) {
                Ok(Some(p)) => return Ok(Some(p)),
                Ok(None) => {}
                Err(e) => return Err(std::io::Error::other(e.to_string())),
            }
            let mut chunk = [0u8; 16 * 1024];
            match self.stream.read(&mut chunk) {
                Ok(0) => return Err(ErrorKind::UnexpectedEof.into()),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return Ok(None);
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn recv_until(&mut self, wait: Duration) -> std::io::Result<Option<Packet>> {
        let deadline = Instant::now() + wait;
        while Instant::now() < deadline {
            if let Some(p) = self.recv()? {
                return Ok(Some(p));
            }
        }
        Ok(None)
    }

    fn subscribe(&mut self, filter: &str, qos: QoS) -> std::io::Result<()> {
        self.send(&Packet::Subscribe(Subscribe {
            packet_id: pid(1),
            properties: SubscribeProperties::default(),
            filters: vec![(
                filter.into(),
                SubscriptionOptions {
                    qos,
                    ..Default::default()
                },
            )],
        }))?;
        match self.recv_until(Duration::from_secs(10))? {
            Some(Packet::SubAck(a)) if a.reason_codes == [ReasonCode(qos.as_u8())] => Ok(()),
            other => Err(std::io::Error::other(format!("SUBACK expected: {other:?}"))),
        }
    }
}

/// What one subscriber received: message number -> times delivered to the application.
type Counts = Arc<Mutex<BTreeMap<String, u32>>>;

fn lock(c: &Counts) -> std::sync::MutexGuard<'_, BTreeMap<String, u32>> {
    c.lock().unwrap_or_else(|e| e.into_inner())
}

/// A persistent subscriber that reconnects until `stop`, acknowledging everything, and
/// (QoS 2, method B) delivering a packet id only once until its PUBREL.
fn subscriber(
    port: u16,
    id: &'static str,
    version: ProtocolVersion,
    stop: Arc<AtomicBool>,
) -> (Counts, JoinHandle<()>) {
    let counts: Counts = Arc::default();
    let out = Arc::clone(&counts);
    let handle = std::thread::spawn(move || {
        let mut awaiting_pubrel: HashSet<u16> = HashSet::new();
        while !stop.load(Ordering::Relaxed) {
            let expiry = if version == ProtocolVersion::V5 {
                3600
            } else {
                0
            };
            let Ok((mut c, _)) = Client::connect(port, id, version, false, expiry) else {
                std::thread::sleep(Duration::from_millis(50));
                continue;
            };
            while !stop.load(Ordering::Relaxed) {
                let packet = match c.recv() {
                    Ok(Some(p)) => p,
                    Ok(None) => continue,
                    Err(_) => break,
                };
                let reply = match packet {
                    Packet::Publish(p) => {
                        let key = format!("{}#{}", p.topic, String::from_utf8_lossy(&p.payload));
                        let new = match (p.qos, p.packet_id) {
                            (QoS::ExactlyOnce, Some(id)) => awaiting_pubrel.insert(id.get()),
                            _ => true,
                        };
                        if new {
                            *lock(&out).entry(key).or_default() += 1;
                        }
                        match (p.qos, p.packet_id) {
                            (QoS::AtLeastOnce, Some(id)) => Some(Packet::PubAck(ack(id))),
                            (QoS::ExactlyOnce, Some(id)) => Some(Packet::PubRec(ack(id))),
                            _ => None,
                        }
                    }
                    Packet::PubRel(r) => {
                        awaiting_pubrel.remove(&r.packet_id.get());
                        Some(Packet::PubComp(ack(r.packet_id)))
                    }
                    _ => None,
                };
                if let Some(reply) = reply
                    && c.send(&reply).is_err()
                {
                    break;
                }
            }
        }
    });
    (counts, handle)
}

/// Publishes `topic#n` for n = 0.. at `qos` with up to WINDOW in flight, until the
/// connection breaks; every `retain_every`th one also as a retained message on its own
/// topic. Returns the keys the broker acknowledged (PUBACK, or PUBREC for QoS 2).
fn publisher(
    port: u16,
    id: &'static str,
    topic: &'static str,
    qos: QoS,
) -> JoinHandle<Vec<String>> {
    std::thread::spawn(move || {
        let mut acked = Vec::new();
        let Ok((mut c, _)) = Client::connect(port, id, ProtocolVersion::V5, true, 0) else {
            return acked;
        };
        let mut in_flight: BTreeMap<u16, String> = BTreeMap::new();
        let mut n: u32 = 0;
        'run: loop {
            while in_flight.len() < WINDOW {
                let packet_id = (n % 60_000) as u16 + 1;
                let retained = n.is_multiple_of(10);
                let (t, key) = if retained {
                    let t = format!("crash/retained/{id}/{n}");
                    (t.clone(), format!("{t}#{n}"))
                } else {
                    (topic.to_owned(), format!("{topic}#{n}"))
                };
                let p = Packet::Publish(Publish {
                    dup: false,
                    qos,
                    retain: retained,
                    topic: t.into(),
                    packet_id: Some(pid(packet_id)),
                    payload: Bytes::from(n.to_string()),
                    properties: PublishProperties::default(),
                });
                if c.send(&p).is_err() {
                    break 'run;
                }
                in_flight.insert(packet_id, key);
                n += 1;
            }
            match c.recv() {
                Ok(Some(Packet::PubAck(a))) | Ok(Some(Packet::PubRec(a))) => {
                    let done = in_flight.remove(&a.packet_id.get());
                    if a.reason_code == ReasonCode::SUCCESS {
                        acked.extend(done);
                    }
                    if qos == QoS::ExactlyOnce && c.send(&Packet::PubRel(ack(a.packet_id))).is_err()
                    {
                        break;
                    }
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
        acked
    })
}

fn wait_for(what: &str, deadline: Duration, mut done: impl FnMut() -> Option<String>) {
    let end = Instant::now() + deadline;
    loop {
        let Some(missing) = done() else { return };
        assert!(Instant::now() < end, "{what}: {missing}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn missing(counts: &Counts, wanted: &[String]) -> Option<String> {
    let got = lock(counts);
    let absent: Vec<&String> = wanted.iter().filter(|k| !got.contains_key(*k)).collect();
    (!absent.is_empty()).then(|| {
        format!(
            "{} of {} missing, e.g. {:?}",
            absent.len(),
            wanted.len(),
            &absent[..absent.len().min(5)]
        )
    })
}

fn crash_and_recover(stop_signal: &str) {
    let dir = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let mut broker = Broker::start(dir.path(), port);

    // The offline subscriber: subscribes, goes away, comes back after the restart.
    let (mut offline, _) =
        Client::connect(port, "offline", ProtocolVersion::V3_1_1, false, 0).expect("offline");
    offline
        .subscribe("crash/q/#", QoS::ExactlyOnce)
        .expect("subscribe");
    drop(offline);

    // A persistent client with a will stays connected through the stop; an observer
    // of wills waits offline.
    let (mut observer, _) =
        Client::connect(port, "will-observer", ProtocolVersion::V3_1_1, false, 0)
            .expect("observer");
    observer
        .subscribe("crash/will/#", QoS::AtLeastOnce)
        .expect("subscribe");
    drop(observer);
    let will = LastWill {
        topic: "crash/will/holder".into(),
        payload: Bytes::from_static(b"holder gone"),
        qos: QoS::AtLeastOnce,
        retain: false,
        properties: Default::default(),
    };
    let (holder, _) = Client::connect_will(
        port,
        "will-holder",
        ProtocolVersion::V5,
        false,
        3600,
        Some(will),
    )
    .expect("will holder");
    // and a client with a clean session (its session ends with the connection)
    let clean_will = LastWill {
        topic: "crash/will/clean".into(),
        payload: Bytes::from_static(b"clean holder gone"),
        qos: QoS::AtLeastOnce,
        retain: false,
        properties: Default::default(),
    };
    let (clean_holder, _) = Client::connect_will(
        port,
        "clean-will-holder",
        ProtocolVersion::V3_1_1,
        true,
        0,
        Some(clean_will),
    )
    .expect("clean will holder");

    // Both online subscribers subscribe (persistently) before the streams start.
    for (id, filter, qos, v) in [
        (
            "online-q1",
            "crash/q/1",
            QoS::AtLeastOnce,
            ProtocolVersion::V3_1_1,
        ),
        (
            "online-q2",
            "crash/q/2",
            QoS::ExactlyOnce,
            ProtocolVersion::V5,
        ),
    ] {
        let expiry = if v == ProtocolVersion::V5 { 3600 } else { 0 };
        let (mut c, _) = Client::connect(port, id, v, false, expiry).expect("subscriber");
        c.subscribe(filter, qos).expect("subscribe");
    }
    let stop = Arc::new(AtomicBool::new(false));
    let (c1, h1) = subscriber(
        port,
        "online-q1",
        ProtocolVersion::V3_1_1,
        Arc::clone(&stop),
    );
    let (c2, h2) = subscriber(port, "online-q2", ProtocolVersion::V5, Arc::clone(&stop));
    let p1 = publisher(port, "pub-q1", "crash/q/1", QoS::AtLeastOnce);
    let p2 = publisher(port, "pub-q2", "crash/q/2", QoS::ExactlyOnce);

    // In the middle of the streams:
    wait_for(
        "the streams never got going",
        Duration::from_secs(30),
        || {
            let n1 = lock(&c1).len();
            let n2 = lock(&c2).len();
            (n1 < 1000 || n2 < 1000).then(|| format!("delivered {n1} and {n2}"))
        },
    );
    let status = broker.signal(stop_signal);
    if stop_signal == "-TERM" {
        assert!(status.success(), "exit status after SIGTERM: {status}");
    }
    let acked1 = p1.join().expect("publisher q1");
    let acked2 = p2.join().expect("publisher q2");
    assert!(
        acked1.len() > 100 && acked2.len() > 100,
        "{} and {} acknowledged",
        acked1.len(),
        acked2.len()
    );

    eprintln!(
        "{stop_signal}: acknowledged {} (QoS 1) and {} (QoS 2); delivered before the stop {} and {}",
        acked1.len(),
        acked2.len(),
        lock(&c1).len(),
        lock(&c2).len()
    );
    let mut broker = Broker::start(dir.path(), port);
    let (o, ho) = subscriber(port, "offline", ProtocolVersion::V3_1_1, Arc::clone(&stop));

    let (q1, r1): (Vec<String>, Vec<String>) = acked1
        .iter()
        .cloned()
        .partition(|k| k.starts_with("crash/q/"));
    let (q2, r2): (Vec<String>, Vec<String>) = acked2
        .iter()
        .cloned()
        .partition(|k| k.starts_with("crash/q/"));
    wait_for(
        "acknowledged QoS 1 messages lost (online subscriber)",
        Duration::from_secs(60),
        || missing(&c1, &q1),
    );
    wait_for(
        "acknowledged QoS 2 messages lost (online subscriber)",
        Duration::from_secs(60),
        || missing(&c2, &q2),
    );
    let all: Vec<String> = q1.iter().chain(&q2).cloned().collect();
    wait_for(
        "acknowledged messages lost (offline subscriber)",
        Duration::from_secs(60),
        || missing(&o, &all),
    );
    // let redeliveries, if any, arrive before counting
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    for h in [h1, h2, ho] {
        h.join().expect("subscriber thread");
    }

    // QoS 2: never twice, acknowledged or not [MQTT-4.3.3]
    let (c2, o) = (lock(&c2), lock(&o));
    let twice: Vec<(String, u32)> = c2
        .iter()
        .chain(o.iter())
        .filter(|(k, n)| k.starts_with("crash/q/2") && **n > 1)
        .map(|(k, n)| (k.clone(), *n))
        .collect();
    assert!(
        twice.is_empty(),
        "QoS 2 delivered more than once: {twice:?}"
    );

    // Every acknowledged retained message is there.
    let (mut r, _) =
        Client::connect(port, "retained-reader", ProtocolVersion::V5, true, 0).expect("reader");
    r.subscribe("crash/retained/#", QoS::AtMostOnce)
        .expect("subscribe");
    let mut retained = BTreeSet::new();
    while let Ok(Some(p)) = r.recv_until(Duration::from_millis(1500)) {
        if let Packet::Publish(p) = p {
            retained.insert(format!(
                "{}#{}",
                p.topic,
                String::from_utf8_lossy(&p.payload)
            ));
        }
    }
    let lost: Vec<&String> = r1
        .iter()
        .chain(&r2)
        .filter(|k| !retained.contains(*k))
        .collect();
    assert!(
        lost.is_empty(),
        "acknowledged retained messages lost: {lost:?}"
    );
    assert!(!r1.is_empty() && !r2.is_empty());

    // The will of the client that was connected: a crash ended its connection without
    // DISCONNECT, so the will goes out after the restart [MQTT-3.1.2-8]; a clean stop
    // (SIGTERM) does not publish wills.
    drop((holder, clean_holder));
    let (mut observer, present) =
        Client::connect(port, "will-observer", ProtocolVersion::V3_1_1, false, 0)
            .expect("observer");
    assert!(present, "the observer's session survived");
    let mut wills = Vec::new();
    while let Ok(Some(p)) = observer.recv_until(Duration::from_millis(1500)) {
        if let Packet::Publish(p) = p {
            wills.push(String::from_utf8_lossy(&p.payload).into_owned());
            if let Some(id) = p.packet_id {
                observer.send(&Packet::PubAck(ack(id))).expect("puback");
            }
        }
    }
    wills.sort();
    if stop_signal == "-KILL" {
        assert_eq!(
            wills,
            ["clean holder gone", "holder gone"],
            "the wills after the crash"
        );
    } else {
        assert!(wills.is_empty(), "no will after a clean stop: {wills:?}");
    }

    let status = broker.signal("-TERM");
    assert!(status.success(), "exit status after SIGTERM: {status}");
}

#[test]
fn sigkill_in_the_middle_of_qos1_and_qos2_streams_loses_nothing_acknowledged() {
    crash_and_recover("-KILL");
}

#[test]
fn sigterm_in_the_middle_of_qos1_and_qos2_streams_loses_nothing_acknowledged() {
    crash_and_recover("-TERM");
}
