//! Checking a compiled component against `cauldron:plugin@0.4.0` before it is used:
//! imports of another version of this package, a missing `hooks` export, or imports and
//! exports whose types do not match are refused with an error naming the plugin and
//! what does not match. Also asks a fresh instance which hooks it declares.

use std::time::{Duration, Instant};

use wasmtime::component::Component;

use super::bindings::{self, PluginBindingsPre, wit};
use super::engine::Host;
use super::host::HostState;
use super::pool::Instance;
use super::{Error, Hook};

/// Checks the component's imports and exports against `cauldron:plugin@0.4.0` and
/// prepares instantiation (which type-checks every import and the hooks export).
pub(super) fn pre_instantiate(
    host: &Host,
    plugin: &str,
    component: &Component,
) -> Result<PluginBindingsPre<HostState>, Error> {
    let interface = |detail: String| Error::Interface {
        plugin: plugin.to_owned(),
        detail,
    };
    let ty = component.component_type();
    for (name, _) in ty.imports(&host.engine) {
        if name.starts_with("cauldron:") && !bindings::SUPPORTED_IMPORTS.contains(&name) {
            return Err(interface(format!(
                "it imports `{name}`; this broker implements {}",
                bindings::PACKAGE
            )));
        }
    }
    let pre = host
        .linker
        .instantiate_pre(component)
        .map_err(|e| interface(format!("{e:#}")))?;
    let exports: Vec<&str> = ty.exports(&host.engine).map(|(name, _)| name).collect();
    if !exports.contains(&bindings::HOOKS_EXPORT) {
        let found = exports
            .iter()
            .find(|e| e.starts_with("cauldron:plugin/hooks"));
        return Err(interface(match found {
            Some(other) => format!(
                "it exports `{other}` instead of `{}`",
                bindings::HOOKS_EXPORT
            ),
            None => format!("it does not export `{}`", bindings::HOOKS_EXPORT),
        }));
    }
    PluginBindingsPre::new(pre).map_err(|e| interface(format!("{e:#}")))
}

/// Asks the first instance which hooks the plugin implements.
pub(super) async fn declared_hooks(plugin: &str, instance: &mut Instance) -> Result<u8, Error> {
    instance
        .store
        .data_mut()
        .deadline
        .arm(Instant::now() + Duration::from_secs(1));
    instance.store.set_epoch_deadline(1);
    let set = bindings::declared_hooks(&instance.bindings, &mut instance.store)
        .await
        .map_err(|e| Error::Init {
            plugin: plugin.to_owned(),
            message: format!("declared-hooks failed: {e:#}"),
        })?;
    let mut mask = 0;
    for (flag, hook) in [
        (wit::HookSet::CONNECT, Hook::Connect),
        (wit::HookSet::SUBSCRIBE, Hook::Subscribe),
        (wit::HookSet::PUBLISH, Hook::Publish),
        (wit::HookSet::DISCONNECT, Hook::Disconnect),
    ] {
        if set.contains(flag) {
            mask |= hook.bit();
        }
    }
    Ok(mask)
}
