#![allow(clippy::unwrap_used)] // tests may unwrap

use bytes::BytesMut;
use test_case::test_case;
use tokio_util::codec::{Decoder, Encoder};

use crate::codec::test_util::{decode_error, golden};
use crate::codec::*;
use crate::types::{ProtocolVersion, ReasonCode};

use ProtocolVersion::{V3_1_1, V5};

#[test_case(V3_1_1; "v311")]
#[test_case(V5; "v5")]
fn decode_pings(version: ProtocolVersion) {
    #[rustfmt::skip]
    let pingreq = [
        0xC0, 0x00, // PINGREQ, remaining length 0
    ];
    #[rustfmt::skip]
    let pingresp = [
        0xD0, 0x00, // PINGRESP, remaining length 0
    ];
    assert_eq!(golden(&pingreq, version), Packet::PingReq);
    assert_eq!(golden(&pingresp, version), Packet::PingResp);
}

#[test]
fn rejects_payload_in_ping() {
    let err = decode_error(&[0xC0, 1, 0], V3_1_1);
    assert!(matches!(err, Error::TrailingBytes(1)));
}

#[test]
fn rejects_too_large_packet_with_only_the_fixed_header_buffered() {
    // PUBLISH announcing 2,097,151 bytes; only the fixed header has arrived.
    let mut buf = BytesMut::from(&[0x30, 0xFF, 0xFF, 0x7F][..]);
    let err = decode(&mut buf, Some(V5), 1024).err().unwrap();
    assert!(matches!(
        err,
        Error::PacketTooLarge {
            size: 2_097_155,
            max: 1024
        }
    ));
    assert_eq!(err.reason_code(), ReasonCode::PACKET_TOO_LARGE);
    assert!(buf.capacity() < 1024, "the body was not reserved");
}

#[test]
fn size_limit_includes_the_fixed_header() {
    let wire = [0xC0, 0x00];
    let err = decode(&mut BytesMut::from(&wire[..]), Some(V3_1_1), 1).err();
    assert!(matches!(
        err,
        Some(Error::PacketTooLarge { size: 2, max: 1 })
    ));
    let ok = decode(&mut BytesMut::from(&wire[..]), Some(V3_1_1), 2).unwrap();
    assert_eq!(ok, Some(Packet::PingReq));
}

#[test]
fn rejects_fifth_remaining_length_byte_before_the_body_arrives() {
    let mut buf = BytesMut::from(&[0x30, 0xFF, 0xFF, 0xFF, 0xFF][..]);
    let err = decode(&mut buf, Some(V3_1_1), u32::MAX).err().unwrap();
    assert!(matches!(err, Error::MalformedVariableInteger));
    assert_eq!(err.reason_code(), ReasonCode::MALFORMED_PACKET);
}

#[test]
fn incomplete_frame_reserves_room_for_the_whole_frame() {
    let mut buf = BytesMut::with_capacity(4);
    buf.extend_from_slice(&[0x30, 0x64, 0x00]); // PUBLISH, remaining length 100, 1 byte
    assert!(decode(&mut buf, Some(V3_1_1), u32::MAX).unwrap().is_none());
    assert!(buf.capacity() >= 102);
    assert_eq!(buf.len(), 3, "nothing consumed");
}

#[test_case(&[0x30]; "publish header byte alone")]
#[test_case(&[0xC0, 0x00]; "pingreq")]
#[test_case(&[0x20, 0x02, 0x00, 0x00]; "connack")]
fn rejects_first_packet_other_than_connect(wire: &[u8]) {
    let mut buf = BytesMut::from(wire);
    let err = decode(&mut buf, None, u32::MAX).err().unwrap();
    assert!(matches!(err, Error::FirstPacketNotConnect(t) if t == wire[0] >> 4));
    assert_eq!(err.reason_code(), ReasonCode::PROTOCOL_ERROR);
}

#[test]
fn rejects_reserved_packet_type_0() {
    let err = decode_error(&[0x00, 0x00], V5);
    assert!(matches!(err, Error::ReservedPacketType(0)));
    assert_eq!(err.reason_code(), ReasonCode::MALFORMED_PACKET);
}

#[test]
fn rejects_connect_with_reserved_fixed_header_flags() {
    let mut buf = BytesMut::from(&[0x11, 0x00][..]);
    let err = decode(&mut buf, None, u32::MAX).err().unwrap();
    assert!(matches!(
        err,
        Error::InvalidFixedHeaderFlags {
            packet_type: 1,
            flags: 1
        }
    ));
}

const V5_CONNECT: [u8; 15] = [
    0x10, 13, 0, 4, b'M', b'Q', b'T', b'T', 5, 0x02, 0, 0, 0, 0, 0,
];
const V311_CONNECT: [u8; 14] = [0x10, 12, 0, 4, b'M', b'Q', b'T', b'T', 4, 0x02, 0, 0, 0, 0];

#[test]
fn codec_learns_the_version_from_connect() {
    let mut codec = Codec::new(1024);
    assert_eq!(codec.version(), None);
    let mut buf = BytesMut::from(&V5_CONNECT[..]);
    buf.extend_from_slice(&[0x40, 0x03, 0x00, 0x01, 0x10]); // v5 PUBACK with a reason code
    assert!(matches!(
        codec.decode(&mut buf).unwrap(),
        Some(Packet::Connect(_))
    ));
    assert_eq!(codec.version(), Some(V5));
    let Some(Packet::PubAck(ack)) = codec.decode(&mut buf).unwrap() else {
        panic!("expected a puback")
    };
    assert_eq!(ack.reason_code, ReasonCode::NO_MATCHING_SUBSCRIBERS);
    assert!(buf.is_empty());
    assert!(codec.decode(&mut buf).unwrap().is_none());
}

#[test]
fn second_connect_does_not_change_the_version() {
    let mut codec = Codec::new(1024);
    let mut buf = BytesMut::from(&V5_CONNECT[..]);
    buf.extend_from_slice(&V311_CONNECT);
    codec.decode(&mut buf).unwrap();
    assert!(matches!(
        codec.decode(&mut buf).unwrap(),
        Some(Packet::Connect(_))
    ));
    assert_eq!(codec.version(), Some(V5));
}

#[test]
fn codec_encodes_in_v311_format_until_the_version_is_known() {
    let mut codec = Codec::new(1024);
    let connack = Packet::ConnAck(ConnAck {
        session_present: false,
        reason_code: ReasonCode::UNSUPPORTED_PROTOCOL_VERSION,
        properties: ConnAckProperties::default(),
    });
    let mut out = BytesMut::new();
    codec.encode(&connack, &mut out).unwrap();
    assert_eq!(&out[..], [0x20, 2, 0, 1]);
    codec.set_version(V5);
    out.clear();
    codec.encode(&connack, &mut out).unwrap();
    assert_eq!(&out[..], [0x20, 3, 0, 0x84, 0]);
}

#[test]
fn codec_applies_a_changed_size_limit() {
    let mut codec = Codec::new(1024);
    codec.set_version(V3_1_1);
    codec.set_max_incoming_bytes(1);
    let err = codec.decode(&mut BytesMut::from(&[0xC0, 0][..])).err();
    assert!(matches!(err, Some(Error::PacketTooLarge { .. })));
}

#[test]
fn refuses_to_encode_packet_over_the_remaining_length_maximum() {
    let publish = Packet::Publish(Publish {
        dup: false,
        qos: crate::types::QoS::AtMostOnce,
        retain: false,
        topic: "t".into(),
        packet_id: None,
        payload: bytes::Bytes::from(vec![0; MAX_VARIABLE_INTEGER]),
        properties: PublishProperties::default(),
    });
    let mut out = BytesMut::new();
    let err = encode(&publish, V3_1_1, &mut out).err();
    assert!(matches!(err, Some(EncodeError::VariableIntegerTooLarge(_))));
    assert!(out.is_empty());
}

#[test]
fn a_publish_head_counts_the_payload_that_follows_it() {
    let head = Publish {
        dup: false,
        qos: crate::types::QoS::AtLeastOnce,
        retain: false,
        topic: bytestring::ByteString::new(),
        packet_id: crate::types::PacketId::new(10),
        payload: bytes::Bytes::new(),
        properties: PublishProperties::default(),
    };
    let mut out = BytesMut::new();
    encode_publish_head(&head, "a/b", 70_000, V3_1_1, &mut out).unwrap();
    #[rustfmt::skip]
    let expected = [
        0x32,             // PUBLISH, QoS 1
        0xF7, 0xA2, 0x04, // remaining length 70,007: 2 + 3 (topic) + 2 (id) + 70,000
        0x00, 0x03, b'a', b'/', b'b',
        0x00, 0x0A,       // packet id 10; the payload is not written
    ];
    assert_eq!(&out[..], &expected[..]);
    let err = encode_publish_head(&head, "a/b", MAX_VARIABLE_INTEGER, V3_1_1, &mut out).err();
    assert!(matches!(err, Some(EncodeError::VariableIntegerTooLarge(_))));
    assert_eq!(out.len(), expected.len(), "nothing written on an error");
}

#[test]
fn every_prefix_of_a_packet_is_incomplete() {
    // v5 PUBLISH qos 1, topic "t", id 1, properties: topic alias 7; payload "a"
    let wire = [0x32, 0x0A, 0, 1, b't', 0, 1, 3, 0x23, 0, 7, b'a'];
    for n in 0..wire.len() {
        let mut buf = BytesMut::from(&wire[..n]);
        assert!(
            decode(&mut buf, Some(V5), u32::MAX).unwrap().is_none(),
            "prefix {n}"
        );
        assert_eq!(buf.len(), n);
    }
    let mut buf = BytesMut::from(&wire[..]);
    let Some(Packet::Publish(p)) = decode(&mut buf, Some(V5), u32::MAX).unwrap() else {
        panic!("expected a publish")
    };
    assert_eq!(
        (p.properties.topic_alias, &p.payload[..]),
        (Some(7), &b"a"[..])
    );
}
