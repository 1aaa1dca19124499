//! The per-connection state: negotiated limits, topic aliases, keep alive, the will, and
//! the session the connection owns while it runs; plus what happens when it ends.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::broker::Broker;
use crate::codec;
use crate::control::Control;
use crate::lazy_deque::LazyDeque;
use crate::message::{Delivery, Message};
use crate::plugin::{DisconnectReason, Hook};
use crate::registry::{DelayedWill, Released, StoredSession};
use crate::router::Outbox;
use crate::session::Session;
use crate::topic::TopicName;
use crate::types::{ProtocolVersion, ReasonCode};

/// Why a connection was closed by the broker.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The codec refused the bytes.
    #[error(transparent)]
    Codec(#[from] codec::Error),
    /// A protocol rule was broken; the message cites the rule.
    #[error("{message}")]
    Protocol {
        /// MQTT 5 reason code for DISCONNECT.
        reason: ReasonCode,
        /// What happened, with the normative statement id.
        message: String,
    },
    /// Socket failure.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// No CONNECT in time.
    #[error("no CONNECT within {0:?}")]
    ConnectTimeout(Duration),
}

impl Error {
    /// A protocol error with a reason code.
    pub fn protocol(reason: ReasonCode, message: impl Into<String>) -> Self {
        Error::Protocol {
            reason,
            message: message.into(),
        }
    }

    /// The reason code to put in DISCONNECT, if one applies.
    pub fn reason_code(&self) -> Option<ReasonCode> {
        match self {
            Error::Codec(e) => Some(e.reason_code()),
            Error::Protocol { reason, .. } => Some(*reason),
            Error::Io(_) | Error::ConnectTimeout(_) => None,
        }
    }
}

/// How a connection ended.
#[derive(Debug)]
pub enum End {
    /// The client sent DISCONNECT; `will` is true for reason 0x04.
    Disconnected {
        /// Publish the will anyway (MQTT 5 reason 0x04).
        will: bool,
    },
    /// The client closed the socket without DISCONNECT.
    Closed,
    /// Socket error.
    Io(std::io::Error),
    /// The broker closed it for a protocol violation.
    Failed(Error),
    /// No packet within 1.5 times the keep alive [MQTT-3.1.2-24].
    KeepAliveTimeout,
    /// Another connection took the client id over [MQTT-3.1.4-3].
    TakenOver,
    /// The server is shutting down.
    Shutdown,
    /// The credentials the client connected with (a JWT) expired.
    CredentialsExpired,
    /// The broker's code panicked while handling the connection (a bug): the message.
    Panicked(String),
}

/// The topic aliases of one connection (MQTT 5), which most clients never use.
#[derive(Default)]
pub struct TopicAliases {
    /// Set by the client's PUBLISH packets.
    pub(crate) inbound: HashMap<u16, TopicName>,
    /// Given by the broker to the topics it sends.
    pub(crate) outbound: HashMap<TopicName, u16>,
}

/// Per-connection state.
pub struct Conn {
    pub(crate) broker: Arc<Broker>,
    pub(crate) conn_id: u64,
    pub(crate) version: ProtocolVersion,
    pub(crate) session: Session,
    pub(crate) outbox_tx: Outbox,
    pub(crate) outbox_rx: crate::router::OutboxRx,
    /// Retained messages and other deliveries produced locally, sent before the outbox.
    pub(crate) pending: LazyDeque<Delivery>,
    /// Why to stop (takeover [MQTT-3.1.4-3], shutdown, keep alive, expiry) and when the
    /// last packet arrived.
    pub(crate) control: Arc<Control>,
    /// Outbound window: min(configured inflight, client's Receive Maximum).
    pub(crate) window: u16,
    /// The client's Maximum Packet Size [MQTT-3.1.2-24].
    pub(crate) client_max_packet: u32,
    /// The client's Topic Alias Maximum.
    pub(crate) client_topic_alias_max: u16,
    /// Topic aliases in both directions; allocated by the first alias used.
    pub(crate) aliases: Option<Box<TopicAliases>>,
    pub(crate) will: Option<Box<(Message, u32)>>,
    pub(crate) request_problem_information: bool,
    /// The client as plugins see it (attributes granted at connect included), less
    /// its id and protocol.
    pub(crate) client: super::client::ClientRecord,
    /// The same, converted for the per-message `on-publish` calls on the first one.
    /// A `OnceBox` is one pointer; a `OnceLock` of a box is two words.
    pub(crate) hook_client: once_cell::race::OnceBox<crate::plugin::HookClient>,
    /// The session's compiled ACL, when the chain has one.
    pub(crate) rules: Option<Arc<crate::auth::chain::SessionRules>>,
    /// The will is in the store's `wills` table (a clean session's will).
    pub(crate) will_stored: bool,
    /// Deliveries queued by the client's acknowledged publishes since the connection
    /// last looked ([`super::deliveries_first`]).
    pub(crate) routed: u16,
    /// Packets waiting for the store (see `durable.rs`), in sending order.
    pub(crate) held: LazyDeque<(crate::store::Ticket, codec::Packet)>,
}

impl Conn {
    /// Gives back the allocations of queues that are empty (a connection going idle).
    pub(crate) fn release_queues(&mut self) {
        self.pending.release();
        self.held.release();
    }

    /// Records that a packet arrived (keep alive [MQTT-3.1.2-24]).
    pub(crate) fn touch(&mut self) {
        self.control.touch(self.broker.deadlines.now_ms());
    }

    /// Ends the connection: publishes the will when due, stores or ends the session,
    /// tells the plugins.
    pub(crate) async fn finish(mut self, end: &End) {
        let broker = Arc::clone(&self.broker);
        // The task ends: nothing that outlives it may keep its waker, which keeps the
        // task's memory (see `Deadlines::end`; the outbox may stay with the session).
        broker.deadlines.end(&self.control);
        self.outbox_rx.forget_waker();
        if self.will_stored {
            // From here on the will is handled in memory (published or discarded).
            broker
                .store
                .submit(crate::store::Op::WillDelete(self.session.client_id.clone()));
        }
        let send_will = match end {
            End::Disconnected { will } => *will,
            End::Shutdown => false,
            _ => true,
        };
        let chain = broker.plugins();
        if chain.has(Hook::Disconnect) {
            chain
                .on_disconnect_with(self.hook_client(), disconnect_reason(end))
                .await;
        }
        let mut will = if send_will {
            self.will.as_deref().cloned()
        } else {
            None
        };
        if let Some((message, delay)) = will.take() {
            // Wills pass through on-publish like any other message.
            will = self
                .run_publish_hooks(message)
                .await
                .ok()
                .map(|m| (m, delay));
        }
        let expiry = self.session.expiry_interval_secs;
        let now = std::time::Instant::now();
        if expiry == 0 {
            // The session ends now (MQTT 5.0 §3.1.2.11.2; 3.1.1 [MQTT-3.1.2-6]); a delayed
            // will goes out at once [MQTT-3.1.2-8].
            broker
                .registry
                .release(&self.session.client_id, self.conn_id, None);
            broker.end_session(&self.session);
            if let Some((message, _)) = will {
                broker.publish(message);
            }
            return;
        }
        let delayed_will = match will {
            Some((message, 0)) => {
                broker.publish(message);
                None
            }
            Some((message, delay)) => Some(DelayedWill {
                message,
                at: now + Duration::from_secs(u64::from(delay.min(expiry))),
            }),
            None => None,
        };
        let client_id = self.session.client_id.clone();
        let stored = StoredSession {
            session: self.session,
            outbox_tx: self.outbox_tx,
            outbox_rx: self.outbox_rx,
            expires_at: (expiry != u32::MAX).then(|| now + Duration::from_secs(u64::from(expiry))),
            delayed_will,
            offline_since: std::time::SystemTime::now(),
        };
        if stored.session.durable.generation().is_some() {
            // Offline from now: the expiry (and a delayed will) count from here, also
            // across a restart.
            broker.store.submit(crate::store::Op::SessionPut(
                client_id.clone(),
                Box::new(stored.record()),
            ));
        }
        if let Released::Dropped(Some(stored)) =
            broker
                .registry
                .release(&client_id, self.conn_id, Some(stored))
        {
            broker.end_session(&stored.session);
        }
    }
}

fn disconnect_reason(end: &End) -> DisconnectReason {
    match end {
        End::Disconnected { will: false } => DisconnectReason::Normal,
        End::Disconnected { will: true } => DisconnectReason::WithWill,
        // The WIT reasons (cauldron:plugin@0.4.0) have no "expired"; the broker closed it.
        End::Closed | End::Io(_) | End::CredentialsExpired | End::Panicked(_) => {
            DisconnectReason::ConnectionLost
        }
        End::Failed(_) => DisconnectReason::ProtocolError,
        End::KeepAliveTimeout => DisconnectReason::KeepAliveTimeout,
        End::TakenOver => DisconnectReason::TakenOver,
        End::Shutdown => DisconnectReason::ServerShutdown,
    }
}
