//! Subscribe checks (filter against rule), partial grants and delivery-time reads, plus
//! property tests tying `check_subscribe` to `check_read` and the trie to the reference
//! matcher in `crate::topic`.
#![allow(clippy::unwrap_used)] // tests may unwrap (house rules)

use proptest::prelude::*;
use test_case::test_case;

use super::level::{self, compile_filter, split_filter};
use super::tests::{acl, alice, rule};
use super::*;
use crate::topic::{TopicFilter, TopicName};

const ALLOW: SubscribeVerdict = SubscribeVerdict::Allow { partial: false };
const PARTIAL: SubscribeVerdict = SubscribeVerdict::Allow { partial: true };

#[test_case("a/#", "a/b/+" => ALLOW ; "hash rule covers deeper plus filter")]
#[test_case("a/+", "a/#" => SubscribeVerdict::NoMatch ; "plus rule does not cover hash filter")]
#[test_case("a/#", "a/+/c" => ALLOW ; "hash rule covers plus filter")]
#[test_case("a/+/c", "a/#" => SubscribeVerdict::NoMatch ; "narrow rule does not cover hash filter")]
#[test_case("a/+", "a/b" => ALLOW ; "plus rule covers literal filter")]
#[test_case("a/b", "a/+" => SubscribeVerdict::NoMatch ; "literal rule does not cover plus filter")]
#[test_case("+", "a" => ALLOW ; "lone plus rule covers one level")]
#[test_case("a", "+" => SubscribeVerdict::NoMatch ; "literal rule does not cover lone plus")]
#[test_case("#", "a/#" => ALLOW ; "hash rule covers everything")]
#[test_case("a/#", "#" => SubscribeVerdict::NoMatch ; "narrow hash rule does not cover hash")]
#[test_case("a/#", "a" => ALLOW ; "hash rule covers its parent")]
#[test_case("a/+", "a/+/#" => SubscribeVerdict::NoMatch ; "plus rule does not cover deeper filter")]
#[test_case("+/#", "#" => ALLOW ; "plus hash rule equals hash")]
#[test_case("#", "+/#" => ALLOW ; "hash rule covers plus hash")]
#[test_case("#", "$SYS/#" => SubscribeVerdict::Deny ; "hash rule does not cover sys")]
#[test_case("+/x", "$SYS/x" => SubscribeVerdict::Deny ; "plus rule does not cover sys")]
#[test_case("$SYS/#", "$SYS/broker/+" => ALLOW ; "explicit sys rule covers sys filter")]
#[test_case("#", "$app/x" => SubscribeVerdict::NoMatch ; "hash rule does not cover other dollar topics")]
fn subscription_needs_a_rule_covering_the_filter(
    rule_filter: &str,
    filter: &str,
) -> SubscribeVerdict {
    let session = acl(vec![rule("all", "subscribe", rule_filter, "allow")]).compile(&alice());
    session.check_subscribe(filter)
}

#[test]
fn deny_rule_overlapping_the_filter_makes_the_grant_partial() {
    let session = acl(vec![
        rule("all", "subscribe", "a/secret/#", "deny"),
        rule("all", "subscribe", "a/#", "allow"),
    ])
    .compile(&alice());
    assert_eq!(session.check_subscribe("a/#"), PARTIAL);
    assert_eq!(session.check_subscribe("a/+/x"), PARTIAL);
    assert_eq!(session.check_read("a/secret"), Verdict::Deny);
    assert_eq!(session.check_read("a/secret/x"), Verdict::Deny);
    assert_eq!(session.check_read("a/public"), Verdict::Allow);
    // disjoint from the deny rule: not partial
    assert_eq!(session.check_subscribe("a/public/#"), ALLOW);
    // covered by the deny rule: denied
    assert_eq!(
        session.check_subscribe("a/secret/+"),
        SubscribeVerdict::Deny
    );
}

#[test]
fn deny_rule_after_the_deciding_allow_does_not_matter() {
    let session = acl(vec![
        rule("all", "subscribe", "a/#", "allow"),
        rule("all", "subscribe", "a/secret", "deny"),
    ])
    .compile(&alice());
    assert_eq!(session.check_subscribe("a/#"), ALLOW);
    assert_eq!(session.check_read("a/secret"), Verdict::Allow);
}

#[test]
fn allow_rule_that_only_overlaps_does_not_grant() {
    let session = acl(vec![
        rule("all", "subscribe", "a/b", "allow"),
        rule("all", "subscribe", "a/c/#", "allow"),
    ])
    .compile(&alice());
    assert_eq!(session.check_subscribe("a/+"), SubscribeVerdict::NoMatch);
    assert_eq!(session.check_subscribe("a/#"), SubscribeVerdict::NoMatch);
    assert_eq!(session.check_subscribe("a/b"), ALLOW);
}

#[test]
fn deny_rule_covering_the_filter_denies_it() {
    let session = acl(vec![
        rule("all", "subscribe", "a/+", "deny"),
        rule("all", "subscribe", "#", "allow"),
    ])
    .compile(&alice());
    assert_eq!(session.check_subscribe("a/b"), SubscribeVerdict::Deny);
    assert_eq!(session.check_subscribe("a/+"), SubscribeVerdict::Deny);
    assert_eq!(session.check_subscribe("a/#"), PARTIAL);
    assert_eq!(session.check_read("a/b"), Verdict::Deny);
    assert_eq!(session.check_read("a/b/c"), Verdict::Allow);
}

#[test]
fn overlapping_deny_with_no_covering_rule_is_no_match_under_default_deny() {
    let session = acl(vec![rule("all", "subscribe", "a/secret", "deny")]).compile(&alice());
    assert_eq!(session.check_subscribe("a/#"), SubscribeVerdict::NoMatch);
}

#[test]
fn overlapping_deny_under_default_allow_is_partial_not_no_match() {
    let acl = Acl::new(&AclConfig {
        default: Permission::Allow,
        rules: vec![rule("all", "subscribe", "a/secret", "deny")],
        file: None,
    })
    .unwrap();
    let session = acl.compile(&alice());
    assert_eq!(session.check_subscribe("a/#"), PARTIAL);
    assert_eq!(session.check_read("a/secret"), Verdict::Deny);
    assert_eq!(session.check_read("a/x"), Verdict::NoMatch);
    assert_eq!(session.check_subscribe("b/#"), SubscribeVerdict::NoMatch);
}

#[test]
fn placeholders_apply_to_subscribe_checks() {
    let session = acl(vec![rule("all", "subscribe", "u/${username}/#", "allow")]).compile(&alice());
    assert_eq!(session.check_subscribe("u/alice/+"), ALLOW);
    assert_eq!(session.check_subscribe("u/+/x"), SubscribeVerdict::NoMatch);
}

// Strategies: small alphabets so that relations between filters are frequent.
const NAMES: [&str; 4] = ["a", "b", "$s", ""];

fn filter_strategy() -> impl Strategy<Value = String> {
    let level = prop_oneof![
        3 => prop::sample::select(&NAMES[..]).prop_map(str::to_owned),
        2 => Just("+".to_owned()),
    ];
    (prop::collection::vec(level, 1..4), any::<bool>())
        .prop_map(|(mut levels, hash)| {
            if hash {
                levels.push("#".into());
            }
            levels.join("/")
        })
        .prop_filter("a filter is not empty", |f| !f.is_empty())
}

/// Topics built from `filter` by replacing wildcards, kept only if they are valid names
/// that the reference matcher says match `filter`.
fn topics_for(filter: &str, picks: &[usize]) -> Vec<String> {
    let mut out = Vec::new();
    for (round, pick) in picks.iter().enumerate() {
        let mut levels = Vec::new();
        for (i, level) in filter.split('/').enumerate() {
            let choice = NAMES[(pick + i + round) % NAMES.len()];
            match level {
                "+" => levels.push(choice),
                "#" => levels.extend(std::iter::repeat_n(choice, (pick + round) % 3)),
                lit => levels.push(lit),
            }
        }
        let topic = levels.join("/");
        if let (Ok(name), Ok(f)) = (TopicName::new(topic.as_str()), TopicFilter::new(filter))
            && f.matches(&name)
        {
            out.push(topic);
        }
    }
    out
}

fn rules_strategy() -> impl Strategy<Value = Vec<RuleConfig>> {
    let one = (filter_strategy(), any::<bool>()).prop_map(|(topic, allow)| {
        rule(
            "all",
            "subscribe",
            &topic,
            if allow { "allow" } else { "deny" },
        )
    });
    prop::collection::vec(one, 0..6)
}

proptest! {
    #[test]
    fn full_grant_means_every_matching_topic_is_readable(
        rules in rules_strategy(),
        filter in filter_strategy(),
        picks in prop::collection::vec(0usize..16, 1..8),
    ) {
        let session = acl(rules).compile(&alice());
        if session.check_subscribe(&filter) == ALLOW {
            for topic in topics_for(&filter, &picks) {
                prop_assert_eq!(session.check_read(&topic), Verdict::Allow, "topic {}", topic);
            }
        }
    }

    #[test]
    fn trie_agrees_with_first_match_by_reference_matcher(
        rules in rules_strategy(),
        filter in filter_strategy(),
        picks in prop::collection::vec(0usize..16, 1..8),
    ) {
        let session = acl(rules.clone()).compile(&alice());
        for topic in topics_for(&filter, &picks) {
            let name = TopicName::new(topic.as_str()).unwrap();
            let expected = rules
                .iter()
                .find(|r| TopicFilter::new(r.topic.as_str()).unwrap().matches(&name))
                .map_or(Verdict::NoMatch, |r| match r.permission {
                    Permission::Allow => Verdict::Allow,
                    Permission::Deny => Verdict::Deny,
                });
            prop_assert_eq!(session.check_read(&topic), expected, "topic {}", topic);
        }
    }

    #[test]
    fn covers_and_overlaps_agree_with_sampled_topics(
        f in filter_strategy(),
        r in filter_strategy(),
        picks in prop::collection::vec(0usize..16, 1..8),
    ) {
        let (fl, mut rl) = (split_filter(&f), compile_filter(&r));
        level::normalise(&mut rl);
        let reference = TopicFilter::new(r.as_str()).unwrap();
        for topic in topics_for(&f, &picks) {
            let in_r = reference.matches(&TopicName::new(topic.as_str()).unwrap());
            if level::covers(&fl, &rl) {
                prop_assert!(in_r, "{} covers {} but not {}", r, f, topic);
            }
            if in_r {
                prop_assert!(level::overlaps(&fl, &rl), "{} and {} share {}", r, f, topic);
            }
        }
    }
}
