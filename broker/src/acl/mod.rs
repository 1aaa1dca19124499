//! The built-in per-topic ACL: configured rules (inline in the broker config and/or in
//! their own TOML file) say who may publish or subscribe to which topic filters, first
//! match wins. [`Acl::new`] validates the rules once; [`Acl::compile`] turns them into a
//! [`SessionAcl`] per connection, whose checks are cheap enough for every PUBLISH and, for
//! partially granted subscriptions, every delivery.
//!
//! Verdicts are `Allow`, `Deny` or `NoMatch`: the ACL never applies the default itself,
//! the caller does (with [`Acl::default_permission`]), so other deciders may sit in the
//! chain. This module reads the rules file at construction and otherwise does no I/O; it
//! knows nothing about packets, reason codes, sockets or the router.
//!
//! Layout: `rule` parses one rule, `level` holds pre-split filters and the filter-vs-filter
//! relations, `trie` the first-match index, `compile` the per-session form.

mod compile;
mod level;
pub mod rule;
mod trie;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_config;
#[cfg(test)]
mod tests_subscribe;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::auth::identity::Identity;

pub use compile::SessionAcl;
use rule::Rule;

/// The `[acl]` section of the broker config.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AclConfig {
    /// Applies when no rule matches and nothing else in the chain decided (the caller
    /// applies it). Default `deny`.
    pub default: Permission,
    /// An extra rules file (TOML, a `[[rules]]` array of [`RuleConfig`]), appended after
    /// the inline rules. Relative paths are taken as they are (from the working directory).
    pub file: Option<PathBuf>,
    /// Inline rules, checked first, in order.
    pub rules: Vec<RuleConfig>,
}

/// One rule as written in the config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// `user:NAME`, `client:ID`, `role:NAME` (alias `group:NAME`), `anonymous` or `all`.
    pub who: String,
    /// `publish`, `subscribe` or `all`.
    pub action: Action,
    /// A topic filter; a level may be exactly one of `${username}`, `${clientid}`,
    /// `${attr.NAME}`, `${claim.NAME}`.
    pub topic: String,
    /// `allow` or `deny`.
    pub permission: Permission,
}

/// What a rule governs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// PUBLISH.
    Publish,
    /// SUBSCRIBE and the deliveries it brings.
    Subscribe,
    /// Both.
    All,
}

/// Allow or deny.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Permission {
    /// Allow.
    Allow,
    /// Deny (the default).
    #[default]
    Deny,
}

/// Why the ACL configuration was rejected. Messages name where: `acl.rules[3].topic: ...`
/// for inline rules, `{file}: rules[3].who: ...` for the rules file (indices from 0).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// One rule is invalid.
    #[error("{at}.{}: {source}", .source.field())]
    Rule {
        /// `acl.rules[N]` or `{file}: rules[N]`.
        at: String,
        /// What is wrong with it.
        source: rule::Error,
    },
    /// The rules file could not be read.
    #[error("{}: cannot read acl rules file: {source}", .path.display())]
    ReadFile {
        /// The configured path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The rules file is not valid TOML or does not have the rules shape.
    #[error("{}: {source}", .path.display())]
    ParseFile {
        /// The configured path.
        path: PathBuf,
        /// The parse error, with line and column.
        source: toml::de::Error,
    },
}

/// The shape of the rules file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RulesFile {
    rules: Vec<RuleConfig>,
}

/// The validated rules, shared by all sessions (`Send + Sync`, keep it in an `Arc`).
#[derive(Debug, Clone, Default)]
pub struct Acl {
    rules: Vec<Rule>,
    default: Permission,
}

impl Acl {
    /// Parses and validates the inline rules, then the file's rules. With no rules and no
    /// file the result [`is_empty`](Acl::is_empty).
    ///
    /// # Errors
    /// The first invalid rule, or the file being unreadable or malformed.
    pub fn new(cfg: &AclConfig) -> Result<Acl, Error> {
        let mut rules = parse_rules(&cfg.rules, |i| format!("acl.rules[{i}]"))?;
        if let Some(path) = &cfg.file {
            rules.extend(load_file(path)?);
        }
        Ok(Acl {
            rules,
            default: cfg.default,
        })
    }

    /// True when there are no rules at all.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Number of rules (inline plus file).
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// The configured default, for the caller to apply to `NoMatch`.
    pub fn default_permission(&self) -> Permission {
        self.default
    }

    /// Compiles the rules for one session (at CONNECT, after authentication).
    pub fn compile(&self, id: &Identity) -> SessionAcl {
        compile::compile(&self.rules, self.default, id)
    }
}

fn parse_rules(cfgs: &[RuleConfig], at: impl Fn(usize) -> String) -> Result<Vec<Rule>, Error> {
    cfgs.iter()
        .enumerate()
        .map(|(i, cfg)| Rule::parse(cfg).map_err(|source| Error::Rule { at: at(i), source }))
        .collect()
}

fn load_file(path: &Path) -> Result<Vec<Rule>, Error> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::ReadFile {
        path: path.to_owned(),
        source,
    })?;
    let file: RulesFile = toml::from_str(&text).map_err(|source| Error::ParseFile {
        path: path.to_owned(),
        source,
    })?;
    parse_rules(&file.rules, |i| format!("{}: rules[{i}]", path.display()))
}

/// The outcome of a publish or read check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// A rule (or the token) allows it.
    Allow,
    /// A rule denies it.
    Deny,
    /// No rule matched; the caller applies the default.
    NoMatch,
}

impl Verdict {
    /// Resolves `NoMatch` to `default`.
    pub fn or_default(self, default: Permission) -> Permission {
        match self {
            Verdict::Allow => Permission::Allow,
            Verdict::Deny => Permission::Deny,
            Verdict::NoMatch => default,
        }
    }
}

/// The outcome of a subscribe check (filter against rule).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscribeVerdict {
    /// Granted. With `partial`, an earlier deny rule covers some of the filter's topics:
    /// the caller must call [`SessionAcl::check_read`] for each delivery.
    Allow {
        /// Deliveries need [`SessionAcl::check_read`].
        partial: bool,
    },
    /// A rule covering the whole filter denies it.
    Deny,
    /// No rule covers the filter; the caller applies the default.
    NoMatch,
}
