//! One task per client connection: reads and decodes packets, runs them through the
//! session logic, writes what results, and pulls deliveries from the session's outbox.
//!
//! The loop `select!`s over the socket, the outbox, the keep-alive deadline, takeover and
//! server shutdown. Writes are batched: everything produced by one wake-up is encoded
//! into one buffer and written together. This is the only layer that does I/O.

mod client;
mod connect;
mod durable;
#[cfg(test)]
mod fairness_tests;
#[cfg(test)]
mod fuzz_tests;
mod inbound;
#[cfg(test)]
mod order_tests;
mod outbound;
#[cfg(test)]
mod panic_tests;
mod state;
mod task;
#[cfg(test)]
mod test_io;
#[cfg(test)]
mod turn_tests;
mod write_queue;

use std::future::{Future, poll_fn};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::BytesMut;
use bytestring::ByteString;
use futures_util::FutureExt;
use futures_util::future::OptionFuture;
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::{Instant, timeout};
use tokio_util::codec::Decoder;
use tokio_util::sync::CancellationToken;
use tracing::{debug, field, info_span};

use crate::broker::Broker;
use crate::codec::{self, Codec, Disconnect, DisconnectProperties, Packet};
use crate::control::Stop;
use crate::plugin::Hook;
use crate::stats::Stats;
use crate::store::Ticket;
use crate::transport::{Duplex, Peer};
use crate::types::ReasonCode;
use inbound::{Accepted, Arrival};
pub use state::Error;
use state::{Conn, End};
use write_queue::{SHARED_PAYLOAD_MIN, WriteQueue};

/// How many deliveries one wake-up pulls from the outbox before writing.
const OUTBOX_BATCH: usize = 256;
/// Most PUBLISH packets whose plugin hooks run in one call (see [`decode_all`]).
const PUBLISH_BATCH: usize = 64;
/// Most deliveries the PUBLISH packets of one read may have queued for their
/// acknowledgements still to wait for those deliveries to go out ([`deliveries_first`]).
const DELIVERIES_FIRST_MAX: u16 = 8;
/// How long a closing connection may take to flush what it has.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(2);
/// The read buffer of a quiet connection: most CONNECT packets fit, and so do the
/// PINGREQ and small PUBLISH packets of an idle client (larger reads double it).
const READ_BUFFER_MIN: usize = 128;
/// The largest read size: reads that keep filling the buffer double it up to this.
/// Above 64 KiB, so that a PUBLISH of a 64 KiB payload (a common limit of clients and
/// brokers) arrives in one read rather than two, the first part copied.
const READ_BUFFER_STEP_MAX: usize = 128 * 1024;
/// A write buffer larger than this is released once it has been written out.
const WRITE_BUFFER_KEEP: usize = 64 * 1024;
/// A grown read size is kept while reads use a quarter of it, and this long after.
const READ_BUFFER_KEEP: Duration = Duration::from_secs(1);

/// The socket and buffers of one connection.
pub(crate) struct Io<S> {
    stream: S,
    rbuf: BytesMut,
    wbuf: WriteQueue,
    codec: Codec,
    /// Bytes were written since the last flush. TLS and WebSocket streams may hold
    /// written data until flushed; plain TCP flushes at no cost.
    unflushed: bool,
    /// The stream writes vectors: large payloads are queued shared, not copied.
    vectored: bool,
    /// Room the next read gets at least (half of it, see [`Io::prepare_read`]), as a
    /// power of two: a byte rather than four keeps `Io` in 136 bytes.
    read_shift: u8,
    /// Room the current read was given.
    read_room: u32,
    /// The last read that used at least a quarter of a grown read size.
    read_busy: Instant,
}

impl<S: Duplex> Io<S> {
    fn encode(&mut self, packet: &Packet) {
        let version = self
            .codec
            .version()
            .unwrap_or(crate::types::ProtocolVersion::V3_1_1);
        if let Err(e) = codec::encode(packet, version, self.wbuf.buf_mut()) {
            // Only reachable for values the broker built itself.
            tracing::error!(error = %e, "failed to encode an outgoing packet");
        }
    }

    /// Encodes a PUBLISH from its parts (see [`codec::encode_publish`]). A payload of
    /// [`SHARED_PAYLOAD_MIN`] or more is queued as it is, after its encoded head, on a
    /// stream that writes vectors (see [`write_queue`]).
    fn encode_publish(&mut self, head: &codec::Publish, topic: &str, payload: &bytes::Bytes) {
        let version = self
            .codec
            .version()
            .unwrap_or(crate::types::ProtocolVersion::V3_1_1);
        let encoded = if self.vectored && payload.len() >= SHARED_PAYLOAD_MIN {
            codec::encode_publish_head(head, topic, payload.len(), version, self.wbuf.buf_mut())
                .map(|()| self.wbuf.push_shared(payload.clone()))
        } else {
            codec::encode_publish(head, topic, payload, version, self.wbuf.buf_mut())
        };
        if let Err(e) = encoded {
            // Only reachable for values the broker built itself.
            tracing::error!(error = %e, "failed to encode an outgoing packet");
        }
    }

    async fn flush(&mut self, broker: &Broker) -> std::io::Result<()> {
        let n = self.wbuf.len();
        let (_, mut writer) = self.stream.halves();
        while !self.wbuf.is_empty() {
            writer.write_buf(&mut self.wbuf).await?;
        }
        writer.flush().await?;
        self.unflushed = false;
        broker.stats.bytes_sent.add(n as u64);
        Ok(())
    }
}

/// Writes some of `wbuf` (one vectored write where the stream takes vectors), or
/// flushes once it is empty. Returns bytes written.
async fn write_some<W: AsyncWrite + Unpin>(
    writer: &mut W,
    wbuf: &mut WriteQueue,
    unflushed: &mut bool,
) -> std::io::Result<usize> {
    if wbuf.is_empty() {
        writer.flush().await?;
        *unflushed = false;
        return Ok(0);
    }
    let n = writer.write_buf(wbuf).await?;
    *unflushed = true;
    // A burst is over: do not keep its buffer for an idle connection.
    wbuf.release(WRITE_BUFFER_KEEP);
    Ok(n)
}

impl<S: Duplex> Io<S> {
    fn new(mut stream: S, codec: Codec) -> Self {
        let vectored = stream.halves().1.is_write_vectored();
        Io {
            stream,
            rbuf: BytesMut::with_capacity(READ_BUFFER_MIN),
            wbuf: WriteQueue::default(),
            codec,
            unflushed: false,
            vectored,
            read_shift: READ_BUFFER_MIN.trailing_zeros() as u8,
            read_room: 0,
            read_busy: Instant::now(),
        }
    }
}

impl<S> Io<S> {
    /// Room the next read gets at least: a power of two from [`READ_BUFFER_MIN`] to
    /// [`READ_BUFFER_STEP_MAX`].
    fn read_size(&self) -> usize {
        1 << self.read_shift
    }

    /// Sets the read size (a power of two, see [`Io::read_size`]).
    fn set_read_size(&mut self, size: usize) {
        debug_assert!(size.is_power_of_two());
        self.read_shift = size.trailing_zeros() as u8;
    }

    /// Before a read: at least half the read size free, else room for a whole read.
    ///
    /// Decoding hands slices of the buffer to the messages (no copy), so the room left
    /// after a packet is the tail of the allocation, and a buffer sized by its own
    /// capacity fell back to 256 bytes after every packet: a stream of 1 KiB messages
    /// took two `recv` calls each. The read size is remembered instead.
    fn prepare_read(&mut self) {
        let want = self.read_size();
        if self.rbuf.capacity() - self.rbuf.len() < want / 2 {
            self.rbuf.reserve(want);
        }
        self.read_room = u32::try_from(self.rbuf.capacity() - self.rbuf.len()).unwrap_or(u32::MAX);
    }

    /// After a read of `n` bytes was decoded: a read that filled its room doubles the
    /// read size (up to [`READ_BUFFER_STEP_MAX`]); once no read has used a quarter of it
    /// for [`READ_BUFFER_KEEP`], the size goes back to the minimum and an empty grown
    /// buffer is released, so that a burst does not pin memory on an idle connection.
    fn settle_read(&mut self, n: usize) {
        let want = self.read_size();
        if n >= self.read_room as usize {
            self.set_read_size((2 * want).min(READ_BUFFER_STEP_MAX));
            self.read_busy = Instant::now();
        } else if want > READ_BUFFER_MIN || self.rbuf.capacity() > 4 * READ_BUFFER_MIN {
            if n >= want / 4 {
                self.read_busy = Instant::now();
            } else if self.read_busy.elapsed() >= READ_BUFFER_KEEP {
                self.set_read_size(READ_BUFFER_MIN);
                if self.rbuf.is_empty() {
                    self.rbuf = BytesMut::with_capacity(READ_BUFFER_MIN);
                }
            }
        }
    }
}

/// A connection past CONNECT: its state and its socket. A parked connection's task
/// holds it inline (in tokio's task cell, no allocation of its own); an active phase
/// takes it by value and gives it back (see [`task`]). The server's shutdown reaches
/// it through its [`crate::control::Control`].
struct Link<S> {
    conn: Conn,
    io: Io<S>,
}

impl<S> Link<S> {
    /// The connection's tracing span, made again when a cold connection wakes (see
    /// [`task`]), its client id filled in.
    fn span(&self) -> tracing::Span {
        let span = conn_span(self.conn.client.remote_addr());
        span.record("client_id", field::display(&self.conn.session.client_id));
        span
    }
}

/// A connection's tracing span: its peer, and its client id once CONNECT named it.
fn conn_span(peer: std::net::SocketAddr) -> tracing::Span {
    info_span!("conn", peer = %peer, client_id = field::Empty)
}

/// Serves one client until it disconnects, fails, is taken over or the server stops.
///
/// Not an `async fn`: the task is a small state machine ([`task::Task`]) whose phases
/// are boxed while they run, so that an idle (parked) connection's task holds only its
/// [`Link`] (and its span, while it is warm).
pub fn serve<S>(
    stream: S,
    peer: Peer,
    listener: Arc<str>,
    broker: Arc<Broker>,
    shutdown: CancellationToken,
) -> impl Future<Output = ()> + Send + 'static
where
    S: Duplex,
{
    let span = conn_span(peer.addr);
    // The write buffer is allocated by the first packet to send.
    let io = Io::new(stream, Codec::new(broker.config.limits.max_packet_bytes));
    task::Task::new(
        span,
        Box::pin(establish(io, peer, listener, broker, shutdown)),
        activate::<S>,
    )
}

/// The CONNECT exchange; `None` when the connection ends there (refused, closed,
/// timed out), after flushing what was answered.
async fn establish<S: Duplex>(
    mut io: Io<S>,
    peer: Peer,
    listener: Arc<str>,
    broker: Arc<Broker>,
    shutdown: CancellationToken,
) -> Option<Link<S>> {
    let handshake = connect::handshake(&mut io, &broker, &shutdown, &peer, &listener);
    let outcome = match AssertUnwindSafe(handshake).catch_unwind().await {
        Ok(outcome) => outcome,
        Err(panic) => {
            // Before the session is claimed nothing else knows of this connection; the
            // client's socket closes. (After the claim, see `contain`.)
            let message = crate::contain::panic_message(panic.as_ref());
            crate::contain::report(&broker.stats, "a connection's handshake", &message);
            return None;
        }
    };
    match outcome {
        Ok(Some(conn)) => {
            tracing::Span::current().record("client_id", field::display(&conn.session.client_id));
            Some(Link { conn, io })
        }
        Ok(None) => {
            let _ = timeout(FLUSH_TIMEOUT, io.flush(&broker)).await;
            None
        }
        Err(e) => {
            debug!(error = %e, "connection refused during connect");
            let _ = timeout(FLUSH_TIMEOUT, io.flush(&broker)).await;
            None
        }
    }
}

/// What an active phase of the connection ended with.
enum Step {
    /// Nothing to do until the client, the outbox or the control block has something:
    /// the task parks (see [`task`]).
    Park,
    /// The connection ends.
    End(End),
}

/// An active phase: from a wake-up until the connection is quiet again (or ends).
/// `first` on the phase right after CONNECT.
///
/// A panic in the broker's code while it handles the connection (a bug) ends that
/// connection only, through the usual close: DISCONNECT (MQTT 5), the will, and the
/// session given back to the registry, kept or ended as for any other close. Left to
/// unwind, the panic made tokio drop the task with the connection inside, without its
/// close: the client's registry entry and subscriptions stayed behind, and its next
/// CONNECT waited 5 s for a hand-over that never came.
async fn activate<S: Duplex>(mut link: Link<S>, first: bool) -> (Link<S>, Step) {
    let Link { conn, io } = &mut link;
    let step = match AssertUnwindSafe(active(conn, io, first))
        .catch_unwind()
        .await
    {
        Ok(step) => step,
        Err(panic) => {
            // What the write buffer holds may end in half a packet.
            io.wbuf.clear();
            Step::End(End::Panicked(crate::contain::panic_message(panic.as_ref())))
        }
    };
    (link, step)
}

/// The body of [`activate`].
async fn active<S: Duplex>(conn: &mut Conn, io: &mut Io<S>, first: bool) -> Step {
    if first {
        Stats::incr(&conn.broker.stats.clients_connected);
        conn.resend_inflight(io);
        conn.fill_from_pending(io);
    }
    // Packets pipelined behind CONNECT, or read while parked, are in the read buffer.
    if (first || !io.rbuf.is_empty())
        && let Some(end) = Box::pin(decode_all(conn, io)).await
    {
        return Step::End(end);
    }
    if deliveries_first(conn, io) {
        tokio::task::yield_now().await;
    }
    event_loop(conn, io).await
}

/// After a read: whether to let the deliveries go out before the acknowledgements.
/// True when the PUBLISH packets just handled reached a few subscribers (at most
/// [`DELIVERIES_FIRST_MAX`]) and their acknowledgements wait in the write buffer; the
/// caller then yields, and the subscribers' tasks, woken into this worker's queue,
/// write first. Mosquitto writes a message's deliveries before its PUBACK too.
///
/// Written first, the acknowledgement costs every delivery behind it a loopback write
/// and a wake-up of the publisher's client. One publisher sending 64 KiB at QoS 1 to
/// one subscriber, 500 times a second: median latency 0.15 ms before (Mosquitto 0.10;
/// at QoS 0, 0.11 and 0.10). With many subscribers the publisher would wait for them
/// all, so it does not (fan-out of QoS 1 to 50 lost 7 % of its rate that way).
/// docs/PERFORMANCE.md has the numbers.
fn deliveries_first<S>(conn: &mut Conn, io: &Io<S>) -> bool {
    let routed = std::mem::take(&mut conn.routed);
    !io.wbuf.is_empty() && (1..=DELIVERIES_FIRST_MAX).contains(&routed)
}

/// A copy of `s` in its own allocation, for what a connection keeps past the packet it
/// came in: decoded strings are slices of the read buffer, and one kept slice keeps the
/// whole buffer (128 bytes or more) allocated, after an idle connection gave it back.
fn detached(s: &ByteString) -> ByteString {
    ByteString::from(&**s)
}

/// The end of a connection: DISCONNECT when due, flush, close, then the session.
///
/// Each half runs under its own catch (see [`crate::contain`]): a stream that a panic
/// left broken (the lock of a split TLS or WebSocket stream is poisoned when its read
/// panics, and every later use panics too) must not keep the session from being handed
/// back.
async fn close<S: Duplex>(mut link: Link<S>, end: End) {
    let broker = Arc::clone(&link.conn.broker);
    if let Err(panic) = AssertUnwindSafe(goodbye(&mut link, &end))
        .catch_unwind()
        .await
    {
        let message = crate::contain::panic_message(panic.as_ref());
        if matches!(end, End::Panicked(_)) {
            // The same bug again, through the stream it broke: counted once.
            debug!(panic = %message, "the goodbye after a panic panicked too");
        } else {
            crate::contain::report(&broker.stats, "a connection's goodbye", &message);
        }
    }
    Stats::decr(&broker.stats.clients_connected);
    let Link { conn, io } = link;
    drop(io);
    // Boxed: plugin calls for the will and `on-disconnect` are a large future needed
    // once; inline it would sit in every idle connection's task.
    if let Err(panic) = AssertUnwindSafe(Box::pin(conn.finish(&end)))
        .catch_unwind()
        .await
    {
        let message = crate::contain::panic_message(panic.as_ref());
        crate::contain::report(&broker.stats, "a connection's close", &message);
    }
}

/// The socket's part of [`close`]: the log line, DISCONNECT when due, flush and shutdown.
async fn goodbye<S: Duplex>(link: &mut Link<S>, end: &End) {
    let Link { conn, io } = link;
    match end {
        End::Panicked(message) => {
            Stats::incr(&conn.broker.stats.internal_errors);
            tracing::error!(panic = %message, "connection closed: the broker panicked while handling it");
            send_disconnect(conn, io, ReasonCode::UNSPECIFIED_ERROR, None);
        }
        End::Failed(e) => {
            Stats::incr(&conn.broker.stats.protocol_errors);
            tracing::warn!(error = %e, "connection closed");
            if let Some(reason) = e.reason_code() {
                send_disconnect(conn, io, reason, Some(e.to_string()));
            }
        }
        End::Shutdown => send_disconnect(conn, io, ReasonCode::SERVER_SHUTTING_DOWN, None),
        End::TakenOver => send_disconnect(conn, io, ReasonCode::SESSION_TAKEN_OVER, None),
        End::KeepAliveTimeout => {
            tracing::info!("keep alive timeout [MQTT-3.1.2-24]");
            send_disconnect(conn, io, ReasonCode::KEEP_ALIVE_TIMEOUT, None)
        }
        End::CredentialsExpired => {
            Stats::incr(&conn.broker.stats.credentials_expired);
            tracing::info!("credentials expired; disconnecting");
            send_disconnect(
                conn,
                io,
                ReasonCode::MAXIMUM_CONNECT_TIME,
                Some("credentials expired".to_owned()),
            )
        }
        End::Disconnected { .. } => debug!("client disconnected"),
        End::Closed => debug!("connection closed by client"),
        End::Io(e) => debug!(error = %e, "connection i/o error"),
    }
    if !matches!(end, End::Io(_)) {
        conn.flush_held(io).await;
        let _ = timeout(FLUSH_TIMEOUT, io.flush(&conn.broker)).await;
    }
    let _ = io.stream.halves().1.shutdown().await;
}

/// MQTT 5 only: the server may send DISCONNECT before closing [MQTT-3.14.0-1].
fn send_disconnect<S: Duplex>(
    conn: &mut Conn,
    io: &mut Io<S>,
    reason: ReasonCode,
    reason_string: Option<String>,
) {
    if !conn.version.is_v5() {
        return;
    }
    let properties = DisconnectProperties {
        reason_string: reason_string
            .filter(|_| conn.request_problem_information)
            .map(Into::into),
        ..Default::default()
    };
    io.encode(&Packet::Disconnect(Disconnect {
        reason_code: reason,
        properties,
    }));
}

/// What woke the active event loop.
enum Event {
    Stop(Stop),
    Stored,
    Wrote(std::io::Result<usize>),
    /// The write would wait for the socket, and held a read or a pull back.
    WriteBlocked,
    Read(std::io::Result<usize>),
    Delivery(Option<crate::message::Delivery>),
}

/// What the event loop did since it last wrote. With something to write, it reads once
/// and pulls from the outbox once before it writes, so that the answers to a read and
/// the deliveries waiting go out in one write rather than two. Writing as soon as there
/// was something to write, a subscriber of QoS 2 messages wrote the PUBRELs for the
/// acknowledgements it read, then its next PUBLISHes: fan-out of 16 B QoS 2 messages to
/// 50 subscribers ran at 752k msg/s, and at 1.01M this way (medians of 10 rounds;
/// docs/PERFORMANCE.md, "One write per turn").
///
/// While the socket takes no more, reads and pulls go on (up to their own limits) as
/// they did before this alternation: a client that writes without reading is read
/// until the write buffer's limit, not only as long as its socket has room.
#[derive(Debug, Default)]
struct SinceWrite {
    read: bool,
    pulled: bool,
    /// The write would have waited for the socket.
    blocked: bool,
}

impl SinceWrite {
    /// At the start of a turn: with nothing to write (`writing` false), nothing is held
    /// back.
    fn settle(&mut self, writing: bool) {
        if !writing {
            *self = SinceWrite::default();
        }
    }

    /// Whether the loop may read now.
    fn may_read(&self) -> bool {
        !self.read || self.blocked
    }

    /// Whether the loop may pull from the outbox now.
    fn may_pull(&self) -> bool {
        !self.pulled || self.blocked
    }

    /// Whether a pending write holds a read or a pull back: if it would wait, the loop
    /// is to know at once ([`unless_blocked`]) and let them go on.
    fn holds_back(&self) -> bool {
        !self.blocked && (self.read || self.pulled)
    }
}

/// Runs `write`; `None` at once instead of waiting when `holds_back`.
async fn unless_blocked<F: Future>(write: F, holds_back: bool) -> Option<F::Output> {
    let mut write = std::pin::pin!(write);
    poll_fn(|cx| match write.as_mut().poll(cx) {
        Poll::Ready(done) => Poll::Ready(Some(done)),
        Poll::Pending if holds_back => Poll::Ready(None),
        Poll::Pending => Poll::Pending,
    })
    .await
}

/// The active event loop: returns [`Step::Park`] once a wake-up leaves nothing to write,
/// nothing held for the store and nothing pending.
async fn event_loop<S: Duplex>(conn: &mut Conn, io: &mut Io<S>) -> Step {
    let control = Arc::clone(&conn.control);
    let store = conn.broker.store.clone();
    let mut since = SinceWrite::default();
    loop {
        let writing = !io.wbuf.is_empty() || io.unflushed;
        since.settle(writing);
        let can_pull = since.may_pull() && conn.can_pull(io);
        let may_read = since.may_read()
            && io.wbuf.len() < 4 * conn.broker.config.limits.write_buffer_high_water_bytes;
        let holds_back = since.holds_back();
        let held = conn.held_front();
        io.prepare_read();
        // The socket's halves are borrowed for the wait only; what woke the loop is
        // handled after it, with the whole connection at hand.
        let event = {
            let (mut reader, mut writer) = io.stream.halves();
            tokio::select! {
                biased;
                // Takeover, shutdown, keep alive and credential expiry (`Broker::deadlines`).
                stop = poll_fn(|cx| control.poll_stop(cx)) => Event::Stop(stop),
                // Boxed, and only while a packet is held: the wait is 224 bytes.
                _ = OptionFuture::from(held.map(|t| Box::pin(store.wait(t)))), if held.is_some() => Event::Stored,
                // Backpressure: a client that does not read its acknowledgements is not
                // read either. Reading and pulling come before writing ([`SinceWrite`]).
                res = reader.read_buf(&mut io.rbuf), if may_read => Event::Read(res),
                delivery = conn.outbox_rx.recv(), if can_pull => Event::Delivery(delivery),
                res = unless_blocked(write_some(&mut writer, &mut io.wbuf, &mut io.unflushed), holds_back), if writing => match res {
                    Some(res) => Event::Wrote(res),
                    None => Event::WriteBlocked,
                },
            }
        };
        match event {
            Event::Stop(stop) => {
                return Step::End(match stop {
                    Stop::Shutdown => {
                        conn.drain_for_shutdown(io);
                        End::Shutdown
                    }
                    Stop::TakenOver => End::TakenOver,
                    Stop::KeepAlive => End::KeepAliveTimeout,
                    Stop::CredentialsExpired => End::CredentialsExpired,
                });
            }
            Event::Stored => {
                if let Some(end) = conn.release_held(io) {
                    return Step::End(end);
                }
            }
            Event::WriteBlocked => since.blocked = true,
            Event::Wrote(Ok(n)) => {
                since = SinceWrite::default();
                conn.broker.stats.bytes_sent.add(n as u64);
            }
            Event::Wrote(Err(e)) => return Step::End(End::Io(e)),
            Event::Read(Ok(0)) => return Step::End(End::Closed),
            Event::Read(Ok(n)) => {
                since.read = true;
                conn.broker.stats.bytes_received.add(n as u64);
                if let Some(end) = Box::pin(decode_all(conn, io)).await {
                    return Step::End(end);
                }
                io.settle_read(n);
                if deliveries_first(conn, io) {
                    tokio::task::yield_now().await;
                }
            }
            Event::Read(Err(e)) => return Step::End(End::Io(e)),
            Event::Delivery(None) => {}
            Event::Delivery(Some(d)) => {
                since.pulled = true;
                conn.deliver(io, d);
                let mut n = 1;
                while n < OUTBOX_BATCH && conn.can_pull(io) {
                    match conn.outbox_rx.try_recv() {
                        Ok(d) => conn.deliver(io, d),
                        Err(_) => break,
                    }
                    n += 1;
                }
            }
        }
        if io.wbuf.is_empty() && !io.unflushed && conn.held.is_empty() && conn.pending.is_empty() {
            return Step::Park;
        }
    }
}

/// Decodes and handles every complete packet in the read buffer.
///
/// With a plugin `on-publish` hook, consecutive PUBLISH packets are checked one by one
/// and their hooks run once for the run (up to [`PUBLISH_BATCH`]): a plugin call costs
/// about as much as the rest of a message's way through the broker, so a busy client
/// pays for one call per read rather than one per message. Anything else in between
/// (and the end of the buffer) completes the run first, so answers keep their order.
async fn decode_all<S: Duplex>(conn: &mut Conn, io: &mut Io<S>) -> Option<End> {
    let batching = conn.broker.plugins_have(Hook::Publish);
    let mut run: Vec<Accepted> = Vec::new();
    // The keep alive is touched once per read, not per packet: reading the clock for
    // each acknowledgement was 3 % of the broker's CPU in fan-out of QoS 2 messages.
    let mut touched = false;
    loop {
        let packet = match io.codec.decode(&mut io.rbuf) {
            Ok(Some(packet)) => packet,
            Ok(None) => {
                if let Some(end) = complete_run(conn, io, &mut run).await {
                    return Some(end);
                }
                conn.fill_from_pending(io);
                return None;
            }
            Err(e) => {
                let end = complete_run(conn, io, &mut run).await;
                return Some(end.unwrap_or(End::Failed(Error::Codec(e))));
            }
        };
        if !touched {
            conn.touch();
            touched = true;
        }
        let packet = match packet {
            Packet::Publish(p) if batching => {
                match conn.accept_publish(p) {
                    Ok(Arrival::Accepted(accepted)) => {
                        run.push(accepted);
                        if run.len() >= PUBLISH_BATCH
                            && let Some(end) = complete_run(conn, io, &mut run).await
                        {
                            return Some(end);
                        }
                    }
                    Ok(Arrival::Answered(answer)) => {
                        if let Some(end) = complete_run(conn, io, &mut run).await {
                            return Some(end);
                        }
                        if let Some(answer) = answer {
                            conn.send_after(io, Ticket::NONE, answer);
                        }
                    }
                    Err(e) => {
                        let end = complete_run(conn, io, &mut run).await;
                        return Some(end.unwrap_or(End::Failed(e)));
                    }
                }
                continue;
            }
            other => other,
        };
        if let Some(end) = complete_run(conn, io, &mut run).await {
            return Some(end);
        }
        match conn.handle(io, packet).await {
            Ok(None) => {}
            Ok(Some(end)) => return Some(end),
            Err(e) => return Some(End::Failed(e)),
        }
    }
}

/// Runs the hooks of the PUBLISH packets accepted so far and answers them.
async fn complete_run<S: Duplex>(
    conn: &mut Conn,
    io: &mut Io<S>,
    run: &mut Vec<Accepted>,
) -> Option<End> {
    let handled = match run.len() {
        0 => return None,
        1 => match run.pop() {
            Some(one) => conn.publish_one(io, one).await,
            None => Ok(None),
        },
        _ => conn.publish_batch(io, std::mem::take(run)).await,
    };
    match handled {
        Ok(end) => end,
        Err(e) => Some(End::Failed(e)),
    }
}

#[cfg(test)]
mod buffer_tests {
    use super::*;
    use crate::transport::Split;

    /// Queues a QoS 0 PUBLISH of `payload` on `io`, as a delivery does.
    fn queue_publish<S: Duplex>(io: &mut Io<S>, payload: &bytes::Bytes) {
        io.codec.set_version(crate::types::ProtocolVersion::V3_1_1);
        let head = codec::Publish {
            dup: false,
            qos: crate::types::QoS::AtMostOnce,
            retain: false,
            topic: ByteString::new(),
            packet_id: None,
            payload: bytes::Bytes::new(),
            properties: Default::default(),
        };
        io.encode_publish(&head, "big/t", payload);
    }

    #[tokio::test]
    async fn a_large_payload_is_shared_on_a_vectored_stream_and_copied_on_another() {
        use bytes::Buf;
        let large = bytes::Bytes::from(vec![5u8; SHARED_PAYLOAD_MIN]);
        let small = bytes::Bytes::from(vec![6u8; SHARED_PAYLOAD_MIN - 1]);
        // Plain TCP writes vectors: the head is encoded, the payload queued as it is.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let tcp = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let mut io = Io::new(tcp, Codec::new(1 << 20));
        assert!(io.vectored);
        queue_publish(&mut io, &large);
        let mut slices = [std::io::IoSlice::new(&[]); 4];
        assert_eq!(io.wbuf.chunks_vectored(&mut slices), 2, "head, payload");
        // Type, a two-byte remaining length (8,199), the topic's length and "big/t".
        assert_eq!(slices[0].len(), 1 + 2 + 2 + 5, "fixed header and topic");
        assert_eq!(
            slices[1].as_ptr(),
            large.as_ptr(),
            "the message's own bytes"
        );
        // Below the threshold the payload is copied behind its head.
        let mut io = Io::new(
            tokio::net::TcpStream::connect(listener.local_addr().unwrap())
                .await
                .unwrap(),
            Codec::new(1 << 20),
        );
        queue_publish(&mut io, &small);
        assert_eq!(io.wbuf.chunk().len(), io.wbuf.len(), "one buffer");
        // A stream that does not write vectors (as WebSocket): copied.
        let (a, _b) = tokio::io::duplex(1 << 20);
        let mut io = Io::new(Split::new(test_io::NotVectored(a)), Codec::new(1 << 20));
        assert!(!io.vectored);
        queue_publish(&mut io, &large);
        assert_eq!(io.wbuf.chunk().len(), io.wbuf.len(), "one buffer");
        assert_eq!(io.wbuf.len(), 1 + 2 + 2 + 5 + SHARED_PAYLOAD_MIN);
    }

    #[test]
    fn a_detached_string_does_not_keep_the_read_buffer() {
        let buffer = bytes::Bytes::from(vec![b'x'; 128]);
        let slice = ByteString::try_from(buffer.slice(10..20)).unwrap();
        let kept = detached(&slice);
        assert_eq!(kept, slice);
        let range = buffer.as_ptr_range();
        assert!(
            !range.contains(&kept.as_bytes().as_ptr()),
            "the copy is outside the buffer, which can be freed"
        );
    }

    fn io() -> Io<Split<tokio::io::DuplexStream>> {
        let (a, _b) = tokio::io::duplex(64);
        Io::new(Split::new(a), Codec::new(1 << 20))
    }

    /// A read of `n` bytes into the room `prepare_read` made, then decoding, which
    /// takes whole packets off the front (the message payloads keep their slices).
    fn read(io: &mut Io<Split<tokio::io::DuplexStream>>, n: usize, decoded: usize) {
        io.prepare_read();
        let n = n.min(io.read_room as usize);
        io.rbuf.extend_from_slice(&vec![0u8; n]);
        let _payloads = io.rbuf.split_to(decoded.min(io.rbuf.len())).freeze();
        io.settle_read(n);
    }

    /// The bug this guards against: with reads capped at 64 KiB, a PUBLISH of a 64 KiB
    /// payload (a few bytes more on the wire) never fit one read. Each took two
    /// `recv` calls, and the first part was copied into a larger buffer to make room
    /// for the rest (`strace`: 65517 bytes, then 38, per message).
    #[tokio::test]
    async fn publishes_of_64_kib_arriving_one_at_a_time_take_one_read_each() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (a, mut client) = tokio::io::duplex(1 << 20);
        let mut io = Io::new(Split::new(a), Codec::new(1 << 20));
        io.codec.set_version(crate::types::ProtocolVersion::V3_1_1);
        let mut reads_per_packet = Vec::new();
        let mut in_flight = Vec::new();
        for id in 1..=20u16 {
            let packet = Packet::Publish(codec::Publish {
                dup: false,
                qos: crate::types::QoS::AtLeastOnce,
                retain: false,
                topic: "bulk/t".into(),
                packet_id: crate::types::PacketId::new(id),
                payload: bytes::Bytes::from(vec![7u8; 64 * 1024]),
                properties: Default::default(),
            });
            let mut wire = BytesMut::new();
            codec::encode(&packet, crate::types::ProtocolVersion::V3_1_1, &mut wire).unwrap();
            client.write_all(&wire).await.unwrap();
            let mut reads = 0;
            let decoded = loop {
                io.prepare_read();
                let n = io.stream.halves().0.read_buf(&mut io.rbuf).await.unwrap();
                reads += 1;
                let packet = io.codec.decode(&mut io.rbuf).unwrap();
                io.settle_read(n);
                if let Some(packet) = packet {
                    break packet;
                }
            };
            let Packet::Publish(p) = decoded else {
                panic!("decoded {decoded:?}")
            };
            assert_eq!(p.payload.len(), 64 * 1024);
            // Delivered and in flight to a subscriber: the payload outlives the read.
            in_flight.push(p.payload);
            reads_per_packet.push(reads);
        }
        assert!(
            reads_per_packet[5..].iter().all(|&r| r == 1),
            "one read per packet once the read size adapted: {reads_per_packet:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_read_size_grows_while_reads_fill_it_and_shrinks_when_quiet() {
        let mut io = io();
        io.prepare_read();
        assert_eq!(io.rbuf.capacity(), READ_BUFFER_MIN, "an idle connection");
        // a packet larger than the buffer: the room at least doubles with each read
        // that fills it (one read per doubling, not 64-byte reads)
        let mut rooms = Vec::new();
        let doublings = (READ_BUFFER_STEP_MAX / READ_BUFFER_MIN).trailing_zeros();
        for _ in 0..doublings {
            read(&mut io, usize::MAX, 0);
            rooms.push(io.read_room as usize);
        }
        assert!(
            rooms.windows(2).all(|w| w[1] >= 2 * w[0]),
            "grows: {rooms:?}"
        );
        assert_eq!(io.read_size(), READ_BUFFER_STEP_MAX, "capped");
        io.rbuf.clear();
        // a steady stream of 1 KiB packets, each decoded (sliced off) as it arrives:
        // every packet arrives in one read
        io.set_read_size(READ_BUFFER_MIN);
        io.rbuf = BytesMut::with_capacity(READ_BUFFER_MIN);
        let mut reads_per_packet = Vec::new();
        for _ in 0..20 {
            let mut reads = 0;
            let mut got = 0;
            while got < 1024 {
                let before = io.rbuf.len();
                read(&mut io, 1024 - got, 0);
                got += io.rbuf.len() - before;
                reads += 1;
            }
            let _packet = io.rbuf.split_to(io.rbuf.len()).freeze();
            reads_per_packet.push(reads);
        }
        assert!(
            reads_per_packet[5..].iter().all(|&r| r == 1),
            "one read per packet once the size adapted: {reads_per_packet:?}"
        );
        // the tail of a packet (a small read) right after: the size is kept
        let grown = io.read_size();
        read(&mut io, 10, 10);
        assert_eq!(io.read_size(), grown, "kept right after being used");
        // quiet for a while: back to the minimum on the next small read, and a grown
        // empty buffer is released
        io.rbuf = BytesMut::with_capacity(16 * READ_BUFFER_MIN);
        tokio::time::advance(READ_BUFFER_KEEP).await;
        read(&mut io, 10, 10);
        assert_eq!(io.read_size(), READ_BUFFER_MIN);
        assert_eq!(io.rbuf.capacity(), READ_BUFFER_MIN);
    }

    #[tokio::test]
    async fn a_large_write_buffer_is_released_once_written() {
        let (a, mut b) = tokio::io::duplex(1 << 20);
        let (_reader, mut writer) = tokio::io::split(a);
        let mut wbuf = WriteQueue::default();
        wbuf.extend_from_slice(&vec![7u8; 100 * 1024]);
        let mut unflushed = false;
        while !wbuf.is_empty() {
            write_some(&mut writer, &mut wbuf, &mut unflushed)
                .await
                .unwrap();
        }
        assert_eq!(wbuf.capacity(), 0, "released after a burst");
        let mut got = vec![0u8; 100 * 1024];
        tokio::io::AsyncReadExt::read_exact(&mut b, &mut got)
            .await
            .unwrap();
    }
}
/// Every idle connection holds its task and its `Conn`: these guard against a large
/// future (a plugin call, the handshake) or field slipping back in inline. Sizes are of
/// the debug build; see docs/PERFORMANCE.md for the release numbers.
#[cfg(test)]
mod size_tests {
    use std::sync::Arc;

    use tokio_util::sync::CancellationToken;

    fn size_of_val<T>(_: &T) -> usize {
        std::mem::size_of::<T>()
    }

    #[test]
    fn the_state_an_idle_connection_holds_stays_small() {
        // 536 bytes before the topic alias maps (96 bytes, rarely used) were boxed
        // and the client id kept once (in the session); 416 after; 368 since one
        // `Control` holds the stop signal, the keep alive and the credential expiry;
        // 424 since the client record for plugins is kept inline and compact (it was a
        // separate 216-byte `Arc<ClientInfo>`); 448 since a session's single
        // subscription is inline (it was a 112-byte vector) and its QoS 2 ids are boxed;
        // 384 since that subscription's share name and filter are read from its key;
        // 368 without the listener's chain (looked up when a subscription is checked),
        // so that `Link` (with the 144-byte `Io`) fitted the 528-byte allocation class;
        // 296 since the local-delivery and store queues are boxed on first use (two
        // 32-byte `VecDeque`s), the client's address is 16 bytes and the hook record a
        // `OnceBox`. With the 136-byte `Io`, the `Link` is 432 bytes, which the task
        // holds inline (see `a_plain_connections_task_fits_a_640_byte_tokio_cell`).
        assert!(
            std::mem::size_of::<super::Conn>() <= 296,
            "Conn is {} bytes",
            std::mem::size_of::<super::Conn>()
        );
        assert!(
            std::mem::size_of::<super::Link<tokio::net::TcpStream>>() <= 432,
            "Link is {} bytes",
            std::mem::size_of::<super::Link<tokio::net::TcpStream>>()
        );
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let _guard = rt.enter();
        let broker = Arc::new(crate::broker::Broker::new(crate::config::Config::default()));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let stream = std::net::TcpStream::connect(addr).unwrap();
        stream.set_nonblocking(true).unwrap();
        let stream = tokio::net::TcpStream::from_std(stream).unwrap();
        let peer = crate::transport::Peer { addr, tls: None };
        // The future is only measured, never polled.
        let task = super::serve(stream, peer, "x".into(), broker, CancellationToken::new());
        // 5472 bytes before Conn was boxed and the timers and store wait were merged
        // or boxed; 1384 after; 608 since `serve` is no longer an `async fn` (whose
        // arguments stayed beside the futures they were moved into), the handshake
        // yields one boxed `Link`, and takeover and shutdown share one token; 504 since
        // the event loop waits on its `Control` (a poll of one atomic) instead of a
        // cancellation token (72 bytes) and a keep-alive timer (112); 72 since the task
        // is a state machine whose phases are boxed while they run (`task.rs`); 496
        // since the parked task holds its `Link` inline rather than a pointer to a
        // separate 448-byte allocation (tokio's task cell went from 256 to 640 bytes)
        // and counts its parks.
        assert!(
            size_of_val(&task) <= 496,
            "the task is {} bytes",
            size_of_val(&task)
        );
    }
}

/// What an ended connection leaves behind.
#[cfg(test)]
mod end_tests {
    use std::future::{Future, poll_fn};
    use std::io::{Read, Write};
    use std::sync::Arc;
    use std::task::Context;

    use tokio_util::sync::CancellationToken;

    use crate::broker::Broker;
    use crate::test_waker::TrackedWaker;

    /// Serves one MQTT 3.1.1 client that connects (keep alive 60 s), reads its CONNACK
    /// and closes. The connection's task is polled with a tracked waker until it ends;
    /// returns that waker.
    async fn serve_one(broker: &Arc<Broker>, clean: bool) -> Arc<TrackedWaker> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let flags = if clean { 0x02 } else { 0x00 };
        let client = std::thread::spawn(move || {
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            let connect = [
                0x10, 13, 0, 4, b'M', b'Q', b'T', b'T', 4, flags, 0, 60, 0, 1, b'c',
            ];
            s.write_all(&connect).unwrap();
            let mut ack = [0u8; 4];
            s.read_exact(&mut ack).unwrap();
            ack
        });
        let (stream, peer) = listener.accept().unwrap();
        stream.set_nonblocking(true).unwrap();
        let stream = tokio::net::TcpStream::from_std(stream).unwrap();
        let peer = crate::transport::Peer {
            addr: peer,
            tls: None,
        };
        let mut task = Box::pin(super::serve(
            stream,
            peer,
            "x".into(),
            Arc::clone(broker),
            CancellationToken::new(),
        ));
        let waker = TrackedWaker::new();
        poll_fn(|cx| {
            let w = waker.waker(Some(cx));
            task.as_mut().poll(&mut Context::from_waker(&w))
        })
        .await;
        assert_eq!(client.join().unwrap(), [0x20, 2, 0, 0], "CONNACK accepted");
        waker
    }

    #[tokio::test]
    async fn an_ended_connection_keeps_no_waker_of_its_task() {
        // A waker keeps tokio's whole task allocation (640 bytes in the release build).
        // The keep-alive watch kept one until 1.5 keep alives after the connection
        // ended, and an offline session's outbox until the session was resumed or
        // expired: a connection storm's memory stayed for 90 s (keep alive 60 s).
        for clean in [true, false] {
            let broker = Arc::new(Broker::new(crate::config::Config::default()));
            let waker = serve_one(&broker, clean).await;
            assert_eq!(waker.kept(), 0, "clean session {clean}: a waker is kept");
            assert_eq!(broker.deadlines.len(), 0, "still watched after it ended");
            assert_eq!(
                broker.registry.len(),
                usize::from(!clean),
                "the session is kept offline only without clean session"
            );
        }
    }
}
