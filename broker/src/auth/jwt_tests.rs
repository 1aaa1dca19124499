#![allow(clippy::unwrap_used)] // tests may unwrap
//! Token verification tests for `auth::jwt`: algorithms, time, issuer/audience, bindings,
//! JWKS key selection, token shape, and claim extraction. Tokens are signed here with the
//! private fixture keys in `testdata/jwt/` (see its README.txt) at a fixed clock.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use super::*;

pub(super) const NOW_SECS: u64 = 1_700_000_000;
pub(super) const SECRET: &str = "a-test-secret-of-at-least-32-bytes!!";

pub(super) fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(NOW_SECS)
}

pub(super) fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("src/auth/testdata/jwt")
        .join(name)
}

pub(super) fn config(algs: &[&str]) -> JwtConfig {
    JwtConfig {
        algorithms: algs.iter().map(|a| a.to_string()).collect(),
        ..JwtConfig::default()
    }
}

pub(super) fn hmac_config(algs: &[&str]) -> JwtConfig {
    JwtConfig {
        secret: Some(SECRET.into()),
        ..config(algs)
    }
}

pub(super) fn pem_config(algs: &[&str], file: &str) -> JwtConfig {
    JwtConfig {
        public_key_file: Some(fixture(file)),
        ..config(algs)
    }
}

pub(super) fn jwks_config(algs: &[&str]) -> JwtConfig {
    JwtConfig {
        jwks_file: Some(fixture("jwks.json")),
        ..config(algs)
    }
}

/// The private key that matches `alg` by default (`private` overrides the file).
fn encoding_key(alg: Algorithm, private: Option<&str>) -> EncodingKey {
    let read = |default: &str| std::fs::read(fixture(private.unwrap_or(default))).unwrap();
    match alg {
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => {
            EncodingKey::from_secret(SECRET.as_bytes())
        }
        Algorithm::ES256 => EncodingKey::from_ec_pem(&read("ec256_private.pem")).unwrap(),
        Algorithm::ES384 => EncodingKey::from_ec_pem(&read("ec384_private.pem")).unwrap(),
        Algorithm::EdDSA => EncodingKey::from_ed_pem(&read("ed25519_private.pem")).unwrap(),
        _ => EncodingKey::from_rsa_pem(&read("rsa_private.pem")).unwrap(),
    }
}

pub(super) fn sign_with(
    alg: Algorithm,
    key: &EncodingKey,
    kid: Option<&str>,
    claims: &Value,
) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_string);
    jsonwebtoken::encode(&header, claims, key).unwrap()
}

pub(super) fn sign(alg: Algorithm, claims: &Value) -> String {
    sign_with(alg, &encoding_key(alg, None), None, claims)
}

/// Claims valid at [`now`] for an hour.
pub(super) fn base_claims() -> Value {
    json!({ "sub": "alice", "exp": NOW_SECS + 3600 })
}

pub(super) fn with(extra: Value) -> Value {
    let mut claims = base_claims();
    for (k, v) in extra.as_object().unwrap() {
        claims[k] = v.clone();
    }
    claims
}

pub(super) fn verdict(auth: &JwtAuth, token: &str) -> JwtVerdict {
    auth.verify_at(token.as_bytes(), Some("alice"), "client-1", now())
}

pub(super) fn valid(auth: &JwtAuth, token: &str) -> JwtGrant {
    match verdict(auth, token) {
        JwtVerdict::Valid(grant) => grant,
        other => panic!("expected Valid, got {other:?}"),
    }
}

/// The reason of an Invalid verdict; also asserts the reason leaks no part of the token.
pub(super) fn invalid(auth: &JwtAuth, token: &str) -> String {
    match verdict(auth, token) {
        JwtVerdict::Invalid(reason) => {
            for segment in token.split('.').filter(|s| s.len() >= 8) {
                assert!(
                    !reason.contains(segment),
                    "reason leaks the token: {reason}"
                );
            }
            reason
        }
        other => panic!("expected Invalid, got {other:?}"),
    }
}

fn auth(cfg: &JwtConfig) -> JwtAuth {
    JwtAuth::new(cfg).unwrap()
}

fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap())
}

#[test]
fn jwt_auth_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<JwtAuth>();
}

#[test]
fn accepts_every_hmac_algorithm() {
    let auth = auth(&hmac_config(&["HS256", "HS384", "HS512"]));
    for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
        let grant = valid(&auth, &sign(alg, &base_claims()));
        assert_eq!(grant.claims["sub"], "alice", "{alg:?}");
    }
}

#[test]
fn accepts_every_rsa_algorithm() {
    let algs = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"];
    let auth = auth(&pem_config(&algs, "rsa_public.pem"));
    for name in algs {
        let alg: Algorithm = name.parse().unwrap();
        valid(&auth, &sign(alg, &base_claims()));
    }
}

#[test]
fn accepts_ecdsa_and_eddsa_with_matching_keys() {
    for (name, alg, public) in [
        ("ES256", Algorithm::ES256, "ec256_public.pem"),
        ("ES384", Algorithm::ES384, "ec384_public.pem"),
        ("EdDSA", Algorithm::EdDSA, "ed25519_public.pem"),
    ] {
        let auth = auth(&pem_config(&[name], public));
        valid(&auth, &sign(alg, &base_claims()));
    }
}

#[test]
fn accepts_base64_secret() {
    let cfg = JwtConfig {
        secret: Some(base64::engine::general_purpose::STANDARD.encode(SECRET)),
        secret_base64: true,
        ..config(&["HS256"])
    };
    valid(&auth(&cfg), &sign(Algorithm::HS256, &base_claims()));
}

#[test]
fn rejects_algorithm_not_pinned() {
    let auth = auth(&hmac_config(&["HS256"]));
    let reason = invalid(&auth, &sign(Algorithm::HS512, &base_claims()));
    assert!(reason.contains("HS512 is not allowed"), "{reason}");
}

#[test]
fn rejects_alg_confusion_hs256_signed_with_rsa_public_key() {
    let auth = auth(&pem_config(&["RS256"], "rsa_public.pem"));
    let public_pem = std::fs::read(fixture("rsa_public.pem")).unwrap();
    let forged = sign_with(
        Algorithm::HS256,
        &EncodingKey::from_secret(&public_pem),
        None,
        &base_claims(),
    );
    let reason = invalid(&auth, &forged);
    assert!(reason.contains("not allowed"), "{reason}");
}

#[test]
fn rejects_alg_none() {
    let auth = auth(&hmac_config(&["HS256"]));
    for alg in ["none", "None"] {
        let token = format!(
            "{}.{}.",
            b64(&json!({"alg": alg, "typ": "JWT"})),
            b64(&base_claims())
        );
        assert!(invalid(&auth, &token).contains("alg none"));
    }
    // Same, with a signature segment that someone copied from a real token.
    let real = sign(Algorithm::HS256, &base_claims());
    let sig = real.rsplit('.').next().unwrap();
    let token = format!(
        "{}.{}.{sig}",
        b64(&json!({"alg": "none"})),
        b64(&base_claims())
    );
    assert!(invalid(&auth, &token).contains("alg none"));
}

#[test]
fn rejects_missing_or_unknown_alg_header() {
    let auth = auth(&hmac_config(&["HS256"]));
    let payload = b64(&base_claims());
    let no_alg = format!("{}.{payload}.AAAA", b64(&json!({"typ": "JWT"})));
    assert_eq!(invalid(&auth, &no_alg), "header has no alg");
    let odd = format!("{}.{payload}.AAAA", b64(&json!({"alg": "HS1024"})));
    assert_eq!(invalid(&auth, &odd), "unsupported algorithm");
}

#[test]
fn rejects_critical_header_parameters() {
    let auth = auth(&hmac_config(&["HS256"]));
    let mut header = Header::new(Algorithm::HS256);
    header.crit = Some(vec!["exp".into()]);
    let key = encoding_key(Algorithm::HS256, None);
    let token = jsonwebtoken::encode(&header, &base_claims(), &key).unwrap();
    assert!(invalid(&auth, &token).contains("critical"));
}

#[test]
fn rejects_tampered_signature_and_payload() {
    let auth = auth(&pem_config(&["ES256"], "ec256_public.pem"));
    let token = sign(Algorithm::ES256, &base_claims());
    let (rest, sig) = token.rsplit_once('.').unwrap();
    let flipped = if sig.starts_with('A') { "B" } else { "A" };
    let tampered_sig = format!("{rest}.{flipped}{}", &sig[1..]);
    assert_eq!(invalid(&auth, &tampered_sig), "invalid signature");

    let (header, _) = rest.split_once('.').unwrap();
    let tampered_payload = format!("{header}.{}.{sig}", b64(&with(json!({"sub": "mallory"}))));
    assert_eq!(invalid(&auth, &tampered_payload), "invalid signature");
}

#[test]
fn rejects_expired_and_not_yet_valid_tokens() {
    let auth = auth(&hmac_config(&["HS256"]));
    let expired = sign(Algorithm::HS256, &json!({"exp": NOW_SECS - 3600}));
    assert_eq!(invalid(&auth, &expired), "token expired");
    let early = sign(Algorithm::HS256, &with(json!({"nbf": NOW_SECS + 3600})));
    assert!(invalid(&auth, &early).contains("not yet valid"));
}

#[test]
fn leeway_edges_for_exp_and_nbf() {
    let auth = auth(&hmac_config(&["HS256"])); // default leeway 30 s
    let token = |claims: Value| sign(Algorithm::HS256, &claims);
    // Accepted while now < exp + leeway.
    valid(&auth, &token(json!({"exp": NOW_SECS - 29})));
    assert_eq!(
        invalid(&auth, &token(json!({"exp": NOW_SECS - 30}))),
        "token expired"
    );
    // Accepted once now + leeway >= nbf.
    valid(&auth, &token(with(json!({"nbf": NOW_SECS + 30}))));
    invalid(&auth, &token(with(json!({"nbf": NOW_SECS + 31}))));

    let strict = JwtAuth::new(&JwtConfig {
        leeway_secs: 0,
        ..hmac_config(&["HS256"])
    })
    .unwrap();
    invalid(&strict, &token(json!({"exp": NOW_SECS})));
    valid(&strict, &token(json!({"exp": NOW_SECS + 1})));
}

#[test]
fn expires_at_is_exp_plus_leeway() {
    let auth = auth(&hmac_config(&["HS256"]));
    let grant = valid(&auth, &sign(Algorithm::HS256, &base_claims()));
    assert_eq!(
        grant.expires_at,
        Some(now() + Duration::from_secs(3600 + 30))
    );
}

#[test]
fn accepts_fractional_numeric_dates() {
    let auth = auth(&hmac_config(&["HS256"]));
    let exp = (NOW_SECS + 100) as f64 + 0.5;
    let grant = valid(&auth, &sign(Algorithm::HS256, &json!({"exp": exp})));
    assert_eq!(grant.expires_at, Some(now() + Duration::from_secs(130)));
    let bad = sign(Algorithm::HS256, &json!({"exp": "tomorrow"}));
    invalid(&auth, &bad);
}

#[test]
fn missing_exp_rejected_only_when_required() {
    let no_exp = sign(Algorithm::HS256, &json!({"sub": "alice"}));
    let reason = invalid(&auth(&hmac_config(&["HS256"])), &no_exp);
    assert_eq!(reason, "missing required claim exp");
    let lenient = auth(&JwtConfig {
        require_exp: false,
        ..hmac_config(&["HS256"])
    });
    assert_eq!(valid(&lenient, &no_exp).expires_at, None);
}

#[test]
fn checks_issuer() {
    let auth = auth(&JwtConfig {
        issuer: Some("https://idp.example".into()),
        ..hmac_config(&["HS256"])
    });
    valid(
        &auth,
        &sign(
            Algorithm::HS256,
            &with(json!({"iss": "https://idp.example"})),
        ),
    );
    let wrong = sign(
        Algorithm::HS256,
        &with(json!({"iss": "https://evil.example"})),
    );
    assert_eq!(invalid(&auth, &wrong), "issuer not accepted");
    let missing = sign(Algorithm::HS256, &base_claims());
    assert_eq!(invalid(&auth, &missing), "missing required claim iss");
}

#[test]
fn checks_audience() {
    let auth = auth(&JwtConfig {
        audience: vec!["cauldron".into(), "mqtt".into()],
        ..hmac_config(&["HS256"])
    });
    valid(
        &auth,
        &sign(Algorithm::HS256, &with(json!({"aud": "mqtt"}))),
    );
    valid(
        &auth,
        &sign(Algorithm::HS256, &with(json!({"aud": ["web", "cauldron"]}))),
    );
    let wrong = sign(Algorithm::HS256, &with(json!({"aud": ["web"]})));
    assert_eq!(invalid(&auth, &wrong), "audience not accepted");
    let missing = sign(Algorithm::HS256, &base_claims());
    assert_eq!(invalid(&auth, &missing), "missing required claim aud");
}

#[test]
fn audience_not_checked_when_none_configured() {
    let auth = auth(&hmac_config(&["HS256"]));
    valid(
        &auth,
        &sign(Algorithm::HS256, &with(json!({"aud": "anything"}))),
    );
}

#[test]
fn username_claim_must_equal_username() {
    let auth = auth(&JwtConfig {
        username_claim: Some("sub".into()),
        ..hmac_config(&["HS256"])
    });
    let token = sign(Algorithm::HS256, &base_claims()); // sub = alice
    assert!(matches!(verdict(&auth, &token), JwtVerdict::Valid(_)));
    let as_bob = auth.verify_at(token.as_bytes(), Some("bob"), "client-1", now());
    assert!(matches!(as_bob, JwtVerdict::Invalid(r) if r.contains("does not match the username")));
    let anonymous = auth.verify_at(token.as_bytes(), None, "client-1", now());
    assert!(matches!(anonymous, JwtVerdict::Invalid(r) if r.contains("none was given")));
    let no_sub = sign(Algorithm::HS256, &json!({"exp": NOW_SECS + 60}));
    assert!(invalid(&auth, &no_sub).contains("missing claim sub"));
}

#[test]
fn clientid_claim_must_equal_client_id() {
    let auth = auth(&JwtConfig {
        clientid_claim: Some("cid".into()),
        ..hmac_config(&["HS256"])
    });
    let token = sign(Algorithm::HS256, &with(json!({"cid": "client-1"})));
    valid(&auth, &token);
    let other = auth.verify_at(token.as_bytes(), Some("alice"), "client-2", now());
    assert!(matches!(other, JwtVerdict::Invalid(r) if r.contains("does not match the client id")));
}

#[test]
fn jwks_selects_key_by_kid() {
    let auth = auth(&jwks_config(&["RS256"]));
    let rsa2 = encoding_key(Algorithm::RS256, Some("rsa2_private.pem"));
    let rsa1 = encoding_key(Algorithm::RS256, None);
    valid(
        &auth,
        &sign_with(Algorithm::RS256, &rsa1, Some("rsa-1"), &base_claims()),
    );
    valid(
        &auth,
        &sign_with(Algorithm::RS256, &rsa2, Some("rsa-2"), &base_claims()),
    );
    // rsa2's signature under rsa-1's kid.
    let wrong_kid = sign_with(Algorithm::RS256, &rsa2, Some("rsa-1"), &base_claims());
    assert_eq!(invalid(&auth, &wrong_kid), "invalid signature");
}

#[test]
fn jwks_rejects_unknown_kid_and_skipped_keys() {
    let auth = auth(&jwks_config(&["RS256"]));
    let rsa2 = encoding_key(Algorithm::RS256, Some("rsa2_private.pem"));
    for kid in ["nope", "rsa-enc", "ec-p256"] {
        let token = sign_with(Algorithm::RS256, &rsa2, Some(kid), &base_claims());
        assert_eq!(invalid(&auth, &token), "unknown key id", "{kid}");
    }
    let no_kid = sign_with(Algorithm::RS256, &rsa2, None, &base_claims());
    assert!(invalid(&auth, &no_kid).contains("no key id"));
}

#[test]
fn jwks_key_alg_and_curve_restrict_token_alg() {
    // rsa-1 declares "alg": "RS256": a PS256 token under it is refused even though PS256 is pinned.
    let rsa = auth(&jwks_config(&["RS256", "PS256"]));
    let rsa1 = encoding_key(Algorithm::PS256, None);
    let token = sign_with(Algorithm::PS256, &rsa1, Some("rsa-1"), &base_claims());
    assert!(invalid(&rsa, &token).contains("does not accept PS256"));

    let ec = auth(&jwks_config(&["ES256", "ES384"]));
    let p384 = encoding_key(Algorithm::ES384, None);
    valid(
        &ec,
        &sign_with(Algorithm::ES384, &p384, Some("ec-p384"), &base_claims()),
    );
    let token = sign_with(Algorithm::ES384, &p384, Some("ec-p256"), &base_claims());
    assert!(invalid(&ec, &token).contains("does not accept ES384"));
}

#[test]
fn jwks_with_one_usable_key_accepts_token_without_kid() {
    let auth = auth(&jwks_config(&["EdDSA"]));
    valid(&auth, &sign(Algorithm::EdDSA, &base_claims()));
}

#[test]
fn ordinary_passwords_are_not_tokens() {
    let auth = auth(&hmac_config(&["HS256"]));
    let not_tokens: [&[u8]; 8] = [
        b"hunter2",
        b"",
        b"a.b.c",
        b"x.y",
        b"correct.horse.battery.staple",
        b"e30.e30",     // two segments
        b"W10.e30.sig", // header is a JSON array, not an object
        &[0xff, 0xfe, b'.', 0x80, b'.', 0x00],
    ];
    for password in not_tokens {
        let v = auth.verify_at(password, Some("alice"), "client-1", now());
        assert_eq!(v, JwtVerdict::NotAToken, "{password:?}");
    }
}

#[test]
fn token_with_garbage_payload_is_invalid_not_passed_on() {
    let auth = auth(&hmac_config(&["HS256"]));
    let token = format!("{}.bm90IGpzb24.AAAA", b64(&json!({"alg": "HS256"})));
    assert!(matches!(verdict(&auth, &token), JwtVerdict::Invalid(_)));
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

    /// A password is whatever a client sends: any bytes get a verdict (no panic), and a
    /// refusal's reason never carries a piece of them.
    #[test]
    fn any_password_gets_a_verdict_that_leaks_nothing(
        password in proptest::collection::vec(proptest::num::u8::ANY, 0..200),
    ) {
        let auth = JwtAuth::new(&hmac_config(&["HS256"])).unwrap();
        let v = auth.verify_at(&password, Some("alice"), "client-1", now());
        proptest::prop_assert!(!matches!(v, JwtVerdict::Valid(_)), "{:?}", v);
        if let JwtVerdict::Invalid(reason) = v {
            let text = String::from_utf8_lossy(&password);
            for piece in text.split('.').filter(|p| p.len() >= 8) {
                proptest::prop_assert!(!reason.contains(piece), "{} leaks {}", reason, piece);
            }
        }
    }

    /// Tokens shaped right, with any header fields, any claims and any signature, are
    /// judged without a panic and never accepted: only a signature made with the key is.
    #[test]
    fn a_token_with_a_made_up_signature_is_never_accepted(
        alg in proptest::sample::select(vec!["HS256", "HS512", "RS256", "none", "ES256", "EdDSA", ""]),
        kid in proptest::option::of("[a-z0-9]{0,8}"),
        claims in proptest::collection::btree_map("[a-z]{1,5}", proptest::prelude::any::<i64>(), 0..6),
        signature in proptest::collection::vec(proptest::num::u8::ANY, 0..80),
        rsa in proptest::bool::ANY,
    ) {
        let mut header = json!({ "alg": alg, "typ": "JWT" });
        if let Some(kid) = kid {
            header["kid"] = json!(kid);
        }
        let mut payload = base_claims();
        for (k, v) in claims {
            payload[k] = json!(v);
        }
        let token = format!(
            "{}.{}.{}",
            b64(&header),
            b64(&payload),
            URL_SAFE_NO_PAD.encode(&signature)
        );
        let auth = if rsa {
            JwtAuth::new(&pem_config(&["RS256"], "rsa_public.pem")).unwrap()
        } else {
            JwtAuth::new(&hmac_config(&["HS256"])).unwrap()
        };
        let v = verdict(&auth, &token);
        proptest::prop_assert!(matches!(v, JwtVerdict::Invalid(_)), "{:?}", v);
    }
}
