//! Packets from the client: PUBLISH and its acknowledgements, SUBSCRIBE, UNSUBSCRIBE,
//! PINGREQ, DISCONNECT. Each handler enforces the rules of its packet and encodes the
//! answer into the write buffer.

use std::sync::Arc;

use bytestring::ByteString;

use super::Io;
use super::state::{Conn, End, Error};
use crate::auth::chain::{Chain, authorize_publish};
use crate::codec::{
    AckProperties, Packet, PubResp, Publish, SubAck, Subscribe, UnsubAck, Unsubscribe,
};
use crate::config::DeniedPublish;
use crate::message::{Delivery, Message, MessageProperties};
use crate::plugin::{Hook, PublishOutcome};
use crate::router::Subscriber;
use crate::session::outbound::AckResult;
use crate::session::{InflightState, Qos2Arrival, SessionSubscription};
use crate::stats::Stats;
use crate::store::{Op, Ticket};
use crate::topic::{FilterKind, TopicName, parse_filter};
use crate::transport::Duplex;
use crate::types::{PacketId, QoS, ReasonCode};

type Handled = Result<Option<End>, Error>;

/// What [`Conn::accept_publish`] made of a PUBLISH.
pub(crate) enum Arrival {
    /// Checked: run the publish hooks, then [`Conn::complete_publish`].
    Accepted(Accepted),
    /// Answered without routing; the answer, if any, goes out in order.
    Answered(Option<Packet>),
}

/// A checked PUBLISH: its message, and what acknowledging it needs.
pub(crate) struct Accepted {
    message: Message,
    head: PublishHead,
}

/// What acknowledging a PUBLISH needs once its message went through the hooks.
pub(crate) struct PublishHead {
    qos: QoS,
    packet_id: Option<PacketId>,
    /// The store write of a QoS 2 arrival, which the PUBREC waits for.
    ticket: Ticket,
}

impl Conn {
    /// Handles one packet from the client.
    pub(crate) async fn handle<S: Duplex>(&mut self, io: &mut Io<S>, packet: Packet) -> Handled {
        match packet {
            Packet::Publish(p) => self.on_publish(io, p).await,
            Packet::PubAck(a) => {
                let result = self.session.outbound.on_puback(a.packet_id);
                self.on_ack(result, &a);
                Ok(None)
            }
            Packet::PubRec(a) => {
                let failed = !a.reason_code.is_success();
                match self.session.outbound.on_pubrec(a.packet_id, failed) {
                    AckResult::SendPubRel => {
                        // The release phase is stored before PUBREL leaves: after a
                        // restart the broker sends PUBREL, never the message again.
                        let seq = self
                            .session
                            .outbound
                            .get(a.packet_id)
                            .and_then(|f| f.delivery.store_seq);
                        let ticket = match seq {
                            Some(seq) => self.store_op(Op::Inflight {
                                client: self.session.client_id.clone(),
                                seq,
                                packet_id: a.packet_id,
                                state: InflightState::AwaitingPubComp,
                            }),
                            None => Ticket::NONE,
                        };
                        let rel = Packet::PubRel(ack(a.packet_id, ReasonCode::SUCCESS));
                        self.send_after(io, ticket, rel);
                    }
                    // A PUBREC for an id not in flight gets PUBREL 0x92 (MQTT 5.0
                    // §3.6.2.1), unless it failed: PUBREL answers only a PUBREC below
                    // 0x80 [MQTT-4.3.3-4].
                    AckResult::Unknown if self.version.is_v5() && !failed => io.encode(
                        &Packet::PubRel(ack(a.packet_id, ReasonCode::PACKET_IDENTIFIER_NOT_FOUND)),
                    ),
                    result => self.on_ack(result, &a),
                }
                Ok(None)
            }
            Packet::PubRel(r) => {
                let known = self.session.on_pubrel(r.packet_id);
                let code = if known || !self.version.is_v5() {
                    ReasonCode::SUCCESS
                } else {
                    ReasonCode::PACKET_IDENTIFIER_NOT_FOUND
                };
                // The id is released on disk before PUBCOMP: the client may reuse it.
                let ticket = if known {
                    self.store_op(Op::Qos2In {
                        client: self.session.client_id.clone(),
                        packet_id: r.packet_id,
                        present: false,
                    })
                } else {
                    Ticket::NONE
                };
                self.send_after(io, ticket, Packet::PubComp(ack(r.packet_id, code)));
                Ok(None)
            }
            Packet::PubComp(a) => {
                let result = self.session.outbound.on_pubcomp(a.packet_id);
                self.on_ack(result, &a);
                Ok(None)
            }
            Packet::Subscribe(s) => self.on_subscribe(io, s).await,
            Packet::Unsubscribe(u) => self.on_unsubscribe(io, u),
            Packet::PingReq => {
                io.encode(&Packet::PingResp); // [MQTT-3.12.4-1]
                Ok(None)
            }
            Packet::Disconnect(d) => self.on_disconnect(d),
            Packet::Connect(_) => Err(Error::protocol(
                ReasonCode::PROTOCOL_ERROR,
                "[MQTT-3.1.0-2] second CONNECT on one connection",
            )),
            Packet::Auth(_) => Err(Error::protocol(
                ReasonCode::PROTOCOL_ERROR,
                "[MQTT-4.12.0-1] AUTH without an authentication method",
            )),
            Packet::ConnAck(_) | Packet::SubAck(_) | Packet::UnsubAck(_) | Packet::PingResp => {
                Err(Error::protocol(
                    ReasonCode::PROTOCOL_ERROR,
                    "(MQTT 5.0 §2.1.2; 3.1.1 [MQTT-4.8.0-1]) packet type only a server may send",
                ))
            }
        }
    }

    fn on_ack(&mut self, result: AckResult, a: &PubResp) {
        match result {
            AckResult::Unknown => tracing::debug!(
                packet_id = a.packet_id.get(),
                "acknowledgement for an unknown packet id ignored"
            ),
            AckResult::Completed(Some(seq)) => {
                // Done: a lost removal only means one more delivery after a crash.
                self.broker.store.submit(Op::Dequeue {
                    client: self.session.client_id.clone(),
                    seq,
                });
            }
            AckResult::Completed(None) | AckResult::SendPubRel => {}
        }
    }

    async fn on_publish<S: Duplex>(&mut self, io: &mut Io<S>, p: Publish) -> Handled {
        match self.accept_publish(p)? {
            Arrival::Answered(answer) => {
                if let Some(answer) = answer {
                    self.send_after(io, Ticket::NONE, answer);
                }
                Ok(None)
            }
            Arrival::Accepted(accepted) => self.publish_one(io, accepted).await,
        }
    }

    /// Runs the publish hooks for one accepted PUBLISH and answers it.
    pub(crate) async fn publish_one<S: Duplex>(
        &mut self,
        io: &mut Io<S>,
        Accepted { message, head }: Accepted,
    ) -> Handled {
        let result = self.run_publish_hooks(message).await;
        self.complete_publish(io, head, result)
    }

    /// The first half of a PUBLISH: checks it against the protocol and the broker's
    /// limits and makes the message, or answers it at once (a refused payload, a QoS 2
    /// retransmission). `Err` closes the connection.
    pub(crate) fn accept_publish(&mut self, p: Publish) -> Result<Arrival, Error> {
        #[cfg(test)]
        if p.topic == super::panic_tests::PANIC_TOPIC {
            panic!("a test asked for a panic");
        }
        self.broker.stats.publish_received(p.qos, p.payload.len());
        let cfg = Arc::clone(&self.broker.config);
        if p.qos.as_u8() > cfg.mqtt.maximum_qos {
            return Err(Error::protocol(
                ReasonCode::QOS_NOT_SUPPORTED,
                format!(
                    "[MQTT-3.2.2-11] PUBLISH with QoS {} above the maximum {}",
                    p.qos.as_u8(),
                    cfg.mqtt.maximum_qos
                ),
            ));
        }
        if p.retain && !cfg.mqtt.retain_available {
            return Err(Error::protocol(
                ReasonCode::RETAIN_NOT_SUPPORTED,
                "[MQTT-3.2.2-14] PUBLISH with RETAIN while retain is not available",
            ));
        }
        if !p.properties.subscription_identifiers.is_empty() {
            return Err(Error::protocol(
                ReasonCode::PROTOCOL_ERROR,
                "[MQTT-3.3.4-6] PUBLISH from a client contains a subscription identifier",
            ));
        }
        let topic = self.resolve_topic(&p)?;
        if p.properties.payload_format_indicator == Some(1)
            && std::str::from_utf8(&p.payload).is_err()
        {
            // [MQTT-3.3.2-4]: the receiver may check a payload announced as UTF-8.
            Stats::incr(&self.broker.stats.messages_rejected);
            tracing::info!(topic = %topic, "payload announced as UTF-8 is not valid UTF-8; message rejected");
            return Ok(Arrival::Answered(
                self.refusal_answer(&p, ReasonCode::PAYLOAD_FORMAT_INVALID),
            ));
        }
        let mut ticket = Ticket::NONE;
        if let (QoS::ExactlyOnce, Some(id)) = (p.qos, p.packet_id) {
            match self.session.on_qos2_publish(id, cfg.limits.receive_maximum) {
                Ok(Qos2Arrival::New) => {
                    // Stored with the message: after a restart a retransmission is
                    // still recognised [MQTT-4.3.3-9].
                    ticket = self.store_op(Op::Qos2In {
                        client: self.session.client_id.clone(),
                        packet_id: id,
                        present: true,
                    });
                }
                // [MQTT-4.3.3-9]: a retransmission is acknowledged, not routed again.
                Ok(Qos2Arrival::Duplicate) => {
                    return Ok(Arrival::Answered(Some(Packet::PubRec(ack(
                        id,
                        ReasonCode::SUCCESS,
                    )))));
                }
                Err(e) => {
                    return Err(Error::protocol(
                        ReasonCode::RECEIVE_MAXIMUM_EXCEEDED,
                        e.to_string(),
                    ));
                }
            }
        }
        let props = p.properties;
        let message = Message {
            topic,
            payload: p.payload,
            qos: p.qos,
            retain: p.retain,
            properties: MessageProperties {
                payload_format_indicator: props.payload_format_indicator,
                content_type: props.content_type,
                response_topic: props.response_topic,
                correlation_data: props.correlation_data,
                user_properties: props.user_properties,
            },
            expires_at: Message::expiry_deadline(
                props.message_expiry_interval,
                std::time::Instant::now,
            ),
            publisher: Some(self.session.client_id.clone()),
        };
        Ok(Arrival::Accepted(Accepted {
            message,
            head: PublishHead {
                qos: p.qos,
                packet_id: p.packet_id,
                ticket,
            },
        }))
    }

    /// The second half of a PUBLISH, once the hooks ran: routes the message (or counts
    /// the refusal) and acknowledges it.
    fn complete_publish<S: Duplex>(
        &mut self,
        io: &mut Io<S>,
        head: PublishHead,
        result: Result<Message, ReasonCode>,
    ) -> Handled {
        let Some(id) = head.packet_id else {
            // QoS 0: no acknowledgement either way.
            match result {
                Ok(message) => {
                    self.broker.publish(message);
                }
                Err(code) => self.v3_refusal(code)?,
            }
            return Ok(None);
        };
        let mut ticket = head.ticket;
        let code = match result {
            Ok(message) => {
                // Acknowledged once every persistent session it reached has it on disk.
                let routed = self.broker.publish(message);
                ticket = ticket.max(routed.ticket);
                let delivered = u16::try_from(routed.delivered).unwrap_or(u16::MAX);
                self.routed = self.routed.saturating_add(delivered);
                ReasonCode::SUCCESS
            }
            // MQTT 3.1.1 has no negative acknowledgement: the message is dropped (counted
            // and logged) and the flow completes normally, or the client is disconnected.
            Err(code) if !self.version.is_v5() => {
                self.v3_refusal(code)?;
                ReasonCode::SUCCESS
            }
            Err(code) => {
                if head.qos == QoS::ExactlyOnce {
                    // A PUBREC with a failure code ends the exchange: the client may
                    // reuse the id at once, so it is forgotten on disk too (before the
                    // PUBREC leaves), or after a restart its next message under that id
                    // would be taken for a retransmission and never routed.
                    ticket = ticket.max(self.forget_qos2(id));
                }
                code
            }
        };
        let answer = if head.qos == QoS::AtLeastOnce {
            Packet::PubAck(ack(id, code))
        } else {
            Packet::PubRec(ack(id, code))
        };
        self.send_after(io, ticket, answer);
        Ok(None)
    }

    /// Releases an inbound QoS 2 packet id (in the session, and in the store when the
    /// session is durable); the ticket completes once the release is on disk.
    fn forget_qos2(&mut self, id: PacketId) -> Ticket {
        if !self.session.on_pubrel(id) {
            return Ticket::NONE;
        }
        self.store_op(Op::Qos2In {
            client: self.session.client_id.clone(),
            packet_id: id,
            present: false,
        })
    }

    /// Runs the publish hooks once for `batch` (PUBLISH packets accepted in the order
    /// the client sent them, from one socket read), then completes each in order.
    pub(crate) async fn publish_batch<S: Duplex>(
        &mut self,
        io: &mut Io<S>,
        batch: Vec<Accepted>,
    ) -> Handled {
        let (messages, heads): (Vec<Message>, Vec<PublishHead>) =
            batch.into_iter().map(|a| (a.message, a.head)).unzip();
        let results = self.run_publish_hooks_batch(messages).await;
        let mut heads = heads.into_iter();
        for result in results {
            let Some(head) = heads.next() else { break };
            match self.complete_publish(io, head, result) {
                Ok(None) => {}
                ended => {
                    // The connection ends before the rest are routed: QoS 2 ids they
                    // registered are released, so that the client's retransmission
                    // after reconnecting is routed rather than taken as a duplicate.
                    for rest in heads {
                        if let (QoS::ExactlyOnce, Some(id)) = (rest.qos, rest.packet_id) {
                            self.forget_qos2(id);
                        }
                    }
                    return ended;
                }
            }
        }
        Ok(None)
    }

    /// A refused publish from an MQTT 3.1.1 or 3.1 client: `Ok` to drop it quietly, or
    /// the error that closes the connection when `auth.denied_publish_v3 = "disconnect"`.
    fn v3_refusal(&self, code: ReasonCode) -> Result<(), Error> {
        if self.version.is_v5()
            || self.broker.config.auth.denied_publish_v3 != DeniedPublish::Disconnect
        {
            return Ok(());
        }
        Err(Error::protocol(
            code,
            "publish refused; disconnecting (auth.denied_publish_v3 = \"disconnect\")",
        ))
    }

    /// Applies topic aliases and validates the topic name.
    fn resolve_topic(&mut self, p: &Publish) -> Result<TopicName, Error> {
        let max = self.broker.config.limits.topic_alias_maximum;
        let topic = match p.properties.topic_alias {
            Some(alias) if alias == 0 || alias > max || !self.version.is_v5() => {
                return Err(Error::protocol(
                    ReasonCode::TOPIC_ALIAS_INVALID,
                    format!("[MQTT-3.3.2-8] topic alias {alias} is 0 or above the maximum {max}"),
                ));
            }
            Some(alias) if p.topic.is_empty() => {
                match self.aliases.as_ref().and_then(|a| a.inbound.get(&alias)) {
                    Some(t) => return Ok(t.clone()),
                    None => {
                        return Err(Error::protocol(
                            ReasonCode::PROTOCOL_ERROR,
                            format!("(MQTT 5.0 §3.3.4) topic alias {alias} used before it was set"),
                        ));
                    }
                }
            }
            Some(alias) => {
                let t = self.topic_name(&p.topic)?;
                self.aliases
                    .get_or_insert_with(Box::default)
                    .inbound
                    .insert(alias, t.clone());
                t
            }
            None if p.topic.is_empty() && self.version.is_v5() => {
                return Err(Error::protocol(
                    ReasonCode::PROTOCOL_ERROR,
                    "[MQTT-3.3.2-1] empty topic name without a topic alias",
                ));
            }
            None => self.topic_name(&p.topic)?,
        };
        Ok(topic)
    }

    fn topic_name(&self, raw: &ByteString) -> Result<TopicName, Error> {
        let topic = TopicName::new(raw.clone())
            .map_err(|e| Error::protocol(ReasonCode::TOPIC_NAME_INVALID, e.to_string()))?;
        if topic.as_str().split('/').count() > self.broker.config.limits.max_topic_levels {
            return Err(Error::protocol(
                ReasonCode::TOPIC_NAME_INVALID,
                "topic name has more levels than limits.max_topic_levels",
            ));
        }
        Ok(topic)
    }

    /// The answer to a PUBLISH refused without closing: v5 QoS 1/2 get the reason
    /// code, 3.1.1 QoS 1/2 a success, QoS 0 nothing.
    fn refusal_answer(&mut self, p: &Publish, reason: ReasonCode) -> Option<Packet> {
        Some(match (p.qos, p.packet_id, self.version.is_v5()) {
            (QoS::AtLeastOnce, Some(id), true) => Packet::PubAck(ack(id, reason)),
            (QoS::ExactlyOnce, Some(id), true) => Packet::PubRec(ack(id, reason)),
            (QoS::AtLeastOnce, Some(id), false) => Packet::PubAck(ack(id, ReasonCode::SUCCESS)),
            (QoS::ExactlyOnce, Some(id), false) => {
                self.session.inbound_qos2.insert(id);
                Packet::PubRec(ack(id, ReasonCode::SUCCESS))
            }
            _ => return None,
        })
    }

    async fn on_subscribe<S: Duplex>(&mut self, io: &mut Io<S>, s: Subscribe) -> Handled {
        let cfg = Arc::clone(&self.broker.config);
        let sub_id = s.properties.subscription_identifier;
        if sub_id.is_some() && !cfg.mqtt.subscription_identifiers {
            return Err(Error::protocol(
                ReasonCode::SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED,
                "(MQTT 5.0 §3.2.2.3.12) subscription identifiers are not supported",
            ));
        }
        let mut codes = Vec::with_capacity(s.filters.len());
        let mut retained = Vec::new();
        for (raw, options) in s.filters {
            // The filter lives as long as the subscription.
            let raw = super::detached(&raw);
            let (group, filter) = match parse_filter(raw.clone()) {
                Ok(FilterKind::Normal(f)) => (None, f),
                Ok(FilterKind::Shared { group, filter }) => (Some(group), filter),
                Err(e) => {
                    tracing::debug!(error = %e, "invalid topic filter");
                    codes.push(ReasonCode::TOPIC_FILTER_INVALID);
                    continue;
                }
            };
            if group.is_some() && options.no_local {
                return Err(Error::protocol(
                    ReasonCode::PROTOCOL_ERROR,
                    "[MQTT-3.8.3-4] No Local set on a shared subscription",
                ));
            }
            let code = self.check_subscription(&raw, group.is_some(), &filter);
            if !code.is_success() {
                codes.push(code);
                continue;
            }
            let mut options = options;
            options.qos = QoS::from_u8(options.qos.as_u8().min(cfg.mqtt.maximum_qos))
                .unwrap_or(QoS::AtMostOnce);
            match self
                .authorize_subscription(&raw, filter.as_str(), options.qos)
                .await
            {
                Ok(granted) => options.qos = granted,
                Err(code) => {
                    codes.push(code);
                    continue;
                }
            }
            let existed = self.broker.router.subscribe(
                &self.session.client_id,
                group.as_ref(),
                &filter,
                Subscriber {
                    outbox: self.outbox_tx.clone(),
                    options,
                    subscription_id: sub_id,
                    durable: Arc::clone(&self.session.durable),
                },
            );
            self.session.subscriptions.insert(
                raw,
                SessionSubscription {
                    options,
                    subscription_id: sub_id,
                },
            );
            // [MQTT-3.3.1-9] retained messages on subscribe; never for shared subscriptions
            // (MQTT 5.0 §4.8.2, §3.8.4).
            let send_retained = group.is_none()
                && match options.retain_handling {
                    crate::codec::RetainHandling::OnSubscribe => true,
                    crate::codec::RetainHandling::OnNewSubscribe => !existed,
                    crate::codec::RetainHandling::Never => false,
                };
            if send_retained {
                for m in self
                    .broker
                    .retained_matching(&filter, std::time::Instant::now())
                {
                    retained.push(Delivery {
                        qos: m.qos.min(options.qos),
                        retain: true,
                        subscription_ids: sub_id.into_iter().collect(),
                        message: m,
                        store_seq: None,
                    });
                }
            }
            codes.push(ReasonCode(options.qos.as_u8()));
        }
        // A persistent session's subscriptions are on disk before SUBACK.
        let ticket = if codes.iter().any(|c| c.is_success()) {
            self.persist_session()
        } else {
            Ticket::NONE
        };
        // [MQTT-3.8.4-1] SUBACK, with one code per filter in order [MQTT-3.8.4-6]
        let suback = Packet::SubAck(SubAck {
            packet_id: s.packet_id,
            properties: AckProperties::default(),
            reason_codes: codes,
        });
        self.send_after(io, ticket, suback);
        self.pending.extend(retained);
        Ok(None)
    }

    fn check_subscription(
        &self,
        raw: &ByteString,
        shared: bool,
        filter: &crate::topic::TopicFilter,
    ) -> ReasonCode {
        let cfg = &self.broker.config;
        if shared && !cfg.mqtt.shared_subscriptions {
            return ReasonCode::SHARED_SUBSCRIPTIONS_NOT_SUPPORTED;
        }
        if filter.has_wildcards() && !cfg.mqtt.wildcard_subscriptions {
            return ReasonCode::WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED;
        }
        if filter.as_str().split('/').count() > cfg.limits.max_topic_levels {
            return ReasonCode::TOPIC_FILTER_INVALID;
        }
        let max = cfg.limits.max_subscriptions_per_session;
        if max > 0
            && self.session.subscriptions.len() >= max
            && !self.session.subscriptions.contains_key(raw)
        {
            return ReasonCode::QUOTA_EXCEEDED;
        }
        ReasonCode::SUCCESS
    }

    fn on_unsubscribe<S: Duplex>(&mut self, io: &mut Io<S>, u: Unsubscribe) -> Handled {
        let mut codes = Vec::with_capacity(u.filters.len());
        for raw in u.filters {
            let code = match parse_filter(raw.clone()) {
                Err(_) => ReasonCode::TOPIC_FILTER_INVALID,
                Ok(kind) => {
                    let (group, filter) = match kind {
                        FilterKind::Normal(f) => (None, f),
                        FilterKind::Shared { group, filter } => (Some(group), filter),
                    };
                    self.broker.router.unsubscribe(
                        &self.session.client_id,
                        group.as_ref(),
                        &filter,
                    );
                    match self.session.subscriptions.remove(&raw) {
                        Some(_) => ReasonCode::SUCCESS,
                        None => ReasonCode::NO_SUBSCRIPTION_EXISTED,
                    }
                }
            };
            codes.push(code);
        }
        let ticket = if codes.contains(&ReasonCode::SUCCESS) {
            self.persist_session()
        } else {
            Ticket::NONE
        };
        // [MQTT-3.10.4-4] UNSUBACK even when nothing matched
        let unsuback = Packet::UnsubAck(UnsubAck {
            packet_id: u.packet_id,
            properties: AckProperties::default(),
            reason_codes: codes,
        });
        self.send_after(io, ticket, unsuback);
        Ok(None)
    }

    fn on_disconnect(&mut self, d: crate::codec::Disconnect) -> Handled {
        if let Some(expiry) = d.properties.session_expiry_interval {
            if self.session.expiry_interval_secs == 0 && expiry != 0 {
                return Err(Error::protocol(
                    ReasonCode::PROTOCOL_ERROR,
                    "[MQTT-3.14.2-2] session expiry set in DISCONNECT after 0 in CONNECT",
                ));
            }
            self.session.expiry_interval_secs =
                expiry.min(self.broker.config.limits.max_session_expiry_secs);
        }
        // [MQTT-3.1.2-10] only a normal DISCONNECT (0x00) discards the will; 0x04 and
        // error codes keep it.
        Ok(Some(End::Disconnected {
            will: d.reason_code != ReasonCode::NORMAL_DISCONNECTION,
        }))
    }
}

/// An acknowledgement without properties.
pub(super) fn ack(packet_id: PacketId, reason_code: ReasonCode) -> PubResp {
    PubResp {
        packet_id,
        reason_code,
        properties: AckProperties::default(),
    }
}

impl Conn {
    /// The ACL's publish check (when the chain has it), then the plugin chain's
    /// `on-publish`; `Err` carries the reason code of a refusal or drop, which is
    /// counted and logged here.
    pub(crate) async fn run_publish_hooks(&self, message: Message) -> Result<Message, ReasonCode> {
        self.check_publish_acl(&message)?;
        if !self.broker.plugins_have(Hook::Publish) {
            return Ok(message);
        }
        let chain = self.broker.plugins();
        let topic = message.topic.clone();
        // Boxed: a plugin call is a large future, and inline it would enlarge every
        // connection's task even when idle (the box is only made when a plugin runs).
        let outcome = Box::pin(chain.on_publish_with(self.hook_client(), message)).await;
        self.publish_outcome(&topic, outcome)
    }

    /// [`Self::run_publish_hooks`] for messages in the order the client sent them, with
    /// one plugin call per plugin for all of them (`on-publish-batch`).
    async fn run_publish_hooks_batch(
        &self,
        messages: Vec<Message>,
    ) -> Vec<Result<Message, ReasonCode>> {
        let chain = self.broker.plugins();
        if !chain.has(Hook::Publish) {
            let checked = messages.into_iter();
            return checked
                .map(|m| self.check_publish_acl(&m).map(|()| m))
                .collect();
        }
        // `None`: allowed by the ACL, answered by the chain below.
        let mut refused = Vec::with_capacity(messages.len());
        let mut allowed = Vec::with_capacity(messages.len());
        let mut topics = Vec::with_capacity(messages.len());
        for message in messages {
            match self.check_publish_acl(&message) {
                Ok(()) => {
                    refused.push(None);
                    topics.push(message.topic.clone());
                    allowed.push(message);
                }
                Err(code) => refused.push(Some(code)),
            }
        }
        let outcomes = Box::pin(chain.on_publish_batch(self.hook_client(), allowed)).await;
        let mut answered = outcomes.into_iter().zip(topics);
        refused
            .into_iter()
            .map(|refusal| match refusal {
                Some(code) => Err(code),
                None => match answered.next() {
                    Some((outcome, topic)) => self.publish_outcome(&topic, outcome),
                    // invariant: one outcome per allowed message
                    None => Err(ReasonCode::UNSPECIFIED_ERROR),
                },
            })
            .collect()
    }

    /// The ACL's publish check, when the chain has an ACL; a refusal is counted and
    /// logged.
    fn check_publish_acl(&self, message: &Message) -> Result<(), ReasonCode> {
        if let Some(rules) = &self.rules
            && let Err(refusal) = authorize_publish(rules, message.topic.as_str())
        {
            Stats::incr(&self.broker.stats.acl_denied_publish);
            Stats::incr(&self.broker.stats.messages_rejected);
            tracing::info!(client_id = %self.session.client_id, topic = %message.topic, code = %refusal.code, "publish not authorized by the acl");
            return Err(refusal.code);
        }
        Ok(())
    }

    /// The client record for the hooks, converted on the first call: most connections
    /// never need it.
    pub(super) fn hook_client(&self) -> &crate::plugin::HookClient {
        self.hook_client.get_or_init(|| {
            let info = self.client.info(&self.session.client_id, self.version);
            Box::new(crate::plugin::HookClient::new(&info))
        })
    }

    /// The chain's answer for a message on `topic`; a drop is counted and logged.
    fn publish_outcome(
        &self,
        topic: &TopicName,
        outcome: PublishOutcome,
    ) -> Result<Message, ReasonCode> {
        match outcome {
            PublishOutcome::Continue(message) => Ok(message),
            PublishOutcome::Drop {
                reason_code,
                reason,
            } => {
                Stats::incr(&self.broker.stats.messages_rejected);
                tracing::info!(topic = %topic, code = %reason_code, reason = %reason, "message dropped by plugin");
                Err(reason_code)
            }
        }
    }

    /// Runs the listener's chain for a subscription (the ACL against the filter,
    /// plugins' `on-subscribe` with the filter as sent): the granted QoS, or the
    /// refusal code. Refusals are counted and logged once.
    async fn authorize_subscription(
        &self,
        raw: &str,
        filter: &str,
        requested: QoS,
    ) -> Result<QoS, ReasonCode> {
        let plugins = self.broker.plugins();
        if self.rules.is_none() && !plugins.has(Hook::Subscribe) {
            return Ok(requested);
        }
        // Looked up, not kept per connection: only subscriptions that the ACL or a
        // plugin checks need it.
        let entries = self.broker.auth_chain(self.client.listener());
        let chain = Chain {
            auth: &self.broker.auth,
            entries: &entries,
            plugins: &plugins,
        };
        let rules = self.rules.as_deref();
        let client = plugins.has(Hook::Subscribe).then(|| self.hook_client());
        match Box::pin(chain.authorize_subscribe(rules, client, filter, raw, requested)).await {
            Ok((granted, partial)) => {
                if partial {
                    tracing::debug!(
                        filter = raw,
                        "subscription granted; a deny rule covers part of it"
                    );
                }
                Ok(granted)
            }
            Err(refusal) => {
                Stats::incr(&self.broker.stats.denied_subscribe);
                tracing::info!(client_id = %self.session.client_id, filter = raw, code = %refusal.code, by = %refusal.by, reason = %refusal.reason, "subscription refused");
                Err(refusal.code)
            }
        }
    }
}
