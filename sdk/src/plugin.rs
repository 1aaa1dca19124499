//! The [`Plugin`] trait authors implement: one method per hook, each with a default that
//! leaves the decision to the rest of the chain.
//!
//! The trait knows only SDK types; `export` turns an implementation into the component's
//! exports.

use crate::client::{Client, Credentials, DisconnectReason};
use crate::config::Config;
use crate::decision::{ConnectDecision, Hooks, SubscribeDecision, Verdict};
use crate::message::{Message, QoS};

/// A Cauldron plugin.
///
/// The broker makes each instance with `Default`, calls [`init`](Plugin::init) once with the
/// plugin's config table, then calls the hooks listed in [`HOOKS`](Plugin::HOOKS) (never the
/// others). Hooks take `&self`: settle configuration in `init`, and keep state that must
/// survive a trap or be shared between the broker's instances of the plugin in [`crate::kv`].
///
/// ```
/// use cauldron_sdk::prelude::*;
///
/// #[derive(Default)]
/// struct NoSecrets {
///     prefix: String,
/// }
///
/// impl Plugin for NoSecrets {
///     const HOOKS: Hooks = Hooks::PUBLISH;
///
///     fn init(&mut self, config: &Config) -> Result<(), String> {
///         self.prefix = config.get_str("prefix")?.unwrap_or("secret/").to_owned();
///         Ok(())
///     }
///
///     fn on_publish(&self, _client: &Client, msg: &Message) -> Verdict {
///         if msg.topic().starts_with(&self.prefix) {
///             Verdict::drop("blocked")
///         } else {
///             Verdict::Continue
///         }
///     }
/// }
///
/// cauldron_sdk::export_plugin!(NoSecrets);
///
/// // Native unit test of the same logic:
/// let plugin: NoSecrets = cauldron_sdk::testing::instantiate(r#"{"prefix": "hidden/"}"#).unwrap();
/// let client = Client::new("c1");
/// assert!(matches!(plugin.on_publish(&client, &Message::new("hidden/x", "")), Verdict::Drop { .. }));
/// assert_eq!(plugin.on_publish(&client, &Message::new("open/x", "")), Verdict::Continue);
/// ```
pub trait Plugin: Default + 'static {
    /// The hooks this plugin implements; the broker calls no other.
    const HOOKS: Hooks;

    /// Called once per instance, before any hook, with the plugin's `[plugins.config]` table.
    /// An error fails loading the plugin with this message. Default: accept any config.
    fn init(&mut self, config: &Config) -> Result<(), String> {
        let _ = config;
        Ok(())
    }

    /// A client connects: authenticate it and grant attributes to its session. `client`
    /// carries no attributes yet. Default: [`ConnectDecision::NoOpinion`].
    fn on_connect(&self, client: &Client, credentials: &Credentials) -> ConnectDecision {
        let _ = (client, credentials);
        ConnectDecision::NoOpinion
    }

    /// A client subscribes to `filter` asking for `requested`: allow it with a QoS no higher
    /// than `requested`, deny it or pass. Default: [`SubscribeDecision::NoOpinion`].
    fn on_subscribe(&self, client: &Client, filter: &str, requested: QoS) -> SubscribeDecision {
        let _ = (client, filter, requested);
        SubscribeDecision::NoOpinion
    }

    /// A message is published (wills included): pass it on, replace it or drop it.
    /// Default: [`Verdict::Continue`].
    fn on_publish(&self, client: &Client, message: &Message) -> Verdict {
        let _ = (client, message);
        Verdict::Continue
    }

    /// A client's connection ended (notification only). Default: nothing.
    fn on_disconnect(&self, client: &Client, reason: DisconnectReason) {
        let _ = (client, reason);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Nothing;

    impl Plugin for Nothing {
        const HOOKS: Hooks = Hooks::NONE;
    }

    #[test]
    fn every_hook_defaults_to_passing() {
        let mut p = Nothing;
        let c = Client::new("c");
        assert_eq!(p.init(&Config::empty()), Ok(()));
        assert_eq!(
            p.on_connect(&c, &Credentials::new()),
            ConnectDecision::NoOpinion
        );
        assert_eq!(
            p.on_subscribe(&c, "a/#", QoS::AtLeastOnce),
            SubscribeDecision::NoOpinion
        );
        assert_eq!(p.on_publish(&c, &Message::new("a", "")), Verdict::Continue);
        p.on_disconnect(&c, DisconnectReason::Normal);
    }
}
