//! PUBLISH (MQTT 5 3.3, 3.1.1 3.3): fixed-header flags, topic, packet identifier,
//! properties and payload.
//!
//! The topic is only UTF-8 checked: wildcards, empty topics and topic aliases are the
//! session's business.

use super::error::{EncodeError, Error};
use super::packet::{Publish, PublishProperties};
use super::primitives::{Reader, Sink, put_string};
use super::properties::{
    DecodeProperties, EncodeProperties, Value, format_indicator, id, non_zero, put_bin, put_byte,
    put_four, put_properties, put_str, put_subscription_identifier, put_two, put_user_properties,
    read_properties, set_once,
};
use crate::types::{ProtocolVersion, QoS};

const DUP: u8 = 0x08;
const RETAIN: u8 = 0x01;

/// Checks the PUBLISH fixed-header flags and returns (dup, qos, retain).
pub(crate) fn parse_flags(flags: u8) -> Result<(bool, QoS, bool), Error> {
    let qos = QoS::from_u8((flags >> 1) & 0x03).ok_or(Error::PublishQos3)?;
    let dup = flags & DUP != 0;
    if dup && qos == QoS::AtMostOnce {
        return Err(Error::PublishDupWithQos0);
    }
    Ok((dup, qos, flags & RETAIN != 0))
}

/// The PUBLISH fixed-header flags.
pub(crate) fn flags(p: &Publish) -> u8 {
    (u8::from(p.dup) << 3) | (p.qos.as_u8() << 1) | u8::from(p.retain)
}

/// Decodes the PUBLISH body; the payload is everything after the variable header.
pub(crate) fn decode(flags: u8, mut r: Reader, version: ProtocolVersion) -> Result<Publish, Error> {
    let (dup, qos, retain) = parse_flags(flags)?;
    let topic = r.string()?;
    let packet_id = match qos {
        QoS::AtMostOnce => None,
        _ => Some(r.packet_id()?),
    };
    let properties = if version.is_v5() {
        read_properties(&mut r)?
    } else {
        PublishProperties::default()
    };
    Ok(Publish {
        dup,
        qos,
        retain,
        topic,
        packet_id,
        payload: r.rest(),
        properties,
    })
}

/// Writes the PUBLISH body.
pub(crate) fn encode<S: Sink>(
    p: &Publish,
    version: ProtocolVersion,
    s: &mut S,
) -> Result<(), EncodeError> {
    encode_parts(p, &p.topic, &p.payload, version, s)
}

/// [`encode`] with `topic` and `payload` in place of `p`'s own.
pub(crate) fn encode_parts<S: Sink>(
    p: &Publish,
    topic: &str,
    payload: &[u8],
    version: ProtocolVersion,
    s: &mut S,
) -> Result<(), EncodeError> {
    put_string(s, topic)?;
    match (p.qos, p.packet_id) {
        (QoS::AtMostOnce, None) => {}
        (QoS::AtMostOnce, Some(_)) => return Err(EncodeError::UnexpectedPacketId),
        (_, Some(packet_id)) => s.put_u16(packet_id.get()),
        (_, None) => return Err(EncodeError::MissingPacketId),
    }
    if version.is_v5() {
        put_properties(s, &p.properties)?;
    }
    s.put_slice(payload);
    Ok(())
}

impl DecodeProperties for PublishProperties {
    const PACKET: &'static str = "publish";
    fn accept(&mut self, id: u8, value: Value) -> Result<bool, Error> {
        use id::*;
        match (id, value) {
            (PAYLOAD_FORMAT_INDICATOR, Value::Byte(v)) => {
                set_once(&mut self.payload_format_indicator, id, format_indicator(v)?)
            }
            (MESSAGE_EXPIRY_INTERVAL, Value::FourByte(v)) => {
                set_once(&mut self.message_expiry_interval, id, v)
            }
            (TOPIC_ALIAS, Value::TwoByte(v)) => set_once(&mut self.topic_alias, id, v),
            (RESPONSE_TOPIC, Value::String(v)) => set_once(&mut self.response_topic, id, v),
            (CORRELATION_DATA, Value::Binary(v)) => set_once(&mut self.correlation_data, id, v),
            (USER_PROPERTY, Value::Pair(k, v)) => {
                self.user_properties.push((k, v));
                Ok(true)
            }
            (SUBSCRIPTION_IDENTIFIER, Value::Variable(v)) => {
                self.subscription_identifiers.push(non_zero(id, v)?);
                Ok(true)
            }
            (CONTENT_TYPE, Value::String(v)) => set_once(&mut self.content_type, id, v),
            _ => Ok(false),
        }
    }
}

impl EncodeProperties for PublishProperties {
    fn write_to<S: Sink>(&self, s: &mut S) -> Result<(), EncodeError> {
        use id::*;
        put_byte(s, PAYLOAD_FORMAT_INDICATOR, self.payload_format_indicator);
        put_four(s, MESSAGE_EXPIRY_INTERVAL, self.message_expiry_interval);
        put_two(s, TOPIC_ALIAS, self.topic_alias);
        put_str(s, RESPONSE_TOPIC, self.response_topic.as_ref())?;
        put_bin(s, CORRELATION_DATA, self.correlation_data.as_ref())?;
        put_user_properties(s, &self.user_properties)?;
        for &sub_id in &self.subscription_identifiers {
            put_subscription_identifier(s, sub_id)?;
        }
        put_str(s, CONTENT_TYPE, self.content_type.as_ref())
    }
}

#[cfg(test)]
#[path = "publish_tests.rs"]
mod tests;
