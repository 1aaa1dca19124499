#![allow(clippy::unwrap_used)] // tests may unwrap
//! Claim extraction tests for `auth::jwt`: the claims map, roles, token permissions and the
//! topic-filter syntax they must obey.

use jsonwebtoken::Algorithm;
use serde_json::{Value, json};

use super::super::identity::TokenPermissions;
use super::tests::{NOW_SECS, base_claims, hmac_config, invalid, sign, valid, with};
use super::*;

fn hs256_auth() -> JwtAuth {
    JwtAuth::new(&hmac_config(&["HS256"])).unwrap()
}

fn grant_for(extra: Value) -> JwtGrant {
    valid(&hs256_auth(), &sign(Algorithm::HS256, &with(extra)))
}

fn reason_for(extra: Value) -> String {
    invalid(&hs256_auth(), &sign(Algorithm::HS256, &with(extra)))
}

#[test]
fn claims_map_holds_top_level_scalars_rendered() {
    let grant = grant_for(json!({
        "tenant": "acme",
        "floor": 3,
        "ratio": 1.5,
        "admin": false,
        "groups": ["a"],
        "meta": {"k": "v"},
        "gone": null,
    }));
    let expected: BTreeMap<String, String> = [
        ("sub", "alice".to_string()),
        ("exp", (NOW_SECS + 3600).to_string()),
        ("tenant", "acme".into()),
        ("floor", "3".into()),
        ("ratio", "1.5".into()),
        ("admin", "false".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_eq!(grant.claims, expected);
}

#[test]
fn extracts_roles_from_string_or_array() {
    assert_eq!(grant_for(json!({"roles": "ops"})).roles, ["ops"]);
    assert_eq!(
        grant_for(json!({"roles": ["ops", "dev"]})).roles,
        ["ops", "dev"]
    );
    assert!(grant_for(json!({})).roles.is_empty());
    assert!(reason_for(json!({"roles": 7})).contains("claim roles"));
    assert!(reason_for(json!({"roles": ["ops", 7]})).contains("only strings"));
}

#[test]
fn roles_claim_can_be_renamed_or_disabled() {
    let token = sign(
        Algorithm::HS256,
        &with(json!({"groups": ["g1"], "roles": 7})),
    );
    let renamed = JwtAuth::new(&JwtConfig {
        roles_claim: Some("groups".into()),
        ..hmac_config(&["HS256"])
    })
    .unwrap();
    assert_eq!(valid(&renamed, &token).roles, ["g1"]);
    let disabled = JwtAuth::new(&JwtConfig {
        roles_claim: None,
        ..hmac_config(&["HS256"])
    })
    .unwrap();
    assert!(valid(&disabled, &token).roles.is_empty());
}

#[test]
fn extracts_permissions() {
    let grant =
        grant_for(json!({"acl": {"pub": ["devices/alice/#"], "sub": ["cmd/+/alice", "#"]}}));
    let expected = TokenPermissions {
        publish: vec!["devices/alice/#".into()],
        subscribe: vec!["cmd/+/alice".into(), "#".into()],
    };
    assert_eq!(grant.permissions, Some(expected));
}

#[test]
fn accepts_long_permission_keys_and_merges_them() {
    let grant = grant_for(json!({"acl": {"publish": ["a"], "pub": ["b"], "subscribe": []}}));
    let permissions = grant.permissions.unwrap();
    let mut publish = permissions.publish;
    publish.sort();
    assert_eq!(publish, ["a", "b"]);
    assert!(permissions.subscribe.is_empty());
}

#[test]
fn absent_permissions_claim_is_none() {
    assert_eq!(base_grant().permissions, None);
    assert_eq!(grant_for(json!({"acl": null})).permissions, None);
}

fn base_grant() -> JwtGrant {
    valid(&hs256_auth(), &sign(Algorithm::HS256, &base_claims()))
}

#[test]
fn permissions_claim_name_is_configurable() {
    let auth = JwtAuth::new(&JwtConfig {
        permissions_claim: "mqtt".into(),
        ..hmac_config(&["HS256"])
    })
    .unwrap();
    let token = sign(
        Algorithm::HS256,
        &with(json!({"mqtt": {"sub": ["x/#"]}, "acl": 5})),
    );
    assert_eq!(valid(&auth, &token).permissions.unwrap().subscribe, ["x/#"]);
}

#[test]
fn rejects_badly_shaped_permissions() {
    for bad in [
        json!("pub"),
        json!(["a/b"]),
        json!({"pub": "a/b"}),
        json!({"pub": [1]}),
        json!({"write": ["a/b"]}),
    ] {
        assert!(
            reason_for(json!({ "acl": bad })).starts_with("claim acl"),
            "{bad}"
        );
    }
}

#[test]
fn rejects_invalid_topic_filters_in_permissions() {
    for filter in ["", "a/#/b", "a#", "#/", "a/b+", "+a/b", "a/\u{0}/b", "##"] {
        let reason = reason_for(json!({"acl": {"sub": [filter]}}));
        assert!(
            reason.contains("invalid topic filter"),
            "{filter:?}: {reason}"
        );
    }
}

#[test]
fn accepts_valid_topic_filters() {
    for filter in [
        "#",
        "+",
        "a",
        "/",
        "a/+/b/#",
        "+/+",
        "$SYS/#",
        "a//b",
        "sport/tennis/+",
    ] {
        assert!(claims::is_valid_topic_filter(filter), "{filter:?}");
    }
}
