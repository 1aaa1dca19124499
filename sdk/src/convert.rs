//! Conversions between the generated WIT types and the SDK's plain Rust types.
//!
//! The only place that names both; strings and vectors are moved, never copied. Nothing here
//! calls the host or a plugin.

use crate::bindings::cauldron::plugin::types as wit;
use crate::client::{Client, Credentials, DisconnectReason, Protocol, Will};
use crate::decision::{ConnectDecision, Hooks, SubscribeDecision, Verdict};
use crate::log::Level;
use crate::message::{Message, QoS};

pub(crate) fn pair_to_wit((key, value): (String, String)) -> wit::Pair {
    wit::Pair { key, value }
}

fn pair_from_wit(p: wit::Pair) -> (String, String) {
    (p.key, p.value)
}

pub(crate) fn qos_from_wit(q: wit::Qos) -> QoS {
    match q {
        wit::Qos::AtMostOnce => QoS::AtMostOnce,
        wit::Qos::AtLeastOnce => QoS::AtLeastOnce,
        wit::Qos::ExactlyOnce => QoS::ExactlyOnce,
    }
}

pub(crate) fn qos_to_wit(q: QoS) -> wit::Qos {
    match q {
        QoS::AtMostOnce => wit::Qos::AtMostOnce,
        QoS::AtLeastOnce => wit::Qos::AtLeastOnce,
        QoS::ExactlyOnce => wit::Qos::ExactlyOnce,
    }
}

#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
pub(crate) fn level_to_wit(l: Level) -> wit::LogLevel {
    match l {
        Level::Trace => wit::LogLevel::Trace,
        Level::Debug => wit::LogLevel::Debug,
        Level::Info => wit::LogLevel::Info,
        Level::Warn => wit::LogLevel::Warn,
        Level::Error => wit::LogLevel::Error,
    }
}

pub(crate) fn hooks_to_wit(h: Hooks) -> wit::HookSet {
    wit::HookSet::from_bits_truncate(h.bits())
}

pub(crate) fn client_from_wit(c: wit::Client) -> Client {
    Client {
        client_id: c.client_id,
        username: c.username,
        protocol: match c.protocol {
            wit::ProtocolVersion::V31 => Protocol::V31,
            wit::ProtocolVersion::V311 => Protocol::V311,
            wit::ProtocolVersion::V5 => Protocol::V5,
        },
        remote_addr: c.remote_addr,
        listener: c.listener,
        tls_peer: c.tls_peer,
        keep_alive_secs: c.keep_alive,
        clean_start: c.clean_start,
        will: c.will.map(|w| Will {
            topic: w.topic,
            qos: qos_from_wit(w.qos),
            retain: w.retain,
        }),
        attributes: c.attributes.into_iter().map(pair_from_wit).collect(),
    }
}

pub(crate) fn credentials_from_wit(c: wit::Credentials) -> Credentials {
    Credentials {
        username: c.username,
        password: c.password,
    }
}

pub(crate) fn message_from_wit(m: wit::Message) -> Message {
    let message = Message {
        topic: m.topic,
        payload: m.payload,
        qos: qos_from_wit(m.qos),
        retain: m.retain,
        ..Message::default()
    };
    let Some(p) = m.properties else {
        return message;
    };
    Message {
        user_properties: p.user_properties.into_iter().map(pair_from_wit).collect(),
        content_type: p.content_type,
        response_topic: p.response_topic,
        correlation_data: p.correlation_data,
        payload_utf8: p.payload_utf8,
        message_expiry_secs: p.message_expiry_secs,
        ..message
    }
}

/// `none` when `m` has no MQTT 5 property, which the WIT defines as the same as all of
/// them empty and costs the broker nothing to read.
pub(crate) fn message_to_wit(m: Message) -> wit::Message {
    let none = m.user_properties.is_empty()
        && m.content_type.is_none()
        && m.response_topic.is_none()
        && m.correlation_data.is_none()
        && !m.payload_utf8
        && m.message_expiry_secs.is_none();
    wit::Message {
        topic: m.topic,
        payload: m.payload,
        qos: qos_to_wit(m.qos),
        retain: m.retain,
        properties: (!none).then(|| wit::Properties {
            user_properties: m.user_properties.into_iter().map(pair_to_wit).collect(),
            content_type: m.content_type,
            response_topic: m.response_topic,
            correlation_data: m.correlation_data,
            payload_utf8: m.payload_utf8,
            message_expiry_secs: m.message_expiry_secs,
        }),
    }
}

pub(crate) fn disconnect_reason_from_wit(r: wit::DisconnectReason) -> DisconnectReason {
    match r {
        wit::DisconnectReason::Normal => DisconnectReason::Normal,
        wit::DisconnectReason::WithWill => DisconnectReason::WithWill,
        wit::DisconnectReason::ConnectionLost => DisconnectReason::ConnectionLost,
        wit::DisconnectReason::ProtocolError => DisconnectReason::ProtocolError,
        wit::DisconnectReason::KeepAliveTimeout => DisconnectReason::KeepAliveTimeout,
        wit::DisconnectReason::TakenOver => DisconnectReason::TakenOver,
        wit::DisconnectReason::ServerShutdown => DisconnectReason::ServerShutdown,
    }
}

fn refusal(code: u8, reason: String) -> wit::Refusal {
    wit::Refusal {
        reason_code: code,
        reason,
    }
}

pub(crate) fn connect_decision_to_wit(d: ConnectDecision) -> wit::ConnectDecision {
    match d {
        ConnectDecision::Allow(attrs) => {
            wit::ConnectDecision::Allow(attrs.into_iter().map(pair_to_wit).collect())
        }
        ConnectDecision::Deny { code, reason } => wit::ConnectDecision::Deny(refusal(code, reason)),
        ConnectDecision::NoOpinion => wit::ConnectDecision::NoOpinion,
    }
}

pub(crate) fn subscribe_decision_to_wit(d: SubscribeDecision) -> wit::SubscribeDecision {
    match d {
        SubscribeDecision::Allow(q) => wit::SubscribeDecision::Allow(qos_to_wit(q)),
        SubscribeDecision::Deny { code, reason } => {
            wit::SubscribeDecision::Deny(refusal(code, reason))
        }
        SubscribeDecision::NoOpinion => wit::SubscribeDecision::NoOpinion,
    }
}

pub(crate) fn verdict_to_wit(v: Verdict) -> wit::PublishDecision {
    match v {
        Verdict::Continue => wit::PublishDecision::Continue,
        Verdict::Replace(m) => wit::PublishDecision::Replace(message_to_wit(m)),
        Verdict::Drop { code, reason } => wit::PublishDecision::Drop(refusal(code, reason)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full_message() -> Message {
        Message::new("a/b", vec![1, 2, 3])
            .with_qos(QoS::ExactlyOnce)
            .with_retain(true)
            .with_user_property("k", "v")
            .with_content_type("application/json")
            .with_response_topic("reply/to")
            .with_correlation_data(vec![9])
            .with_payload_utf8(true)
            .with_message_expiry_secs(30)
    }

    #[test]
    fn message_round_trips_through_wit() {
        let m = full_message();
        assert_eq!(message_from_wit(message_to_wit(m.clone())), m);
    }

    #[test]
    fn a_message_without_properties_is_sent_with_none() {
        let m = Message::new("a/b", vec![1]).with_qos(QoS::AtLeastOnce);
        let wire = message_to_wit(m.clone());
        assert!(wire.properties.is_none());
        assert_eq!(message_from_wit(wire), m);
    }

    #[test]
    fn any_one_property_is_sent_and_kept() {
        let base = || Message::new("a/b", Vec::new());
        for m in [
            base().with_user_property("k", "v"),
            base().with_content_type("text/plain"),
            base().with_response_topic("r"),
            base().with_correlation_data(vec![0]),
            base().with_payload_utf8(true),
            base().with_message_expiry_secs(0),
        ] {
            let wire = message_to_wit(m.clone());
            assert!(wire.properties.is_some(), "{m:?}");
            assert_eq!(message_from_wit(wire), m);
        }
    }

    #[test]
    fn client_from_wit_keeps_every_field() {
        let c = client_from_wit(wit::Client {
            client_id: "c1".into(),
            username: Some("u".into()),
            protocol: wit::ProtocolVersion::V311,
            remote_addr: "10.0.0.1:5000".into(),
            listener: "tls".into(),
            tls_peer: Some("CN=c1".into()),
            keep_alive: 30,
            clean_start: false,
            will: Some(wit::Will {
                topic: "w".into(),
                qos: wit::Qos::AtLeastOnce,
                retain: true,
            }),
            attributes: vec![wit::Pair {
                key: "tenant".into(),
                value: "acme".into(),
            }],
        });
        let expected = Client::new("c1")
            .with_username("u")
            .with_protocol(Protocol::V311)
            .with_remote_addr("10.0.0.1:5000")
            .with_listener("tls")
            .with_tls_peer("CN=c1")
            .with_keep_alive_secs(30)
            .with_clean_start(false)
            .with_will(Will {
                topic: "w".into(),
                qos: QoS::AtLeastOnce,
                retain: true,
            })
            .with_attribute("tenant", "acme");
        assert_eq!(c, expected);
    }

    #[test]
    fn decisions_map_to_wit_variants() {
        match connect_decision_to_wit(ConnectDecision::allow_with([("role", "r")])) {
            wit::ConnectDecision::Allow(p) => assert_eq!(p[0].value, "r"),
            other => panic!("{other:?}"),
        }
        match subscribe_decision_to_wit(SubscribeDecision::deny_with(0x8F, "bad")) {
            wit::SubscribeDecision::Deny(r) => {
                assert_eq!((r.reason_code, r.reason.as_str()), (0x8F, "bad"))
            }
            other => panic!("{other:?}"),
        }
        match verdict_to_wit(Verdict::Replace(full_message())) {
            wit::PublishDecision::Replace(m) => assert_eq!(m.topic, "a/b"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            verdict_to_wit(Verdict::Continue),
            wit::PublishDecision::Continue
        ));
    }

    #[test]
    fn hooks_map_to_the_same_wit_flags() {
        let h = hooks_to_wit(Hooks::CONNECT | Hooks::DISCONNECT);
        assert_eq!(h, wit::HookSet::CONNECT | wit::HookSet::DISCONNECT);
        assert_eq!(hooks_to_wit(Hooks::ALL), wit::HookSet::all());
    }

    #[test]
    fn levels_and_reasons_map_one_to_one() {
        assert_eq!(level_to_wit(Level::Warn), wit::LogLevel::Warn);
        assert_eq!(
            disconnect_reason_from_wit(wit::DisconnectReason::TakenOver),
            DisconnectReason::TakenOver
        );
        assert_eq!(qos_from_wit(qos_to_wit(QoS::AtLeastOnce)), QoS::AtLeastOnce);
    }
}
