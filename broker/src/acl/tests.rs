//! Publish and read checks: who selectors, actions, order, placeholders, `$SYS` and token
//! permissions. Shared helpers for the other test modules live here too.
#![allow(clippy::unwrap_used)] // tests may unwrap (house rules)

use std::collections::BTreeMap;

use test_case::test_case;

use super::*;
use crate::auth::identity::TokenPermissions;

/// One inline rule from its four fields (`action` and `permission` as in the config).
pub(super) fn rule(who: &str, action: &str, topic: &str, permission: &str) -> RuleConfig {
    let action = match action {
        "publish" => Action::Publish,
        "subscribe" => Action::Subscribe,
        _ => Action::All,
    };
    let permission = match permission {
        "allow" => Permission::Allow,
        _ => Permission::Deny,
    };
    RuleConfig {
        who: who.into(),
        action,
        topic: topic.into(),
        permission,
    }
}

/// An `Acl` from inline rules with the default default (deny).
pub(super) fn acl(rules: Vec<RuleConfig>) -> Acl {
    Acl::new(&AclConfig {
        rules,
        ..AclConfig::default()
    })
    .unwrap()
}

/// A session for user `alice`, client `c1`, role `ops`.
pub(super) fn alice() -> Identity {
    Identity {
        client_id: "c1".into(),
        username: Some("alice".into()),
        roles: vec!["ops".into()],
        ..Identity::default()
    }
}

fn anonymous() -> Identity {
    Identity {
        client_id: "anon-1".into(),
        anonymous: true,
        ..Identity::default()
    }
}

#[test_case("user:alice" => Verdict::Allow ; "user selector matches username")]
#[test_case("user:bob" => Verdict::NoMatch ; "user selector skips other users")]
#[test_case("client:c1" => Verdict::Allow ; "client selector matches client id")]
#[test_case("client:c2" => Verdict::NoMatch ; "client selector skips other clients")]
#[test_case("role:ops" => Verdict::Allow ; "role selector matches a role")]
#[test_case("group:ops" => Verdict::Allow ; "group is an alias of role")]
#[test_case("role:admin" => Verdict::NoMatch ; "role selector skips missing role")]
#[test_case("anonymous" => Verdict::NoMatch ; "anonymous selector skips authenticated")]
#[test_case("all" => Verdict::Allow ; "all selector matches everyone")]
fn who_selector_applies_to_alice(who: &str) -> Verdict {
    let session = acl(vec![rule(who, "all", "a/b", "allow")]).compile(&alice());
    session.check_publish("a/b")
}

#[test]
fn anonymous_selector_matches_anonymous_sessions_only() {
    let acl = acl(vec![rule("anonymous", "publish", "public/#", "allow")]);
    assert_eq!(
        acl.compile(&anonymous()).check_publish("public/x"),
        Verdict::Allow
    );
    assert_eq!(
        acl.compile(&alice()).check_publish("public/x"),
        Verdict::NoMatch
    );
}

#[test]
fn user_selector_does_not_match_anonymous_without_username() {
    let acl = acl(vec![rule("user:alice", "all", "a", "allow")]);
    assert_eq!(
        acl.compile(&anonymous()).check_publish("a"),
        Verdict::NoMatch
    );
}

#[test_case("publish", "a/b" => (Verdict::Allow, Verdict::NoMatch) ; "publish rule grants only publish")]
#[test_case("subscribe", "a/b" => (Verdict::NoMatch, Verdict::Allow) ; "subscribe rule grants only reading")]
#[test_case("all", "a/b" => (Verdict::Allow, Verdict::Allow) ; "all rule grants both")]
fn action_selects_the_checks(action: &str, topic: &str) -> (Verdict, Verdict) {
    let session = acl(vec![rule("all", action, "a/+", "allow")]).compile(&alice());
    (session.check_publish(topic), session.check_read(topic))
}

#[test]
fn subscribe_only_rule_grants_subscription_but_not_publish() {
    let session = acl(vec![rule("all", "subscribe", "a/#", "allow")]).compile(&alice());
    assert_eq!(
        session.check_subscribe("a/+"),
        SubscribeVerdict::Allow { partial: false }
    );
    assert_eq!(session.check_publish("a/x"), Verdict::NoMatch);
    let session = acl(vec![rule("all", "publish", "a/#", "allow")]).compile(&alice());
    assert_eq!(session.check_subscribe("a/+"), SubscribeVerdict::NoMatch);
}

#[test_case("a/b" => Verdict::Deny ; "earlier deny wins over later allow")]
#[test_case("a/c" => Verdict::Allow ; "later allow applies where the deny does not match")]
#[test_case("b" => Verdict::NoMatch ; "no match when no rule matches")]
fn first_match_wins(topic: &str) -> Verdict {
    let session = acl(vec![
        rule("all", "all", "a/b", "deny"),
        rule("user:alice", "all", "a/#", "allow"),
        rule("all", "all", "a/c", "deny"),
    ])
    .compile(&alice());
    session.check_publish(topic)
}

#[test]
fn first_match_wins_across_wildcard_and_literal_branches() {
    let session = acl(vec![
        rule("all", "publish", "+/b/#", "allow"),
        rule("all", "publish", "a/b/c", "deny"),
        rule("all", "publish", "a/#", "deny"),
    ])
    .compile(&alice());
    assert_eq!(session.check_publish("a/b/c"), Verdict::Allow);
    assert_eq!(session.check_publish("a/x"), Verdict::Deny);
}

#[test]
fn empty_acl_matches_nothing_and_reports_default() {
    let acl = Acl::new(&AclConfig::default()).unwrap();
    assert!(acl.is_empty());
    assert_eq!(acl.len(), 0);
    assert_eq!(acl.default_permission(), Permission::Deny);
    let session = acl.compile(&alice());
    assert!(session.is_empty());
    assert_eq!(session.check_publish("a"), Verdict::NoMatch);
    assert_eq!(session.check_read("a"), Verdict::NoMatch);
    assert_eq!(session.check_subscribe("#"), SubscribeVerdict::NoMatch);
}

#[test]
fn no_match_resolves_to_the_configured_default() {
    assert_eq!(
        Verdict::NoMatch.or_default(Permission::Allow),
        Permission::Allow
    );
    assert_eq!(
        Verdict::NoMatch.or_default(Permission::Deny),
        Permission::Deny
    );
    assert_eq!(
        Verdict::Deny.or_default(Permission::Allow),
        Permission::Deny
    );
    assert_eq!(
        Verdict::Allow.or_default(Permission::Deny),
        Permission::Allow
    );
}

/// alice with attribute `site = s1` and claim `tenant = t1`.
fn alice_with_extras() -> Identity {
    Identity {
        attributes: BTreeMap::from([("site".into(), "s1".into())]),
        claims: BTreeMap::from([("tenant".into(), "t1".into())]),
        ..alice()
    }
}

#[test_case("users/${username}/#", "users/alice/x" => Verdict::Allow ; "username")]
#[test_case("users/${username}/#", "users/bob/x" => Verdict::NoMatch ; "username of someone else")]
#[test_case("devices/${clientid}/#", "devices/c1/up" => Verdict::Allow ; "clientid")]
#[test_case("sites/${attr.site}/+", "sites/s1/t" => Verdict::Allow ; "attribute")]
#[test_case("sites/${attr.site}/+", "sites/s2/t" => Verdict::NoMatch ; "other attribute value")]
#[test_case("t/${claim.tenant}", "t/t1" => Verdict::Allow ; "claim")]
#[test_case("${claim.tenant}/${username}", "t1/alice" => Verdict::Allow ; "two placeholders and first level")]
#[test_case("t/${attr.missing}/#", "t/x" => Verdict::NoMatch ; "missing attribute skips rule")]
#[test_case("t/${claim.missing}", "t/" => Verdict::NoMatch ; "missing claim skips rule")]
fn placeholders_substitute_whole_levels(filter: &str, topic: &str) -> Verdict {
    let session = acl(vec![rule("all", "all", filter, "allow")]).compile(&alice_with_extras());
    session.check_publish(topic)
}

#[test_case("a+b" ; "plus")]
#[test_case("#" ; "hash")]
#[test_case("a/b" ; "slash")]
#[test_case("" ; "empty")]
fn placeholder_value_with_wildcard_slash_or_empty_never_matches(value: &str) {
    let id = Identity {
        client_id: value.into(),
        username: Some(value.into()),
        attributes: BTreeMap::from([("k".into(), value.into())]),
        claims: BTreeMap::from([("k".into(), value.into())]),
        ..Identity::default()
    };
    for filter in [
        "d/${clientid}/x",
        "d/${username}/x",
        "d/${attr.k}/x",
        "d/${claim.k}/x",
    ] {
        let acl = acl(vec![rule("all", "all", filter, "allow")]);
        let session = acl.compile(&id);
        assert!(
            session.is_empty(),
            "{filter} with {value:?} must be skipped"
        );
        for topic in ["d/a+b/x", "d/a/b/x", "d//x", "d/x/x", "d/#/x"] {
            assert_eq!(
                session.check_publish(topic),
                Verdict::NoMatch,
                "{filter} {topic}"
            );
            assert_eq!(
                session.check_read(topic),
                Verdict::NoMatch,
                "{filter} {topic}"
            );
        }
        assert_eq!(session.check_subscribe("d/+/x"), SubscribeVerdict::NoMatch);
    }
}

#[test]
fn skipped_placeholder_rule_lets_later_rules_decide() {
    let id = Identity {
        client_id: "c/1".into(),
        ..alice()
    };
    let session = acl(vec![
        rule("all", "all", "d/${clientid}/#", "deny"),
        rule("all", "all", "d/#", "allow"),
    ])
    .compile(&id);
    assert_eq!(session.check_publish("d/c/1/x"), Verdict::Allow);
}

#[test]
fn placeholder_value_starting_with_dollar_in_first_level_does_not_grant_sys() {
    let id = Identity {
        username: Some("$SYS".into()),
        ..alice()
    };
    let session = acl(vec![rule("all", "all", "${username}/#", "allow")]).compile(&id);
    assert_eq!(session.check_publish("$SYS/x"), Verdict::NoMatch);
    assert_eq!(session.check_read("$SYS/x"), Verdict::Deny);
    // below the first level a `$` value is an ordinary level
    let session = acl(vec![rule("all", "all", "u/${username}", "allow")]).compile(&id);
    assert_eq!(session.check_publish("u/$SYS"), Verdict::Allow);
}

#[test_case("#", "$SYS/broker/uptime" ; "hash")]
#[test_case("+/broker/uptime", "$SYS/broker/uptime" ; "leading plus")]
#[test_case("+/#", "$SYS/broker" ; "plus hash")]
#[test_case("#", "$other/x" ; "other dollar topics too")]
fn leading_wildcard_rule_does_not_reach_dollar_topics(filter: &str, topic: &str) {
    let session = acl(vec![rule("all", "all", filter, "allow")]).compile(&alice());
    assert_eq!(session.check_publish(topic), Verdict::NoMatch);
    assert_ne!(session.check_read(topic), Verdict::Allow);
}

#[test]
fn sys_is_readable_through_an_explicit_sys_rule() {
    let session = acl(vec![
        rule("all", "subscribe", "#", "allow"),
        rule("role:ops", "subscribe", "$SYS/#", "allow"),
    ])
    .compile(&alice());
    assert_eq!(session.check_read("$SYS/broker/uptime"), Verdict::Allow);
    assert_eq!(
        session.check_subscribe("$SYS/broker/+"),
        SubscribeVerdict::Allow { partial: false }
    );
}

#[test]
fn sys_without_explicit_rule_is_denied_even_with_default_allow() {
    let acl = Acl::new(&AclConfig {
        default: Permission::Allow,
        rules: vec![rule("all", "all", "#", "allow")],
        file: None,
    })
    .unwrap();
    let session = acl.compile(&alice());
    assert_eq!(session.check_read("$SYS/broker/uptime"), Verdict::Deny);
    assert_eq!(session.check_subscribe("$SYS/#"), SubscribeVerdict::Deny);
    // the restriction is about `$SYS`; other topics keep NoMatch for the caller's default
    assert_eq!(session.check_read("$other"), Verdict::NoMatch);
}

fn with_token(publish: &[&str], subscribe: &[&str]) -> Identity {
    Identity {
        permissions: Some(TokenPermissions {
            publish: publish.iter().map(|s| s.to_string()).collect(),
            subscribe: subscribe.iter().map(|s| s.to_string()).collect(),
        }),
        ..alice()
    }
}

#[test]
fn token_permissions_are_checked_before_rules() {
    let id = with_token(&["t/pub/#"], &["t/sub/#"]);
    let session = acl(vec![rule("all", "all", "t/#", "deny")]).compile(&id);
    assert_eq!(session.check_publish("t/pub/x"), Verdict::Allow);
    assert_eq!(session.check_publish("t/sub/x"), Verdict::Deny);
    assert_eq!(session.check_read("t/sub/x"), Verdict::Allow);
    assert_eq!(session.check_read("t/pub/x"), Verdict::Deny);
    assert_eq!(
        session.check_subscribe("t/sub/+"),
        SubscribeVerdict::Allow { partial: false }
    );
    assert_eq!(session.check_subscribe("t/pub/+"), SubscribeVerdict::Deny);
}

#[test]
fn token_permissions_fall_through_to_rules_and_default() {
    let id = with_token(&["t/a"], &["t/a/+"]);
    let session = acl(vec![rule("all", "all", "r/#", "allow")]).compile(&id);
    assert_eq!(session.check_publish("r/x"), Verdict::Allow);
    assert_eq!(session.check_publish("t/b"), Verdict::NoMatch);
    // a token filter that only overlaps the subscription does not grant it
    assert_eq!(session.check_subscribe("t/a/#"), SubscribeVerdict::NoMatch);
}

#[test]
fn token_permissions_skip_invalid_filters_and_respect_dollar_topics() {
    let id = with_token(&["a/#/b", "x/#", "#"], &["#", "+"]);
    let session = acl(vec![]).compile(&id);
    assert_eq!(session.check_publish("a/x/b"), Verdict::Allow); // through `#` only
    let id = with_token(&["a/#/b", "a/b+"], &[]);
    assert_eq!(
        acl(vec![]).compile(&id).check_publish("a/x/b"),
        Verdict::NoMatch
    );
    assert_eq!(session.check_publish("x/y"), Verdict::Allow);
    assert_eq!(session.check_publish("$SYS/x"), Verdict::NoMatch);
    assert_eq!(session.check_read("$SYS/x"), Verdict::Deny);
    let id = with_token(&[], &["$SYS/#"]);
    assert_eq!(
        acl(vec![]).compile(&id).check_read("$SYS/x"),
        Verdict::Allow
    );
}

#[test]
fn identical_filters_keep_the_first_rule() {
    let session = acl(vec![
        rule("user:alice", "publish", "a/#", "deny"),
        rule("all", "publish", "a/#", "allow"),
    ])
    .compile(&alice());
    assert_eq!(session.check_publish("a"), Verdict::Deny);
    assert_eq!(session.len(), 2);
}

#[test_case("a//b", "a//b" => Verdict::Allow ; "empty middle level literal")]
#[test_case("a/+/b", "a//b" => Verdict::Allow ; "plus matches empty level")]
#[test_case("a/#", "a" => Verdict::Allow ; "hash matches its parent")]
#[test_case("a/+", "a" => Verdict::NoMatch ; "plus needs a level")]
#[test_case("a/b", "a/b/c" => Verdict::NoMatch ; "longer topic")]
#[test_case("a/$b", "a/$b" => Verdict::Allow ; "dollar below first level is ordinary")]
#[test_case("+/$b", "a/$b" => Verdict::Allow ; "plus before dollar level")]
fn matches_topics_like_the_reference_matcher(filter: &str, topic: &str) -> Verdict {
    let session = acl(vec![rule("all", "publish", filter, "allow")]).compile(&alice());
    let reference = crate::topic::TopicFilter::new(filter)
        .unwrap()
        .matches(&crate::topic::TopicName::new(topic).unwrap());
    let verdict = session.check_publish(topic);
    assert_eq!(verdict == Verdict::Allow, reference);
    verdict
}

#[test]
fn acl_and_session_acl_are_send_and_sync() {
    fn assert_send_sync<T: Send + Sync + 'static>(_: &T) {}
    let acl = acl(vec![rule("all", "all", "a/${username}/#", "allow")]);
    let session = acl.compile(&alice());
    assert_send_sync(&acl);
    assert_send_sync(&session);
    assert_eq!(session.check_publish("a/alice/x"), Verdict::Allow);
}
