//! One loaded plugin: compiling and checking it, its instance pool, each hook call with
//! its deadline, the failure bookkeeping and the failure policies.
//!
//! A call that traps, runs out of time or memory, or answers invalidly discards its
//! instance, counts one failure and returns the hook's policy outcome. After
//! `max_consecutive_failures` failures in a row the plugin is marked failed and its
//! policy answers without calling it (until the chain is reloaded).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use super::bindings::{self, HookAnswer, HookCall, wit};
use super::chain::HookClient;
use super::convert::{self, Invalid};
use super::engine;
use super::error::source;
use super::host::{HostState, PluginShared};
use super::interface::{declared_hooks, pre_instantiate};
use super::kv::KvStore;
use super::pool::{Instance, Pool, Template};
use super::stats::{Counters, Decision, FailureKind, PluginStats};
use super::{ConnectOutcome, Error, FailurePolicy, Hook, OnError, PluginConfig, SubscribeOutcome};
use crate::message::Message;
use crate::types::{QoS, ReasonCode};

/// Extra time the tokio timeout allows past the epoch deadline before giving up on a
/// call that somehow did not trap (a safety net; the epoch deadline should fire first).
const SAFETY_GRACE: Duration = Duration::from_millis(20);

/// A plugin ready to be called.
pub(super) struct LoadedPlugin {
    pub(super) name: Arc<str>,
    template: Template,
    pool: Pool,
    declared: u8,
    on_error: OnError,
    max_consecutive_failures: u32,
    consecutive_failures: AtomicU32,
    memory_limit_mib: u32,
    counters: Counters,
}

/// What one plugin's `on-publish` changed about a message; `None` where one is
/// expected means it continues unchanged. The caller keeps the message: it is lent to
/// the call, not moved through it (a message is 248 bytes, and moving it in and out of
/// every layer of the call's future showed in the profile).
pub(super) enum PublishChange {
    /// Continue with this message instead (boxed: rewrites are the rare case).
    Replaced(Box<Message>),
    /// Drop the message.
    Dropped {
        /// MQTT 5 reason code.
        reason_code: ReasonCode,
        /// Reason string.
        reason: String,
    },
}

/// The result of one call that did not fail: the validated answer and the messages
/// the plugin published meanwhile.
pub(super) type Answered<T> = (T, Vec<Message>);

/// Validates one `on-publish` decision about `message` (sent with `sent_expiry`): `None`
/// to continue with it unchanged.
fn publish_change(
    decision: wit::PublishDecision,
    sent_expiry: Option<u32>,
    message: &Message,
) -> Result<Option<PublishChange>, Invalid> {
    match decision {
        wit::PublishDecision::Continue => Ok(None),
        wit::PublishDecision::Replace(m) => {
            let new = convert::validated_message(m, Some((message, sent_expiry)))?;
            Ok(Some(PublishChange::Replaced(Box::new(new))))
        }
        wit::PublishDecision::Drop(r) => {
            let (reason_code, reason) = convert::drop_refusal(r)?;
            Ok(Some(PublishChange::Dropped {
                reason_code,
                reason,
            }))
        }
    }
}

impl LoadedPlugin {
    /// Compiles, checks, instantiates `instances` copies and calls `init` on each.
    pub(super) async fn load(cfg: &PluginConfig, cache_dir: Option<&Path>) -> Result<Self, Error> {
        let host = engine::host()?;
        let component = engine::compile(host, &cfg.name, &cfg.wasm_path(), cache_dir).await?;
        let pre = pre_instantiate(host, &cfg.name, &component)?;
        let name: Arc<str> = Arc::from(cfg.name.as_str());
        let memory_limit_bytes =
            usize::try_from(u64::from(cfg.memory_limit_mib) << 20).unwrap_or(usize::MAX);
        let template = Template {
            pre,
            shared: Arc::new(PluginShared {
                name: name.clone(),
                kv: KvStore::new(cfg.kv_max_keys, cfg.kv_max_bytes),
            }),
            config_json: serde_json::Value::Object(cfg.config.clone()).to_string(),
            memory_limit_bytes,
            hook_timeout: Duration::from_millis(cfg.hook_timeout_ms),
        };
        let mut instances = Vec::new();
        for _ in 0..cfg.instance_count().max(1) {
            instances.push(template.instantiate().await?);
        }
        let declared = declared_hooks(&cfg.name, &mut instances[0]).await?;
        tracing::info!(plugin = %name, instances = instances.len(), hooks = ?Hook::ALL.iter().filter(|h| declared & h.bit() != 0).collect::<Vec<_>>(), "plugin loaded");
        Ok(Self {
            name,
            template,
            pool: Pool::new(instances),
            declared,
            on_error: cfg.on_error,
            max_consecutive_failures: cfg.max_consecutive_failures,
            consecutive_failures: AtomicU32::new(0),
            memory_limit_mib: cfg.memory_limit_mib,
            counters: Counters::default(),
        })
    }

    /// True when the plugin declared `hook`.
    pub(super) fn declares(&self, hook: Hook) -> bool {
        self.declared & hook.bit() != 0
    }

    /// The declared hooks as a bit mask (bit = `Hook as u8`).
    pub(super) fn declared_mask(&self) -> u8 {
        self.declared
    }

    pub(super) fn stats(&self) -> PluginStats {
        let mut stats = self.counters.snapshot(&self.name, |h| self.declares(h));
        stats.kv_keys = self.template.shared.kv.len();
        stats
    }

    /// Number of instances.
    pub(super) fn instances(&self) -> usize {
        self.pool.len()
    }

    pub(super) async fn connect(
        &self,
        client: &HookClient,
        creds: wit::Credentials<'_>,
    ) -> Answered<ConnectOutcome> {
        let attributes = convert::attribute_params(&client.record);
        let call = HookCall::Connect(convert::client_param(&client.record, &attributes), creds);
        let answer = self
            .call(Hook::Connect, client, call, |answer| match answer {
                HookAnswer::Connect(d) => convert::connect_decision(d),
                _ => Err(Invalid::WrongHook),
            })
            .await;
        match answer {
            Some((outcome, published)) => {
                self.counters.record_decision(
                    Hook::Connect,
                    match &outcome {
                        ConnectOutcome::Allow { .. } => Decision::Allow,
                        ConnectOutcome::Deny { .. } => Decision::Deny,
                        ConnectOutcome::NoOpinion => Decision::NoOpinion,
                    },
                );
                (outcome, published)
            }
            None => (self.connect_policy(), Vec::new()),
        }
    }

    fn connect_policy(&self) -> ConnectOutcome {
        match self.on_error.connect {
            FailurePolicy::Deny => ConnectOutcome::Deny {
                reason_code: ReasonCode::SERVER_UNAVAILABLE,
                reason: "plugin unavailable".to_owned(),
            },
            FailurePolicy::Allow => ConnectOutcome::Allow {
                attributes: Vec::new(),
            },
            FailurePolicy::Skip => ConnectOutcome::NoOpinion,
        }
    }

    pub(super) async fn subscribe(
        &self,
        client: &HookClient,
        filter: &str,
        requested: QoS,
    ) -> Answered<SubscribeOutcome> {
        let call = HookCall::Subscribe(client.handle, filter, convert::qos(requested));
        let answer = self
            .call(Hook::Subscribe, client, call, |answer| match answer {
                HookAnswer::Subscribe(d) => convert::subscribe_decision(d, requested),
                _ => Err(Invalid::WrongHook),
            })
            .await;
        match answer {
            Some((outcome, published)) => {
                self.counters.record_decision(
                    Hook::Subscribe,
                    match &outcome {
                        SubscribeOutcome::Allow(_) => Decision::Allow,
                        SubscribeOutcome::Deny { .. } => Decision::Deny,
                        SubscribeOutcome::NoOpinion => Decision::NoOpinion,
                    },
                );
                (outcome, published)
            }
            None => (
                match self.on_error.subscribe {
                    FailurePolicy::Deny => SubscribeOutcome::Deny {
                        reason_code: ReasonCode::UNSPECIFIED_ERROR,
                        reason: "plugin unavailable".to_owned(),
                    },
                    FailurePolicy::Allow => SubscribeOutcome::Allow(requested),
                    FailurePolicy::Skip => SubscribeOutcome::NoOpinion,
                },
                Vec::new(),
            ),
        }
    }

    /// Calls `on-publish` about `message` (and its WIT form `wire`, shared between
    /// plugins while nobody rewrites it).
    pub(super) async fn publish(
        &self,
        client: &HookClient,
        wire: wit::MessageParam<'_>,
        message: &Message,
    ) -> Answered<Option<PublishChange>> {
        let sent_expiry = convert::expiry_secs(&wire);
        let call = HookCall::Publish(client.handle, wire);
        let answer = self
            .call_or_failure(Hook::Publish, client, call, |answer| match answer {
                HookAnswer::Publish(decision) => publish_change(decision, sent_expiry, message),
                _ => Err(Invalid::WrongHook),
            })
            .await;
        match answer {
            Ok((change, published)) => {
                self.record_publish(&change);
                (change, published)
            }
            Err(_) => (self.publish_policy(), Vec::new()),
        }
    }

    /// Calls `on-publish-batch` about `messages` (at least two, from one client, in
    /// order), one change per message. A batch call that traps or answers invalidly
    /// counts one failure and each message is then tried alone through
    /// [`Self::publish`], so the failure policy reaches only messages whose own call
    /// fails; after a deadline (or when the plugin is marked failed) the policy applies
    /// to all of them at once rather than after one deadline each.
    pub(super) async fn publish_batch(
        &self,
        client: &HookClient,
        wires: &[wit::MessageParam<'_>],
        messages: &[&Message],
    ) -> Answered<Vec<Option<PublishChange>>> {
        let call = HookCall::PublishBatch(client.handle, wires);
        let answer = self
            .call_or_failure(Hook::Publish, client, call, |answer| match answer {
                HookAnswer::PublishBatch(decisions) if decisions.len() == messages.len() => {
                    decisions
                        .into_iter()
                        .zip(wires.iter().zip(messages))
                        .map(|(decision, (wire, message))| {
                            publish_change(decision, convert::expiry_secs(wire), message)
                        })
                        .collect::<Result<Vec<_>, _>>()
                }
                HookAnswer::PublishBatch(decisions) => Err(Invalid::BatchLength {
                    messages: messages.len(),
                    answered: decisions.len(),
                }),
                _ => Err(Invalid::WrongHook),
            })
            .await;
        match answer {
            Ok((changes, published)) => {
                changes.iter().for_each(|c| self.record_publish(c));
                (changes, published)
            }
            Err(Some(FailureKind::InvalidAnswer | FailureKind::Other)) => {
                let mut changes = Vec::with_capacity(messages.len());
                let mut published = Vec::new();
                for (wire, message) in wires.iter().zip(messages) {
                    // Boxed: this rare path would otherwise put a whole single call's
                    // future inside every batch call's future.
                    let (change, more) =
                        Box::pin(self.publish(client, wire.clone(), message)).await;
                    changes.push(change);
                    published.extend(more);
                }
                (changes, published)
            }
            Err(Some(FailureKind::Timeout) | None) => (
                messages.iter().map(|_| self.publish_policy()).collect(),
                Vec::new(),
            ),
        }
    }

    /// Counts one publish decision.
    fn record_publish(&self, change: &Option<PublishChange>) {
        self.counters.record_decision(
            Hook::Publish,
            match change {
                None => Decision::Continue,
                Some(PublishChange::Replaced(_)) => Decision::Replace,
                Some(PublishChange::Dropped { .. }) => Decision::Drop,
            },
        );
    }

    /// What the failure policy does to a message whose call failed.
    fn publish_policy(&self) -> Option<PublishChange> {
        match self.on_error.publish {
            FailurePolicy::Deny => Some(PublishChange::Dropped {
                reason_code: ReasonCode::UNSPECIFIED_ERROR,
                reason: "plugin unavailable".to_owned(),
            }),
            FailurePolicy::Allow | FailurePolicy::Skip => None,
        }
    }

    pub(super) async fn disconnect(
        &self,
        client: &HookClient,
        reason: wit::DisconnectReason,
    ) -> Vec<Message> {
        let call = HookCall::Disconnect(client.handle, reason);
        let answer = self
            .call(Hook::Disconnect, client, call, |answer| match answer {
                HookAnswer::Disconnect => Ok(()),
                _ => Err(Invalid::WrongHook),
            })
            .await;
        match answer {
            Some(((), published)) => {
                self.counters
                    .record_decision(Hook::Disconnect, Decision::Notified);
                published
            }
            None => Vec::new(),
        }
    }

    /// One call with failure handling: `None` when the plugin is marked failed or the
    /// call failed (counted, instance discarded, warned once by the span).
    async fn call<T>(
        &self,
        hook: Hook,
        client: &HookClient,
        call: HookCall<'_>,
        validate: impl FnOnce(HookAnswer) -> Result<T, Invalid>,
    ) -> Option<Answered<T>> {
        self.call_or_failure(hook, client, call, validate)
            .await
            .ok()
    }

    /// [`Self::call`], telling how it failed: `None` when the plugin is marked failed
    /// and was not called.
    async fn call_or_failure<T>(
        &self,
        hook: Hook,
        client: &HookClient,
        call: HookCall<'_>,
        validate: impl FnOnce(HookAnswer) -> Result<T, Invalid>,
    ) -> Result<Answered<T>, Option<FailureKind>> {
        if self.counters.is_failed() {
            self.counters.record_skipped(hook);
            return Err(None);
        }
        match self.call_once(hook, client, call, validate).await {
            Ok(answered) => {
                self.consecutive_failures.store(0, Ordering::Relaxed);
                Ok(answered)
            }
            Err(error) => {
                // Logged here rather than by a span on every call: spans cost on the
                // per-message path.
                tracing::warn!(plugin = %self.name, hook = hook.as_str(), %error, "plugin call failed");
                Err(Some(self.record_failure(hook, &error)))
            }
        }
    }

    fn record_failure(&self, hook: Hook, error: &Error) -> FailureKind {
        let kind = match error {
            Error::Deadline { .. } => FailureKind::Timeout,
            Error::InvalidAnswer { .. } => FailureKind::InvalidAnswer,
            _ => FailureKind::Other,
        };
        self.counters.record_failure(hook, kind);
        let failures = self.consecutive_failures.fetch_add(1, Ordering::Relaxed) + 1;
        if failures >= self.max_consecutive_failures && self.counters.mark_failed() {
            tracing::warn!(
                plugin = %self.name,
                failures,
                "plugin marked failed after consecutive failures; its on_error policy applies until reload"
            );
        }
        kind
    }

    async fn call_once<T>(
        &self,
        hook: Hook,
        client: &HookClient,
        call: HookCall<'_>,
        validate: impl FnOnce(HookAnswer) -> Result<T, Invalid>,
    ) -> Result<Answered<T>, Error> {
        let mut slot = self.pool.acquire().await;
        if slot.as_ref().is_none_or(|i| i.store.data().in_call) {
            *slot = None;
            // Boxed here and below: instantiation's future is kilobytes, and this rare
            // path would otherwise make every call's future that large (each layer of
            // async fn around a future copies it).
            *slot = Some(Box::pin(self.template.instantiate()).await?);
        }
        let Some(instance) = slot.as_mut() else {
            // invariant: the slot was filled just above.
            return Err(self.trap(hook, wasmtime::format_err!("empty instance slot")));
        };
        let started = Instant::now();
        let result = self.run(instance, client, call, started).await;
        self.counters.record_call(hook, started.elapsed());
        let state = instance.store.data_mut();
        let published = state.take_published();
        let outcome = match result {
            Some(Ok(answer)) => validate(answer).map_err(|invalid| Error::InvalidAnswer {
                plugin: self.name.to_string(),
                hook: hook.as_str(),
                reason: invalid.to_string(),
            }),
            Some(Err(e)) => Err(self.classify(hook, state, e)),
            None => Err(self.deadline(hook)),
        };
        match outcome {
            Ok(answer) => {
                state.in_call = false;
                Ok((answer, published))
            }
            Err(e) => {
                // Replace the instance now rather than on the next (innocent) call.
                *slot = match Box::pin(self.template.instantiate()).await {
                    Ok(fresh) => Some(fresh),
                    Err(error) => {
                        tracing::warn!(plugin = %self.name, %error, "cannot replace a failed instance; retrying on next call");
                        None
                    }
                };
                Err(e)
            }
        }
    }

    /// Runs one call with its epoch deadline and the tokio safety net; `None` when the
    /// safety net fired.
    async fn run(
        &self,
        instance: &mut Instance,
        client: &HookClient,
        call: HookCall<'_>,
        started: Instant,
    ) -> Option<wasmtime::Result<HookAnswer>> {
        let deadline = started + self.template.hook_timeout;
        let state = instance.store.data_mut();
        state.in_call = true;
        state.begin_hook(client.record.clone());
        state.deadline.arm(deadline);
        instance.store.set_epoch_deadline(1);
        // Boxed: wasmtime's call future is kilobytes, and every async fn around it
        // would otherwise copy it as the call's future is built up (measured: 3.7 KB
        // futures, memcpy 18% of a passthrough publish call).
        let invoke = Box::pin(bindings::invoke(
            &instance.bindings,
            &mut instance.store,
            call,
        ));
        let safety_net = tokio::time::Instant::from_std(deadline + SAFETY_GRACE);
        tokio::time::timeout_at(safety_net, invoke).await.ok()
    }

    fn classify(&self, hook: Hook, state: &HostState, e: wasmtime::Error) -> Error {
        if state.deadline.hit {
            self.deadline(hook)
        } else if state.limiter.exceeded {
            Error::MemoryLimit {
                plugin: self.name.to_string(),
                hook: hook.as_str(),
                limit_mib: self.memory_limit_mib,
            }
        } else {
            self.trap(hook, e)
        }
    }

    fn deadline(&self, hook: Hook) -> Error {
        Error::Deadline {
            plugin: self.name.to_string(),
            hook: hook.as_str(),
            timeout_ms: u64::try_from(self.template.hook_timeout.as_millis()).unwrap_or(u64::MAX),
        }
    }

    fn trap(&self, hook: Hook, e: wasmtime::Error) -> Error {
        Error::Trap {
            plugin: self.name.to_string(),
            hook: hook.as_str(),
            source: source(e),
        }
    }
}
