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
    Ok(n)
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
            rbuf: BytesMut::with_capacity(4096),
            wbuf: BytesMut::with_capacity(4096),
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
    mut conn: Conn,
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
    Box::pin(conn.finish(&end)).await;
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
    if let Some(end) = decode_all(conn, io).await {
        return end;
    }
    let kick = conn.kick.clone();
    let expire = conn.credentials_expire;
    let store = conn.broker.store.clone();
    loop {
        let keep_alive = conn.keep_alive_deadline();
        let can_pull = conn.can_pull(io);
        let held = conn.held_front();
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => {
                conn.drain_for_shutdown(io);
                return End::Shutdown;
            }
            _ = kick.cancelled() => return End::TakenOver,
            _ = store.wait(held.unwrap_or_default()), if held.is_some() => {
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
                        if let Some(end) = decode_all(conn, io).await {
                            return end;
                        }
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
            _ = sleep_until(keep_alive.unwrap_or_else(Instant::now)), if keep_alive.is_some() => {
                return End::KeepAliveTimeout;
            }
            _ = sleep_until(expire.unwrap_or_else(Instant::now)), if expire.is_some() => {
                return End::CredentialsExpired;
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
