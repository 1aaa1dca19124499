//! Parsing and validating one configured ACL rule: the `who` selector and the topic
//! filter template with its `${...}` placeholders. Runs once at config load; the result is
//! compiled per session by `acl::compile`.
//!
//! This module knows the rule syntax and the topic filter rules (through `crate::topic`);
//! it must not know about sessions, the trie or how checks are evaluated.

use std::sync::Arc;

use crate::auth::identity::Identity;
use crate::topic::{self, TopicFilter};

use super::{Action, Permission, RuleConfig};

/// The deepest rule filter accepted. The session trie is walked recursively, one stack
/// frame per level of the deepest rule, so a 30,000-level filter (a legal 64 KiB filter)
/// must not reach it; 1,024 levels is far beyond any real topic tree.
pub const MAX_RULE_LEVELS: usize = 1_024;

/// Why one rule was rejected. [`Error::field`] names the offending field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The `who` field is not one of the known selectors.
    #[error(
        "unknown selector {0:?}, expected user:NAME, client:ID, role:NAME, group:NAME, anonymous or all"
    )]
    UnknownWho(String),
    /// `user:`, `client:`, `role:` or `group:` without a name.
    #[error("{0:?} needs a name after the colon")]
    EmptyName(String),
    /// `${` appears in a level that is not exactly one placeholder.
    #[error("placeholder must occupy a whole topic level, found {0:?}")]
    PlaceholderInsideLevel(String),
    /// `${...}` names no known placeholder.
    #[error(
        "unknown placeholder {0:?}, expected ${{username}}, ${{clientid}}, ${{attr.NAME}} or ${{claim.NAME}}"
    )]
    UnknownPlaceholder(String),
    /// The filter has more levels than [`MAX_RULE_LEVELS`].
    #[error("rule filter has {0} levels, more than {MAX_RULE_LEVELS}")]
    TooManyLevels(usize),
    /// The topic filter (with placeholders standing for one level each) is invalid.
    #[error(transparent)]
    Topic(#[from] topic::Error),
}

impl Error {
    /// The rule field the error is about: `who` or `topic`.
    pub fn field(&self) -> &'static str {
        match self {
            Error::UnknownWho(_) | Error::EmptyName(_) => "who",
            Error::PlaceholderInsideLevel(_)
            | Error::UnknownPlaceholder(_)
            | Error::TooManyLevels(_)
            | Error::Topic(_) => "topic",
        }
    }
}

/// Who a rule applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Who {
    /// `user:NAME`: sessions whose username is `NAME`.
    User(String),
    /// `client:ID`: sessions whose client id is `ID`.
    Client(String),
    /// `role:NAME` or `group:NAME`: sessions holding that role.
    Role(String),
    /// `anonymous`: sessions no authenticator vouched for.
    Anonymous,
    /// `all`: every session.
    All,
}

impl Who {
    /// Parses a `who` field.
    ///
    /// # Errors
    /// [`Error::UnknownWho`] or [`Error::EmptyName`].
    pub fn parse(s: &str) -> Result<Who, Error> {
        match s {
            "anonymous" => return Ok(Who::Anonymous),
            "all" => return Ok(Who::All),
            _ => {}
        }
        let Some((kind, name)) = s.split_once(':') else {
            return Err(Error::UnknownWho(s.to_owned()));
        };
        let make: fn(String) -> Who = match kind {
            "user" => Who::User,
            "client" => Who::Client,
            "role" | "group" => Who::Role,
            _ => return Err(Error::UnknownWho(s.to_owned())),
        };
        if name.is_empty() {
            return Err(Error::EmptyName(s.to_owned()));
        }
        Ok(make(name.to_owned()))
    }

    /// True when a rule with this selector applies to the session `id`.
    pub fn applies_to(&self, id: &Identity) -> bool {
        match self {
            Who::User(name) => id.username.as_deref() == Some(name.as_str()),
            Who::Client(client) => id.client_id == *client,
            Who::Role(role) => id.roles.iter().any(|r| r == role),
            Who::Anonymous => id.anonymous,
            Who::All => true,
        }
    }
}

/// A value taken from the session's identity, standing for one whole topic level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placeholder {
    /// `${username}`
    Username,
    /// `${clientid}`
    ClientId,
    /// `${attr.NAME}`: an attribute granted by a plugin.
    Attr(String),
    /// `${claim.NAME}`: a string claim of a verified JWT.
    Claim(String),
}

impl Placeholder {
    /// The value for `id`, or `None` when it is missing.
    pub fn resolve<'a>(&self, id: &'a Identity) -> Option<&'a str> {
        match self {
            Placeholder::Username => id.username.as_deref(),
            Placeholder::ClientId => Some(id.client_id.as_str()),
            Placeholder::Attr(name) => id.attributes.get(name).map(String::as_str),
            Placeholder::Claim(name) => id.claims.get(name).map(String::as_str),
        }
    }
}

/// One level of a rule's topic filter before substitution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LevelTemplate {
    /// A literal level (possibly empty, possibly starting with `$`).
    Literal(Arc<str>),
    /// `+`
    Plus,
    /// `#` (always the last level)
    Hash,
    /// A placeholder standing for the whole level.
    Placeholder(Placeholder),
}

/// A validated rule, as configured (before any session is known).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Who the rule applies to.
    pub who: Who,
    /// Publish, subscribe or both.
    pub action: Action,
    /// The topic filter, level by level; valid as a filter once placeholders are
    /// substituted by single levels.
    pub levels: Vec<LevelTemplate>,
    /// Allow or deny.
    pub permission: Permission,
}

impl Rule {
    /// Validates one configured rule.
    ///
    /// # Errors
    /// The first problem found, `who` before `topic`.
    pub fn parse(cfg: &RuleConfig) -> Result<Rule, Error> {
        Ok(Rule {
            who: Who::parse(&cfg.who)?,
            action: cfg.action,
            levels: parse_topic(&cfg.topic)?,
            permission: cfg.permission,
        })
    }
}

/// Splits a topic template into levels and validates it as a topic filter, each
/// placeholder counting as one literal level.
fn parse_topic(s: &str) -> Result<Vec<LevelTemplate>, Error> {
    let mut levels = Vec::new();
    let mut check = String::with_capacity(s.len());
    for (i, level) in s.split('/').enumerate() {
        if i > 0 {
            check.push('/');
        }
        let template = match parse_placeholder(level)? {
            Some(placeholder) => {
                check.push('x');
                LevelTemplate::Placeholder(placeholder)
            }
            None => {
                check.push_str(level);
                match level {
                    "+" => LevelTemplate::Plus,
                    "#" => LevelTemplate::Hash,
                    literal => LevelTemplate::Literal(literal.into()),
                }
            }
        };
        levels.push(template);
    }
    TopicFilter::new(check)?;
    if levels.len() > MAX_RULE_LEVELS {
        return Err(Error::TooManyLevels(levels.len()));
    }
    Ok(levels)
}

/// `Ok(None)` for a level without `${`, the placeholder for a level that is exactly one.
fn parse_placeholder(level: &str) -> Result<Option<Placeholder>, Error> {
    if !level.contains("${") {
        return Ok(None);
    }
    let inner = level
        .strip_prefix("${")
        .and_then(|rest| rest.strip_suffix('}'))
        .filter(|inner| !inner.contains(['{', '}', '$']))
        .ok_or_else(|| Error::PlaceholderInsideLevel(level.to_owned()))?;
    let named = |prefix: &str| inner.strip_prefix(prefix).filter(|n| !n.is_empty());
    let placeholder = match inner {
        "username" => Placeholder::Username,
        "clientid" => Placeholder::ClientId,
        _ => match (named("attr."), named("claim.")) {
            (Some(name), _) => Placeholder::Attr(name.to_owned()),
            (_, Some(name)) => Placeholder::Claim(name.to_owned()),
            _ => return Err(Error::UnknownPlaceholder(level.to_owned())),
        },
    };
    Ok(Some(placeholder))
}
