//! The plugin set's lifecycle: hot reload swaps the chain under connected clients, a
//! reload that fails keeps the running chain, and a bad plugin stops the start with an
//! error naming it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use cauldron::config::PluginConfig;
use cauldron::server::{Server, reload_plugins};
use integration::packets::{self, Publish};
use integration::plugins::{API_KEYS_WASM, FIXTURE_PASSTHROUGH_WASM, REWRITE_WASM};
use integration::raw::Next;
use integration::{Config, QUIET, RawClient, TestBroker};
use serde_json::json;

use super::{plugin, start};

/// rewrite mapping `legacy/` to `v2/`.
fn rewrite() -> PluginConfig {
    plugin(
        "rewrite",
        REWRITE_WASM,
        json!({"prefixes": {"legacy/": "v2/"}}),
    )
}

/// A subscriber to `legacy/#` and `v2/#`, and a publisher.
async fn clients(b: &TestBroker) -> (RawClient, RawClient) {
    let mut sub = RawClient::connect_v5(b.addr, "sub", Default::default())
        .await
        .0;
    assert_eq!(
        sub.subscribe_with(&[("legacy/#", 1), ("v2/#", 1)], Default::default())
            .await,
        vec![1, 1]
    );
    let publisher = RawClient::connect_v5(b.addr, "pub", Default::default())
        .await
        .0;
    (sub, publisher)
}

/// Publishes on `topic` and returns the topic the subscriber got it on.
async fn delivered_topic(c: &mut RawClient, sub: &mut RawClient, topic: &str) -> String {
    let code = c.publish(Publish::new(topic, b"x").qos(1, 0)).await;
    assert_eq!(code, 0x00, "publish on {topic} accepted");
    let p = sub.recv_publish_acked().await;
    sub.expect_no_packet(QUIET).await;
    p.topic
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_reload_swaps_the_chain_without_disconnecting_clients() {
    // Issue 3: "Hot reload ... reloads the plugin set and its config atomically without
    // dropping connections". passthrough → rewrite under a connected subscriber and
    // publisher: the same connections see the new behaviour at once.
    let b = start(vec![plugin(
        "passthrough",
        FIXTURE_PASSTHROUGH_WASM,
        json!({}),
    )])
    .await;
    let (mut sub, mut c) = clients(&b).await;
    assert_eq!(
        delivered_topic(&mut c, &mut sub, "legacy/a").await,
        "legacy/a"
    );

    reload_plugins(&b.broker(), &[rewrite()])
        .await
        .unwrap_or_else(|e| panic!("reload failed: {e}"));
    assert_eq!(b.broker().plugins().names(), vec!["rewrite".to_owned()]);

    assert_eq!(
        delivered_topic(&mut c, &mut sub, "legacy/b").await,
        "v2/b",
        "the new chain applies to the already connected clients"
    );
    c.ping().await;
    sub.ping().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_reload_keeps_the_running_chain() {
    // Issue 3: "a new set that fails to load leaves the old one running and says why".
    // The new set's first plugin is fine and its second is missing: nothing of it is
    // applied, the error names the missing plugin, and rewrite keeps working.
    let b = start(vec![rewrite()]).await;
    let (mut sub, mut c) = clients(&b).await;
    let new_set = [
        plugin("passthrough", FIXTURE_PASSTHROUGH_WASM, json!({})),
        plugin("phantom", "/nonexistent/ghost.wasm", json!({})),
    ];
    let err = match reload_plugins(&b.broker(), &new_set).await {
        Ok(()) => panic!("a reload with a missing plugin must fail"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("phantom"), "error names the plugin: {err}");
    assert_eq!(b.broker().plugins().names(), vec!["rewrite".to_owned()]);
    assert_eq!(
        delivered_topic(&mut c, &mut sub, "legacy/c").await,
        "v2/c",
        "the old chain still runs"
    );
}

/// `Server::bind` with this chain must fail; returns the error's Display.
async fn bind_error(chain: Vec<PluginConfig>) -> String {
    let mut config = Config::default();
    config.listeners[0].bind = SocketAddr::from(([127, 0, 0, 1], 0));
    config.storage = cauldron::config::StorageConfig::memory();
    config.plugins = chain;
    config
        .validate()
        .unwrap_or_else(|e| panic!("config rejected: {e}"));
    match Server::bind(config).await {
        Ok(_) => panic!("Server::bind must fail for a bad plugin"),
        Err(e) => e.to_string(),
    }
}

/// A file in the temp directory with these bytes, unique to this process and `name`.
fn temp_file(name: &str, bytes: &[u8]) -> PathBuf {
    let path = std::env::temp_dir().join(format!("cauldron-it-{}-{name}", std::process::id()));
    std::fs::write(&path, bytes).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_plugin_file_stops_the_start_naming_the_plugin() {
    // Issue 3: "a bad file ... stops the start with a clear error".
    let err = bind_error(vec![plugin(
        "phantom",
        "/nonexistent/ghost.wasm",
        json!({}),
    )])
    .await;
    assert!(
        err.contains("phantom") && err.contains("/nonexistent/ghost.wasm"),
        "error names the plugin and its path: {err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_component_files_stop_the_start_naming_the_plugin() {
    // Issue 3: "a bad file ... stops the start with a clear error": text, and a valid
    // core module that is not a component.
    let text = temp_file("text.wasm", b"this is not wasm");
    let core = temp_file("core.wasm", b"\0asm\x01\0\0\0");
    for (name, path) in [("bad-text", &text), ("bad-module", &core)] {
        let p = PluginConfig::new(name, path.clone());
        let err = bind_error(vec![p]).await;
        assert!(err.contains(name), "error names plugin `{name}`: {err}");
        assert!(
            err.contains("component"),
            "error says it is not a component: {err}"
        );
    }
    for path in [text, core] {
        std::fs::remove_file(path).ok();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_error_stops_the_start_with_the_plugins_message() {
    // Issue 3: "init(config) ... an error fails the load with the plugin's message".
    // api-keys refuses unknown config keys (`deny_unknown_fields`).
    let p = plugin("authn", API_KEYS_WASM, json!({"kees": []}));
    let err = bind_error(vec![p]).await;
    assert!(
        err.contains("authn") && err.contains("kees"),
        "error names the plugin and carries its message: {err}"
    );
}

/// Reads `$SYS` values until `done` holds (or 5 s pass), then the rest of that round
/// (published together, so it follows within moments); the latest value wins.
async fn read_sys(
    sys: &mut RawClient,
    done: impl Fn(&HashMap<String, String>) -> bool,
) -> HashMap<String, String> {
    let mut seen = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut quiet_after_done = false;
    while Instant::now() < deadline {
        match sys.next(Duration::from_millis(300)).await {
            Next::Packet(f, body) => {
                let m = packets::parse_publish(f, &body, false);
                seen.insert(m.topic.clone(), m.payload_str().to_string());
            }
            _ if quiet_after_done => break,
            _ => {}
        }
        quiet_after_done = done(&seen);
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_hook_counters_are_published_on_sys() {
    // Issue 3: "Per plugin and hook: counters of calls, decisions, failures, timeouts and
    // latency, visible in the logs and `$SYS`".
    super::warm_cache().await;
    let mut config = Config::default();
    config.plugin_host.cache_dir = Some(super::cache_dir().into());
    config.plugins = vec![plugin("passthrough", FIXTURE_PASSTHROUGH_WASM, json!({}))];
    config.sys.enabled = true;
    config.sys.interval_secs = 1;
    let b = TestBroker::start(config).await;
    let mut p = RawClient::connect_v311(b.addr, "counted").await;
    for _ in 0..3 {
        p.publish(Publish::new("counted/t", b"x").qos(1, 0)).await;
    }
    let base = "$SYS/broker/plugins/passthrough";
    let key = |k: &str| format!("{base}/on-publish/{k}");
    let mut sys = RawClient::connect_v311(b.addr, "sys-reader").await;
    sys.subscribe("$SYS/broker/plugins/#", 0).await;
    // Values from before the three messages may come first (retained); wait for fresh ones.
    let seen = read_sys(&mut sys, |seen| {
        seen.get(&key("calls")).map(String::as_str) == Some("3")
    })
    .await;
    let value = |k: &str| seen.get(k).map(String::as_str);
    assert_eq!(value(&key("calls")), Some("3"), "{seen:#?}");
    assert_eq!(value(&key("continue")), Some("3"), "{seen:#?}");
    assert_eq!(value(&key("failures")), Some("0"), "{seen:#?}");
    assert_eq!(value(&key("timeouts")), Some("0"), "{seen:#?}");
    assert_eq!(value(&format!("{base}/failed")), Some("false"), "{seen:#?}");
    for latency in ["latency/p50_us", "latency/p99_us", "latency/mean_ns"] {
        let n: u64 = value(&key(latency))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{latency} is a number: {seen:#?}"));
        assert!(n > 0, "{latency} is positive after three calls: {seen:#?}");
    }
}
