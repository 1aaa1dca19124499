//! Plugin host tests against real components: the scripted plugin (built by
//! `fixture.rs`) and small WAT components for the interface checks.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod chain_tests;
pub(crate) mod fixture;
mod host_tests;
mod limit_tests;
mod load_tests;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use serde_json::{Value, json};

use super::*;
use crate::message::{Message, MessageProperties};
use crate::topic::TopicName;
use crate::types::{ClientId, ProtocolVersion, QoS};

/// Compiled artefacts shared by all tests, so each test skips compilation.
fn cache_dir() -> std::path::PathBuf {
    fixture::fixtures_dir().join("cache")
}

/// The scripted plugin named `name` with this config (see its `src/lib.rs`).
fn scripted(name: &str, config: Value) -> PluginConfig {
    let mut cfg = PluginConfig::new(name, fixture::scripted_wasm());
    cfg.config = config.as_object().cloned().unwrap_or_default();
    cfg.instances = Some(2);
    cfg.hook_timeout_ms = 1_000;
    cfg
}

/// Remembers what plugins published.
#[derive(Default)]
struct Recorder {
    messages: Mutex<Vec<Message>>,
}

impl Recorder {
    fn topics(&self) -> Vec<String> {
        let messages = self.messages.lock().unwrap();
        messages.iter().map(|m| m.topic.to_string()).collect()
    }
}

impl PluginPublisher for Recorder {
    fn publish(&self, message: Message) -> Result<(), String> {
        self.messages.lock().unwrap().push(message);
        Ok(())
    }
}

async fn load(configs: &[PluginConfig]) -> Result<PluginChain, Error> {
    load_recording(configs).await.map(|(chain, _)| chain)
}

async fn load_recording(configs: &[PluginConfig]) -> Result<(PluginChain, Arc<Recorder>), Error> {
    let recorder = Arc::new(Recorder::default());
    let chain = PluginChain::load_with_cache(configs, Some(&cache_dir()), recorder.clone()).await?;
    Ok((chain, recorder))
}

fn client(id: &str) -> ClientInfo {
    ClientInfo {
        client_id: ClientId::new(id),
        username: Some("alice".to_owned()),
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

fn message(topic: &str) -> Message {
    Message {
        topic: TopicName::new(topic).unwrap(),
        payload: Bytes::from_static(b"21.5"),
        qos: QoS::AtLeastOnce,
        retain: false,
        properties: MessageProperties::default(),
        expires_at: None,
        publisher: Some(ClientId::new("pub")),
    }
}

fn continued(outcome: PublishOutcome) -> Message {
    match outcome {
        PublishOutcome::Continue(m) => m,
        other => panic!("expected Continue, got {other:?}"),
    }
}

fn hook_stats(chain: &PluginChain, plugin: usize, hook: Hook) -> HookStats {
    let stats = chain.stats();
    stats[plugin]
        .hooks
        .iter()
        .find(|h| h.hook == hook)
        .cloned()
        .unwrap()
}
