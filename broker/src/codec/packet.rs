//! The MQTT control packets as plain Rust values, shared by MQTT 3.1, 3.1.1 and 5.0.
//!
//! One struct per packet; MQTT 5 properties live in per-packet property structs so that a
//! property not allowed in a packet cannot be represented. For 3.1/3.1.1 the property
//! structs are ignored when encoding and left empty when decoding. Reason codes are MQTT 5
//! codes; the encoder maps them to 3.1.1 return codes where a packet carries one.
//! Strings are UTF-8 checked by the decoder but carry no topic semantics: topic rules
//! (wildcards, aliases) are the session's business.

use bytes::Bytes;
use bytestring::ByteString;

use crate::types::{PacketId, ProtocolVersion, QoS, ReasonCode};

/// User properties (0x26), in order; a property and a name may repeat (MQTT 5 3.1.2.11.8).
pub type UserProperties = Vec<(ByteString, ByteString)>;

/// Every MQTT control packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    /// CONNECT (1).
    Connect(Box<Connect>),
    /// CONNACK (2).
    ConnAck(ConnAck),
    /// PUBLISH (3).
    Publish(Publish),
    /// PUBACK (4).
    PubAck(PubResp),
    /// PUBREC (5).
    PubRec(PubResp),
    /// PUBREL (6).
    PubRel(PubResp),
    /// PUBCOMP (7).
    PubComp(PubResp),
    /// SUBSCRIBE (8).
    Subscribe(Subscribe),
    /// SUBACK (9).
    SubAck(SubAck),
    /// UNSUBSCRIBE (10).
    Unsubscribe(Unsubscribe),
    /// UNSUBACK (11).
    UnsubAck(UnsubAck),
    /// PINGREQ (12).
    PingReq,
    /// PINGRESP (13).
    PingResp,
    /// DISCONNECT (14).
    Disconnect(Disconnect),
    /// AUTH (15), MQTT 5 only.
    Auth(Auth),
}

/// CONNECT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connect {
    /// Protocol name and level.
    pub protocol: ProtocolVersion,
    /// Clean Session (3.1.1) / Clean Start (5.0).
    pub clean_start: bool,
    /// Keep alive in seconds, 0 disables.
    pub keep_alive: u16,
    /// Client identifier, possibly empty.
    pub client_id: ByteString,
    /// Last will, when the Will Flag is set.
    pub will: Option<LastWill>,
    /// User name, when the flag is set.
    pub username: Option<ByteString>,
    /// Password, when the flag is set.
    pub password: Option<Bytes>,
    /// MQTT 5 properties.
    pub properties: ConnectProperties,
}

/// CONNECT properties (MQTT 5, 3.1.2.11).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectProperties {
    /// 0x11 Session Expiry Interval, seconds.
    pub session_expiry_interval: Option<u32>,
    /// 0x21 Receive Maximum (0 is a protocol error).
    pub receive_maximum: Option<u16>,
    /// 0x27 Maximum Packet Size (0 is a protocol error).
    pub maximum_packet_size: Option<u32>,
    /// 0x22 Topic Alias Maximum.
    pub topic_alias_maximum: Option<u16>,
    /// 0x19 Request Response Information (0 or 1).
    pub request_response_information: Option<bool>,
    /// 0x17 Request Problem Information (0 or 1).
    pub request_problem_information: Option<bool>,
    /// 0x26 User Properties.
    pub user_properties: UserProperties,
    /// 0x15 Authentication Method.
    pub authentication_method: Option<ByteString>,
    /// 0x16 Authentication Data.
    pub authentication_data: Option<Bytes>,
}

/// The will message carried in CONNECT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastWill {
    /// Will topic (not yet validated as a topic name).
    pub topic: ByteString,
    /// Will payload.
    pub payload: Bytes,
    /// Will QoS.
    pub qos: QoS,
    /// Will retain.
    pub retain: bool,
    /// MQTT 5 will properties.
    pub properties: WillProperties,
}

/// Will properties (MQTT 5, 3.1.3.2).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WillProperties {
    /// 0x18 Will Delay Interval, seconds.
    pub will_delay_interval: Option<u32>,
    /// 0x01 Payload Format Indicator (0 or 1).
    pub payload_format_indicator: Option<u8>,
    /// 0x02 Message Expiry Interval, seconds.
    pub message_expiry_interval: Option<u32>,
    /// 0x03 Content Type.
    pub content_type: Option<ByteString>,
    /// 0x08 Response Topic.
    pub response_topic: Option<ByteString>,
    /// 0x09 Correlation Data.
    pub correlation_data: Option<Bytes>,
    /// 0x26 User Properties.
    pub user_properties: UserProperties,
}

/// CONNACK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnAck {
    /// Session Present flag.
    pub session_present: bool,
    /// MQTT 5 reason code; mapped to a 3.1.1 return code when encoding for 3.x.
    pub reason_code: ReasonCode,
    /// MQTT 5 properties.
    pub properties: ConnAckProperties,
}

/// CONNACK properties (MQTT 5, 3.2.2.3).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnAckProperties {
    /// 0x11 Session Expiry Interval.
    pub session_expiry_interval: Option<u32>,
    /// 0x21 Receive Maximum.
    pub receive_maximum: Option<u16>,
    /// 0x24 Maximum QoS (0 or 1; absent means 2).
    pub maximum_qos: Option<QoS>,
    /// 0x25 Retain Available.
    pub retain_available: Option<bool>,
    /// 0x27 Maximum Packet Size.
    pub maximum_packet_size: Option<u32>,
    /// 0x12 Assigned Client Identifier.
    pub assigned_client_identifier: Option<ByteString>,
    /// 0x22 Topic Alias Maximum.
    pub topic_alias_maximum: Option<u16>,
    /// 0x1F Reason String.
    pub reason_string: Option<ByteString>,
    /// 0x26 User Properties.
    pub user_properties: UserProperties,
    /// 0x28 Wildcard Subscription Available.
    pub wildcard_subscription_available: Option<bool>,
    /// 0x29 Subscription Identifiers Available.
    pub subscription_identifiers_available: Option<bool>,
    /// 0x2A Shared Subscription Available.
    pub shared_subscription_available: Option<bool>,
    /// 0x13 Server Keep Alive.
    pub server_keep_alive: Option<u16>,
    /// 0x1A Response Information.
    pub response_information: Option<ByteString>,
    /// 0x1C Server Reference.
    pub server_reference: Option<ByteString>,
    /// 0x15 Authentication Method.
    pub authentication_method: Option<ByteString>,
    /// 0x16 Authentication Data.
    pub authentication_data: Option<Bytes>,
}

/// PUBLISH.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publish {
    /// DUP flag.
    pub dup: bool,
    /// QoS from the fixed header.
    pub qos: QoS,
    /// RETAIN flag.
    pub retain: bool,
    /// Topic name as sent; may be empty in MQTT 5 when a topic alias is used.
    pub topic: ByteString,
    /// Present exactly when qos > 0.
    pub packet_id: Option<PacketId>,
    /// Application payload.
    pub payload: Bytes,
    /// MQTT 5 properties.
    pub properties: PublishProperties,
}

/// PUBLISH properties (MQTT 5, 3.3.2.3).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublishProperties {
    /// 0x01 Payload Format Indicator (0 or 1).
    pub payload_format_indicator: Option<u8>,
    /// 0x02 Message Expiry Interval, seconds.
    pub message_expiry_interval: Option<u32>,
    /// 0x23 Topic Alias (0 is invalid; checked by the session).
    pub topic_alias: Option<u16>,
    /// 0x08 Response Topic.
    pub response_topic: Option<ByteString>,
    /// 0x09 Correlation Data.
    pub correlation_data: Option<Bytes>,
    /// 0x26 User Properties.
    pub user_properties: UserProperties,
    /// 0x0B Subscription Identifiers (server to client only; may repeat).
    pub subscription_identifiers: Vec<u32>,
    /// 0x03 Content Type.
    pub content_type: Option<ByteString>,
}

/// PUBACK, PUBREC, PUBREL and PUBCOMP share one shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PubResp {
    /// Packet identifier being acknowledged.
    pub packet_id: PacketId,
    /// MQTT 5 reason code (SUCCESS when absent on the wire).
    pub reason_code: ReasonCode,
    /// MQTT 5 properties.
    pub properties: AckProperties,
}

/// Reason String and User Properties: the properties of PUBACK, PUBREC, PUBREL, PUBCOMP,
/// SUBACK and UNSUBACK.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AckProperties {
    /// 0x1F Reason String.
    pub reason_string: Option<ByteString>,
    /// 0x26 User Properties.
    pub user_properties: UserProperties,
}

/// Subscription options of one SUBSCRIBE entry (MQTT 5, 3.8.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SubscriptionOptions {
    /// Maximum QoS.
    pub qos: QoS,
    /// No Local.
    pub no_local: bool,
    /// Retain As Published.
    pub retain_as_published: bool,
    /// Retain Handling: 0 send on subscribe, 1 only for new subscriptions, 2 never.
    pub retain_handling: RetainHandling,
}

/// Retain Handling option.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RetainHandling {
    /// 0: send retained messages at the time of the subscribe.
    #[default]
    OnSubscribe = 0,
    /// 1: only if the subscription does not currently exist.
    OnNewSubscribe = 1,
    /// 2: do not send retained messages.
    Never = 2,
}

/// SUBSCRIBE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscribe {
    /// Packet identifier.
    pub packet_id: PacketId,
    /// MQTT 5 properties.
    pub properties: SubscribeProperties,
    /// Topic filters (not yet validated) with their options; at least one [MQTT-3.8.3-3].
    pub filters: Vec<(ByteString, SubscriptionOptions)>,
}

/// SUBSCRIBE properties.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubscribeProperties {
    /// 0x0B Subscription Identifier (1..=268435455; 0 is a protocol error).
    pub subscription_identifier: Option<u32>,
    /// 0x26 User Properties.
    pub user_properties: UserProperties,
}

/// SUBACK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubAck {
    /// Packet identifier.
    pub packet_id: PacketId,
    /// MQTT 5 properties.
    pub properties: AckProperties,
    /// One code per filter: granted QoS 0..2 or a failure (>= 0x80; 3.1.1 encodes 0x80).
    pub reason_codes: Vec<ReasonCode>,
}

/// UNSUBSCRIBE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsubscribe {
    /// Packet identifier.
    pub packet_id: PacketId,
    /// 0x26 User Properties (the only UNSUBSCRIBE property).
    pub user_properties: UserProperties,
    /// Topic filters; at least one [MQTT-3.10.3-2].
    pub filters: Vec<ByteString>,
}

/// UNSUBACK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsubAck {
    /// Packet identifier.
    pub packet_id: PacketId,
    /// MQTT 5 properties.
    pub properties: AckProperties,
    /// MQTT 5: one code per filter. Not encoded for 3.x; empty when decoded from 3.x.
    pub reason_codes: Vec<ReasonCode>,
}

/// DISCONNECT.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Disconnect {
    /// MQTT 5 reason code (NORMAL_DISCONNECTION when absent).
    pub reason_code: ReasonCode,
    /// MQTT 5 properties.
    pub properties: DisconnectProperties,
}

impl Default for ReasonCode {
    fn default() -> Self {
        ReasonCode::SUCCESS
    }
}

/// DISCONNECT properties.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DisconnectProperties {
    /// 0x11 Session Expiry Interval (client to server only).
    pub session_expiry_interval: Option<u32>,
    /// 0x1F Reason String.
    pub reason_string: Option<ByteString>,
    /// 0x26 User Properties.
    pub user_properties: UserProperties,
    /// 0x1C Server Reference.
    pub server_reference: Option<ByteString>,
}

/// AUTH (MQTT 5 only).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Auth {
    /// 0x00 success, 0x18 continue authentication, 0x19 re-authenticate.
    pub reason_code: ReasonCode,
    /// Properties.
    pub properties: AuthProperties,
}

/// AUTH properties.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthProperties {
    /// 0x15 Authentication Method.
    pub authentication_method: Option<ByteString>,
    /// 0x16 Authentication Data.
    pub authentication_data: Option<Bytes>,
    /// 0x1F Reason String.
    pub reason_string: Option<ByteString>,
    /// 0x26 User Properties.
    pub user_properties: UserProperties,
}
