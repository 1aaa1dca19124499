//! [`PluginChain`]: the loaded plugins in configured order, and the chain semantics.
//!
//! - `on_connect`, `on_subscribe`: the first plugin that allows or denies decides; no
//!   opinion passes on; when nobody decides the caller's default applies.
//! - `on_publish`: rewrites apply in chain order; the first drop ends the chain.
//! - `on_disconnect`: every plugin that declared it is told, in order.
//!
//! Messages a plugin publishes (`host.publish`) during a hook run through the
//! `on_publish` hooks of the plugins after it only, then go to the [`PluginPublisher`].
//! Each such message starts strictly later in the chain than the one that caused it, so
//! no plugin ever sees a message it published itself and the recursion ends after at
//! most one level per plugin; [`MAX_PUBLISH_DEPTH`] is a second bound.

use std::fmt;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::bindings::wit;
use super::convert;
use super::loaded::{LoadedPlugin, PublishChange};
use super::stats::PluginStats;
use super::{
    ClientInfo, ConnectOutcome, Credentials, DisconnectReason, Error, Hook, NoPublisher,
    PluginConfig, PluginPublisher, PublishOutcome, SubscribeOutcome,
};
use crate::message::Message;
use crate::types::QoS;

/// Deepest chain of messages published while handling published messages.
pub const MAX_PUBLISH_DEPTH: usize = 8;

/// The loaded plugin set, in chain order. Cheap to clone; hot reload builds a new one
/// and swaps it in (calls already running finish on the old set).
#[derive(Clone)]
pub struct PluginChain {
    inner: Arc<Inner>,
}

struct Inner {
    plugins: Vec<LoadedPlugin>,
    /// Union of the declared hooks (bit = `Hook as u8`).
    declared: u8,
    publisher: Arc<dyn PluginPublisher>,
}

/// A client as hooks see it, made once per connection: its WIT record and the
/// `client-handle` that names the record. Hooks after `on-connect` get the handle;
/// plugins ask for the record (`host.current-client`) only when they have not kept it, so a
/// busy connection's record is copied into each plugin instance once, not per message.
#[derive(Debug, Clone)]
pub struct HookClient {
    pub(super) handle: wit::ClientHandle,
    pub(super) record: Arc<wit::ClientResult>,
}

/// The next `client-handle`; handles are never reused while the broker runs.
static NEXT_HANDLE: AtomicU64 = AtomicU64::new(1);

impl HookClient {
    /// Converts `client` (attributes granted at connect included) under a new handle.
    pub fn new(client: &ClientInfo) -> HookClient {
        HookClient {
            handle: NEXT_HANDLE.fetch_add(1, Ordering::Relaxed),
            record: Arc::new(convert::client(client)),
        }
    }
}

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

impl fmt::Debug for PluginChain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.inner.plugins.iter().map(|p| &*p.name).collect();
        f.debug_struct("PluginChain")
            .field("plugins", &names)
            .finish()
    }
}

impl PluginChain {
    /// Loads `configs` in order without an artefact cache. See [`Self::load_with_cache`].
    pub async fn load(
        configs: &[PluginConfig],
        publisher: Arc<dyn PluginPublisher>,
    ) -> Result<PluginChain, Error> {
        Self::load_with_cache(configs, None, publisher).await
    }

    /// Loads `configs` in order: reads each file, compiles it (or loads its precompiled
    /// artefact from `cache_dir`, writing one after compiling), checks its interface,
    /// instantiates its pool and calls `init` on every instance. The first plugin that
    /// fails stops the load with an error naming it.
    pub async fn load_with_cache(
        configs: &[PluginConfig],
        cache_dir: Option<&Path>,
        publisher: Arc<dyn PluginPublisher>,
    ) -> Result<PluginChain, Error> {
        let mut plugins = Vec::with_capacity(configs.len());
        for cfg in configs {
            plugins.push(LoadedPlugin::load(cfg, cache_dir).await?);
        }
        let declared = plugins.iter().fold(0, |mask, p| mask | p.declared_mask());
        Ok(PluginChain {
            inner: Arc::new(Inner {
                plugins,
                declared,
                publisher,
            }),
        })
    }

    /// A chain without plugins: every hook answers at once.
    pub fn empty() -> PluginChain {
        PluginChain {
            inner: Arc::new(Inner {
                plugins: Vec::new(),
                declared: 0,
                publisher: Arc::new(NoPublisher),
            }),
        }
    }

    /// True when some plugin declared `hook`; the broker may skip the call otherwise.
    pub fn has(&self, hook: Hook) -> bool {
        self.inner.declared & (1 << hook as u8) != 0
    }

    /// True when the chain has no plugins.
    pub fn is_empty(&self) -> bool {
        self.inner.plugins.is_empty()
    }

    /// The plugin names, in chain order.
    pub fn names(&self) -> Vec<String> {
        self.inner
            .plugins
            .iter()
            .map(|p| p.name.to_string())
            .collect()
    }

    /// Instances per plugin, in chain order.
    pub fn instances(&self) -> Vec<usize> {
        self.inner
            .plugins
            .iter()
            .map(LoadedPlugin::instances)
            .collect()
    }

    fn with(&self, hook: Hook) -> impl Iterator<Item = (usize, &LoadedPlugin)> {
        self.inner
            .plugins
            .iter()
            .enumerate()
            .filter(move |(_, p)| p.declares(hook))
    }

    /// The chain position of the plugin named `name`.
    pub fn position(&self, name: &str) -> Option<usize> {
        self.inner.plugins.iter().position(|p| &*p.name == name)
    }

    /// Asks the chain whether `client` may connect: the first allow or deny wins.
    pub async fn on_connect(&self, client: &ClientInfo, creds: &Credentials) -> ConnectOutcome {
        self.on_connect_where(client, creds, |_, _| true).await
    }

    /// [`Self::on_connect`] over the plugins for which `include(position, name)` holds
    /// (the authentication chain interleaves built-ins with plugins).
    pub async fn on_connect_where(
        &self,
        client: &ClientInfo,
        creds: &Credentials,
        include: impl Fn(usize, &str) -> bool,
    ) -> ConnectOutcome {
        if !self.has(Hook::Connect) {
            return ConnectOutcome::NoOpinion;
        }
        let wire_client = HookClient::new(client);
        let wire_creds = convert::credentials(creds);
        let selected = self
            .with(Hook::Connect)
            .filter(|(i, p)| include(*i, &p.name));
        for (index, plugin) in selected {
            let (outcome, published) = plugin.connect(&wire_client, wire_creds.clone()).await;
            self.forward(index, &wire_client, published, 0).await;
            if outcome != ConnectOutcome::NoOpinion {
                return outcome;
            }
        }
        ConnectOutcome::NoOpinion
    }

    /// Asks the chain whether `client` may subscribe to `filter`; an allow grants at
    /// most `requested`.
    pub async fn on_subscribe(
        &self,
        client: &ClientInfo,
        filter: &str,
        requested: QoS,
    ) -> SubscribeOutcome {
        if !self.has(Hook::Subscribe) {
            return SubscribeOutcome::NoOpinion;
        }
        let client = HookClient::new(client);
        self.on_subscribe_where(&client, filter, requested, |_, _| true)
            .await
    }

    /// [`Self::on_subscribe`] over the plugins for which `include(position, name)` holds,
    /// for a connection's prepared client.
    pub async fn on_subscribe_where(
        &self,
        client: &HookClient,
        filter: &str,
        requested: QoS,
        include: impl Fn(usize, &str) -> bool,
    ) -> SubscribeOutcome {
        if !self.has(Hook::Subscribe) {
            return SubscribeOutcome::NoOpinion;
        }
        let selected = self
            .with(Hook::Subscribe)
            .filter(|(i, p)| include(*i, &p.name));
        for (index, plugin) in selected {
            let (outcome, published) = plugin.subscribe(client, filter, requested).await;
            self.forward(index, client, published, 0).await;
            if outcome != SubscribeOutcome::NoOpinion {
                return outcome;
            }
        }
        SubscribeOutcome::NoOpinion
    }

    /// Runs `message` (published by `client`, wills included) through the chain.
    pub async fn on_publish(&self, client: &ClientInfo, message: Message) -> PublishOutcome {
        if !self.has(Hook::Publish) {
            return PublishOutcome::Continue(message);
        }
        self.run_publish(0, &HookClient::new(client), message, 0)
            .await
    }

    /// [`Self::on_publish`] with the client record converted once per connection
    /// rather than once per message.
    pub async fn on_publish_with(&self, client: &HookClient, message: Message) -> PublishOutcome {
        if !self.has(Hook::Publish) {
            return PublishOutcome::Continue(message);
        }
        self.run_publish(0, client, message, 0).await
    }

    /// Runs messages that `client` published, in the order it sent them, through the
    /// chain: each plugin is called once for all the messages still going
    /// (`on-publish-batch`, or `on-publish` when one is left). One outcome per message,
    /// in order; the same outcomes as [`Self::on_publish_with`] for each in turn, but
    /// messages a plugin publishes meanwhile go on after its whole batch.
    pub async fn on_publish_batch(
        &self,
        client: &HookClient,
        messages: Vec<Message>,
    ) -> Vec<PublishOutcome> {
        let mut outcomes: Vec<PublishOutcome> =
            messages.into_iter().map(PublishOutcome::Continue).collect();
        if !self.has(Hook::Publish) {
            return outcomes;
        }
        for (index, plugin) in self.with(Hook::Publish) {
            // The messages still going, and where their outcomes are.
            let (live, batch): (Vec<usize>, Vec<&Message>) = outcomes
                .iter()
                .enumerate()
                .filter_map(|(i, outcome)| match outcome {
                    PublishOutcome::Continue(m) => Some((i, m)),
                    PublishOutcome::Drop { .. } => None,
                })
                .unzip();
            // The WIT forms borrow the messages: nothing is copied before wasmtime
            // copies them into the plugin.
            let properties: Vec<_> = batch
                .iter()
                .map(|m| convert::user_property_params(m))
                .collect();
            let wires: Vec<_> = batch
                .iter()
                .zip(&properties)
                .map(|(m, p)| convert::message(m, p))
                .collect();
            let (changes, published) = match (batch.as_slice(), wires.as_slice()) {
                ([], _) => break,
                ([single], [wire]) => {
                    let (change, published) = plugin.publish(client, wire.clone(), single).await;
                    (vec![change], published)
                }
                _ => plugin.publish_batch(client, &wires, &batch).await,
            };
            self.forward(index, client, published, 0).await;
            for (i, change) in live.into_iter().zip(changes) {
                match change {
                    None => {}
                    Some(PublishChange::Replaced(m)) => outcomes[i] = PublishOutcome::Continue(*m),
                    Some(PublishChange::Dropped {
                        reason_code,
                        reason,
                    }) => {
                        outcomes[i] = PublishOutcome::Drop {
                            reason_code,
                            reason,
                        }
                    }
                }
            }
        }
        outcomes
    }

    /// Tells every plugin that declared it that `client` is gone.
    pub async fn on_disconnect(&self, client: &ClientInfo, reason: DisconnectReason) {
        if !self.has(Hook::Disconnect) {
            return;
        }
        self.on_disconnect_with(&HookClient::new(client), reason)
            .await;
    }

    /// [`Self::on_disconnect`] for a connection's prepared client.
    pub async fn on_disconnect_with(&self, client: &HookClient, reason: DisconnectReason) {
        if !self.has(Hook::Disconnect) {
            return;
        }
        let wire_reason = convert::disconnect_reason(reason);
        for (index, plugin) in self.with(Hook::Disconnect) {
            let published = plugin.disconnect(client, wire_reason).await;
            self.forward(index, client, published, 0).await;
        }
    }

    /// Counters per plugin, in chain order.
    pub fn stats(&self) -> Vec<PluginStats> {
        self.inner.plugins.iter().map(LoadedPlugin::stats).collect()
    }

    /// The publish chain from plugin `start` on.
    async fn run_publish(
        &self,
        start: usize,
        client: &HookClient,
        mut message: Message,
        depth: usize,
    ) -> PublishOutcome {
        for (index, plugin) in self.with(Hook::Publish).skip_while(|(i, _)| *i < start) {
            let (change, published) = {
                let properties = convert::user_property_params(&message);
                let wire = convert::message(&message, &properties);
                plugin.publish(client, wire, &message).await
            };
            self.forward(index, client, published, depth).await;
            match change {
                None => {}
                Some(PublishChange::Replaced(new)) => message = *new,
                Some(PublishChange::Dropped {
                    reason_code,
                    reason,
                }) => {
                    return PublishOutcome::Drop {
                        reason_code,
                        reason,
                    };
                }
            }
        }
        PublishOutcome::Continue(message)
    }

    /// Sends the messages plugin `origin` published through the plugins after it, then
    /// to the publisher.
    fn forward<'a>(
        &'a self,
        origin: usize,
        client: &'a HookClient,
        published: Vec<Message>,
        depth: usize,
    ) -> BoxFuture<'a, ()> {
        if published.is_empty() {
            return Box::pin(std::future::ready(()));
        }
        Box::pin(async move {
            let plugin = &self.inner.plugins[origin].name;
            if depth >= MAX_PUBLISH_DEPTH {
                tracing::warn!(%plugin, depth, dropped = published.len(), "plugin publish refused: too deep");
                return;
            }
            for message in published {
                let outcome = self
                    .run_publish(origin + 1, client, message, depth + 1)
                    .await;
                if let PublishOutcome::Continue(message) = outcome
                    && let Err(error) = self.inner.publisher.publish(message)
                {
                    tracing::warn!(%plugin, %error, "message published by plugin not delivered");
                }
            }
        })
    }
}
