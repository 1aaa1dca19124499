//! Application messages and their quality of service, as plugins see them.
//!
//! Plain Rust types only: the conversion to and from the WIT records lives in `convert`.
//! Nothing here validates topics (see [`crate::topic`]); the broker validates whatever a plugin
//! hands back.

/// MQTT quality of service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum QoS {
    /// QoS 0: at most once.
    #[default]
    AtMostOnce,
    /// QoS 1: at least once.
    AtLeastOnce,
    /// QoS 2: exactly once.
    ExactlyOnce,
}

impl QoS {
    /// The QoS as its wire value, 0, 1 or 2.
    pub const fn as_u8(self) -> u8 {
        match self {
            QoS::AtMostOnce => 0,
            QoS::AtLeastOnce => 1,
            QoS::ExactlyOnce => 2,
        }
    }

    /// The QoS for a wire value, `None` above 2.
    pub const fn from_u8(value: u8) -> Option<QoS> {
        match value {
            0 => Some(QoS::AtMostOnce),
            1 => Some(QoS::AtLeastOnce),
            2 => Some(QoS::ExactlyOnce),
            _ => None,
        }
    }
}

/// An application message: a topic, a payload and the MQTT 5 properties a plugin may read or set.
///
/// Build one with [`Message::new`] and the `with_*` methods:
///
/// ```
/// use cauldron_sdk::{Message, QoS};
///
/// let msg = Message::new("temp/fahrenheit", "70.7")
///     .with_qos(QoS::AtLeastOnce)
///     .with_retain(true)
///     .with_content_type("text/plain")
///     .with_user_property("unit", "F");
/// assert_eq!(msg.topic(), "temp/fahrenheit");
/// assert_eq!(msg.payload_str(), Some("70.7"));
/// assert_eq!(msg.user_property("unit"), Some("F"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Message {
    pub(crate) topic: String,
    pub(crate) payload: Vec<u8>,
    pub(crate) qos: QoS,
    pub(crate) retain: bool,
    pub(crate) user_properties: Vec<(String, String)>,
    pub(crate) content_type: Option<String>,
    pub(crate) response_topic: Option<String>,
    pub(crate) correlation_data: Option<Vec<u8>>,
    pub(crate) payload_utf8: bool,
    pub(crate) message_expiry_secs: Option<u32>,
}

impl Message {
    /// A QoS 0, non-retained message without properties.
    pub fn new(topic: impl Into<String>, payload: impl Into<Vec<u8>>) -> Message {
        Message {
            topic: topic.into(),
            payload: payload.into(),
            ..Message::default()
        }
    }

    /// The topic name.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The payload bytes.
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }

    /// The payload as text, `None` when it is not valid UTF-8.
    pub fn payload_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.payload).ok()
    }

    /// The quality of service.
    pub fn qos(&self) -> QoS {
        self.qos
    }

    /// The retain flag.
    pub fn retain(&self) -> bool {
        self.retain
    }

    /// MQTT 5 user properties, in order (keys may repeat).
    pub fn user_properties(&self) -> &[(String, String)] {
        &self.user_properties
    }

    /// The value of the first user property named `key`.
    pub fn user_property(&self, key: &str) -> Option<&str> {
        self.user_properties
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// MQTT 5 content type.
    pub fn content_type(&self) -> Option<&str> {
        self.content_type.as_deref()
    }

    /// MQTT 5 response topic.
    pub fn response_topic(&self) -> Option<&str> {
        self.response_topic.as_deref()
    }

    /// MQTT 5 correlation data.
    pub fn correlation_data(&self) -> Option<&[u8]> {
        self.correlation_data.as_deref()
    }

    /// MQTT 5 payload format indicator: true when the publisher declared the payload UTF-8.
    pub fn payload_utf8(&self) -> bool {
        self.payload_utf8
    }

    /// MQTT 5 message expiry interval in seconds.
    pub fn message_expiry_secs(&self) -> Option<u32> {
        self.message_expiry_secs
    }

    /// Replaces the topic name.
    pub fn set_topic(&mut self, topic: impl Into<String>) {
        self.topic = topic.into();
    }

    /// Replaces the payload.
    pub fn set_payload(&mut self, payload: impl Into<Vec<u8>>) {
        self.payload = payload.into();
    }

    /// This message with another topic name.
    pub fn with_topic(mut self, topic: impl Into<String>) -> Message {
        self.set_topic(topic);
        self
    }

    /// This message with another payload.
    pub fn with_payload(mut self, payload: impl Into<Vec<u8>>) -> Message {
        self.set_payload(payload);
        self
    }

    /// This message with another QoS.
    pub fn with_qos(mut self, qos: QoS) -> Message {
        self.qos = qos;
        self
    }

    /// This message with another retain flag.
    pub fn with_retain(mut self, retain: bool) -> Message {
        self.retain = retain;
        self
    }

    /// This message with one more user property, appended after the existing ones.
    pub fn with_user_property(
        mut self,
        key: impl Into<String>,
        value: impl Into<String>,
    ) -> Message {
        self.user_properties.push((key.into(), value.into()));
        self
    }

    /// This message with a content type.
    pub fn with_content_type(mut self, content_type: impl Into<String>) -> Message {
        self.content_type = Some(content_type.into());
        self
    }

    /// This message with a response topic.
    pub fn with_response_topic(mut self, topic: impl Into<String>) -> Message {
        self.response_topic = Some(topic.into());
        self
    }

    /// This message with correlation data.
    pub fn with_correlation_data(mut self, data: impl Into<Vec<u8>>) -> Message {
        self.correlation_data = Some(data.into());
        self
    }

    /// This message with the payload format indicator set or cleared.
    pub fn with_payload_utf8(mut self, utf8: bool) -> Message {
        self.payload_utf8 = utf8;
        self
    }

    /// This message with a message expiry interval.
    pub fn with_message_expiry_secs(mut self, secs: u32) -> Message {
        self.message_expiry_secs = Some(secs);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qos_round_trips_through_wire_values() {
        for q in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
            assert_eq!(QoS::from_u8(q.as_u8()), Some(q));
        }
        assert_eq!(QoS::from_u8(3), None);
        assert!(QoS::AtMostOnce < QoS::ExactlyOnce);
    }

    #[test]
    fn new_message_is_qos0_without_properties() {
        let m = Message::new("a/b", vec![1, 2]);
        assert_eq!(m.topic(), "a/b");
        assert_eq!(m.payload(), &[1, 2]);
        assert_eq!(m.qos(), QoS::AtMostOnce);
        assert!(!m.retain());
        assert!(m.user_properties().is_empty());
        assert_eq!(m.content_type(), None);
        assert_eq!(m.payload_str(), Some("\u{1}\u{2}"));
    }

    #[test]
    fn user_property_returns_first_of_repeated_keys() {
        let m = Message::new("t", "")
            .with_user_property("k", "1")
            .with_user_property("k", "2");
        assert_eq!(m.user_property("k"), Some("1"));
        assert_eq!(m.user_properties().len(), 2);
        assert_eq!(m.user_property("missing"), None);
    }

    #[test]
    fn payload_str_is_none_for_invalid_utf8() {
        assert_eq!(Message::new("t", vec![0xff, 0xfe]).payload_str(), None);
    }
}
