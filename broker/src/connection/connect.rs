//! The CONNECT / CONNACK exchange: validates CONNECT, claims (or takes over) the
//! session, negotiates limits and answers with CONNACK.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use bytestring::ByteString;
use tokio::io::AsyncReadExt;
use tokio::time::{Instant, timeout};
use tokio_util::codec::Decoder;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::Io;
use super::state::{Conn, End, Error};
use crate::auth::chain::{Chain, Grant, Refusal, authorize_publish, session_rules};
use crate::broker::Broker;
use crate::codec::{self, ConnAck, ConnAckProperties, Connect, Packet};
use crate::config::ChainEntry;
use crate::control::{Control, Stop};
use crate::lazy_deque::LazyDeque;
use crate::message::{Message, MessageProperties};
use crate::plugin::{ClientInfo, Credentials, WillInfo};
use crate::registry::{Claim, Released, StoredSession};
use crate::session::Session;
use crate::stats::Stats;
use crate::topic::TopicName;
use crate::transport::{Duplex, Peer};
use crate::types::{ClientId, QoS, ReasonCode};

/// How long a new connection waits for the previous owner of its session to hand it over.
const TAKEOVER_TIMEOUT: Duration = Duration::from_secs(5);

/// Reads CONNECT and answers it. `Ok(None)`: refused with a CONNACK already encoded.
pub(super) async fn handshake<S: Duplex>(
    io: &mut Io<S>,
    broker: &Arc<Broker>,
    shutdown: &CancellationToken,
    peer: &Peer,
    listener: &Arc<str>,
) -> Result<Option<Conn>, Error> {
    let wait = Duration::from_secs(broker.config.limits.connect_timeout_secs);
    let connect = tokio::select! {
        res = timeout(wait, read_connect(io)) => match res {
            Ok(res) => res?,
            Err(_) => return Err(Error::ConnectTimeout(wait)),
        },
        _ = shutdown.cancelled() => return Ok(None),
    };
    let Some(connect) = connect else {
        return Ok(None);
    };
    // Boxed: the decoded CONNECT, the authentication chain's calls and the session
    // claim are large (about 2 KB); inline they would sit in every handshake that is
    // still waiting for its CONNECT.
    Box::pin(accept(io, broker, shutdown, peer, listener, connect)).await
}

/// Validates and authenticates a CONNECT, claims the session and answers with CONNACK.
async fn accept<S: Duplex>(
    io: &mut Io<S>,
    broker: &Arc<Broker>,
    shutdown: &CancellationToken,
    peer: &Peer,
    listener: &Arc<str>,
    mut connect: Connect,
) -> Result<Option<Conn>, Error> {
    // A verified certificate's name replaces the CONNECT username.
    let cert_user = peer.tls.as_ref().and_then(|t| t.username.clone());
    if let Some(user) = &cert_user {
        connect.username = Some(user.as_str().into());
    }
    let v = connect.protocol;
    if let Err(reason) = validate(broker, &connect) {
        debug!(reason = %reason, "connect refused");
        refuse(io, reason);
        return Ok(None);
    }
    let will = match will_message(broker, &connect) {
        Ok(will) => will,
        Err(reason) => {
            refuse(io, reason);
            return Ok(None);
        }
    };
    let conn_id = broker.next_conn_id();
    let (client_id, assigned) = if connect.client_id.is_empty() {
        let id = format!(
            "cauldron-{:x}-{conn_id}",
            broker.started.elapsed().as_nanos()
        );
        (ClientId::new(id.clone()), Some(ByteString::from(id)))
    } else {
        // The id lives as long as the session (registry, router, store).
        (ClientId::new(super::detached(&connect.client_id)), None)
    };
    let mut client = client_info(&connect, &client_id, peer, listener);
    let entries = broker.auth_chain(listener);
    let by_cert = cert_user.is_some();
    let grant = match Box::pin(authenticate(broker, &entries, &client, &connect, by_cert)).await {
        Ok(grant) => grant,
        Err(refusal) => {
            refuse_with(io, &connect, refusal.code, &refusal.reason);
            return Ok(None);
        }
    };
    client.attributes = grant.attributes;
    let rules = session_rules(&broker.auth, &entries, &grant.identity).map(Arc::new);
    if let (Some(rules), Some((will, _))) = (&rules, &will)
        && let Err(refusal) = authorize_publish(rules, will.topic.as_str())
    {
        // The will would be refused when published; refuse the connection instead.
        Stats::incr(&broker.stats.acl_denied_publish);
        tracing::info!(client_id = %client_id, topic = %will.topic, "will topic not authorized; connection refused");
        refuse_with(io, &connect, refusal.code, "will topic not authorized");
        return Ok(None);
    }
    let credentials_expire = grant
        .identity
        .expires_at
        .map(|at| Instant::now() + crate::auth::chain::remaining(at));
    let expiry = session_expiry(broker, &connect);
    let (keep_alive, server_keep_alive) = keep_alive(broker, &connect);
    // One block for every reason to stop: takeover, shutdown, keep alive, expiry.
    let control = Control::new(
        &broker.deadlines,
        (keep_alive > 0).then(|| Duration::from_secs(u64::from(keep_alive))),
        credentials_expire,
    );
    let mut claimed = Claimed {
        broker,
        client: &client_id,
        conn_id,
        control: &control,
        stored: None,
        armed: true,
    };
    claimed.stored = match broker
        .registry
        .claim(&client_id, conn_id, Arc::clone(&control))
    {
        Claim::Fresh => None,
        Claim::Resumed(stored) => Some(*stored),
        // Boxed: the wait is rare, and inline it would enlarge every handshake.
        Claim::TakingOver(rx) => Box::pin(take_over(rx)).await,
    };
    if shutdown.is_cancelled() {
        // The server stopped its live connections before this one was in the registry.
        control.stop(Stop::Shutdown);
    }
    broker.deadlines.watch(&control);
    #[cfg(test)]
    super::panic_tests::trip("claimed", client_id.as_str());
    let (session, outbox_tx, outbox_rx, present) = match claimed.stored.take() {
        Some(stored) if !connect.clean_start => {
            // [MQTT-3.1.3-9] resuming cancels a delayed will.
            let StoredSession {
                mut session,
                outbox_tx,
                outbox_rx,
                ..
            } = stored;
            session.expiry_interval_secs = expiry;
            (session, outbox_tx, outbox_rx, true)
        }
        other => {
            // [MQTT-3.1.2-4] clean start discards any existing session.
            if let Some(mut old) = other {
                broker.end_session(&old.session);
                if let Some(w) = old.delayed_will.take() {
                    broker.publish(w.message);
                }
            }
            let (tx, rx) = crate::router::outbox::channel(broker.config.limits.max_queued_messages);
            (Session::new(client_id.clone(), expiry), tx, rx, false)
        }
    };
    // From here on only moves: the connection holds the session next.
    claimed.done();
    let limits = &broker.config.limits;
    let props = &connect.properties;
    // Boxed by the caller together with the socket (see `super::Link`).
    let mut conn = Conn {
        broker: Arc::clone(broker),
        conn_id,
        version: v,
        session,
        outbox_tx,
        outbox_rx,
        pending: LazyDeque::new(),
        control,
        window: limits
            .max_inflight_messages
            .min(props.receive_maximum.unwrap_or(u16::MAX))
            .max(1),
        client_max_packet: props.maximum_packet_size.unwrap_or(u32::MAX),
        client_topic_alias_max: if v.is_v5() {
            props.topic_alias_maximum.unwrap_or(0)
        } else {
            0
        },
        aliases: None,
        will: will.map(Box::new),
        request_problem_information: props.request_problem_information.unwrap_or(true),
        hook_client: once_cell::race::OnceBox::new(),
        client: super::client::ClientRecord::new(client),
        rules,
        held: LazyDeque::new(),
        will_stored: false,
        routed: 0,
    };
    let answered = std::panic::catch_unwind(AssertUnwindSafe(|| {
        conn.adopt_durability();
        #[cfg(test)]
        super::panic_tests::trip("connack", conn.session.client_id.as_str());
        let mut ack = ConnAck {
            // [MQTT-3.2.2-2] / [MQTT-3.2.2-3]
            session_present: present,
            reason_code: ReasonCode::SUCCESS,
            properties: ConnAckProperties::default(),
        };
        if v.is_v5() {
            ack.properties =
                connack_properties(broker, &connect, expiry, assigned, server_keep_alive);
        }
        io.encode(&Packet::ConnAck(ack));
    }));
    if let Err(panic) = answered {
        // The connection holds its session: its close gives it back, as after a panic
        // in an active phase. The handshake's catch (`establish`) reports the panic.
        io.wbuf.clear();
        let message = crate::contain::panic_message(panic.as_ref());
        Box::pin(conn.finish(&End::Panicked(message))).await;
        std::panic::resume_unwind(panic);
    }
    Ok(Some(conn))
}

/// A session claimed in the registry for a connection that does not hold it yet.
/// Unwound before [`Claimed::done`] (a panic in between, which is a bug), it gives the
/// registry slot back, with the session it took over stored offline as it was:
/// otherwise the client's next CONNECT would wait [`TAKEOVER_TIMEOUT`] for a hand-over
/// from a connection that is gone, and find its session lost. Dropped without a panic
/// (the runtime dropping the task at exit) it does nothing, as before it existed.
struct Claimed<'a> {
    broker: &'a Broker,
    client: &'a ClientId,
    conn_id: u64,
    control: &'a Arc<Control>,
    /// The session taken over (offline, or handed over by the previous connection).
    stored: Option<StoredSession>,
    /// True until [`Claimed::done`].
    armed: bool,
}

impl Claimed<'_> {
    /// The connection holds the session from here on: dropping the claim does nothing.
    fn done(mut self) {
        self.armed = false;
    }
}

impl Drop for Claimed<'_> {
    fn drop(&mut self) {
        if !self.armed || !std::thread::panicking() {
            return;
        }
        self.broker.deadlines.end(self.control);
        let stored = self.stored.take();
        if let Released::Dropped(Some(stored)) =
            self.broker
                .registry
                .release(self.client, self.conn_id, stored)
        {
            // Another connection claimed the client meanwhile (as in `Conn::finish`).
            self.broker.end_session(&stored.session);
        }
    }
}

/// Reads until one packet is decoded. `Ok(None)`: EOF or an answered refusal.
async fn read_connect<S: Duplex>(io: &mut Io<S>) -> Result<Option<Connect>, Error> {
    loop {
        match io.codec.decode(&mut io.rbuf) {
            Ok(Some(Packet::Connect(c))) => return Ok(Some(*c)),
            // invariant: the codec only yields CONNECT before a version is known
            Ok(Some(_)) => {
                return Err(Error::protocol(
                    ReasonCode::PROTOCOL_ERROR,
                    "[MQTT-3.1.0-1] first packet is not CONNECT",
                ));
            }
            Ok(None) => {}
            Err(e) => {
                if let codec::Error::UnsupportedProtocolVersion(level) = e {
                    debug!(level, "unsupported protocol version");
                    // [MQTT-3.1.2-2]: 3.1.1 answers return code 0x01; a 5.0-shaped CONNACK
                    // would not parse in an older client, so use the 3.1.1 form.
                    io.wbuf.extend_from_slice(&[0x20, 0x02, 0x00, 0x01]);
                    return Ok(None);
                }
                return Err(Error::Codec(e));
            }
        }
        io.prepare_read();
        if io.stream.halves().0.read_buf(&mut io.rbuf).await? == 0 {
            return Ok(None);
        }
    }
}

fn refuse<S: Duplex>(io: &mut Io<S>, reason: ReasonCode) {
    io.encode(&Packet::ConnAck(ConnAck {
        session_present: false, // [MQTT-3.2.2-6]
        reason_code: reason,
        properties: ConnAckProperties::default(),
    }));
}

/// A refusal with a Reason String for MQTT 5 clients that did not turn problem
/// information off [MQTT-3.1.2-29].
fn refuse_with<S: Duplex>(io: &mut Io<S>, c: &Connect, code: ReasonCode, reason: &str) {
    let mut properties = ConnAckProperties::default();
    if c.protocol.is_v5() && c.properties.request_problem_information != Some(false) {
        properties.reason_string = Some(reason.into());
    }
    io.encode(&Packet::ConnAck(ConnAck {
        session_present: false, // [MQTT-3.2.2-6]
        reason_code: code,
        properties,
    }));
}

fn validate(broker: &Broker, c: &Connect) -> Result<(), ReasonCode> {
    let cfg = &broker.config;
    if c.client_id.is_empty() {
        // [MQTT-3.1.3-8]: 3.1.1 with clean session 0 and an empty id is refused.
        if !cfg.mqtt.allow_empty_client_id || (!c.protocol.is_v5() && !c.clean_start) {
            return Err(ReasonCode::CLIENT_IDENTIFIER_NOT_VALID);
        }
    }
    if c.client_id.len() > cfg.limits.client_id_max_bytes {
        return Err(ReasonCode::CLIENT_IDENTIFIER_NOT_VALID);
    }
    if c.properties.authentication_method.is_some() {
        // No enhanced authentication method is configured [MQTT-4.12.0-1].
        return Err(ReasonCode::BAD_AUTHENTICATION_METHOD);
    }
    Ok(())
}

fn will_message(broker: &Broker, c: &Connect) -> Result<Option<(Message, u32)>, ReasonCode> {
    let Some(will) = &c.will else {
        return Ok(None);
    };
    let topic = TopicName::new(will.topic.clone()).map_err(|_| ReasonCode::TOPIC_NAME_INVALID)?;
    if will.qos.as_u8() > broker.config.mqtt.maximum_qos {
        return Err(ReasonCode::QOS_NOT_SUPPORTED); // [MQTT-3.2.2-12]
    }
    if will.retain && !broker.config.mqtt.retain_available {
        return Err(ReasonCode::RETAIN_NOT_SUPPORTED); // [MQTT-3.2.2-13]
    }
    let p = &will.properties;
    let now = std::time::Instant::now();
    let message = Message {
        topic,
        payload: will.payload.clone(),
        qos: will.qos,
        retain: will.retain,
        properties: MessageProperties {
            payload_format_indicator: p.payload_format_indicator,
            content_type: p.content_type.clone(),
            response_topic: p.response_topic.clone(),
            correlation_data: p.correlation_data.clone(),
            user_properties: p.user_properties.clone(),
        },
        expires_at: Message::expiry_deadline(p.message_expiry_interval, || now),
        publisher: Some(ClientId::new(c.client_id.clone())),
    };
    Ok(Some((message, p.will_delay_interval.unwrap_or(0))))
}

/// The session expiry in seconds, capped by the configuration. 3.1.1 persistent
/// sessions use the configured maximum.
fn session_expiry(broker: &Broker, c: &Connect) -> u32 {
    let cap = broker.config.limits.max_session_expiry_secs;
    if c.protocol.is_v5() {
        c.properties.session_expiry_interval.unwrap_or(0).min(cap)
    } else if c.clean_start {
        0
    } else {
        cap
    }
}

/// (effective keep alive, Server Keep Alive to announce).
fn keep_alive(broker: &Broker, c: &Connect) -> (u16, Option<u16>) {
    let max = broker.config.limits.max_keep_alive_secs;
    if c.protocol.is_v5() && max > 0 && (c.keep_alive == 0 || c.keep_alive > max) {
        return (max, Some(max)); // [MQTT-3.2.2-21]
    }
    (c.keep_alive, None)
}

/// Waits for the live owner of the session to hand it over [MQTT-3.1.4-3].
async fn take_over(rx: tokio::sync::oneshot::Receiver<StoredSession>) -> Option<StoredSession> {
    debug!("taking over a live session [MQTT-3.1.4-3]");
    match timeout(TAKEOVER_TIMEOUT, rx).await {
        Ok(Ok(stored)) => Some(stored),
        _ => None,
    }
}

fn connack_properties(
    broker: &Broker,
    c: &Connect,
    expiry: u32,
    assigned: Option<ByteString>,
    server_keep_alive: Option<u16>,
) -> ConnAckProperties {
    let cfg = &broker.config;
    let requested = c.properties.session_expiry_interval.unwrap_or(0);
    ConnAckProperties {
        session_expiry_interval: (expiry != requested).then_some(expiry),
        receive_maximum: (cfg.limits.receive_maximum != u16::MAX)
            .then_some(cfg.limits.receive_maximum),
        maximum_qos: match cfg.mqtt.maximum_qos {
            0 => Some(QoS::AtMostOnce),
            1 => Some(QoS::AtLeastOnce),
            _ => None,
        },
        retain_available: (!cfg.mqtt.retain_available).then_some(false),
        maximum_packet_size: Some(cfg.limits.max_packet_bytes),
        assigned_client_identifier: assigned,
        topic_alias_maximum: (cfg.limits.topic_alias_maximum > 0)
            .then_some(cfg.limits.topic_alias_maximum),
        wildcard_subscription_available: (!cfg.mqtt.wildcard_subscriptions).then_some(false),
        subscription_identifiers_available: (!cfg.mqtt.subscription_identifiers).then_some(false),
        shared_subscription_available: (!cfg.mqtt.shared_subscriptions).then_some(false),
        server_keep_alive,
        response_information: if c.properties.request_response_information == Some(true) {
            cfg.mqtt.response_information.clone().map(Into::into)
        } else {
            None
        },
        ..Default::default()
    }
}

fn client_info(c: &Connect, client_id: &ClientId, peer: &Peer, listener: &Arc<str>) -> ClientInfo {
    ClientInfo {
        client_id: client_id.clone(),
        username: c.username.as_ref().map(|u| u.to_string()),
        protocol: c.protocol,
        remote_addr: peer.addr,
        listener: Arc::clone(listener),
        tls_peer: peer.tls.as_ref().map(|t| t.subject.clone()),
        keep_alive: c.keep_alive,
        clean_start: c.clean_start,
        will: c.will.as_ref().and_then(|w| {
            Some(WillInfo {
                topic: TopicName::new(w.topic.clone()).ok()?,
                qos: w.qos,
                retain: w.retain,
            })
        }),
        attributes: Vec::new(),
    }
}

/// Runs the listener's authentication chain (built-ins and plugins' `on-connect`):
/// what the client was granted, or the CONNACK refusal. Counted and logged once.
async fn authenticate(
    broker: &Broker,
    entries: &[ChainEntry],
    client: &ClientInfo,
    c: &Connect,
    by_cert: bool,
) -> Result<Grant, Refusal> {
    let credentials = Credentials {
        username: c.username.as_ref().map(|u| u.to_string()),
        password: c.password.clone(),
    };
    let plugins = broker.plugins();
    let chain = Chain {
        auth: &broker.auth,
        entries,
        plugins: &plugins,
    };
    let allow_anonymous = broker.config.allow_anonymous(&client.listener);
    match chain
        .authenticate_with_cert(client, &credentials, allow_anonymous, by_cert)
        .await
    {
        Ok(grant) => {
            Stats::incr(&broker.stats.auth_accepted);
            debug!(client_id = %client.client_id, by = %grant.by, "client authenticated");
            Ok(grant)
        }
        Err(refusal) => {
            Stats::incr(&broker.stats.auth_refused);
            tracing::info!(
                client_id = %client.client_id,
                username = client.username.as_deref().unwrap_or(""),
                remote = %client.remote_addr,
                code = %refusal.code,
                by = %refusal.by,
                reason = %refusal.reason,
                "connection refused"
            );
            Err(refusal)
        }
    }
}
