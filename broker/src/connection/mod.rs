//! One task per client connection: reads and decodes packets, runs them through the
//! session logic, writes what results, and pulls deliveries from the session's outbox.
//!
//! The loop `select!`s over the socket, the outbox, the keep-alive deadline, takeover and
//! server shutdown. Writes are batched: everything produced by one wake-up is encoded
//! into one buffer and written together. This is the only layer that does I/O.

mod connect;
mod durable;
mod inbound;
mod outbound;
mod state;

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use futures_util::future::OptionFuture;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::time::{Instant, sleep_until, timeout};
use tokio_util::codec::Decoder;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, field, info_span};

use crate::broker::Broker;
use crate::codec::{self, Codec, Disconnect, DisconnectProperties, Packet};
use crate::stats::Stats;
use crate::transport::Peer;
use crate::types::ReasonCode;
pub use state::Error;
use state::{Conn, End};

/// How many deliveries one wake-up pulls from the outbox before writing.
const OUTBOX_BATCH: usize = 256;
/// How long a closing connection may take to flush what it has.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(2);
/// The read buffer of a quiet connection (most CONNECT packets fit).
const READ_BUFFER_MIN: usize = 256;
/// The largest step the read buffer grows by when reads keep filling it.
const READ_BUFFER_STEP_MAX: usize = 64 * 1024;
/// A write buffer larger than this is released once it has been written out.
const WRITE_BUFFER_KEEP: usize = 64 * 1024;

/// The socket halves and buffers of one connection.
pub(crate) struct Io<S> {
    reader: ReadHalf<S>,
    writer: WriteHalf<S>,
    rbuf: BytesMut,
    wbuf: BytesMut,
    codec: Codec,
    /// Bytes were written since the last flush. TLS and WebSocket streams may hold
    /// written data until flushed; plain TCP flushes at no cost.
    unflushed: bool,
}

impl<S: AsyncRead + AsyncWrite> Io<S> {
    fn encode(&mut self, packet: &Packet) {
        let version = self
            .codec
            .version()
            .unwrap_or(crate::types::ProtocolVersion::V3_1_1);
        if let Err(e) = codec::encode(packet, version, &mut self.wbuf) {
            // Only reachable for values the broker built itself.
            tracing::error!(error = %e, "failed to encode an outgoing packet");
        }
    }

    async fn flush(&mut self, broker: &Broker) -> std::io::Result<()> {
        let n = self.wbuf.len();
        while !self.wbuf.is_empty() {
            self.writer.write_buf(&mut self.wbuf).await?;
        }
        self.writer.flush().await?;
        self.unflushed = false;
        Stats::add(&broker.stats.bytes_sent, n as u64);
        Ok(())
    }
}

/// Writes some of `wbuf`, or flushes once it is empty. Returns bytes written.
async fn write_some<W: AsyncWrite>(
    writer: &mut WriteHalf<W>,
    wbuf: &mut BytesMut,
    unflushed: &mut bool,
) -> std::io::Result<usize> {
    if wbuf.is_empty() {
        writer.flush().await?;
        *unflushed = false;
        return Ok(0);
    }
    let n = writer.write_buf(wbuf).await?;
    *unflushed = true;
    if wbuf.is_empty() && wbuf.capacity() > WRITE_BUFFER_KEEP {
        // A burst is over: do not keep its buffer for an idle connection.
        *wbuf = BytesMut::new();
    }
    Ok(n)
}

impl<S> Io<S> {
    /// Before a read: room for at least a quarter of the minimum; a buffer that reads
    /// keep filling doubles (up to a step of 64 KiB), so busy clients read in large
    /// chunks while idle ones hold 256 bytes.
    fn prepare_read(&mut self) {
        if self.rbuf.capacity() - self.rbuf.len() < READ_BUFFER_MIN / 4 {
            let step = self
                .rbuf
                .capacity()
                .clamp(READ_BUFFER_MIN, READ_BUFFER_STEP_MAX);
            self.rbuf.reserve(step);
        }
    }

    /// After a read of `n` bytes was decoded: a buffer left empty by a small read goes
    /// back to the minimum, so that a burst does not pin memory on an idle connection.
    fn settle_read(&mut self, n: usize) {
        if self.rbuf.is_empty()
            && self.rbuf.capacity() > 4 * READ_BUFFER_MIN
            && n < self.rbuf.capacity() / 4
        {
            self.rbuf = BytesMut::with_capacity(READ_BUFFER_MIN);
        }
    }
}

/// Serves one client until it disconnects, fails, is taken over or the server stops.
pub async fn serve<S>(
    stream: S,
    peer: Peer,
    listener: Arc<str>,
    broker: Arc<Broker>,
    shutdown: CancellationToken,
) where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let span = info_span!("conn", peer = %peer.addr, client_id = field::Empty);
    async move {
        let (reader, writer) = tokio::io::split(stream);
        let mut io = Io {
            reader,
            writer,
            rbuf: BytesMut::with_capacity(READ_BUFFER_MIN),
            // Allocated by the first packet to send.
            wbuf: BytesMut::new(),
            codec: Codec::new(broker.config.limits.max_packet_bytes),
            unflushed: false,
        };
        // Boxed: the handshake (authentication chain, plugin calls) is a large future
        // needed once; inline it would sit in every idle connection's task.
        let handshake = Box::pin(connect::handshake(
            &mut io, &broker, &shutdown, &peer, &listener,
        ));
        let conn = match handshake.await {
            Ok(Some(conn)) => conn,
            Ok(None) => {
                let _ = timeout(FLUSH_TIMEOUT, io.flush(&broker)).await;
                return;
            }
            Err(e) => {
                debug!(error = %e, "connection refused during connect");
                let _ = timeout(FLUSH_TIMEOUT, io.flush(&broker)).await;
                return;
            }
        };
        tracing::Span::current().record("client_id", field::display(&conn.client_id));
        run(conn, io, &shutdown).await;
    }
    .instrument(span)
    .await
}

async fn run<S: AsyncRead + AsyncWrite>(
    mut conn: Box<Conn>,
    mut io: Io<S>,
    shutdown: &CancellationToken,
) {
    Stats::incr(&conn.broker.stats.clients_connected);
    let end = event_loop(&mut conn, &mut io, shutdown).await;
    match &end {
        End::Failed(e) => {
            Stats::incr(&conn.broker.stats.protocol_errors);
            tracing::warn!(error = %e, "connection closed");
            if let Some(reason) = e.reason_code() {
                send_disconnect(&mut conn, &mut io, reason, Some(e.to_string()));
            }
        }
        End::Shutdown => {
            send_disconnect(&mut conn, &mut io, ReasonCode::SERVER_SHUTTING_DOWN, None)
        }
        End::TakenOver => send_disconnect(&mut conn, &mut io, ReasonCode::SESSION_TAKEN_OVER, None),
        End::KeepAliveTimeout => {
            tracing::info!("keep alive timeout [MQTT-3.1.2-24]");
            send_disconnect(&mut conn, &mut io, ReasonCode::KEEP_ALIVE_TIMEOUT, None)
        }
        End::CredentialsExpired => {
            Stats::incr(&conn.broker.stats.credentials_expired);
            tracing::info!("credentials expired; disconnecting");
            send_disconnect(
                &mut conn,
                &mut io,
                ReasonCode::MAXIMUM_CONNECT_TIME,
                Some("credentials expired".to_owned()),
            )
        }
        End::Disconnected { .. } => debug!("client disconnected"),
        End::Closed => debug!("connection closed by client"),
        End::Io(e) => debug!(error = %e, "connection i/o error"),
    }
    if !matches!(end, End::Io(_)) {
        conn.flush_held(&mut io).await;
        let _ = timeout(FLUSH_TIMEOUT, io.flush(&conn.broker)).await;
    }
    let _ = io.writer.shutdown().await;
    Stats::decr(&conn.broker.stats.clients_connected);
    // Boxed for the same reason: plugin calls for the will and `on-disconnect`.
    Box::pin((*conn).finish(&end)).await;
}

/// MQTT 5 only: the server may send DISCONNECT before closing [MQTT-3.14.0-1].
fn send_disconnect<S: AsyncRead + AsyncWrite>(
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

async fn event_loop<S: AsyncRead + AsyncWrite>(
    conn: &mut Conn,
    io: &mut Io<S>,
    shutdown: &CancellationToken,
) -> End {
    conn.resend_inflight(io);
    conn.fill_from_pending(io);
    // Packets pipelined behind CONNECT are already in the read buffer.
    if let Some(end) = Box::pin(decode_all(conn, io)).await {
        return end;
    }
    let kick = conn.kick.clone();
    let expire = conn.credentials_expire;
    let store = conn.broker.store.clone();
    loop {
        let deadline = match (conn.keep_alive_deadline(), expire) {
            (Some(keep_alive), Some(expire)) => Some(keep_alive.min(expire)),
            (keep_alive, expire) => keep_alive.or(expire),
        };
        let can_pull = conn.can_pull(io);
        let held = conn.held_front();
        io.prepare_read();
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => {
                conn.drain_for_shutdown(io);
                return End::Shutdown;
            }
            _ = kick.cancelled() => return End::TakenOver,
            // Boxed, and only while a packet is held: the wait is 224 bytes.
            _ = OptionFuture::from(held.map(|t| Box::pin(store.wait(t)))), if held.is_some() => {
                if let Some(end) = conn.release_held(io) {
                    return end;
                }
            }
            res = write_some(&mut io.writer, &mut io.wbuf, &mut io.unflushed), if !io.wbuf.is_empty() || io.unflushed => {
                match res {
                    Ok(n) => Stats::add(&conn.broker.stats.bytes_sent, n as u64),
                    Err(e) => return End::Io(e),
                }
            }
            // Backpressure: a client that does not read its acknowledgements is not read either.
            res = io.reader.read_buf(&mut io.rbuf), if io.wbuf.len() < 4 * conn.broker.config.limits.write_buffer_high_water_bytes => {
                match res {
                    Ok(0) => return End::Closed,
                    Ok(n) => {
                        Stats::add(&conn.broker.stats.bytes_received, n as u64);
                        if let Some(end) = Box::pin(decode_all(conn, io)).await {
                            return end;
                        }
                        io.settle_read(n);
                    }
                    Err(e) => return End::Io(e),
                }
            }
            delivery = conn.outbox_rx.recv(), if can_pull => {
                if let Some(d) = delivery {
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
            // One timer for both deadlines (each timer is 112 bytes in every idle task).
            _ = sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {
                return if deadline == expire {
                    End::CredentialsExpired
                } else {
                    End::KeepAliveTimeout
                };
            }
        }
    }
}

/// Decodes and handles every complete packet in the read buffer.
async fn decode_all<S: AsyncRead + AsyncWrite>(conn: &mut Conn, io: &mut Io<S>) -> Option<End> {
    loop {
        match io.codec.decode(&mut io.rbuf) {
            Ok(Some(packet)) => {
                conn.touch();
                match conn.handle(io, packet).await {
                    Ok(None) => {}
                    Ok(Some(end)) => return Some(end),
                    Err(e) => return Some(End::Failed(e)),
                }
            }
            Ok(None) => {
                conn.fill_from_pending(io);
                return None;
            }
            Err(e) => return Some(End::Failed(Error::Codec(e))),
        }
    }
}

#[cfg(test)]
mod buffer_tests {
    use super::*;

    fn io() -> Io<tokio::io::DuplexStream> {
        let (a, _b) = tokio::io::duplex(64);
        let (reader, writer) = tokio::io::split(a);
        Io {
            reader,
            writer,
            rbuf: BytesMut::with_capacity(READ_BUFFER_MIN),
            wbuf: BytesMut::new(),
            codec: Codec::new(1 << 20),
            unflushed: false,
        }
    }

    #[tokio::test]
    async fn the_read_buffer_grows_while_reads_fill_it_and_shrinks_when_quiet() {
        let mut io = io();
        io.prepare_read();
        assert_eq!(
            io.rbuf.capacity(),
            READ_BUFFER_MIN,
            "room enough: no growth"
        );
        let mut caps = Vec::new();
        for _ in 0..12 {
            // a read that fills the buffer
            let spare = io.rbuf.capacity() - io.rbuf.len();
            io.rbuf.extend_from_slice(&vec![0u8; spare]);
            io.prepare_read();
            caps.push(io.rbuf.capacity());
        }
        // a packet larger than the buffer: it at least doubles each time (one read per
        // doubling, not 64-byte reads)
        assert!(caps.windows(2).all(|w| w[1] >= 2 * w[0]), "grows: {caps:?}");
        // everything decoded, then a small read: back to the minimum
        io.rbuf.clear();
        io.settle_read(10);
        assert_eq!(io.rbuf.capacity(), READ_BUFFER_MIN);
        // a large read that happened to end on a packet boundary keeps the buffer
        io.rbuf.reserve(64 * 1024);
        let cap = io.rbuf.capacity();
        io.settle_read(cap);
        assert_eq!(io.rbuf.capacity(), cap);
    }

    #[tokio::test]
    async fn a_large_write_buffer_is_released_once_written() {
        let (a, mut b) = tokio::io::duplex(1 << 20);
        let (_reader, mut writer) = tokio::io::split(a);
        let mut wbuf = BytesMut::from(&vec![7u8; 100 * 1024][..]);
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
        assert!(
            std::mem::size_of::<super::Conn>() <= 640,
            "Conn is {} bytes",
            std::mem::size_of::<super::Conn>()
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
        // or boxed; 1384 after.
        assert!(
            size_of_val(&task) <= 2048,
            "the task is {} bytes",
            size_of_val(&task)
        );
    }
}
