//! The `[auth]` table: the ordered authentication and authorisation chain, anonymous
//! access, the built-in password file and JWT authenticators, and what happens to a
//! denied MQTT 3.1.1 publish. The `[acl]` table is [`crate::acl::AclConfig`].
//!
//! The types of each built-in's own table live with the built-in
//! ([`crate::auth::password::PasswordFileConfig`], [`crate::auth::jwt::JwtConfig`]);
//! this module only checks how they fit together.

use serde::{Deserialize, Serialize};

use super::validate::{Violation, violation};
use super::{Config, PluginConfig};
pub use crate::auth::jwt::JwtConfig;
pub use crate::auth::password::{Argon2Params, PasswordFileConfig};

/// The `[auth]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// The chain, in call order. Entries: `password_file`, `jwt`, `acl`, `plugins`
    /// (every plugin not named elsewhere in the chain, in `[[plugins]]` order) and
    /// `plugin:NAME`. Empty: the configured built-ins (`password_file`, `jwt`, `acl`)
    /// then `plugins`.
    pub chain: Vec<String>,
    /// Let in clients that present no credentials when no entry of the chain decides.
    pub allow_anonymous: bool,
    /// What happens to an MQTT 3.1.1 PUBLISH the ACL or a plugin refuses (3.1.1 has no
    /// negative PUBACK): `drop` (acknowledge and discard, counted and logged) or
    /// `disconnect`.
    pub denied_publish_v3: DeniedPublish,
    /// The argon2id password file; off when absent.
    pub password_file: Option<PasswordFileConfig>,
    /// JWT in the password field; off when absent.
    pub jwt: Option<JwtConfig>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            chain: Vec::new(),
            allow_anonymous: true,
            denied_publish_v3: DeniedPublish::Drop,
            password_file: None,
            jwt: None,
        }
    }
}

/// What happens to a refused MQTT 3.1.1 PUBLISH.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeniedPublish {
    /// Acknowledge (QoS 1/2) and discard.
    Drop,
    /// Close the connection.
    Disconnect,
}

/// One entry of the chain, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainEntry {
    /// The built-in password file.
    PasswordFile,
    /// The built-in JWT authenticator.
    Jwt,
    /// The built-in ACL (subscribe and publish only).
    Acl,
    /// Every plugin not named by a `plugin:NAME` entry, in `[[plugins]]` order.
    Plugins,
    /// One plugin, by name.
    Plugin(String),
}

impl ChainEntry {
    /// Parses one entry, e.g. `plugin:api-keys`.
    pub fn parse(s: &str) -> Option<ChainEntry> {
        Some(match s {
            "password_file" => ChainEntry::PasswordFile,
            "jwt" => ChainEntry::Jwt,
            "acl" => ChainEntry::Acl,
            "plugins" => ChainEntry::Plugins,
            other => ChainEntry::Plugin(other.strip_prefix("plugin:")?.to_owned()),
        })
    }
}

impl Config {
    /// The chain of `listener` (its own `auth_chain`, else `[auth] chain`, else the
    /// default order), parsed. Entries were checked at load; unknown ones are skipped.
    pub fn auth_chain(&self, listener: &str) -> Vec<ChainEntry> {
        let own = self
            .listeners
            .iter()
            .find(|l| l.name == listener)
            .and_then(|l| l.auth_chain.as_ref());
        match own {
            Some(chain) => chain.iter().filter_map(|e| ChainEntry::parse(e)).collect(),
            None if !self.auth.chain.is_empty() => self
                .auth
                .chain
                .iter()
                .filter_map(|e| ChainEntry::parse(e))
                .collect(),
            None => self.default_chain(),
        }
    }

    /// Whether `listener` lets in clients without credentials when nobody decides.
    pub fn allow_anonymous(&self, listener: &str) -> bool {
        self.listeners
            .iter()
            .find(|l| l.name == listener)
            .and_then(|l| l.allow_anonymous)
            .unwrap_or(self.auth.allow_anonymous)
    }

    fn default_chain(&self) -> Vec<ChainEntry> {
        let mut chain = Vec::new();
        if self.auth.password_file.is_some() {
            chain.push(ChainEntry::PasswordFile);
        }
        if self.auth.jwt.is_some() {
            chain.push(ChainEntry::Jwt);
        }
        if !self.acl.rules.is_empty() || self.acl.file.is_some() {
            chain.push(ChainEntry::Acl);
        }
        chain.push(ChainEntry::Plugins);
        chain
    }
}

/// Checks `[auth]` and every listener's `auth_chain`.
pub(super) fn check_auth(config: &Config) -> Result<(), Violation> {
    let auth = &config.auth;
    check_chain("auth.chain", &auth.chain, config)?;
    for (i, l) in config.listeners.iter().enumerate() {
        if let Some(chain) = &l.auth_chain {
            check_chain(&format!("listeners.{i}.auth_chain"), chain, config)?;
        }
    }
    if let Some(p) = &auth.password_file {
        if p.path.as_os_str().is_empty() {
            return Err(violation("auth.password_file.path", "must not be empty"));
        }
        if p.max_concurrent_checks == 0 {
            return Err(violation(
                "auth.password_file.max_concurrent_checks",
                "must be at least 1, got 0",
            ));
        }
    }
    if let Some(j) = &auth.jwt
        && j.algorithms.is_empty()
    {
        return Err(violation(
            "auth.jwt.algorithms",
            "pin at least one algorithm, e.g. [\"RS256\"]",
        ));
    }
    Ok(())
}

fn check_chain(key: &str, chain: &[String], config: &Config) -> Result<(), Violation> {
    for (i, raw) in chain.iter().enumerate() {
        let at = format!("{key}.{i}");
        let Some(entry) = ChainEntry::parse(raw) else {
            return Err(violation(
                at,
                format!(
                    "unknown chain entry `{raw}`; expected password_file, jwt, acl, plugins or plugin:NAME"
                ),
            ));
        };
        if chain[..i].contains(raw) {
            return Err(violation(at, format!("`{raw}` appears twice")));
        }
        let missing = match &entry {
            ChainEntry::PasswordFile if config.auth.password_file.is_none() => {
                Some("needs an [auth.password_file] table")
            }
            ChainEntry::Jwt if config.auth.jwt.is_none() => Some("needs an [auth.jwt] table"),
            ChainEntry::Acl if config.acl.rules.is_empty() && config.acl.file.is_none() => {
                Some("needs [[acl.rules]] or acl.file")
            }
            _ => None,
        };
        if let Some(what) = missing {
            return Err(violation(at, format!("`{raw}` {what}")));
        }
        if let ChainEntry::Plugin(name) = &entry
            && !config
                .plugins
                .iter()
                .any(|p: &PluginConfig| &p.name == name)
        {
            return Err(violation(
                at,
                format!("no plugin named `{name}` in [[plugins]]"),
            ));
        }
    }
    Ok(())
}
