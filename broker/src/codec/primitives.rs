//! The MQTT data representations (MQTT 5 section 1.5): integers, variable byte integers,
//! UTF-8 strings, binary data; a bounds-checked `Reader` over one packet's body and a
//! `Sink` that either writes bytes or only counts them, so that `encoded_len` and `encode`
//! share a single code path.
//!
//! This module knows nothing about packet types or properties.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use bytestring::ByteString;

use super::error::{EncodeError, Error};
use crate::types::PacketId;

/// The largest value a variable byte integer can hold (MQTT 5 1.5.5).
pub const MAX_VARIABLE_INTEGER: usize = 268_435_455;

/// Result of decoding a variable byte integer from a buffer that may be incomplete.
pub(crate) enum VarInt {
    /// The value and the number of bytes it took.
    Complete(u32, usize),
    /// More bytes are needed.
    Incomplete,
}

/// Reads a variable byte integer from the start of `src`; at most 4 bytes [MQTT-1.5.5-1].
///
/// Non-minimal encodings (e.g. `0x80 0x00`) are accepted: the minimum-bytes rule binds
/// the sender and rejecting them gains nothing.
pub(crate) fn read_variable_integer(src: &[u8]) -> Result<VarInt, Error> {
    let mut value: u32 = 0;
    for (i, byte) in src.iter().take(4).enumerate() {
        value |= u32::from(byte & 0x7F) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok(VarInt::Complete(value, i + 1));
        }
    }
    if src.len() >= 4 {
        Err(Error::MalformedVariableInteger)
    } else {
        Ok(VarInt::Incomplete)
    }
}

/// Number of bytes the variable byte integer encoding of `value` takes.
pub(crate) fn variable_integer_len(value: usize) -> usize {
    match value {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    }
}

/// A bounds-checked cursor over the body of one packet.
pub(crate) struct Reader {
    buf: Bytes,
}

impl Reader {
    /// Wraps a packet body (everything after the fixed header).
    pub(crate) fn new(buf: Bytes) -> Self {
        Reader { buf }
    }

    /// Bytes not yet read.
    pub(crate) fn remaining(&self) -> usize {
        self.buf.len()
    }

    fn need(&self, n: usize) -> Result<(), Error> {
        if self.buf.len() < n {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    pub(crate) fn u8(&mut self) -> Result<u8, Error> {
        self.need(1)?;
        Ok(self.buf.get_u8())
    }

    pub(crate) fn u16(&mut self) -> Result<u16, Error> {
        self.need(2)?;
        Ok(self.buf.get_u16())
    }

    pub(crate) fn u32(&mut self) -> Result<u32, Error> {
        self.need(4)?;
        Ok(self.buf.get_u32())
    }

    pub(crate) fn variable_integer(&mut self) -> Result<u32, Error> {
        match read_variable_integer(&self.buf)? {
            VarInt::Complete(value, len) => {
                self.buf.advance(len);
                Ok(value)
            }
            VarInt::Incomplete => Err(Error::Truncated),
        }
    }

    /// The next `n` bytes, shared with the frame (no copy).
    pub(crate) fn take(&mut self, n: usize) -> Result<Bytes, Error> {
        self.need(n)?;
        Ok(self.buf.split_to(n))
    }

    /// Everything not yet read.
    pub(crate) fn rest(&mut self) -> Bytes {
        self.buf.split_off(0)
    }

    /// Binary Data: a two-byte length then that many bytes (MQTT 5 1.5.6).
    pub(crate) fn binary(&mut self) -> Result<Bytes, Error> {
        let len = self.u16()?;
        self.take(usize::from(len))
    }

    /// UTF-8 Encoded String (MQTT 5 1.5.4, 3.1.1 1.5.3). Ill-formed UTF-8 (overlong
    /// forms, surrogates) [MQTT-1.5.4-1] and U+0000 [MQTT-1.5.4-2] are rejected. Control
    /// characters (U+0001..U+001F, U+007F..U+009F) and non-characters are only "SHOULD
    /// NOT" and are accepted. A BOM is kept as U+FEFF, never stripped [MQTT-1.5.4-3].
    pub(crate) fn string(&mut self) -> Result<ByteString, Error> {
        let bytes = self.binary()?;
        if bytes.contains(&0) {
            return Err(Error::NullCharacter);
        }
        ByteString::try_from(bytes).map_err(|_| Error::InvalidUtf8)
    }

    /// A non-zero packet identifier [MQTT-2.2.1-3] / [MQTT-2.3.1-1].
    pub(crate) fn packet_id(&mut self) -> Result<PacketId, Error> {
        PacketId::new(self.u16()?).ok_or(Error::ZeroPacketId)
    }

    /// Fails when bytes remain: every byte inside the remaining length must be used.
    pub(crate) fn finish(self) -> Result<(), Error> {
        match self.buf.len() {
            0 => Ok(()),
            n => Err(Error::TrailingBytes(n)),
        }
    }
}

/// Where encoded bytes go: a buffer, or a counter for `encoded_len`.
pub(crate) trait Sink {
    fn put_u8(&mut self, value: u8);
    fn put_u16(&mut self, value: u16);
    fn put_u32(&mut self, value: u32);
    fn put_slice(&mut self, value: &[u8]);
}

impl Sink for BytesMut {
    fn put_u8(&mut self, value: u8) {
        BufMut::put_u8(self, value);
    }
    fn put_u16(&mut self, value: u16) {
        BufMut::put_u16(self, value);
    }
    fn put_u32(&mut self, value: u32) {
        BufMut::put_u32(self, value);
    }
    fn put_slice(&mut self, value: &[u8]) {
        BufMut::put_slice(self, value);
    }
}

/// A `Sink` that only counts bytes.
#[derive(Default)]
pub(crate) struct Counter(pub(crate) usize);

impl Sink for Counter {
    fn put_u8(&mut self, _: u8) {
        self.0 += 1;
    }
    fn put_u16(&mut self, _: u16) {
        self.0 += 2;
    }
    fn put_u32(&mut self, _: u32) {
        self.0 += 4;
    }
    fn put_slice(&mut self, value: &[u8]) {
        self.0 += value.len();
    }
}

/// Writes a variable byte integer (shortest form).
pub(crate) fn put_variable_integer<S: Sink>(s: &mut S, value: usize) -> Result<(), EncodeError> {
    if value > MAX_VARIABLE_INTEGER {
        return Err(EncodeError::VariableIntegerTooLarge(value));
    }
    let mut value = value;
    loop {
        // invariant: value <= MAX_VARIABLE_INTEGER, so the low 7 bits fit a byte
        let mut byte = (value & 0x7F) as u8;
        value >>= 7;
        if value > 0 {
            byte |= 0x80;
        }
        s.put_u8(byte);
        if value == 0 {
            return Ok(());
        }
    }
}

/// Writes Binary Data (two-byte length prefix).
pub(crate) fn put_binary<S: Sink>(s: &mut S, value: &[u8]) -> Result<(), EncodeError> {
    let len = u16::try_from(value.len()).map_err(|_| EncodeError::FieldTooLong(value.len()))?;
    s.put_u16(len);
    s.put_slice(value);
    Ok(())
}

/// Writes a UTF-8 Encoded String (two-byte length prefix).
pub(crate) fn put_string<S: Sink>(s: &mut S, value: &str) -> Result<(), EncodeError> {
    put_binary(s, value.as_bytes())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap
mod tests {
    use super::*;

    fn encode_variable_integer(value: usize) -> Vec<u8> {
        let mut buf = BytesMut::new();
        put_variable_integer(&mut buf, value).unwrap();
        buf.to_vec()
    }

    #[test_case::test_case(0, &[0x00]; "zero")]
    #[test_case::test_case(127, &[0x7F]; "one byte max")]
    #[test_case::test_case(128, &[0x80, 0x01]; "two bytes min")]
    #[test_case::test_case(16_383, &[0xFF, 0x7F]; "two bytes max")]
    #[test_case::test_case(16_384, &[0x80, 0x80, 0x01]; "three bytes min")]
    #[test_case::test_case(2_097_151, &[0xFF, 0xFF, 0x7F]; "three bytes max")]
    #[test_case::test_case(2_097_152, &[0x80, 0x80, 0x80, 0x01]; "four bytes min")]
    #[test_case::test_case(268_435_455, &[0xFF, 0xFF, 0xFF, 0x7F]; "four bytes max")]
    fn variable_integer_round_trips(value: usize, wire: &[u8]) {
        assert_eq!(encode_variable_integer(value), wire);
        assert_eq!(variable_integer_len(value), wire.len());
        match read_variable_integer(wire).unwrap() {
            VarInt::Complete(v, len) => assert_eq!((v as usize, len), (value, wire.len())),
            VarInt::Incomplete => panic!("incomplete"),
        }
    }

    #[test]
    fn rejects_fifth_variable_integer_byte() {
        let err = read_variable_integer(&[0xFF, 0xFF, 0xFF, 0xFF, 0x01]).err();
        assert!(matches!(err, Some(Error::MalformedVariableInteger)));
    }

    #[test]
    fn variable_integer_prefix_is_incomplete() {
        assert!(matches!(
            read_variable_integer(&[0xFF, 0xFF]),
            Ok(VarInt::Incomplete)
        ));
    }

    #[test]
    fn refuses_to_encode_variable_integer_over_maximum() {
        let mut buf = BytesMut::new();
        let err = put_variable_integer(&mut buf, MAX_VARIABLE_INTEGER + 1).err();
        assert!(matches!(err, Some(EncodeError::VariableIntegerTooLarge(_))));
    }

    #[test]
    fn refuses_to_encode_string_over_65535_bytes() {
        let mut buf = BytesMut::new();
        let err = put_string(&mut buf, &"a".repeat(65_536)).err();
        assert!(matches!(err, Some(EncodeError::FieldTooLong(65_536))));
    }

    #[test_case::test_case(&[0x00, 0x02, 0xC0, 0x80]; "overlong nul")]
    #[test_case::test_case(&[0x00, 0x03, 0xED, 0xA0, 0x80]; "surrogate half")]
    #[test_case::test_case(&[0x00, 0x01, 0xFF]; "invalid byte")]
    fn rejects_ill_formed_utf8(wire: &'static [u8]) {
        let err = Reader::new(Bytes::from_static(wire)).string().err();
        assert!(matches!(err, Some(Error::InvalidUtf8)));
        assert_eq!(err.unwrap().reason_code().0, 0x81);
    }

    #[test]
    fn rejects_nul_character_in_string() {
        let err = Reader::new(Bytes::from_static(&[0, 3, b'a', 0, b'b']))
            .string()
            .err();
        assert!(matches!(err, Some(Error::NullCharacter)));
    }

    #[test]
    fn accepts_control_characters_and_noncharacters_in_string() {
        let text = "a\u{1}\u{7F}\u{9F}\u{FFFF}";
        let mut buf = BytesMut::new();
        put_string(&mut buf, text).unwrap();
        let decoded = Reader::new(buf.freeze()).string().unwrap();
        assert_eq!(&*decoded, text);
    }

    #[test]
    fn rejects_string_running_past_the_end() {
        let err = Reader::new(Bytes::from_static(&[0, 5, b'a']))
            .string()
            .err();
        assert!(matches!(err, Some(Error::Truncated)));
    }

    #[test]
    fn rejects_zero_packet_id() {
        let err = Reader::new(Bytes::from_static(&[0, 0])).packet_id().err();
        assert!(matches!(err, Some(Error::ZeroPacketId)));
    }
}
