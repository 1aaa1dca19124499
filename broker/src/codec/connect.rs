//! CONNECT (MQTT 5 3.1, 3.1.1 3.1) and CONNACK (MQTT 5 3.2, 3.1.1 3.2) bodies, with their
//! properties and the will.
//!
//! Knows the wire layout and the structural rules only; whether a client id, credentials
//! or a will topic are acceptable is the session's business.

use super::error::{EncodeError, Error};
use super::packet::{
    ConnAck, ConnAckProperties, Connect, ConnectProperties, LastWill, WillProperties,
};
use super::primitives::{Reader, Sink, put_binary, put_string};
use super::properties::{put_properties, read_properties};
use crate::types::{ProtocolVersion, QoS, ReasonCode};

const FLAG_RESERVED: u8 = 0x01;
const FLAG_CLEAN_START: u8 = 0x02;
const FLAG_WILL: u8 = 0x04;
const FLAG_WILL_QOS_SHIFT: u8 = 3;
const FLAG_WILL_RETAIN: u8 = 0x20;
const FLAG_PASSWORD: u8 = 0x40;
const FLAG_USERNAME: u8 = 0x80;

/// Decodes the CONNECT body; the protocol version comes from the packet itself.
pub(crate) fn decode_connect(mut r: Reader) -> Result<Connect, Error> {
    let protocol = decode_protocol(&mut r)?;
    let flags = r.u8()?;
    check_connect_flags(flags, protocol)?;
    let keep_alive = r.u16()?;
    let properties = if protocol.is_v5() {
        read_properties(&mut r)?
    } else {
        ConnectProperties::default()
    };
    let client_id = r.string()?;
    let will = if flags & FLAG_WILL != 0 {
        Some(decode_will(&mut r, protocol, flags)?)
    } else {
        None
    };
    let username = (flags & FLAG_USERNAME != 0)
        .then(|| r.string())
        .transpose()?;
    let password = (flags & FLAG_PASSWORD != 0)
        .then(|| r.binary())
        .transpose()?;
    r.finish()?;
    Ok(Connect {
        protocol,
        clean_start: flags & FLAG_CLEAN_START != 0,
        keep_alive,
        client_id,
        will,
        username,
        password,
        properties,
    })
}

/// Protocol name and level: `MQTT` 4 or 5, `MQIsdp` 3.
fn decode_protocol(r: &mut Reader) -> Result<ProtocolVersion, Error> {
    let name = r.binary()?;
    let level = r.u8()?;
    match (&name[..], level) {
        (b"MQTT", 4) => Ok(ProtocolVersion::V3_1_1),
        (b"MQTT", 5) => Ok(ProtocolVersion::V5),
        (b"MQIsdp", 3) => Ok(ProtocolVersion::V3_1),
        (b"MQTT" | b"MQIsdp", _) => Err(Error::UnsupportedProtocolVersion(level)),
        _ => Err(Error::InvalidProtocolName),
    }
}

fn check_connect_flags(flags: u8, protocol: ProtocolVersion) -> Result<(), Error> {
    if flags & FLAG_RESERVED != 0 {
        return Err(Error::ConnectReservedFlag);
    }
    let will_qos = (flags >> FLAG_WILL_QOS_SHIFT) & 0x03;
    if flags & FLAG_WILL == 0 && (will_qos != 0 || flags & FLAG_WILL_RETAIN != 0) {
        return Err(Error::WillFlagsWithoutWill);
    }
    if will_qos == 3 {
        return Err(Error::WillQos3);
    }
    if !protocol.is_v5() && flags & FLAG_PASSWORD != 0 && flags & FLAG_USERNAME == 0 {
        return Err(Error::PasswordWithoutUsername);
    }
    Ok(())
}

fn decode_will(r: &mut Reader, protocol: ProtocolVersion, flags: u8) -> Result<LastWill, Error> {
    let properties = if protocol.is_v5() {
        read_properties(r)?
    } else {
        WillProperties::default()
    };
    let topic = r.string()?;
    let payload = r.binary()?;
    let qos = QoS::from_u8((flags >> FLAG_WILL_QOS_SHIFT) & 0x03).ok_or(Error::WillQos3)?;
    Ok(LastWill {
        topic,
        payload,
        qos,
        retain: flags & FLAG_WILL_RETAIN != 0,
        properties,
    })
}

/// Writes the CONNECT body in the format of `connect.protocol`.
pub(crate) fn encode_connect<S: Sink>(c: &Connect, s: &mut S) -> Result<(), EncodeError> {
    let v5 = c.protocol.is_v5();
    put_string(
        s,
        match c.protocol {
            ProtocolVersion::V3_1 => "MQIsdp",
            _ => "MQTT",
        },
    )?;
    s.put_u8(c.protocol.level());
    s.put_u8(connect_flags(c));
    s.put_u16(c.keep_alive);
    if v5 {
        put_properties(s, &c.properties)?;
    }
    put_string(s, &c.client_id)?;
    if let Some(will) = &c.will {
        if v5 {
            put_properties(s, &will.properties)?;
        }
        put_string(s, &will.topic)?;
        put_binary(s, &will.payload)?;
    }
    if let Some(username) = &c.username {
        put_string(s, username)?;
    }
    if let Some(password) = &c.password {
        put_binary(s, password)?;
    }
    Ok(())
}

fn connect_flags(c: &Connect) -> u8 {
    let mut flags = 0;
    if c.clean_start {
        flags |= FLAG_CLEAN_START;
    }
    if let Some(will) = &c.will {
        flags |= FLAG_WILL | (will.qos.as_u8() << FLAG_WILL_QOS_SHIFT);
        if will.retain {
            flags |= FLAG_WILL_RETAIN;
        }
    }
    if c.username.is_some() {
        flags |= FLAG_USERNAME;
    }
    if c.password.is_some() {
        flags |= FLAG_PASSWORD;
    }
    flags
}

/// CONNACK reason codes (MQTT 5 3.2.2.2).
pub(crate) const CONNACK_CODES: &[u8] = &[
    0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A, 0x8C, 0x90, 0x95, 0x97,
    0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9F,
];

/// 3.x return codes 0..=5, as MQTT 5 reason codes (3.1.1 table 3.1).
const V3_RETURN_CODES: [ReasonCode; 6] = [
    ReasonCode::SUCCESS,
    ReasonCode::UNSUPPORTED_PROTOCOL_VERSION,
    ReasonCode::CLIENT_IDENTIFIER_NOT_VALID,
    ReasonCode::SERVER_UNAVAILABLE,
    ReasonCode::BAD_USER_NAME_OR_PASSWORD,
    ReasonCode::NOT_AUTHORIZED,
];

/// The 3.x return code for an MQTT 5 reason code.
fn v3_return_code(code: ReasonCode) -> u8 {
    match code.0 {
        0x00 => 0,
        0x84 => 1,
        0x85 => 2,
        0x86 => 4,
        0x87 | 0x8C => 5,
        _ => 3,
    }
}

/// Decodes the CONNACK body; 3.x return codes become MQTT 5 reason codes.
pub(crate) fn decode_connack(mut r: Reader, version: ProtocolVersion) -> Result<ConnAck, Error> {
    let flags = r.u8()?;
    if flags & 0xFE != 0 {
        return Err(Error::ConnAckReservedFlags);
    }
    let code = r.u8()?;
    let invalid = Error::InvalidReasonCode {
        packet: "connack",
        code,
    };
    let (reason_code, properties) = if version.is_v5() {
        if !CONNACK_CODES.contains(&code) {
            return Err(invalid);
        }
        (ReasonCode(code), read_properties(&mut r)?)
    } else {
        let reason = V3_RETURN_CODES.get(usize::from(code)).ok_or(invalid)?;
        (*reason, ConnAckProperties::default())
    };
    r.finish()?;
    Ok(ConnAck {
        session_present: flags & 0x01 != 0,
        reason_code,
        properties,
    })
}

/// Writes the CONNACK body. Session Present is forced to 0 with a failure code
/// [MQTT-3.2.2-6] (3.1.1: [MQTT-3.2.2-4]) and always for 3.1, which has no such flag.
pub(crate) fn encode_connack<S: Sink>(
    c: &ConnAck,
    version: ProtocolVersion,
    s: &mut S,
) -> Result<(), EncodeError> {
    let present = c.session_present && c.reason_code == ReasonCode::SUCCESS;
    s.put_u8(u8::from(present && version != ProtocolVersion::V3_1));
    if version.is_v5() {
        s.put_u8(c.reason_code.0);
        put_properties(s, &c.properties)
    } else {
        s.put_u8(v3_return_code(c.reason_code));
        Ok(())
    }
}

#[cfg(test)]
#[path = "connect_tests.rs"]
mod tests;
