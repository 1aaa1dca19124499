//! Cost of one plugin hook call through [`PluginChain`], measured with criterion, plus a
//! manual loop that reports the median and p99 of single calls (criterion reports means
//! and medians of batches only).
//!
//! Run: `cargo bench -p cauldron --bench plugin_hooks`. With `PLUGIN_HOOKS_CALLS=N` in
//! the environment it makes exactly N prepared-client passthrough `on-publish` calls
//! (`on-publish-batch` calls of M messages with `PLUGIN_HOOKS_BATCH=M`) and exits, for
//! repeatable instruction counts:
//! `PLUGIN_HOOKS_CALLS=20000 valgrind --tool=callgrind <bench binary> --bench` (the
//! binary is the `plugin_hooks-*` file under `target/release/deps`; run it from `broker/`).
//! The passthrough fixture
//! (`plugins/fixture-passthrough`) and the scripted test plugin are built on first use
//! (`CAULDRON_FIXTURE_PASSTHROUGH_WASM` / `CAULDRON_SCRIPTED_WASM` point at prebuilt
//! files instead).

use std::hint::black_box;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use cauldron::message::{Message, MessageProperties};
use cauldron::plugin::{ClientInfo, HookClient, NoPublisher, PluginChain, PluginConfig};
use cauldron::topic::TopicName;
use cauldron::types::{ClientId, ProtocolVersion, QoS};
use criterion::Criterion;

#[path = "../src/plugin/tests/fixture.rs"]
#[allow(dead_code, clippy::unwrap_used)]
mod fixture;

const MANUAL_CALLS: usize = 100_000;

fn client() -> ClientInfo {
    ClientInfo {
        client_id: ClientId::new("bench-client"),
        username: Some("bench".to_owned()),
        protocol: ProtocolVersion::V5,
        remote_addr: SocketAddr::from(([127, 0, 0, 1], 50_000)),
        listener: "tcp".into(),
        tls_peer: None,
        keep_alive: 60,
        clean_start: true,
        will: None,
        attributes: Vec::new(),
    }
}

fn message(payload_bytes: usize) -> Message {
    Message {
        topic: TopicName::new("sensors/room1/temperature").expect("valid topic"),
        payload: Bytes::from(vec![b'x'; payload_bytes]),
        qos: QoS::AtLeastOnce,
        retain: false,
        properties: MessageProperties::default(),
        expires_at: None,
        publisher: Some(ClientId::new("bench-client")),
    }
}

fn load(runtime: &tokio::runtime::Runtime, mut config: PluginConfig) -> PluginChain {
    config.instances = Some(1);
    runtime
        .block_on(PluginChain::load(&[config], Arc::new(NoPublisher)))
        .expect("plugin loads")
}

/// Times `MANUAL_CALLS` single calls and prints median, p99 and p99.9.
fn percentiles<F: std::future::Future>(
    runtime: &tokio::runtime::Runtime,
    label: &str,
    mut call: impl FnMut() -> F,
) {
    let mut samples = Vec::with_capacity(MANUAL_CALLS);
    runtime.block_on(async {
        for _ in 0..MANUAL_CALLS / 10 {
            black_box(call().await); // warm-up
        }
        for _ in 0..MANUAL_CALLS {
            let started = Instant::now();
            black_box(call().await);
            samples.push(started.elapsed());
        }
    });
    samples.sort_unstable();
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    println!(
        "{label}: {MANUAL_CALLS} calls, median {:?}, p99 {:?}, p99.9 {:?}, max {:?}",
        at(0.5),
        at(0.99),
        at(0.999),
        samples[samples.len() - 1]
    );
}

/// `iters` calls inside one `block_on`, so the runtime entry is not measured.
fn timed<F: std::future::Future>(
    runtime: &tokio::runtime::Runtime,
    iters: u64,
    mut call: impl FnMut() -> F,
) -> Duration {
    runtime.block_on(async {
        let started = Instant::now();
        for _ in 0..iters {
            black_box(call().await);
        }
        started.elapsed()
    })
}

/// A current-thread runtime and the passthrough fixture loaded with one instance.
fn runtime_and_passthrough() -> (tokio::runtime::Runtime, PluginChain) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let passthrough = load(
        &runtime,
        PluginConfig::new(
            "passthrough",
            fixture::workspace_plugin_wasm("fixture-passthrough"),
        ),
    );
    (runtime, passthrough)
}

fn hooks(c: &mut Criterion) {
    let (runtime, passthrough) = runtime_and_passthrough();
    let mut scripted = PluginConfig::new("scripted", fixture::scripted_wasm());
    scripted.config = serde_json::json!({"subscribe": "none", "hooks": ["subscribe"]})
        .as_object()
        .cloned()
        .unwrap_or_default();
    let trivial = load(&runtime, scripted);
    let none = PluginChain::empty();
    let who = client();
    let small = message(64);
    let large = message(16 * 1024);

    let mut group = c.benchmark_group("plugin_hooks");
    group.bench_function("on_publish/no_plugin/64B", |b| {
        b.iter_custom(|n| timed(&runtime, n, || none.on_publish(&who, small.clone())))
    });
    group.bench_function("on_publish/passthrough/64B", |b| {
        b.iter_custom(|n| timed(&runtime, n, || passthrough.on_publish(&who, small.clone())))
    });
    let prepared = HookClient::new(&who);
    group.bench_function("on_publish/passthrough/64B/client_prepared", |b| {
        b.iter_custom(|n| {
            timed(&runtime, n, || {
                passthrough.on_publish_with(&prepared, small.clone())
            })
        })
    });
    for size in [4usize, 16, 64] {
        let batch: Vec<Message> = (0..size).map(|_| small.clone()).collect();
        // Reported per batch: divide by the size for the cost per message.
        group.bench_function(format!("on_publish_batch/passthrough/64B/x{size}"), |b| {
            b.iter_custom(|n| {
                timed(&runtime, n, || {
                    passthrough.on_publish_batch(&prepared, batch.clone())
                })
            })
        });
    }
    group.bench_function("on_publish/passthrough/16KiB", |b| {
        b.iter_custom(|n| timed(&runtime, n, || passthrough.on_publish(&who, large.clone())))
    });
    group.bench_function("on_subscribe/no_opinion", |b| {
        b.iter_custom(|n| {
            timed(&runtime, n, || {
                trivial.on_subscribe(&who, "sensors/+/temperature", QoS::AtLeastOnce)
            })
        })
    });
    group.finish();

    percentiles(&runtime, "on_publish passthrough 64B", || {
        passthrough.on_publish(&who, small.clone())
    });
    percentiles(
        &runtime,
        "on_publish passthrough 64B, client prepared",
        || passthrough.on_publish_with(&prepared, small.clone()),
    );
    let batch16: Vec<Message> = (0..16).map(|_| small.clone()).collect();
    percentiles(
        &runtime,
        "on_publish_batch passthrough 16 x 64B (per batch)",
        || passthrough.on_publish_batch(&prepared, batch16.clone()),
    );
    percentiles(&runtime, "on_subscribe no-opinion", || {
        trivial.on_subscribe(&who, "sensors/+/temperature", QoS::AtLeastOnce)
    });
    percentiles(&runtime, "on_publish no plugin 64B", || {
        none.on_publish(&who, small.clone())
    });
}

/// `PLUGIN_HOOKS_CALLS=N`: N prepared-client passthrough calls, nothing else.
fn counted_calls(calls: u64) {
    let (runtime, passthrough) = runtime_and_passthrough();
    let prepared = HookClient::new(&client());
    let small = message(64);
    let batch: usize = std::env::var("PLUGIN_HOOKS_BATCH")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1);
    let elapsed = if batch > 1 {
        let messages: Vec<Message> = (0..batch).map(|_| small.clone()).collect();
        timed(&runtime, calls, || {
            passthrough.on_publish_batch(&prepared, messages.clone())
        })
    } else {
        timed(&runtime, calls, || {
            passthrough.on_publish_with(&prepared, small.clone())
        })
    };
    println!("{calls} prepared passthrough calls of {batch} messages in {elapsed:?}");
}

mod entry {
    #![allow(missing_docs)] // criterion_group! makes an undocumented pub fn
    criterion::criterion_group!(benches, super::hooks);
}

fn main() {
    match std::env::var("PLUGIN_HOOKS_CALLS").ok().map(|n| n.parse()) {
        Some(Ok(calls)) => counted_calls(calls),
        Some(Err(e)) => eprintln!("PLUGIN_HOOKS_CALLS must be a count: {e}"),
        None => {
            entry::benches();
            Criterion::default().configure_from_args().final_summary();
        }
    }
}
