//! A raw-byte MQTT client over a real TCP socket: sends whatever bytes a test
//! gives it and reads whole control packets back, with timeouts that fail the
//! test with a readable message. Used for edge cases and bad input that a
//! well-behaved client library refuses to produce.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout_at};

use crate::packets::{
    self, ConnAck, Connect, Props, Publish, Received, kind, parse_ack, parse_connack,
    parse_disconnect, parse_publish, parse_suback,
};

/// How long `recv_*` waits before failing the test.
pub const RECV_TIMEOUT: Duration = Duration::from_secs(5);

/// What the socket did next.
#[derive(Debug)]
pub enum Next {
    /// A whole control packet: first byte and body.
    Packet(u8, Vec<u8>),
    /// EOF or connection reset.
    Closed,
    /// Nothing within the time given.
    Timeout,
}

/// Any byte stream a [`RawClient`] can drive: TCP, TLS, WebSocket.
pub trait RawStream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> RawStream for T {}

/// A raw MQTT client.
pub struct RawClient {
    stream: Box<dyn RawStream>,
    buf: BytesMut,
    pending: VecDeque<(u8, Vec<u8>)>,
    /// Parse packets from the broker with the MQTT 5 layout.
    pub v5: bool,
    next_id: u16,
    closed: bool,
}

impl RawClient {
    /// Opens a TCP connection (no MQTT traffic yet).
    pub async fn connect(addr: SocketAddr) -> RawClient {
        let stream = tokio::time::timeout(RECV_TIMEOUT, TcpStream::connect(addr))
            .await
            .unwrap_or_else(|_| panic!("TCP connect to {addr} timed out"))
            .unwrap_or_else(|e| panic!("TCP connect to {addr} failed: {e}"));
        RawClient::from_stream(stream)
    }

    /// Opens a TCP connection with a small kernel receive buffer (a client
    /// whose socket fills up quickly when it stops reading).
    pub async fn connect_small_buffer(addr: SocketAddr, recv_buffer: u32) -> RawClient {
        let socket = tokio::net::TcpSocket::new_v4().unwrap_or_else(|e| panic!("socket: {e}"));
        socket
            .set_recv_buffer_size(recv_buffer)
            .unwrap_or_else(|e| panic!("SO_RCVBUF: {e}"));
        let stream = tokio::time::timeout(RECV_TIMEOUT, socket.connect(addr))
            .await
            .unwrap_or_else(|_| panic!("TCP connect to {addr} timed out"))
            .unwrap_or_else(|e| panic!("TCP connect to {addr} failed: {e}"));
        RawClient::from_stream(stream)
    }

    fn from_stream(stream: TcpStream) -> RawClient {
        stream.set_nodelay(true).ok();
        RawClient::from_io(stream)
    }

    /// A client over an already established stream (e.g. TLS or WebSocket).
    pub fn from_io(stream: impl RawStream + 'static) -> RawClient {
        RawClient {
            stream: Box::new(stream),
            buf: BytesMut::with_capacity(4096),
            pending: VecDeque::new(),
            v5: false,
            next_id: 0,
            closed: false,
        }
    }

    /// Connects and completes a handshake, asserting CONNACK success.
    pub async fn connect_with(addr: SocketAddr, connect: &Connect) -> (RawClient, ConnAck) {
        let mut c = RawClient::connect(addr).await;
        let ack = c.handshake(connect).await;
        assert_eq!(
            ack.code, 0,
            "CONNACK refused client {:?}: {ack:?}",
            connect.client_id
        );
        (c, ack)
    }

    /// MQTT 3.1.1 clean-session client.
    pub async fn connect_v311(addr: SocketAddr, client_id: &str) -> RawClient {
        RawClient::connect_with(addr, &Connect::v311(client_id))
            .await
            .0
    }

    /// MQTT 5.0 clean-start client with these CONNECT properties.
    pub async fn connect_v5(
        addr: SocketAddr,
        client_id: &str,
        props: Props,
    ) -> (RawClient, ConnAck) {
        RawClient::connect_with(addr, &Connect::v5(client_id).props(props)).await
    }

    /// Sends CONNECT and returns the CONNACK, whatever its code.
    pub async fn handshake(&mut self, connect: &Connect) -> ConnAck {
        self.v5 = connect.is_v5();
        self.send(&connect.bytes()).await;
        let (first, body) = self.recv_packet().await;
        parse_connack(first, &body, self.v5)
    }

    /// Writes bytes, failing the test on an I/O error.
    pub async fn send(&mut self, bytes: &[u8]) {
        if let Err(e) = self.try_send(bytes).await {
            panic!("write to broker failed: {e}");
        }
    }

    /// Writes bytes, returning the I/O error (the broker may have closed).
    pub async fn try_send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes).await?;
        self.stream.flush().await
    }

    /// A fresh non-zero packet identifier.
    pub fn next_packet_id(&mut self) -> u16 {
        self.next_id = self.next_id.wrapping_add(1).max(1);
        self.next_id
    }

    fn take_frame(&mut self) -> Option<(u8, Vec<u8>)> {
        if self.buf.len() < 2 {
            return None;
        }
        let mut len = 0usize;
        let mut i = 1;
        loop {
            if i >= self.buf.len() {
                return None;
            }
            let b = self.buf[i];
            len |= usize::from(b & 0x7f) << (7 * (i - 1));
            i += 1;
            if b & 0x80 == 0 {
                break;
            }
            assert!(i <= 4, "broker sent a remaining length longer than 4 bytes");
        }
        if self.buf.len() < i + len {
            return None;
        }
        let first = self.buf[0];
        self.buf.advance(i);
        let body = self.buf.split_to(len).to_vec();
        Some((first, body))
    }

    /// The next packet (or close, or timeout after `wait`), pending ones first.
    pub async fn next(&mut self, wait: Duration) -> Next {
        if let Some((f, b)) = self.pending.pop_front() {
            return Next::Packet(f, b);
        }
        let deadline = Instant::now() + wait;
        loop {
            if let Some((f, b)) = self.take_frame() {
                return Next::Packet(f, b);
            }
            if self.closed {
                return Next::Closed;
            }
            match timeout_at(deadline, self.stream.read_buf(&mut self.buf)).await {
                Err(_) => return Next::Timeout,
                Ok(Ok(0)) | Ok(Err(_)) => self.closed = true,
                Ok(Ok(_)) => {}
            }
        }
    }

    /// The next packet; fails the test on close or after [`RECV_TIMEOUT`].
    pub async fn recv_packet(&mut self) -> (u8, Vec<u8>) {
        match self.next(RECV_TIMEOUT).await {
            Next::Packet(f, b) => (f, b),
            Next::Closed => panic!("broker closed the connection while a packet was expected"),
            Next::Timeout => panic!("no packet from broker within {RECV_TIMEOUT:?}"),
        }
    }

    /// The next packet of this type; packets of other types received meanwhile
    /// are kept for later `recv_*` calls.
    pub async fn recv_kind(&mut self, packet_kind: u8) -> (u8, Vec<u8>) {
        if let Some(i) = self.pending.iter().position(|(f, _)| f >> 4 == packet_kind) {
            return self.pending.remove(i).unwrap_or_else(|| unreachable!());
        }
        let mut skipped = Vec::new();
        let out = loop {
            let (f, b) = match self.next(RECV_TIMEOUT).await {
                Next::Packet(f, b) => (f, b),
                Next::Closed => panic!(
                    "broker closed the connection while waiting for packet type {packet_kind}"
                ),
                Next::Timeout => panic!("no packet of type {packet_kind} within {RECV_TIMEOUT:?}"),
            };
            if f >> 4 == packet_kind {
                break (f, b);
            }
            skipped.push((f, b));
        };
        for p in skipped.into_iter().rev() {
            self.pending.push_front(p);
        }
        out
    }

    /// The next packet must be a PUBLISH (not acknowledged here).
    pub async fn recv_publish(&mut self) -> Received {
        let (f, b) = self.recv_packet().await;
        parse_publish(f, &b, self.v5)
    }

    /// The next PUBLISH, acknowledged per its QoS (the QoS 2 flow completed).
    pub async fn recv_publish_acked(&mut self) -> Received {
        let p = self.recv_publish().await;
        self.ack(&p).await;
        p
    }

    /// Acknowledges a received PUBLISH: PUBACK, or PUBREC, PUBREL, PUBCOMP.
    pub async fn ack(&mut self, p: &Received) {
        match p.qos {
            1 => self.send(&packets::puback(p.packet_id)).await,
            2 => {
                self.send(&packets::pubrec(p.packet_id)).await;
                let (_, body) = self.recv_kind(kind::PUBREL).await;
                let (id, reason, _) = parse_ack(&body);
                assert_eq!((id, reason), (p.packet_id, 0), "PUBREL for our PUBREC");
                self.send(&packets::pubcomp(p.packet_id)).await;
            }
            _ => {}
        }
    }

    /// Fails if a packet arrives within `wait`; a close is also a failure.
    pub async fn expect_no_packet(&mut self, wait: Duration) {
        match self.next(wait).await {
            Next::Timeout => {}
            Next::Packet(f, b) => panic!(
                "expected silence, got {} ({f:#04x}) {b:02x?}",
                kind::name(f)
            ),
            Next::Closed => panic!("expected silence, broker closed the connection"),
        }
    }

    /// The broker closes the connection without sending anything more.
    pub async fn expect_closed(&mut self) {
        match self.next(RECV_TIMEOUT).await {
            Next::Closed => {}
            Next::Packet(f, b) => panic!(
                "expected the broker to close, got {} ({f:#04x}) {b:02x?}",
                kind::name(f)
            ),
            Next::Timeout => panic!("broker did not close the connection within {RECV_TIMEOUT:?}"),
        }
    }

    /// MQTT 5: a DISCONNECT with exactly this reason code, then the close.
    pub async fn expect_disconnect(&mut self, reason: u8) {
        match self.next(RECV_TIMEOUT).await {
            Next::Packet(0xE0, b) => {
                let (got, props) = parse_disconnect(&b);
                assert_eq!(
                    got, reason,
                    "DISCONNECT reason code (props {props:?}): expected {reason:#04x}, got {got:#04x}"
                );
            }
            Next::Packet(f, b) => panic!(
                "expected DISCONNECT {reason:#04x}, got {} ({f:#04x}) {b:02x?}",
                kind::name(f)
            ),
            Next::Closed => {
                panic!("expected DISCONNECT {reason:#04x}, the broker closed without it")
            }
            Next::Timeout => {
                panic!("expected DISCONNECT {reason:#04x}, nothing within {RECV_TIMEOUT:?}")
            }
        }
        self.expect_closed().await;
    }

    /// MQTT 5 error close where the spec leaves the DISCONNECT optional: either
    /// a DISCONNECT with a reason code >= 0x80 followed by the close, or a
    /// plain close. Returns the reason code if one came.
    pub async fn expect_error_close(&mut self) -> Option<u8> {
        match self.next(RECV_TIMEOUT).await {
            Next::Closed => None,
            Next::Packet(0xE0, b) => {
                let (reason, _) = parse_disconnect(&b);
                assert!(
                    reason >= 0x80,
                    "error DISCONNECT carries success code {reason:#04x}"
                );
                self.expect_closed().await;
                Some(reason)
            }
            Next::Packet(f, b) => panic!(
                "expected the broker to close, got {} ({f:#04x}) {b:02x?}",
                kind::name(f)
            ),
            Next::Timeout => panic!("broker did not close the connection within {RECV_TIMEOUT:?}"),
        }
    }

    /// CONNACK with this refusal code (and Session Present 0 [MQTT-3.2.2-4]),
    /// then the close.
    pub async fn expect_refused(&mut self, connect: &Connect, code: u8) {
        let ack = self.handshake(connect).await;
        assert_eq!(
            ack.code, code,
            "CONNACK code: expected {code:#04x}, got {:#04x} ({ack:?})",
            ack.code
        );
        assert!(
            !ack.session_present,
            "refusing CONNACK must have Session Present 0 [MQTT-3.2.2-4]"
        );
        self.expect_closed().await;
    }

    /// Sends a CONNECT the broker must refuse: either a CONNACK with a
    /// failure code and then the close, or a plain close. Returns the code.
    pub async fn expect_connect_refused_or_closed(&mut self, connect: &Connect) -> Option<u8> {
        self.v5 = connect.is_v5();
        self.send(&connect.bytes()).await;
        match self.next(RECV_TIMEOUT).await {
            Next::Closed => None,
            Next::Packet(f, b) if f == 0x20 => {
                let ack = parse_connack(f, &b, b.len() > 2);
                assert_ne!(ack.code, 0, "CONNECT must be refused, it was accepted");
                self.expect_closed().await;
                Some(ack.code)
            }
            Next::Packet(f, b) => panic!(
                "expected a refusal, got {} ({f:#04x}) {b:02x?}",
                kind::name(f)
            ),
            Next::Timeout => panic!("broker neither refused nor closed within {RECV_TIMEOUT:?}"),
        }
    }

    /// Subscribes with one filter (3.1.1: requested QoS; 5.0: options byte)
    /// and returns the SUBACK return codes.
    pub async fn subscribe(&mut self, filter: &str, options: u8) -> Vec<u8> {
        self.subscribe_with(&[(filter, options)], Props::new())
            .await
    }

    /// Subscribes with several filters and (5.0) properties.
    pub async fn subscribe_with(&mut self, filters: &[(&str, u8)], props: Props) -> Vec<u8> {
        let id = self.next_packet_id();
        let bytes = if self.v5 {
            packets::subscribe_v5(id, filters, &props)
        } else {
            packets::subscribe(id, filters)
        };
        self.send(&bytes).await;
        let (_, body) = self.recv_kind(kind::SUBACK).await;
        let (got, codes) = parse_suback(&body, self.v5);
        assert_eq!(got, id, "SUBACK packet id [MQTT-3.8.4-2]");
        codes
    }

    /// Unsubscribes one filter and returns the UNSUBACK reason codes (empty in 3.1.1).
    pub async fn unsubscribe(&mut self, filter: &str) -> Vec<u8> {
        let id = self.next_packet_id();
        let bytes = if self.v5 {
            packets::unsubscribe_v5(id, &[filter])
        } else {
            packets::unsubscribe(id, &[filter])
        };
        self.send(&bytes).await;
        let (_, body) = self.recv_kind(kind::UNSUBACK).await;
        let (got, codes) = parse_suback(&body, self.v5);
        assert_eq!(got, id, "UNSUBACK packet id [MQTT-3.10.4-4]");
        codes
    }

    /// Publishes and completes the QoS flow; returns the PUBACK/PUBREC reason code.
    pub async fn publish(&mut self, p: Publish) -> u8 {
        let mut p = p;
        if self.v5 && p.props.is_none() {
            p = p.v5();
        }
        if p.qos > 0 && p.packet_id == 0 {
            p.packet_id = self.next_packet_id();
        }
        self.send(&p.bytes()).await;
        match p.qos {
            1 => {
                let (_, body) = self.recv_kind(kind::PUBACK).await;
                let (id, reason, _) = parse_ack(&body);
                assert_eq!(id, p.packet_id, "PUBACK packet id");
                reason
            }
            2 => {
                let (_, body) = self.recv_kind(kind::PUBREC).await;
                let (id, reason, _) = parse_ack(&body);
                assert_eq!(id, p.packet_id, "PUBREC packet id");
                if reason >= 0x80 {
                    return reason;
                }
                self.send(&packets::pubrel(p.packet_id)).await;
                let (_, body) = self.recv_kind(kind::PUBCOMP).await;
                let (id, comp, _) = parse_ack(&body);
                assert_eq!((id, comp), (p.packet_id, 0), "PUBCOMP");
                reason
            }
            _ => 0,
        }
    }

    /// PINGREQ, then the next packet must be PINGRESP [MQTT-3.12.4-1].
    pub async fn ping(&mut self) {
        self.send(&packets::pingreq()).await;
        let (f, b) = self.recv_packet().await;
        assert_eq!((f, b.len()), (0xD0, 0), "expected PINGRESP [MQTT-3.12.4-1]");
    }

    /// Sends a normal DISCONNECT (reason 0x00) and closes the socket, as a
    /// client must [MQTT-3.14.4-1].
    pub async fn disconnect(mut self) {
        self.send(&packets::disconnect()).await;
        self.stream.shutdown().await.ok();
        // Wait for the broker's side to go away so the DISCONNECT is processed
        // before the test goes on.
        let _ = self.next(RECV_TIMEOUT).await;
    }

    /// Half-closes the socket (FIN), e.g. in the middle of a packet.
    pub async fn shutdown_write(&mut self) {
        self.stream.shutdown().await.ok();
    }

    /// Drops the TCP connection without DISCONNECT (an abnormal close).
    pub fn drop_connection(self) {
        drop(self.stream);
    }
}
