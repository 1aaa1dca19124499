//! Test fixture: panics (a trap, after the SDK's panic hook logged the message through
//! `host.log`) in `on-connect`, `on-subscribe` and `on-publish` on chosen triggers, so the broker
//! must discard the instance, apply the hook's failure policy and make a fresh one.
//!
//! Triggers: a publish whose topic, or a subscription whose filter, starts with `topic_prefix`
//! (default `trap/`), and a connect with user name `username` (default `trap`). Other publishes
//! are replaced by the same message with two user properties that make re-instantiation
//! visible to a subscriber: `fixture-instance` (this instance's number, counted in the host's
//! key-value store at `init`, so it grows with every new instance) and `fixture-calls` (the
//! publishes this instance has handled). `annotate = false` turns that off (plain continue).

use std::cell::Cell;

use cauldron_sdk::kv;
use cauldron_sdk::log::info;
use cauldron_sdk::prelude::*;

/// The plugin, configured, with its per-instance counters.
#[derive(Debug)]
pub struct Trap {
    topic_prefix: String,
    username: String,
    annotate: bool,
    instance: i64,
    calls: Cell<u64>,
}

impl Default for Trap {
    fn default() -> Self {
        Trap {
            topic_prefix: "trap/".to_owned(),
            username: "trap".to_owned(),
            annotate: true,
            instance: 0,
            calls: Cell::new(0),
        }
    }
}

impl Plugin for Trap {
    const HOOKS: Hooks = Hooks::CONNECT.union(Hooks::SUBSCRIBE).union(Hooks::PUBLISH);

    fn init(&mut self, config: &Config) -> Result<(), String> {
        if let Some(p) = config.get_str("topic_prefix")? {
            self.topic_prefix = p.to_owned();
        }
        if let Some(u) = config.get_str("username")? {
            self.username = u.to_owned();
        }
        self.annotate = config.get_bool("annotate")?.unwrap_or(true);
        self.instance = kv::incr("instances", 1, None);
        info!("trap fixture instance started"; instance = self.instance);
        Ok(())
    }

    fn on_connect(&self, client: &Client, credentials: &Credentials) -> ConnectDecision {
        if credentials.username() == Some(self.username.as_str()) {
            panic!("trap fixture: connect of {}", client.client_id());
        }
        ConnectDecision::NoOpinion
    }

    fn on_subscribe(&self, _client: &Client, filter: &str, _requested: QoS) -> SubscribeDecision {
        if filter.starts_with(&self.topic_prefix) {
            panic!("trap fixture: subscribe to {filter}");
        }
        SubscribeDecision::NoOpinion
    }

    fn on_publish(&self, _client: &Client, message: &Message) -> Verdict {
        if message.topic().starts_with(&self.topic_prefix) {
            panic!("trap fixture: publish on {}", message.topic());
        }
        self.calls.set(self.calls.get() + 1);
        if !self.annotate {
            return Verdict::Continue;
        }
        Verdict::Replace(
            message
                .clone()
                .with_user_property("fixture-instance", self.instance.to_string())
                .with_user_property("fixture-calls", self.calls.get().to_string()),
        )
    }
}

cauldron_sdk::export_plugin!(Trap);

#[cfg(test)]
mod tests {
    use super::*;
    use cauldron_sdk::testing;
    use std::panic::{AssertUnwindSafe, catch_unwind};

    #[test]
    fn each_instance_gets_the_next_number() {
        let first: Trap = testing::instantiate("{}").unwrap();
        let second: Trap = testing::instantiate("{}").unwrap();
        assert_eq!((first.instance, second.instance), (1, 2));
    }

    #[test]
    fn other_publishes_are_annotated_with_instance_and_calls() {
        let p: Trap = testing::instantiate("{}").unwrap();
        let c = Client::new("c");
        p.on_publish(&c, &Message::new("ok/1", "x"));
        let Verdict::Replace(m) = p.on_publish(&c, &Message::new("ok/2", "x")) else {
            panic!("expected a replacement");
        };
        assert_eq!(m.topic(), "ok/2");
        assert_eq!(m.user_property("fixture-instance"), Some("1"));
        assert_eq!(m.user_property("fixture-calls"), Some("2"));
    }

    #[test]
    fn annotate_false_continues() {
        let p: Trap = testing::instantiate(r#"{"annotate": false}"#).unwrap();
        let v = p.on_publish(&Client::new("c"), &Message::new("ok", ""));
        assert_eq!(v, Verdict::Continue);
    }

    #[test]
    fn panics_on_triggers_only() {
        let p: Trap = testing::instantiate("{}").unwrap();
        let c = Client::new("c");
        let trapped = |f: &dyn Fn()| catch_unwind(AssertUnwindSafe(f)).is_err();
        assert!(trapped(&|| {
            p.on_publish(&c, &Message::new("trap/now", ""));
        }));
        assert!(trapped(&|| {
            p.on_subscribe(&c, "trap/#", QoS::AtMostOnce);
        }));
        assert!(trapped(&|| {
            p.on_connect(&c, &Credentials::new().with_username("trap"));
        }));
        assert_eq!(
            p.on_connect(&c, &Credentials::new().with_username("alice")),
            ConnectDecision::NoOpinion
        );
        assert_eq!(
            p.on_subscribe(&c, "ok/#", QoS::AtMostOnce),
            SubscribeDecision::NoOpinion
        );
    }
}
