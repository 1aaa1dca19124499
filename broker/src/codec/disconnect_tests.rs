#![allow(clippy::unwrap_used)] // tests may unwrap

use test_case::test_case;

use crate::codec::test_util::{decode_error, encoded, golden};
use crate::codec::*;
use crate::types::{ProtocolVersion, ReasonCode};

use ProtocolVersion::{V3_1, V3_1_1, V5};

fn disconnect(packet: Packet) -> Disconnect {
    match packet {
        Packet::Disconnect(d) => d,
        other => panic!("not a disconnect: {other:?}"),
    }
}

fn auth(packet: Packet) -> Auth {
    match packet {
        Packet::Auth(a) => a,
        other => panic!("not an auth: {other:?}"),
    }
}

#[test_case(V3_1_1; "v311")]
#[test_case(V5; "v5 normal disconnection short form")]
fn decode_empty_disconnect(version: ProtocolVersion) {
    #[rustfmt::skip]
    let wire = [
        0xE0, 0x00, // DISCONNECT, remaining length 0
    ];
    assert_eq!(disconnect(golden(&wire, version)), Disconnect::default());
}

#[test]
fn decode_disconnect_v5_reason_without_properties() {
    #[rustfmt::skip]
    let wire = [
        0xE0, 0x01, // DISCONNECT, remaining length 1
        0x04,       // reason: disconnect with will message (no property length)
    ];
    let d = disconnect(golden(&wire, V5));
    assert_eq!(d.reason_code, ReasonCode::DISCONNECT_WITH_WILL);
}

#[test]
fn decode_disconnect_v5_with_every_property() {
    #[rustfmt::skip]
    let wire = [
        0xE0, 0x16,                         // DISCONNECT, remaining length 22
        0x8E,                               // reason: session taken over
        0x14,                               // property length 20
        0x11, 0x00, 0x00, 0x00, 0x00,       //   session expiry interval 0
        0x1F, 0x00, 0x01, b't',             //   reason string "t"
        0x26, 0x00, 0x01, b'k', 0x00, 0x01, b'v', // user property k=v
        0x1C, 0x00, 0x01, b's',             //   server reference "s"
    ];
    let d = disconnect(golden(&wire, V5));
    assert_eq!(d.reason_code, ReasonCode::SESSION_TAKEN_OVER);
    assert_eq!(d.properties.session_expiry_interval, Some(0));
    assert_eq!(d.properties.reason_string.as_deref(), Some("t"));
    assert_eq!(d.properties.user_properties.len(), 1);
    assert_eq!(d.properties.server_reference.as_deref(), Some("s"));
}

#[test]
fn decode_empty_auth_means_success() {
    #[rustfmt::skip]
    let wire = [
        0xF0, 0x00, // AUTH, remaining length 0 (success, no properties)
    ];
    assert_eq!(auth(golden(&wire, V5)), Auth::default());
}

#[test]
fn decode_auth_v5_with_every_property() {
    #[rustfmt::skip]
    let wire = [
        0xF0, 0x13,                         // AUTH, remaining length 19
        0x18,                               // reason: continue authentication
        0x11,                               // property length 17
        0x15, 0x00, 0x01, b'm',             //   authentication method "m"
        0x16, 0x00, 0x01, 0x09,             //   authentication data [09]
        0x1F, 0x00, 0x01, b'r',             //   reason string "r"
        0x26, 0x00, 0x00, 0x00, 0x00,       //   user property ""=""
    ];
    let a = auth(golden(&wire, V5));
    assert_eq!(a.reason_code, ReasonCode::CONTINUE_AUTHENTICATION);
    assert_eq!(a.properties.authentication_method.as_deref(), Some("m"));
    assert_eq!(a.properties.authentication_data.as_deref(), Some(&[9][..]));
    assert_eq!(a.properties.reason_string.as_deref(), Some("r"));
    assert_eq!(a.properties.user_properties.len(), 1);
}

#[test]
fn auth_with_reason_and_no_properties_round_trips() {
    let a = Packet::Auth(Auth {
        reason_code: ReasonCode::REAUTHENTICATE,
        properties: AuthProperties::default(),
    });
    let wire = encoded(&a, V5);
    assert_eq!(wire, [0xF0, 2, 0x19, 0]);
    let mut buf = bytes::BytesMut::from(&[0xF0, 1, 0x19][..]);
    assert_eq!(decode(&mut buf, Some(V5), u32::MAX).unwrap(), Some(a));
}

#[test]
fn v3_disconnect_omits_reason_and_properties() {
    let d = Packet::Disconnect(Disconnect {
        reason_code: ReasonCode::SERVER_SHUTTING_DOWN,
        properties: DisconnectProperties::default(),
    });
    assert_eq!(encoded(&d, V3_1_1), [0xE0, 0]);
}

#[test]
fn refuses_to_encode_auth_before_v5() {
    let mut buf = bytes::BytesMut::new();
    let err = encode(&Packet::Auth(Auth::default()), V3_1, &mut buf).err();
    assert!(matches!(err, Some(EncodeError::NotInVersion { .. })));
}

#[test]
fn rejects_payload_in_v311_disconnect() {
    let err = decode_error(&[0xE0, 1, 0], V3_1_1);
    assert!(matches!(err, Error::TrailingBytes(1)));
    assert_eq!(err.reason_code(), ReasonCode::MALFORMED_PACKET);
}

#[test]
fn rejects_auth_before_v5() {
    let err = decode_error(&[0xF0, 0], V3_1_1);
    assert!(matches!(err, Error::ReservedPacketType(15)));
    assert_eq!(err.reason_code(), ReasonCode::MALFORMED_PACKET);
}

#[test_case(&[0xE0, 1, 0x10]; "disconnect with puback code")]
#[test_case(&[0xE0, 1, 0x84]; "disconnect with connack code")]
#[test_case(&[0xF0, 1, 0x04]; "auth with disconnect code")]
fn rejects_reason_code_not_valid_for_packet(wire: &[u8]) {
    let err = decode_error(wire, V5);
    assert!(matches!(err, Error::InvalidReasonCode { .. }));
    assert_eq!(err.reason_code(), ReasonCode::PROTOCOL_ERROR);
}

#[test]
fn rejects_property_not_allowed_in_disconnect() {
    let err = decode_error(&[0xE0, 4, 0, 2, 0x01, 1], V5);
    assert!(matches!(err, Error::InvalidProperty { id: 0x01, .. }));
    assert_eq!(err.reason_code(), ReasonCode::MALFORMED_PACKET);
}

#[test]
fn rejects_property_not_allowed_in_auth() {
    let err = decode_error(&[0xF0, 7, 0x18, 5, 0x11, 0, 0, 0, 1], V5);
    assert!(matches!(err, Error::InvalidProperty { id: 0x11, .. }));
}

#[test]
fn rejects_duplicate_session_expiry_in_disconnect() {
    let wire = [0xE0, 12, 0, 10, 0x11, 0, 0, 0, 1, 0x11, 0, 0, 0, 2];
    let err = decode_error(&wire, V5);
    assert!(matches!(err, Error::DuplicateProperty(0x11)));
    assert_eq!(err.reason_code(), ReasonCode::PROTOCOL_ERROR);
}

#[test]
fn rejects_duplicate_authentication_method_in_auth() {
    let wire = [0xF0, 10, 0x18, 8, 0x15, 0, 1, b'a', 0x15, 0, 1, b'b'];
    let err = decode_error(&wire, V5);
    assert!(matches!(err, Error::DuplicateProperty(0x15)));
}

#[test_case(0xE1; "disconnect")]
#[test_case(0xF2; "auth")]
#[test_case(0xC8; "pingreq")]
fn rejects_nonzero_reserved_flags(first: u8) {
    let err = decode_error(&[first, 0], V5);
    assert!(matches!(err, Error::InvalidFixedHeaderFlags { .. }));
    assert_eq!(err.reason_code(), ReasonCode::MALFORMED_PACKET);
}
