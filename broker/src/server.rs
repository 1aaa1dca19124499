//! Listeners, the accept loop with connection limits, the background tasks (expiry
//! sweep, `$SYS`), and graceful shutdown: stop accepting, tell every connection to close
//! (MQTT 5 clients get DISCONNECT 0x8B), wait for them to flush. What runs between the
//! socket and MQTT (PROXY header, TLS, WebSocket) is `transport`'s job, done inside the
//! connection task.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::Either;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::broker::{Broker, BrokerPublisher};
use crate::config::Config;
use crate::plugin::PluginChain;
use crate::stats::Stats;
use crate::transport::{Peer, Transport};

/// How often keep alives, credentials, offline sessions, delayed wills and retained
/// messages are checked for expiry (a silent client is closed up to this late).
const SWEEP_INTERVAL: Duration = Duration::from_millis(250);
/// How often the password file, the JWT key file and the certificates are checked for
/// changes.
const FILE_POLL: Duration = Duration::from_secs(2);
/// How long shutdown waits for connections to finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Server errors.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The plugin chain could not be loaded.
    #[error("cannot load the plugin chain: {0}")]
    Plugins(#[from] crate::plugin::Error),
    /// A built-in authenticator or the ACL could not be loaded.
    #[error("cannot load the authentication chain: {0}")]
    Auth(#[from] crate::auth::Error),
    /// A listener's certificates could not be loaded.
    #[error("listener `{name}`: {source}")]
    Tls {
        /// Listener name.
        name: String,
        /// Cause, naming the file.
        source: crate::transport::tls::Error,
    },
    /// The durable store could not be opened or read.
    #[error("cannot open the durable store: {0}")]
    Store(#[from] crate::store::OpenError),
    /// A listener could not bind.
    #[error("cannot listen on {addr} (listener `{name}`): {source}")]
    Bind {
        /// Listener name.
        name: String,
        /// Address.
        addr: SocketAddr,
        /// Cause.
        source: std::io::Error,
    },
}

struct Listener {
    /// Shared with every connection it accepts.
    name: Arc<str>,
    socket: TcpListener,
    limit: Option<Arc<Semaphore>>,
    transport: Arc<Transport>,
}

/// A bound, not yet running server.
pub struct Server {
    broker: Arc<Broker>,
    listeners: Vec<Listener>,
    metrics: Option<crate::metrics::Endpoint>,
}

impl Server {
    /// Binds every configured listener.
    pub async fn bind(config: Config) -> Result<Server, Error> {
        let (listeners, metrics) = bind_listeners(&config).await?;
        let auth = crate::auth::Auth::load(&config)?;
        let storage = config.storage.clone();
        let started = std::time::Instant::now();
        let (store, snapshot) =
            tokio::task::spawn_blocking(move || crate::store::Store::open(&storage))
                .await
                .map_err(|e| crate::store::OpenError::Open {
                    path: config.storage.dir_path(),
                    reason: format!("the opening task failed: {e}"),
                })??;
        Self::bind_parts(config, auth, listeners, metrics, store, snapshot, started).await
    }

    /// Like [`Server::bind`], on a store opened by the caller (tests use engines of
    /// their own); `config.storage` is not used.
    pub async fn bind_with_store(
        config: Config,
        store: crate::store::Store,
        snapshot: crate::store::Snapshot,
    ) -> Result<Server, Error> {
        let (listeners, metrics) = bind_listeners(&config).await?;
        let auth = crate::auth::Auth::load(&config)?;
        let started = std::time::Instant::now();
        Self::bind_parts(config, auth, listeners, metrics, store, snapshot, started).await
    }

    async fn bind_parts(
        config: Config,
        auth: crate::auth::Auth,
        listeners: Vec<Listener>,
        metrics: Option<crate::metrics::Endpoint>,
        store: crate::store::Store,
        snapshot: crate::store::Snapshot,
        started: std::time::Instant,
    ) -> Result<Server, Error> {
        let removed = snapshot.removed;
        let broker = Arc::new(Broker::with_store(config, auth, store));
        let restored = crate::restore::restore(&broker, snapshot);
        if let Some(path) = broker.store.path() {
            info!(
                path = %path.display(),
                retained = restored.retained,
                sessions = restored.sessions,
                queued = restored.queued,
                wills = restored.wills,
                expired_removed = removed,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "durable state loaded"
            );
        }
        broker.set_tls(
            listeners
                .iter()
                .filter_map(|l| Some((l.name.to_string(), Arc::clone(l.transport.tls()?))))
                .collect(),
        );
        let chain = load_plugins(&broker, &broker.config.plugins).await?;
        broker.set_plugins(chain);
        Ok(Server {
            broker,
            listeners,
            metrics,
        })
    }

    /// The bound addresses, in listener order.
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.listeners
            .iter()
            .filter_map(|l| l.socket.local_addr().ok())
            .collect()
    }

    /// The metrics endpoint's bound address, when `[metrics]` is enabled.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().and_then(|m| m.local_addr())
    }

    /// The shared broker state (for tests and embedding).
    pub fn broker(&self) -> Arc<Broker> {
        Arc::clone(&self.broker)
    }

    /// Serves until `shutdown` is cancelled, then closes every connection gracefully.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), Error> {
        let tracker = TaskTracker::new();
        let global = Arc::new(Semaphore::new(self.broker.config.limits.max_connections));
        for l in self.listeners {
            if let Ok(addr) = l.socket.local_addr() {
                info!(listener = %l.name, %addr, "listening");
            }
            tracker.spawn(accept_loop(
                l,
                Arc::clone(&self.broker),
                Arc::clone(&global),
                shutdown.clone(),
                tracker.clone(),
            ));
        }
        tracker.spawn(sweeper(Arc::clone(&self.broker), shutdown.clone()));
        if self.broker.auth.has_watched_files() || !self.broker.tls_states().is_empty() {
            tracker.spawn(watch_files(Arc::clone(&self.broker), shutdown.clone()));
        }
        if self.broker.config.sys.enabled {
            tracker.spawn(crate::sys::publish_loop(
                Arc::clone(&self.broker),
                shutdown.clone(),
            ));
        }
        let metrics = self
            .metrics
            .map(|m| m.spawn(Arc::clone(&self.broker), shutdown.clone()));
        shutdown.cancelled().await;
        // Connections past CONNECT; those still in it watch `shutdown` themselves.
        self.broker
            .registry
            .stop_all(crate::control::Stop::Shutdown);
        info!("shutting down");
        tracker.close();
        if tokio::time::timeout(SHUTDOWN_GRACE, tracker.wait())
            .await
            .is_err()
        {
            warn!("connections did not close within {SHUTDOWN_GRACE:?}");
        }
        // Served through the drain, so `/ready` reports 503 until the end.
        if let Some(m) = metrics {
            m.stop().await;
        }
        // Every connection has stored its session: write out what is queued, sync, close.
        let store = self.broker.store.clone();
        if tokio::task::spawn_blocking(move || store.close())
            .await
            .is_err()
        {
            warn!("closing the store failed");
        }
        Ok(())
    }
}

/// Binds every configured listener and the metrics endpoint.
async fn bind_listeners(
    config: &Config,
) -> Result<(Vec<Listener>, Option<crate::metrics::Endpoint>), Error> {
    let mut listeners = Vec::new();
    for l in &config.listeners {
        let transport =
            Transport::from_config(l, config.limits.max_packet_bytes).map_err(|source| {
                Error::Tls {
                    name: l.name.clone(),
                    source,
                }
            })?;
        let socket = TcpListener::bind(l.bind)
            .await
            .map_err(|source| Error::Bind {
                name: l.name.clone(),
                addr: l.bind,
                source,
            })?;
        let limit = (l.max_connections > 0).then(|| Arc::new(Semaphore::new(l.max_connections)));
        listeners.push(Listener {
            name: Arc::from(l.name.as_str()),
            socket,
            limit,
            transport: Arc::new(transport),
        });
    }
    let metrics = crate::metrics::Endpoint::bind(&config.metrics)
        .await
        .map_err(|source| Error::Bind {
            name: "metrics".to_owned(),
            addr: config.metrics.bind,
            source,
        })?;
    Ok((listeners, metrics))
}

async fn accept_loop(
    listener: Listener,
    broker: Arc<Broker>,
    global: Arc<Semaphore>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    loop {
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => return,
            res = listener.socket.accept() => match res {
                Ok(pair) => pair,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    warn!(listener = %listener.name, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        Stats::incr(&broker.stats.connections_total);
        let Some(admission) = Admission::try_new(&global, listener.limit.as_ref()) else {
            refuse(&broker, &listener.name, peer, stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        tracker.spawn(connection_task(
            stream, peer, &listener, &broker, &shutdown, admission,
        ));
    }
}

/// A connection's place under the global connection limit and its listener's: a
/// permit of each, given back when its task ends. Two pointers where two
/// `OwnedSemaphorePermit`s are 32 bytes, in every connection's task.
struct Admission {
    global: Arc<Semaphore>,
    local: Option<Arc<Semaphore>>,
}

impl Admission {
    /// A permit of `global` and of `local` (when the listener has a limit), or `None`
    /// when either is exhausted (nothing is taken then).
    fn try_new(global: &Arc<Semaphore>, local: Option<&Arc<Semaphore>>) -> Option<Admission> {
        let global_permit = global.try_acquire().ok()?;
        let local_permit = match local {
            Some(limit) => Some(limit.try_acquire().ok()?),
            None => None,
        };
        // Given back by `Drop` instead.
        global_permit.forget();
        if let Some(permit) = local_permit {
            permit.forget();
        }
        Some(Admission {
            global: Arc::clone(global),
            local: local.cloned(),
        })
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        self.global.add_permits(1);
        if let Some(limit) = &self.local {
            limit.add_permits(1);
        }
    }
}

/// The future of one connection's task: its transport, then MQTT, holding its
/// admission until it ends.
fn connection_task(
    stream: TcpStream,
    peer: SocketAddr,
    listener: &Listener,
    broker: &Arc<Broker>,
    shutdown: &CancellationToken,
    admission: Admission,
) -> impl Future<Output = ()> + Send + 'static {
    serve(
        stream,
        peer,
        Arc::clone(&listener.transport),
        Arc::clone(&listener.name),
        Arc::clone(broker),
        shutdown.clone(),
    )
    .map(move |()| drop(admission))
}

/// Sets up the listener's transport (bounded by the connect timeout), then serves MQTT.
///
/// Not an `async fn`, so that a plain connection's task is just the connection's
/// future (an async function would keep a copy of its arguments beside it).
fn serve(
    stream: TcpStream,
    addr: SocketAddr,
    transport: Arc<Transport>,
    listener: Arc<str>,
    broker: Arc<Broker>,
    shutdown: CancellationToken,
) -> impl Future<Output = ()> + Send + 'static {
    if transport.is_plain() {
        let peer = Peer { addr, tls: None };
        return Either::Left(crate::connection::serve(
            stream, peer, listener, broker, shutdown,
        ));
    }
    // Boxed: TLS and WebSocket streams and their handshakes are large, and inline they
    // would enlarge every connection's task, plain ones included (14 KB against 7 KB).
    Either::Right(Box::pin(serve_established(
        stream, addr, transport, listener, broker, shutdown,
    )))
}

/// TLS, WebSocket or PROXY: establishes the transport, then serves MQTT over it.
async fn serve_established(
    stream: TcpStream,
    addr: SocketAddr,
    transport: Arc<Transport>,
    listener: Arc<str>,
    broker: Arc<Broker>,
    shutdown: CancellationToken,
) {
    let wait = Duration::from_secs(broker.config.limits.connect_timeout_secs);
    let established = tokio::select! {
        _ = shutdown.cancelled() => return,
        res = tokio::time::timeout(wait, transport.establish(stream, addr)) => res,
    };
    match established {
        Ok(Ok((stream, peer))) => {
            let stream = crate::transport::Split::new(stream);
            crate::connection::serve(stream, peer, listener, broker, shutdown).await;
        }
        Ok(Err(e)) => {
            warn!(listener = %listener, peer = %addr, error = %e, "connection setup failed")
        }
        Err(_) => {
            warn!(listener = %listener, peer = %addr, "connection setup timed out after {wait:?}")
        }
    }
}

fn refuse(broker: &Broker, listener: &str, peer: SocketAddr, stream: TcpStream) {
    Stats::incr(&broker.stats.connections_refused);
    warn!(listener, %peer, "connection limit reached, connection refused");
    drop(stream);
}

async fn sweeper(broker: Arc<Broker>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(SWEEP_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {
                crate::contain::run(&broker.stats, "the sweep", || {
                    broker.sweep(std::time::Instant::now())
                });
            }
        }
    }
}

/// Re-reads the password file, the JWT key file and the TLS listeners' certificates
/// when they change on disk (each once the change has held for one look).
async fn watch_files(broker: Arc<Broker>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(FILE_POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {
                let b = Arc::clone(&broker);
                // File I/O and parsing stay off the I/O threads.
                let _ = tokio::task::spawn_blocking(move || {
                    crate::contain::run(&b.stats, "the file watch", || {
                        b.auth.reload_changed_files();
                        reload_changed_tls(&b);
                    })
                })
                .await;
            }
        }
    }
}

/// The file watcher's look at the TLS listeners' files. Blocks on file I/O.
fn reload_changed_tls(broker: &Broker) {
    for (listener, state) in broker.tls_states() {
        match state.reload_if_changed() {
            Ok(true) => info!(listener, "certificate files changed; reloaded"),
            Ok(false) => {}
            Err(error) => {
                warn!(listener, %error, "certificate files changed but cannot be used; the previous certificates stay in use")
            }
        }
    }
}

/// Reloads the built-in authenticators' files and the ACL rules (SIGHUP). Parts that
/// fail keep their previous state; their errors are returned.
pub async fn reload_auth(broker: &Arc<Broker>) -> Vec<crate::auth::Error> {
    let b = Arc::clone(broker);
    tokio::task::spawn_blocking(move || b.auth.reload())
        .await
        .unwrap_or_default()
}

/// Reloads the certificates of every TLS and WSS listener (SIGHUP). A listener whose
/// files fail to load keeps its previous certificates; its name and error are returned.
pub async fn reload_tls(broker: &Arc<Broker>) -> Vec<(String, crate::transport::tls::Error)> {
    let states = broker.tls_states();
    tokio::task::spawn_blocking(move || {
        states
            .into_iter()
            .filter_map(|(name, state)| state.reload().err().map(|e| (name, e)))
            .collect()
    })
    .await
    .unwrap_or_default()
}

/// Loads the plugin chain `configs` with host publishing wired to `broker`.
pub async fn load_plugins(
    broker: &Arc<Broker>,
    configs: &[crate::config::PluginConfig],
) -> Result<PluginChain, crate::plugin::Error> {
    if configs.is_empty() {
        return Ok(PluginChain::empty());
    }
    let publisher = Arc::new(BrokerPublisher(Arc::downgrade(broker)));
    let cache = broker.config.plugin_host.cache_path();
    let chain = PluginChain::load_with_cache(configs, cache.as_deref(), publisher).await?;
    info!(plugins = ?chain.names(), "plugin chain loaded");
    Ok(chain)
}

/// Hot reload: loads a new chain and swaps it in atomically. Connections stay up; a
/// chain that fails to load leaves the running one in place and the error is returned.
pub async fn reload_plugins(
    broker: &Arc<Broker>,
    configs: &[crate::config::PluginConfig],
) -> Result<(), crate::plugin::Error> {
    let chain = load_plugins(broker, configs).await?;
    broker.set_plugins(chain);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_admission_holds_a_permit_of_each_limit_until_dropped() {
        let global = Arc::new(Semaphore::new(2));
        let local = Arc::new(Semaphore::new(1));
        let first = Admission::try_new(&global, Some(&local)).expect("room under both");
        assert_eq!(
            (global.available_permits(), local.available_permits()),
            (1, 0)
        );
        assert!(
            Admission::try_new(&global, Some(&local)).is_none(),
            "the listener's limit is reached"
        );
        assert_eq!(
            global.available_permits(),
            1,
            "a refused connection takes no global permit"
        );
        let other_listener = Admission::try_new(&global, None).expect("global room left");
        assert!(
            Admission::try_new(&global, None).is_none(),
            "global limit reached"
        );
        drop(first);
        assert_eq!(
            (global.available_permits(), local.available_permits()),
            (1, 1)
        );
        drop(other_listener);
        assert_eq!(global.available_permits(), 2);
    }

    /// Tokio allocates a task as one cell: a 32-byte header, the scheduler handle and
    /// task id (16), the stage's tag (8), the future, and a 48-byte trailer, rounded up
    /// to 128 bytes. A plain connection's future (the task state machine with its
    /// parked link inline, the admission, the tracker's token) must stay within 536
    /// bytes for the cell to be 640; one byte more and every connection pays 128.
    #[tokio::test]
    async fn a_plain_connections_task_fits_a_640_byte_tokio_cell() {
        let mut config = Config::default();
        config.listeners.truncate(1);
        config.listeners[0].bind = "127.0.0.1:0".parse().unwrap();
        config.listeners[0].protocol = crate::config::ListenerProtocol::Tcp;
        config.listeners[0].proxy_protocol = false;
        let (mut listeners, _) = bind_listeners(&config).await.unwrap();
        let listener = listeners.remove(0);
        let addr = listener.socket.local_addr().unwrap();
        let _client = TcpStream::connect(addr).await.unwrap();
        let (stream, peer) = listener.socket.accept().await.unwrap();
        let broker = Arc::new(Broker::new(config));
        let global = Arc::new(Semaphore::new(1));
        let admission = Admission::try_new(&global, None).unwrap();
        let tracker = TaskTracker::new();
        let task = tracker.track_future(connection_task(
            stream,
            peer,
            &listener,
            &broker,
            &CancellationToken::new(),
            admission,
        ));
        let size = std::mem::size_of_val(&task);
        assert!(size <= 536, "a connection's task future is {size} bytes");
    }
}
