//! MQTT packets built and parsed by hand, byte by byte, straight from the
//! OASIS specifications (3.1.1 and 5.0).
//!
//! Deliberately independent from the broker's codec: a bug shared by the
//! broker's encoder and these builders would otherwise go unnoticed.

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

/// An MQTT 5 property list under construction.
#[derive(Debug, Clone, Default)]
pub struct Props(Vec<u8>);

impl Props {
    /// An empty property list.
    pub fn new() -> Props {
        Props(Vec::new())
    }
    /// A byte property.
    pub fn byte(mut self, id: u8, v: u8) -> Props {
        self.0.push(id);
        self.0.push(v);
        self
    }
    /// A two-byte integer property.
    pub fn u16(mut self, id: u8, v: u16) -> Props {
        self.0.push(id);
        self.0.extend(v.to_be_bytes());
        self
    }
    /// A four-byte integer property.
    pub fn u32(mut self, id: u8, v: u32) -> Props {
        self.0.push(id);
        self.0.extend(v.to_be_bytes());
        self
    }
    /// A variable byte integer property.
    pub fn varint(mut self, id: u8, v: u32) -> Props {
        self.0.push(id);
        self.0.extend(varint(v as usize));
        self
    }
    /// A UTF-8 string property.
    pub fn string(mut self, id: u8, s: &str) -> Props {
        self.0.push(id);
        self.0.extend(string(s));
        self
    }
    /// A binary data property.
    pub fn binary(mut self, id: u8, b: &[u8]) -> Props {
        self.0.push(id);
        self.0.extend(lp(b));
        self
    }
    /// A User Property (string pair).
    pub fn user(mut self, k: &str, v: &str) -> Props {
        self.0.push(prop::USER_PROPERTY);
        self.0.extend(string(k));
        self.0.extend(string(v));
        self
    }
    /// Raw bytes appended as they are (for malformed property tests).
    pub fn raw(mut self, bytes: &[u8]) -> Props {
        self.0.extend_from_slice(bytes);
        self
    }
    /// Property length (variable byte integer) followed by the properties.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = varint(self.0.len());
        out.extend_from_slice(&self.0);
        out
    }
}

/// A will message for [`Connect`].
#[derive(Debug, Clone)]
pub struct Will {
    /// Topic name.
    pub topic: String,
    /// Application payload.
    pub payload: Vec<u8>,
    /// QoS (0..=2; 3 for bad-input tests).
    pub qos: u8,
    /// RETAIN flag.
    pub retain: bool,
    /// MQTT 5 properties.
    pub props: Props,
}

impl Will {
    /// A QoS 0, non-retained will.
    pub fn new(topic: &str, payload: &[u8]) -> Will {
        Will {
            topic: topic.into(),
            payload: payload.into(),
            qos: 0,
            retain: false,
            props: Props::new(),
        }
    }
    /// Sets the will QoS.
    pub fn qos(mut self, qos: u8) -> Will {
        self.qos = qos;
        self
    }
    /// Sets Will Retain.
    pub fn retain(mut self) -> Will {
        self.retain = true;
        self
    }
    /// Sets the will properties (MQTT 5).
    pub fn props(mut self, props: Props) -> Will {
        self.props = props;
        self
    }
}

/// A CONNECT packet (3.1: `MQIsdp`/3, 3.1.1: `MQTT`/4, 5.0: `MQTT`/5).
#[derive(Debug, Clone)]
pub struct Connect {
    /// Protocol name ("MQTT" or "MQIsdp").
    pub protocol_name: String,
    /// Protocol level (3, 4 or 5).
    pub level: u8,
    /// Client identifier.
    pub client_id: String,
    /// Clean Session / Clean Start.
    pub clean: bool,
    /// Keep alive in seconds.
    pub keep_alive: u16,
    /// Will message.
    pub will: Option<Will>,
    /// User name.
    pub username: Option<String>,
    /// Password.
    pub password: Option<Vec<u8>>,
    /// MQTT 5 properties.
    pub props: Props,
    /// Sets the reserved connect flag.
    pub reserved_flag: bool,
}

impl Connect {
    fn with(name: &str, level: u8, client_id: &str) -> Connect {
        Connect {
            protocol_name: name.into(),
            level,
            client_id: client_id.into(),
            clean: true,
            keep_alive: 60,
            will: None,
            username: None,
            password: None,
            props: Props::new(),
            reserved_flag: false,
        }
    }
    /// MQTT 3.1 (`MQIsdp`, level 3).
    pub fn v31(client_id: &str) -> Connect {
        Connect::with("MQIsdp", 3, client_id)
    }
    /// MQTT 3.1.1 (`MQTT`, level 4).
    pub fn v311(client_id: &str) -> Connect {
        Connect::with("MQTT", 4, client_id)
    }
    /// MQTT 5.0 (`MQTT`, level 5).
    pub fn v5(client_id: &str) -> Connect {
        Connect::with("MQTT", 5, client_id)
    }
    /// True for protocol level 5.
    pub fn is_v5(&self) -> bool {
        self.level == 5
    }
    /// Sets Clean Session (3.1.1) / Clean Start (5.0).
    pub fn clean(mut self, clean: bool) -> Connect {
        self.clean = clean;
        self
    }
    /// Sets the keep alive in seconds.
    pub fn keep_alive(mut self, secs: u16) -> Connect {
        self.keep_alive = secs;
        self
    }
    /// Adds a will message.
    pub fn will(mut self, will: Will) -> Connect {
        self.will = Some(will);
        self
    }
    /// Sets the CONNECT properties (MQTT 5).
    pub fn props(mut self, props: Props) -> Connect {
        self.props = props;
        self
    }
    /// Sets user name and password.
    pub fn credentials(mut self, user: &str, password: &[u8]) -> Connect {
        self.username = Some(user.into());
        self.password = Some(password.into());
        self
    }
    /// Overrides the protocol level byte.
    pub fn level(mut self, level: u8) -> Connect {
        self.level = level;
        self
    }
    /// Sets the reserved connect flag (a malformed CONNECT).
    pub fn reserved_flag(mut self) -> Connect {
        self.reserved_flag = true;
        self
    }

    /// The whole packet, fixed header included.
    pub fn bytes(&self) -> Vec<u8> {
        let mut body = string(&self.protocol_name);
        body.push(self.level);
        let mut flags = 0u8;
        if self.reserved_flag {
            flags |= 0x01;
        }
        if self.clean {
            flags |= 0x02;
        }
        if let Some(w) = &self.will {
            flags |= 0x04 | (w.qos << 3);
            if w.retain {
                flags |= 0x20;
            }
        }
        if self.password.is_some() {
            flags |= 0x40;
        }
        if self.username.is_some() {
            flags |= 0x80;
        }
        body.push(flags);
        body.extend(self.keep_alive.to_be_bytes());
        if self.is_v5() {
            body.extend(self.props.encode());
        }
        body.extend(string(&self.client_id));
        if let Some(w) = &self.will {
            if self.is_v5() {
                body.extend(w.props.encode());
            }
            body.extend(string(&w.topic));
            body.extend(lp(&w.payload));
        }
        if let Some(u) = &self.username {
            body.extend(string(u));
        }
        if let Some(p) = &self.password {
            body.extend(lp(p));
        }
        frame(0x10, &body)
    }
}

/// A PUBLISH packet. `props: Some(..)` makes it an MQTT 5 packet.
#[derive(Debug, Clone)]
pub struct Publish {
    /// Topic name as raw bytes.
    pub topic: Vec<u8>,
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
    /// MQTT 5 properties; `None` for the 3.1.1 layout.
    pub props: Option<Props>,
}

impl Publish {
    /// QoS 0, no flags, MQTT 3.1.1 layout.
    pub fn new(topic: &str, payload: &[u8]) -> Publish {
        Publish {
            topic: topic.as_bytes().to_vec(),
            payload: payload.to_vec(),
            qos: 0,
            retain: false,
            dup: false,
            packet_id: 0,
            props: None,
        }
    }
    /// A topic given as raw bytes (for invalid UTF-8).
    pub fn raw_topic(mut self, topic: &[u8]) -> Publish {
        self.topic = topic.to_vec();
        self
    }
    /// QoS and packet identifier (the id is omitted from the wire for QoS 0).
    pub fn qos(mut self, qos: u8, packet_id: u16) -> Publish {
        self.qos = qos;
        self.packet_id = packet_id;
        self
    }
    /// Sets RETAIN.
    pub fn retain(mut self) -> Publish {
        self.retain = true;
        self
    }
    /// Sets DUP.
    pub fn dup(mut self) -> Publish {
        self.dup = true;
        self
    }
    /// MQTT 5 layout with an empty property list.
    pub fn v5(mut self) -> Publish {
        self.props.get_or_insert_with(Props::new);
        self
    }
    /// MQTT 5 layout with these properties.
    pub fn props(mut self, props: Props) -> Publish {
        self.props = Some(props);
        self
    }
    /// The whole packet, fixed header included.
    pub fn bytes(&self) -> Vec<u8> {
        let first =
            0x30 | (u8::from(self.dup) << 3) | ((self.qos & 3) << 1) | u8::from(self.retain);
        let mut body = lp(&self.topic);
        if self.qos > 0 {
            body.extend(self.packet_id.to_be_bytes());
        }
        if let Some(p) = &self.props {
            body.extend(p.encode());
        }
        body.extend_from_slice(&self.payload);
        frame(first, &body)
    }
}

/// SUBSCRIBE (3.1.1): each filter with its requested QoS byte.
pub fn subscribe(packet_id: u16, filters: &[(&str, u8)]) -> Vec<u8> {
    let mut body = packet_id.to_be_bytes().to_vec();
    for (f, o) in filters {
        body.extend(string(f));
        body.push(*o);
    }
    frame(0x82, &body)
}

/// SUBSCRIBE (5.0): each filter with its subscription options byte.
pub fn subscribe_v5(packet_id: u16, filters: &[(&str, u8)], props: &Props) -> Vec<u8> {
    let mut body = packet_id.to_be_bytes().to_vec();
    body.extend(props.encode());
    for (f, o) in filters {
        body.extend(string(f));
        body.push(*o);
    }
    frame(0x82, &body)
}

/// MQTT 5 subscription options byte (3.8.3.1).
pub fn sub_options(qos: u8, no_local: bool, retain_as_published: bool, retain_handling: u8) -> u8 {
    qos | (u8::from(no_local) << 2) | (u8::from(retain_as_published) << 3) | (retain_handling << 4)
}

/// UNSUBSCRIBE (3.1.1).
pub fn unsubscribe(packet_id: u16, filters: &[&str]) -> Vec<u8> {
    let mut body = packet_id.to_be_bytes().to_vec();
    for f in filters {
        body.extend(string(f));
    }
    frame(0xA2, &body)
}

/// UNSUBSCRIBE (5.0) with empty properties.
pub fn unsubscribe_v5(packet_id: u16, filters: &[&str]) -> Vec<u8> {
    let mut body = packet_id.to_be_bytes().to_vec();
    body.push(0);
    for f in filters {
        body.extend(string(f));
    }
    frame(0xA2, &body)
}

/// PUBACK without reason code (valid in both generations).
pub fn puback(packet_id: u16) -> Vec<u8> {
    frame(0x40, &packet_id.to_be_bytes())
}
/// PUBREC without reason code.
pub fn pubrec(packet_id: u16) -> Vec<u8> {
    frame(0x50, &packet_id.to_be_bytes())
}
/// PUBREL (flags 0b0010 [MQTT-3.6.1-1]).
pub fn pubrel(packet_id: u16) -> Vec<u8> {
    frame(0x62, &packet_id.to_be_bytes())
}
/// PUBCOMP without reason code.
pub fn pubcomp(packet_id: u16) -> Vec<u8> {
    frame(0x70, &packet_id.to_be_bytes())
}
/// An MQTT 5 acknowledgement with an explicit reason code and no properties.
pub fn ack_v5(first: u8, packet_id: u16, reason: u8) -> Vec<u8> {
    let mut body = packet_id.to_be_bytes().to_vec();
    body.push(reason);
    frame(first, &body)
}
/// PINGREQ.
pub fn pingreq() -> Vec<u8> {
    vec![0xC0, 0x00]
}
/// DISCONNECT (3.1.1, or 5.0 with reason 0x00 in its short form).
pub fn disconnect() -> Vec<u8> {
    vec![0xE0, 0x00]
}
/// DISCONNECT (5.0) with a reason code and properties.
pub fn disconnect_v5(reason: u8, props: &Props) -> Vec<u8> {
    let mut body = vec![reason];
    body.extend(props.encode());
    frame(0xE0, &body)
}

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
