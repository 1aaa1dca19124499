//! [`TestBroker`]: a Cauldron server started in process on 127.0.0.1, port 0,
//! stopped through its `CancellationToken`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use cauldron::broker::Broker;
use cauldron::config::{Config, ListenerConfig, StorageConfig};
use cauldron::server::Server;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How long [`TestBroker::stop`] waits for the server task to finish.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// A running broker for one test. Dropping it cancels the server.
pub struct TestBroker {
    /// The address of the first listener.
    pub addr: SocketAddr,
    /// The addresses of all listeners, in configured order.
    pub addrs: Vec<SocketAddr>,
    /// The metrics endpoint's address, when the config enables `[metrics]`
    /// (bind it to 127.0.0.1:0).
    pub metrics: Option<SocketAddr>,
    broker: Arc<Broker>,
    shutdown: CancellationToken,
    task: Option<JoinHandle<Result<(), cauldron::server::Error>>>,
}

impl TestBroker {
    /// Validates `config`, forces a single listener on 127.0.0.1:0 and runs
    /// the server in a task of the test's runtime.
    pub async fn start(mut config: Config) -> TestBroker {
        let bind: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 0));
        let first = config.listeners.first().cloned().unwrap_or_default();
        config.listeners = vec![ListenerConfig {
            name: "test".into(),
            bind,
            ..first
        }];
        TestBroker::start_listeners(config).await
    }

    /// Validates `config` and runs it with its listeners as configured, except that
    /// every bind address becomes 127.0.0.1:0.
    ///
    /// A config whose `[storage]` is left at its defaults gets the memory store (tests
    /// run in parallel; those about durability set a data directory of their own).
    pub async fn start_listeners(mut config: Config) -> TestBroker {
        if config.storage == StorageConfig::default() {
            config.storage = StorageConfig::memory();
        }
        for l in &mut config.listeners {
            l.bind = SocketAddr::from(([127, 0, 0, 1], 0));
        }
        if let Err(e) = config.validate() {
            panic!("test configuration rejected by the broker: {e}");
        }
        let server = Server::bind(config)
            .await
            .unwrap_or_else(|e| panic!("Server::bind: {e}"));
        TestBroker::serve(server)
    }

    /// Like [`TestBroker::start`], on a store the test opened (e.g. with an engine
    /// that fails on demand).
    pub async fn start_with_store(
        mut config: Config,
        store: cauldron::store::Store,
        snapshot: cauldron::store::Snapshot,
    ) -> TestBroker {
        let first = config.listeners.first().cloned().unwrap_or_default();
        config.listeners = vec![ListenerConfig {
            name: "test".into(),
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            ..first
        }];
        if let Err(e) = config.validate() {
            panic!("test configuration rejected by the broker: {e}");
        }
        let server = Server::bind_with_store(config, store, snapshot)
            .await
            .unwrap_or_else(|e| panic!("Server::bind_with_store: {e}"));
        TestBroker::serve(server)
    }

    fn serve(server: Server) -> TestBroker {
        let addrs = server.local_addrs();
        let addr = addrs[0];
        let metrics = server.metrics_addr();
        let broker = server.broker();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(server.run(shutdown.clone()));
        TestBroker {
            addr,
            addrs,
            metrics,
            broker,
            shutdown,
            task: Some(task),
        }
    }

    /// The shared broker state, e.g. for a plugin hot reload
    /// (`cauldron::server::reload_plugins`) or to read counters.
    pub fn broker(&self) -> Arc<Broker> {
        Arc::clone(&self.broker)
    }

    /// A broker on `Config::default()`.
    pub async fn start_default() -> TestBroker {
        TestBroker::start(Config::default()).await
    }

    /// Graceful shutdown: cancels the token and waits for `Server::run` to
    /// return, failing the test if it errs, panics or hangs.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            match tokio::time::timeout(STOP_TIMEOUT, task).await {
                Err(_) => panic!("the server did not stop within {STOP_TIMEOUT:?}"),
                Ok(Err(join)) => panic!("the server task panicked: {join}"),
                Ok(Ok(Err(e))) => panic!("the server returned an error: {e}"),
                Ok(Ok(Ok(()))) => {}
            }
        }
    }
}

impl Drop for TestBroker {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}
