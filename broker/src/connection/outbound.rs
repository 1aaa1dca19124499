//! Deliveries towards the client: QoS window, packet ids, topic aliases, the client's
//! Maximum Packet Size, message expiry, and retransmission after a reconnect.

use std::time::Instant;

use bytestring::ByteString;
use tokio::io::{AsyncRead, AsyncWrite};

use super::Io;
use super::inbound::ack;
use super::state::Conn;
use crate::codec::{self, Packet, Publish, PublishProperties};
use crate::message::Delivery;
use crate::session::InflightState;
use crate::stats::Stats;
use crate::types::{QoS, ReasonCode};

impl Conn {
    /// True when the outbox may be read: nothing pending locally, the write buffer below
    /// its high-water mark and room in the inflight window.
    pub(crate) fn can_pull<S>(&self, io: &Io<S>) -> bool {
        self.pending.is_empty() && self.has_capacity(io)
    }

    fn has_capacity<S>(&self, io: &Io<S>) -> bool {
        io.wbuf.len() < self.broker.config.limits.write_buffer_high_water_bytes
            && self.session.outbound.has_room(self.window)
    }

    /// Sends locally queued deliveries (retained messages) while there is capacity.
    pub(crate) fn fill_from_pending<S: AsyncRead + AsyncWrite>(&mut self, io: &mut Io<S>) {
        while self.has_capacity(io) {
            let Some(d) = self.pending.pop_front() else {
                break;
            };
            self.deliver(io, d);
        }
    }

    /// On shutdown: move what the window allows from the outbox into the write buffer.
    pub(crate) fn drain_for_shutdown<S: AsyncRead + AsyncWrite>(&mut self, io: &mut Io<S>) {
        self.fill_from_pending(io);
        while self.can_pull(io) {
            match self.outbox_rx.try_recv() {
                Ok(d) => self.deliver(io, d),
                Err(_) => break,
            }
        }
    }

    /// Encodes one delivery as PUBLISH.
    pub(crate) fn deliver<S: AsyncRead + AsyncWrite>(&mut self, io: &mut Io<S>, d: Delivery) {
        let now = Instant::now();
        let broker = std::sync::Arc::clone(&self.broker);
        let stats = &broker.stats;
        if d.message.is_expired(now) {
            // [MQTT-3.3.2-5] an expired message is not delivered
            Stats::incr(&stats.dropped_expired);
            return;
        }
        let v5 = self.version.is_v5();
        let properties = if v5 {
            d.message.publish_properties(now, &d.subscription_ids)
        } else {
            PublishProperties::default()
        };
        let mut publish = Publish {
            dup: false,
            qos: d.qos,
            retain: d.retain,
            topic: d.message.topic.clone().into_inner(),
            packet_id: None,
            payload: d.message.payload.clone(),
            properties,
        };
        if d.qos != QoS::AtMostOnce {
            publish.packet_id = Some(self.session.outbound.next_packet_id());
        }
        // [MQTT-3.1.2-25] never send more than the client's Maximum Packet Size: the
        // message is dropped for this client as if delivered.
        let mut packet = Packet::Publish(publish);
        let size = codec::encoded_len(&packet, self.version);
        if size > self.client_max_packet as usize {
            Stats::incr(&stats.dropped_too_large);
            tracing::debug!(topic = %d.message.topic, size, max = self.client_max_packet, "message larger than the client's maximum packet size dropped");
            return;
        }
        let mut packet_id = None;
        if let Packet::Publish(publish) = &mut packet {
            if v5 {
                self.apply_outbound_alias(publish, &d.message.topic);
            }
            packet_id = publish.packet_id;
        }
        io.encode(&packet);
        Stats::incr(&stats.messages_sent);
        if let Some(id) = packet_id {
            self.session.outbound.push(id, d);
        }
    }

    /// [MQTT-3.3.2-?] outbound aliases only up to the client's Topic Alias Maximum.
    fn apply_outbound_alias(&mut self, publish: &mut Publish, topic: &crate::topic::TopicName) {
        if self.client_topic_alias_max == 0 {
            return;
        }
        if let Some(alias) = self.outbound_aliases.get(topic) {
            publish.properties.topic_alias = Some(*alias);
            publish.topic = ByteString::new();
            return;
        }
        let next = self.outbound_aliases.len() + 1;
        if next <= usize::from(self.client_topic_alias_max) {
            let alias = next as u16;
            self.outbound_aliases.insert(topic.clone(), alias);
            publish.properties.topic_alias = Some(alias);
        }
    }

    /// [MQTT-4.4.0-1] after a reconnect, resend unacknowledged PUBLISH with DUP set and
    /// PUBREL for those already PUBREC'd, in their original order.
    pub(crate) fn resend_inflight<S: AsyncRead + AsyncWrite>(&mut self, io: &mut Io<S>) {
        let now = Instant::now();
        let v5 = self.version.is_v5();
        for f in self.session.outbound.iter() {
            match f.state {
                InflightState::AwaitingPubComp => {
                    io.encode(&Packet::PubRel(ack(f.packet_id, ReasonCode::SUCCESS)));
                }
                _ => {
                    let d = &f.delivery;
                    let properties = if v5 {
                        d.message.publish_properties(now, &d.subscription_ids)
                    } else {
                        PublishProperties::default()
                    };
                    io.encode(&Packet::Publish(Publish {
                        dup: true,
                        qos: d.qos,
                        retain: d.retain,
                        topic: d.message.topic.clone().into_inner(),
                        packet_id: Some(f.packet_id),
                        payload: d.message.payload.clone(),
                        properties,
                    }));
                    Stats::incr(&self.broker.stats.messages_sent);
                }
            }
        }
    }
}
