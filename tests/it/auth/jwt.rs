//! JWT in the password field: each algorithm family with its key source, pinned
//! algorithms, claim checks, permissions feeding the ACL, and the disconnect when the
//! token expires.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cauldron::acl::{Action, Permission};
use cauldron::config::JwtConfig;
use integration::packets::{Connect, Publish};
use integration::{RawClient, TestBroker};
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};

use super::{connack_code, rule, start_with};

const SECRET: &str = "a-shared-secret-of-at-least-32-bytes!!";

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../broker/src/auth/testdata/jwt")
        .join(name)
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

fn sign(alg: Algorithm, key: &EncodingKey, claims: &Value) -> String {
    encode(&Header::new(alg), claims, key).expect("test token signs")
}

fn hs256() -> JwtConfig {
    JwtConfig {
        algorithms: vec!["HS256".into()],
        secret: Some(SECRET.into()),
        leeway_secs: 0,
        ..JwtConfig::default()
    }
}

async fn jwt_broker(cfg: JwtConfig) -> TestBroker {
    start_with(|c| {
        c.auth.jwt = Some(cfg);
        c.auth.allow_anonymous = false;
    })
    .await
}

fn login(id: &str, user: &str, token: &str) -> Connect {
    Connect::v5(id).credentials(user, token.as_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_algorithm_family_logs_in_with_its_key() {
    // Issue 4 JWT: "HS256/384/512, RS256/384/512, PS256, ES256/384 and EdDSA, with keys
    // from the config (shared secret, PEM file) or a JWKS file".
    let pem = |f: &str| std::fs::read(fixture(f)).unwrap();
    let cases: Vec<(&str, Algorithm, EncodingKey, JwtConfig)> = vec![
        (
            "HS512",
            Algorithm::HS512,
            EncodingKey::from_secret(SECRET.as_bytes()),
            JwtConfig {
                algorithms: vec!["HS512".into()],
                ..hs256()
            },
        ),
        (
            "RS256",
            Algorithm::RS256,
            EncodingKey::from_rsa_pem(&pem("rsa_private.pem")).unwrap(),
            JwtConfig {
                algorithms: vec!["RS256".into()],
                public_key_file: Some(fixture("rsa_public.pem")),
                ..JwtConfig::default()
            },
        ),
        (
            "PS256",
            Algorithm::PS256,
            EncodingKey::from_rsa_pem(&pem("rsa_private.pem")).unwrap(),
            JwtConfig {
                algorithms: vec!["PS256".into()],
                public_key_file: Some(fixture("rsa_public.pem")),
                ..JwtConfig::default()
            },
        ),
        (
            "ES256",
            Algorithm::ES256,
            EncodingKey::from_ec_pem(&pem("ec256_private.pem")).unwrap(),
            JwtConfig {
                algorithms: vec!["ES256".into()],
                public_key_file: Some(fixture("ec256_public.pem")),
                ..JwtConfig::default()
            },
        ),
        (
            "EdDSA",
            Algorithm::EdDSA,
            EncodingKey::from_ed_pem(&pem("ed25519_private.pem")).unwrap(),
            JwtConfig {
                algorithms: vec!["EdDSA".into()],
                public_key_file: Some(fixture("ed25519_public.pem")),
                ..JwtConfig::default()
            },
        ),
    ];
    for (name, alg, key, cfg) in cases {
        let b = jwt_broker(cfg).await;
        let token = sign(alg, &key, &json!({"sub": "dev-1", "exp": now() + 600}));
        assert_eq!(
            connack_code(&b, &login("dev-1", "dev-1", &token)).await,
            0,
            "{name}"
        );
        let tampered = format!("{}x", &token[..token.len() - 1]);
        assert_eq!(
            connack_code(&b, &login("dev-1", "dev-1", &tampered)).await,
            0x86,
            "{name}: a tampered signature is refused"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn algorithms_are_pinned_by_config_not_by_the_token() {
    // Issue 4: "algorithms pinned by config, never taken from the token".
    let b = jwt_broker(hs256()).await;
    let key = EncodingKey::from_secret(SECRET.as_bytes());
    let hs384 = sign(Algorithm::HS384, &key, &json!({"exp": now() + 600}));
    assert_eq!(connack_code(&b, &login("c", "u", &hs384)).await, 0x86);
    let v3 = Connect::v311("c3").credentials("u", hs384.as_bytes());
    assert_eq!(connack_code(&b, &v3).await, 4, "3.1.1 return code 4");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_wrong_issuer_audience_and_subject_are_refused() {
    // Issue 4: "Validate exp, nbf, iss, aud with a configurable leeway. Optionally
    // require that a claim equals the username or client id."
    let b = jwt_broker(JwtConfig {
        issuer: Some("https://issuer.test".into()),
        audience: vec!["mqtt".into()],
        username_claim: Some("sub".into()),
        clientid_claim: Some("cid".into()),
        ..hs256()
    })
    .await;
    let key = EncodingKey::from_secret(SECRET.as_bytes());
    let good = json!({"sub": "u1", "cid": "c1", "iss": "https://issuer.test", "aud": "mqtt", "exp": now() + 600});
    let with = |k: &str, v: Value| {
        let mut c = good.clone();
        c[k] = v;
        sign(Algorithm::HS256, &key, &c)
    };
    assert_eq!(
        connack_code(&b, &login("c1", "u1", &sign(Algorithm::HS256, &key, &good))).await,
        0
    );
    for (what, token) in [
        ("expired", with("exp", json!(now() - 60))),
        ("not yet valid", with("nbf", json!(now() + 600))),
        ("issuer", with("iss", json!("https://evil.test"))),
        ("audience", with("aud", json!("other"))),
        ("subject", with("sub", json!("someone-else"))),
        ("client id", with("cid", json!("other-client"))),
    ] {
        assert_eq!(
            connack_code(&b, &login("c1", "u1", &token)).await,
            0x86,
            "{what}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_permissions_feed_the_acl() {
    // Issue 4: "Claims can carry the client's permissions (topic lists for publish and
    // subscribe), feeding the ACL." Default deny: only the token's topics work.
    let b = start_with(|c| {
        c.auth.jwt = Some(hs256());
        c.acl.rules = vec![rule(
            "all",
            Action::Subscribe,
            "public/#",
            Permission::Allow,
        )];
    })
    .await;
    let key = EncodingKey::from_secret(SECRET.as_bytes());
    let token = sign(
        Algorithm::HS256,
        &key,
        &json!({"exp": now() + 600, "acl": {"pub": ["devices/d1/up"], "sub": ["devices/d1/down/#"]}}),
    );
    let (mut c, _) = RawClient::connect_with(b.addr, &login("d1", "d1", &token)).await;
    assert_eq!(c.subscribe("devices/d1/down/#", 1).await, vec![1]);
    assert_eq!(c.subscribe("devices/d2/down/#", 1).await, vec![0x87]);
    assert_eq!(
        c.subscribe("public/news", 1).await,
        vec![1],
        "rules still apply"
    );
    assert_eq!(
        c.publish(Publish::new("devices/d1/up", b"1").qos(1, 0))
            .await,
        0
    );
    assert_eq!(
        c.publish(Publish::new("devices/d2/up", b"1").qos(1, 0))
            .await,
        0x87
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_ends_when_the_token_expires() {
    // Issue 4: "When the token expires the session is disconnected (v5 with a reason
    // code)": DISCONNECT 0xA0 (Maximum connect time).
    let b = jwt_broker(hs256()).await;
    let key = EncodingKey::from_secret(SECRET.as_bytes());
    let token = sign(Algorithm::HS256, &key, &json!({"exp": now() + 2}));
    let (mut c, _) = RawClient::connect_with(b.addr, &login("short", "u", &token)).await;
    c.expect_no_packet(Duration::from_millis(500)).await;
    c.expect_disconnect(0xA0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_key_file_is_taken_without_a_sighup() {
    // Keys rotate (a new JWKS or PEM from the identity provider): the server watches the
    // key file, as it does the password file, and reads a change once it has held for
    // one look (looks 2 s apart).
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("jwt.pem");
    std::fs::copy(fixture("rsa_public.pem"), &key_file).unwrap();
    let b = jwt_broker(JwtConfig {
        algorithms: vec!["RS256".into()],
        public_key_file: Some(key_file.clone()),
        ..JwtConfig::default()
    })
    .await;
    let pem = |f: &str| std::fs::read(fixture(f)).unwrap();
    let claims = json!({ "sub": "alice", "exp": now() + 600 });
    let by_first = sign(
        Algorithm::RS256,
        &EncodingKey::from_rsa_pem(&pem("rsa_private.pem")).unwrap(),
        &claims,
    );
    let by_second = sign(
        Algorithm::RS256,
        &EncodingKey::from_rsa_pem(&pem("rsa2_private.pem")).unwrap(),
        &claims,
    );
    assert_eq!(connack_code(&b, &login("k1", "alice", &by_first)).await, 0);
    assert_eq!(
        connack_code(&b, &login("k2", "alice", &by_second)).await,
        0x86,
        "not yet the second key"
    );

    std::fs::copy(fixture("rsa2_public.pem"), &key_file).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while connack_code(&b, &login("k3", "alice", &by_second)).await != 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "key file change not picked up"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(
        connack_code(&b, &login("k4", "alice", &by_first)).await,
        0x86,
        "the old key no longer verifies"
    );

    // A broken file keeps the keys in force.
    std::fs::write(&key_file, "garbage").unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(connack_code(&b, &login("k5", "alice", &by_second)).await, 0);
}
