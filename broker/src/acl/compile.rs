//! The per-session compiled ACL: at connect, the configured rules are filtered to those
//! whose `who` applies, their placeholders substituted from the [`Identity`] and their
//! filters pre-split into two tries (publish, read) plus an ordered list for subscribe
//! checks; the token's permissions are compiled alongside. Checks then cost a trie walk and
//! never allocate on the publish and delivery paths.
//!
//! This module knows rules, identities and levels; it must not know about packets,
//! sockets, reason codes or the default permission's consequences (the caller applies it).

use crate::auth::identity::{Identity, TokenPermissions};
use crate::topic::TopicFilter;

use super::level::{self, Level, Lvl};
use super::rule::{LevelTemplate, Rule};
use super::trie::{Hit, Trie};
use super::{Action, Permission, SubscribeVerdict, Verdict};

/// The first topic level that only an explicit rule can grant reading.
const SYS: &str = "$SYS";

/// One compiled rule kept for subscribe checks (filter against rule).
#[derive(Debug, Clone)]
struct CompiledRule {
    levels: Vec<Level>,
    permission: Permission,
}

/// A session's ACL, compiled by [`super::Acl::compile`]. Immutable; `Send + Sync`.
#[derive(Debug)]
pub struct SessionAcl {
    publish: Trie,
    read: Trie,
    subscribe: Vec<CompiledRule>,
    token_publish: Vec<Vec<Level>>,
    token_subscribe: Vec<Vec<Level>>,
    default: Permission,
}

/// Builds the session's compiled form from the configured rules, in order.
pub(super) fn compile(rules: &[Rule], default: Permission, id: &Identity) -> SessionAcl {
    let mut acl = SessionAcl {
        publish: Trie::default(),
        read: Trie::default(),
        subscribe: Vec::new(),
        token_publish: Vec::new(),
        token_subscribe: Vec::new(),
        default,
    };
    if let Some(TokenPermissions { publish, subscribe }) = &id.permissions {
        acl.token_publish = compile_token_list(publish);
        acl.token_subscribe = compile_token_list(subscribe);
    }
    for (index, rule) in rules.iter().enumerate() {
        if !rule.who.applies_to(id) {
            continue;
        }
        let Some(levels) = substitute(&rule.levels, id) else {
            continue;
        };
        let hit = Hit {
            index,
            permission: rule.permission,
        };
        if matches!(rule.action, Action::Publish | Action::All) {
            acl.publish.insert(&levels, hit);
        }
        if matches!(rule.action, Action::Subscribe | Action::All) {
            acl.read.insert(&levels, hit);
            acl.subscribe.push(CompiledRule {
                levels,
                permission: rule.permission,
            });
        }
    }
    acl
}

/// Substitutes placeholders; `None` when a value is missing, empty, contains `+`, `#`,
/// `/` or NUL, or starts with `$` in the first level (a placeholder must not turn a rule
/// into an explicit `$SYS` grant). The result is normalised.
fn substitute(templates: &[LevelTemplate], id: &Identity) -> Option<Vec<Level>> {
    let mut levels = Vec::with_capacity(templates.len() + 1);
    for (i, template) in templates.iter().enumerate() {
        levels.push(match template {
            LevelTemplate::Literal(s) => Level::Literal(s.clone()),
            LevelTemplate::Plus => Level::Plus,
            LevelTemplate::Hash => Level::Hash,
            LevelTemplate::Placeholder(p) => {
                let value = p.resolve(id).filter(|v| {
                    !v.is_empty()
                        && !v.contains(['+', '#', '/', '\0'])
                        && (i > 0 || !v.starts_with('$'))
                })?;
                Level::Literal(value.into())
            }
        });
    }
    level::normalise(&mut levels);
    Some(levels)
}

/// Token filters come from a verified JWT but are still untrusted input: invalid ones are
/// skipped (they grant nothing), placeholders are not expanded.
fn compile_token_list(filters: &[String]) -> Vec<Vec<Level>> {
    filters
        .iter()
        .filter(|f| TopicFilter::new(f.as_str()).is_ok())
        .map(|f| level::compile_filter(f))
        .collect()
}

impl SessionAcl {
    /// May this session publish to the topic name `topic`? The token's publish list is
    /// consulted first (allow only), then the rules, first match wins.
    pub fn check_publish(&self, topic: &str) -> Verdict {
        if self.token_publish.iter().any(|f| level::matches(topic, f)) {
            return Verdict::Allow;
        }
        self.publish
            .find(topic)
            .map_or(Verdict::NoMatch, Verdict::from)
    }

    /// May this session receive a message on the topic name `topic`? Called at delivery
    /// for subscriptions granted with `partial: true`. Token subscribe list first, then
    /// the subscribe rules. A `$SYS` topic no rule matched is denied, not `NoMatch`.
    pub fn check_read(&self, topic: &str) -> Verdict {
        if self
            .token_subscribe
            .iter()
            .any(|f| level::matches(topic, f))
        {
            return Verdict::Allow;
        }
        match self.read.find(topic) {
            Some(hit) => hit.into(),
            None if is_sys(topic) => Verdict::Deny,
            None => Verdict::NoMatch,
        }
    }

    /// May this session subscribe to the (valid, unshared) filter `filter`?
    ///
    /// The first rule that covers the whole filter decides. Deny rules before it that only
    /// overlap the filter make an allow `partial` (the caller must then [`check_read`]
    /// each delivery); allow rules that only overlap grant nothing. With no covering rule
    /// the result is `NoMatch`, except that a `$SYS` filter is denied, and that with a
    /// default of allow an overlapping deny yields `Allow { partial: true }` so the
    /// default cannot leak the denied topics.
    ///
    /// [`check_read`]: SessionAcl::check_read
    pub fn check_subscribe(&self, filter: &str) -> SubscribeVerdict {
        let f = level::split_filter(filter);
        if self.token_subscribe.iter().any(|r| level::covers(&f, r)) {
            return SubscribeVerdict::Allow { partial: false };
        }
        let mut partial = false;
        for rule in &self.subscribe {
            if level::covers(&f, &rule.levels) {
                return match rule.permission {
                    Permission::Allow => SubscribeVerdict::Allow { partial },
                    Permission::Deny => SubscribeVerdict::Deny,
                };
            }
            if rule.permission == Permission::Deny && level::overlaps(&f, &rule.levels) {
                partial = true;
            }
        }
        if matches!(f.first(), Some(Lvl::Lit(SYS))) {
            SubscribeVerdict::Deny
        } else if partial && self.default == Permission::Allow {
            SubscribeVerdict::Allow { partial: true }
        } else {
            SubscribeVerdict::NoMatch
        }
    }

    /// Number of compiled rules (publish and subscribe sides counted separately), for
    /// logging and tests.
    pub fn len(&self) -> usize {
        self.publish.len() + self.read.len()
    }

    /// True when no configured rule applies to this session.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn is_sys(topic: &str) -> bool {
    topic.split('/').next() == Some(SYS)
}

impl From<Hit> for Verdict {
    fn from(hit: Hit) -> Verdict {
        match hit.permission {
            Permission::Allow => Verdict::Allow,
            Permission::Deny => Verdict::Deny,
        }
    }
}
