//! Configuration: rule validation with positioned error messages, the rules file and the
//! serde shape of `[acl]`.
#![allow(clippy::unwrap_used)] // tests may unwrap (house rules)

use std::path::PathBuf;

use test_case::test_case;

use super::tests::{alice, rule};
use super::*;

fn inline_error(rules: Vec<RuleConfig>) -> String {
    let cfg = AclConfig {
        rules,
        ..AclConfig::default()
    };
    Acl::new(&cfg).unwrap_err().to_string()
}

#[test_case("a${username}" => "acl.rules[1].topic: placeholder must occupy a whole topic level, found \"a${username}\"" ; "text before placeholder")]
#[test_case("d/${clientid}x/#" => "acl.rules[1].topic: placeholder must occupy a whole topic level, found \"${clientid}x\"" ; "text after placeholder")]
#[test_case("d/${username}${clientid}" => "acl.rules[1].topic: placeholder must occupy a whole topic level, found \"${username}${clientid}\"" ; "two placeholders in one level")]
#[test_case("d/${user" => "acl.rules[1].topic: placeholder must occupy a whole topic level, found \"${user\"" ; "unterminated placeholder")]
#[test_case("d/${password}" => "acl.rules[1].topic: unknown placeholder \"${password}\", expected ${username}, ${clientid}, ${attr.NAME} or ${claim.NAME}" ; "unknown placeholder")]
#[test_case("d/${attr.}" => "acl.rules[1].topic: unknown placeholder \"${attr.}\", expected ${username}, ${clientid}, ${attr.NAME} or ${claim.NAME}" ; "attribute without name")]
#[test_case("a/#/b" => "acl.rules[1].topic: [MQTT-4.7.1-1] (v3.1.1 [MQTT-4.7.1-2]) multi-level wildcard must be the last level and occupy it alone" ; "misplaced hash")]
#[test_case("a+" => "acl.rules[1].topic: [MQTT-4.7.1-2] (v3.1.1 [MQTT-4.7.1-3]) single-level wildcard must occupy an entire level" ; "misplaced plus")]
#[test_case("" => "acl.rules[1].topic: [MQTT-4.7.3-1] topic must be at least one character long" ; "empty topic")]
fn rejects_invalid_topic_with_position(topic: &str) -> String {
    inline_error(vec![
        rule("all", "all", "ok/#", "allow"),
        rule("all", "all", topic, "allow"),
    ])
}

#[test_case("user:" => "acl.rules[0].who: \"user:\" needs a name after the colon" ; "user without name")]
#[test_case("group:" => "acl.rules[0].who: \"group:\" needs a name after the colon" ; "group without name")]
#[test_case("admin" => "acl.rules[0].who: unknown selector \"admin\", expected user:NAME, client:ID, role:NAME, group:NAME, anonymous or all" ; "bare word")]
#[test_case("team:x" => "acl.rules[0].who: unknown selector \"team:x\", expected user:NAME, client:ID, role:NAME, group:NAME, anonymous or all" ; "unknown kind")]
fn rejects_invalid_who_with_position(who: &str) -> String {
    inline_error(vec![rule(who, "all", "a", "allow")])
}

#[test]
fn rejects_rule_deeper_than_the_trie_allows() {
    let deep = vec!["a"; rule::MAX_RULE_LEVELS + 1].join("/");
    assert_eq!(
        inline_error(vec![rule("all", "all", &deep, "allow")]),
        "acl.rules[0].topic: rule filter has 1025 levels, more than 1024"
    );
    let deepest = vec!["a"; rule::MAX_RULE_LEVELS].join("/");
    let acl = super::tests::acl(vec![rule("all", "all", &deepest, "allow")]);
    assert_eq!(
        acl.compile(&alice()).check_publish(&deepest),
        Verdict::Allow
    );
}

#[test_case("devices/${clientid}/#" ; "clientid in a middle level")]
#[test_case("${username}" ; "placeholder as the only level")]
#[test_case("t/${attr.site}/${claim.tenant}/+" ; "attribute and claim")]
#[test_case("$SYS/#" ; "sys rule")]
#[test_case("a/$b{c}" ; "dollar and braces without placeholder syntax")]
fn accepts_valid_rule_topic(topic: &str) {
    let cfg = AclConfig {
        rules: vec![rule("all", "all", topic, "allow")],
        ..AclConfig::default()
    };
    assert_eq!(Acl::new(&cfg).unwrap().len(), 1);
}

/// A file under the system temp directory, unique to this test and process.
fn temp_file(name: &str, contents: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("cauldron-acl-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path
}

fn with_file(path: PathBuf, rules: Vec<RuleConfig>) -> AclConfig {
    AclConfig {
        file: Some(path),
        rules,
        ..AclConfig::default()
    }
}

#[test]
fn loads_file_rules_after_inline_rules() {
    let path = temp_file(
        "order.toml",
        r#"
[[rules]]
who = "all"
action = "publish"
topic = "a/#"
permission = "allow"

[[rules]]
who = "user:alice"
action = "all"
topic = "u/${username}/#"
permission = "allow"
"#,
    );
    let inline = vec![rule("all", "publish", "a/secret", "deny")];
    let acl = Acl::new(&with_file(path, inline)).unwrap();
    assert_eq!(acl.len(), 3);
    let session = acl.compile(&alice());
    assert_eq!(session.check_publish("a/secret"), Verdict::Deny);
    assert_eq!(session.check_publish("a/open"), Verdict::Allow);
    assert_eq!(session.check_read("u/alice/x"), Verdict::Allow);
}

#[test]
fn empty_rules_file_is_an_empty_acl() {
    let path = temp_file("empty.toml", "# no rules yet\n");
    assert!(Acl::new(&with_file(path, vec![])).unwrap().is_empty());
}

#[test]
fn file_rule_error_names_file_and_position() {
    let body = "[[rules]]\nwho = \"all\"\naction = \"all\"\ntopic = \"a\"\npermission = \"deny\"\n\n\
                [[rules]]\nwho = \"role:\"\naction = \"all\"\ntopic = \"a\"\npermission = \"deny\"\n";
    let path = temp_file("bad-who.toml", body);
    let err = Acl::new(&with_file(path.clone(), vec![])).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}: rules[1].who: \"role:\" needs a name after the colon",
            path.display()
        )
    );
    assert!(matches!(err, Error::Rule { .. }));
}

#[test]
fn file_placeholder_inside_level_names_file_and_position() {
    let body = "[[rules]]\nwho = \"all\"\naction = \"all\"\ntopic = \"x${clientid}\"\npermission = \"deny\"\n";
    let path = temp_file("bad-topic.toml", body);
    let err = Acl::new(&with_file(path.clone(), vec![])).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}: rules[0].topic: placeholder must occupy a whole topic level, found \"x${{clientid}}\"",
            path.display()
        )
    );
}

#[test_case("[[rules]]\nwho = \"all\"\naction = \"all\"\ntopic = \"a\"\npermission = \"maybe\"\n", "line 5" ; "unknown permission")]
#[test_case("[[rules]]\nwho = \"all\"\naction = \"all\"\ntopic = \"a\"\npermission = \"deny\"\nextra = 1\n", "unknown field `extra`" ; "unknown field")]
#[test_case("[[rules]]\nwho = \"all\"\n", "missing field `action`" ; "missing field")]
#[test_case("[[rules]\n", "line 1" ; "broken toml")]
#[test_case("default = \"allow\"\n", "unknown field `default`" ; "acl section keys are not file keys")]
fn malformed_file_error_names_the_file(body: &str, expected: &str) {
    let path = temp_file(
        &format!("malformed-{}.toml", expected.len() + body.len()),
        body,
    );
    let err = Acl::new(&with_file(path.clone(), vec![])).unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, Error::ParseFile { .. }), "{message}");
    assert!(
        message.starts_with(&format!("{}: ", path.display())),
        "{message}"
    );
    assert!(message.contains(expected), "{message}");
}

#[test]
fn missing_file_error_names_the_file() {
    let path = std::env::temp_dir().join("cauldron-acl-does-not-exist.toml");
    let err = Acl::new(&with_file(path.clone(), vec![])).unwrap_err();
    assert!(matches!(err, Error::ReadFile { .. }));
    assert!(
        err.to_string()
            .starts_with(&format!("{}: cannot read acl rules file: ", path.display())),
        "{err}"
    );
}

#[test]
fn acl_section_deserializes_with_defaults() {
    let cfg: AclConfig = toml::from_str("").unwrap();
    assert_eq!(cfg, AclConfig::default());
    assert_eq!(cfg.default, Permission::Deny);
    let cfg: AclConfig = toml::from_str(
        r#"
default = "allow"
file = "/etc/cauldron/acl.toml"
rules = [ { who = "client:c1", action = "subscribe", topic = "d/${clientid}/#", permission = "allow" } ]
"#,
    )
    .unwrap();
    assert_eq!(cfg.default, Permission::Allow);
    assert_eq!(cfg.file, Some(PathBuf::from("/etc/cauldron/acl.toml")));
    assert_eq!(
        cfg.rules,
        vec![rule("client:c1", "subscribe", "d/${clientid}/#", "allow")]
    );
    let back: AclConfig = toml::from_str(&toml::to_string(&cfg).unwrap()).unwrap();
    assert_eq!(back, cfg);
}

#[test]
fn acl_section_rejects_unknown_keys() {
    assert!(toml::from_str::<AclConfig>("defualt = \"allow\"").is_err());
    assert!(toml::from_str::<AclConfig>("rules = [{ who = \"all\", action = \"publish\", topic = \"a\", permission = \"allow\", qos = 1 }]").is_err());
}
