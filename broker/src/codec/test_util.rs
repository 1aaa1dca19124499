//! Helpers for the golden tests of every packet module.

#![allow(clippy::unwrap_used)] // tests may unwrap

use bytes::BytesMut;

use super::{Error, Packet, decode, encode, encoded_len};
use crate::types::ProtocolVersion;

/// A PINGREQ appended after every golden frame: it must be left in the buffer.
pub(crate) const TRAILER: &[u8] = &[0xC0, 0x00];

/// The version to decode with: unknown for CONNECT, `version` otherwise.
fn decode_version(wire: &[u8], version: ProtocolVersion) -> Option<ProtocolVersion> {
    (wire[0] >> 4 != 1).then_some(version)
}

/// Decodes `wire` followed by [`TRAILER`], checks that exactly one frame was consumed,
/// that every strict prefix is incomplete, and that re-encoding gives `wire` back.
pub(crate) fn golden(wire: &[u8], version: ProtocolVersion) -> Packet {
    let mut buf = BytesMut::from(wire);
    buf.extend_from_slice(TRAILER);
    let packet = decode(&mut buf, decode_version(wire, version), u32::MAX)
        .unwrap()
        .unwrap();
    assert_eq!(&buf[..], TRAILER, "exactly one frame consumed");
    for n in 0..wire.len() {
        let mut prefix = BytesMut::from(&wire[..n]);
        let decoded = decode(&mut prefix, decode_version(wire, version), u32::MAX).unwrap();
        assert!(decoded.is_none(), "prefix of {n} bytes decoded");
        assert_eq!(prefix.len(), n, "a prefix is not consumed");
    }
    let mut out = BytesMut::new();
    encode(&packet, version, &mut out).unwrap();
    assert_eq!(&out[..], wire, "re-encoding gives the same bytes");
    assert_eq!(encoded_len(&packet, version), wire.len());
    packet
}

/// Decodes `wire` (a complete frame) and returns the error.
pub(crate) fn decode_error(wire: &[u8], version: ProtocolVersion) -> Error {
    let mut buf = BytesMut::from(wire);
    match decode(&mut buf, decode_version(wire, version), u32::MAX) {
        Err(e) => e,
        Ok(p) => panic!("expected an error, decoded {p:?}"),
    }
}

/// Encodes `packet` in `version`.
pub(crate) fn encoded(packet: &Packet, version: ProtocolVersion) -> Vec<u8> {
    let mut out = BytesMut::new();
    encode(packet, version, &mut out).unwrap();
    assert_eq!(encoded_len(packet, version), out.len());
    out.to_vec()
}
