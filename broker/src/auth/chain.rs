//! The chain semantics: built-ins and plugins asked in the configured order; the first
//! entry that allows or denies decides and "no opinion" passes on.
//!
//! - Connect: `password_file` (unknown users pass on, a wrong password refuses), `jwt`
//!   (a password not shaped like a token passes on), plugins' `on-connect`. When
//!   nobody decides, a client that sent a password is refused if the chain had an
//!   authenticator to check it; otherwise anonymous access decides.
//! - Subscribe: `acl` (filter against rule) and plugins' `on-subscribe`; when nobody
//!   decides, the ACL default applies if the chain has the ACL, else the subscription
//!   is granted.
//! - Publish and delivery: the ACL, when the chain has it (plugins' `on-publish` runs
//!   afterwards as the rewrite chain).

use std::time::SystemTime;

use crate::acl::{Permission, SessionAcl, SubscribeVerdict, Verdict};
use crate::config::ChainEntry;
use crate::plugin::{
    ClientInfo, ConnectOutcome, Credentials, HookClient, PluginChain, SubscribeOutcome,
};
use crate::types::{QoS, ReasonCode};

use super::Auth;
use super::identity::Identity;
use super::jwt::{JwtGrant, JwtVerdict};
use super::password::PasswordVerdict;

/// A refusal: the reason code for CONNACK, SUBACK, PUBACK or PUBREC, and a reason
/// string for MQTT 5 clients and the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// MQTT 5 reason code (0x80 and above).
    pub code: ReasonCode,
    /// Why, safe to log and to send (never a credential).
    pub reason: String,
    /// Which chain entry refused, for the log.
    pub by: String,
}

impl Refusal {
    fn new(code: ReasonCode, reason: impl Into<String>, by: impl Into<String>) -> Refusal {
        Refusal {
            code,
            reason: reason.into(),
            by: by.into(),
        }
    }
}

/// What a connecting client was granted.
#[derive(Debug, Clone)]
pub struct Grant {
    /// Who the session is.
    pub identity: Identity,
    /// Attributes granted by a plugin (also in `identity.attributes`).
    pub attributes: Vec<(String, String)>,
    /// Which chain entry accepted the client (`anonymous` when nobody did).
    pub by: String,
}

/// The session's compiled ACL and the default that applies when nothing decides.
#[derive(Debug)]
pub struct SessionRules {
    /// The rules that apply to this session.
    pub acl: SessionAcl,
    /// `acl.default`.
    pub default: Permission,
}

/// One listener's chain, as the connection layer uses it.
pub struct Chain<'a> {
    /// The loaded built-ins.
    pub auth: &'a Auth,
    /// The entries, in order.
    pub entries: &'a [ChainEntry],
    /// The running plugins.
    pub plugins: &'a PluginChain,
}

impl Chain<'_> {
    /// Whether plugin `name` is selected by entry `entry`.
    fn selects(&self, entry: &ChainEntry, name: &str) -> bool {
        match entry {
            ChainEntry::Plugin(n) => n == name,
            ChainEntry::Plugins => !self
                .entries
                .iter()
                .any(|e| matches!(e, ChainEntry::Plugin(n) if n == name)),
            _ => false,
        }
    }

    /// Runs the connect chain for `client`.
    pub async fn authenticate(
        &self,
        client: &ClientInfo,
        creds: &Credentials,
        allow_anonymous: bool,
    ) -> Result<Grant, Refusal> {
        self.authenticate_with_cert(client, creds, allow_anonymous, false)
            .await
    }

    /// Runs the connect chain for `client`. `by_cert`: the username comes from a
    /// verified client certificate (`username_from_cert`), which authenticates the
    /// client when no entry decides.
    pub async fn authenticate_with_cert(
        &self,
        client: &ClientInfo,
        creds: &Credentials,
        allow_anonymous: bool,
        by_cert: bool,
    ) -> Result<Grant, Refusal> {
        let mut checked = false;
        let mut unknown_user = false;
        for entry in self.entries {
            let decided = match entry {
                ChainEntry::PasswordFile => {
                    let Some(p) = &self.auth.password else {
                        continue;
                    };
                    checked = true;
                    let (Some(user), Some(pass)) = (&creds.username, &creds.password) else {
                        continue;
                    };
                    match p.check(user, pass, client.remote_addr.ip()).await {
                        PasswordVerdict::Accepted => Some(Ok(grant(client, "password_file"))),
                        PasswordVerdict::UnknownUser => {
                            unknown_user = true;
                            None
                        }
                        PasswordVerdict::Rejected => Some(Err(Refusal::new(
                            ReasonCode::BAD_USER_NAME_OR_PASSWORD,
                            "bad user name or password",
                            "password_file",
                        ))),
                        PasswordVerdict::Throttled => Some(Err(Refusal::new(
                            ReasonCode::QUOTA_EXCEEDED,
                            "too many failed attempts; try later",
                            "password_file",
                        ))),
                    }
                }
                ChainEntry::Jwt => {
                    let Some(j) = &self.auth.jwt else {
                        continue;
                    };
                    checked = true;
                    let Some(token) = &creds.password else {
                        continue;
                    };
                    match j.verify(token, creds.username.as_deref(), client.client_id.as_str()) {
                        JwtVerdict::NotAToken => None,
                        JwtVerdict::Invalid(reason) => Some(Err(Refusal::new(
                            ReasonCode::BAD_USER_NAME_OR_PASSWORD,
                            format!("token refused: {reason}"),
                            "jwt",
                        ))),
                        JwtVerdict::Valid(token) => Some(Ok(jwt_grant(client, token))),
                    }
                }
                ChainEntry::Acl => None,
                ChainEntry::Plugins | ChainEntry::Plugin(_) => {
                    if self.plugins.has(crate::plugin::Hook::Connect) {
                        checked = true;
                    }
                    let outcome = self
                        .plugins
                        .on_connect_where(client, creds, |_, name| self.selects(entry, name))
                        .await;
                    match outcome {
                        ConnectOutcome::NoOpinion => None,
                        ConnectOutcome::Allow { attributes } => {
                            Some(Ok(plugin_grant(client, attributes)))
                        }
                        ConnectOutcome::Deny {
                            reason_code,
                            reason,
                        } => Some(Err(Refusal::new(reason_code, reason, "plugin"))),
                    }
                }
            };
            if let Some(decision) = decided {
                return decision;
            }
        }
        if by_cert {
            return Ok(grant(client, "certificate"));
        }
        let refusal = if creds.password.is_some() && checked {
            Some(Refusal::new(
                ReasonCode::BAD_USER_NAME_OR_PASSWORD,
                "bad user name or password",
                "chain",
            ))
        } else if !allow_anonymous {
            Some(Refusal::new(
                ReasonCode::NOT_AUTHORIZED,
                "anonymous access is not allowed",
                "chain",
            ))
        } else {
            None
        };
        match refusal {
            Some(refusal) => {
                // Guessing user names is throttled like guessing passwords.
                if unknown_user && let Some(p) = &self.auth.password {
                    p.record_failure(client.remote_addr.ip());
                }
                Err(refusal)
            }
            None => {
                let mut g = grant(client, "anonymous");
                g.identity.anonymous = true;
                Ok(g)
            }
        }
    }

    /// Runs the subscribe chain for `filter` (without a `$share/group/` prefix;
    /// `plugin_filter` is what plugins see). `Ok((granted, partial))`: `partial` means
    /// a deny rule covers part of the filter, so deliveries must be checked.
    pub async fn authorize_subscribe(
        &self,
        rules: Option<&SessionRules>,
        client: Option<&HookClient>,
        filter: &str,
        plugin_filter: &str,
        requested: QoS,
    ) -> Result<(QoS, bool), Refusal> {
        for entry in self.entries {
            match entry {
                ChainEntry::Acl => {
                    let Some(rules) = rules else { continue };
                    match rules.acl.check_subscribe(filter) {
                        SubscribeVerdict::Allow { partial } => return Ok((requested, partial)),
                        SubscribeVerdict::Deny => return Err(acl_refusal()),
                        SubscribeVerdict::NoMatch => {}
                    }
                }
                ChainEntry::Plugins | ChainEntry::Plugin(_) => {
                    // `None`: no plugin declared on-subscribe, so none has an opinion.
                    let Some(client) = client else { continue };
                    let outcome = self
                        .plugins
                        .on_subscribe_where(client, plugin_filter, requested, |_, name| {
                            self.selects(entry, name)
                        })
                        .await;
                    match outcome {
                        SubscribeOutcome::NoOpinion => {}
                        SubscribeOutcome::Allow(q) => return Ok((q.min(requested), false)),
                        SubscribeOutcome::Deny {
                            reason_code,
                            reason,
                        } => return Err(Refusal::new(reason_code, reason, "plugin")),
                    }
                }
                ChainEntry::PasswordFile | ChainEntry::Jwt => {}
            }
        }
        match rules {
            Some(r) if r.default == Permission::Deny => Err(acl_refusal()),
            _ => Ok((requested, false)),
        }
    }
}

/// The session's ACL compiled for `identity`, when `entries` have the ACL. Needs no
/// plugins, so the handshake calls it without a [`Chain`].
pub fn session_rules(
    auth: &Auth,
    entries: &[ChainEntry],
    identity: &Identity,
) -> Option<SessionRules> {
    if !entries.contains(&ChainEntry::Acl) {
        return None;
    }
    let acl = auth.acl();
    Some(SessionRules {
        acl: acl.compile(identity),
        default: acl.default_permission(),
    })
}

/// The ACL's answer for a PUBLISH to `topic`: the matching rule, else the default.
pub fn authorize_publish(rules: &SessionRules, topic: &str) -> Result<(), Refusal> {
    match rules.acl.check_publish(topic).or_default(rules.default) {
        Permission::Allow => Ok(()),
        Permission::Deny => Err(acl_refusal()),
    }
}

/// Whether a message on `topic` may be delivered to a subscription the chain granted:
/// only an explicit deny rule (or a `$SYS` topic no rule names) stops it.
pub fn may_deliver(rules: &SessionRules, topic: &str) -> bool {
    rules.acl.check_read(topic) != Verdict::Deny
}

fn acl_refusal() -> Refusal {
    Refusal::new(ReasonCode::NOT_AUTHORIZED, "not authorized", "acl")
}

/// A grant with the client's own username and client id.
fn grant(client: &ClientInfo, by: &str) -> Grant {
    Grant {
        identity: Identity {
            client_id: client.client_id.to_string(),
            username: client.username.clone(),
            ..Identity::default()
        },
        attributes: Vec::new(),
        by: by.to_owned(),
    }
}

fn jwt_grant(client: &ClientInfo, token: JwtGrant) -> Grant {
    let mut g = grant(client, "jwt");
    g.identity.claims = token.claims;
    g.identity.roles = token.roles;
    g.identity.permissions = token.permissions;
    g.identity.expires_at = token.expires_at;
    g
}

/// Attributes named `role` or `roles` (comma separated) also become roles.
fn plugin_grant(client: &ClientInfo, attributes: Vec<(String, String)>) -> Grant {
    let mut g = grant(client, "plugin");
    for (key, value) in &attributes {
        if key == "role" || key == "roles" {
            g.identity.roles.extend(
                value
                    .split(',')
                    .map(str::trim)
                    .filter(|r| !r.is_empty())
                    .map(str::to_owned),
            );
        }
        g.identity.attributes.insert(key.clone(), value.clone());
    }
    g.attributes = attributes;
    g
}

/// How long until `expires_at`, zero when it passed.
pub fn remaining(expires_at: SystemTime) -> std::time::Duration {
    expires_at
        .duration_since(SystemTime::now())
        .unwrap_or_default()
}
