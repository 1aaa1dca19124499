//! The generic MQTT 5 property reader and writer (MQTT 5 section 2.2.2): the identifier
//! table with each value's data type, duplicate detection, value-range helpers, and the
//! shared Reason String + User Property set (`AckProperties`).
//!
//! Which property is allowed in which packet is decided by each packet's property struct
//! (`DecodeProperties::accept`); this module knows no packet layout.

use bytes::Bytes;
use bytestring::ByteString;

use super::error::{EncodeError, Error};
use super::packet::{AckProperties, UserProperties};
use super::primitives::{Counter, Reader, Sink, put_binary, put_string, put_variable_integer};
use crate::types::QoS;

/// Property identifiers (MQTT 5 table 2-4).
#[allow(missing_docs)]
pub(crate) mod id {
    pub const PAYLOAD_FORMAT_INDICATOR: u8 = 0x01;
    pub const MESSAGE_EXPIRY_INTERVAL: u8 = 0x02;
    pub const CONTENT_TYPE: u8 = 0x03;
    pub const RESPONSE_TOPIC: u8 = 0x08;
    pub const CORRELATION_DATA: u8 = 0x09;
    pub const SUBSCRIPTION_IDENTIFIER: u8 = 0x0B;
    pub const SESSION_EXPIRY_INTERVAL: u8 = 0x11;
    pub const ASSIGNED_CLIENT_IDENTIFIER: u8 = 0x12;
    pub const SERVER_KEEP_ALIVE: u8 = 0x13;
    pub const AUTHENTICATION_METHOD: u8 = 0x15;
    pub const AUTHENTICATION_DATA: u8 = 0x16;
    pub const REQUEST_PROBLEM_INFORMATION: u8 = 0x17;
    pub const WILL_DELAY_INTERVAL: u8 = 0x18;
    pub const REQUEST_RESPONSE_INFORMATION: u8 = 0x19;
    pub const RESPONSE_INFORMATION: u8 = 0x1A;
    pub const SERVER_REFERENCE: u8 = 0x1C;
    pub const REASON_STRING: u8 = 0x1F;
    pub const RECEIVE_MAXIMUM: u8 = 0x21;
    pub const TOPIC_ALIAS_MAXIMUM: u8 = 0x22;
    pub const TOPIC_ALIAS: u8 = 0x23;
    pub const MAXIMUM_QOS: u8 = 0x24;
    pub const RETAIN_AVAILABLE: u8 = 0x25;
    pub const USER_PROPERTY: u8 = 0x26;
    pub const MAXIMUM_PACKET_SIZE: u8 = 0x27;
    pub const WILDCARD_SUBSCRIPTION_AVAILABLE: u8 = 0x28;
    pub const SUBSCRIPTION_IDENTIFIER_AVAILABLE: u8 = 0x29;
    pub const SHARED_SUBSCRIPTION_AVAILABLE: u8 = 0x2A;
}

/// A decoded property value, typed by its identifier.
pub(crate) enum Value {
    Byte(u8),
    TwoByte(u16),
    FourByte(u32),
    Variable(u32),
    String(ByteString),
    Binary(Bytes),
    Pair(ByteString, ByteString),
}

/// Reads the value of property `id`, or `None` for an unknown identifier.
fn read_value(r: &mut Reader, id: u8) -> Result<Option<Value>, Error> {
    use id::*;
    Ok(Some(match id {
        PAYLOAD_FORMAT_INDICATOR
        | REQUEST_PROBLEM_INFORMATION
        | REQUEST_RESPONSE_INFORMATION
        | MAXIMUM_QOS
        | RETAIN_AVAILABLE
        | WILDCARD_SUBSCRIPTION_AVAILABLE
        | SUBSCRIPTION_IDENTIFIER_AVAILABLE
        | SHARED_SUBSCRIPTION_AVAILABLE => Value::Byte(r.u8()?),
        SERVER_KEEP_ALIVE | RECEIVE_MAXIMUM | TOPIC_ALIAS_MAXIMUM | TOPIC_ALIAS => {
            Value::TwoByte(r.u16()?)
        }
        MESSAGE_EXPIRY_INTERVAL
        | SESSION_EXPIRY_INTERVAL
        | WILL_DELAY_INTERVAL
        | MAXIMUM_PACKET_SIZE => Value::FourByte(r.u32()?),
        SUBSCRIPTION_IDENTIFIER => Value::Variable(r.variable_integer()?),
        CONTENT_TYPE
        | RESPONSE_TOPIC
        | ASSIGNED_CLIENT_IDENTIFIER
        | AUTHENTICATION_METHOD
        | RESPONSE_INFORMATION
        | SERVER_REFERENCE
        | REASON_STRING => Value::String(r.string()?),
        CORRELATION_DATA | AUTHENTICATION_DATA => Value::Binary(r.binary()?),
        USER_PROPERTY => Value::Pair(r.string()?, r.string()?),
        _ => return Ok(None),
    }))
}

/// A property set that can be decoded from a property section.
pub(crate) trait DecodeProperties: Default {
    /// Packet name for error messages.
    const PACKET: &'static str;
    /// Stores one property; `Ok(false)` when the identifier is not allowed here.
    fn accept(&mut self, id: u8, value: Value) -> Result<bool, Error>;
}

/// Reads a property length and the properties it covers (MQTT 5 2.2.2).
pub(crate) fn read_properties<P: DecodeProperties>(r: &mut Reader) -> Result<P, Error> {
    let len = r.variable_integer()?;
    let mut section = Reader::new(r.take(len as usize)?);
    let mut props = P::default();
    while section.remaining() > 0 {
        let raw_id = section.variable_integer()?;
        let invalid = Error::InvalidProperty {
            packet: P::PACKET,
            id: raw_id,
        };
        let Ok(id) = u8::try_from(raw_id) else {
            return Err(invalid);
        };
        let Some(value) = read_value(&mut section, id)? else {
            return Err(invalid);
        };
        if !props.accept(id, value)? {
            return Err(invalid);
        }
    }
    Ok(props)
}

/// Stores a property that may appear at most once.
pub(crate) fn set_once<T>(slot: &mut Option<T>, id: u8, value: T) -> Result<bool, Error> {
    if slot.is_some() {
        return Err(Error::DuplicateProperty(id));
    }
    *slot = Some(value);
    Ok(true)
}

/// A Byte property that must be 0 or 1.
pub(crate) fn boolean(id: u8, value: u8) -> Result<bool, Error> {
    match value {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(Error::InvalidPropertyValue(id)),
    }
}

/// Payload Format Indicator: 0 (bytes) or 1 (UTF-8).
pub(crate) fn format_indicator(value: u8) -> Result<u8, Error> {
    boolean(id::PAYLOAD_FORMAT_INDICATOR, value).map(u8::from)
}

/// Maximum QoS: 0 or 1 (absent means 2).
pub(crate) fn maximum_qos(value: u8) -> Result<QoS, Error> {
    match value {
        0 => Ok(QoS::AtMostOnce),
        1 => Ok(QoS::AtLeastOnce),
        _ => Err(Error::InvalidPropertyValue(id::MAXIMUM_QOS)),
    }
}

/// A numeric property for which 0 is a protocol error.
pub(crate) fn non_zero<T: Default + PartialEq>(id: u8, value: T) -> Result<T, Error> {
    if value == T::default() {
        Err(Error::InvalidPropertyValue(id))
    } else {
        Ok(value)
    }
}

/// A property set that can be written as a property section.
pub(crate) trait EncodeProperties {
    /// Writes every present property (without the property length).
    fn write_to<S: Sink>(&self, s: &mut S) -> Result<(), EncodeError>;
}

/// Writes the property length then the properties.
pub(crate) fn put_properties<S: Sink, P: EncodeProperties>(
    s: &mut S,
    props: &P,
) -> Result<(), EncodeError> {
    let mut counter = Counter::default();
    props.write_to(&mut counter)?;
    put_variable_integer(s, counter.0)?;
    props.write_to(s)
}

pub(crate) fn put_byte<S: Sink>(s: &mut S, id: u8, value: Option<u8>) {
    if let Some(v) = value {
        s.put_u8(id);
        s.put_u8(v);
    }
}

pub(crate) fn put_bool<S: Sink>(s: &mut S, id: u8, value: Option<bool>) {
    put_byte(s, id, value.map(u8::from));
}

pub(crate) fn put_two<S: Sink>(s: &mut S, id: u8, value: Option<u16>) {
    if let Some(v) = value {
        s.put_u8(id);
        s.put_u16(v);
    }
}

pub(crate) fn put_four<S: Sink>(s: &mut S, id: u8, value: Option<u32>) {
    if let Some(v) = value {
        s.put_u8(id);
        s.put_u32(v);
    }
}

pub(crate) fn put_str<S: Sink>(
    s: &mut S,
    id: u8,
    value: Option<&ByteString>,
) -> Result<(), EncodeError> {
    if let Some(v) = value {
        s.put_u8(id);
        put_string(s, v)?;
    }
    Ok(())
}

pub(crate) fn put_bin<S: Sink>(
    s: &mut S,
    id: u8,
    value: Option<&Bytes>,
) -> Result<(), EncodeError> {
    if let Some(v) = value {
        s.put_u8(id);
        put_binary(s, v)?;
    }
    Ok(())
}

/// Writes a Subscription Identifier (1..=268435455).
pub(crate) fn put_subscription_identifier<S: Sink>(
    s: &mut S,
    value: u32,
) -> Result<(), EncodeError> {
    if value == 0 {
        return Err(EncodeError::ZeroSubscriptionIdentifier);
    }
    s.put_u8(id::SUBSCRIPTION_IDENTIFIER);
    put_variable_integer(s, value as usize)
}

pub(crate) fn put_user_properties<S: Sink>(
    s: &mut S,
    props: &UserProperties,
) -> Result<(), EncodeError> {
    for (key, value) in props {
        s.put_u8(id::USER_PROPERTY);
        put_string(s, key)?;
        put_string(s, value)?;
    }
    Ok(())
}

impl DecodeProperties for AckProperties {
    const PACKET: &'static str = "ack";
    fn accept(&mut self, id: u8, value: Value) -> Result<bool, Error> {
        match (id, value) {
            (id::REASON_STRING, Value::String(v)) => set_once(&mut self.reason_string, id, v),
            (id::USER_PROPERTY, Value::Pair(k, v)) => {
                self.user_properties.push((k, v));
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}

impl EncodeProperties for AckProperties {
    fn write_to<S: Sink>(&self, s: &mut S) -> Result<(), EncodeError> {
        put_str(s, id::REASON_STRING, self.reason_string.as_ref())?;
        put_user_properties(s, &self.user_properties)
    }
}

impl AckProperties {
    /// True when no property is set (allows the short forms of the acks).
    pub(crate) fn is_empty(&self) -> bool {
        self.reason_string.is_none() && self.user_properties.is_empty()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap
mod tests {
    use super::*;

    fn read(wire: &'static [u8]) -> Result<AckProperties, Error> {
        read_properties::<AckProperties>(&mut Reader::new(Bytes::from_static(wire)))
    }

    #[test]
    fn reads_repeated_user_properties_in_order() {
        let props = read(&[
            10, // property length
            0x26, 0, 1, b'a', 0, 1, b'1', // user property a=1
            0x26, 0, 0, // user property key "" ...
        ]);
        // the second user property is cut short by the property length
        assert!(matches!(props, Err(Error::Truncated)));
        let props = read(&[
            13, // property length
            0x26, 0, 1, b'a', 0, 1, b'1', // user property a=1
            0x26, 0, 1, b'a', 0, 0, // user property a=""
        ])
        .unwrap();
        assert_eq!(props.user_properties.len(), 2);
        assert_eq!(&*props.user_properties[1].0, "a");
    }

    #[test]
    fn rejects_duplicate_reason_string_as_protocol_error() {
        let err = read(&[
            8, // property length
            0x1F, 0, 1, b'x', // reason string "x"
            0x1F, 0, 1, b'y', // reason string "y"
        ])
        .err()
        .unwrap();
        assert!(matches!(err, Error::DuplicateProperty(0x1F)));
        assert_eq!(err.reason_code().0, 0x82);
    }

    #[test]
    fn rejects_property_not_allowed_in_packet_as_malformed() {
        let err = read(&[2, 0x23, 0]).err().unwrap(); // topic alias cut short
        assert!(matches!(err, Error::Truncated));
        let err = read(&[3, 0x23, 0, 1]).err().unwrap(); // topic alias 1
        assert!(matches!(err, Error::InvalidProperty { id: 0x23, .. }));
        assert_eq!(err.reason_code().0, 0x81);
    }

    #[test]
    fn rejects_unknown_property_identifier() {
        let err = read(&[2, 0x7F, 0]).err().unwrap();
        assert!(matches!(err, Error::InvalidProperty { id: 0x7F, .. }));
    }

    #[test]
    fn rejects_property_length_past_end_of_packet() {
        let err = read(&[9, 0x1F, 0, 1, b'x']).err().unwrap();
        assert!(matches!(err, Error::Truncated));
        assert_eq!(err.reason_code().0, 0x81);
    }

    #[test]
    fn boolean_other_than_0_or_1_is_protocol_error() {
        let err = boolean(id::RETAIN_AVAILABLE, 2).err().unwrap();
        assert!(matches!(err, Error::InvalidPropertyValue(0x25)));
        assert_eq!(err.reason_code().0, 0x82);
    }
}
