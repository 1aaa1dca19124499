//! The state shared by every connection: configuration, subscription router, retained
//! messages, session registry and counters, plus the operations that span them
//! (publishing a message, ending a session, the periodic expiry sweep).
//!
//! Nothing here touches a socket; every lock is synchronous and released before any
//! `.await`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use tracing::debug;

use crate::config::Config;
use crate::message::Message;
use crate::plugin::{PluginChain, PluginPublisher};
use crate::registry::Registry;
use crate::retain::RetainStore;
use crate::router::{RouteOutcome, Router};
use crate::stats::Stats;
use crate::store::{Op, Store, Ticket};
use crate::topic::TopicFilter;

/// Shared broker state.
pub struct Broker {
    /// The validated configuration.
    pub config: Arc<Config>,
    /// Subscriptions.
    pub router: Router,
    /// Retained messages.
    pub retained: RwLock<RetainStore<Arc<Message>>>,
    /// Sessions.
    pub registry: Registry,
    /// Keep-alive and credential deadlines of the live connections.
    pub deadlines: crate::control::Deadlines,
    /// Counters.
    pub stats: Stats,
    /// When the broker started.
    pub started: Instant,
    /// The built-in authenticators and ACL.
    pub auth: crate::auth::Auth,
    /// The durable store (a memory store keeps nothing).
    pub store: Store,
    next_conn_id: AtomicU64,
    system_retained: std::sync::atomic::AtomicUsize,
    plugins: RwLock<PluginChain>,
    /// Each configured listener's authentication chain, parsed once and shared by its
    /// connections.
    auth_chains: Vec<(String, Arc<[crate::config::ChainEntry]>)>,
    /// The certificates of the TLS and WSS listeners, by listener name (for reloads).
    tls: RwLock<Vec<(String, Arc<crate::transport::tls::TlsState>)>>,
}

impl Broker {
    /// A broker with empty state and no built-in authentication.
    pub fn new(config: Config) -> Self {
        Self::with_auth(config, crate::auth::Auth::none())
    }

    /// A broker with empty state and these loaded built-ins.
    pub fn with_auth(config: Config, auth: crate::auth::Auth) -> Self {
        Self::with_store(config, auth, Store::memory())
    }

    /// A broker with empty state writing to `store` (see [`Broker::restore`]).
    pub fn with_store(config: Config, auth: crate::auth::Auth, store: Store) -> Self {
        let auth_chains = config
            .listeners
            .iter()
            .map(|l| (l.name.clone(), config.auth_chain(&l.name).into()))
            .collect();
        Broker {
            auth,
            store,
            auth_chains,
            config: Arc::new(config),
            router: Router::default(),
            retained: RwLock::new(RetainStore::new()),
            registry: Registry::default(),
            deadlines: crate::control::Deadlines::default(),
            stats: Stats::default(),
            started: Instant::now(),
            next_conn_id: AtomicU64::new(1),
            system_retained: std::sync::atomic::AtomicUsize::new(0),
            plugins: RwLock::new(PluginChain::empty()),
            tls: RwLock::new(Vec::new()),
        }
    }

    /// The authentication and authorisation chain of `listener` (see
    /// [`Config::auth_chain`]).
    pub fn auth_chain(&self, listener: &str) -> Arc<[crate::config::ChainEntry]> {
        match self.auth_chains.iter().find(|(name, _)| name == listener) {
            Some((_, chain)) => Arc::clone(chain),
            None => self.config.auth_chain(listener).into(),
        }
    }

    /// The TLS listeners' certificate states, by listener name.
    pub fn tls_states(&self) -> Vec<(String, Arc<crate::transport::tls::TlsState>)> {
        self.tls.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Registers the TLS listeners' certificate states (done by `Server::bind`).
    pub fn set_tls(&self, states: Vec<(String, Arc<crate::transport::tls::TlsState>)>) {
        *self.tls.write().unwrap_or_else(|e| e.into_inner()) = states;
    }

    /// The current plugin chain (cheap to clone; hot reload swaps it).
    pub fn plugins(&self) -> PluginChain {
        self.plugins
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// True when the current chain has a plugin that declared `hook`: the check on the
    /// per-message path, without cloning the chain.
    pub fn plugins_have(&self, hook: crate::plugin::Hook) -> bool {
        self.plugins
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .has(hook)
    }

    /// Replaces the plugin chain; calls already running finish on the old one.
    pub fn set_plugins(&self, chain: PluginChain) {
        *self.plugins.write().unwrap_or_else(|e| e.into_inner()) = chain;
    }

    /// A process-unique connection id.
    pub fn next_conn_id(&self) -> u64 {
        self.next_conn_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Stores (or deletes) a retained message and routes it to the subscribers. The
    /// outcome's ticket covers the retained message and every durable session's queue.
    pub fn publish(&self, message: Message) -> RouteOutcome {
        let message = Arc::new(message);
        let mut ticket = Ticket::NONE;
        if message.retain {
            ticket = self.store_retained(&message);
        }
        let mut outcome = self.router.route(&message, &self.store);
        outcome.ticket = outcome.ticket.max(ticket);
        if outcome.dropped > 0 {
            self.stats.dropped_queue_full.add(outcome.dropped as u64);
            debug!(topic = %message.topic, dropped = outcome.dropped, "subscriber queue full, message dropped");
        }
        outcome
    }

    /// [MQTT-3.3.1-5] store, [MQTT-3.3.1-10] an empty payload deletes and is not stored
    /// [MQTT-3.3.1-11].
    fn store_retained(&self, message: &Arc<Message>) -> Ticket {
        // `$SYS` statistics are the broker's own: not counted against the limit, not stored.
        let system = message.topic.is_system() && message.publisher.is_none();
        let mut retained = self.retained.write().unwrap_or_else(|e| e.into_inner());
        if message.payload.is_empty() {
            if retained.remove(&message.topic).is_some() && !system {
                return self.store.submit(Op::RetainDelete(message.topic.clone()));
            }
            return Ticket::NONE;
        }
        let limit = self.config.mqtt.max_retained_messages;
        let used = retained
            .len()
            .saturating_sub(self.system_retained.load(Ordering::Relaxed));
        if !system && limit > 0 && used >= limit && retained.get(&message.topic).is_none() {
            Stats::incr(&self.stats.messages_rejected);
            debug!(topic = %message.topic, "retained store full, message not retained");
            return Ticket::NONE;
        }
        // The stored copy keeps RETAIN set; deliveries decide per subscription.
        if retained
            .insert(message.topic.clone(), Arc::clone(message))
            .is_none()
            && system
        {
            self.system_retained.fetch_add(1, Ordering::Relaxed);
        }
        if system {
            return Ticket::NONE;
        }
        // Submitted under the lock, so the store sees puts of one topic in order.
        self.store.submit(Op::RetainPut(Arc::clone(message)))
    }

    /// Retained messages matching `filter` that have not expired.
    pub fn retained_matching(&self, filter: &TopicFilter, now: Instant) -> Vec<Arc<Message>> {
        let retained = self.retained.read().unwrap_or_else(|e| e.into_inner());
        let mut out = Vec::new();
        retained.for_each_match(filter, |_, m| {
            if !m.is_expired(now) {
                out.push(Arc::clone(m));
            }
        });
        out
    }

    /// Number of retained messages.
    pub fn retained_count(&self) -> usize {
        self.retained
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }

    /// Removes every subscription of a session that has ended, and its stored state.
    pub fn end_session(&self, stored: &crate::session::Session) {
        for key in stored.subscriptions.iter().map(|(key, _)| key) {
            if let Some((group, filter)) = crate::session::SessionSubscription::target(key) {
                self.router
                    .unsubscribe(&stored.client_id, group.as_ref(), &filter);
            }
        }
        if stored.durable.generation().is_some() {
            stored.durable.set(None);
            self.store
                .submit(Op::SessionDelete(stored.client_id.clone()));
        }
    }

    /// Stops connections past their keep-alive or credential deadline, expires offline
    /// sessions, publishes delayed wills that are due, drops expired retained messages.
    pub fn sweep(&self, now: Instant) {
        // Connections silent for 1.5x their keep alive, or whose credentials expired.
        self.deadlines.fire(self.deadlines.now_ms());
        let (expired, wills, fired) = self.registry.sweep(now);
        for stored in &expired {
            debug!(client_id = %stored.session.client_id, "session expired");
            self.end_session(&stored.session);
        }
        for will in wills {
            self.publish(will);
        }
        // Sessions whose will went out: their stored record loses the will.
        for client in fired {
            if let Some(op) = self.registry.offline_record(&client) {
                self.store.submit(op);
            }
        }
        let mut gone = Vec::new();
        {
            let mut retained = self.retained.write().unwrap_or_else(|e| e.into_inner());
            retained.retain(|topic, m| {
                let keep = !m.is_expired(now);
                if !keep {
                    gone.push(topic.clone());
                }
                keep
            });
        }
        if !gone.is_empty() {
            self.store
                .submit_all(gone.into_iter().map(Op::RetainDelete));
        }
    }
}

/// Routes messages that plugins publish (`host.publish`) straight to subscribers: the
/// chain already ran the later plugins on them, so running it again could loop.
pub struct BrokerPublisher(pub std::sync::Weak<Broker>);

impl PluginPublisher for BrokerPublisher {
    fn publish(&self, message: Message) -> Result<(), String> {
        match self.0.upgrade() {
            Some(broker) => {
                broker.publish(message);
                Ok(())
            }
            None => Err("the broker is shutting down".to_owned()),
        }
    }
}
