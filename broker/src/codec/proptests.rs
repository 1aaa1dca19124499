//! Property tests: arbitrary valid packets survive encode → decode for every version, with
//! `encoded_len` exact; arbitrary or corrupted bytes never panic the decoder.

#![allow(clippy::unwrap_used)] // tests may unwrap

use bytes::{Bytes, BytesMut};
use bytestring::ByteString;
use proptest::collection::vec;
use proptest::option::of;
use proptest::prelude::*;
use proptest::sample::select;
use proptest::strategy::Union;

use super::ack::AckKind;
use super::connect::CONNACK_CODES;
use super::disconnect::{AUTH_CODES, DISCONNECT_CODES};
use super::subscribe::{SUBACK_CODES, UNSUBACK_CODES};
use super::*;
use crate::types::{PacketId, ProtocolVersion, QoS, ReasonCode};

fn text() -> impl Strategy<Value = ByteString> {
    "[a-z0-9/#+ é€\u{1}]{0,8}".prop_map(ByteString::from)
}

fn data() -> impl Strategy<Value = Bytes> {
    vec(any::<u8>(), 0..12).prop_map(Bytes::from)
}

fn user_properties() -> impl Strategy<Value = UserProperties> {
    vec((text(), text()), 0..3)
}

fn packet_id() -> impl Strategy<Value = PacketId> {
    (1..=u16::MAX).prop_map(|n| PacketId::new(n).unwrap_or(PacketId::MIN))
}

fn qos() -> impl Strategy<Value = QoS> {
    prop_oneof![
        Just(QoS::AtMostOnce),
        Just(QoS::AtLeastOnce),
        Just(QoS::ExactlyOnce)
    ]
}

fn reason(codes: &'static [u8]) -> impl Strategy<Value = ReasonCode> {
    select(codes).prop_map(ReasonCode)
}

fn subscription_identifier() -> impl Strategy<Value = u32> {
    1..=268_435_455u32
}

/// `strategy` for MQTT 5, the default value (no properties) for 3.x.
fn v5_only<T, S>(v: ProtocolVersion, strategy: S) -> BoxedStrategy<T>
where
    T: Default + Clone + std::fmt::Debug + 'static,
    S: Strategy<Value = T> + 'static,
{
    if v.is_v5() {
        strategy.boxed()
    } else {
        Just(T::default()).boxed()
    }
}

fn ack_properties() -> impl Strategy<Value = AckProperties> {
    (of(text()), user_properties()).prop_map(|(reason_string, user_properties)| AckProperties {
        reason_string,
        user_properties,
    })
}

fn connect_properties() -> impl Strategy<Value = ConnectProperties> {
    (
        (
            of(any::<u32>()),
            of(1..=u16::MAX),
            of(1..=u32::MAX),
            of(any::<u16>()),
        ),
        (of(any::<bool>()), of(any::<bool>()), user_properties()),
        (of(text()), of(data())),
    )
        .prop_map(
            |((sei, rm, mps, tam), (rri, rpi, up), (am, ad))| ConnectProperties {
                session_expiry_interval: sei,
                receive_maximum: rm,
                maximum_packet_size: mps,
                topic_alias_maximum: tam,
                request_response_information: rri,
                request_problem_information: rpi,
                user_properties: up,
                authentication_method: am,
                authentication_data: ad,
            },
        )
}

fn will(v: ProtocolVersion) -> impl Strategy<Value = LastWill> {
    let properties = (
        (of(any::<u32>()), of(0u8..=1), of(any::<u32>())),
        (of(text()), of(text()), of(data()), user_properties()),
    )
        .prop_map(|((wdi, pfi, mei), (ct, rt, cd, up))| WillProperties {
            will_delay_interval: wdi,
            payload_format_indicator: pfi,
            message_expiry_interval: mei,
            content_type: ct,
            response_topic: rt,
            correlation_data: cd,
            user_properties: up,
        });
    (text(), data(), qos(), any::<bool>(), v5_only(v, properties)).prop_map(
        |(topic, payload, qos, retain, properties)| LastWill {
            topic,
            payload,
            qos,
            retain,
            properties,
        },
    )
}

fn connect(v: ProtocolVersion) -> impl Strategy<Value = Packet> {
    (
        (any::<bool>(), any::<u16>(), text(), of(will(v))),
        (of(text()), of(data()), v5_only(v, connect_properties())),
    )
        .prop_map(
            move |(
                (clean_start, keep_alive, client_id, will),
                (username, password, properties),
            )| {
                // 3.x: no password without a user name [MQTT-3.1.2-22]
                let password = password.filter(|_| v.is_v5() || username.is_some());
                Packet::Connect(Box::new(Connect {
                    protocol: v,
                    clean_start,
                    keep_alive,
                    client_id,
                    will,
                    username,
                    password,
                    properties,
                }))
            },
        )
}

fn connack_properties() -> impl Strategy<Value = ConnAckProperties> {
    let maximum_qos = prop_oneof![Just(QoS::AtMostOnce), Just(QoS::AtLeastOnce)];
    (
        (
            of(any::<u32>()),
            of(1..=u16::MAX),
            of(maximum_qos),
            of(any::<bool>()),
        ),
        (of(1..=u32::MAX), of(text()), of(any::<u16>()), of(text())),
        (
            user_properties(),
            of(any::<bool>()),
            of(any::<bool>()),
            of(any::<bool>()),
        ),
        (
            of(any::<u16>()),
            of(text()),
            of(text()),
            of(text()),
            of(data()),
        ),
    )
        .prop_map(|(a, b, c, d)| ConnAckProperties {
            session_expiry_interval: a.0,
            receive_maximum: a.1,
            maximum_qos: a.2,
            retain_available: a.3,
            maximum_packet_size: b.0,
            assigned_client_identifier: b.1,
            topic_alias_maximum: b.2,
            reason_string: b.3,
            user_properties: c.0,
            wildcard_subscription_available: c.1,
            subscription_identifiers_available: c.2,
            shared_subscription_available: c.3,
            server_keep_alive: d.0,
            response_information: d.1,
            server_reference: d.2,
            authentication_method: d.3,
            authentication_data: d.4,
        })
}

fn connack(v: ProtocolVersion) -> impl Strategy<Value = Packet> {
    // 3.x return codes, as the reason codes that map to them one to one
    const V3: &[u8] = &[0x00, 0x84, 0x85, 0x88, 0x86, 0x87];
    let codes = if v.is_v5() { CONNACK_CODES } else { V3 };
    (
        any::<bool>(),
        reason(codes),
        v5_only(v, connack_properties()),
    )
        .prop_map(move |(present, reason_code, properties)| {
            Packet::ConnAck(ConnAck {
                session_present: present
                    && reason_code == ReasonCode::SUCCESS
                    && v != ProtocolVersion::V3_1,
                reason_code,
                properties,
            })
        })
}

fn publish(v: ProtocolVersion) -> impl Strategy<Value = Packet> {
    let properties = (
        (of(0u8..=1), of(any::<u32>()), of(any::<u16>()), of(text())),
        (
            of(data()),
            user_properties(),
            vec(subscription_identifier(), 0..3),
            of(text()),
        ),
    )
        .prop_map(|((pfi, mei, ta, rt), (cd, up, si, ct))| PublishProperties {
            payload_format_indicator: pfi,
            message_expiry_interval: mei,
            topic_alias: ta,
            response_topic: rt,
            correlation_data: cd,
            user_properties: up,
            subscription_identifiers: si,
            content_type: ct,
        });
    (
        (qos(), any::<bool>(), any::<bool>(), text()),
        (packet_id(), data(), v5_only(v, properties)),
    )
        .prop_map(|((qos, dup, retain, topic), (id, payload, properties))| {
            let with_id = qos != QoS::AtMostOnce;
            Packet::Publish(Publish {
                dup: dup && with_id,
                qos,
                retain,
                topic,
                packet_id: with_id.then_some(id),
                payload,
                properties,
            })
        })
}

fn ack(v: ProtocolVersion, kind: AckKind) -> impl Strategy<Value = Packet> {
    let body = if v.is_v5() {
        (reason(kind.valid_codes()), ack_properties()).boxed()
    } else {
        Just((ReasonCode::SUCCESS, AckProperties::default())).boxed()
    };
    (packet_id(), body).prop_map(move |(packet_id, (reason_code, properties))| {
        let p = PubResp {
            packet_id,
            reason_code,
            properties,
        };
        match kind {
            AckKind::Ack => Packet::PubAck(p),
            AckKind::Rec => Packet::PubRec(p),
            AckKind::Rel => Packet::PubRel(p),
            AckKind::Comp => Packet::PubComp(p),
        }
    })
}

fn subscription_options(v: ProtocolVersion) -> BoxedStrategy<SubscriptionOptions> {
    let retain_handling = prop_oneof![
        Just(RetainHandling::OnSubscribe),
        Just(RetainHandling::OnNewSubscribe),
        Just(RetainHandling::Never)
    ];
    if !v.is_v5() {
        return qos()
            .prop_map(|qos| SubscriptionOptions {
                qos,
                ..SubscriptionOptions::default()
            })
            .boxed();
    }
    (qos(), any::<bool>(), any::<bool>(), retain_handling)
        .prop_map(
            |(qos, no_local, rap, retain_handling)| SubscriptionOptions {
                qos,
                no_local,
                retain_as_published: rap,
                retain_handling,
            },
        )
        .boxed()
}

fn subscribe(v: ProtocolVersion) -> impl Strategy<Value = Packet> {
    let properties = (of(subscription_identifier()), user_properties()).prop_map(|(si, up)| {
        SubscribeProperties {
            subscription_identifier: si,
            user_properties: up,
        }
    });
    (
        packet_id(),
        v5_only(v, properties),
        vec((text(), subscription_options(v)), 1..4),
    )
        .prop_map(|(packet_id, properties, filters)| {
            Packet::Subscribe(Subscribe {
                packet_id,
                properties,
                filters,
            })
        })
}

fn suback(v: ProtocolVersion) -> impl Strategy<Value = Packet> {
    const V3: &[u8] = &[0x00, 0x01, 0x02, 0x80];
    let codes = if v.is_v5() { SUBACK_CODES } else { V3 };
    (
        packet_id(),
        v5_only(v, ack_properties()),
        vec(reason(codes), 0..4),
    )
        .prop_map(|(packet_id, properties, reason_codes)| {
            Packet::SubAck(SubAck {
                packet_id,
                properties,
                reason_codes,
            })
        })
}

fn unsubscribe(v: ProtocolVersion) -> impl Strategy<Value = Packet> {
    (
        packet_id(),
        v5_only(v, user_properties()),
        vec(text(), 1..4),
    )
        .prop_map(|(packet_id, user_properties, filters)| {
            Packet::Unsubscribe(Unsubscribe {
                packet_id,
                user_properties,
                filters,
            })
        })
}

fn unsuback(v: ProtocolVersion) -> impl Strategy<Value = Packet> {
    (
        packet_id(),
        v5_only(v, ack_properties()),
        v5_only(v, vec(reason(UNSUBACK_CODES), 0..4)),
    )
        .prop_map(|(packet_id, properties, reason_codes)| {
            Packet::UnsubAck(UnsubAck {
                packet_id,
                properties,
                reason_codes,
            })
        })
}

fn disconnect(v: ProtocolVersion) -> impl Strategy<Value = Packet> {
    let properties = (of(any::<u32>()), of(text()), user_properties(), of(text())).prop_map(
        |(sei, rs, up, sr)| DisconnectProperties {
            session_expiry_interval: sei,
            reason_string: rs,
            user_properties: up,
            server_reference: sr,
        },
    );
    let body =
        (reason(DISCONNECT_CODES), properties).prop_map(|(reason_code, properties)| Disconnect {
            reason_code,
            properties,
        });
    v5_only(v, body).prop_map(Packet::Disconnect)
}

fn auth() -> impl Strategy<Value = Packet> {
    let properties =
        (of(text()), of(data()), of(text()), user_properties()).prop_map(|(am, ad, rs, up)| {
            AuthProperties {
                authentication_method: am,
                authentication_data: ad,
                reason_string: rs,
                user_properties: up,
            }
        });
    (reason(AUTH_CODES), properties).prop_map(|(reason_code, properties)| {
        Packet::Auth(Auth {
            reason_code,
            properties,
        })
    })
}

/// Any packet that is valid in `v`.
fn packet(v: ProtocolVersion) -> impl Strategy<Value = Packet> {
    let mut choices = vec![
        connect(v).boxed(),
        connack(v).boxed(),
        publish(v).boxed(),
        ack(v, AckKind::Ack).boxed(),
        ack(v, AckKind::Rec).boxed(),
        ack(v, AckKind::Rel).boxed(),
        ack(v, AckKind::Comp).boxed(),
        subscribe(v).boxed(),
        suback(v).boxed(),
        unsubscribe(v).boxed(),
        unsuback(v).boxed(),
        Just(Packet::PingReq).boxed(),
        Just(Packet::PingResp).boxed(),
        disconnect(v).boxed(),
    ];
    if v.is_v5() {
        choices.push(auth().boxed());
    }
    Union::new(choices)
}

/// What a client may send after CONNECT, valid in `v`, weighted towards the packets
/// that change session state (for the connection's own property tests).
pub(crate) fn from_client(v: ProtocolVersion) -> BoxedStrategy<Packet> {
    let mut choices = vec![
        (6, publish(v).boxed()),
        (3, subscribe(v).boxed()),
        (1, unsubscribe(v).boxed()),
        (2, ack(v, AckKind::Ack).boxed()),
        (2, ack(v, AckKind::Rec).boxed()),
        (2, ack(v, AckKind::Rel).boxed()),
        (2, ack(v, AckKind::Comp).boxed()),
        (1, Just(Packet::PingReq).boxed()),
        (1, disconnect(v).boxed()),
        // Not the client's to send: the connection must refuse them, not trip on them.
        (1, connack(v).boxed()),
        (1, suback(v).boxed()),
    ];
    if v.is_v5() {
        choices.push((1, auth().boxed()));
    }
    Union::new_weighted(choices).boxed()
}

/// A CONNECT valid in `v` (any flags, will, credentials and properties).
pub(crate) fn connect_packet(v: ProtocolVersion) -> BoxedStrategy<Packet> {
    connect(v).boxed()
}

/// MQTT 3.1, 3.1.1 or 5.0.
pub(crate) fn any_version() -> BoxedStrategy<ProtocolVersion> {
    version().boxed()
}

fn version() -> impl Strategy<Value = ProtocolVersion> {
    prop_oneof![
        Just(ProtocolVersion::V3_1),
        Just(ProtocolVersion::V3_1_1),
        Just(ProtocolVersion::V5)
    ]
}

fn versioned_packet() -> impl Strategy<Value = (ProtocolVersion, Packet)> {
    version().prop_flat_map(|v| (Just(v), packet(v)))
}

/// The version the decoder is given: unknown before CONNECT.
fn decoder_version(packet: &Packet, v: ProtocolVersion) -> Option<ProtocolVersion> {
    (!matches!(packet, Packet::Connect(_))).then_some(v)
}

/// Decodes until the buffer is exhausted, an error or an incomplete frame; never panics.
fn decode_all(mut buf: BytesMut, version: Option<ProtocolVersion>) {
    let mut codec = Codec::new(1 << 16);
    if let Some(v) = version {
        codec.set_version(v);
    }
    while let Ok(Some(_)) = tokio_util::codec::Decoder::decode(&mut codec, &mut buf) {}
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn valid_packets_round_trip((v, packet) in versioned_packet()) {
        let mut buf = BytesMut::new();
        encode(&packet, v, &mut buf).unwrap();
        prop_assert_eq!(encoded_len(&packet, v), buf.len());
        let decoded = decode(&mut buf, decoder_version(&packet, v), u32::MAX).unwrap();
        prop_assert_eq!(decoded, Some(packet));
        prop_assert!(buf.is_empty());
    }

    #[test]
    fn byte_by_byte_arrival_yields_the_same_packet((v, packet) in versioned_packet()) {
        let mut wire = BytesMut::new();
        encode(&packet, v, &mut wire).unwrap();
        let mut buf = BytesMut::new();
        let mut decoded = None;
        for (i, byte) in wire.iter().enumerate() {
            buf.extend_from_slice(&[*byte]);
            decoded = decode(&mut buf, decoder_version(&packet, v), u32::MAX).unwrap();
            prop_assert_eq!(decoded.is_some(), i + 1 == wire.len());
        }
        prop_assert_eq!(decoded, Some(packet));
    }

    #[test]
    fn arbitrary_bytes_never_panic(
        bytes in vec(any::<u8>(), 0..96),
        v in of(version()),
    ) {
        decode_all(BytesMut::from(&bytes[..]), v);
    }

    #[test]
    fn arbitrary_bodies_behind_valid_headers_never_panic(
        first in any::<u8>(),
        body in vec(any::<u8>(), 0..96),
        v in of(version()),
    ) {
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&[first, body.len() as u8]);
        buf.extend_from_slice(&body);
        decode_all(buf, v);
    }

    #[test]
    fn corrupted_packets_never_panic(
        (v, packet) in versioned_packet(),
        index in any::<prop::sample::Index>(),
        byte in any::<u8>(),
    ) {
        let mut buf = BytesMut::new();
        encode(&packet, v, &mut buf).unwrap();
        let i = index.index(buf.len());
        buf[i] = byte;
        decode_all(buf, decoder_version(&packet, v));
    }
}

/// A PUBLISH, its version, and a payload whose length crosses the remaining length's
/// one- and two-byte limits (127, 16383) with the rest of the packet.
fn publish_and_payload() -> impl Strategy<Value = (ProtocolVersion, Publish, Vec<u8>)> {
    version()
        .prop_flat_map(|v| (Just(v), publish(v)))
        .prop_filter_map("a PUBLISH", |(v, packet)| match packet {
            Packet::Publish(p) => Some((v, p)),
            _ => None,
        })
        .prop_flat_map(|(v, p)| {
            let sizes = prop_oneof![0..300usize, 16_000..16_600usize];
            (
                Just(v),
                Just(p),
                sizes.prop_flat_map(|n| vec(any::<u8>(), n)),
            )
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn a_publish_encoded_with_its_payload_apart_is_the_same_bytes(
        (v, p, payload) in publish_and_payload(),
    ) {
        let head = Publish { topic: ByteString::new(), payload: Bytes::new(), ..p.clone() };
        let topic = p.topic.clone();
        let whole = Packet::Publish(Publish { payload: Bytes::from(payload.clone()), ..p });
        let mut expected = BytesMut::new();
        encode(&whole, v, &mut expected).unwrap();
        let mut apart = BytesMut::from(&b"before"[..]);
        encode_publish(&head, &topic, &payload, v, &mut apart).unwrap();
        prop_assert_eq!(&apart[..6], b"before");
        prop_assert_eq!(&apart[6..], &expected[..]);
        prop_assert_eq!(encoded_publish_len(&head, &topic, payload.len(), v), expected.len());
        // The head alone, the payload to follow it from the message's own buffer.
        let mut head_only = BytesMut::new();
        encode_publish_head(&head, &topic, payload.len(), v, &mut head_only).unwrap();
        head_only.extend_from_slice(&payload);
        prop_assert_eq!(&head_only[..], &expected[..]);
    }
}
