//! WebAssembly plugins (issue 3) through real MQTT clients: the example plugins
//! (api-keys, tenant-isolation, rewrite, rate-limit) and the misbehaving fixtures (spin,
//! memory hog, trap, invalid answer) loaded by the in-process broker from the components
//! `tests/build.rs` builds, plus hot reload and load errors.
//!
//! Each test names the statement of issue 3 it checks. The helpers here build plugin
//! configs and read the per-plugin counters; the submodules hold the tests.

mod access;
mod failures;
mod lifecycle;
mod messages;
mod sandbox;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use cauldron::config::{FailurePolicy, PluginConfig};
use cauldron::plugin::{Hook, HookStats, NoPublisher, PluginChain, PluginStats};
use integration::packets::Connect;
use integration::plugins::{
    API_KEYS_WASM, FIXTURE_INVALID_ANSWER_WASM, FIXTURE_MEMORY_HOG_WASM, FIXTURE_PASSTHROUGH_WASM,
    FIXTURE_SPIN_WASM, FIXTURE_TRAP_WASM, RATE_LIMIT_WASM, REWRITE_WASM, TENANT_ISOLATION_WASM,
};
use integration::{Config, RawClient, TestBroker};
use serde_json::Value;
use tokio::sync::OnceCell;

/// A margin for "within its deadline" on a machine shared with compilers.
const SLACK: Duration = Duration::from_millis(1000);

/// `[[plugins]]` entry `name` loading `wasm` with this config table and one instance
/// (so that re-instantiation is observable; tests that need concurrency raise it).
pub(crate) fn plugin(name: &str, wasm: &str, config: Value) -> PluginConfig {
    let mut p = PluginConfig::new(name, wasm);
    p.config = match config {
        Value::Object(map) => map,
        other => panic!("plugin config must be a JSON object, got {other}"),
    };
    p.instances = Some(1);
    p
}

/// The same entry with every hook's `on_error` set to `policy`.
fn with_policy(mut p: PluginConfig, policy: FailurePolicy) -> PluginConfig {
    p.on_error.connect = policy;
    p.on_error.subscribe = policy;
    p.on_error.publish = policy;
    p
}

/// Every (configured name, component) the tests load. Precompiled artefacts are keyed
/// by both, so [`warm_cache`] compiles each pair once.
const LOADED: &[(&str, &str)] = &[
    ("api-keys", API_KEYS_WASM),
    ("keys-a", API_KEYS_WASM),
    ("keys-b", API_KEYS_WASM),
    ("tenant-isolation", TENANT_ISOLATION_WASM),
    ("rewrite", REWRITE_WASM),
    ("rate-limit", RATE_LIMIT_WASM),
    ("spin", FIXTURE_SPIN_WASM),
    ("hog", FIXTURE_MEMORY_HOG_WASM),
    ("trap", FIXTURE_TRAP_WASM),
    ("invalid", FIXTURE_INVALID_ANSWER_WASM),
    ("passthrough", FIXTURE_PASSTHROUGH_WASM),
];

/// The precompiled-artefact cache (`[plugin_host] cache_dir`) the tests share, so that
/// each component is compiled once rather than once per test.
pub(crate) fn cache_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("plugin-cache")
}

/// Fills [`cache_dir`] once per test process, before any broker reads it: concurrent
/// first writes of one artefact are left to a single task.
pub(crate) async fn warm_cache() {
    static WARM: OnceCell<()> = OnceCell::const_new();
    WARM.get_or_init(|| async {
        let dir = cache_dir();
        for (name, wasm) in LOADED {
            let mut p = PluginConfig::new(*name, *wasm);
            p.instances = Some(1);
            // The artefact is written right after compiling, before `init` (which may
            // refuse the empty config); a real failure shows in the test that loads it.
            let _ = PluginChain::load_with_cache(&[p], Some(&dir), Arc::new(NoPublisher)).await;
        }
    })
    .await;
}

/// A broker on the default config with this plugin chain.
async fn start(chain: Vec<PluginConfig>) -> TestBroker {
    warm_cache().await;
    let mut config = Config::default();
    config.plugin_host.cache_dir = Some(cache_dir().into());
    config.plugins = chain;
    TestBroker::start(config).await
}

/// The counters of `plugin` in the running chain.
fn plugin_stats(b: &TestBroker, plugin: &str) -> PluginStats {
    b.broker()
        .plugins()
        .stats()
        .into_iter()
        .find(|s| s.plugin == plugin)
        .unwrap_or_else(|| panic!("no plugin `{plugin}` in the running chain"))
}

/// The counters of `hook` of `plugin` in the running chain.
fn hook_stats(b: &TestBroker, plugin: &str, hook: Hook) -> HookStats {
    plugin_stats(b, plugin)
        .hooks
        .into_iter()
        .find(|h| h.hook == hook)
        .unwrap_or_else(|| panic!("plugin `{plugin}` did not declare {hook}"))
}

/// An MQTT 5 client connected with this user name and password, CONNACK asserted 0.
async fn v5_with_password(b: &TestBroker, id: &str, user: &str, password: &str) -> RawClient {
    let connect = Connect::v5(id).credentials(user, password.as_bytes());
    RawClient::connect_with(b.addr, &connect).await.0
}

/// An MQTT 5 client connected with a user name and no password, CONNACK asserted 0.
async fn v5_with_username(b: &TestBroker, id: &str, user: &str) -> RawClient {
    let mut connect = Connect::v5(id);
    connect.username = Some(user.to_owned());
    RawClient::connect_with(b.addr, &connect).await.0
}
