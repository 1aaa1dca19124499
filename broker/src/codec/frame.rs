//! Framing: the fixed header (MQTT 5 2.1, 3.1.1 2.2), the size limit checked before the
//! body is buffered, and the dispatch of each packet type to its module.
//!
//! Holds no per-connection state: the protocol version and the size limit are arguments.

use bytes::{Buf, BytesMut};

use super::error::{EncodeError, Error};
use super::packet::{Packet, Publish};
use super::primitives::{
    Counter, MAX_VARIABLE_INTEGER, Reader, Sink, VarInt, put_variable_integer,
    read_variable_integer, variable_integer_len,
};
use super::{ack, connect, disconnect, publish, subscribe};
use crate::types::ProtocolVersion;

const CONNECT: u8 = 1;
const CONNACK: u8 = 2;
const PUBLISH: u8 = 3;
const PUBACK: u8 = 4;
const PUBREC: u8 = 5;
const PUBREL: u8 = 6;
const PUBCOMP: u8 = 7;
const SUBSCRIBE: u8 = 8;
const SUBACK: u8 = 9;
const UNSUBSCRIBE: u8 = 10;
const UNSUBACK: u8 = 11;
const PINGREQ: u8 = 12;
const PINGRESP: u8 = 13;
const DISCONNECT: u8 = 14;
const AUTH: u8 = 15;

/// Checks the first byte as soon as it arrives: packet type allowed for the version and
/// reserved flags as in MQTT 5 table 2-2 / 3.1.1 table 2.2.
fn check_first_byte(byte: u8, version: Option<ProtocolVersion>) -> Result<(), Error> {
    let (packet_type, flags) = (byte >> 4, byte & 0x0F);
    let Some(version) = version else {
        if packet_type != CONNECT {
            return Err(Error::FirstPacketNotConnect(packet_type));
        }
        return check_flags(packet_type, flags);
    };
    match packet_type {
        0 => Err(Error::ReservedPacketType(0)),
        AUTH if !version.is_v5() => Err(Error::ReservedPacketType(AUTH)),
        PUBLISH => publish::parse_flags(flags).map(|_| ()),
        _ => check_flags(packet_type, flags),
    }
}

fn check_flags(packet_type: u8, flags: u8) -> Result<(), Error> {
    let expected = match packet_type {
        PUBREL | SUBSCRIBE | UNSUBSCRIBE => 0b0010,
        _ => 0,
    };
    if flags == expected {
        Ok(())
    } else {
        Err(Error::InvalidFixedHeaderFlags { packet_type, flags })
    }
}

/// Decodes one packet from the front of `src`; see [`crate::codec::Codec`].
///
/// Returns `Ok(None)` while the frame is incomplete, after reserving room for all of it.
/// A frame larger than `max_incoming_bytes` (fixed header included) is refused as soon as
/// its remaining length is known, before its body is buffered. With `version` `None`
/// only CONNECT is accepted [MQTT-3.1.0-1]. Exactly one frame is consumed per packet.
pub fn decode(
    src: &mut BytesMut,
    version: Option<ProtocolVersion>,
    max_incoming_bytes: u32,
) -> Result<Option<Packet>, Error> {
    let Some(&first) = src.first() else {
        return Ok(None);
    };
    check_first_byte(first, version)?;
    let (remaining, length_bytes) = match read_variable_integer(&src[1..])? {
        VarInt::Complete(value, len) => (value as usize, len),
        VarInt::Incomplete => return Ok(None),
    };
    let size = 1 + length_bytes + remaining;
    if size > max_incoming_bytes as usize {
        return Err(Error::PacketTooLarge {
            size,
            max: max_incoming_bytes,
        });
    }
    if src.len() < size {
        src.reserve(size - src.len());
        return Ok(None);
    }
    let mut frame = src.split_to(size).freeze();
    frame.advance(1 + length_bytes);
    decode_body(first, Reader::new(frame), version).map(Some)
}

fn decode_body(first: u8, r: Reader, version: Option<ProtocolVersion>) -> Result<Packet, Error> {
    let packet_type = first >> 4;
    if packet_type == CONNECT {
        return connect::decode_connect(r).map(|c| Packet::Connect(Box::new(c)));
    }
    let v = version.ok_or(Error::FirstPacketNotConnect(packet_type))?;
    Ok(match packet_type {
        CONNACK => Packet::ConnAck(connect::decode_connack(r, v)?),
        PUBLISH => Packet::Publish(publish::decode(first & 0x0F, r, v)?),
        PUBACK => Packet::PubAck(ack::decode(ack::AckKind::Ack, r, v)?),
        PUBREC => Packet::PubRec(ack::decode(ack::AckKind::Rec, r, v)?),
        PUBREL => Packet::PubRel(ack::decode(ack::AckKind::Rel, r, v)?),
        PUBCOMP => Packet::PubComp(ack::decode(ack::AckKind::Comp, r, v)?),
        SUBSCRIBE => Packet::Subscribe(subscribe::decode_subscribe(r, v)?),
        SUBACK => Packet::SubAck(subscribe::decode_suback(r, v)?),
        UNSUBSCRIBE => Packet::Unsubscribe(subscribe::decode_unsubscribe(r, v)?),
        UNSUBACK => Packet::UnsubAck(subscribe::decode_unsuback(r, v)?),
        PINGREQ => r.finish().map(|()| Packet::PingReq)?,
        PINGRESP => r.finish().map(|()| Packet::PingResp)?,
        DISCONNECT => Packet::Disconnect(disconnect::decode_disconnect(r, v)?),
        AUTH => Packet::Auth(disconnect::decode_auth(r)?),
        other => return Err(Error::ReservedPacketType(other)),
    })
}

/// The first byte of the fixed header.
fn first_byte(packet: &Packet) -> u8 {
    let (packet_type, flags) = match packet {
        Packet::Connect(_) => (CONNECT, 0),
        Packet::ConnAck(_) => (CONNACK, 0),
        Packet::Publish(p) => (PUBLISH, publish::flags(p)),
        Packet::PubAck(_) => (PUBACK, 0),
        Packet::PubRec(_) => (PUBREC, 0),
        Packet::PubRel(_) => (PUBREL, 0b0010),
        Packet::PubComp(_) => (PUBCOMP, 0),
        Packet::Subscribe(_) => (SUBSCRIBE, 0b0010),
        Packet::SubAck(_) => (SUBACK, 0),
        Packet::Unsubscribe(_) => (UNSUBSCRIBE, 0b0010),
        Packet::UnsubAck(_) => (UNSUBACK, 0),
        Packet::PingReq => (PINGREQ, 0),
        Packet::PingResp => (PINGRESP, 0),
        Packet::Disconnect(_) => (DISCONNECT, 0),
        Packet::Auth(_) => (AUTH, 0),
    };
    (packet_type << 4) | flags
}

/// Writes everything after the fixed header. CONNECT uses its own `protocol`.
fn encode_body<S: Sink>(packet: &Packet, v: ProtocolVersion, s: &mut S) -> Result<(), EncodeError> {
    match packet {
        Packet::Connect(p) => connect::encode_connect(p, s),
        Packet::ConnAck(p) => connect::encode_connack(p, v, s),
        Packet::Publish(p) => publish::encode(p, v, s),
        Packet::PubAck(p) | Packet::PubRec(p) | Packet::PubRel(p) | Packet::PubComp(p) => {
            ack::encode(p, v, s)
        }
        Packet::Subscribe(p) => subscribe::encode_subscribe(p, v, s),
        Packet::SubAck(p) => subscribe::encode_suback(p, v, s),
        Packet::Unsubscribe(p) => subscribe::encode_unsubscribe(p, v, s),
        Packet::UnsubAck(p) => subscribe::encode_unsuback(p, v, s),
        Packet::PingReq | Packet::PingResp => Ok(()),
        Packet::Disconnect(p) => disconnect::encode_disconnect(p, v, s),
        Packet::Auth(p) => disconnect::encode_auth(p, v, s),
    }
}

/// Appends `packet` to `dst` in the wire format of `version`, with the shortest remaining
/// length. Nothing is written when an error is returned.
pub fn encode(
    packet: &Packet,
    version: ProtocolVersion,
    dst: &mut BytesMut,
) -> Result<(), EncodeError> {
    let mut counter = Counter::default();
    encode_body(packet, version, &mut counter)?;
    let remaining = counter.0;
    if remaining > MAX_VARIABLE_INTEGER {
        return Err(EncodeError::VariableIntegerTooLarge(remaining));
    }
    dst.reserve(1 + variable_integer_len(remaining) + remaining);
    Sink::put_u8(dst, first_byte(packet));
    put_variable_integer(dst, remaining)?;
    encode_body(packet, version, dst)
}

/// Appends a PUBLISH made of `head`, `topic` and `payload`: what [`encode`] writes for
/// `head` with that topic and payload (its own are not used).
///
/// For deliveries: the subscribers of a message share its topic and payload (slices of
/// the publisher's read buffer), and a `Publish` holding them clones and drops their
/// reference count per delivery, an atomic that every worker thread writes
/// (`shared_v_drop` was 10% of the broker's CPU in fan-out of 1 KiB QoS 0 messages to
/// 50 subscribers).
pub fn encode_publish(
    head: &Publish,
    topic: &str,
    payload: &[u8],
    version: ProtocolVersion,
    dst: &mut BytesMut,
) -> Result<(), EncodeError> {
    let remaining = checked_publish_remaining(head, topic, payload.len(), version)?;
    dst.reserve(1 + variable_integer_len(remaining) + remaining);
    put_publish_head(head, topic, remaining, version, dst)?;
    dst.extend_from_slice(payload);
    Ok(())
}

/// What [`encode_publish`] writes ahead of the payload, for a payload of `payload_len`
/// bytes that the caller sends right after it: a large payload is written from the
/// message's own buffer, not copied (see `connection::write_queue`). Nothing is
/// written when an error is returned.
pub fn encode_publish_head(
    head: &Publish,
    topic: &str,
    payload_len: usize,
    version: ProtocolVersion,
    dst: &mut BytesMut,
) -> Result<(), EncodeError> {
    let remaining = checked_publish_remaining(head, topic, payload_len, version)?;
    dst.reserve(1 + variable_integer_len(remaining) + remaining - payload_len);
    put_publish_head(head, topic, remaining, version, dst)
}

/// A PUBLISH's remaining length, if a variable byte integer can hold it.
fn checked_publish_remaining(
    head: &Publish,
    topic: &str,
    payload_len: usize,
    version: ProtocolVersion,
) -> Result<usize, EncodeError> {
    let remaining = publish_remaining(head, topic, payload_len, version)?;
    if remaining > MAX_VARIABLE_INTEGER {
        return Err(EncodeError::VariableIntegerTooLarge(remaining));
    }
    Ok(remaining)
}

/// A PUBLISH up to its payload, `remaining` its remaining length.
fn put_publish_head(
    head: &Publish,
    topic: &str,
    remaining: usize,
    version: ProtocolVersion,
    dst: &mut BytesMut,
) -> Result<(), EncodeError> {
    Sink::put_u8(dst, (PUBLISH << 4) | publish::flags(head));
    put_variable_integer(dst, remaining)?;
    publish::encode_parts(head, topic, &[], version, dst)
}

/// The size [`encode_publish`] writes for `head`, `topic` and a payload of
/// `payload_len` bytes, fixed header included.
pub fn encoded_publish_len(
    head: &Publish,
    topic: &str,
    payload_len: usize,
    version: ProtocolVersion,
) -> usize {
    // An unencodable packet has no wire size; the count so far is returned.
    let remaining = publish_remaining(head, topic, payload_len, version).unwrap_or_default();
    1 + variable_integer_len(remaining) + remaining
}

/// The remaining length of a PUBLISH: everything after the fixed header.
fn publish_remaining(
    head: &Publish,
    topic: &str,
    payload_len: usize,
    version: ProtocolVersion,
) -> Result<usize, EncodeError> {
    let mut counter = Counter::default();
    publish::encode_parts(head, topic, &[], version, &mut counter)?;
    Ok(counter.0 + payload_len)
}

/// The size `packet` takes on the wire in `version`, fixed header included, without
/// encoding it. Exact for every packet that [`encode`] accepts.
pub fn encoded_len(packet: &Packet, version: ProtocolVersion) -> usize {
    let mut counter = Counter::default();
    // An unencodable packet has no wire size; the count so far is returned.
    let _ = encode_body(packet, version, &mut counter);
    1 + variable_integer_len(counter.0) + counter.0
}

#[cfg(test)]
#[path = "frame_tests.rs"]
mod tests;
