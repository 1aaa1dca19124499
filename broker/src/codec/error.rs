//! Decode and encode errors of the codec, each mapped to the MQTT 5 reason code the
//! connection should answer with.
//!
//! This module knows the reason-code vocabulary only; it does not decide whether a
//! DISCONNECT or a CONNACK is sent, which is the connection's business.

use crate::types::ReasonCode;

/// A packet could not be decoded: the bytes break the framing or a rule of the specification.
///
/// Identifiers are cited as in MQTT 5.0 and, where the numbering differs, as in 3.1.1.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The socket failed (required by the tokio-util `Decoder` contract).
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// The packet, fixed header included, is larger than the configured maximum.
    #[error("packet of {size} bytes exceeds the maximum of {max} bytes (MQTT 5 3.2.2.3.6)")]
    PacketTooLarge {
        /// Total size announced by the fixed header.
        size: usize,
        /// The configured maximum.
        max: u32,
    },
    /// A variable byte integer continues past its fourth byte.
    #[error("malformed packet: variable byte integer longer than 4 bytes (MQTT 5 1.5.5)")]
    MalformedVariableInteger,
    /// The first packet of a connection is not CONNECT.
    #[error("[MQTT-3.1.0-1] first packet is type {0}, not connect")]
    FirstPacketNotConnect(u8),
    /// The packet type is reserved (0), or AUTH (15) outside MQTT 5.
    #[error("malformed packet: packet type {0} is reserved (MQTT 5 2.1.2)")]
    ReservedPacketType(u8),
    /// The fixed-header flags differ from those of table 2.2.
    #[error(
        "[MQTT-2.1.3-1] [MQTT-2.2.2-1] invalid fixed header flags {flags:#06b} for packet type {packet_type}"
    )]
    InvalidFixedHeaderFlags {
        /// Packet type (upper nibble).
        packet_type: u8,
        /// The received flags (lower nibble).
        flags: u8,
    },
    /// PUBLISH with both QoS bits set.
    #[error("[MQTT-3.3.1-4] publish qos 3")]
    PublishQos3,
    /// PUBLISH QoS 0 with the DUP flag set.
    #[error("[MQTT-3.3.1-2] publish qos 0 with dup set")]
    PublishDupWithQos0,
    /// A packet identifier of 0.
    #[error("[MQTT-2.2.1-3] [MQTT-2.3.1-1] packet identifier is 0")]
    ZeroPacketId,
    /// A length-prefixed field or a fixed-size field runs past the end of the packet.
    #[error("malformed packet: a field runs past the end of the packet")]
    Truncated,
    /// Bytes left inside the remaining length that the packet does not use.
    #[error("malformed packet: {0} unused bytes at the end of the packet")]
    TrailingBytes(usize),
    /// A string is not well-formed UTF-8 (overlong forms and surrogates included).
    #[error("[MQTT-1.5.4-1] [MQTT-1.5.3-1] string is not well-formed utf-8")]
    InvalidUtf8,
    /// A string contains U+0000.
    #[error("[MQTT-1.5.4-2] [MQTT-1.5.3-2] string contains u+0000")]
    NullCharacter,
    /// CONNECT protocol name is neither `MQTT` nor `MQIsdp`.
    #[error("[MQTT-3.1.2-1] unknown protocol name")]
    InvalidProtocolName,
    /// CONNECT announces a known protocol name with an unknown level.
    #[error("[MQTT-3.1.2-2] unsupported protocol level {0}")]
    UnsupportedProtocolVersion(u8),
    /// CONNECT reserved flag (bit 0) is set.
    #[error("[MQTT-3.1.2-3] connect reserved flag is set")]
    ConnectReservedFlag,
    /// Will QoS or Will Retain set while the Will Flag is 0.
    #[error(
        "[MQTT-3.1.2-11] [MQTT-3.1.2-13] [MQTT-3.1.2-15] will qos or will retain set without the will flag"
    )]
    WillFlagsWithoutWill,
    /// Will QoS 3.
    #[error("[MQTT-3.1.2-12] [MQTT-3.1.2-14] will qos 3")]
    WillQos3,
    /// MQTT 3.x: Password Flag without User Name Flag.
    #[error("[MQTT-3.1.2-22] password flag set without user name flag")]
    PasswordWithoutUsername,
    /// CONNACK acknowledge flags bits 7-1 are not 0.
    #[error("[MQTT-3.2.2-1] connack reserved flags are set")]
    ConnAckReservedFlags,
    /// SUBSCRIBE without any topic filter.
    #[error("[MQTT-3.8.3-2] [MQTT-3.8.3-3] subscribe without topic filters")]
    NoSubscribeFilters,
    /// UNSUBSCRIBE without any topic filter.
    #[error("[MQTT-3.10.3-2] unsubscribe without topic filters")]
    NoUnsubscribeFilters,
    /// Reserved bits of a subscription options byte are set.
    #[error("[MQTT-3.8.3-5] [MQTT-3-8.3-4] reserved bits set in subscription options")]
    SubscriptionOptionsReserved,
    /// Requested maximum QoS 3 (MQTT 5 3.8.3.1: protocol error; 3.1.1: malformed).
    #[error("[MQTT-3-8.3-4] subscription qos 3")]
    SubscriptionQos3,
    /// Retain Handling 3 (MQTT 5 3.8.3.1).
    #[error("protocol error: retain handling 3 (MQTT 5 3.8.3.1)")]
    RetainHandling3,
    /// A reason code (or 3.x return code) not defined for this packet type (MQTT 5 table 2-6).
    #[error("protocol error: reason code {code:#04x} is not valid in {packet}")]
    InvalidReasonCode {
        /// Packet name.
        packet: &'static str,
        /// The received code.
        code: u8,
    },
    /// A property identifier that does not exist or is not allowed in this packet.
    #[error("malformed packet: property {id:#04x} is not valid in {packet} (MQTT 5 2.2.2.2)")]
    InvalidProperty {
        /// Packet (or will) name.
        packet: &'static str,
        /// Property identifier.
        id: u32,
    },
    /// A property allowed once appears twice.
    #[error("protocol error: property {0:#04x} included more than once (MQTT 5 2.2.2.2)")]
    DuplicateProperty(u8),
    /// A property value outside its range: a boolean other than 0/1, Receive Maximum 0,
    /// Maximum Packet Size 0, Subscription Identifier 0, Maximum QoS above 1.
    #[error("protocol error: invalid value for property {0:#04x}")]
    InvalidPropertyValue(u8),
}

impl Error {
    /// The MQTT 5 reason code for a DISCONNECT (or CONNACK) caused by this error.
    pub fn reason_code(&self) -> ReasonCode {
        use Error::*;
        match self {
            Io(_) => ReasonCode::UNSPECIFIED_ERROR,
            PacketTooLarge { .. } => ReasonCode::PACKET_TOO_LARGE,
            UnsupportedProtocolVersion(_) => ReasonCode::UNSUPPORTED_PROTOCOL_VERSION,
            FirstPacketNotConnect(_)
            | ZeroPacketId
            | InvalidProtocolName
            | NoSubscribeFilters
            | NoUnsubscribeFilters
            | SubscriptionQos3
            | RetainHandling3
            | InvalidReasonCode { .. }
            | DuplicateProperty(_)
            | InvalidPropertyValue(_) => ReasonCode::PROTOCOL_ERROR,
            MalformedVariableInteger
            | ReservedPacketType(_)
            | InvalidFixedHeaderFlags { .. }
            | PublishQos3
            | PublishDupWithQos0
            | Truncated
            | TrailingBytes(_)
            | InvalidUtf8
            | NullCharacter
            | ConnectReservedFlag
            | WillFlagsWithoutWill
            | WillQos3
            | PasswordWithoutUsername
            | ConnAckReservedFlags
            | SubscriptionOptionsReserved
            | InvalidProperty { .. } => ReasonCode::MALFORMED_PACKET,
        }
    }
}

/// A packet cannot be put on the wire as it is.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    /// The socket failed (required by the tokio-util `Encoder` contract).
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// A string or binary field is longer than 65535 bytes (MQTT 5 1.5.4, 1.5.6).
    #[error("field of {0} bytes exceeds the 65535-byte limit")]
    FieldTooLong(usize),
    /// The remaining length or a variable byte integer exceeds 268435455 (MQTT 5 1.5.5).
    #[error("value {0} exceeds the variable byte integer maximum 268435455")]
    VariableIntegerTooLarge(usize),
    /// PUBLISH with QoS > 0 but no packet identifier [MQTT-2.2.1-3].
    #[error("[MQTT-2.2.1-3] publish qos > 0 without a packet identifier")]
    MissingPacketId,
    /// PUBLISH with QoS 0 and a packet identifier [MQTT-2.2.1-2].
    #[error("[MQTT-2.2.1-2] publish qos 0 with a packet identifier")]
    UnexpectedPacketId,
    /// Subscription Identifier 0 (MQTT 5 3.3.2.3.8).
    #[error("protocol error: subscription identifier 0")]
    ZeroSubscriptionIdentifier,
    /// The packet type does not exist in the target protocol version (AUTH before 5.0).
    #[error("{packet} does not exist in mqtt {version}")]
    NotInVersion {
        /// Packet name.
        packet: &'static str,
        /// Target version.
        version: crate::types::ProtocolVersion,
    },
}
