//! The `[[plugins]]` chain and the `[plugin_host]` section: which WebAssembly plugins to
//! load, in which order, with which limits and failure policies.
//!
//! Plain values only; the `plugin` module decides what they mean.

use std::path::PathBuf;

use figment::value::magic::RelativePathBuf;
use serde::{Deserialize, Serialize};

use super::validate::{Violation, at_least, violation, within};

/// Settings shared by every plugin.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PluginHostConfig {
    /// Directory for precompiled plugin artefacts (`*.cwasm`), so that a restart skips
    /// compilation. `None` compiles every plugin at every start. Relative paths are
    /// relative to the config file.
    pub cache_dir: Option<RelativePathBuf>,
}

impl PluginHostConfig {
    /// The cache directory, resolved against the config file's directory.
    pub fn cache_path(&self) -> Option<PathBuf> {
        self.cache_dir.as_ref().map(RelativePathBuf::relative)
    }
}

/// One plugin of the chain (`[[plugins]]`, in chain order).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginConfig {
    /// Unique, non-empty name, used in logs, stats and errors.
    pub name: String,
    /// The component file (`.wasm`); relative paths are relative to the config file.
    pub path: RelativePathBuf,
    /// The plugin's own settings, handed to its `init` as JSON text.
    #[serde(default)]
    pub config: serde_json::Map<String, serde_json::Value>,
    /// Deadline of one hook call in milliseconds (1..=60000).
    #[serde(default = "default_hook_timeout_ms")]
    pub hook_timeout_ms: u64,
    /// Linear memory cap of one instance in MiB (1..=4096).
    #[serde(default = "default_memory_limit_mib")]
    pub memory_limit_mib: u32,
    /// Number of instances that serve calls concurrently (>= 1); `None` means one per CPU.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instances: Option<usize>,
    /// What a failed call (trap, deadline, invalid answer) decides, per hook.
    #[serde(default)]
    pub on_error: OnError,
    /// Consecutive failed calls after which the plugin is marked failed and no longer
    /// called; its failure policy then applies directly (>= 1).
    #[serde(default = "default_max_consecutive_failures")]
    pub max_consecutive_failures: u32,
    /// Most keys in the plugin's key-value store (>= 1).
    #[serde(default = "default_kv_max_keys")]
    pub kv_max_keys: usize,
    /// Total size of the key-value store (keys plus values), in bytes (>= 1).
    #[serde(default = "default_kv_max_bytes")]
    pub kv_max_bytes: usize,
}

impl PluginConfig {
    /// A plugin with every optional key at its default.
    pub fn new(name: impl Into<String>, path: impl Into<PathBuf>) -> Self {
        Self {
            name: name.into(),
            path: RelativePathBuf::from(path.into()),
            config: serde_json::Map::new(),
            hook_timeout_ms: default_hook_timeout_ms(),
            memory_limit_mib: default_memory_limit_mib(),
            instances: None,
            on_error: OnError::default(),
            max_consecutive_failures: default_max_consecutive_failures(),
            kv_max_keys: default_kv_max_keys(),
            kv_max_bytes: default_kv_max_bytes(),
        }
    }

    /// The component path, resolved against the config file's directory.
    pub fn wasm_path(&self) -> PathBuf {
        self.path.relative()
    }

    /// The pool size: `instances`, or the number of CPUs (at least 1).
    pub fn instance_count(&self) -> usize {
        self.instances.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
        })
    }
}

/// The failure policy of each decision hook. `on-disconnect` is a notification and has none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OnError {
    /// `on-connect`; default `deny` (fail closed).
    pub connect: FailurePolicy,
    /// `on-subscribe`; default `deny` (fail closed).
    pub subscribe: FailurePolicy,
    /// `on-publish`; default `allow` (the message continues unchanged).
    pub publish: FailurePolicy,
}

impl Default for OnError {
    fn default() -> Self {
        Self {
            connect: FailurePolicy::Deny,
            subscribe: FailurePolicy::Deny,
            publish: FailurePolicy::Allow,
        }
    }
}

/// What a failed plugin call decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FailurePolicy {
    /// Refuse: deny the connection or subscription, drop the message.
    Deny,
    /// Accept: allow the connection (no attributes) or the subscription at the requested
    /// QoS; the message continues unchanged.
    Allow,
    /// No opinion: the next plugin in the chain decides.
    Skip,
}

fn default_hook_timeout_ms() -> u64 {
    50
}
fn default_memory_limit_mib() -> u32 {
    32
}
fn default_max_consecutive_failures() -> u32 {
    5
}
fn default_kv_max_keys() -> usize {
    10_000
}
fn default_kv_max_bytes() -> usize {
    16 << 20
}

/// Checks names, ranges and pool sizes of the chain.
pub(super) fn check_plugins(plugins: &[PluginConfig]) -> Result<(), Violation> {
    for (i, p) in plugins.iter().enumerate() {
        let key = |field: &str| format!("plugins.{i}.{field}");
        if p.name.trim().is_empty() {
            return Err(violation(key("name"), "must not be empty"));
        }
        if !p
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            // The name appears in `$SYS` topics, metric labels and `plugin:NAME` chain entries.
            return Err(violation(
                key("name"),
                format!(
                    "`{}` may contain only ASCII letters, digits, `-`, `_` and `.`",
                    p.name
                ),
            ));
        }
        if let Some(j) = plugins[..i].iter().position(|e| e.name == p.name) {
            return Err(violation(
                key("name"),
                format!("duplicate plugin name `{}` (also plugins.{j})", p.name),
            ));
        }
        if p.path.original().as_os_str().is_empty() {
            return Err(violation(key("path"), "must not be empty"));
        }
        within(&key("hook_timeout_ms"), p.hook_timeout_ms, 1, 60_000)?;
        within(&key("memory_limit_mib"), p.memory_limit_mib, 1, 4096)?;
        if let Some(n) = p.instances {
            within(&key("instances"), n, 1, 1024)?;
        }
        at_least(
            &key("max_consecutive_failures"),
            p.max_consecutive_failures,
            1,
        )?;
        at_least(&key("kv_max_keys"), p.kv_max_keys, 1)?;
        at_least(&key("kv_max_bytes"), p.kv_max_bytes, 1)?;
    }
    Ok(())
}
