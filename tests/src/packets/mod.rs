//! MQTT packets built and parsed by hand, byte by byte, straight from the
//! OASIS specifications (3.1.1 and 5.0).
//!
//! Deliberately independent from the broker's codec: a bug shared by the
//! broker's encoder and these builders would otherwise go unnoticed.
//! `build` makes the packets a client sends, `parse` reads what the broker
//! sends back.

mod build;
mod parse;

pub use build::*;
pub use parse::*;

/// MQTT 5 property identifiers (MQTT 5.0 section 2.2.2.2).
pub mod prop {
    /// Payload format indicator property identifier.
    pub const PAYLOAD_FORMAT_INDICATOR: u8 = 0x01;
    /// Message expiry interval property identifier.
    pub const MESSAGE_EXPIRY_INTERVAL: u8 = 0x02;
    /// Content type property identifier.
    pub const CONTENT_TYPE: u8 = 0x03;
    /// Response topic property identifier.
    pub const RESPONSE_TOPIC: u8 = 0x08;
    /// Correlation data property identifier.
    pub const CORRELATION_DATA: u8 = 0x09;
    /// Subscription identifier property identifier.
    pub const SUBSCRIPTION_IDENTIFIER: u8 = 0x0B;
    /// Session expiry interval property identifier.
    pub const SESSION_EXPIRY_INTERVAL: u8 = 0x11;
    /// Assigned client identifier property identifier.
    pub const ASSIGNED_CLIENT_IDENTIFIER: u8 = 0x12;
    /// Server keep alive property identifier.
    pub const SERVER_KEEP_ALIVE: u8 = 0x13;
    /// Authentication method property identifier.
    pub const AUTHENTICATION_METHOD: u8 = 0x15;
    /// Request problem information property identifier.
    pub const REQUEST_PROBLEM_INFORMATION: u8 = 0x17;
    /// Will delay interval property identifier.
    pub const WILL_DELAY_INTERVAL: u8 = 0x18;
    /// Request response information property identifier.
    pub const REQUEST_RESPONSE_INFORMATION: u8 = 0x19;
    /// Response information property identifier.
    pub const RESPONSE_INFORMATION: u8 = 0x1A;
    /// Reason string property identifier.
    pub const REASON_STRING: u8 = 0x1F;
    /// Receive maximum property identifier.
    pub const RECEIVE_MAXIMUM: u8 = 0x21;
    /// Topic alias maximum property identifier.
    pub const TOPIC_ALIAS_MAXIMUM: u8 = 0x22;
    /// Topic alias property identifier.
    pub const TOPIC_ALIAS: u8 = 0x23;
    /// Maximum qos property identifier.
    pub const MAXIMUM_QOS: u8 = 0x24;
    /// Retain available property identifier.
    pub const RETAIN_AVAILABLE: u8 = 0x25;
    /// User property property identifier.
    pub const USER_PROPERTY: u8 = 0x26;
    /// Maximum packet size property identifier.
    pub const MAXIMUM_PACKET_SIZE: u8 = 0x27;
    /// Wildcard subscription available property identifier.
    pub const WILDCARD_SUBSCRIPTION_AVAILABLE: u8 = 0x28;
    /// Subscription identifier available property identifier.
    pub const SUBSCRIPTION_IDENTIFIER_AVAILABLE: u8 = 0x29;
    /// Shared subscription available property identifier.
    pub const SHARED_SUBSCRIPTION_AVAILABLE: u8 = 0x2A;
}

/// Control packet types (high nibble of the first byte).
pub mod kind {
    /// CONNECT packet type.
    pub const CONNECT: u8 = 1;
    /// CONNACK packet type.
    pub const CONNACK: u8 = 2;
    /// PUBLISH packet type.
    pub const PUBLISH: u8 = 3;
    /// PUBACK packet type.
    pub const PUBACK: u8 = 4;
    /// PUBREC packet type.
    pub const PUBREC: u8 = 5;
    /// PUBREL packet type.
    pub const PUBREL: u8 = 6;
    /// PUBCOMP packet type.
    pub const PUBCOMP: u8 = 7;
    /// SUBSCRIBE packet type.
    pub const SUBSCRIBE: u8 = 8;
    /// SUBACK packet type.
    pub const SUBACK: u8 = 9;
    /// UNSUBSCRIBE packet type.
    pub const UNSUBSCRIBE: u8 = 10;
    /// UNSUBACK packet type.
    pub const UNSUBACK: u8 = 11;
    /// PINGREQ packet type.
    pub const PINGREQ: u8 = 12;
    /// PINGRESP packet type.
    pub const PINGRESP: u8 = 13;
    /// DISCONNECT packet type.
    pub const DISCONNECT: u8 = 14;
    /// AUTH packet type.
    pub const AUTH: u8 = 15;

    /// A readable name for failure messages.
    pub fn name(first_byte: u8) -> &'static str {
        match first_byte >> 4 {
            CONNECT => "CONNECT",
            CONNACK => "CONNACK",
            PUBLISH => "PUBLISH",
            PUBACK => "PUBACK",
            PUBREC => "PUBREC",
            PUBREL => "PUBREL",
            PUBCOMP => "PUBCOMP",
            SUBSCRIBE => "SUBSCRIBE",
            SUBACK => "SUBACK",
            UNSUBSCRIBE => "UNSUBSCRIBE",
            UNSUBACK => "UNSUBACK",
            PINGREQ => "PINGREQ",
            PINGRESP => "PINGRESP",
            DISCONNECT => "DISCONNECT",
            AUTH => "AUTH",
            _ => "reserved(0)",
        }
    }
}

/// Variable byte integer (MQTT 5.0 1.5.5, 3.1.1 2.2.3).
pub fn varint(mut n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let mut byte = (n % 128) as u8;
        n /= 128;
        if n > 0 {
            byte |= 0x80;
        }
        out.push(byte);
        if n == 0 {
            return out;
        }
    }
}

/// A two-byte length followed by the bytes (UTF-8 string or binary data).
pub fn lp(bytes: &[u8]) -> Vec<u8> {
    let mut out = (bytes.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(bytes);
    out
}

/// A UTF-8 encoded string.
pub fn string(s: &str) -> Vec<u8> {
    lp(s.as_bytes())
}

/// Fixed header (first byte + remaining length) followed by the body.
pub fn frame(first: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![first];
    out.extend(varint(body.len()));
    out.extend_from_slice(body);
    out
}
