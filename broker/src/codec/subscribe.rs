//! SUBSCRIBE, SUBACK, UNSUBSCRIBE and UNSUBACK (MQTT 5 3.8-3.11, 3.1.1 3.8-3.11).
//!
//! Topic filters are only UTF-8 checked: filter syntax and shared subscriptions are the
//! `topic` module's and the session's business.

use super::error::{EncodeError, Error};
use super::packet::{
    AckProperties, RetainHandling, SubAck, Subscribe, SubscribeProperties, SubscriptionOptions,
    UnsubAck, Unsubscribe, UserProperties,
};
use super::primitives::{Reader, Sink, put_string};
use super::properties::{
    DecodeProperties, EncodeProperties, Value, id, non_zero, put_properties,
    put_subscription_identifier, put_user_properties, read_properties, set_once,
};
use crate::types::{ProtocolVersion, QoS, ReasonCode};

/// SUBACK reason codes (MQTT 5 3.9.3).
pub(crate) const SUBACK_CODES: &[u8] = &[
    0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2,
];
/// 3.1.1 SUBACK return codes (3.1.1 3.9.3).
const V3_SUBACK_CODES: &[u8] = &[0x00, 0x01, 0x02, 0x80];
/// UNSUBACK reason codes (MQTT 5 3.11.3).
pub(crate) const UNSUBACK_CODES: &[u8] = &[0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91];

/// Decodes the SUBSCRIBE body.
pub(crate) fn decode_subscribe(
    mut r: Reader,
    version: ProtocolVersion,
) -> Result<Subscribe, Error> {
    let packet_id = r.packet_id()?;
    let properties = if version.is_v5() {
        read_properties(&mut r)?
    } else {
        SubscribeProperties::default()
    };
    let mut filters = Vec::new();
    while r.remaining() > 0 {
        let filter = r.string()?;
        let options = decode_options(r.u8()?, version)?;
        filters.push((filter, options));
    }
    if filters.is_empty() {
        return Err(Error::NoSubscribeFilters);
    }
    Ok(Subscribe {
        packet_id,
        properties,
        filters,
    })
}

/// One subscription options byte: 3.x uses only the QoS bits [MQTT-3-8.3-4]; MQTT 5
/// reserves bits 6-7 [MQTT-3.8.3-5] and forbids Retain Handling 3 (3.8.3.1).
fn decode_options(byte: u8, version: ProtocolVersion) -> Result<SubscriptionOptions, Error> {
    let reserved = if version.is_v5() { 0xC0 } else { 0xFC };
    if byte & reserved != 0 {
        return Err(Error::SubscriptionOptionsReserved);
    }
    let qos = QoS::from_u8(byte & 0x03).ok_or(Error::SubscriptionQos3)?;
    let retain_handling = match (byte >> 4) & 0x03 {
        0 => RetainHandling::OnSubscribe,
        1 => RetainHandling::OnNewSubscribe,
        2 => RetainHandling::Never,
        _ => return Err(Error::RetainHandling3),
    };
    Ok(SubscriptionOptions {
        qos,
        no_local: byte & 0x04 != 0,
        retain_as_published: byte & 0x08 != 0,
        retain_handling,
    })
}

fn encode_options(o: &SubscriptionOptions, version: ProtocolVersion) -> u8 {
    if !version.is_v5() {
        return o.qos.as_u8();
    }
    o.qos.as_u8()
        | (u8::from(o.no_local) << 2)
        | (u8::from(o.retain_as_published) << 3)
        | ((o.retain_handling as u8) << 4)
}

/// Writes the SUBSCRIBE body.
pub(crate) fn encode_subscribe<S: Sink>(
    p: &Subscribe,
    version: ProtocolVersion,
    s: &mut S,
) -> Result<(), EncodeError> {
    s.put_u16(p.packet_id.get());
    if version.is_v5() {
        put_properties(s, &p.properties)?;
    }
    for (filter, options) in &p.filters {
        put_string(s, filter)?;
        s.put_u8(encode_options(options, version));
    }
    Ok(())
}

/// Reads the reason codes that fill the rest of a SUBACK or UNSUBACK.
fn decode_codes(
    r: &mut Reader,
    valid: &[u8],
    packet: &'static str,
) -> Result<Vec<ReasonCode>, Error> {
    let mut codes = Vec::with_capacity(r.remaining());
    while r.remaining() > 0 {
        let code = r.u8()?;
        if !valid.contains(&code) {
            return Err(Error::InvalidReasonCode { packet, code });
        }
        codes.push(ReasonCode(code));
    }
    Ok(codes)
}

/// Decodes the SUBACK body; 3.x return code 0x80 becomes UNSPECIFIED_ERROR.
pub(crate) fn decode_suback(mut r: Reader, version: ProtocolVersion) -> Result<SubAck, Error> {
    let packet_id = r.packet_id()?;
    let (properties, valid) = if version.is_v5() {
        (read_properties(&mut r)?, SUBACK_CODES)
    } else {
        (AckProperties::default(), V3_SUBACK_CODES)
    };
    let reason_codes = decode_codes(&mut r, valid, "suback")?;
    Ok(SubAck {
        packet_id,
        properties,
        reason_codes,
    })
}

/// Writes the SUBACK body; for 3.x every failure code (>= 0x80) becomes 0x80.
pub(crate) fn encode_suback<S: Sink>(
    p: &SubAck,
    version: ProtocolVersion,
    s: &mut S,
) -> Result<(), EncodeError> {
    s.put_u16(p.packet_id.get());
    if version.is_v5() {
        put_properties(s, &p.properties)?;
    }
    for code in &p.reason_codes {
        let byte = match code.0 {
            c if !version.is_v5() && c >= 0x80 => 0x80,
            c => c,
        };
        s.put_u8(byte);
    }
    Ok(())
}

/// Decodes the UNSUBSCRIBE body.
pub(crate) fn decode_unsubscribe(
    mut r: Reader,
    version: ProtocolVersion,
) -> Result<Unsubscribe, Error> {
    let packet_id = r.packet_id()?;
    let UnsubscribeProperties(user_properties) = if version.is_v5() {
        read_properties(&mut r)?
    } else {
        UnsubscribeProperties::default()
    };
    let mut filters = Vec::new();
    while r.remaining() > 0 {
        filters.push(r.string()?);
    }
    if filters.is_empty() {
        return Err(Error::NoUnsubscribeFilters);
    }
    Ok(Unsubscribe {
        packet_id,
        user_properties,
        filters,
    })
}

/// Writes the UNSUBSCRIBE body.
pub(crate) fn encode_unsubscribe<S: Sink>(
    p: &Unsubscribe,
    version: ProtocolVersion,
    s: &mut S,
) -> Result<(), EncodeError> {
    s.put_u16(p.packet_id.get());
    if version.is_v5() {
        put_properties(s, &UserPropertiesOnly(&p.user_properties))?;
    }
    for filter in &p.filters {
        put_string(s, filter)?;
    }
    Ok(())
}

/// Decodes the UNSUBACK body; 3.x UNSUBACK carries only the packet identifier.
pub(crate) fn decode_unsuback(mut r: Reader, version: ProtocolVersion) -> Result<UnsubAck, Error> {
    let packet_id = r.packet_id()?;
    let (properties, reason_codes) = if version.is_v5() {
        let properties = read_properties(&mut r)?;
        (
            properties,
            decode_codes(&mut r, UNSUBACK_CODES, "unsuback")?,
        )
    } else {
        (AckProperties::default(), Vec::new())
    };
    r.finish()?;
    Ok(UnsubAck {
        packet_id,
        properties,
        reason_codes,
    })
}

/// Writes the UNSUBACK body (3.x: packet identifier only).
pub(crate) fn encode_unsuback<S: Sink>(
    p: &UnsubAck,
    version: ProtocolVersion,
    s: &mut S,
) -> Result<(), EncodeError> {
    s.put_u16(p.packet_id.get());
    if version.is_v5() {
        put_properties(s, &p.properties)?;
        for code in &p.reason_codes {
            s.put_u8(code.0);
        }
    }
    Ok(())
}

/// The UNSUBSCRIBE property set: User Properties only (MQTT 5 3.10.2.1).
#[derive(Default)]
struct UnsubscribeProperties(UserProperties);

impl DecodeProperties for UnsubscribeProperties {
    const PACKET: &'static str = "unsubscribe";
    fn accept(&mut self, id: u8, value: Value) -> Result<bool, Error> {
        match (id, value) {
            (id::USER_PROPERTY, Value::Pair(k, v)) => {
                self.0.push((k, v));
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}

/// Borrowed UNSUBSCRIBE property set, for encoding.
struct UserPropertiesOnly<'a>(&'a UserProperties);

impl EncodeProperties for UserPropertiesOnly<'_> {
    fn write_to<S: Sink>(&self, s: &mut S) -> Result<(), EncodeError> {
        put_user_properties(s, self.0)
    }
}

impl DecodeProperties for SubscribeProperties {
    const PACKET: &'static str = "subscribe";
    fn accept(&mut self, id: u8, value: Value) -> Result<bool, Error> {
        match (id, value) {
            (id::SUBSCRIPTION_IDENTIFIER, Value::Variable(v)) => {
                set_once(&mut self.subscription_identifier, id, non_zero(id, v)?)
            }
            (id::USER_PROPERTY, Value::Pair(k, v)) => {
                self.user_properties.push((k, v));
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}

impl EncodeProperties for SubscribeProperties {
    fn write_to<S: Sink>(&self, s: &mut S) -> Result<(), EncodeError> {
        if let Some(sub_id) = self.subscription_identifier {
            put_subscription_identifier(s, sub_id)?;
        }
        put_user_properties(s, &self.user_properties)
    }
}

#[cfg(test)]
#[path = "subscribe_tests.rs"]
mod tests;
