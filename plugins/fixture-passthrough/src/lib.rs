//! Test fixture: declares only `on-publish` and lets every message through unchanged.
//!
//! The broker's benchmark uses it to measure the cost of one hook call (argument lifting,
//! the SDK's conversions and an empty hook) against a broker without plugins.

use cauldron_sdk::prelude::*;

/// The plugin: no state, no config.
#[derive(Default)]
pub struct Passthrough;

impl Plugin for Passthrough {
    const HOOKS: Hooks = Hooks::PUBLISH;

    fn on_publish(&self, _client: &Client, _message: &Message) -> Verdict {
        Verdict::Continue
    }
}

cauldron_sdk::export_plugin!(Passthrough);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declares_only_the_publish_hook() {
        assert_eq!(Passthrough::HOOKS, Hooks::PUBLISH);
    }

    #[test]
    fn continues_every_message() {
        let p: Passthrough = cauldron_sdk::testing::instantiate("{}").unwrap();
        let msg = Message::new("any/topic", vec![0u8; 64]).with_qos(QoS::AtLeastOnce);
        assert_eq!(p.on_publish(&Client::new("c"), &msg), Verdict::Continue);
    }
}
