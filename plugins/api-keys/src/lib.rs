//! Authentication by API key or by a user-name allow-list, both from the plugin's config, and
//! the session attributes (role, tenant, ...) each grants.
//!
//! A client that sends a password is checked against the keys only (the password is the key,
//! compared in constant time); a client without a password is checked against the allow-list.
//! What matches nothing is denied, or left to the next plugin with `on_unknown = "no-opinion"`.

use std::collections::BTreeMap;

use cauldron_sdk::log::{debug, info};
use cauldron_sdk::prelude::*;
use cauldron_sdk::serde::Deserialize;

/// What to answer for credentials that match no key and no allow-listed user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(crate = "cauldron_sdk::serde", rename_all = "kebab-case")]
pub enum OnUnknown {
    /// Deny: 0x86 for an unknown key, 0x87 for an unknown user without a password.
    #[default]
    Deny,
    /// Pass to the next plugin in the chain.
    NoOpinion,
}

/// One API key.
#[derive(Debug, Clone, Deserialize)]
#[serde(crate = "cauldron_sdk::serde", deny_unknown_fields)]
pub struct KeyEntry {
    /// The key, sent by the client as its MQTT password.
    pub key: String,
    /// When set, the key is valid only with this user name.
    #[serde(default)]
    pub username: Option<String>,
    /// Attributes granted to sessions using this key (over `default_attributes`).
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
}

/// One user allowed in without a password.
#[derive(Debug, Clone, Deserialize)]
#[serde(crate = "cauldron_sdk::serde", deny_unknown_fields)]
pub struct UserEntry {
    /// The user name.
    pub username: String,
    /// When set, the user is allowed only on this listener (say, a TLS or internal one).
    #[serde(default)]
    pub listener: Option<String>,
    /// Attributes granted to this user's sessions (over `default_attributes`).
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
}

/// The plugin's config table.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(crate = "cauldron_sdk::serde", deny_unknown_fields, default)]
pub struct Settings {
    /// API keys.
    pub keys: Vec<KeyEntry>,
    /// Users allowed without a password.
    pub users: Vec<UserEntry>,
    /// Attributes granted to every session this plugin allows.
    pub default_attributes: BTreeMap<String, String>,
    /// What to answer when nothing matches.
    pub on_unknown: OnUnknown,
}

/// The plugin.
#[derive(Debug, Default)]
pub struct ApiKeys {
    settings: Settings,
}

impl Plugin for ApiKeys {
    const HOOKS: Hooks = Hooks::CONNECT;

    fn init(&mut self, config: &Config) -> Result<(), String> {
        let settings: Settings = config.deserialize()?;
        validate(&settings)?;
        info!("api keys loaded"; keys = settings.keys.len(), users = settings.users.len());
        self.settings = settings;
        Ok(())
    }

    fn on_connect(&self, client: &Client, credentials: &Credentials) -> ConnectDecision {
        let decision = self.authenticate(client, credentials);
        if let ConnectDecision::Deny { code, .. } = &decision {
            debug!("client refused"; client_id = client.client_id(), code = code);
        }
        decision
    }
}

impl ApiKeys {
    /// The decision for these credentials: pure, no host calls.
    pub fn authenticate(&self, client: &Client, credentials: &Credentials) -> ConnectDecision {
        let s = &self.settings;
        if let Some(password) = credentials.password() {
            return match find_key(&s.keys, password) {
                Some(entry) if entry_accepts_username(entry, credentials.username()) => {
                    self.grant(&entry.attributes)
                }
                Some(_) => ConnectDecision::deny_with(
                    reason::BAD_USERNAME_OR_PASSWORD,
                    "api key not valid for this user name",
                ),
                None => self.unknown(reason::BAD_USERNAME_OR_PASSWORD, "unknown api key"),
            };
        }
        let allowed = credentials.username().and_then(|name| {
            s.users.iter().find(|u| {
                u.username == name && u.listener.as_deref().is_none_or(|l| l == client.listener())
            })
        });
        match allowed {
            Some(user) => self.grant(&user.attributes),
            None => self.unknown(reason::NOT_AUTHORIZED, "user not allowed without api key"),
        }
    }

    fn grant(&self, attributes: &BTreeMap<String, String>) -> ConnectDecision {
        let mut merged = self.settings.default_attributes.clone();
        merged.extend(attributes.iter().map(|(k, v)| (k.clone(), v.clone())));
        ConnectDecision::Allow(merged.into_iter().collect())
    }

    fn unknown(&self, code: u8, why: &str) -> ConnectDecision {
        match self.settings.on_unknown {
            OnUnknown::Deny => ConnectDecision::deny_with(code, why),
            OnUnknown::NoOpinion => ConnectDecision::NoOpinion,
        }
    }
}

fn entry_accepts_username(entry: &KeyEntry, username: Option<&str>) -> bool {
    entry.username.is_none() || entry.username.as_deref() == username
}

/// The entry whose key equals `password`. Every key is compared, each in constant time, so the
/// time taken does not tell how much of a key a guess got right.
fn find_key<'a>(keys: &'a [KeyEntry], password: &[u8]) -> Option<&'a KeyEntry> {
    keys.iter().fold(None, |found, entry| {
        let equal = constant_time_eq(entry.key.as_bytes(), password);
        found.or(equal.then_some(entry))
    })
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn validate(s: &Settings) -> Result<(), String> {
    for (i, entry) in s.keys.iter().enumerate() {
        if entry.key.is_empty() {
            return Err(format!("keys[{i}]: key must not be empty"));
        }
        if s.keys[..i].iter().any(|other| other.key == entry.key) {
            return Err(format!("keys[{i}]: duplicate key"));
        }
    }
    if let Some(i) = s.users.iter().position(|u| u.username.is_empty()) {
        return Err(format!("users[{i}]: user name must not be empty"));
    }
    Ok(())
}

cauldron_sdk::export_plugin!(ApiKeys);

#[cfg(test)]
mod tests {
    use super::*;
    use cauldron_sdk::testing;

    const CONFIG: &str = r#"{
        "default_attributes": {"role": "device"},
        "keys": [
            {"key": "k-acme", "attributes": {"tenant": "acme"}},
            {"key": "k-admin", "username": "ops", "attributes": {"role": "admin", "tenant": "ops"}}
        ],
        "users": [
            {"username": "dashboard", "attributes": {"role": "viewer", "tenant": "acme"}},
            {"username": "bridge", "listener": "internal"}
        ]
    }"#;

    fn plugin(config: &str) -> ApiKeys {
        testing::instantiate(config).unwrap()
    }

    fn attrs(pairs: &[(&str, &str)]) -> ConnectDecision {
        ConnectDecision::allow_with(pairs.iter().copied())
    }

    #[test]
    fn valid_key_grants_default_and_key_attributes() {
        let d = plugin(CONFIG).authenticate(
            &Client::new("c1"),
            &Credentials::new()
                .with_username("anyone")
                .with_password("k-acme"),
        );
        assert_eq!(d, attrs(&[("role", "device"), ("tenant", "acme")]));
    }

    #[test]
    fn key_attributes_override_defaults() {
        let d = plugin(CONFIG).authenticate(
            &Client::new("c1"),
            &Credentials::new()
                .with_username("ops")
                .with_password("k-admin"),
        );
        assert_eq!(d, attrs(&[("role", "admin"), ("tenant", "ops")]));
    }

    #[test]
    fn key_bound_to_a_user_name_rejects_other_names() {
        let p = plugin(CONFIG);
        let wrong = Credentials::new()
            .with_username("eve")
            .with_password("k-admin");
        let none = Credentials::new().with_password("k-admin");
        for creds in [wrong, none] {
            assert!(matches!(
                p.authenticate(&Client::new("c1"), &creds),
                ConnectDecision::Deny { code: 0x86, .. }
            ));
        }
    }

    #[test]
    fn unknown_key_is_denied_with_bad_username_or_password() {
        let d = plugin(CONFIG).authenticate(
            &Client::new("c1"),
            &Credentials::new()
                .with_username("dashboard")
                .with_password("k-acm"),
        );
        assert!(
            matches!(d, ConnectDecision::Deny { code: 0x86, .. }),
            "{d:?}"
        );
    }

    #[test]
    fn allow_listed_user_without_password_is_allowed() {
        let d = plugin(CONFIG).authenticate(
            &Client::new("c1"),
            &Credentials::new().with_username("dashboard"),
        );
        assert_eq!(d, attrs(&[("role", "viewer"), ("tenant", "acme")]));
    }

    #[test]
    fn allow_listed_user_is_confined_to_its_listener() {
        let p = plugin(CONFIG);
        let creds = Credentials::new().with_username("bridge");
        assert_eq!(
            p.authenticate(&Client::new("b").with_listener("internal"), &creds),
            attrs(&[("role", "device")])
        );
        assert!(matches!(
            p.authenticate(&Client::new("b").with_listener("public"), &creds),
            ConnectDecision::Deny { code: 0x87, .. }
        ));
    }

    #[test]
    fn anonymous_client_is_not_authorized() {
        let d = plugin(CONFIG).authenticate(&Client::new("c1"), &Credentials::new());
        assert!(matches!(d, ConnectDecision::Deny { code: 0x87, .. }));
    }

    #[test]
    fn no_opinion_mode_passes_unknown_clients_on() {
        let p = plugin(r#"{"on_unknown": "no-opinion", "keys": [{"key": "k"}]}"#);
        let c = Client::new("c1");
        assert_eq!(
            p.authenticate(&c, &Credentials::new().with_password("x")),
            ConnectDecision::NoOpinion
        );
        assert_eq!(
            p.authenticate(&c, &Credentials::new().with_username("u")),
            ConnectDecision::NoOpinion
        );
        assert_eq!(
            p.authenticate(&c, &Credentials::new().with_password("k")),
            ConnectDecision::allow()
        );
    }

    #[test]
    fn binary_passwords_compare_as_bytes() {
        let p = plugin(r#"{"keys": [{"key": "é"}]}"#);
        let ok = Credentials::new().with_password("é".as_bytes());
        let bad = Credentials::new().with_password(vec![0xc3]);
        assert_eq!(
            p.authenticate(&Client::new("c"), &ok),
            ConnectDecision::allow()
        );
        assert!(matches!(
            p.authenticate(&Client::new("c"), &bad),
            ConnectDecision::Deny { .. }
        ));
    }

    #[test]
    fn rejects_duplicate_empty_and_unknown_config() {
        let dup = testing::instantiate::<ApiKeys>(r#"{"keys": [{"key": "a"}, {"key": "a"}]}"#);
        assert_eq!(dup.unwrap_err(), "keys[1]: duplicate key");
        let empty = testing::instantiate::<ApiKeys>(r#"{"keys": [{"key": ""}]}"#);
        assert_eq!(empty.unwrap_err(), "keys[0]: key must not be empty");
        let typo = testing::instantiate::<ApiKeys>(r#"{"kyes": []}"#);
        assert!(typo.unwrap_err().contains("unknown field `kyes`"));
        let mode = testing::instantiate::<ApiKeys>(r#"{"on_unknown": "allow"}"#);
        assert!(mode.unwrap_err().contains("unknown variant `allow`"));
    }

    #[test]
    fn on_connect_logs_refusals_without_the_key() {
        let p = plugin(CONFIG);
        let secret = "k-guess-123";
        p.on_connect(
            &Client::new("c9"),
            &Credentials::new().with_password(secret),
        );
        let logs = testing::logs();
        assert!(logs.iter().any(|l| l.message == "client refused"));
        assert!(!format!("{logs:?}").contains(secret));
    }

    #[test]
    fn constant_time_eq_needs_equal_length_and_bytes() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(constant_time_eq(b"", b""));
    }
}
