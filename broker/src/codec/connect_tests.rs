#![allow(clippy::unwrap_used)] // tests may unwrap

use bytes::Bytes;
use bytestring::ByteString;
use test_case::test_case;

use crate::codec::test_util::{decode_error, encoded, golden};
use crate::codec::*;
use crate::types::{ProtocolVersion, QoS, ReasonCode};

use ProtocolVersion::{V3_1, V3_1_1, V5};

fn connect(packet: Packet) -> Connect {
    match packet {
        Packet::Connect(c) => *c,
        other => panic!("not a connect: {other:?}"),
    }
}

fn connack(packet: Packet) -> ConnAck {
    match packet {
        Packet::ConnAck(c) => c,
        other => panic!("not a connack: {other:?}"),
    }
}

#[test]
fn decode_connect_v311_with_will_and_credentials() {
    #[rustfmt::skip]
    let wire = [
        0x10, 0x22,                         // CONNECT, remaining length 34
        0x00, 0x04, b'M', b'Q', b'T', b'T', // protocol name "MQTT"
        0x04,                               // level 4 (3.1.1)
        0xEE,                               // user, password, will retain, will qos 1, will, clean
        0x00, 0x3C,                         // keep alive 60
        0x00, 0x03, b'c', b'i', b'd',       // client id "cid"
        0x00, 0x03, b'w', b'/', b't',       // will topic "w/t"
        0x00, 0x02, b'b', b'y',             // will payload "by"
        0x00, 0x04, b'u', b's', b'e', b'r', // user name "user"
        0x00, 0x02, b'p', b'w',             // password "pw"
    ];
    let c = connect(golden(&wire, V3_1_1));
    assert_eq!(c.protocol, V3_1_1);
    assert!(c.clean_start);
    assert_eq!(c.keep_alive, 60);
    assert_eq!(&*c.client_id, "cid");
    let will = c.will.unwrap();
    assert_eq!((&*will.topic, &will.payload[..]), ("w/t", &b"by"[..]));
    assert_eq!((will.qos, will.retain), (QoS::AtLeastOnce, true));
    assert_eq!(c.username.as_deref(), Some("user"));
    assert_eq!(c.password.as_deref(), Some(&b"pw"[..]));
    assert_eq!(c.properties, ConnectProperties::default());
}

#[test]
fn decode_connect_v31() {
    #[rustfmt::skip]
    let wire = [
        0x10, 0x11,                                         // CONNECT, remaining length 17
        0x00, 0x06, b'M', b'Q', b'I', b's', b'd', b'p',     // protocol name "MQIsdp"
        0x03,                                               // level 3 (3.1)
        0x02,                                               // clean session
        0x00, 0x1E,                                         // keep alive 30
        0x00, 0x03, b'c', b'i', b'd',                       // client id "cid"
    ];
    let c = connect(golden(&wire, V3_1));
    assert_eq!(c.protocol, V3_1);
    assert_eq!((c.keep_alive, &*c.client_id), (30, "cid"));
    assert!(c.will.is_none() && c.username.is_none() && c.password.is_none());
}

#[test]
fn decode_connect_v5_with_every_property() {
    #[rustfmt::skip]
    let wire = [
        0x10, 0x5E,                         // CONNECT, remaining length 94
        0x00, 0x04, b'M', b'Q', b'T', b'T', // protocol name "MQTT"
        0x05,                               // level 5
        0xC6,                               // user, password, will (qos 0), clean start
        0x00, 0x0A,                         // keep alive 10
        0x24,                               // property length 36
        0x11, 0x00, 0x00, 0x00, 0x78,       //   session expiry interval 120
        0x21, 0x00, 0x10,                   //   receive maximum 16
        0x27, 0x00, 0x00, 0x10, 0x00,       //   maximum packet size 4096
        0x22, 0x00, 0x05,                   //   topic alias maximum 5
        0x19, 0x01,                         //   request response information 1
        0x17, 0x00,                         //   request problem information 0
        0x26, 0x00, 0x01, b'k', 0x00, 0x01, b'v', // user property k=v
        0x15, 0x00, 0x02, b's', b'c',       //   authentication method "sc"
        0x16, 0x00, 0x01, 0xAB,             //   authentication data [AB]
        0x00, 0x01, b'c',                   // client id "c"
        0x1F,                               // will property length 31
        0x18, 0x00, 0x00, 0x00, 0x05,       //   will delay interval 5
        0x01, 0x01,                         //   payload format indicator 1
        0x02, 0x00, 0x00, 0x00, 0x09,       //   message expiry interval 9
        0x03, 0x00, 0x01, b't',             //   content type "t"
        0x08, 0x00, 0x01, b'r',             //   response topic "r"
        0x09, 0x00, 0x01, 0x01,             //   correlation data [01]
        0x26, 0x00, 0x01, b'a', 0x00, 0x01, b'b', // user property a=b
        0x00, 0x01, b'w',                   // will topic "w"
        0x00, 0x01, b'x',                   // will payload "x"
        0x00, 0x01, b'u',                   // user name "u"
        0x00, 0x01, b'p',                   // password "p"
    ];
    let c = connect(golden(&wire, V5));
    let p = &c.properties;
    assert_eq!(p.session_expiry_interval, Some(120));
    assert_eq!(p.receive_maximum, Some(16));
    assert_eq!(p.maximum_packet_size, Some(4096));
    assert_eq!(p.topic_alias_maximum, Some(5));
    assert_eq!(p.request_response_information, Some(true));
    assert_eq!(p.request_problem_information, Some(false));
    assert_eq!(p.user_properties, vec![("k".into(), "v".into())]);
    assert_eq!(p.authentication_method.as_deref(), Some("sc"));
    assert_eq!(p.authentication_data.as_deref(), Some(&[0xAB][..]));
    let will = c.will.unwrap();
    let w = &will.properties;
    assert_eq!(w.will_delay_interval, Some(5));
    assert_eq!(w.payload_format_indicator, Some(1));
    assert_eq!(w.message_expiry_interval, Some(9));
    assert_eq!(w.content_type.as_deref(), Some("t"));
    assert_eq!(w.response_topic.as_deref(), Some("r"));
    assert_eq!(w.correlation_data.as_deref(), Some(&[1][..]));
    assert_eq!(w.user_properties.len(), 1);
    assert_eq!((will.qos, will.retain), (QoS::AtMostOnce, false));
}

#[test]
fn decode_connack_v311() {
    #[rustfmt::skip]
    let wire = [
        0x20, 0x02, // CONNACK, remaining length 2
        0x01,       // session present
        0x00,       // return code 0 (accepted)
    ];
    let c = connack(golden(&wire, V3_1_1));
    assert!(c.session_present);
    assert_eq!(c.reason_code, ReasonCode::SUCCESS);
}

#[test]
fn decode_connack_v31() {
    #[rustfmt::skip]
    let wire = [
        0x20, 0x02, // CONNACK, remaining length 2
        0x00,       // reserved (3.1 has no session present)
        0x05,       // return code 5 (not authorized)
    ];
    let c = connack(golden(&wire, V3_1));
    assert_eq!(c.reason_code, ReasonCode::NOT_AUTHORIZED);
}

#[test]
fn decode_connack_v5_with_every_property() {
    #[rustfmt::skip]
    let wire = [
        0x20, 0x41,                         // CONNACK, remaining length 65
        0x00,                               // session not present
        0x00,                               // reason success
        0x3E,                               // property length 62
        0x11, 0x00, 0x00, 0x00, 0x3C,       //   session expiry interval 60
        0x21, 0x00, 0x20,                   //   receive maximum 32
        0x24, 0x01,                         //   maximum qos 1
        0x25, 0x00,                         //   retain available 0
        0x27, 0x00, 0x01, 0x00, 0x00,       //   maximum packet size 65536
        0x12, 0x00, 0x02, b'i', b'd',       //   assigned client identifier "id"
        0x22, 0x00, 0x0A,                   //   topic alias maximum 10
        0x1F, 0x00, 0x02, b'o', b'k',       //   reason string "ok"
        0x26, 0x00, 0x01, b'k', 0x00, 0x01, b'v', // user property k=v
        0x28, 0x01,                         //   wildcard subscription available
        0x29, 0x00,                         //   subscription identifiers not available
        0x2A, 0x01,                         //   shared subscription available
        0x13, 0x00, 0x1E,                   //   server keep alive 30
        0x1A, 0x00, 0x01, b'r',             //   response information "r"
        0x1C, 0x00, 0x01, b's',             //   server reference "s"
        0x15, 0x00, 0x01, b'm',             //   authentication method "m"
        0x16, 0x00, 0x01, 0x07,             //   authentication data [07]
    ];
    let c = connack(golden(&wire, V5));
    let p = &c.properties;
    assert_eq!(p.session_expiry_interval, Some(60));
    assert_eq!(p.receive_maximum, Some(32));
    assert_eq!(p.maximum_qos, Some(QoS::AtLeastOnce));
    assert_eq!(p.retain_available, Some(false));
    assert_eq!(p.maximum_packet_size, Some(65536));
    assert_eq!(p.assigned_client_identifier.as_deref(), Some("id"));
    assert_eq!(p.topic_alias_maximum, Some(10));
    assert_eq!(p.reason_string.as_deref(), Some("ok"));
    assert_eq!(p.wildcard_subscription_available, Some(true));
    assert_eq!(p.subscription_identifiers_available, Some(false));
    assert_eq!(p.shared_subscription_available, Some(true));
    assert_eq!(p.server_keep_alive, Some(30));
    assert_eq!(p.response_information.as_deref(), Some("r"));
    assert_eq!(p.server_reference.as_deref(), Some("s"));
    assert_eq!(p.authentication_method.as_deref(), Some("m"));
    assert_eq!(p.authentication_data.as_deref(), Some(&[7][..]));
}

fn connack_with(code: u8, session_present: bool) -> Packet {
    Packet::ConnAck(ConnAck {
        session_present,
        reason_code: ReasonCode(code),
        properties: ConnAckProperties::default(),
    })
}

#[test_case(0x00, 0; "success")]
#[test_case(0x84, 1; "unsupported protocol version")]
#[test_case(0x85, 2; "client identifier not valid")]
#[test_case(0x88, 3; "server unavailable")]
#[test_case(0x89, 3; "server busy")]
#[test_case(0x8B, 3; "server shutting down")]
#[test_case(0x80, 3; "other failures")]
#[test_case(0x86, 4; "bad user name or password")]
#[test_case(0x87, 5; "not authorized")]
#[test_case(0x8C, 5; "bad authentication method")]
fn encodes_v3_connack_return_code(code: u8, v3: u8) {
    assert_eq!(
        encoded(&connack_with(code, false), V3_1_1),
        [0x20, 2, 0, v3]
    );
}

#[test]
fn v31_connack_never_sets_session_present() {
    assert_eq!(encoded(&connack_with(0, true), V3_1), [0x20, 2, 0, 0]);
    assert_eq!(encoded(&connack_with(0, true), V3_1_1), [0x20, 2, 1, 0]);
}

#[test]
fn failed_connack_never_sets_session_present() {
    assert_eq!(encoded(&connack_with(0x87, true), V3_1_1), [0x20, 2, 0, 5]);
    assert_eq!(
        encoded(&connack_with(0x87, true), V5),
        [0x20, 3, 0, 0x87, 0]
    );
}

#[test]
fn connect_uses_its_own_protocol_version_when_encoding() {
    let c = Connect {
        protocol: V3_1,
        clean_start: false,
        keep_alive: 0,
        client_id: ByteString::from_static("a"),
        will: None,
        username: None,
        password: Some(Bytes::from_static(b"p")),
        properties: ConnectProperties::default(),
    };
    let wire = encoded(&Packet::Connect(Box::new(c)), V5);
    assert_eq!(&wire[4..10], b"MQIsdp");
}

#[test_case(b"MQTT", 6; "mqtt level 6")]
#[test_case(b"MQTT", 3; "mqtt level 3")]
#[test_case(b"MQIsdp", 4; "mqisdp level 4")]
fn rejects_unknown_protocol_level(name: &[u8], level: u8) {
    let mut wire = vec![0x10, 0, 0, name.len() as u8];
    wire.extend_from_slice(name);
    wire.extend_from_slice(&[level, 0x02, 0, 0, 0, 0]);
    wire[1] = (wire.len() - 2) as u8;
    let err = decode_error(&wire, V3_1_1);
    assert!(matches!(err, Error::UnsupportedProtocolVersion(l) if l == level));
    assert_eq!(err.reason_code(), ReasonCode::UNSUPPORTED_PROTOCOL_VERSION);
}

#[test]
fn rejects_unknown_protocol_name() {
    let wire = [0x10, 10, 0, 4, b'M', b'Q', b'T', b'X', 4, 2, 0, 0];
    let err = decode_error(&wire, V3_1_1);
    assert!(matches!(err, Error::InvalidProtocolName));
    assert_eq!(err.reason_code(), ReasonCode::PROTOCOL_ERROR);
}

/// A 3.1.1 CONNECT with the given flags and payload.
fn v311_connect(flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut wire = vec![0x10, 0, 0, 4, b'M', b'Q', b'T', b'T', 4, flags, 0, 0];
    wire.extend_from_slice(payload);
    wire[1] = (wire.len() - 2) as u8;
    wire
}

#[test]
fn rejects_connect_reserved_flag() {
    let err = decode_error(&v311_connect(0x03, &[0, 0]), V3_1_1);
    assert!(matches!(err, Error::ConnectReservedFlag));
    assert_eq!(err.reason_code(), ReasonCode::MALFORMED_PACKET);
}

#[test_case(0x08; "will qos 1")]
#[test_case(0x10; "will qos 2")]
#[test_case(0x20; "will retain")]
fn rejects_will_flags_without_will(flags: u8) {
    let err = decode_error(&v311_connect(flags, &[0, 0]), V3_1_1);
    assert!(matches!(err, Error::WillFlagsWithoutWill));
    assert_eq!(err.reason_code(), ReasonCode::MALFORMED_PACKET);
}

#[test]
fn rejects_will_qos_3() {
    let err = decode_error(&v311_connect(0x1C, &[0, 0, 0, 1, b't', 0, 0]), V3_1_1);
    assert!(matches!(err, Error::WillQos3));
    assert_eq!(err.reason_code(), ReasonCode::MALFORMED_PACKET);
}

#[test]
fn rejects_password_without_user_name_in_v311() {
    let err = decode_error(&v311_connect(0x42, &[0, 0, 0, 1, b'p']), V3_1_1);
    assert!(matches!(err, Error::PasswordWithoutUsername));
    assert_eq!(err.reason_code(), ReasonCode::MALFORMED_PACKET);
}

#[test]
fn accepts_password_without_user_name_in_v5() {
    #[rustfmt::skip]
    let wire = [
        0x10, 0x10,                         // CONNECT, remaining length 16
        0x00, 0x04, b'M', b'Q', b'T', b'T', // protocol name
        0x05,                               // level 5
        0x42,                               // password, clean start
        0x00, 0x00,                         // keep alive 0
        0x00,                               // property length 0
        0x00, 0x00,                         // client id ""
        0x00, 0x01, b'p',                   // password "p"
    ];
    let c = connect(golden(&wire, V5));
    assert_eq!((c.username, c.password.as_deref()), (None, Some(&b"p"[..])));
}

#[test]
fn rejects_trailing_bytes_after_connect_payload() {
    let err = decode_error(&v311_connect(0x02, &[0, 0, 0xFF]), V3_1_1);
    assert!(matches!(err, Error::TrailingBytes(1)));
    assert_eq!(err.reason_code(), ReasonCode::MALFORMED_PACKET);
}

#[test]
fn rejects_client_id_running_past_the_end() {
    let err = decode_error(&v311_connect(0x02, &[0, 5, b'a']), V3_1_1);
    assert!(matches!(err, Error::Truncated));
    assert_eq!(err.reason_code(), ReasonCode::MALFORMED_PACKET);
}

#[test]
fn rejects_nul_in_client_id() {
    let err = decode_error(&v311_connect(0x02, &[0, 1, 0]), V3_1_1);
    assert!(matches!(err, Error::NullCharacter));
    assert_eq!(err.reason_code(), ReasonCode::MALFORMED_PACKET);
}

/// A 5.0 CONNECT with the given properties and an empty client id.
fn v5_connect(properties: &[u8]) -> Vec<u8> {
    let mut wire = vec![0x10, 0, 0, 4, b'M', b'Q', b'T', b'T', 5, 0x02, 0, 0];
    wire.push(properties.len() as u8);
    wire.extend_from_slice(properties);
    wire.extend_from_slice(&[0, 0]);
    wire[1] = (wire.len() - 2) as u8;
    wire
}

#[test_case(&[0x11, 0, 0, 0, 1, 0x11, 0, 0, 0, 2], 0x11; "session expiry interval twice")]
#[test_case(&[0x21, 0, 1, 0x21, 0, 1], 0x21; "receive maximum twice")]
#[test_case(&[0x15, 0, 1, b'm', 0x15, 0, 1, b'm'], 0x15; "authentication method twice")]
fn rejects_duplicate_connect_property(properties: &[u8], id: u8) {
    let err = decode_error(&v5_connect(properties), V5);
    assert!(matches!(err, Error::DuplicateProperty(d) if d == id));
    assert_eq!(err.reason_code(), ReasonCode::PROTOCOL_ERROR);
}

#[test_case(&[0x21, 0, 0], 0x21; "receive maximum 0")]
#[test_case(&[0x27, 0, 0, 0, 0], 0x27; "maximum packet size 0")]
#[test_case(&[0x17, 2], 0x17; "request problem information 2")]
#[test_case(&[0x19, 2], 0x19; "request response information 2")]
fn rejects_invalid_connect_property_value(properties: &[u8], id: u8) {
    let err = decode_error(&v5_connect(properties), V5);
    assert!(matches!(err, Error::InvalidPropertyValue(d) if d == id));
    assert_eq!(err.reason_code(), ReasonCode::PROTOCOL_ERROR);
}

#[test]
fn rejects_property_not_allowed_in_connect() {
    let err = decode_error(&v5_connect(&[0x23, 0, 1]), V5); // topic alias
    assert!(matches!(err, Error::InvalidProperty { id: 0x23, .. }));
    assert_eq!(err.reason_code(), ReasonCode::MALFORMED_PACKET);
}

#[test]
fn accepts_repeated_user_properties_in_connect() {
    let wire = v5_connect(&[0x26, 0, 0, 0, 0, 0x26, 0, 0, 0, 0]);
    let c = connect(golden(&wire, V5));
    assert_eq!(c.properties.user_properties.len(), 2);
}

#[test]
fn rejects_connack_reserved_flags() {
    let err = decode_error(&[0x20, 2, 0x02, 0], V3_1_1);
    assert!(matches!(err, Error::ConnAckReservedFlags));
    assert_eq!(err.reason_code(), ReasonCode::MALFORMED_PACKET);
}

#[test]
fn rejects_unknown_v3_connack_return_code() {
    let err = decode_error(&[0x20, 2, 0, 6], V3_1_1);
    assert!(matches!(err, Error::InvalidReasonCode { code: 6, .. }));
}

#[test]
fn rejects_reason_code_not_valid_for_v5_connack() {
    let err = decode_error(&[0x20, 3, 0, 0x04, 0], V5); // 0x04 is a DISCONNECT code
    assert!(matches!(err, Error::InvalidReasonCode { code: 4, .. }));
    assert_eq!(err.reason_code(), ReasonCode::PROTOCOL_ERROR);
}

#[test_case(&[0x24, 2], 0x24; "maximum qos 2")]
#[test_case(&[0x25, 2], 0x25; "retain available 2")]
#[test_case(&[0x28, 5], 0x28; "wildcard subscription available 5")]
fn rejects_invalid_connack_property_value(properties: &[u8], id: u8) {
    let mut wire = vec![0x20, 0, 0, 0, properties.len() as u8];
    wire.extend_from_slice(properties);
    wire[1] = (wire.len() - 2) as u8;
    let err = decode_error(&wire, V5);
    assert!(matches!(err, Error::InvalidPropertyValue(d) if d == id));
    assert_eq!(err.reason_code(), ReasonCode::PROTOCOL_ERROR);
}
