//! The load clients: connecting, a publisher that keeps a window of QoS 1/2 flows open
//! (PUBACK; PUBREC -> PUBREL -> PUBCOMP), and a subscriber that acknowledges what it
//! receives and counts it, with end-to-end latency from the payload's stamp. Knows
//! nothing about scenarios or reports.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tokio::io::{AsyncWriteExt, BufWriter};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

use crate::latency::Histogram;
use crate::wire::{self, ConnectOptions, FrameReader, Stamp};

/// How long a CONNACK or SUBACK may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a publisher with a full window waits for one acknowledgement.
const ACK_TIMEOUT: Duration = Duration::from_secs(30);
/// Bytes buffered before a publisher's writes reach the socket.
const WRITE_BUFFER: usize = 64 * 1024;
/// A publisher held back by `max_ahead` gives up waiting after this long without a
/// delivery.
const STALL: Duration = Duration::from_millis(100);
/// A subscriber flushes its acknowledgements at least this often.
const FLUSH_ACKS: usize = 32;
/// Subscribers wake waiting publishers after this many deliveries.
const NOTIFY_EVERY: u64 = 32;

/// State shared by the clients of one run.
#[derive(Debug)]
pub struct Shared {
    /// The common time base of the payload stamps.
    pub base: Instant,
    /// Messages received by all subscribers.
    pub delivered: AtomicU64,
    /// Nanoseconds since `base` of the latest delivery.
    pub last_delivery: AtomicU64,
    /// Cancelled when the subscribers should disconnect.
    pub stop: CancellationToken,
    /// Messages written by all publishers.
    pub sent: AtomicU64,
    /// Subscribers that receive each message (for `max_ahead`).
    pub copies: u64,
    /// Publishers pause while more than this many messages are sent but not yet
    /// delivered (0: never).
    pub max_ahead: u64,
    /// Woken by subscribers every [`NOTIFY_EVERY`] deliveries.
    pub progress: Notify,
    /// Messages given up for lost by publishers that waited [`STALL`] for deliveries
    /// that never came (the broker dropped them), so that `max_ahead` cannot deadlock.
    pub given_up: AtomicU64,
}

impl Shared {
    /// A fresh run state with its time base at now.
    pub fn new(copies: u64, max_ahead: u64) -> Arc<Shared> {
        Arc::new(Shared {
            base: Instant::now(),
            delivered: AtomicU64::new(0),
            last_delivery: AtomicU64::new(0),
            stop: CancellationToken::new(),
            sent: AtomicU64::new(0),
            copies: copies.max(1),
            max_ahead,
            progress: Notify::new(),
            given_up: AtomicU64::new(0),
        })
    }

    /// Messages sent but neither delivered nor given up for lost.
    fn ahead(&self) -> u64 {
        let accounted = self.delivered.load(Ordering::Relaxed) / self.copies
            + self.given_up.load(Ordering::Relaxed);
        self.sent.load(Ordering::Relaxed).saturating_sub(accounted)
    }

    /// Whether publishers must wait for deliveries before sending more.
    fn too_far_ahead(&self) -> bool {
        self.max_ahead > 0 && self.ahead() >= self.max_ahead
    }

    /// Waits until the subscribers caught up to within `max_ahead` messages; after
    /// [`STALL`] without a delivery, gives the missing ones up for lost.
    async fn wait_for_subscribers(&self) {
        let (mut seen, mut progress) = (self.delivered.load(Ordering::Relaxed), Instant::now());
        while self.too_far_ahead() && !self.stop.is_cancelled() {
            let woken = self.progress.notified();
            if !self.too_far_ahead() {
                return;
            }
            let _ = tokio::time::timeout(Duration::from_millis(5), woken).await;
            let now = self.delivered.load(Ordering::Relaxed);
            if now != seen {
                (seen, progress) = (now, Instant::now());
            } else if progress.elapsed() >= STALL {
                self.given_up.fetch_add(self.ahead(), Ordering::Relaxed);
            }
        }
    }

    /// Nanoseconds since the time base.
    pub fn now_nanos(&self) -> u64 {
        self.base.elapsed().as_nanos() as u64
    }
}

/// An open MQTT connection after a successful CONNACK.
pub type Conn = (FrameReader<OwnedReadHalf>, OwnedWriteHalf);

/// Connects, sends CONNECT and waits for a CONNACK that accepts it.
pub async fn connect(addr: &str, o: &ConnectOptions) -> Result<Conn> {
    let stream = TcpStream::connect(addr)
        .await
        .with_context(|| format!("connecting to {addr}"))?;
    handshake(stream, o).await
}

/// How many loopback source addresses (127.0.0.1, .2, ...) [`connect_from`] spreads
/// connections over.
///
/// A client that sends DISCONNECT closes first [MQTT-3.14.4-1], so its side keeps each
/// closed connection in TIME-WAIT for 60 s, holding its port. One source address has
/// 28,232 ports (32768-60999): a two-second storm at 14,500 connections per second used
/// them up, and connect() then waited for ports to free.
pub const LOOPBACK_SOURCES: u8 = 32;

/// [`connect`] from loopback source address `127.0.0.(1 + n % LOOPBACK_SOURCES)` when
/// the broker is on an IPv4 loopback address, the system's choice otherwise; for the
/// storm and idle scenarios, which open thousands of connections. (Bound before it
/// connects, a socket's port stays taken while any connection on it is in TIME-WAIT,
/// so the few clients of the message scenarios use [`connect`].)
pub async fn connect_from(addr: &str, o: &ConnectOptions, n: usize) -> Result<Conn> {
    let target = tokio::net::lookup_host(addr)
        .await
        .with_context(|| format!("resolving {addr}"))?
        .next()
        .with_context(|| format!("{addr} has no address"))?;
    let stream = match target.ip() {
        std::net::IpAddr::V4(ip) if ip.is_loopback() => {
            let socket = tokio::net::TcpSocket::new_v4()?;
            let last = 1 + (n % usize::from(LOOPBACK_SOURCES)) as u8;
            socket.bind((std::net::Ipv4Addr::new(127, 0, 0, last), 0).into())?;
            socket.connect(target).await
        }
        _ => TcpStream::connect(target).await,
    }
    .with_context(|| format!("connecting to {addr}"))?;
    handshake(stream, o).await
}

/// CONNECT on a new connection, waiting for a CONNACK that accepts it.
async fn handshake(stream: TcpStream, o: &ConnectOptions) -> Result<Conn> {
    stream.set_nodelay(true)?;
    let (r, mut w) = stream.into_split();
    let mut r = FrameReader::new(r);
    w.write_all(&wire::connect(o)).await?;
    let (first, body) = tokio::time::timeout(HANDSHAKE_TIMEOUT, r.next())
        .await
        .context("no CONNACK")??;
    if first >> 4 != wire::CONNACK || body.get(1) != Some(&0) {
        bail!("CONNECT refused: {first:#x} {:?}", &body[..]);
    }
    Ok((r, w))
}

/// What one publisher does.
#[derive(Debug, Clone)]
pub struct PublisherPlan {
    /// Index written into every stamp.
    pub index: u32,
    /// CONNECT options.
    pub connect: ConnectOptions,
    /// Topic of every message.
    pub topic: String,
    /// QoS of every message.
    pub qos: u8,
    /// Payload size (>= 16).
    pub payload: usize,
    /// Stop after this many messages...
    pub messages: u64,
    /// ...or at this instant, whichever comes first.
    pub deadline: Option<Instant>,
    /// Messages per second, 0 = flat out.
    pub rate: f64,
    /// Unacknowledged QoS 1/2 messages allowed.
    pub inflight: usize,
}

/// An acknowledgement seen by a publisher's reader task.
enum Ack {
    /// PUBACK or PUBCOMP: the flow is complete.
    Done,
    /// PUBREC: answer with PUBREL.
    Received(u16),
}

/// Reads a publisher's acknowledgements until the connection closes.
async fn ack_reader(mut r: FrameReader<OwnedReadHalf>, tx: mpsc::UnboundedSender<Ack>) {
    while let Ok((first, body)) = r.next().await {
        let ack = match (first >> 4, wire::ack_id(first, &body)) {
            (wire::PUBACK | wire::PUBCOMP, Ok(_)) => Ack::Done,
            (wire::PUBREC, Ok(id)) => Ack::Received(id),
            _ => continue,
        };
        if tx.send(ack).is_err() {
            return;
        }
    }
}

/// When message `n` is due, `None` when flat out.
fn due_at(start: Instant, n: u64, rate: f64) -> Option<Instant> {
    (rate > 0.0).then(|| start + Duration::from_secs_f64(n as f64 / rate))
}

/// Publishes the plan and completes every flow; returns the number of messages sent.
pub async fn publish(addr: String, plan: PublisherPlan, shared: Arc<Shared>) -> Result<u64> {
    let (r, w) = connect(&addr, &plan.connect).await?;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let reader = tokio::spawn(ack_reader(r, tx));
    let mut w = BufWriter::with_capacity(WRITE_BUFFER, w);
    let mut payload = vec![b'x'; plan.payload];
    let mut packet = Vec::with_capacity(plan.payload + plan.topic.len() + 8);
    let (start, mut sent, mut outstanding) = (Instant::now(), 0u64, 0usize);
    loop {
        while let Ok(ack) = rx.try_recv() {
            outstanding = outstanding.saturating_sub(complete(&mut w, ack).await?);
        }
        let more = sent < plan.messages && plan.deadline.is_none_or(|d| Instant::now() < d);
        if !more && outstanding == 0 {
            break;
        }
        if more && outstanding < plan.inflight {
            if let Some(due) = due_at(start, sent, plan.rate).filter(|d| *d > Instant::now()) {
                w.flush().await?;
                tokio::select! {
                    ack = rx.recv() => {
                        let done = complete(&mut w, ack.context("connection closed")?).await?;
                        outstanding = outstanding.saturating_sub(done);
                    }
                    () = tokio::time::sleep_until(due.into()) => {}
                }
                continue;
            }
            if shared.too_far_ahead() {
                w.flush().await?;
                shared.wait_for_subscribers().await;
            }
            let packet_id = (sent % 65_535 + 1) as u16;
            Stamp {
                sent_nanos: shared.now_nanos(),
                publisher: plan.index,
                seq: sent as u32,
            }
            .write(&mut payload);
            packet.clear();
            wire::put_publish(&mut packet, &plan.topic, plan.qos, packet_id, &payload);
            w.write_all(&packet).await?;
            sent += 1;
            shared.sent.fetch_add(1, Ordering::Relaxed);
            outstanding += usize::from(plan.qos > 0);
            continue;
        }
        w.flush().await?;
        let ack = tokio::time::timeout(ACK_TIMEOUT, rx.recv())
            .await
            .with_context(|| format!("no acknowledgement within {ACK_TIMEOUT:?}"))?
            .context("connection closed with messages in flight")?;
        outstanding = outstanding.saturating_sub(complete(&mut w, ack).await?);
    }
    w.write_all(&wire::DISCONNECT).await?;
    w.flush().await?;
    reader.abort();
    Ok(sent)
}

/// Handles an acknowledgement; returns 1 when it completed a flow.
async fn complete(w: &mut BufWriter<OwnedWriteHalf>, ack: Ack) -> Result<usize> {
    match ack {
        Ack::Done => Ok(1),
        Ack::Received(id) => {
            w.write_all(&wire::ack(wire::PUBREL, id)).await?;
            Ok(0)
        }
    }
}

/// What one subscriber does.
#[derive(Debug, Clone)]
pub struct SubscriberPlan {
    /// CONNECT options (clean session false: a durable session, wiped before and after).
    pub connect: ConnectOptions,
    /// The one filter it subscribes to.
    pub filter: String,
    /// Requested QoS.
    pub qos: u8,
    /// Messages per second it reads, 0 = as fast as they come.
    pub rate: f64,
}

/// What one subscriber saw.
#[derive(Debug, Default)]
pub struct Received {
    /// PUBLISH packets received.
    pub messages: u64,
    /// Messages whose sequence number was not above the last one seen from the same
    /// publisher: duplicates or reordering.
    pub out_of_order: u64,
    /// End-to-end latency in nanoseconds.
    pub latency: Histogram,
}

impl Received {
    /// Counts one delivered payload.
    pub fn record(&mut self, payload: &[u8], now_nanos: u64, last_seq: &mut Vec<Option<u32>>) {
        self.messages += 1;
        let Some(stamp) = Stamp::read(payload) else {
            return;
        };
        self.latency
            .record(now_nanos.saturating_sub(stamp.sent_nanos));
        let i = stamp.publisher as usize;
        if last_seq.len() <= i {
            last_seq.resize(i + 1, None);
        }
        if last_seq[i].is_some_and(|last| stamp.seq <= last) {
            self.out_of_order += 1;
        }
        last_seq[i] = Some(last_seq[i].map_or(stamp.seq, |l| l.max(stamp.seq)));
    }
}

/// Removes a durable session by connecting with Clean Session 1 (§3.1.2.4).
async fn wipe_session(addr: &str, o: &ConnectOptions) -> Result<()> {
    let clean = ConnectOptions {
        clean_session: true,
        ..o.clone()
    };
    let (_r, mut w) = connect(addr, &clean).await?;
    w.write_all(&wire::DISCONNECT).await?;
    Ok(())
}

/// Subscribes, signals `ready` after the SUBACK, and counts deliveries until
/// `shared.stop` is cancelled.
pub async fn subscribe(
    addr: String,
    plan: SubscriberPlan,
    shared: Arc<Shared>,
    ready: mpsc::Sender<()>,
) -> Result<Received> {
    if !plan.connect.clean_session {
        wipe_session(&addr, &plan.connect).await?;
    }
    let (mut r, w) = connect(&addr, &plan.connect).await?;
    let mut w = BufWriter::new(w);
    w.write_all(&wire::subscribe(1, &plan.filter, plan.qos))
        .await?;
    w.flush().await?;
    let (first, body) = tokio::time::timeout(HANDSHAKE_TIMEOUT, r.next())
        .await
        .context("no SUBACK")??;
    if first >> 4 != wire::SUBACK || body.get(2).is_none_or(|&code| code > 2) {
        bail!("SUBSCRIBE {} refused: {:?}", plan.filter, &body[..]);
    }
    let _ = ready.send(()).await;
    let got = receive(&mut r, &mut w, &plan, &shared).await?;
    w.write_all(&wire::DISCONNECT).await?;
    w.flush().await?;
    if !plan.connect.clean_session {
        wipe_session(&addr, &plan.connect).await?;
    }
    Ok(got)
}

async fn receive(
    r: &mut FrameReader<OwnedReadHalf>,
    w: &mut BufWriter<OwnedWriteHalf>,
    plan: &SubscriberPlan,
    shared: &Shared,
) -> Result<Received> {
    let mut got = Received::default();
    let mut last_seq = Vec::new();
    let keep_alive = Duration::from_secs(u64::from(plan.connect.keep_alive_secs.max(2)) / 2);
    let mut ping = tokio::time::interval_at((Instant::now() + keep_alive).into(), keep_alive);
    let (start, mut unflushed) = (Instant::now(), 0usize);
    loop {
        if unflushed > 0 && (unflushed >= FLUSH_ACKS || !r.has_frame()) {
            w.flush().await?;
            unflushed = 0;
        }
        let (first, body) = tokio::select! {
            () = shared.stop.cancelled() => break,
            _ = ping.tick() => {
                w.write_all(&wire::PINGREQ).await?;
                continue;
            }
            frame = r.next() => frame?,
        };
        match first >> 4 {
            wire::PUBLISH => {
                let p = wire::parse_publish(first, &body)?;
                let now = shared.now_nanos();
                got.record(p.payload, now, &mut last_seq);
                if shared
                    .delivered
                    .fetch_add(1, Ordering::Relaxed)
                    .is_multiple_of(NOTIFY_EVERY)
                {
                    shared.progress.notify_waiters();
                }
                shared.last_delivery.fetch_max(now, Ordering::Relaxed);
                let kind = [None, Some(wire::PUBACK), Some(wire::PUBREC)];
                if let Some(kind) = kind.get(usize::from(p.qos)).copied().flatten() {
                    w.write_all(&wire::ack(kind, p.packet_id)).await?;
                    unflushed += 1;
                }
                if let Some(due) = due_at(start, got.messages, plan.rate) {
                    w.flush().await?;
                    unflushed = 0;
                    tokio::select! {
                        () = shared.stop.cancelled() => break,
                        () = tokio::time::sleep_until(due.into()) => {}
                    }
                }
            }
            wire::PUBREL => {
                let id = wire::ack_id(first, &body)?;
                w.write_all(&wire::ack(wire::PUBCOMP, id)).await?;
                unflushed += 1;
            }
            _ => {}
        }
    }
    Ok(got)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn connections_to_loopback_spread_over_loopback_source_addresses() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        // A broker that answers each CONNECT with CONNACK (accepted) and reports the
        // client's address.
        let accepting = tokio::spawn(async move {
            let mut peers = Vec::new();
            for _ in 0..3 {
                let (mut s, peer) = listener.accept().await.unwrap();
                let mut r = FrameReader::new(s.split().0);
                let (first, _) = r.next().await.unwrap();
                assert_eq!(first >> 4, 1, "CONNECT");
                s.write_all(&[0x20, 2, 0, 0]).await.unwrap();
                peers.push((peer.ip(), s));
            }
            peers
        });
        let o = ConnectOptions::default();
        let n = usize::from(LOOPBACK_SOURCES);
        let mut conns = Vec::new();
        for i in [0, 1, n + 1] {
            conns.push(connect_from(&addr, &o, i).await.unwrap());
        }
        let peers: Vec<_> = accepting
            .await
            .unwrap()
            .into_iter()
            .map(|(ip, _)| ip)
            .collect();
        let ip = |last| std::net::IpAddr::from([127, 0, 0, last]);
        assert_eq!(peers, [ip(1), ip(2), ip(2)]);
    }

    fn payload(sent_nanos: u64, publisher: u32, seq: u32) -> Vec<u8> {
        let mut p = vec![0u8; 16];
        Stamp {
            sent_nanos,
            publisher,
            seq,
        }
        .write(&mut p);
        p
    }

    #[test]
    fn received_counts_latency_and_out_of_order_per_publisher() {
        let mut got = Received::default();
        let mut last = Vec::new();
        got.record(&payload(100, 0, 0), 1_100, &mut last);
        got.record(&payload(200, 3, 0), 1_200, &mut last);
        got.record(&payload(300, 0, 2), 1_300, &mut last); // a gap is not out of order
        got.record(&payload(300, 0, 2), 1_400, &mut last); // a duplicate
        got.record(&payload(250, 0, 1), 1_500, &mut last); // late
        got.record(b"short", 2_000, &mut last); // counted, no stamp
        assert_eq!(got.messages, 6);
        assert_eq!(got.out_of_order, 2);
        assert_eq!(got.latency.count(), 5);
        assert_eq!(got.latency.percentile(50.0), 1_000);
        assert_eq!(got.latency.max(), 1_250);
    }

    #[test]
    fn due_times_follow_the_rate() {
        let t0 = Instant::now();
        assert_eq!(due_at(t0, 5, 0.0), None);
        assert_eq!(due_at(t0, 5, 10.0), Some(t0 + Duration::from_millis(500)));
    }
}
