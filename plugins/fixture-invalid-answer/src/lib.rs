//! Test fixture: answers that break the contract, which the broker must validate and treat as
//! a plugin failure (the instance is discarded and the hook's failure policy applies).
//!
//! Triggers start with `topic_prefix` (default `invalid/`; empty: every publish and
//! subscription); everything else continues or has no opinion.
//! - publish on `invalid/empty...`: replaced by a message with an empty topic;
//! - publish on `invalid/plus...`: replaced by one on `invalid/+/x`;
//! - publish on `invalid/success-code...`: dropped with reason code 0x00 (not a refusal);
//! - any other publish on `invalid/...`: replaced by one on `invalid/#`;
//! - subscription to `invalid/...`: allowed with QoS 2 when QoS 0 or 1 was requested (above
//!   the request), denied with reason code 0x00 when QoS 2 was requested;
//! - connect with user name `invalid`: denied with reason code 0x00.

use cauldron_sdk::prelude::*;

/// The plugin, configured.
#[derive(Debug)]
pub struct InvalidAnswer {
    topic_prefix: String,
}

impl Default for InvalidAnswer {
    fn default() -> Self {
        InvalidAnswer {
            topic_prefix: "invalid/".to_owned(),
        }
    }
}

impl Plugin for InvalidAnswer {
    const HOOKS: Hooks = Hooks::CONNECT.union(Hooks::SUBSCRIBE).union(Hooks::PUBLISH);

    fn init(&mut self, config: &Config) -> Result<(), String> {
        if let Some(p) = config.get_str("topic_prefix")? {
            self.topic_prefix = p.to_owned();
        }
        Ok(())
    }

    fn on_connect(&self, _client: &Client, credentials: &Credentials) -> ConnectDecision {
        if credentials.username() == Some("invalid") {
            return ConnectDecision::deny_with(0x00, "success is not a refusal");
        }
        ConnectDecision::NoOpinion
    }

    fn on_subscribe(&self, _client: &Client, filter: &str, requested: QoS) -> SubscribeDecision {
        if !filter.starts_with(&self.topic_prefix) {
            return SubscribeDecision::NoOpinion;
        }
        match requested {
            QoS::AtMostOnce | QoS::AtLeastOnce => SubscribeDecision::Allow(QoS::ExactlyOnce),
            QoS::ExactlyOnce => SubscribeDecision::deny_with(0x00, "success is not a refusal"),
        }
    }

    fn on_publish(&self, _client: &Client, message: &Message) -> Verdict {
        let Some(rest) = message.topic().strip_prefix(self.topic_prefix.as_str()) else {
            return Verdict::Continue;
        };
        let topic = if rest.starts_with("empty") {
            ""
        } else if rest.starts_with("plus") {
            "invalid/+/x"
        } else if rest.starts_with("success-code") {
            return Verdict::drop_with(0x00, "success is not a refusal");
        } else {
            "invalid/#"
        };
        Verdict::Replace(message.clone().with_topic(topic))
    }
}

cauldron_sdk::export_plugin!(InvalidAnswer);

#[cfg(test)]
mod tests {
    use super::*;
    use cauldron_sdk::testing;

    fn plugin() -> InvalidAnswer {
        testing::instantiate("{}").unwrap()
    }

    fn replaced_topic(v: Verdict) -> String {
        match v {
            Verdict::Replace(m) => m.topic().to_owned(),
            other => panic!("expected a replacement, got {other:?}"),
        }
    }

    #[test]
    fn publishes_get_invalid_replacements() {
        let (p, c) = (plugin(), Client::new("c"));
        let on = |t: &str| p.on_publish(&c, &Message::new(t, "x"));
        assert_eq!(replaced_topic(on("invalid/empty")), "");
        assert_eq!(replaced_topic(on("invalid/plus")), "invalid/+/x");
        assert_eq!(replaced_topic(on("invalid/anything")), "invalid/#");
        assert_eq!(
            on("invalid/success-code"),
            Verdict::Drop {
                code: 0,
                reason: "success is not a refusal".into()
            }
        );
        assert_eq!(on("valid/topic"), Verdict::Continue);
    }

    #[test]
    fn subscriptions_get_qos_above_the_request() {
        let (p, c) = (plugin(), Client::new("c"));
        assert_eq!(
            p.on_subscribe(&c, "invalid/x", QoS::AtMostOnce),
            SubscribeDecision::Allow(QoS::ExactlyOnce)
        );
        assert!(matches!(
            p.on_subscribe(&c, "invalid/x", QoS::ExactlyOnce),
            SubscribeDecision::Deny { code: 0, .. }
        ));
        assert_eq!(
            p.on_subscribe(&c, "valid/#", QoS::AtMostOnce),
            SubscribeDecision::NoOpinion
        );
    }

    #[test]
    fn connect_as_invalid_is_denied_with_a_success_code() {
        let (p, c) = (plugin(), Client::new("c"));
        assert!(matches!(
            p.on_connect(&c, &Credentials::new().with_username("invalid")),
            ConnectDecision::Deny { code: 0, .. }
        ));
        assert_eq!(
            p.on_connect(&c, &Credentials::new()),
            ConnectDecision::NoOpinion
        );
    }

    #[test]
    fn empty_prefix_makes_every_publish_invalid() {
        let p: InvalidAnswer = testing::instantiate(r#"{"topic_prefix": ""}"#).unwrap();
        let v = p.on_publish(&Client::new("c"), &Message::new("a/b", ""));
        assert_eq!(replaced_topic(v), "invalid/#");
    }
}
