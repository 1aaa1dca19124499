#![allow(clippy::unwrap_used)] // tests may unwrap

use test_case::test_case;

use crate::codec::test_util::{decode_error, golden};
use crate::codec::*;
use crate::types::{PacketId, ProtocolVersion, ReasonCode};

use ProtocolVersion::{V3_1_1, V5};

/// The ack inside any of the four acknowledgement packets.
fn ack(packet: Packet) -> PubResp {
    match packet {
        Packet::PubAck(p) | Packet::PubRec(p) | Packet::PubRel(p) | Packet::PubComp(p) => p,
        other => panic!("not an ack: {other:?}"),
    }
}

#[test_case(0x40, "PubAck"; "puback")]
#[test_case(0x50, "PubRec"; "pubrec")]
#[test_case(0x62, "PubRel"; "pubrel")]
#[test_case(0x70, "PubComp"; "pubcomp")]
fn decode_ack_v311(first: u8, variant: &str) {
    #[rustfmt::skip]
    let wire = [
        first, 0x02, // packet type and flags; remaining length 2
        0x01, 0x02,  // packet id 258
    ];
    let packet = golden(&wire, V3_1_1);
    assert!(format!("{packet:?}").starts_with(variant));
    let p = ack(packet);
    assert_eq!(p.packet_id, PacketId::new(258).unwrap());
    assert_eq!(p.reason_code, ReasonCode::SUCCESS);
}

#[test]
fn decode_puback_v5_short_form_means_success() {
    #[rustfmt::skip]
    let wire = [
        0x40, 0x02, // PUBACK, remaining length 2
        0x00, 0x05, // packet id 5 (reason success, no properties implied)
    ];
    let p = ack(golden(&wire, V5));
    assert_eq!(p.reason_code, ReasonCode::SUCCESS);
    assert_eq!(p.properties, AckProperties::default());
}

#[test]
fn decode_pubrec_v5_reason_without_properties() {
    #[rustfmt::skip]
    let wire = [
        0x50, 0x03, // PUBREC, remaining length 3
        0x00, 0x05, // packet id 5
        0x10,       // reason: no matching subscribers (properties omitted)
    ];
    let p = ack(golden(&wire, V5));
    assert_eq!(p.reason_code, ReasonCode::NO_MATCHING_SUBSCRIBERS);
}

#[test]
fn decode_pubrel_v5_with_properties() {
    #[rustfmt::skip]
    let wire = [
        0x62, 0x0F,                         // PUBREL, remaining length 15
        0x00, 0x06,                         // packet id 6
        0x92,                               // reason: packet identifier not found
        0x0B,                               // property length 11
        0x1F, 0x00, 0x01, b'x',             //   reason string "x"
        0x26, 0x00, 0x01, b'k', 0x00, 0x01, b'v', // user property k=v
    ];
    let p = ack(golden(&wire, V5));
    assert_eq!(p.reason_code, ReasonCode::PACKET_IDENTIFIER_NOT_FOUND);
    assert_eq!(p.properties.reason_string.as_deref(), Some("x"));
    assert_eq!(p.properties.user_properties.len(), 1);
}

#[test]
fn decode_pubcomp_v5_success_with_properties() {
    #[rustfmt::skip]
    let wire = [
        0x70, 0x08,             // PUBCOMP, remaining length 8
        0x00, 0x07,             // packet id 7
        0x00,                   // reason success
        0x04,                   // property length 4
        0x1F, 0x00, 0x01, b'y', //   reason string "y"
    ];
    let p = ack(golden(&wire, V5));
    assert_eq!(p.reason_code, ReasonCode::SUCCESS);
    assert_eq!(p.properties.reason_string.as_deref(), Some("y"));
}

#[test]
fn accepts_v5_ack_with_empty_property_section() {
    let p = ack(decode_ok(&[0x40, 4, 0, 1, 0x80, 0], V5));
    assert_eq!(p.reason_code, ReasonCode::UNSPECIFIED_ERROR);
    assert_eq!(p.properties, AckProperties::default());
}

fn decode_ok(wire: &[u8], version: ProtocolVersion) -> Packet {
    let mut buf = bytes::BytesMut::from(wire);
    decode(&mut buf, Some(version), u32::MAX).unwrap().unwrap()
}

#[test_case(&[0x40, 3, 0, 1, 0x92]; "puback with pubrel code")]
#[test_case(&[0x50, 3, 0, 1, 0x04]; "pubrec with disconnect code")]
#[test_case(&[0x62, 3, 0, 1, 0x10]; "pubrel with puback code")]
#[test_case(&[0x70, 3, 0, 1, 0x80]; "pubcomp with unspecified error")]
fn rejects_reason_code_not_valid_for_ack(wire: &[u8]) {
    let err = decode_error(wire, V5);
    assert!(matches!(err, Error::InvalidReasonCode { .. }));
    assert_eq!(err.reason_code(), ReasonCode::PROTOCOL_ERROR);
}

#[test]
fn rejects_ack_with_packet_id_0() {
    let err = decode_error(&[0x40, 2, 0, 0], V3_1_1);
    assert!(matches!(err, Error::ZeroPacketId));
}

#[test]
fn rejects_trailing_bytes_in_v311_ack() {
    let err = decode_error(&[0x40, 3, 0, 1, 0], V3_1_1);
    assert!(matches!(err, Error::TrailingBytes(1)));
    assert_eq!(err.reason_code(), ReasonCode::MALFORMED_PACKET);
}

#[test]
fn rejects_ack_shorter_than_packet_id() {
    let err = decode_error(&[0x40, 1, 0], V5);
    assert!(matches!(err, Error::Truncated));
}

#[test]
fn rejects_property_not_allowed_in_ack() {
    let err = decode_error(&[0x40, 6, 0, 1, 0, 2, 0x01, 1], V5); // payload format indicator
    assert!(matches!(err, Error::InvalidProperty { id: 0x01, .. }));
    assert_eq!(err.reason_code(), ReasonCode::MALFORMED_PACKET);
}

#[test]
fn rejects_duplicate_reason_string_in_ack() {
    let wire = [0x40, 12, 0, 1, 0, 8, 0x1F, 0, 1, b'a', 0x1F, 0, 1, b'b'];
    let err = decode_error(&wire, V5);
    assert!(matches!(err, Error::DuplicateProperty(0x1F)));
    assert_eq!(err.reason_code(), ReasonCode::PROTOCOL_ERROR);
}

#[test_case(0x60; "pubrel without bit 1")]
#[test_case(0x42; "puback with bit 1")]
#[test_case(0x63; "pubrel with bit 0")]
fn rejects_invalid_ack_fixed_header_flags(first: u8) {
    let err = decode_error(&[first, 2, 0, 1], V3_1_1);
    assert!(matches!(err, Error::InvalidFixedHeaderFlags { .. }));
    assert_eq!(err.reason_code(), ReasonCode::MALFORMED_PACKET);
}
