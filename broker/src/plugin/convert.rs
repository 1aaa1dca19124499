//! Conversions between the broker's domain types and the WIT types, and the validation
//! of everything a plugin returns: topic syntax, QoS, sizes, reason codes.
//!
//! An answer that breaks a rule is an [`Invalid`], which the caller counts as a plugin
//! failure. Nothing here calls into wasm.

use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;
use bytestring::ByteString;

use super::bindings::wit;
use super::{ClientInfo, ConnectOutcome, Credentials, DisconnectReason, SubscribeOutcome};
use crate::message::{Message, MessageProperties};
use crate::topic::{self, TopicName};
use crate::types::{ProtocolVersion, QoS, ReasonCode};

/// Largest payload a plugin may hand back: MQTT's largest Remaining Length.
pub(super) const MAX_PAYLOAD_BYTES: usize = 268_435_455;
/// MQTT strings and binary data are length-prefixed by a u16.
pub(super) const MAX_STRING_BYTES: usize = 65_535;
/// Most user properties on one message.
pub(super) const MAX_USER_PROPERTIES: usize = 4096;
/// Most attributes one `on-connect` may grant.
pub(super) const MAX_ATTRIBUTES: usize = 64;

/// Why an answer is invalid.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Invalid {
    /// A topic name that MQTT rejects.
    #[error("topic `{topic}`: {source}")]
    Topic {
        /// The topic as returned (cut to 100 bytes).
        topic: String,
        /// The rule it breaks.
        source: topic::Error,
    },
    /// A topic starting with `$`, which is reserved for the broker.
    #[error("topic `{0}` starts with `$`, which is reserved for the broker")]
    ReservedTopic(String),
    /// A deny or drop with a success code.
    #[error("reason code 0x{0:02X} is not a failure code (0x80 and above)")]
    NotAFailureCode(u8),
    /// A failure code that the packet carrying it does not allow.
    #[error("reason code 0x{code:02X} is not allowed in {packet}")]
    CodeNotAllowed {
        /// The code returned.
        code: u8,
        /// The packet that would carry it.
        packet: &'static str,
    },
    /// A subscription granted above the requested QoS.
    #[error("granted QoS {granted} is above the requested QoS {requested}")]
    QosAboveRequested {
        /// The QoS granted.
        granted: u8,
        /// The QoS the client asked for.
        requested: u8,
    },
    /// A field over its size limit.
    #[error("{field} is {len} bytes, over the limit of {max}")]
    TooLong {
        /// The field.
        field: &'static str,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// `on-publish-batch` answered a different number of decisions than messages.
    #[error("on-publish-batch answered {answered} decisions for {messages} messages")]
    BatchLength {
        /// Messages in the call.
        messages: usize,
        /// Decisions in the answer.
        answered: usize,
    },
    /// Too many pairs in a list.
    #[error("{field} has {len} entries, over the limit of {max}")]
    TooMany {
        /// The field.
        field: &'static str,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// `payload-utf8` set on a payload that is not UTF-8.
    #[error("payload-utf8 is set but the payload is not valid UTF-8")]
    PayloadNotUtf8,
    /// The answer belongs to another hook (a host bug if it ever happens).
    #[error("answer of the wrong hook")]
    WrongHook,
}

pub(super) fn qos(q: QoS) -> wit::Qos {
    match q {
        QoS::AtMostOnce => wit::Qos::AtMostOnce,
        QoS::AtLeastOnce => wit::Qos::AtLeastOnce,
        QoS::ExactlyOnce => wit::Qos::ExactlyOnce,
    }
}

fn qos_from(q: wit::Qos) -> QoS {
    match q {
        wit::Qos::AtMostOnce => QoS::AtMostOnce,
        wit::Qos::AtLeastOnce => QoS::AtLeastOnce,
        wit::Qos::ExactlyOnce => QoS::ExactlyOnce,
    }
}

fn pairs(list: &[(String, String)]) -> Vec<wit::PairResult> {
    list.iter()
        .map(|(key, value)| wit::PairResult {
            key: key.clone(),
            value: value.clone(),
        })
        .collect()
}

/// The WIT record of a client, as `host.current-client` answers it.
pub(super) fn client(c: &ClientInfo) -> wit::ClientResult {
    wit::ClientResult {
        client_id: c.client_id.as_str().to_owned(),
        username: c.username.clone(),
        protocol: match c.protocol {
            ProtocolVersion::V3_1 => wit::ProtocolVersion::V31,
            ProtocolVersion::V3_1_1 => wit::ProtocolVersion::V311,
            ProtocolVersion::V5 => wit::ProtocolVersion::V5,
        },
        remote_addr: addr_text(&c.remote_addr),
        listener: c.listener.to_string(),
        tls_peer: c.tls_peer.clone(),
        keep_alive: c.keep_alive,
        clean_start: c.clean_start,
        will: c.will.as_ref().map(|w| wit::WillResult {
            topic: w.topic.as_str().to_owned(),
            qos: qos(w.qos),
            retain: w.retain,
        }),
        attributes: pairs(&c.attributes),
    }
}

/// `ip:port` as `SocketAddr`'s `Display` writes it, without the formatting machinery
/// for IPv4 (this runs on every hook call).
fn addr_text(addr: &SocketAddr) -> String {
    let SocketAddr::V4(v4) = addr else {
        return addr.to_string();
    };
    let mut out = String::with_capacity(21);
    for (i, octet) in v4.ip().octets().into_iter().enumerate() {
        if i > 0 {
            out.push('.');
        }
        push_decimal(&mut out, u32::from(octet));
    }
    out.push(':');
    push_decimal(&mut out, u32::from(v4.port()));
    out
}

fn push_decimal(out: &mut String, mut n: u32) {
    let mut digits = [0u8; 10];
    let mut len = 0;
    loop {
        // invariant: n % 10 < 10, so the cast cannot truncate.
        digits[len] = b'0' + (n % 10) as u8;
        len += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for d in digits[..len].iter().rev() {
        out.push(char::from(*d));
    }
}

/// The attributes of `c` in the form [`client_param`] borrows.
pub(super) fn attribute_params(c: &wit::ClientResult) -> Vec<wit::PairParam<'_>> {
    c.attributes
        .iter()
        .map(|p| wit::PairParam {
            key: &p.key,
            value: &p.value,
        })
        .collect()
}

/// `c` as `on-connect` takes it, borrowing `c` and its `attributes`.
pub(super) fn client_param<'a>(
    c: &'a wit::ClientResult,
    attributes: &'a [wit::PairParam<'a>],
) -> wit::ClientParam<'a> {
    wit::ClientParam {
        client_id: &c.client_id,
        username: c.username.as_deref(),
        protocol: c.protocol,
        remote_addr: &c.remote_addr,
        listener: &c.listener,
        tls_peer: c.tls_peer.as_deref(),
        keep_alive: c.keep_alive,
        clean_start: c.clean_start,
        will: c.will.as_ref().map(|w| wit::WillParam {
            topic: &w.topic,
            qos: w.qos,
            retain: w.retain,
        }),
        attributes,
    }
}

pub(super) fn credentials(c: &Credentials) -> wit::Credentials<'_> {
    wit::Credentials {
        username: c.username.as_deref(),
        password: c.password.as_deref(),
    }
}

pub(super) fn disconnect_reason(r: DisconnectReason) -> wit::DisconnectReason {
    match r {
        DisconnectReason::Normal => wit::DisconnectReason::Normal,
        DisconnectReason::WithWill => wit::DisconnectReason::WithWill,
        DisconnectReason::ConnectionLost => wit::DisconnectReason::ConnectionLost,
        DisconnectReason::ProtocolError => wit::DisconnectReason::ProtocolError,
        DisconnectReason::KeepAliveTimeout => wit::DisconnectReason::KeepAliveTimeout,
        DisconnectReason::TakenOver => wit::DisconnectReason::TakenOver,
        DisconnectReason::ServerShutdown => wit::DisconnectReason::ServerShutdown,
    }
}

/// The user properties of `m` in the form [`message`] borrows.
pub(super) fn user_property_params(m: &Message) -> Vec<wit::PairParam<'_>> {
    m.properties
        .user_properties
        .iter()
        .map(|(key, value)| wit::PairParam {
            key: key.as_ref(),
            value: value.as_ref(),
        })
        .collect()
}

/// The WIT record of a message, borrowing `m` and its `user_properties` (see
/// [`user_property_params`]); the expiry is the time left now. A message without MQTT 5
/// properties gets `properties: none`, which the plugin lowers no field of.
pub(super) fn message<'a>(
    m: &'a Message,
    user_properties: &'a [wit::PairParam<'a>],
) -> wit::MessageParam<'a> {
    let p = &m.properties;
    let message_expiry_secs = m
        .expires_at
        .and_then(|_| m.remaining_expiry_secs(Instant::now()));
    let payload_utf8 = p.payload_format_indicator == Some(1);
    let none = user_properties.is_empty()
        && p.content_type.is_none()
        && p.response_topic.is_none()
        && p.correlation_data.is_none()
        && !payload_utf8
        && message_expiry_secs.is_none();
    wit::MessageParam {
        topic: m.topic.as_str(),
        payload: &m.payload,
        qos: qos(m.qos),
        retain: m.retain,
        properties: (!none).then(|| wit::PropertiesParam {
            user_properties,
            content_type: p.content_type.as_ref().map(AsRef::as_ref),
            response_topic: p.response_topic.as_ref().map(AsRef::as_ref),
            correlation_data: p.correlation_data.as_deref(),
            payload_utf8,
            message_expiry_secs,
        }),
    }
}

/// The expiry a message's WIT record carries, in seconds.
pub(super) fn expiry_secs(m: &wit::MessageParam<'_>) -> Option<u32> {
    m.properties.as_ref().and_then(|p| p.message_expiry_secs)
}

/// Failure codes a CONNACK may carry (MQTT 5 3.2.2.2).
const CONNACK_FAILURES: &[u8] = &[
    0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A, 0x8C, 0x90, 0x95, 0x97, 0x99,
    0x9A, 0x9B, 0x9C, 0x9D, 0x9F,
];
/// Failure codes a SUBACK may carry (MQTT 5 3.9.3).
const SUBACK_FAILURES: &[u8] = &[0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2];
/// Failure codes a PUBACK or PUBREC may carry (MQTT 5 3.4.2.1, 3.5.2.1).
const PUBACK_FAILURES: &[u8] = &[0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99];

/// A refusal whose code the `packet` that carries it allows: CONNACK [MQTT-3.2.2-8],
/// SUBACK [MQTT-3.9.3-2], PUBACK [MQTT-3.4.2-1] and PUBREC [MQTT-3.5.2-1].
fn refusal(
    r: wit::Refusal,
    allowed: &[u8],
    packet: &'static str,
) -> Result<(ReasonCode, String), Invalid> {
    if r.reason_code < 0x80 {
        return Err(Invalid::NotAFailureCode(r.reason_code));
    }
    if !allowed.contains(&r.reason_code) {
        return Err(Invalid::CodeNotAllowed {
            code: r.reason_code,
            packet,
        });
    }
    check_len("reason", r.reason.len(), MAX_STRING_BYTES)?;
    Ok((ReasonCode(r.reason_code), r.reason))
}

fn check_len(field: &'static str, len: usize, max: usize) -> Result<(), Invalid> {
    if len > max {
        return Err(Invalid::TooLong { field, len, max });
    }
    Ok(())
}

fn check_count(field: &'static str, len: usize, max: usize) -> Result<(), Invalid> {
    if len > max {
        return Err(Invalid::TooMany { field, len, max });
    }
    Ok(())
}

pub(super) fn connect_decision(d: wit::ConnectDecision) -> Result<ConnectOutcome, Invalid> {
    Ok(match d {
        wit::ConnectDecision::Allow(attributes) => {
            check_count("attributes", attributes.len(), MAX_ATTRIBUTES)?;
            for pair in &attributes {
                check_len("attribute key", pair.key.len(), MAX_STRING_BYTES)?;
                check_len("attribute value", pair.value.len(), MAX_STRING_BYTES)?;
            }
            ConnectOutcome::Allow {
                attributes: attributes.into_iter().map(|p| (p.key, p.value)).collect(),
            }
        }
        wit::ConnectDecision::Deny(r) => {
            let (reason_code, reason) = refusal(r, CONNACK_FAILURES, "CONNACK")?;
            ConnectOutcome::Deny {
                reason_code,
                reason,
            }
        }
        wit::ConnectDecision::NoOpinion => ConnectOutcome::NoOpinion,
    })
}

pub(super) fn subscribe_decision(
    d: wit::SubscribeDecision,
    requested: QoS,
) -> Result<SubscribeOutcome, Invalid> {
    Ok(match d {
        wit::SubscribeDecision::Allow(granted) => {
            let granted = qos_from(granted);
            if granted > requested {
                return Err(Invalid::QosAboveRequested {
                    granted: granted.as_u8(),
                    requested: requested.as_u8(),
                });
            }
            SubscribeOutcome::Allow(granted)
        }
        wit::SubscribeDecision::Deny(r) => {
            let (reason_code, reason) = refusal(r, SUBACK_FAILURES, "SUBACK")?;
            SubscribeOutcome::Deny {
                reason_code,
                reason,
            }
        }
        wit::SubscribeDecision::NoOpinion => SubscribeOutcome::NoOpinion,
    })
}

/// A drop's reason code and reason, validated.
pub(super) fn drop_refusal(r: wit::Refusal) -> Result<(ReasonCode, String), Invalid> {
    refusal(r, PUBACK_FAILURES, "PUBACK/PUBREC")
}

fn topic_name(s: String, field: &'static str) -> Result<TopicName, Invalid> {
    check_len(field, s.len(), MAX_STRING_BYTES)?;
    if s.starts_with('$') {
        return Err(Invalid::ReservedTopic(cut(&s)));
    }
    let shown = cut(&s);
    TopicName::new(s).map_err(|source| Invalid::Topic {
        topic: shown,
        source,
    })
}

fn cut(s: &str) -> String {
    s.chars().take(100).collect()
}

fn short_string(s: String, field: &'static str) -> Result<ByteString, Invalid> {
    check_len(field, s.len(), MAX_STRING_BYTES)?;
    Ok(ByteString::from(s))
}

/// A message a plugin returned (`replace`) or published, validated. `original` is the
/// message it replaces: its publisher is kept, and so is its expiry instant when the
/// plugin returned the expiry unchanged.
pub(super) fn validated_message(
    m: wit::MessageResult,
    original: Option<(&Message, Option<u32>)>,
) -> Result<Message, Invalid> {
    let wit::MessageResult {
        topic,
        payload,
        qos,
        retain,
        properties,
    } = m;
    let p = properties.unwrap_or_else(|| wit::PropertiesResult {
        user_properties: Vec::new(),
        content_type: None,
        response_topic: None,
        correlation_data: None,
        payload_utf8: false,
        message_expiry_secs: None,
    });
    check_len("payload", payload.len(), MAX_PAYLOAD_BYTES)?;
    if p.payload_utf8 && std::str::from_utf8(&payload).is_err() {
        return Err(Invalid::PayloadNotUtf8);
    }
    check_count(
        "user-properties",
        p.user_properties.len(),
        MAX_USER_PROPERTIES,
    )?;
    let mut user_properties = Vec::with_capacity(p.user_properties.len());
    for pair in p.user_properties {
        user_properties.push((
            short_string(pair.key, "user property key")?,
            short_string(pair.value, "user property value")?,
        ));
    }
    if let Some(data) = &p.correlation_data {
        check_len("correlation-data", data.len(), MAX_STRING_BYTES)?;
    }
    let expires_at = match original {
        Some((orig, sent)) if sent == p.message_expiry_secs => orig.expires_at,
        _ => Message::expiry_deadline(p.message_expiry_secs, Instant::now),
    };
    Ok(Message {
        topic: topic_name(topic, "topic")?,
        payload: Bytes::from(payload),
        qos: qos_from(qos),
        retain,
        properties: MessageProperties {
            payload_format_indicator: p.payload_utf8.then_some(1),
            content_type: p
                .content_type
                .map(|s| short_string(s, "content-type"))
                .transpose()?,
            response_topic: p
                .response_topic
                .map(|s| topic_name(s, "response-topic").map(TopicName::into_inner))
                .transpose()?,
            correlation_data: p.correlation_data.map(Bytes::from),
            user_properties,
        },
        expires_at,
        publisher: original.and_then(|(orig, _)| orig.publisher.clone()),
    })
}

/// A message a plugin publishes through `host.publish`: made by the broker.
pub(super) fn new_message(m: wit::MessageResult) -> Result<Message, Invalid> {
    validated_message(m, None)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn addr_text_matches_display() {
        for addr in [
            "127.0.0.1:1883",
            "0.0.0.0:0",
            "255.255.255.255:65535",
            "[::1]:8883",
            "10.20.0.9:50000",
        ] {
            let addr: SocketAddr = addr.parse().unwrap();
            assert_eq!(addr_text(&addr), addr.to_string());
        }
    }

    fn plain() -> Message {
        Message {
            topic: TopicName::new("a/b").unwrap(),
            payload: Bytes::from_static(b"p"),
            qos: QoS::AtLeastOnce,
            retain: false,
            properties: MessageProperties::default(),
            expires_at: None,
            publisher: None,
        }
    }

    #[test]
    fn a_message_without_properties_is_passed_with_none() {
        let m = plain();
        assert!(message(&m, &[]).properties.is_none());
    }

    #[test]
    fn any_one_property_is_passed() {
        let with = |f: fn(&mut Message)| {
            let mut m = plain();
            f(&mut m);
            m
        };
        let messages = [
            with(|m| m.properties.content_type = Some("text/plain".into())),
            with(|m| m.properties.response_topic = Some("r".into())),
            with(|m| m.properties.correlation_data = Some(Bytes::from_static(b"\x00"))),
            with(|m| m.properties.payload_format_indicator = Some(1)),
            with(|m| m.expires_at = Message::expiry_deadline(Some(60), Instant::now)),
        ];
        for m in &messages {
            assert!(message(m, &[]).properties.is_some(), "{m:?}");
        }
        let m = with(|m| m.properties.user_properties = vec![("k".into(), "v".into())]);
        let pairs = user_property_params(&m);
        let wire = message(&m, &pairs);
        assert_eq!(wire.properties.unwrap().user_properties[0].key, "k");
    }

    #[test]
    fn an_answer_with_no_properties_means_none_of_them() {
        let m = validated_message(
            wit::MessageResult {
                topic: "x/y".into(),
                payload: b"q".to_vec(),
                qos: wit::Qos::ExactlyOnce,
                retain: true,
                properties: None,
            },
            None,
        )
        .unwrap();
        assert_eq!(m.topic.as_str(), "x/y");
        assert_eq!(m.qos, QoS::ExactlyOnce);
        assert!(m.retain);
        assert_eq!(m.properties, MessageProperties::default());
        assert_eq!(m.expires_at, None);
    }

    fn refused(code: u8) -> wit::Refusal {
        wit::Refusal {
            reason_code: code,
            reason: String::new(),
        }
    }

    #[test]
    fn drop_code_must_be_one_a_puback_carries() {
        // [MQTT-3.4.2-1]: 0x96 (message rate too high) is a DISCONNECT code only.
        assert_eq!(
            drop_refusal(refused(0x96)),
            Err(Invalid::CodeNotAllowed {
                code: 0x96,
                packet: "PUBACK/PUBREC"
            })
        );
        assert_eq!(drop_refusal(refused(0x97)).unwrap().0, ReasonCode(0x97));
    }

    #[test]
    fn deny_codes_must_be_ones_their_ack_carries() {
        let connect = connect_decision(wit::ConnectDecision::Deny(refused(0x8F)));
        assert!(matches!(
            connect,
            Err(Invalid::CodeNotAllowed { code: 0x8F, .. })
        ));
        let subscribe = subscribe_decision(
            wit::SubscribeDecision::Deny(refused(0x86)),
            QoS::AtLeastOnce,
        );
        assert!(matches!(
            subscribe,
            Err(Invalid::CodeNotAllowed { code: 0x86, .. })
        ));
        let ok = subscribe_decision(wit::SubscribeDecision::Deny(refused(0x8F)), QoS::AtMostOnce);
        assert!(ok.is_ok(), "0x8F (topic filter invalid) is a SUBACK code");
    }
}
