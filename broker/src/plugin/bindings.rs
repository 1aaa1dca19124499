//! Every `bindgen!` call and all WASI wiring: the generated types of
//! `cauldron:plugin@0.4.0`, the linker, the per-store state and the hook calls.
//!
//! A wasmtime upgrade should touch this file only. The generated `Host` traits are
//! one-line adapters to [`HostState`]'s own methods in `host.rs`; nothing here decides
//! policy or knows about the chain.

use wasmtime::component::{HasSelf, Linker, ResourceTable};
use wasmtime::{Engine, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::host::HostState;
use super::output::GuestOutput;

wasmtime::component::bindgen!({
    world: "plugin",
    path: "../wit",
    exports: { default: async },
    ownership: Borrowing { duplicate_if_necessary: true },
});

pub(super) use cauldron::plugin::types as wit;
pub(super) use {Plugin as PluginBindings, PluginPre as PluginBindingsPre};

/// The interface name a plugin must export.
pub(super) const HOOKS_EXPORT: &str = "cauldron:plugin/hooks@0.4.0";
/// The interface names of this package a plugin may import.
pub(super) const SUPPORTED_IMPORTS: [&str; 2] =
    ["cauldron:plugin/host@0.4.0", "cauldron:plugin/types@0.4.0"];
/// The package every plugin must be built against.
pub(super) const PACKAGE: &str = "cauldron:plugin@0.4.0";

/// The linker shared by every plugin: WASI p2 plus `cauldron:plugin/host`.
pub(super) fn linker(engine: &Engine) -> wasmtime::Result<Linker<HostState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    Plugin::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |state| state)?;
    Ok(linker)
}

/// A WASI context with nothing in it: no preopened directories, no network, no
/// environment, no arguments, no stdin. Guest stdout and stderr go to `tracing`.
pub(super) fn empty_wasi(plugin: &std::sync::Arc<str>) -> WasiCtx {
    WasiCtx::builder()
        .stdout(GuestOutput::new(plugin.clone(), "stdout"))
        .stderr(GuestOutput::new(plugin.clone(), "stderr"))
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .build()
}

/// The WASI state inside [`HostState`].
pub(super) struct WasiState {
    pub(super) ctx: WasiCtx,
    pub(super) table: ResourceTable,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi.ctx,
            table: &mut self.wasi.table,
        }
    }
}

impl wit::Host for HostState {}

impl cauldron::plugin::host::Host for HostState {
    fn current_client(&mut self) -> Option<wit::ClientResult> {
        HostState::current_client(self)
    }

    fn log(&mut self, level: wit::LogLevel, message: String, fields: Vec<wit::PairResult>) {
        self.log(level, &message, &fields);
    }

    fn now_millis(&mut self) -> u64 {
        self.now_millis()
    }

    fn kv_get(&mut self, key: String) -> Option<Vec<u8>> {
        self.kv_get(&key)
    }

    fn kv_set(&mut self, key: String, value: Vec<u8>, ttl_ms: Option<u64>) {
        self.kv_set(&key, value, ttl_ms);
    }

    fn kv_incr(&mut self, key: String, delta: i64, ttl_ms: Option<u64>) -> i64 {
        self.kv_incr(&key, delta, ttl_ms)
    }

    fn kv_delete(&mut self, key: String) {
        self.kv_delete(&key);
    }

    fn publish(&mut self, message: wit::MessageResult) -> Result<(), String> {
        self.publish(message)
    }
}

/// One hook call's arguments, in WIT form, borrowing the broker's own values (bindgen's
/// `Borrowing` ownership: nothing is copied on the host side before wasmtime copies it
/// into the plugin). After `on-connect` the client is its handle;
/// `host.current-client` answers its record.
pub(super) enum HookCall<'a> {
    Connect(wit::ClientParam<'a>, wit::Credentials<'a>),
    Subscribe(wit::ClientHandle, &'a str, wit::Qos),
    Publish(wit::ClientHandle, wit::MessageParam<'a>),
    PublishBatch(wit::ClientHandle, &'a [wit::MessageParam<'a>]),
    Disconnect(wit::ClientHandle, wit::DisconnectReason),
}

/// One hook call's answer, in WIT form.
pub(super) enum HookAnswer {
    Connect(wit::ConnectDecision),
    Subscribe(wit::SubscribeDecision),
    Publish(wit::PublishDecision),
    PublishBatch(Vec<wit::PublishDecision>),
    Disconnect,
}

/// Calls one hook of an instance.
pub(super) async fn invoke(
    bindings: &PluginBindings,
    store: &mut Store<HostState>,
    call: HookCall<'_>,
) -> wasmtime::Result<HookAnswer> {
    let hooks = bindings.cauldron_plugin_hooks();
    Ok(match call {
        HookCall::Connect(client, creds) => {
            HookAnswer::Connect(hooks.call_on_connect(store, client, creds).await?)
        }
        HookCall::Subscribe(client, filter, qos) => {
            HookAnswer::Subscribe(hooks.call_on_subscribe(store, client, filter, qos).await?)
        }
        HookCall::Publish(client, message) => {
            HookAnswer::Publish(hooks.call_on_publish(store, client, message).await?)
        }
        HookCall::PublishBatch(client, messages) => {
            HookAnswer::PublishBatch(hooks.call_on_publish_batch(store, client, messages).await?)
        }
        HookCall::Disconnect(client, reason) => {
            hooks.call_on_disconnect(store, client, reason).await?;
            HookAnswer::Disconnect
        }
    })
}

/// Calls `init` with the plugin's JSON config; the outer error is a trap, the inner
/// one the plugin's own message.
pub(super) async fn init(
    bindings: &PluginBindings,
    store: &mut Store<HostState>,
    config_json: &str,
) -> wasmtime::Result<Result<(), String>> {
    bindings
        .cauldron_plugin_hooks()
        .call_init(store, config_json)
        .await
}

/// Calls `declared-hooks`.
pub(super) async fn declared_hooks(
    bindings: &PluginBindings,
    store: &mut Store<HostState>,
) -> wasmtime::Result<wit::HookSet> {
    bindings
        .cauldron_plugin_hooks()
        .call_declared_hooks(store)
        .await
}
