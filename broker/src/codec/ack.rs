//! PUBACK, PUBREC, PUBREL and PUBCOMP (MQTT 5 3.4-3.7, 3.1.1 3.4-3.7): a packet
//! identifier and, in MQTT 5, an optional reason code and optional properties.
//!
//! Knows nothing about the QoS flows these packets drive; that is the session's business.

use super::error::{EncodeError, Error};
use super::packet::{AckProperties, PubResp};
use super::primitives::{Reader, Sink};
use super::properties::{put_properties, read_properties};
use crate::types::{ProtocolVersion, ReasonCode};

/// Which of the four acknowledgements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AckKind {
    Ack,
    Rec,
    Rel,
    Comp,
}

impl AckKind {
    fn name(self) -> &'static str {
        match self {
            AckKind::Ack => "puback",
            AckKind::Rec => "pubrec",
            AckKind::Rel => "pubrel",
            AckKind::Comp => "pubcomp",
        }
    }

    /// Reason codes allowed in this packet (MQTT 5 3.4.2.1, 3.5.2.1, 3.6.2.1, 3.7.2.1).
    pub(crate) fn valid_codes(self) -> &'static [u8] {
        match self {
            AckKind::Ack | AckKind::Rec => &[0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99],
            AckKind::Rel | AckKind::Comp => &[0x00, 0x92],
        }
    }
}

/// Decodes an acknowledgement body. MQTT 5: remaining length 2 means SUCCESS without
/// properties, 3 a reason code without properties (MQTT 5 3.4.2.1).
pub(crate) fn decode(
    kind: AckKind,
    mut r: Reader,
    version: ProtocolVersion,
) -> Result<PubResp, Error> {
    let packet_id = r.packet_id()?;
    let mut reason_code = ReasonCode::SUCCESS;
    let mut properties = AckProperties::default();
    if version.is_v5() && r.remaining() > 0 {
        let code = r.u8()?;
        if !kind.valid_codes().contains(&code) {
            return Err(Error::InvalidReasonCode {
                packet: kind.name(),
                code,
            });
        }
        reason_code = ReasonCode(code);
        if r.remaining() > 0 {
            properties = read_properties(&mut r)?;
        }
    }
    r.finish()?;
    Ok(PubResp {
        packet_id,
        reason_code,
        properties,
    })
}

/// Writes an acknowledgement body in its shortest form.
pub(crate) fn encode<S: Sink>(
    p: &PubResp,
    version: ProtocolVersion,
    s: &mut S,
) -> Result<(), EncodeError> {
    s.put_u16(p.packet_id.get());
    if !version.is_v5() {
        return Ok(());
    }
    match (p.reason_code, p.properties.is_empty()) {
        (ReasonCode::SUCCESS, true) => Ok(()),
        (code, true) => {
            s.put_u8(code.0);
            Ok(())
        }
        (code, false) => {
            s.put_u8(code.0);
            put_properties(s, &p.properties)
        }
    }
}

#[cfg(test)]
#[path = "ack_tests.rs"]
mod tests;
