//! Builders for the packets a client sends: CONNECT, PUBLISH, SUBSCRIBE,
//! UNSUBSCRIBE, the acknowledgements, PINGREQ and DISCONNECT, with MQTT 5
//! properties. Nothing here validates: tests build bad packets on purpose.

use super::{frame, lp, prop, string, varint};

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
