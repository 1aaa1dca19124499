//! The state of one MQTT session, independent of any network connection: its
//! subscriptions, the outbound QoS 1/2 messages in flight, the inbound QoS 2 packet
//! identifiers awaiting PUBREL, and its expiry interval.
//!
//! A session outlives connections when it is persistent (3.1.1 clean session 0, MQTT 5
//! session expiry > 0). All of it is plain data so that a later store can persist it.
//! No I/O, no locks, no knowledge of the router's internals.

pub mod outbound;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytestring::ByteString;

use crate::codec::SubscriptionOptions;
use crate::small_map::SmallMap;
use crate::topic::{FilterKind, TopicFilter, parse_filter};
use crate::types::{ClientId, PacketId};
pub use outbound::{Inflight, InflightState, Outbound};

/// One subscription as the session remembers it. Its share name and filter are in the
/// key it is filed under, the filter text of SUBSCRIBE ([`SessionSubscription::target`]):
/// kept beside it they were 64 more bytes in every session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionSubscription {
    /// Subscription options.
    pub options: SubscriptionOptions,
    /// MQTT 5 Subscription Identifier.
    pub subscription_id: Option<u32>,
}

impl SessionSubscription {
    /// The share name (for `$share/{group}/{filter}`) and the filter of the subscription
    /// filed under `key`. `None` for a key that is not a valid filter, which a session
    /// never files (SUBSCRIBE's filters are parsed first).
    pub fn target(key: &ByteString) -> Option<(Option<ByteString>, TopicFilter)> {
        match parse_filter(key.clone()) {
            Ok(FilterKind::Normal(filter)) => Some((None, filter)),
            Ok(FilterKind::Shared { group, filter }) => Some((Some(group), filter)),
            Err(_) => None,
        }
    }
}

/// Why an inbound QoS 2 PUBLISH was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// More unacknowledged QoS 2 publishes than the broker's Receive Maximum.
    #[error("[MQTT-3.3.4-9] client exceeded the receive maximum of {0}")]
    ReceiveMaximumExceeded(u16),
}

/// What to do with an inbound QoS 2 PUBLISH.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Qos2Arrival {
    /// First time this packet id is seen: route the message, then PUBREC.
    New,
    /// The id is already awaiting PUBREL (a retransmission): only PUBREC again, never
    /// route twice [MQTT-4.3.3-9? exactly once].
    Duplicate,
}

/// Whether a session's changes are written to the durable store, and under which
/// generation; shared with the session's router subscriptions, which queue deliveries
/// in the store while it is set.
#[derive(Debug, Default)]
pub struct Durable(AtomicU64);

impl Durable {
    /// The generation, when the session is durable.
    pub fn generation(&self) -> Option<u64> {
        match self.0.load(Ordering::Acquire) {
            0 => None,
            g => Some(g),
        }
    }

    /// Makes the session durable under `generation` (non-zero), or not (`None`).
    pub fn set(&self, generation: Option<u64>) {
        self.0.store(generation.unwrap_or(0), Ordering::Release);
    }
}

/// A set of packet ids, allocated by its first id and released by its last: most
/// clients never publish at QoS 2, and an empty `HashSet` is 48 bytes in every session.
#[derive(Debug, Default, Clone)]
#[allow(clippy::box_collection)] // boxed for its size (8 bytes, not 48) in every session
pub struct PacketIds(Option<Box<HashSet<PacketId>>>);

impl PacketIds {
    /// True when `id` is in the set.
    pub fn contains(&self, id: &PacketId) -> bool {
        self.0.as_ref().is_some_and(|s| s.contains(id))
    }

    /// Number of ids.
    pub fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |s| s.len())
    }

    /// True when the set holds no id.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds `id`; false when it was there already.
    pub fn insert(&mut self, id: PacketId) -> bool {
        self.0.get_or_insert_default().insert(id)
    }

    /// Removes `id`; false when it was not there.
    pub fn remove(&mut self, id: &PacketId) -> bool {
        let Some(set) = self.0.as_mut() else {
            return false;
        };
        let removed = set.remove(id);
        if set.is_empty() {
            self.0 = None;
        }
        removed
    }
}

impl Extend<PacketId> for PacketIds {
    fn extend<I: IntoIterator<Item = PacketId>>(&mut self, ids: I) {
        for id in ids {
            self.insert(id);
        }
    }
}

/// The session state.
#[derive(Debug)]
pub struct Session {
    /// The client identifier owning the session.
    pub client_id: ClientId,
    /// Subscriptions keyed by the full filter text of SUBSCRIBE (including any `$share/`).
    pub subscriptions: SmallMap<ByteString, SessionSubscription>,
    /// Outbound QoS 1/2 messages in flight.
    pub outbound: Outbound,
    /// Inbound QoS 2 packet ids received and acknowledged with PUBREC, awaiting PUBREL.
    pub inbound_qos2: PacketIds,
    /// Session Expiry Interval in seconds (0: ends with the connection; `u32::MAX`: never).
    pub expiry_interval_secs: u32,
    /// Whether (and as which generation) the session is in the durable store.
    pub durable: Arc<Durable>,
}

impl Session {
    /// A new, empty session.
    pub fn new(client_id: ClientId, expiry_interval_secs: u32) -> Self {
        Session {
            client_id,
            subscriptions: SmallMap::new(),
            outbound: Outbound::default(),
            inbound_qos2: PacketIds::default(),
            expiry_interval_secs,
            durable: Arc::default(),
        }
    }

    /// Registers an inbound QoS 2 packet id, enforcing the broker's receive maximum.
    pub fn on_qos2_publish(
        &mut self,
        packet_id: PacketId,
        receive_maximum: u16,
    ) -> Result<Qos2Arrival, Error> {
        if self.inbound_qos2.contains(&packet_id) {
            return Ok(Qos2Arrival::Duplicate);
        }
        if self.inbound_qos2.len() >= usize::from(receive_maximum) {
            return Err(Error::ReceiveMaximumExceeded(receive_maximum));
        }
        self.inbound_qos2.insert(packet_id);
        Ok(Qos2Arrival::New)
    }

    /// Handles PUBREL; false when the id was unknown (MQTT 5: PUBCOMP 0x92).
    pub fn on_pubrel(&mut self, packet_id: PacketId) -> bool {
        self.inbound_qos2.remove(&packet_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u16) -> PacketId {
        PacketId::new(n).unwrap()
    }

    #[test]
    fn qos2_retransmission_is_a_duplicate_until_pubrel() {
        let mut s = Session::new(ClientId::new("c"), 0);
        assert_eq!(s.on_qos2_publish(id(1), 10), Ok(Qos2Arrival::New));
        assert_eq!(s.on_qos2_publish(id(1), 10), Ok(Qos2Arrival::Duplicate));
        assert!(s.on_pubrel(id(1)));
        assert_eq!(s.on_qos2_publish(id(1), 10), Ok(Qos2Arrival::New));
    }

    #[test]
    fn pubrel_for_unknown_id_is_reported() {
        let mut s = Session::new(ClientId::new("c"), 0);
        assert!(!s.on_pubrel(id(7)));
    }

    #[test]
    fn receive_maximum_exceeded_is_an_error() {
        let mut s = Session::new(ClientId::new("c"), 0);
        assert_eq!(s.on_qos2_publish(id(1), 2), Ok(Qos2Arrival::New));
        assert_eq!(s.on_qos2_publish(id(2), 2), Ok(Qos2Arrival::New));
        assert_eq!(
            s.on_qos2_publish(id(3), 2),
            Err(Error::ReceiveMaximumExceeded(2))
        );
        // a retransmission of a known id is still fine
        assert_eq!(s.on_qos2_publish(id(2), 2), Ok(Qos2Arrival::Duplicate));
    }

    #[test]
    fn the_packet_id_set_is_allocated_by_its_first_id_and_released_by_its_last() {
        let mut s = Session::new(ClientId::new("c"), 0);
        assert!(
            s.inbound_qos2.0.is_none(),
            "no QoS 2 yet: nothing allocated"
        );
        s.on_qos2_publish(id(1), 10).unwrap();
        s.on_qos2_publish(id(2), 10).unwrap();
        assert_eq!(s.inbound_qos2.len(), 2);
        assert!(s.on_pubrel(id(1)));
        assert!(s.inbound_qos2.0.is_some());
        assert!(s.on_pubrel(id(2)));
        assert!(
            s.inbound_qos2.0.is_none(),
            "the last PUBREL releases the set"
        );
        assert!(!s.on_pubrel(id(2)));
        s.inbound_qos2.extend([id(7), id(7), id(8)]);
        assert_eq!(s.inbound_qos2.len(), 2);
        assert!(s.inbound_qos2.contains(&id(7)) && !s.inbound_qos2.is_empty());
    }

    #[test]
    fn a_subscription_s_share_name_and_filter_come_from_its_key() {
        let (group, filter) = SessionSubscription::target(&"a/+/c".into()).unwrap();
        assert_eq!((group, filter.as_str()), (None, "a/+/c"));
        let (group, filter) = SessionSubscription::target(&"$share/g1/s/#".into()).unwrap();
        assert_eq!((group.as_deref(), filter.as_str()), (Some("g1"), "s/#"));
        // Not of the shared form: a normal filter [MQTT-4.8.2-1].
        let (group, filter) = SessionSubscription::target(&"$sharefoo/x".into()).unwrap();
        assert_eq!((group, filter.as_str()), (None, "$sharefoo/x"));
        assert_eq!(SessionSubscription::target(&"$share/".into()), None);
        assert_eq!(SessionSubscription::target(&"a/#/b".into()), None);
    }
}
