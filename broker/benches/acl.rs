//! `check_publish` (and its neighbours) against 1,000 configured rules: a realistic mix of
//! user-, client- and role-specific rules, placeholders and wildcards. Measures a topic
//! allowed by a rule late in the list and one that no rule matches (denied by default).
#![allow(clippy::unwrap_used)] // benches may unwrap, like tests

use std::collections::BTreeMap;
use std::hint::black_box;

use cauldron::acl::{Acl, AclConfig, Action, Permission, RuleConfig, Verdict};
use cauldron::auth::identity::Identity;
use criterion::{Criterion, criterion_main};

const RULES: usize = 1_000;

fn rule(who: String, action: Action, topic: String, permission: Permission) -> RuleConfig {
    RuleConfig {
        who,
        action,
        topic,
        permission,
    }
}

/// Rule `i` of the realistic mix; the last rule is the one the "late allow" topic hits.
fn mixed_rule(i: usize) -> RuleConfig {
    use Action::{All, Publish, Subscribe};
    use Permission::{Allow, Deny};
    match i % 10 {
        // user-specific (mostly other users than the benched session)
        0 | 1 => rule(
            format!("user:user{i}"),
            All,
            format!("users/user{i}/#"),
            Allow,
        ),
        2 => rule(
            format!("client:dev{i}"),
            Publish,
            format!("devices/dev{i}/up/+"),
            Allow,
        ),
        // roles: the session holds r0..r9, so these all apply to it
        3 => rule(
            format!("role:r{}", i % 10),
            Publish,
            format!("plant/line{i}/+/metrics"),
            Deny,
        ),
        4 => rule(
            format!("group:r{}", (i / 10) % 10),
            Subscribe,
            format!("plant/line{i}/#"),
            Allow,
        ),
        // placeholders
        5 => rule(
            "all".into(),
            Publish,
            format!("devices/${{clientid}}/cmd{i}/+"),
            Allow,
        ),
        6 => rule(
            "all".into(),
            All,
            format!("tenants/${{claim.tenant}}/s{i}/#"),
            Allow,
        ),
        7 => rule(
            "all".into(),
            Subscribe,
            format!("sites/${{attr.site}}/area{i}/+/#"),
            Allow,
        ),
        // wildcards, some leading
        8 => rule("all".into(), Publish, format!("+/audit{i}/#"), Deny),
        _ => rule("all".into(), All, format!("fleet/+/v{i}/+/status"), Deny),
    }
}

fn realistic_rules() -> Vec<RuleConfig> {
    let mut rules: Vec<RuleConfig> = (0..RULES - 1).map(mixed_rule).collect();
    rules.push(rule(
        "role:ops".into(),
        Action::Publish,
        "plant/line42/+/telemetry".into(),
        Permission::Allow,
    ));
    rules
}

/// Every rule applies to every session: literal and wildcard filters only.
fn all_applicable_rules() -> Vec<RuleConfig> {
    let mut rules: Vec<RuleConfig> = (0..RULES - 1)
        .map(|i| {
            let topic = match i % 4 {
                0 => format!("plant/line{i}/+/metrics"),
                1 => format!("+/area{i}/#"),
                2 => format!("fleet/+/v{i}/+/status"),
                _ => format!("plant/+/cell{i}/#"),
            };
            rule("all".into(), Action::All, topic, Permission::Deny)
        })
        .collect();
    rules.push(rule(
        "all".into(),
        Action::Publish,
        "plant/line42/+/telemetry".into(),
        Permission::Allow,
    ));
    rules
}

fn session_identity() -> Identity {
    Identity {
        client_id: "dev7".into(),
        username: Some("user7".into()),
        roles: (0..10)
            .map(|r| format!("r{r}"))
            .chain(["ops".into()])
            .collect(),
        attributes: BTreeMap::from([("site".into(), "berlin".into())]),
        claims: BTreeMap::from([("tenant".into(), "acme".into())]),
        ..Identity::default()
    }
}

const LATE_ALLOW: &str = "plant/line42/press/telemetry";
const NO_MATCH: &str = "warehouse/dock3/door/state";

fn bench_set(c: &mut Criterion, name: &str, rules: Vec<RuleConfig>) {
    let acl = Acl::new(&AclConfig {
        rules,
        ..AclConfig::default()
    })
    .unwrap();
    assert_eq!(acl.len(), RULES);
    let id = session_identity();
    let session = acl.compile(&id);
    assert_eq!(session.check_publish(LATE_ALLOW), Verdict::Allow);
    assert_eq!(session.check_publish(NO_MATCH), Verdict::NoMatch);
    eprintln!(
        "{name}: {} compiled rule entries for the session",
        session.len()
    );

    let mut group = c.benchmark_group(name);
    group.bench_function("check_publish/allowed_late", |b| {
        b.iter(|| session.check_publish(black_box(LATE_ALLOW)))
    });
    group.bench_function("check_publish/default_deny", |b| {
        b.iter(|| session.check_publish(black_box(NO_MATCH)))
    });
    group.bench_function("check_read/no_match", |b| {
        b.iter(|| session.check_read(black_box(NO_MATCH)))
    });
    group.bench_function("check_subscribe/plant_hash", |b| {
        b.iter(|| session.check_subscribe(black_box("plant/line44/#")))
    });
    group.bench_function("compile", |b| b.iter(|| acl.compile(black_box(&id))));
    group.finish();
}

fn bench(c: &mut Criterion) {
    bench_set(c, "realistic_1000", realistic_rules());
    bench_set(c, "all_apply_1000", all_applicable_rules());
}

mod harness {
    //! The entry points criterion generates (undocumented by construction).
    #![allow(missing_docs)]
    criterion::criterion_group!(benches, super::bench);
}
criterion_main!(harness::benches);
