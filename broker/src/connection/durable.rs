//! The connection's side of the durable store: writing the session's changes, and
//! holding back the packets that promise something (PUBACK, PUBREC, PUBCOMP, SUBACK,
//! a QoS 2 PUBLISH or PUBREL to a persistent session) until the store has it on disk.
//!
//! Held packets leave in the order they were made, so acknowledgements keep the order
//! of the PUBLISH packets [MQTT-4.6.0-2], [MQTT-4.6.0-3] and an outbound topic alias is
//! always set before it is used.

use std::time::Duration;

use super::Io;
use super::state::{Conn, End, Error};
use crate::codec::Packet;
use crate::store::{Op, SessionRecord, Ticket, WriteError};
use crate::transport::Duplex;
use crate::types::ReasonCode;

/// How long a closing connection waits for its held packets.
const HELD_TIMEOUT: Duration = Duration::from_secs(2);

impl Conn {
    /// True when the session's changes go to the store.
    pub(crate) fn is_durable(&self) -> bool {
        self.session.durable.generation().is_some()
    }

    /// Submits `op` when the session is durable; the ticket to wait for.
    pub(crate) fn store_op(&self, op: Op) -> Ticket {
        if self.is_durable() {
            self.broker.store.submit(op)
        } else {
            Ticket::NONE
        }
    }

    /// Writes the session's record (connected: no offline time, no delayed will; the
    /// will for the case the broker crashes).
    pub(crate) fn persist_session(&self) -> Ticket {
        if !self.is_durable() {
            return Ticket::NONE;
        }
        let mut record = SessionRecord::of(&self.session, None, None);
        record.will = self.will.as_deref().map(|(m, delay)| {
            let now = std::time::Instant::now();
            let wall = std::time::SystemTime::now();
            (
                crate::store::record::MessageRecord::from_message(m, now, wall),
                *delay,
            )
        });
        self.broker.store.submit(Op::SessionPut(
            self.session.client_id.clone(),
            Box::new(record),
        ))
    }

    /// At CONNECT: makes the session durable when it is persistent and the store keeps
    /// anything (a new generation for a session that was not), or removes it from the
    /// store when it no longer is.
    pub(crate) fn adopt_durability(&mut self) {
        let store = &self.broker.store;
        let want = store.is_durable() && self.session.expiry_interval_secs > 0;
        match (want, self.session.durable.generation()) {
            (true, None) => {
                self.session.durable.set(Some(store.next_seq()));
                self.persist_session();
            }
            (true, Some(_)) => {
                self.persist_session();
            }
            (false, Some(_)) => {
                self.session.durable.set(None);
                store.submit(Op::SessionDelete(self.session.client_id.clone()));
            }
            (false, None) => {}
        }
        // A clean session's will is stored on its own, for the case the broker crashes.
        if !self.is_durable()
            && store.is_durable()
            && let Some((will, delay)) = self.will.as_deref()
        {
            store.submit(Op::WillPut(
                self.session.client_id.clone(),
                Box::new(will.clone()),
                *delay,
            ));
            self.will_stored = true;
        }
    }

    /// Encodes `packet` once `ticket` is durable and every packet held before it left.
    pub(crate) fn send_after<S: Duplex>(&mut self, io: &mut Io<S>, ticket: Ticket, packet: Packet) {
        if self.may_send_now(ticket) {
            io.encode(&packet);
            return;
        }
        let ticket = self.held.back().map_or(ticket, |(t, _)| ticket.max(*t));
        self.held.push_back((ticket, packet));
    }

    /// True when a packet behind `ticket` goes out at once: nothing is held before it
    /// and the store has what it waits for.
    pub(crate) fn may_send_now(&self, ticket: Ticket) -> bool {
        self.held.is_empty() && self.broker.store.poll(ticket).is_some_and(|r| r.is_ok())
    }

    /// The ticket the oldest held packet waits for.
    pub(crate) fn held_front(&self) -> Option<Ticket> {
        self.held.front().map(|(t, _)| *t)
    }

    /// Sends the held packets whose tickets are done. A failed write turns a v5
    /// PUBACK or PUBREC into a refusal (0x97 when the disk is full, else 0x80); an
    /// MQTT 3.1.1 client, which has no negative acknowledgement, is disconnected
    /// unacknowledged so that it publishes again later.
    pub(crate) fn release_held<S: Duplex>(&mut self, io: &mut Io<S>) -> Option<End> {
        while let Some((ticket, _)) = self.held.front() {
            let Some(result) = self.broker.store.poll(*ticket) else {
                break;
            };
            let Some((_, mut packet)) = self.held.pop_front() else {
                break;
            };
            if let Err(e) = result
                && let Some(end) = self.refuse_undurable(&mut packet, &e)
            {
                return Some(end);
            }
            io.encode(&packet);
        }
        None
    }

    fn refuse_undurable(&mut self, packet: &mut Packet, e: &WriteError) -> Option<End> {
        let code = match e {
            WriteError::NoSpace => ReasonCode::QUOTA_EXCEEDED,
            _ => ReasonCode::UNSPECIFIED_ERROR,
        };
        let ack = match packet {
            Packet::PubAck(a) => a,
            Packet::PubRec(a) => {
                // a failed PUBREC ends the exchange [MQTT-4.3.3-9]
                self.session.on_pubrel(a.packet_id);
                a
            }
            // Subscriptions, deliveries and releases still hold in memory: send them.
            _ => return None,
        };
        crate::stats::Stats::incr(&self.broker.stats.messages_rejected);
        tracing::warn!(error = %e, packet_id = ack.packet_id.get(), "publish not acknowledged: the store could not write it");
        if !self.version.is_v5() {
            return Some(End::Failed(Error::protocol(
                code,
                format!("publish not acknowledged: {e}"),
            )));
        }
        ack.reason_code = code;
        None
    }

    /// When the connection closes: waits (briefly) for the held packets and sends them.
    pub(crate) async fn flush_held<S: Duplex>(&mut self, io: &mut Io<S>) {
        let Some((last, _)) = self.held.back() else {
            return;
        };
        let store = self.broker.store.clone();
        let _ = tokio::time::timeout(HELD_TIMEOUT, store.wait(*last)).await;
        let _ = self.release_held(io);
    }
}
