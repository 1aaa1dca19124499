//! Per-client publish rate limiting with the broker's key-value store.
//!
//! Each publish increments the counter `rate/{client id}` with `kv::incr`; the counter is
//! created with a TTL of one window, so it is a fixed window starting at the client's first
//! message in it. Past `messages_per_window` the message is dropped with reason code 0x97
//! (quota exceeded; 0x96 "message rate too high" is valid only in DISCONNECT, not in PUBACK).
//! The counter lives in the host, so every instance of the plugin sees the same count and a
//! re-instantiated one forgets nothing.

use std::time::Duration;

use cauldron_sdk::kv;
use cauldron_sdk::log::warn;
use cauldron_sdk::prelude::*;

/// What identifies a client's counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyBy {
    /// The client id.
    ClientId,
    /// The user name (clients without one are counted by client id), so that one user's
    /// connections share a budget.
    Username,
}

/// The plugin, configured.
#[derive(Debug)]
pub struct RateLimit {
    limit: i64,
    window: Duration,
    reason_code: u8,
    key_by: KeyBy,
}

impl Default for RateLimit {
    fn default() -> Self {
        RateLimit {
            limit: 10,
            window: Duration::from_millis(1000),
            reason_code: reason::QUOTA_EXCEEDED,
            key_by: KeyBy::ClientId,
        }
    }
}

impl Plugin for RateLimit {
    const HOOKS: Hooks = Hooks::PUBLISH;

    fn init(&mut self, config: &Config) -> Result<(), String> {
        if let Some(limit) = config.get_u64("messages_per_window")? {
            self.limit =
                i64::try_from(limit).map_err(|_| "messages_per_window is too large".to_owned())?;
        }
        if let Some(ms) = config.get_u64("window_ms")? {
            if ms == 0 {
                return Err("window_ms must be at least 1".to_owned());
            }
            self.window = Duration::from_millis(ms);
        }
        if let Some(code) = config.get_u64("reason_code")? {
            self.reason_code = u8::try_from(code)
                .ok()
                .filter(|c| *c >= 0x80)
                .ok_or_else(|| format!("reason_code {code} must be in 0x80..=0xFF"))?;
        }
        self.key_by = match config.get_str("key_by")? {
            None | Some("client-id") => KeyBy::ClientId,
            Some("username") => KeyBy::Username,
            Some(other) => {
                return Err(format!(
                    "key_by `{other}` must be \"client-id\" or \"username\""
                ));
            }
        };
        Ok(())
    }

    fn on_publish(&self, client: &Client, _message: &Message) -> Verdict {
        let key = self.counter_key(client);
        let count = kv::incr(&key, 1, Some(self.window));
        if count == self.limit.saturating_add(1) {
            warn!("rate limit reached"; client_id = client.client_id(), limit = self.limit);
        }
        self.verdict_for(count)
    }
}

impl RateLimit {
    /// The key-value key counting this client's messages.
    pub fn counter_key(&self, client: &Client) -> String {
        let id = match self.key_by {
            KeyBy::Username => client.username().map_or_else(
                || format!("client:{}", client.client_id()),
                |u| format!("user:{u}"),
            ),
            KeyBy::ClientId => format!("client:{}", client.client_id()),
        };
        format!("rate/{id}")
    }

    /// The verdict for the `count`-th message of a window. Pure.
    pub fn verdict_for(&self, count: i64) -> Verdict {
        if count > self.limit {
            Verdict::drop_with(
                self.reason_code,
                format!(
                    "more than {} messages in {} ms",
                    self.limit,
                    self.window.as_millis()
                ),
            )
        } else {
            Verdict::Continue
        }
    }
}

cauldron_sdk::export_plugin!(RateLimit);

#[cfg(test)]
mod tests {
    use super::*;
    use cauldron_sdk::testing;

    fn plugin(config: &str) -> RateLimit {
        testing::instantiate(config).unwrap()
    }

    fn publish_n(p: &RateLimit, client: &Client, n: usize) -> Vec<Verdict> {
        (0..n)
            .map(|_| p.on_publish(client, &Message::new("t", "x")))
            .collect()
    }

    #[test]
    fn drops_messages_over_the_limit_with_quota_exceeded() {
        let p = plugin(r#"{"messages_per_window": 3, "window_ms": 1000}"#);
        let v = publish_n(&p, &Client::new("c1"), 5);
        assert!(v[..3].iter().all(|v| *v == Verdict::Continue));
        assert!(
            v[3..]
                .iter()
                .all(|v| matches!(v, Verdict::Drop { code: 0x97, .. }))
        );
    }

    #[test]
    fn budget_returns_after_the_window() {
        let p = plugin(r#"{"messages_per_window": 2, "window_ms": 500}"#);
        let c = Client::new("c1");
        publish_n(&p, &c, 3);
        testing::advance_millis(499);
        assert!(matches!(publish_n(&p, &c, 1)[0], Verdict::Drop { .. }));
        testing::advance_millis(1);
        assert_eq!(publish_n(&p, &c, 2), vec![Verdict::Continue; 2]);
    }

    #[test]
    fn clients_have_separate_budgets() {
        let p = plugin(r#"{"messages_per_window": 1}"#);
        assert_eq!(publish_n(&p, &Client::new("a"), 1), vec![Verdict::Continue]);
        assert_eq!(publish_n(&p, &Client::new("b"), 1), vec![Verdict::Continue]);
        assert!(matches!(
            publish_n(&p, &Client::new("a"), 1)[0],
            Verdict::Drop { .. }
        ));
    }

    #[test]
    fn username_keying_shares_one_budget_across_connections() {
        let p = plugin(r#"{"messages_per_window": 1, "key_by": "username"}"#);
        let a = Client::new("a").with_username("bob");
        let b = Client::new("b").with_username("bob");
        assert_eq!(publish_n(&p, &a, 1), vec![Verdict::Continue]);
        assert!(matches!(publish_n(&p, &b, 1)[0], Verdict::Drop { .. }));
        assert_eq!(p.counter_key(&Client::new("anon")), "rate/client:anon");
    }

    #[test]
    fn counter_is_shared_by_instances_through_the_host() {
        let first = plugin(r#"{"messages_per_window": 1}"#);
        let second = plugin(r#"{"messages_per_window": 1}"#);
        let c = Client::new("c1");
        assert_eq!(publish_n(&first, &c, 1), vec![Verdict::Continue]);
        assert!(matches!(publish_n(&second, &c, 1)[0], Verdict::Drop { .. }));
    }

    #[test]
    fn warns_once_per_window_when_the_limit_is_reached() {
        let p = plugin(r#"{"messages_per_window": 1}"#);
        publish_n(&p, &Client::new("c1"), 4);
        let warnings = testing::logs()
            .into_iter()
            .filter(|l| l.message == "rate limit reached")
            .count();
        assert_eq!(warnings, 1);
    }

    #[test]
    fn reason_code_is_configurable() {
        let p = plugin(r#"{"messages_per_window": 0, "reason_code": 135}"#);
        assert!(matches!(
            publish_n(&p, &Client::new("c"), 1)[0],
            Verdict::Drop { code: 0x87, .. }
        ));
    }

    #[test]
    fn rejects_invalid_config() {
        for (config, needle) in [
            (r#"{"window_ms": 0}"#, "at least 1"),
            (r#"{"reason_code": 16}"#, "0x80..=0xFF"),
            (r#"{"reason_code": 300}"#, "0x80..=0xFF"),
            (r#"{"key_by": "ip"}"#, "key_by `ip`"),
            (r#"{"messages_per_window": -1}"#, "non-negative integer"),
        ] {
            let e = testing::instantiate::<RateLimit>(config).unwrap_err();
            assert!(e.contains(needle), "{config}: {e}");
        }
    }
}
