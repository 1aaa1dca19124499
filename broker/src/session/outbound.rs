//! Outbound QoS 1 and 2 messages in flight towards the client, and packet identifier
//! allocation. Entries stay in send order so that a reconnecting client gets them again
//! in the original order with DUP set [MQTT-4.4.0-1], [MQTT-4.6.0-1].

use std::collections::VecDeque;

use crate::message::Delivery;
use crate::types::{PacketId, QoS};

/// Where an outbound message is in its acknowledgement flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InflightState {
    /// QoS 1 sent, awaiting PUBACK.
    AwaitingPubAck,
    /// QoS 2 sent, awaiting PUBREC.
    AwaitingPubRec,
    /// QoS 2 PUBREL sent, awaiting PUBCOMP.
    AwaitingPubComp,
}

/// One message in flight.
#[derive(Debug, Clone)]
pub struct Inflight {
    /// Its packet identifier.
    pub packet_id: PacketId,
    /// The delivery (message, QoS, retain, subscription ids).
    pub delivery: Delivery,
    /// Acknowledgement state.
    pub state: InflightState,
}

/// The outbound window of a session.
#[derive(Debug, Default)]
pub struct Outbound {
    inflight: VecDeque<Inflight>,
    last_id: u16,
}

/// Result of an acknowledgement from the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckResult {
    /// The flow for this id is complete (PUBACK, PUBCOMP, or PUBREC with an error code);
    /// carries the delivery's store entry, if it has one.
    Completed(Option<u64>),
    /// PUBREC accepted: send PUBREL now.
    SendPubRel,
    /// No message in flight has this id in a matching state: ignore it.
    Unknown,
}

impl Outbound {
    /// Number of messages in flight.
    pub fn len(&self) -> usize {
        self.inflight.len()
    }

    /// True when nothing is in flight.
    pub fn is_empty(&self) -> bool {
        self.inflight.is_empty()
    }

    /// True when another QoS > 0 message fits in a window of `window` messages.
    pub fn has_room(&self, window: u16) -> bool {
        self.inflight.len() < usize::from(window)
    }

    /// Allocates an identifier not in use by any in-flight message [MQTT-2.2.1-3].
    pub fn next_packet_id(&mut self) -> PacketId {
        loop {
            self.last_id = self.last_id.wrapping_add(1);
            let Some(id) = PacketId::new(self.last_id) else {
                continue;
            };
            if !self.inflight.iter().any(|f| f.packet_id == id) {
                return id;
            }
        }
    }

    /// Restores a message in flight when a session is read back from the store.
    pub fn restore(&mut self, packet_id: PacketId, delivery: Delivery, state: InflightState) {
        self.last_id = self.last_id.max(packet_id.get());
        self.inflight.push_back(Inflight {
            packet_id,
            delivery,
            state,
        });
    }

    /// The in-flight entry with `packet_id`.
    pub fn get(&self, packet_id: PacketId) -> Option<&Inflight> {
        self.inflight.iter().find(|f| f.packet_id == packet_id)
    }

    /// Records a message just sent with `packet_id`.
    pub fn push(&mut self, packet_id: PacketId, delivery: Delivery) {
        let state = if delivery.qos == QoS::ExactlyOnce {
            InflightState::AwaitingPubRec
        } else {
            InflightState::AwaitingPubAck
        };
        self.inflight.push_back(Inflight {
            packet_id,
            delivery,
            state,
        });
    }

    /// Handles PUBACK.
    pub fn on_puback(&mut self, packet_id: PacketId) -> AckResult {
        self.complete(packet_id, InflightState::AwaitingPubAck)
    }

    /// Handles PUBREC; a failure reason code (>= 0x80) ends the flow [MQTT-4.3.3-4],
    /// [MQTT-4.4.0-2].
    pub fn on_pubrec(&mut self, packet_id: PacketId, failed: bool) -> AckResult {
        if failed {
            return self.complete(packet_id, InflightState::AwaitingPubRec);
        }
        match self.inflight.iter_mut().find(|f| f.packet_id == packet_id) {
            Some(f) if f.state == InflightState::AwaitingPubRec => {
                f.state = InflightState::AwaitingPubComp;
                AckResult::SendPubRel
            }
            // A PUBREC repeated after PUBREL: answer with PUBREL again.
            Some(f) if f.state == InflightState::AwaitingPubComp => AckResult::SendPubRel,
            _ => AckResult::Unknown,
        }
    }

    /// Handles PUBCOMP.
    pub fn on_pubcomp(&mut self, packet_id: PacketId) -> AckResult {
        self.complete(packet_id, InflightState::AwaitingPubComp)
    }

    /// Everything in flight, in send order, for retransmission after a reconnect.
    pub fn iter(&self) -> impl Iterator<Item = &Inflight> {
        self.inflight.iter()
    }

    fn complete(&mut self, packet_id: PacketId, state: InflightState) -> AckResult {
        match self
            .inflight
            .iter()
            .position(|f| f.packet_id == packet_id && f.state == state)
        {
            Some(pos) => {
                AckResult::Completed(self.inflight.remove(pos).and_then(|f| f.delivery.store_seq))
            }
            None => AckResult::Unknown,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::message::{Message, MessageProperties};
    use crate::topic::TopicName;

    fn delivery(qos: QoS) -> Delivery {
        Delivery {
            message: Arc::new(Message {
                topic: TopicName::new("a/b").unwrap(),
                payload: bytes::Bytes::from_static(b"x"),
                qos,
                retain: false,
                properties: MessageProperties::default(),
                expires_at: None,
                publisher: None,
            }),
            qos,
            retain: false,
            subscription_ids: vec![],
            store_seq: None,
        }
    }

    #[test]
    fn packet_ids_skip_zero_and_ids_in_flight() {
        let mut o = Outbound::default();
        let a = o.next_packet_id();
        assert_eq!(a.get(), 1);
        o.push(a, delivery(QoS::AtLeastOnce));
        o.last_id = u16::MAX;
        // wraps past 0 and skips 1, which is still in flight
        assert_eq!(o.next_packet_id().get(), 2);
    }

    #[test]
    fn qos2_flow_completes_after_pubrec_then_pubcomp() {
        let mut o = Outbound::default();
        let id = o.next_packet_id();
        o.push(id, delivery(QoS::ExactlyOnce));
        assert_eq!(o.on_pubcomp(id), AckResult::Unknown);
        assert_eq!(o.on_pubrec(id, false), AckResult::SendPubRel);
        assert_eq!(o.on_pubrec(id, false), AckResult::SendPubRel);
        assert_eq!(o.on_pubcomp(id), AckResult::Completed(None));
        assert!(o.is_empty());
    }

    #[test]
    fn window_limits_inflight() {
        let mut o = Outbound::default();
        for _ in 0..2 {
            let id = o.next_packet_id();
            o.push(id, delivery(QoS::AtLeastOnce));
        }
        assert!(!o.has_room(2));
        assert!(o.has_room(3));
        assert_eq!(
            o.on_puback(PacketId::new(1).unwrap()),
            AckResult::Completed(None)
        );
        assert!(o.has_room(2));
    }

    #[test]
    fn pubrec_with_error_code_ends_the_flow() {
        let mut o = Outbound::default();
        let id = o.next_packet_id();
        o.push(id, delivery(QoS::ExactlyOnce));
        assert_eq!(o.on_pubrec(id, true), AckResult::Completed(None));
        assert!(o.is_empty());
    }
}
