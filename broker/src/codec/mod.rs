//! Bytes ↔ [`Packet`] for MQTT 3.1, 3.1.1 and 5.0: a tokio-util `Decoder`/`Encoder`
//! ([`Codec`], one per connection) over the stateless [`decode`], [`encode`] and
//! [`encoded_len`].
//!
//! The codec enforces every rule the wire format carries (framing, reserved bits, UTF-8,
//! property placement and multiplicity, reason-code tables) and refuses oversized packets
//! before buffering their body. It does no I/O and knows nothing about sessions, topics
//! (beyond UTF-8) or authorisation.
//!
//! Layout: `frame` (fixed header, size limit, dispatch), `primitives` (integers, strings,
//! binary data), `properties` (generic MQTT 5 properties), then one module per packet
//! family: `connect` (CONNECT, CONNACK; their properties in
//! `connect_properties`), `publish`, `ack` (PUBACK..PUBCOMP), `subscribe`
//! (SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK) and `disconnect` (DISCONNECT, AUTH).

mod ack;
mod connect;
mod connect_properties;
mod disconnect;
mod error;
mod frame;
pub mod packet;
mod primitives;
mod properties;
mod publish;
mod subscribe;

#[cfg(test)]
pub(crate) mod proptests;
#[cfg(test)]
mod test_util;

use bytes::BytesMut;

pub use error::{EncodeError, Error};
pub use frame::{
    decode, encode, encode_publish, encode_publish_head, encoded_len, encoded_publish_len,
};
pub use packet::*;
pub use primitives::MAX_VARIABLE_INTEGER;

use crate::types::ProtocolVersion;

/// The codec of one connection: remembers the protocol version (learnt from CONNECT)
/// and the maximum incoming packet size.
///
/// It decodes every packet type in both directions, so clients, tests and tools can use
/// it as well as the server.
#[derive(Debug, Clone)]
pub struct Codec {
    version: Option<ProtocolVersion>,
    max_incoming_bytes: u32,
}

impl Codec {
    /// A codec for a new connection; the version stays unknown until CONNECT is decoded.
    ///
    /// `max_incoming_bytes` bounds the whole packet, fixed header included (MQTT 5
    /// 3.1.2.11.4 semantics); `u32::MAX` leaves only the protocol's own limit.
    pub fn new(max_incoming_bytes: u32) -> Self {
        Codec {
            version: None,
            max_incoming_bytes,
        }
    }

    /// The protocol version, once known.
    pub fn version(&self) -> Option<ProtocolVersion> {
        self.version
    }

    /// Sets the protocol version (client-side use and tests).
    pub fn set_version(&mut self, v: ProtocolVersion) {
        self.version = Some(v);
    }

    /// Changes the maximum incoming packet size.
    pub fn set_max_incoming_bytes(&mut self, n: u32) {
        self.max_incoming_bytes = n;
    }
}

impl tokio_util::codec::Decoder for Codec {
    type Item = Packet;
    type Error = Error;

    /// Decodes one packet. The first CONNECT decoded sets the version; a later CONNECT
    /// (a protocol error for the session to report) leaves it unchanged.
    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Packet>, Error> {
        let packet = decode(src, self.version, self.max_incoming_bytes)?;
        if let (None, Some(Packet::Connect(connect))) = (self.version, &packet) {
            self.version = Some(connect.protocol);
        }
        Ok(packet)
    }
}

impl tokio_util::codec::Encoder<&Packet> for Codec {
    type Error = EncodeError;

    /// Encodes in the connection's version, or in 3.1.1 format while it is unknown.
    fn encode(&mut self, packet: &Packet, dst: &mut BytesMut) -> Result<(), EncodeError> {
        encode(packet, self.version.unwrap_or(ProtocolVersion::V3_1_1), dst)
    }
}
