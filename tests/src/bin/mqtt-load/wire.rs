//! MQTT 3.1.1 packets built and parsed by hand, from the specification, so that the load
//! tool measures any broker without sharing code with Cauldron. Also the 16-byte stamp
//! that every load payload starts with. No sockets beyond reading one frame.

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

/// Errors of the wire layer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The socket failed or closed.
    #[error("socket: {0}")]
    Io(#[from] std::io::Error),
    /// [MQTT-2.2.3] a remaining length longer than four bytes.
    #[error("[MQTT-2.2.3] malformed remaining length")]
    RemainingLength,
    /// A packet too short for what its type needs.
    #[error("truncated packet of type {0:#x}")]
    Truncated(u8),
}

/// Packet type nibble (first byte >> 4) of CONNACK.
pub const CONNACK: u8 = 2;
/// Packet type nibble of PUBLISH.
pub const PUBLISH: u8 = 3;
/// Packet type nibble of PUBACK.
pub const PUBACK: u8 = 4;
/// Packet type nibble of PUBREC.
pub const PUBREC: u8 = 5;
/// Packet type nibble of PUBREL.
pub const PUBREL: u8 = 6;
/// Packet type nibble of PUBCOMP.
pub const PUBCOMP: u8 = 7;
/// Packet type nibble of SUBACK.
pub const SUBACK: u8 = 9;

/// Bytes asked of the socket per read.
const READ_CHUNK: usize = 64 * 1024;

/// Bytes at the start of every load payload: sent-at nanos, publisher, sequence.
pub const STAMP_LEN: usize = 16;

/// Appends the variable-length Remaining Length (MQTT 3.1.1 §2.2.3).
pub fn put_remaining_length(mut n: usize, out: &mut Vec<u8>) {
    loop {
        let mut byte = (n % 128) as u8;
        n /= 128;
        if n > 0 {
            byte |= 0x80;
        }
        out.push(byte);
        if n == 0 {
            break;
        }
    }
}

fn put_str(s: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&(s.len() as u16).to_be_bytes());
    out.extend_from_slice(s);
}

/// What a CONNECT carries besides the protocol name and level.
#[derive(Debug, Clone, Default)]
pub struct ConnectOptions {
    /// Client identifier.
    pub client_id: String,
    /// Clean Session flag (false: a durable session).
    pub clean_session: bool,
    /// Keep alive in seconds.
    pub keep_alive_secs: u16,
    /// Username, if any.
    pub username: Option<String>,
    /// Password, if any (sent only with a username, [MQTT-3.1.2-22]).
    pub password: Option<String>,
}

/// A CONNECT for MQTT 3.1.1 (§3.1).
pub fn connect(o: &ConnectOptions) -> Vec<u8> {
    let mut flags = 0u8;
    if o.clean_session {
        flags |= 0x02;
    }
    let password = o.password.as_ref().filter(|_| o.username.is_some());
    if o.username.is_some() {
        flags |= 0x80;
    }
    if password.is_some() {
        flags |= 0x40;
    }
    let mut body = vec![0, 4, b'M', b'Q', b'T', b'T', 4, flags];
    body.extend_from_slice(&o.keep_alive_secs.to_be_bytes());
    put_str(o.client_id.as_bytes(), &mut body);
    if let Some(u) = &o.username {
        put_str(u.as_bytes(), &mut body);
    }
    if let Some(p) = password {
        put_str(p.as_bytes(), &mut body);
    }
    frame(0x10, &body)
}

fn frame(first: u8, body: &[u8]) -> Vec<u8> {
    let mut p = vec![first];
    put_remaining_length(body.len(), &mut p);
    p.extend_from_slice(body);
    p
}

/// Appends a PUBLISH (§3.3) to `out`; `packet_id` is ignored at QoS 0.
pub fn put_publish(out: &mut Vec<u8>, topic: &str, qos: u8, packet_id: u16, payload: &[u8]) {
    out.push(0x30 | (qos << 1));
    let id_len = if qos > 0 { 2 } else { 0 };
    put_remaining_length(2 + topic.len() + id_len + payload.len(), out);
    put_str(topic.as_bytes(), out);
    if qos > 0 {
        out.extend_from_slice(&packet_id.to_be_bytes());
    }
    out.extend_from_slice(payload);
}

/// A SUBSCRIBE (§3.8) with one filter; the fixed header flags are 0b0010 [MQTT-3.8.1-1].
pub fn subscribe(packet_id: u16, filter: &str, qos: u8) -> Vec<u8> {
    let mut body = packet_id.to_be_bytes().to_vec();
    put_str(filter.as_bytes(), &mut body);
    body.push(qos);
    frame(0x82, &body)
}

/// A two-byte acknowledgement: PUBACK, PUBREC, PUBREL (flags 0b0010) or PUBCOMP.
pub fn ack(kind: u8, packet_id: u16) -> [u8; 4] {
    let flags = if kind == PUBREL { 0x02 } else { 0 };
    let id = packet_id.to_be_bytes();
    [(kind << 4) | flags, 2, id[0], id[1]]
}

/// DISCONNECT (§3.14).
pub const DISCONNECT: [u8; 2] = [0xe0, 0];
/// PINGREQ (§3.12).
pub const PINGREQ: [u8; 2] = [0xc0, 0];

/// The header and body lengths of the frame at the front of `buf`, `Ok(None)` while
/// its fixed header is incomplete.
fn frame_len(buf: &[u8]) -> Result<Option<(usize, usize)>, Error> {
    let mut len = 0usize;
    for i in 0..4 {
        let Some(&b) = buf.get(1 + i) else {
            return Ok(None);
        };
        len += usize::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok(Some((2 + i, len)));
        }
    }
    Err(Error::RemainingLength)
}

/// Splits one complete frame off the front of `buf`: its first byte and its body.
/// `Ok(None)` while the frame is incomplete; nothing is consumed then.
pub fn take_frame(buf: &mut BytesMut) -> Result<Option<(u8, BytesMut)>, Error> {
    let Some((header, len)) = frame_len(buf)? else {
        return Ok(None);
    };
    if buf.len() < header + len {
        buf.reserve(header + len - buf.len());
        return Ok(None);
    }
    let first = buf[0];
    buf.advance(header);
    Ok(Some((first, buf.split_to(len))))
}

/// Reads whole frames from a socket. [`FrameReader::next`] is cancel safe: its only
/// await is `read_buf`, so it can sit in a `select!`.
pub struct FrameReader<R> {
    inner: R,
    buf: BytesMut,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// Wraps the read half of a connection.
    pub fn new(inner: R) -> Self {
        FrameReader {
            inner,
            buf: BytesMut::with_capacity(READ_CHUNK),
        }
    }

    /// Whether a complete frame is already buffered (no socket read needed).
    pub fn has_frame(&self) -> bool {
        matches!(frame_len(&self.buf), Ok(Some((h, l))) if self.buf.len() >= h + l)
    }

    /// The next frame; an error when the peer closed the connection.
    pub async fn next(&mut self) -> Result<(u8, BytesMut), Error> {
        loop {
            if let Some(frame) = take_frame(&mut self.buf)? {
                return Ok(frame);
            }
            self.buf.reserve(READ_CHUNK);
            if self.inner.read_buf(&mut self.buf).await? == 0 {
                return Err(Error::Io(std::io::ErrorKind::UnexpectedEof.into()));
            }
        }
    }
}

/// The packet identifier at the start of an acknowledgement's body.
pub fn ack_id(first: u8, body: &[u8]) -> Result<u16, Error> {
    match body {
        [a, b, ..] => Ok(u16::from_be_bytes([*a, *b])),
        _ => Err(Error::Truncated(first >> 4)),
    }
}

/// The parts of a received PUBLISH the load tool needs.
#[derive(Debug, PartialEq, Eq)]
pub struct PublishView<'a> {
    /// Delivered QoS.
    pub qos: u8,
    /// Packet identifier (0 at QoS 0).
    pub packet_id: u16,
    /// Topic name bytes.
    pub topic: &'a [u8],
    /// Application message.
    pub payload: &'a [u8],
}

/// Splits a PUBLISH body (first byte given separately).
pub fn parse_publish(first: u8, body: &[u8]) -> Result<PublishView<'_>, Error> {
    let qos = (first >> 1) & 3;
    let short = || Error::Truncated(PUBLISH);
    let tlen = usize::from(u16::from_be_bytes([
        *body.first().ok_or_else(short)?,
        *body.get(1).ok_or_else(short)?,
    ]));
    let topic = body.get(2..2 + tlen).ok_or_else(short)?;
    let mut at = 2 + tlen;
    let mut packet_id = 0;
    if qos > 0 {
        packet_id = ack_id(first, body.get(at..).ok_or_else(short)?)?;
        at += 2;
    }
    let payload = body.get(at..).ok_or_else(short)?;
    Ok(PublishView {
        qos,
        packet_id,
        topic,
        payload,
    })
}

/// The stamp at the start of a load payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// Nanoseconds since the process's common time base when the message was written.
    pub sent_nanos: u64,
    /// Index of the publisher.
    pub publisher: u32,
    /// Sequence number within that publisher, from 0.
    pub seq: u32,
}

impl Stamp {
    /// Writes the stamp into the first [`STAMP_LEN`] bytes of `payload` (if it is long enough).
    pub fn write(&self, payload: &mut [u8]) {
        if let Some(head) = payload.get_mut(..STAMP_LEN) {
            head[..8].copy_from_slice(&self.sent_nanos.to_be_bytes());
            head[8..12].copy_from_slice(&self.publisher.to_be_bytes());
            head[12..16].copy_from_slice(&self.seq.to_be_bytes());
        }
    }

    /// Reads a stamp back; `None` for a payload shorter than [`STAMP_LEN`].
    pub fn read(payload: &[u8]) -> Option<Stamp> {
        let head: &[u8; STAMP_LEN] = payload.get(..STAMP_LEN)?.try_into().ok()?;
        let (t, rest) = head.split_at(8);
        let (p, s) = rest.split_at(4);
        Some(Stamp {
            sent_nanos: u64::from_be_bytes(t.try_into().ok()?),
            publisher: u32::from_be_bytes(p.try_into().ok()?),
            seq: u32::from_be_bytes(s.try_into().ok()?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rl(n: usize) -> Vec<u8> {
        let mut v = Vec::new();
        put_remaining_length(n, &mut v);
        v
    }

    #[test]
    fn remaining_length_matches_the_spec_table_boundaries() {
        // MQTT 3.1.1 Table 2.4: the smallest and largest value of each length.
        assert_eq!(rl(0), [0x00]);
        assert_eq!(rl(127), [0x7f]);
        assert_eq!(rl(128), [0x80, 0x01]);
        assert_eq!(rl(16_383), [0xff, 0x7f]);
        assert_eq!(rl(16_384), [0x80, 0x80, 0x01]);
        assert_eq!(rl(2_097_151), [0xff, 0xff, 0x7f]);
        assert_eq!(rl(2_097_152), [0x80, 0x80, 0x80, 0x01]);
        assert_eq!(rl(268_435_455), [0xff, 0xff, 0xff, 0x7f]);
    }

    #[test]
    fn connect_with_credentials_and_durable_session_golden_bytes() {
        let p = connect(&ConnectOptions {
            client_id: "c1".into(),
            clean_session: false,
            keep_alive_secs: 60,
            username: Some("u".into()),
            password: Some("pw".into()),
        });
        #[rustfmt::skip]
        let want = [
            0x10, 21,                               // CONNECT, remaining length
            0, 4, b'M', b'Q', b'T', b'T', 4,        // protocol name, level 4
            0xc0,                                   // username + password, clean session 0
            0, 60,                                  // keep alive
            0, 2, b'c', b'1',                       // client id
            0, 1, b'u',                             // username
            0, 2, b'p', b'w',                       // password
        ];
        assert_eq!(p, want);
    }

    #[test]
    fn connect_never_sends_a_password_without_a_username() {
        let p = connect(&ConnectOptions {
            client_id: "c".into(),
            clean_session: true,
            keep_alive_secs: 0,
            username: None,
            password: Some("pw".into()),
        });
        assert_eq!(p[9], 0x02, "only the clean session flag");
        assert_eq!(p.len(), 2 + 10 + 3);
    }

    #[test]
    fn publish_qos1_golden_bytes_and_round_trip() {
        let mut p = Vec::new();
        put_publish(&mut p, "a/b", 1, 0x0102, b"hi");
        assert_eq!(p, [0x32, 9, 0, 3, b'a', b'/', b'b', 1, 2, b'h', b'i']);
        let v = parse_publish(p[0], &p[2..]).unwrap();
        assert_eq!(
            v,
            PublishView {
                qos: 1,
                packet_id: 0x0102,
                topic: b"a/b",
                payload: b"hi"
            }
        );
    }

    #[test]
    fn publish_qos0_has_no_packet_id() {
        let mut p = Vec::new();
        put_publish(&mut p, "t", 0, 7, b"x");
        assert_eq!(p, [0x30, 4, 0, 1, b't', b'x']);
        assert_eq!(parse_publish(p[0], &p[2..]).unwrap().packet_id, 0);
    }

    #[test]
    fn parse_publish_rejects_a_topic_longer_than_the_body() {
        assert!(matches!(
            parse_publish(0x30, &[0, 9, b'a']),
            Err(Error::Truncated(PUBLISH))
        ));
        assert!(parse_publish(0x32, &[0, 1, b'a', 0]).is_err(), "half an id");
    }

    #[test]
    fn subscribe_and_acks_golden_bytes() {
        assert_eq!(
            subscribe(1, "x/#", 2),
            [0x82, 8, 0, 1, 0, 3, b'x', b'/', b'#', 2]
        );
        assert_eq!(ack(PUBACK, 0x0a0b), [0x40, 2, 0x0a, 0x0b]);
        assert_eq!(ack(PUBREC, 1), [0x50, 2, 0, 1]);
        assert_eq!(ack(PUBREL, 1), [0x62, 2, 0, 1]);
        assert_eq!(ack(PUBCOMP, 1), [0x70, 2, 0, 1]);
    }

    #[test]
    fn take_frame_consumes_exactly_one_frame() {
        let mut buf = BytesMut::from(&[0x40, 2, 0, 5, 0x20, 2, 0, 0, 0xff][..]);
        let (first, body) = take_frame(&mut buf).unwrap().unwrap();
        assert_eq!((first, ack_id(first, &body).unwrap()), (0x40, 5));
        let (first, body) = take_frame(&mut buf).unwrap().unwrap();
        assert_eq!((first, &body[..]), (0x20, &[0u8, 0][..]));
        assert_eq!(&buf[..], [0xff], "the trailing byte is left");
        assert!(
            take_frame(&mut buf).unwrap().is_none(),
            "a lone first byte waits"
        );
        assert_eq!(&buf[..], [0xff], "and is not consumed");
    }

    #[test]
    fn take_frame_waits_for_a_split_length_and_body() {
        let mut whole = Vec::new();
        put_publish(&mut whole, "t", 0, 0, &[7u8; 200]); // remaining length takes 2 bytes
        for cut in 0..whole.len() {
            let mut buf = BytesMut::from(&whole[..cut]);
            assert!(take_frame(&mut buf).unwrap().is_none(), "cut at {cut}");
            assert_eq!(buf.len(), cut);
        }
        let mut buf = BytesMut::from(&whole[..]);
        let (first, body) = take_frame(&mut buf).unwrap().unwrap();
        assert_eq!(
            parse_publish(first, &body).unwrap().payload,
            &[7u8; 200][..]
        );
        assert!(buf.is_empty());
    }

    #[test]
    fn take_frame_rejects_a_five_byte_remaining_length() {
        let mut buf = BytesMut::from(&[0x30, 0x80, 0x80, 0x80, 0x80, 0x01][..]);
        assert!(matches!(take_frame(&mut buf), Err(Error::RemainingLength)));
    }

    #[tokio::test]
    async fn frame_reader_reads_frames_across_reads_then_reports_eof() {
        let (mut tx, rx) = tokio::io::duplex(64);
        let mut reader = FrameReader::new(rx);
        let writer = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            tx.write_all(&[0x90, 3, 0, 1]).await.unwrap();
            tx.write_all(&[0x01]).await.unwrap();
            tx.write_all(&ack(PUBACK, 9)).await.unwrap();
        });
        let (first, body) = reader.next().await.unwrap();
        assert_eq!((first >> 4, &body[..]), (SUBACK, &[0u8, 1, 1][..]));
        let (first, body) = reader.next().await.unwrap();
        assert_eq!((first >> 4, ack_id(first, &body).unwrap()), (PUBACK, 9));
        writer.await.unwrap();
        assert!(reader.next().await.is_err(), "closed");
    }

    #[test]
    fn stamp_round_trips_and_needs_sixteen_bytes() {
        let s = Stamp {
            sent_nanos: 0x0102_0304_0506_0708,
            publisher: 9,
            seq: 70_000,
        };
        let mut payload = vec![b'x'; 20];
        s.write(&mut payload);
        assert_eq!(&payload[..8], &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(&payload[16..], b"xxxx", "the rest is untouched");
        assert_eq!(Stamp::read(&payload), Some(s));
        assert_eq!(Stamp::read(&payload[..15]), None);
    }
}
