//! Parsers for what the broker sends: CONNACK, PUBLISH, the acknowledgements,
//! SUBACK / UNSUBACK and DISCONNECT, MQTT 5 properties included. A packet
//! that cannot be parsed fails the test.

use super::{kind, prop, varint};

/// A decoded MQTT 5 property value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PropValue {
    /// Byte.
    Byte(u8),
    /// Two-byte integer.
    U16(u16),
    /// Four-byte integer.
    U32(u32),
    /// Variable byte integer.
    VarInt(u32),
    /// UTF-8 string.
    Str(String),
    /// Binary data.
    Bin(Vec<u8>),
    /// String pair (User Property).
    Pair(String, String),
}

/// Decoded MQTT 5 properties, in wire order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Properties(pub Vec<(u8, PropValue)>);

impl Properties {
    /// The first property with this identifier.
    pub fn get(&self, id: u8) -> Option<&PropValue> {
        self.0.iter().find(|(i, _)| *i == id).map(|(_, v)| v)
    }
    /// Whether a property with this identifier is present.
    pub fn has(&self, id: u8) -> bool {
        self.get(id).is_some()
    }
    /// Byte, two-byte, four-byte or variable integer property as u32.
    pub fn int(&self, id: u8) -> Option<u32> {
        match self.get(id)? {
            PropValue::Byte(b) => Some(u32::from(*b)),
            PropValue::U16(v) => Some(u32::from(*v)),
            PropValue::U32(v) | PropValue::VarInt(v) => Some(*v),
            _ => None,
        }
    }
    /// A string property.
    pub fn str(&self, id: u8) -> Option<&str> {
        match self.get(id)? {
            PropValue::Str(s) => Some(s),
            _ => None,
        }
    }
    /// A binary property.
    pub fn bin(&self, id: u8) -> Option<&[u8]> {
        match self.get(id)? {
            PropValue::Bin(b) => Some(b),
            _ => None,
        }
    }
    /// Every subscription identifier, in wire order.
    pub fn subscription_ids(&self) -> Vec<u32> {
        self.0
            .iter()
            .filter_map(|(i, v)| match (i, v) {
                (&prop::SUBSCRIPTION_IDENTIFIER, PropValue::VarInt(n)) => Some(*n),
                _ => None,
            })
            .collect()
    }
    /// Every user property, in wire order.
    pub fn user(&self) -> Vec<(String, String)> {
        self.0
            .iter()
            .filter_map(|(_, v)| match v {
                PropValue::Pair(k, v) => Some((k.clone(), v.clone())),
                _ => None,
            })
            .collect()
    }
}

/// A cursor over a packet body; panics with a clear message on short input
/// (these are test helpers: a short packet from the broker is a test failure).
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `buf`.
    pub fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf, pos: 0 }
    }
    /// Bytes left.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }
    /// The next `n` bytes.
    pub fn take(&mut self, n: usize) -> &'a [u8] {
        assert!(
            self.remaining() >= n,
            "packet from broker too short: need {n} bytes at {} in {:02x?}",
            self.pos,
            self.buf
        );
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        s
    }
    /// A byte.
    pub fn u8(&mut self) -> u8 {
        self.take(1)[0]
    }
    /// A big-endian two-byte integer.
    pub fn u16(&mut self) -> u16 {
        let b = self.take(2);
        u16::from_be_bytes([b[0], b[1]])
    }
    /// A big-endian four-byte integer.
    pub fn u32(&mut self) -> u32 {
        let b = self.take(4);
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }
    /// A variable byte integer.
    pub fn varint(&mut self) -> u32 {
        let mut value = 0u32;
        for i in 0..4 {
            let b = self.u8();
            value |= u32::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return value;
            }
        }
        panic!(
            "malformed variable byte integer from broker in {:02x?}",
            self.buf
        )
    }
    /// Length-prefixed binary data.
    pub fn bin(&mut self) -> Vec<u8> {
        let n = self.u16() as usize;
        self.take(n).to_vec()
    }
    /// A length-prefixed UTF-8 string (the test fails on invalid UTF-8).
    pub fn string(&mut self) -> String {
        let b = self.bin();
        String::from_utf8(b).unwrap_or_else(|e| panic!("broker sent invalid UTF-8: {e}"))
    }
    /// Everything left.
    pub fn rest(&mut self) -> Vec<u8> {
        let r = self.buf[self.pos..].to_vec();
        self.pos = self.buf.len();
        r
    }
    /// An MQTT 5 property list (length, then properties).
    pub fn properties(&mut self) -> Properties {
        let len = self.varint() as usize;
        let mut r = Reader::new(self.take(len));
        let mut out = Vec::new();
        while r.remaining() > 0 {
            let id = r.varint() as u8;
            let v = match id {
                0x01 | 0x17 | 0x19 | 0x24 | 0x25 | 0x28 | 0x29 | 0x2A => PropValue::Byte(r.u8()),
                0x13 | 0x21 | 0x22 | 0x23 => PropValue::U16(r.u16()),
                0x02 | 0x11 | 0x18 | 0x27 => PropValue::U32(r.u32()),
                0x0B => PropValue::VarInt(r.varint()),
                0x03 | 0x08 | 0x12 | 0x15 | 0x1A | 0x1C | 0x1F => PropValue::Str(r.string()),
                0x09 | 0x16 => PropValue::Bin(r.bin()),
                0x26 => PropValue::Pair(r.string(), r.string()),
                other => panic!("broker sent unknown property id 0x{other:02x}"),
            };
            out.push((id, v));
        }
        Properties(out)
    }
}

/// A parsed CONNACK.
#[derive(Debug, Clone)]
pub struct ConnAck {
    /// Session Present flag.
    pub session_present: bool,
    /// Return / reason code.
    pub code: u8,
    /// MQTT 5 properties.
    pub props: Properties,
}

/// Parses a CONNACK body; `v5` selects the MQTT 5 layout (properties follow).
pub fn parse_connack(first: u8, body: &[u8], v5: bool) -> ConnAck {
    assert_eq!(
        first,
        0x20,
        "expected CONNACK, got {} ({first:#04x}) body {body:02x?}",
        kind::name(first)
    );
    let mut r = Reader::new(body);
    let flags = r.u8();
    assert_eq!(flags & 0xFE, 0, "CONNACK reserved flags set");
    let code = r.u8();
    let props = if v5 && r.remaining() > 0 {
        r.properties()
    } else {
        Properties::default()
    };
    assert_eq!(r.remaining(), 0, "trailing bytes in CONNACK {body:02x?}");
    ConnAck {
        session_present: flags & 1 == 1,
        code,
        props,
    }
}

/// A PUBLISH received from the broker.
#[derive(Debug, Clone)]
pub struct Received {
    /// Topic name.
    pub topic: String,
    /// Application payload.
    pub payload: Vec<u8>,
    /// QoS (0..=2; 3 for bad-input tests).
    pub qos: u8,
    /// RETAIN flag.
    pub retain: bool,
    /// DUP flag.
    pub dup: bool,
    /// Packet identifier (0 for QoS 0).
    pub packet_id: u16,
    /// MQTT 5 properties.
    pub props: Properties,
    /// Size of the whole packet on the wire.
    pub wire_len: usize,
}

impl Received {
    /// The payload as UTF-8 text (`<binary>` otherwise).
    pub fn payload_str(&self) -> &str {
        std::str::from_utf8(&self.payload).unwrap_or("<binary>")
    }
}

/// Parses a PUBLISH.
pub fn parse_publish(first: u8, body: &[u8], v5: bool) -> Received {
    assert_eq!(
        first >> 4,
        kind::PUBLISH,
        "expected PUBLISH, got {} ({first:#04x}) body {body:02x?}",
        kind::name(first)
    );
    let qos = (first >> 1) & 3;
    assert!(qos < 3, "broker sent PUBLISH with QoS 3");
    let mut r = Reader::new(body);
    let topic = r.string();
    let packet_id = if qos > 0 { r.u16() } else { 0 };
    assert!(
        qos == 0 || packet_id != 0,
        "broker sent packet id 0 [MQTT-2.2.1-3]"
    );
    let props = if v5 {
        r.properties()
    } else {
        Properties::default()
    };
    let payload = r.rest();
    Received {
        topic,
        payload,
        qos,
        retain: first & 1 == 1,
        dup: first & 8 == 8,
        packet_id,
        props,
        wire_len: 1 + varint(body.len()).len() + body.len(),
    }
}

/// Parses PUBACK/PUBREC/PUBREL/PUBCOMP: (packet id, reason code, properties).
pub fn parse_ack(body: &[u8]) -> (u16, u8, Properties) {
    let mut r = Reader::new(body);
    let id = r.u16();
    let reason = if r.remaining() > 0 { r.u8() } else { 0 };
    let props = if r.remaining() > 0 {
        r.properties()
    } else {
        Properties::default()
    };
    (id, reason, props)
}

/// Parses SUBACK/UNSUBACK: (packet id, reason codes).
pub fn parse_suback(body: &[u8], v5: bool) -> (u16, Vec<u8>) {
    let mut r = Reader::new(body);
    let id = r.u16();
    if v5 {
        r.properties();
    }
    (id, r.rest())
}

/// Parses a DISCONNECT body (5.0): (reason code, properties).
pub fn parse_disconnect(body: &[u8]) -> (u8, Properties) {
    let mut r = Reader::new(body);
    let reason = if r.remaining() > 0 { r.u8() } else { 0 };
    let props = if r.remaining() > 0 {
        r.properties()
    } else {
        Properties::default()
    };
    (reason, props)
}
