//! DISCONNECT (MQTT 5 3.14, 3.1.1 3.14) and AUTH (MQTT 5 3.15): an optional reason code
//! and optional properties; in 3.x DISCONNECT is empty and AUTH does not exist.
//!
//! Knows nothing about will publication or enhanced authentication flows.

use super::error::{EncodeError, Error};
use super::packet::{Auth, AuthProperties, Disconnect, DisconnectProperties};
use super::primitives::{Reader, Sink};
use super::properties::{
    DecodeProperties, EncodeProperties, Value, id, put_bin, put_four, put_properties, put_str,
    put_user_properties, read_properties, set_once,
};
use crate::types::{ProtocolVersion, ReasonCode};

/// DISCONNECT reason codes (MQTT 5 3.14.2.1).
pub(crate) const DISCONNECT_CODES: &[u8] = &[
    0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8D, 0x8E, 0x8F, 0x90, 0x93, 0x94, 0x95,
    0x96, 0x97, 0x98, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0x9F, 0xA0, 0xA1, 0xA2,
];
/// AUTH reason codes (MQTT 5 3.15.2.1).
pub(crate) const AUTH_CODES: &[u8] = &[0x00, 0x18, 0x19];

/// Reads the optional reason code and optional properties shared by DISCONNECT and AUTH:
/// an empty body means reason 0 without properties (MQTT 5 3.14.2.1, 3.15.2.1).
fn decode_reason_and_properties<P: DecodeProperties>(
    r: &mut Reader,
    valid: &[u8],
    packet: &'static str,
) -> Result<(ReasonCode, P), Error> {
    if r.remaining() == 0 {
        return Ok((ReasonCode::SUCCESS, P::default()));
    }
    let code = r.u8()?;
    if !valid.contains(&code) {
        return Err(Error::InvalidReasonCode { packet, code });
    }
    let properties = if r.remaining() > 0 {
        read_properties(r)?
    } else {
        P::default()
    };
    Ok((ReasonCode(code), properties))
}

/// Decodes the DISCONNECT body (empty in 3.x).
pub(crate) fn decode_disconnect(
    mut r: Reader,
    version: ProtocolVersion,
) -> Result<Disconnect, Error> {
    let mut packet = Disconnect::default();
    if version.is_v5() {
        (packet.reason_code, packet.properties) =
            decode_reason_and_properties(&mut r, DISCONNECT_CODES, "disconnect")?;
    }
    r.finish()?;
    Ok(packet)
}

/// Writes the DISCONNECT body in its shortest form (3.x: empty).
pub(crate) fn encode_disconnect<S: Sink>(
    p: &Disconnect,
    version: ProtocolVersion,
    s: &mut S,
) -> Result<(), EncodeError> {
    if !version.is_v5() {
        return Ok(());
    }
    let no_properties = p.properties == DisconnectProperties::default();
    match (p.reason_code, no_properties) {
        (ReasonCode::NORMAL_DISCONNECTION, true) => Ok(()),
        (code, true) => {
            s.put_u8(code.0);
            Ok(())
        }
        (code, false) => {
            s.put_u8(code.0);
            put_properties(s, &p.properties)
        }
    }
}

/// Decodes the AUTH body (the frame layer rejects AUTH outside MQTT 5).
pub(crate) fn decode_auth(mut r: Reader) -> Result<Auth, Error> {
    let (reason_code, properties) = decode_reason_and_properties(&mut r, AUTH_CODES, "auth")?;
    r.finish()?;
    Ok(Auth {
        reason_code,
        properties,
    })
}

/// Writes the AUTH body: empty for SUCCESS without properties, otherwise the reason code
/// and the properties.
pub(crate) fn encode_auth<S: Sink>(
    p: &Auth,
    version: ProtocolVersion,
    s: &mut S,
) -> Result<(), EncodeError> {
    if !version.is_v5() {
        return Err(EncodeError::NotInVersion {
            packet: "auth",
            version,
        });
    }
    if p.reason_code == ReasonCode::SUCCESS && p.properties == AuthProperties::default() {
        return Ok(());
    }
    s.put_u8(p.reason_code.0);
    put_properties(s, &p.properties)
}

impl DecodeProperties for DisconnectProperties {
    const PACKET: &'static str = "disconnect";
    fn accept(&mut self, id: u8, value: Value) -> Result<bool, Error> {
        use id::*;
        match (id, value) {
            (SESSION_EXPIRY_INTERVAL, Value::FourByte(v)) => {
                set_once(&mut self.session_expiry_interval, id, v)
            }
            (REASON_STRING, Value::String(v)) => set_once(&mut self.reason_string, id, v),
            (USER_PROPERTY, Value::Pair(k, v)) => {
                self.user_properties.push((k, v));
                Ok(true)
            }
            (SERVER_REFERENCE, Value::String(v)) => set_once(&mut self.server_reference, id, v),
            _ => Ok(false),
        }
    }
}

impl EncodeProperties for DisconnectProperties {
    fn write_to<S: Sink>(&self, s: &mut S) -> Result<(), EncodeError> {
        use id::*;
        put_four(s, SESSION_EXPIRY_INTERVAL, self.session_expiry_interval);
        put_str(s, REASON_STRING, self.reason_string.as_ref())?;
        put_user_properties(s, &self.user_properties)?;
        put_str(s, SERVER_REFERENCE, self.server_reference.as_ref())
    }
}

impl DecodeProperties for AuthProperties {
    const PACKET: &'static str = "auth";
    fn accept(&mut self, id: u8, value: Value) -> Result<bool, Error> {
        use id::*;
        match (id, value) {
            (AUTHENTICATION_METHOD, Value::String(v)) => {
                set_once(&mut self.authentication_method, id, v)
            }
            (AUTHENTICATION_DATA, Value::Binary(v)) => {
                set_once(&mut self.authentication_data, id, v)
            }
            (REASON_STRING, Value::String(v)) => set_once(&mut self.reason_string, id, v),
            (USER_PROPERTY, Value::Pair(k, v)) => {
                self.user_properties.push((k, v));
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}

impl EncodeProperties for AuthProperties {
    fn write_to<S: Sink>(&self, s: &mut S) -> Result<(), EncodeError> {
        use id::*;
        put_str(
            s,
            AUTHENTICATION_METHOD,
            self.authentication_method.as_ref(),
        )?;
        put_bin(s, AUTHENTICATION_DATA, self.authentication_data.as_ref())?;
        put_str(s, REASON_STRING, self.reason_string.as_ref())?;
        put_user_properties(s, &self.user_properties)
    }
}

#[cfg(test)]
#[path = "disconnect_tests.rs"]
mod tests;
