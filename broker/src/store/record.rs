//! The records the store writes, and their conversion from and to the broker's types.
//!
//! Every value starts with a format version byte, followed by the record in postcard
//! (serde). Instants become Unix milliseconds on the way out and come back relative to
//! the current clock, so deadlines keep counting while the broker is down.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use bytestring::ByteString;
use serde::{Deserialize, Serialize};

use crate::codec::{RetainHandling, SubscriptionOptions};
use crate::message::{Delivery, Message, MessageProperties};
use crate::session::{InflightState, SessionSubscription};
use crate::topic::TopicName;
use crate::types::{ClientId, QoS};

/// The version byte in front of every record.
pub const FORMAT: u8 = 1;

/// A record that does not decode.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// Empty value.
    #[error("empty record")]
    Empty,
    /// Written by a newer (or unknown) format.
    #[error("record format {0} is not supported (this broker reads format {FORMAT})")]
    Format(u8),
    /// The bytes do not decode.
    #[error("undecodable record: {0}")]
    Postcard(#[from] postcard::Error),
    /// A field holds a value the broker never writes.
    #[error("invalid field {0}")]
    Invalid(&'static str),
}

pub(crate) fn encode<T: Serialize>(record: &T) -> Vec<u8> {
    let mut out = vec![FORMAT];
    // invariant: postcard serialises these plain records into a Vec without error
    if let Ok(bytes) = postcard::to_allocvec(record) {
        out.extend_from_slice(&bytes);
    }
    out
}

pub(crate) fn decode<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, DecodeError> {
    match bytes.split_first() {
        None => Err(DecodeError::Empty),
        Some((&FORMAT, rest)) => Ok(postcard::from_bytes(rest)?),
        Some((&v, _)) => Err(DecodeError::Format(v)),
    }
}

/// Wall-clock milliseconds since the Unix epoch.
pub fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// The wall-clock time of `at`, a monotonic instant.
pub fn instant_to_unix_ms(at: Instant, now: Instant, wall_now: SystemTime) -> u64 {
    let now_ms = unix_ms(wall_now);
    if at >= now {
        now_ms.saturating_add(u64::try_from(at.duration_since(now).as_millis()).unwrap_or(0))
    } else {
        now_ms.saturating_sub(u64::try_from(now.duration_since(at).as_millis()).unwrap_or(0))
    }
}

/// The monotonic instant of wall-clock `ms` (now, when it has passed).
pub fn unix_ms_to_instant(ms: u64, now: Instant, wall_now: SystemTime) -> Instant {
    let left = ms.saturating_sub(unix_ms(wall_now));
    now + Duration::from_millis(left)
}

/// A message as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageRecord {
    topic: String,
    payload: Vec<u8>,
    qos: u8,
    retain: bool,
    payload_format_indicator: Option<u8>,
    content_type: Option<String>,
    response_topic: Option<String>,
    correlation_data: Option<Vec<u8>>,
    user_properties: Vec<(String, String)>,
    expires_at_ms: Option<u64>,
    publisher: Option<String>,
}

impl MessageRecord {
    /// The record of `m`.
    pub fn from_message(m: &Message, now: Instant, wall_now: SystemTime) -> Self {
        let p = &m.properties;
        MessageRecord {
            topic: m.topic.as_str().to_owned(),
            payload: m.payload.to_vec(),
            qos: m.qos.as_u8(),
            retain: m.retain,
            payload_format_indicator: p.payload_format_indicator,
            content_type: p.content_type.as_ref().map(|s| s.to_string()),
            response_topic: p.response_topic.as_ref().map(|s| s.to_string()),
            correlation_data: p.correlation_data.as_ref().map(|b| b.to_vec()),
            user_properties: p
                .user_properties
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            expires_at_ms: m.expires_at.map(|at| instant_to_unix_ms(at, now, wall_now)),
            publisher: m.publisher.as_ref().map(|c| c.as_str().to_owned()),
        }
    }

    /// True when the message expired at wall-clock `now_ms`.
    pub fn expired_at(&self, now_ms: u64) -> bool {
        self.expires_at_ms.is_some_and(|at| at <= now_ms)
    }

    /// The message back.
    pub fn into_message(self, now: Instant, wall_now: SystemTime) -> Result<Message, DecodeError> {
        Ok(Message {
            topic: TopicName::new(self.topic).map_err(|_| DecodeError::Invalid("topic"))?,
            payload: Bytes::from(self.payload),
            qos: QoS::from_u8(self.qos).ok_or(DecodeError::Invalid("qos"))?,
            retain: self.retain,
            properties: MessageProperties {
                payload_format_indicator: self.payload_format_indicator,
                content_type: self.content_type.map(ByteString::from),
                response_topic: self.response_topic.map(ByteString::from),
                correlation_data: self.correlation_data.map(Bytes::from),
                user_properties: self
                    .user_properties
                    .into_iter()
                    .map(|(k, v)| (ByteString::from(k), ByteString::from(v)))
                    .collect(),
            },
            expires_at: self
                .expires_at_ms
                .map(|ms| unix_ms_to_instant(ms, now, wall_now)),
            publisher: self.publisher.map(ClientId::new),
        })
    }
}

/// One subscription as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubscriptionRecord {
    /// The filter text of SUBSCRIBE (with any `$share/{group}/`).
    pub key: String,
    share_group: Option<String>,
    filter: String,
    qos: u8,
    no_local: bool,
    retain_as_published: bool,
    retain_handling: u8,
    subscription_id: Option<u32>,
}

impl SubscriptionRecord {
    /// The record of one session subscription.
    pub fn new(key: &ByteString, s: &SessionSubscription) -> Self {
        // The share name and filter are written out as before (a store stays readable by
        // the earlier release); reading takes them from the key.
        let (share_group, filter) = match SessionSubscription::target(key) {
            Some((group, filter)) => (group.map(|g| g.to_string()), filter.as_str().to_owned()),
            None => (None, key.to_string()),
        };
        SubscriptionRecord {
            key: key.to_string(),
            share_group,
            filter,
            qos: s.options.qos.as_u8(),
            no_local: s.options.no_local,
            retain_as_published: s.options.retain_as_published,
            retain_handling: s.options.retain_handling as u8,
            subscription_id: s.subscription_id,
        }
    }

    /// The subscription back.
    pub fn into_subscription(self) -> Result<(ByteString, SessionSubscription), DecodeError> {
        let retain_handling = match self.retain_handling {
            0 => RetainHandling::OnSubscribe,
            1 => RetainHandling::OnNewSubscribe,
            2 => RetainHandling::Never,
            _ => return Err(DecodeError::Invalid("retain_handling")),
        };
        let key = ByteString::from(self.key);
        if SessionSubscription::target(&key).is_none() {
            return Err(DecodeError::Invalid("topic filter"));
        }
        Ok((
            key,
            SessionSubscription {
                options: SubscriptionOptions {
                    qos: QoS::from_u8(self.qos).ok_or(DecodeError::Invalid("qos"))?,
                    no_local: self.no_local,
                    retain_as_published: self.retain_as_published,
                    retain_handling,
                },
                subscription_id: self.subscription_id,
            },
        ))
    }
}

/// A persistent session as stored (its queue, in-flight states and inbound QoS 2 ids
/// live in their own tables).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionRecord {
    /// Ties queue entries to this incarnation of the session.
    pub generation: u64,
    /// Session Expiry Interval in seconds (`u32::MAX`: never).
    pub expiry_interval_secs: u32,
    /// The subscriptions.
    pub subscriptions: Vec<SubscriptionRecord>,
    /// When the client went away; `None` while it is (or was, at a crash) connected.
    pub offline_since_ms: Option<u64>,
    /// A will waiting for its delay, and when it is due.
    pub delayed_will: Option<(MessageRecord, u64)>,
    /// While connected: the client's will and its Will Delay Interval in seconds, so
    /// that a crash of the broker (which closes the connection without DISCONNECT)
    /// still publishes it after the restart [MQTT-3.1.2-8].
    pub will: Option<(MessageRecord, u32)>,
}

impl SessionRecord {
    /// The record of `session` (which must be durable: its generation is stored).
    pub fn of(
        session: &crate::session::Session,
        offline_since_ms: Option<u64>,
        delayed_will: Option<(MessageRecord, u64)>,
    ) -> Self {
        let mut subscriptions: Vec<SubscriptionRecord> = session
            .subscriptions
            .iter()
            .map(|(k, s)| SubscriptionRecord::new(k, s))
            .collect();
        subscriptions.sort_by(|a, b| a.key.cmp(&b.key));
        SessionRecord {
            generation: session.durable.generation().unwrap_or(0),
            expiry_interval_secs: session.expiry_interval_secs,
            subscriptions,
            offline_since_ms,
            delayed_will,
            will: None,
        }
    }

    /// When the session expires, if it is offline and expires at all.
    pub fn expires_at_ms(&self) -> Option<u64> {
        if self.expiry_interval_secs == u32::MAX {
            return None;
        }
        self.offline_since_ms
            .map(|since| since.saturating_add(u64::from(self.expiry_interval_secs) * 1000))
    }
}

/// A queued delivery as stored; the message itself is stored once in the `messages`
/// table, however many sessions it was queued for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueRecord {
    /// The session generation it was queued for.
    pub generation: u64,
    /// The message's key in the `messages` table.
    pub message_id: u64,
    qos: u8,
    retain: bool,
    subscription_ids: Vec<u32>,
}

impl QueueRecord {
    /// The record of a delivery of message `message_id`.
    pub fn new(generation: u64, message_id: u64, d: &Delivery) -> Self {
        QueueRecord {
            generation,
            message_id,
            qos: d.qos.as_u8(),
            retain: d.retain,
            subscription_ids: d.subscription_ids.clone(),
        }
    }

    /// The delivery back, with its store sequence number and its (shared) message.
    pub fn into_delivery(self, seq: u64, message: Arc<Message>) -> Result<Delivery, DecodeError> {
        Ok(Delivery {
            message,
            qos: QoS::from_u8(self.qos).ok_or(DecodeError::Invalid("qos"))?,
            retain: self.retain,
            subscription_ids: self.subscription_ids,
            store_seq: Some(seq),
        })
    }
}

/// The in-flight state byte.
pub fn state_byte(s: InflightState) -> u8 {
    match s {
        InflightState::AwaitingPubAck => 1,
        InflightState::AwaitingPubRec => 2,
        InflightState::AwaitingPubComp => 3,
    }
}

/// The in-flight state of a byte.
pub fn state_of(b: u8) -> Result<InflightState, DecodeError> {
    match b {
        1 => Ok(InflightState::AwaitingPubAck),
        2 => Ok(InflightState::AwaitingPubRec),
        3 => Ok(InflightState::AwaitingPubComp),
        _ => Err(DecodeError::Invalid("in-flight state")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message() -> Message {
        Message {
            topic: TopicName::new("a/b").unwrap(),
            payload: Bytes::from_static(b"hello"),
            qos: QoS::ExactlyOnce,
            retain: true,
            properties: MessageProperties {
                payload_format_indicator: Some(1),
                content_type: Some("text/plain".into()),
                response_topic: Some("r/1".into()),
                correlation_data: Some(Bytes::from_static(b"\x00\x01")),
                user_properties: vec![("k".into(), "v".into()), ("k".into(), "w".into())],
            },
            expires_at: None,
            publisher: Some(ClientId::new("pub")),
        }
    }

    #[test]
    fn message_round_trips_through_bytes() {
        let now = Instant::now();
        let wall = SystemTime::now();
        let m = message();
        let bytes = encode(&MessageRecord::from_message(&m, now, wall));
        assert_eq!(bytes[0], FORMAT);
        let back: MessageRecord = decode(&bytes).unwrap();
        assert_eq!(back.into_message(now, wall).unwrap(), m);
    }

    #[test]
    fn expiry_keeps_counting_on_the_wall_clock() {
        let now = Instant::now();
        let wall = SystemTime::now();
        let mut m = message();
        m.expires_at = Some(now + Duration::from_secs(10));
        let record = MessageRecord::from_message(&m, now, wall);
        // read back 4 s later (wall clock) on a fresh monotonic clock
        let later_wall = wall + Duration::from_secs(4);
        let later = Instant::now();
        let back = record.into_message(later, later_wall).unwrap();
        let left = back.expires_at.unwrap().duration_since(later);
        assert!(
            left <= Duration::from_secs(6) && left >= Duration::from_millis(5900),
            "{left:?}"
        );
        assert!(
            MessageRecord::from_message(&m, now, wall).expired_at(unix_ms(wall) + 10_000),
            "due at exactly its deadline"
        );
    }

    #[test]
    fn unknown_format_and_garbage_are_errors_not_panics() {
        assert!(matches!(
            decode::<MessageRecord>(&[]),
            Err(DecodeError::Empty)
        ));
        assert!(matches!(
            decode::<MessageRecord>(&[9, 1, 2]),
            Err(DecodeError::Format(9))
        ));
        assert!(matches!(
            decode::<MessageRecord>(&[FORMAT, 0xff, 0xff, 0xff]),
            Err(DecodeError::Postcard(_))
        ));
    }

    #[test]
    fn session_expiry_counts_from_going_offline() {
        let r = SessionRecord {
            generation: 1,
            expiry_interval_secs: 60,
            subscriptions: vec![],
            offline_since_ms: Some(1_000),
            delayed_will: None,
            will: None,
        };
        assert_eq!(r.expires_at_ms(), Some(61_000));
        let never = SessionRecord {
            expiry_interval_secs: u32::MAX,
            ..r.clone()
        };
        assert_eq!(never.expires_at_ms(), None);
        let online = SessionRecord {
            offline_since_ms: None,
            ..r
        };
        assert_eq!(online.expires_at_ms(), None);
    }
}
