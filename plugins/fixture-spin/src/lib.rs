//! Test fixture: spins forever in `on-connect` and `on-publish`, so the broker's deadline
//! (epoch interruption) must cut it off while other clients keep flowing.
//!
//! It spins only on a trigger, so a test can send normal traffic through the same plugin:
//! publishes whose topic starts with `publish_prefix` (default `spin/`) and connects whose user
//! name starts with `connect_username_prefix` (default `spin`). An empty prefix spins on every
//! call; everything else continues or has no opinion.

use cauldron_sdk::prelude::*;

/// The plugin, configured.
#[derive(Debug)]
pub struct Spin {
    publish_prefix: String,
    connect_username_prefix: String,
}

impl Default for Spin {
    fn default() -> Self {
        Spin {
            publish_prefix: "spin/".to_owned(),
            connect_username_prefix: "spin".to_owned(),
        }
    }
}

impl Plugin for Spin {
    const HOOKS: Hooks = Hooks::CONNECT.union(Hooks::PUBLISH);

    fn init(&mut self, config: &Config) -> Result<(), String> {
        if let Some(p) = config.get_str("publish_prefix")? {
            self.publish_prefix = p.to_owned();
        }
        if let Some(p) = config.get_str("connect_username_prefix")? {
            self.connect_username_prefix = p.to_owned();
        }
        Ok(())
    }

    fn on_connect(&self, _client: &Client, credentials: &Credentials) -> ConnectDecision {
        if self.spins_on_connect(credentials.username()) {
            spin_forever();
        }
        ConnectDecision::NoOpinion
    }

    fn on_publish(&self, _client: &Client, message: &Message) -> Verdict {
        if self.spins_on_publish(message.topic()) {
            spin_forever();
        }
        Verdict::Continue
    }
}

impl Spin {
    /// True when a publish on `topic` spins.
    pub fn spins_on_publish(&self, topic: &str) -> bool {
        topic.starts_with(&self.publish_prefix)
    }

    /// True when a connect with this user name spins (no user name: only with an empty prefix).
    pub fn spins_on_connect(&self, username: Option<&str>) -> bool {
        match username {
            Some(u) => u.starts_with(&self.connect_username_prefix),
            None => self.connect_username_prefix.is_empty(),
        }
    }
}

/// Burns CPU until the host interrupts it; `black_box` keeps the loop from being optimised
/// into something the host could not interrupt the same way.
fn spin_forever() -> ! {
    let mut n: u64 = 0;
    loop {
        n = std::hint::black_box(n.wrapping_add(1));
    }
}

cauldron_sdk::export_plugin!(Spin);

#[cfg(test)]
mod tests {
    use super::*;
    use cauldron_sdk::testing;

    #[test]
    fn spins_only_on_trigger_topics_and_user_names() {
        let p: Spin = testing::instantiate("{}").unwrap();
        assert!(p.spins_on_publish("spin/now"));
        assert!(!p.spins_on_publish("normal/topic"));
        assert!(p.spins_on_connect(Some("spin-1")));
        assert!(!p.spins_on_connect(Some("alice")));
        assert!(!p.spins_on_connect(None));
    }

    #[test]
    fn non_trigger_calls_pass() {
        let p: Spin = testing::instantiate("{}").unwrap();
        let c = Client::new("c");
        assert_eq!(
            p.on_publish(&c, &Message::new("a/b", "")),
            Verdict::Continue
        );
        assert_eq!(
            p.on_connect(&c, &Credentials::new().with_username("alice")),
            ConnectDecision::NoOpinion
        );
    }

    #[test]
    fn empty_prefixes_spin_on_everything() {
        let p: Spin =
            testing::instantiate(r#"{"publish_prefix": "", "connect_username_prefix": ""}"#)
                .unwrap();
        assert!(p.spins_on_publish("anything"));
        assert!(p.spins_on_connect(None));
    }
}
