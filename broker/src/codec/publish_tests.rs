#![allow(clippy::unwrap_used)] // tests may unwrap

use bytes::Bytes;
use bytestring::ByteString;
use test_case::test_case;

use crate::codec::test_util::{decode_error, golden};
use crate::codec::*;
use crate::types::{PacketId, ProtocolVersion, QoS, ReasonCode};

use ProtocolVersion::{V3_1_1, V5};

fn publish(packet: Packet) -> Publish {
    match packet {
        Packet::Publish(p) => p,
        other => panic!("not a publish: {other:?}"),
    }
}

#[test]
fn decode_publish_v311_qos1_dup_retain() {
    #[rustfmt::skip]
    let wire = [
        0x3B, 0x09,                   // PUBLISH dup, qos 1, retain; remaining length 9
        0x00, 0x03, b'a', b'/', b'b', // topic "a/b"
        0x00, 0x0A,                   // packet id 10
        b'h', b'i',                   // payload "hi"
    ];
    let p = publish(golden(&wire, V3_1_1));
    assert_eq!((p.dup, p.qos, p.retain), (true, QoS::AtLeastOnce, true));
    assert_eq!(&*p.topic, "a/b");
    assert_eq!(p.packet_id, PacketId::new(10));
    assert_eq!(&p.payload[..], b"hi");
}

#[test]
fn decode_publish_v311_qos0_without_packet_id() {
    #[rustfmt::skip]
    let wire = [
        0x30, 0x07,                   // PUBLISH qos 0; remaining length 7
        0x00, 0x03, b'a', b'/', b'b', // topic "a/b"
        b'x', b'y',                   // payload "xy" (no packet id at qos 0)
    ];
    let p = publish(golden(&wire, V3_1_1));
    assert_eq!((p.qos, p.packet_id), (QoS::AtMostOnce, None));
    assert_eq!(&p.payload[..], b"xy");
}

#[test]
fn decode_publish_v311_with_two_byte_remaining_length() {
    let mut wire = vec![
        0x30, 0xC8, 0x01, // PUBLISH qos 0; remaining length 200 (two bytes)
        0x00, 0x01, b't', // topic "t"
    ];
    wire.extend_from_slice(&[0x55; 197]); // payload: 197 bytes
    let p = publish(golden(&wire, V3_1_1));
    assert_eq!(p.payload.len(), 197);
}

#[test]
fn decode_publish_v5_qos2_with_every_property() {
    #[rustfmt::skip]
    let wire = [
        0x34, 0x2D,                         // PUBLISH qos 2; remaining length 45
        0x00, 0x01, b't',                   // topic "t"
        0x00, 0x07,                         // packet id 7
        0x26,                               // property length 38
        0x01, 0x01,                         //   payload format indicator 1 (utf-8)
        0x02, 0x00, 0x00, 0x00, 0x3C,       //   message expiry interval 60
        0x23, 0x00, 0x03,                   //   topic alias 3
        0x08, 0x00, 0x01, b'r',             //   response topic "r"
        0x09, 0x00, 0x02, 0x01, 0x02,       //   correlation data [01 02]
        0x26, 0x00, 0x01, b'k', 0x00, 0x01, b'v', // user property k=v
        0x0B, 0x80, 0x01,                   //   subscription identifier 128
        0x0B, 0x05,                         //   subscription identifier 5
        0x03, 0x00, 0x04, b'j', b's', b'o', b'n', // content type "json"
        b'p',                               // payload "p"
    ];
    let p = publish(golden(&wire, V5));
    assert_eq!((p.qos, p.packet_id), (QoS::ExactlyOnce, PacketId::new(7)));
    let props = &p.properties;
    assert_eq!(props.payload_format_indicator, Some(1));
    assert_eq!(props.message_expiry_interval, Some(60));
    assert_eq!(props.topic_alias, Some(3));
    assert_eq!(props.response_topic.as_deref(), Some("r"));
    assert_eq!(props.correlation_data.as_deref(), Some(&[1, 2][..]));
    assert_eq!(props.user_properties, vec![("k".into(), "v".into())]);
    assert_eq!(props.subscription_identifiers, vec![128, 5]);
    assert_eq!(props.content_type.as_deref(), Some("json"));
    assert_eq!(&p.payload[..], b"p");
}

#[test]
fn decode_publish_v5_with_empty_topic_and_no_properties() {
    #[rustfmt::skip]
    let wire = [
        0x30, 0x04, // PUBLISH qos 0; remaining length 4
        0x00, 0x00, // topic "" (a topic alias would supply it)
        0x00,       // property length 0
        b'z',       // payload "z"
    ];
    let p = publish(golden(&wire, V5));
    assert!(p.topic.is_empty());
    assert_eq!(p.properties, PublishProperties::default());
}

#[test]
fn rejects_publish_qos_3() {
    let err = decode_error(&[0x36, 3, 0, 1, b't'], V3_1_1);
    assert!(matches!(err, Error::PublishQos3));
    assert_eq!(err.reason_code(), ReasonCode::MALFORMED_PACKET);
}

#[test]
fn rejects_publish_qos_0_with_dup() {
    let err = decode_error(&[0x38, 3, 0, 1, b't'], V3_1_1);
    assert!(matches!(err, Error::PublishDupWithQos0));
    assert_eq!(err.reason_code(), ReasonCode::MALFORMED_PACKET);
}

#[test_case(V3_1_1, &[0x32, 5, 0, 1, b't', 0, 0]; "v311")]
#[test_case(V5, &[0x32, 6, 0, 1, b't', 0, 0, 0]; "v5")]
fn rejects_publish_with_packet_id_0(version: ProtocolVersion, wire: &[u8]) {
    let err = decode_error(wire, version);
    assert!(matches!(err, Error::ZeroPacketId));
    assert_eq!(err.reason_code(), ReasonCode::PROTOCOL_ERROR);
}

#[test]
fn rejects_publish_topic_running_past_the_end() {
    let err = decode_error(&[0x30, 3, 0, 9, b't'], V3_1_1);
    assert!(matches!(err, Error::Truncated));
    assert_eq!(err.reason_code(), ReasonCode::MALFORMED_PACKET);
}

#[test]
fn rejects_publish_topic_with_invalid_utf8() {
    let err = decode_error(&[0x30, 4, 0, 2, 0xC0, 0xAF], V3_1_1);
    assert!(matches!(err, Error::InvalidUtf8));
    assert_eq!(err.reason_code(), ReasonCode::MALFORMED_PACKET);
}

/// A v5 QoS 0 PUBLISH to "t" with the given properties and no payload.
fn v5_publish(properties: &[u8]) -> Vec<u8> {
    let mut wire = vec![0x30, 0, 0, 1, b't', properties.len() as u8];
    wire.extend_from_slice(properties);
    wire[1] = (wire.len() - 2) as u8;
    wire
}

#[test_case(&[0x02, 0, 0, 0, 1, 0x02, 0, 0, 0, 1], 0x02; "message expiry interval twice")]
#[test_case(&[0x23, 0, 1, 0x23, 0, 2], 0x23; "topic alias twice")]
#[test_case(&[0x01, 0, 0x01, 1], 0x01; "payload format indicator twice")]
fn rejects_duplicate_publish_property(properties: &[u8], id: u8) {
    let err = decode_error(&v5_publish(properties), V5);
    assert!(matches!(err, Error::DuplicateProperty(d) if d == id));
    assert_eq!(err.reason_code(), ReasonCode::PROTOCOL_ERROR);
}

#[test_case(&[0x0B, 0], 0x0B; "subscription identifier 0")]
#[test_case(&[0x01, 2], 0x01; "payload format indicator 2")]
fn rejects_invalid_publish_property_value(properties: &[u8], id: u8) {
    let err = decode_error(&v5_publish(properties), V5);
    assert!(matches!(err, Error::InvalidPropertyValue(d) if d == id));
    assert_eq!(err.reason_code(), ReasonCode::PROTOCOL_ERROR);
}

#[test]
fn rejects_subscription_identifier_longer_than_4_bytes() {
    let err = decode_error(&v5_publish(&[0x0B, 0xFF, 0xFF, 0xFF, 0xFF, 0x01]), V5);
    assert!(matches!(err, Error::MalformedVariableInteger));
    assert_eq!(err.reason_code(), ReasonCode::MALFORMED_PACKET);
}

#[test]
fn accepts_maximum_subscription_identifier() {
    let wire = v5_publish(&[0x0B, 0xFF, 0xFF, 0xFF, 0x7F]);
    let p = publish(golden(&wire, V5));
    assert_eq!(p.properties.subscription_identifiers, vec![268_435_455]);
}

#[test]
fn rejects_property_not_allowed_in_publish() {
    let err = decode_error(&v5_publish(&[0x11, 0, 0, 0, 1]), V5); // session expiry
    assert!(matches!(err, Error::InvalidProperty { id: 0x11, .. }));
    assert_eq!(err.reason_code(), ReasonCode::MALFORMED_PACKET);
}

#[test]
fn rejects_publish_property_length_past_the_end() {
    let err = decode_error(&[0x30, 4, 0, 1, b't', 9], V5);
    assert!(matches!(err, Error::Truncated));
}

fn sample(qos: QoS, packet_id: Option<u16>) -> Packet {
    Packet::Publish(Publish {
        dup: false,
        qos,
        retain: false,
        topic: ByteString::from_static("t"),
        packet_id: packet_id.and_then(PacketId::new),
        payload: Bytes::new(),
        properties: PublishProperties::default(),
    })
}

#[test]
fn refuses_to_encode_qos1_publish_without_packet_id() {
    let mut buf = bytes::BytesMut::new();
    let err = encode(&sample(QoS::AtLeastOnce, None), V3_1_1, &mut buf).err();
    assert!(matches!(err, Some(EncodeError::MissingPacketId)));
    assert!(buf.is_empty(), "nothing written on error");
}

#[test]
fn refuses_to_encode_qos0_publish_with_packet_id() {
    let mut buf = bytes::BytesMut::new();
    let err = encode(&sample(QoS::AtMostOnce, Some(1)), V5, &mut buf).err();
    assert!(matches!(err, Some(EncodeError::UnexpectedPacketId)));
}

#[test]
fn v3_publish_omits_properties() {
    let mut p = sample(QoS::AtMostOnce, None);
    if let Packet::Publish(p) = &mut p {
        p.properties.message_expiry_interval = Some(5);
    }
    let mut buf = bytes::BytesMut::new();
    encode(&p, V3_1_1, &mut buf).unwrap();
    assert_eq!(&buf[..], [0x30, 3, 0, 1, b't']);
}
