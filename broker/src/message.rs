//! An application message as the broker routes it: topic, payload, flags and the MQTT 5
//! properties that travel with it from publisher to subscriber.
//!
//! Messages are immutable and shared (`Arc<Message>`) between every subscriber that
//! receives them; per-delivery facts (granted QoS, retain flag, subscription identifiers,
//! packet id, topic alias) live in [`Delivery`]. Nothing here knows about sockets.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use bytestring::ByteString;

use crate::codec::{PublishProperties, UserProperties};
use crate::topic::TopicName;
use crate::types::{ClientId, QoS};

/// An application message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Topic name (validated, alias resolved).
    pub topic: TopicName,
    /// Payload, shared not copied.
    pub payload: Bytes,
    /// QoS the publisher used.
    pub qos: QoS,
    /// RETAIN flag as published.
    pub retain: bool,
    /// Properties forwarded unaltered [MQTT-3.3.2-4, MQTT-3.3.2-15, MQTT-3.3.2-16,
    /// MQTT-3.3.2-17, MQTT-3.3.2-20]: see [`MessageProperties`].
    pub properties: MessageProperties,
    /// When the message expires (from Message Expiry Interval), if ever.
    pub expires_at: Option<Instant>,
    /// The client that published it (for No Local); `None` for broker-made messages.
    pub publisher: Option<ClientId>,
}

/// The PUBLISH properties a broker forwards to subscribers [MQTT-3.3.2-4, MQTT-3.3.2-15,
/// MQTT-3.3.2-16, MQTT-3.3.2-17, MQTT-3.3.2-18, MQTT-3.3.2-20].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MessageProperties {
    /// Payload Format Indicator.
    pub payload_format_indicator: Option<u8>,
    /// Content Type.
    pub content_type: Option<ByteString>,
    /// Response Topic.
    pub response_topic: Option<ByteString>,
    /// Correlation Data.
    pub correlation_data: Option<Bytes>,
    /// User Properties, order kept [MQTT-3.3.2-18].
    pub user_properties: UserProperties,
}

impl Message {
    /// True once the Message Expiry Interval has passed.
    pub fn is_expired(&self, now: Instant) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }

    /// The remaining expiry interval in whole seconds (rounded up), to forward to a
    /// subscriber [MQTT-3.3.2-6]; `None` when the message never expires.
    pub fn remaining_expiry_secs(&self, now: Instant) -> Option<u32> {
        self.expires_at.map(|at| {
            let left = at.saturating_duration_since(now);
            let secs = left.as_secs() + u64::from(left.subsec_nanos() > 0);
            u32::try_from(secs).unwrap_or(u32::MAX)
        })
    }

    /// Builds the properties of an outgoing PUBLISH for this message. `now` is the time
    /// if the caller read it; the clock is read here only for a message that expires.
    pub fn publish_properties(
        &self,
        now: Option<Instant>,
        subscription_ids: &[u32],
    ) -> PublishProperties {
        let expiry = self
            .expires_at
            .and_then(|_| self.remaining_expiry_secs(now.unwrap_or_else(Instant::now)));
        PublishProperties {
            payload_format_indicator: self.properties.payload_format_indicator,
            message_expiry_interval: expiry,
            topic_alias: None,
            response_topic: self.properties.response_topic.clone(),
            correlation_data: self.properties.correlation_data.clone(),
            user_properties: self.properties.user_properties.clone(),
            subscription_identifiers: subscription_ids.to_vec(),
            content_type: self.properties.content_type.clone(),
        }
    }

    /// The deadline for a Message Expiry Interval received now; `now` is called only
    /// when there is an interval (most messages have none, and reading the clock per
    /// message shows in profiles).
    pub fn expiry_deadline(
        interval_secs: Option<u32>,
        now: impl FnOnce() -> Instant,
    ) -> Option<Instant> {
        interval_secs.map(|secs| now() + Duration::from_secs(u64::from(secs)))
    }
}

/// One message on its way to one subscriber.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The shared message.
    pub message: Arc<Message>,
    /// Effective QoS: min(published, granted) [MQTT-3.8.4-8? / MQTT-4.3? see router].
    pub qos: QoS,
    /// RETAIN flag to send.
    pub retain: bool,
    /// Subscription identifiers of every matching subscription [MQTT-3.3.4-3].
    pub subscription_ids: Vec<u32>,
    /// The delivery's entry in the durable store, when it was queued for a persistent
    /// session.
    pub store_seq: Option<u64>,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests may unwrap
    use super::*;

    fn message(expires_at: Option<Instant>) -> Message {
        Message {
            topic: TopicName::new("t").unwrap(),
            payload: Bytes::new(),
            qos: QoS::AtMostOnce,
            retain: false,
            properties: MessageProperties::default(),
            expires_at,
            publisher: None,
        }
    }

    #[test]
    fn the_clock_is_read_only_for_a_message_that_expires() {
        let unread = || -> Instant { panic!("the clock was read") };
        assert_eq!(Message::expiry_deadline(None, unread), None);
        let at = Instant::now();
        assert_eq!(
            Message::expiry_deadline(Some(5), || at),
            Some(at + Duration::from_secs(5))
        );
        let forever = message(None).publish_properties(None, &[]);
        assert_eq!(forever.message_expiry_interval, None);
    }

    #[test]
    fn an_expiring_message_forwards_its_remaining_interval_with_or_without_a_given_time() {
        // [MQTT-3.3.2-6] the interval sent on is what is left of it, rounded up.
        let now = Instant::now();
        let m = message(Some(now + Duration::from_millis(2500)));
        let given = m.publish_properties(Some(now), &[7]);
        assert_eq!(given.message_expiry_interval, Some(3));
        assert_eq!(given.subscription_identifiers, vec![7]);
        let read_here = m.publish_properties(None, &[]);
        assert!(matches!(read_here.message_expiry_interval, Some(1..=3)));
    }
}
