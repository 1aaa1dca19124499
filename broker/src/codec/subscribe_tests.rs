#![allow(clippy::unwrap_used)] // tests may unwrap

use test_case::test_case;

use crate::codec::test_util::{decode_error, encoded, golden};
use crate::codec::*;
use crate::types::{PacketId, ProtocolVersion, QoS, ReasonCode};

use ProtocolVersion::{V3_1_1, V5};

#[test]
fn decode_subscribe_v311() {
    #[rustfmt::skip]
    let wire = [
        0x82, 0x0C,                         // SUBSCRIBE (flags 0010), remaining length 12
        0x00, 0x0A,                         // packet id 10
        0x00, 0x03, b'a', b'/', b'b', 0x01, // filter "a/b", qos 1
        0x00, 0x01, b'#', 0x02,             // filter "#", qos 2
    ];
    let Packet::Subscribe(s) = golden(&wire, V3_1_1) else {
        panic!("not a subscribe")
    };
    assert_eq!(s.packet_id, PacketId::new(10).unwrap());
    assert_eq!(s.filters.len(), 2);
    assert_eq!(
        (&*s.filters[0].0, s.filters[0].1.qos),
        ("a/b", QoS::AtLeastOnce)
    );
    assert_eq!(
        (&*s.filters[1].0, s.filters[1].1.qos),
        ("#", QoS::ExactlyOnce)
    );
}

#[test]
fn decode_subscribe_v5_with_options_and_properties() {
    #[rustfmt::skip]
    let wire = [
        0x82, 0x14,                         // SUBSCRIBE, remaining length 20
        0x00, 0x01,                         // packet id 1
        0x09,                               // property length 9
        0x0B, 0x07,                         //   subscription identifier 7
        0x26, 0x00, 0x01, b'k', 0x00, 0x01, b'v', // user property k=v
        0x00, 0x01, b'a', 0x2D,             // filter "a": qos 1, no local, retain as published, retain handling 2
        0x00, 0x01, b'b', 0x10,             // filter "b": qos 0, retain handling 1
    ];
    let Packet::Subscribe(s) = golden(&wire, V5) else {
        panic!("not a subscribe")
    };
    assert_eq!(s.properties.subscription_identifier, Some(7));
    assert_eq!(s.properties.user_properties.len(), 1);
    let a = s.filters[0].1;
    assert_eq!(a.qos, QoS::AtLeastOnce);
    assert!(a.no_local && a.retain_as_published);
    assert_eq!(a.retain_handling, RetainHandling::Never);
    let b = s.filters[1].1;
    assert!(!b.no_local && !b.retain_as_published);
    assert_eq!(b.retain_handling, RetainHandling::OnNewSubscribe);
}

#[test]
fn decode_suback_v311() {
    #[rustfmt::skip]
    let wire = [
        0x90, 0x05, // SUBACK, remaining length 5
        0x00, 0x0A, // packet id 10
        0x00,       // granted qos 0
        0x80,       // failure
        0x02,       // granted qos 2
    ];
    let Packet::SubAck(s) = golden(&wire, V3_1_1) else {
        panic!("not a suback")
    };
    let codes = [ReasonCode(0), ReasonCode::UNSPECIFIED_ERROR, ReasonCode(2)];
    assert_eq!(s.reason_codes, codes);
}

#[test]
fn decode_suback_v5() {
    #[rustfmt::skip]
    let wire = [
        0x90, 0x0A,             // SUBACK, remaining length 10
        0x00, 0x01,             // packet id 1
        0x04,                   // property length 4
        0x1F, 0x00, 0x01, b'e', //   reason string "e"
        0x01,                   // granted qos 1
        0x87,                   // not authorized
        0xA2,                   // wildcard subscriptions not supported
    ];
    let Packet::SubAck(s) = golden(&wire, V5) else {
        panic!("not a suback")
    };
    assert_eq!(s.properties.reason_string.as_deref(), Some("e"));
    let codes = [ReasonCode(1), ReasonCode(0x87), ReasonCode(0xA2)];
    assert_eq!(s.reason_codes, codes);
}

#[test]
fn v3_suback_maps_every_failure_to_0x80() {
    let p = Packet::SubAck(SubAck {
        packet_id: PacketId::new(1).unwrap(),
        properties: AckProperties::default(),
        reason_codes: vec![ReasonCode(1), ReasonCode(0x87), ReasonCode(0xA2)],
    });
    assert_eq!(encoded(&p, V3_1_1), [0x90, 5, 0, 1, 1, 0x80, 0x80]);
}

#[test]
fn decode_unsubscribe_v311() {
    #[rustfmt::skip]
    let wire = [
        0xA2, 0x0A,                   // UNSUBSCRIBE (flags 0010), remaining length 10
        0x00, 0x02,                   // packet id 2
        0x00, 0x03, b'a', b'/', b'b', // filter "a/b"
        0x00, 0x01, b'c',             // filter "c"
    ];
    let Packet::Unsubscribe(u) = golden(&wire, V3_1_1) else {
        panic!("not an unsubscribe")
    };
    assert_eq!(u.filters, ["a/b", "c"]);
}

#[test]
fn decode_unsubscribe_v5() {
    #[rustfmt::skip]
    let wire = [
        0xA2, 0x0D,                               // UNSUBSCRIBE, remaining length 13
        0x00, 0x02,                               // packet id 2
        0x07,                                     // property length 7
        0x26, 0x00, 0x01, b'k', 0x00, 0x01, b'v', //   user property k=v
        0x00, 0x01, b'a',                         // filter "a"
    ];
    let Packet::Unsubscribe(u) = golden(&wire, V5) else {
        panic!("not an unsubscribe")
    };
    assert_eq!(u.user_properties, vec![("k".into(), "v".into())]);
    assert_eq!(u.filters, ["a"]);
}

#[test]
fn decode_unsuback_v311() {
    #[rustfmt::skip]
    let wire = [
        0xB0, 0x02, // UNSUBACK, remaining length 2
        0x00, 0x02, // packet id 2 (no payload in 3.1.1)
    ];
    let Packet::UnsubAck(u) = golden(&wire, V3_1_1) else {
        panic!("not an unsuback")
    };
    assert!(u.reason_codes.is_empty());
}

#[test]
fn decode_unsuback_v5() {
    #[rustfmt::skip]
    let wire = [
        0xB0, 0x05, // UNSUBACK, remaining length 5
        0x00, 0x02, // packet id 2
        0x00,       // property length 0
        0x00,       // success
        0x11,       // no subscription existed
    ];
    let Packet::UnsubAck(u) = golden(&wire, V5) else {
        panic!("not an unsuback")
    };
    assert_eq!(
        u.reason_codes,
        [ReasonCode::SUCCESS, ReasonCode::NO_SUBSCRIPTION_EXISTED]
    );
}

#[test_case(V3_1_1, &[0x82, 2, 0, 1]; "v311")]
#[test_case(V5, &[0x82, 3, 0, 1, 0]; "v5")]
fn rejects_subscribe_without_filters(version: ProtocolVersion, wire: &[u8]) {
    let err = decode_error(wire, version);
    assert!(matches!(err, Error::NoSubscribeFilters));
    assert_eq!(err.reason_code(), ReasonCode::PROTOCOL_ERROR);
}

#[test_case(V3_1_1, &[0x82, 6, 0, 1, 0, 1, b'a', 0x04]; "v311 no local bit")]
#[test_case(V3_1_1, &[0x82, 6, 0, 1, 0, 1, b'a', 0x80]; "v311 bit 7")]
#[test_case(V5, &[0x82, 7, 0, 1, 0, 0, 1, b'a', 0x40]; "v5 bit 6")]
#[test_case(V5, &[0x82, 7, 0, 1, 0, 0, 1, b'a', 0x80]; "v5 bit 7")]
fn rejects_reserved_subscription_option_bits(version: ProtocolVersion, wire: &[u8]) {
    let err = decode_error(wire, version);
    assert!(matches!(err, Error::SubscriptionOptionsReserved));
    assert_eq!(err.reason_code(), ReasonCode::MALFORMED_PACKET);
}

#[test_case(V3_1_1, &[0x82, 6, 0, 1, 0, 1, b'a', 0x03]; "v311")]
#[test_case(V5, &[0x82, 7, 0, 1, 0, 0, 1, b'a', 0x03]; "v5")]
fn rejects_subscription_qos_3(version: ProtocolVersion, wire: &[u8]) {
    let err = decode_error(wire, version);
    assert!(matches!(err, Error::SubscriptionQos3));
}

#[test]
fn rejects_retain_handling_3() {
    let err = decode_error(&[0x82, 7, 0, 1, 0, 0, 1, b'a', 0x30], V5);
    assert!(matches!(err, Error::RetainHandling3));
    assert_eq!(err.reason_code(), ReasonCode::PROTOCOL_ERROR);
}

#[test]
fn rejects_subscribe_filter_without_options_byte() {
    let err = decode_error(&[0x82, 5, 0, 1, 0, 1, b'a'], V3_1_1);
    assert!(matches!(err, Error::Truncated));
}

#[test]
fn rejects_subscription_identifier_twice_in_subscribe() {
    let err = decode_error(&[0x82, 11, 0, 1, 4, 0x0B, 1, 0x0B, 2, 0, 1, b'a', 0], V5);
    assert!(matches!(err, Error::DuplicateProperty(0x0B)));
    assert_eq!(err.reason_code(), ReasonCode::PROTOCOL_ERROR);
}

#[test]
fn rejects_subscription_identifier_0_in_subscribe() {
    let err = decode_error(&[0x82, 9, 0, 1, 2, 0x0B, 0, 0, 1, b'a', 0], V5);
    assert!(matches!(err, Error::InvalidPropertyValue(0x0B)));
    assert_eq!(err.reason_code(), ReasonCode::PROTOCOL_ERROR);
}

#[test]
fn rejects_subscribe_with_packet_id_0() {
    let err = decode_error(&[0x82, 6, 0, 0, 0, 1, b'a', 0], V3_1_1);
    assert!(matches!(err, Error::ZeroPacketId));
}

#[test_case(V3_1_1, &[0xA2, 2, 0, 1]; "v311")]
#[test_case(V5, &[0xA2, 3, 0, 1, 0]; "v5")]
fn rejects_unsubscribe_without_filters(version: ProtocolVersion, wire: &[u8]) {
    let err = decode_error(wire, version);
    assert!(matches!(err, Error::NoUnsubscribeFilters));
    assert_eq!(err.reason_code(), ReasonCode::PROTOCOL_ERROR);
}

#[test]
fn rejects_property_not_allowed_in_unsubscribe() {
    let err = decode_error(&[0xA2, 8, 0, 1, 2, 0x0B, 1, 0, 1, b'a'], V5);
    assert!(matches!(err, Error::InvalidProperty { id: 0x0B, .. }));
    assert_eq!(err.reason_code(), ReasonCode::MALFORMED_PACKET);
}

#[test_case(V3_1_1, &[0x90, 3, 0, 1, 0x03]; "v311 code 3")]
#[test_case(V3_1_1, &[0x90, 3, 0, 1, 0x87]; "v311 code 0x87")]
#[test_case(V5, &[0x90, 4, 0, 1, 0, 0x11]; "v5 unsuback code")]
fn rejects_reason_code_not_valid_for_suback(version: ProtocolVersion, wire: &[u8]) {
    let err = decode_error(wire, version);
    assert!(matches!(err, Error::InvalidReasonCode { .. }));
    assert_eq!(err.reason_code(), ReasonCode::PROTOCOL_ERROR);
}

#[test]
fn rejects_reason_code_not_valid_for_unsuback() {
    let err = decode_error(&[0xB0, 4, 0, 1, 0, 0x01], V5);
    assert!(matches!(err, Error::InvalidReasonCode { code: 1, .. }));
}

#[test]
fn rejects_payload_in_v311_unsuback() {
    let err = decode_error(&[0xB0, 3, 0, 1, 0], V3_1_1);
    assert!(matches!(err, Error::TrailingBytes(1)));
}

#[test_case(0x80; "subscribe without bit 1")]
#[test_case(0xA0; "unsubscribe without bit 1")]
#[test_case(0x92; "suback with bit 1")]
fn rejects_invalid_subscribe_family_flags(first: u8) {
    let err = decode_error(&[first, 6, 0, 1, 0, 1, b'a', 0], V3_1_1);
    assert!(matches!(err, Error::InvalidFixedHeaderFlags { .. }));
    assert_eq!(err.reason_code(), ReasonCode::MALFORMED_PACKET);
}
