#![allow(clippy::unwrap_used)] // tests may unwrap
//! Configuration and key-loading tests for `auth::jwt`: which configurations are refused and
//! why (errors name the file), serde defaults, and SIGHUP reload keeping the old keys on error.

use std::path::Path;

use jsonwebtoken::Algorithm;

use super::tests::{
    base_claims, config, fixture, hmac_config, invalid, jwks_config, pem_config, sign, sign_with,
    valid,
};
use super::*;

fn error(cfg: &JwtConfig) -> Error {
    match JwtAuth::new(cfg) {
        Ok(_) => panic!("expected a config error for {:?}", cfg.algorithms),
        Err(e) => e,
    }
}

#[test]
fn rejects_config_without_key() {
    assert!(matches!(error(&config(&["HS256"])), Error::NoKey));
}

#[test]
fn rejects_config_with_two_keys() {
    let cfg = JwtConfig {
        public_key_file: Some(fixture("rsa_public.pem")),
        ..hmac_config(&["HS256"])
    };
    assert!(matches!(error(&cfg), Error::SeveralKeys));
    let cfg = JwtConfig {
        jwks_file: Some(fixture("jwks.json")),
        ..pem_config(&["RS256"], "rsa_public.pem")
    };
    assert!(matches!(error(&cfg), Error::SeveralKeys));
}

#[test]
fn rejects_bad_algorithm_lists() {
    assert!(matches!(error(&hmac_config(&[])), Error::NoAlgorithms));
    let e = error(&hmac_config(&["HS256", "none"]));
    assert!(
        matches!(&e, Error::UnsupportedAlgorithm(a) if a == "none"),
        "{e}"
    );
    assert!(matches!(
        error(&hmac_config(&["hs256"])),
        Error::UnsupportedAlgorithm(_)
    ));
    let e = error(&pem_config(&["RS256", "HS256"], "rsa_public.pem"));
    assert!(matches!(e, Error::MixedAlgorithmFamilies(_)));
}

#[test]
fn bad_pem_error_names_the_path() {
    let e = error(&pem_config(&["RS256"], "garbage.pem"));
    assert!(matches!(e, Error::BadPem { .. }), "{e}");
    assert!(
        e.to_string()
            .contains(&fixture("garbage.pem").display().to_string()),
        "{e}"
    );

    let e = error(&pem_config(&["RS256"], "no-such-key.pem"));
    assert!(matches!(e, Error::Read { .. }), "{e}");
    assert!(e.to_string().contains("no-such-key.pem"), "{e}");

    let e = error(&pem_config(&["RS256"], "README.txt"));
    assert!(e.to_string().contains("README.txt"), "{e}");
}

#[test]
fn rejects_key_of_another_family() {
    let e = error(&pem_config(&["RS256"], "ec256_public.pem"));
    assert!(
        matches!(&e, Error::KeyMismatch { source_name, .. } if source_name.ends_with("ec256_public.pem")),
        "{e}"
    );
    let e = error(&pem_config(&["EdDSA"], "rsa_public.pem"));
    assert!(matches!(e, Error::KeyMismatch { .. }), "{e}");
    let e = error(&pem_config(&["HS256"], "rsa_public.pem"));
    assert!(matches!(e, Error::KeyMismatch { .. }), "{e}");
    let e = error(&JwtConfig {
        secret: Some("s".repeat(32)),
        ..config(&["RS256"])
    });
    assert!(
        matches!(&e, Error::KeyMismatch { source_name, .. } if source_name == "secret"),
        "{e}"
    );
}

#[test]
fn rejects_ec_key_of_another_curve() {
    let e = error(&pem_config(&["ES384"], "ec256_public.pem"));
    assert!(matches!(e, Error::KeyMismatch { .. }), "{e}");
    let e = error(&pem_config(&["ES256", "ES384"], "ec384_public.pem"));
    assert!(e.to_string().contains("ES256"), "{e}");
}

#[test]
fn rejects_bad_secrets() {
    let empty = JwtConfig {
        secret: Some(String::new()),
        ..config(&["HS256"])
    };
    assert!(matches!(error(&empty), Error::BadSecret(_)));
    let not_base64 = JwtConfig {
        secret: Some("not base64 at all!".into()),
        secret_base64: true,
        ..config(&["HS256"])
    };
    assert!(matches!(error(&not_base64), Error::BadSecret(_)));
}

#[test]
fn rejects_jwks_without_usable_key() {
    let e = error(&jwks_config(&["HS256"]));
    assert!(matches!(e, Error::BadJwks { .. }), "{e}");
    assert!(e.to_string().contains("jwks.json"), "{e}");
    let e = error(&JwtConfig {
        jwks_file: Some(fixture("rsa_public.pem")),
        ..config(&["RS256"])
    });
    assert!(matches!(e, Error::BadJwks { .. }), "{e}");
}

#[test]
fn config_deserializes_with_defaults_and_refuses_unknown_fields() {
    let cfg: JwtConfig =
        serde_json::from_str(r#"{"algorithms": ["HS256"], "secret": "x"}"#).unwrap();
    assert_eq!(cfg.leeway_secs, 30);
    assert!(cfg.require_exp);
    assert!(!cfg.secret_base64);
    assert_eq!(cfg.permissions_claim, "acl");
    assert_eq!(cfg.roles_claim.as_deref(), Some("roles"));
    assert!(cfg.audience.is_empty());
    let unknown =
        serde_json::from_str::<JwtConfig>(r#"{"algorithms": ["HS256"], "secret_file": "x"}"#);
    assert!(unknown.is_err());
}

#[test]
fn debug_output_hides_the_secret() {
    let auth = JwtAuth::new(&hmac_config(&["HS256"])).unwrap();
    assert!(!format!("{auth:?}").contains(super::tests::SECRET));
}

/// A copy of a fixture in a private temporary folder, removed on drop.
struct TempKey(std::path::PathBuf);

impl TempKey {
    fn new(test: &str, from: &str) -> TempKey {
        let dir = std::env::temp_dir().join(format!("cauldron-jwt-{}-{test}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let key = TempKey(dir.join("key.pem"));
        key.replace_with(from);
        key
    }

    fn replace_with(&self, from: &str) {
        std::fs::copy(fixture(from), &self.0).unwrap();
    }

    fn write(&self, contents: &str) {
        std::fs::write(&self.0, contents).unwrap();
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempKey {
    fn drop(&mut self) {
        if let Some(dir) = self.0.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

#[test]
fn reload_swaps_keys_and_keeps_old_ones_on_error() {
    let key = TempKey::new("reload", "rsa_public.pem");
    let auth = JwtAuth::new(&JwtConfig {
        public_key_file: Some(key.path().to_path_buf()),
        ..config(&["RS256"])
    })
    .unwrap();
    let by_rsa1 = sign(Algorithm::RS256, &base_claims());
    let rsa2_key = jsonwebtoken::EncodingKey::from_rsa_pem(
        &std::fs::read(fixture("rsa2_private.pem")).unwrap(),
    )
    .unwrap();
    let by_rsa2 = sign_with(Algorithm::RS256, &rsa2_key, None, &base_claims());
    valid(&auth, &by_rsa1);

    key.replace_with("garbage.pem");
    let e = auth.reload().unwrap_err();
    assert!(
        e.to_string().contains(&key.path().display().to_string()),
        "{e}"
    );
    valid(&auth, &by_rsa1);

    key.replace_with("rsa2_public.pem");
    auth.reload().unwrap();
    valid(&auth, &by_rsa2);
    assert_eq!(invalid(&auth, &by_rsa1), "invalid signature");
}

#[test]
fn a_rotated_key_file_is_taken_once_it_holds() {
    let key = TempKey::new("watch", "rsa_public.pem");
    let auth = JwtAuth::new(&JwtConfig {
        public_key_file: Some(key.path().to_path_buf()),
        ..config(&["RS256"])
    })
    .unwrap();
    assert!(auth.has_key_file());
    let rsa2_key = jsonwebtoken::EncodingKey::from_rsa_pem(
        &std::fs::read(fixture("rsa2_private.pem")).unwrap(),
    )
    .unwrap();
    let by_rsa2 = sign_with(Algorithm::RS256, &rsa2_key, None, &base_claims());
    assert!(!auth.reload_if_changed().unwrap(), "unchanged");

    key.replace_with("rsa2_public.pem");
    assert!(
        !auth.reload_if_changed().unwrap(),
        "seen; read at the next look"
    );
    assert_eq!(invalid(&auth, &by_rsa2), "invalid signature");
    assert!(auth.reload_if_changed().unwrap());
    valid(&auth, &by_rsa2);
    assert!(!auth.reload_if_changed().unwrap(), "read: unchanged again");

    // A broken file is reported once and the keys in force stay.
    key.replace_with("garbage.pem");
    assert!(!auth.reload_if_changed().unwrap());
    assert!(auth.reload_if_changed().is_err());
    assert!(!auth.reload_if_changed().unwrap());
    valid(&auth, &by_rsa2);
}

#[test]
fn reload_of_secret_config_is_a_no_op() {
    let auth = JwtAuth::new(&hmac_config(&["HS256"])).unwrap();
    assert!(!auth.has_key_file());
    assert!(!auth.reload_if_changed().unwrap());
    auth.reload().unwrap();
    valid(&auth, &sign(Algorithm::HS256, &base_claims()));
}

#[test]
fn rejects_broken_jwks_keys_without_panicking() {
    let file = TempKey::new("broken-jwks", "jwks.json");
    let cfg = |algs: &[&str]| JwtConfig {
        jwks_file: Some(file.path().to_path_buf()),
        ..config(algs)
    };
    // An Ed25519 `x` that is far too short (jsonwebtoken would slice it and panic).
    file.write(r#"{"keys": [{"kty": "OKP", "kid": "short", "crv": "Ed25519", "x": "AAAA"}]}"#);
    let e = error(&cfg(&["EdDSA"]));
    assert!(e.to_string().contains("short"), "{e}");
    // `crv` says P-384 but the point is P-256-sized.
    let jwks: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixture("jwks.json")).unwrap()).unwrap();
    let mut p256 = jwks["keys"][2].clone();
    p256["crv"] = "P-384".into();
    file.write(&serde_json::json!({ "keys": [p256] }).to_string());
    assert!(matches!(
        error(&cfg(&["ES256", "ES384"])),
        Error::BadJwks { .. }
    ));
    // Duplicate kids are ambiguous.
    let rsa = jwks["keys"][1].clone();
    file.write(&serde_json::json!({ "keys": [rsa.clone(), rsa] }).to_string());
    assert!(
        error(&cfg(&["RS256"]))
            .to_string()
            .contains("duplicate kid")
    );
}

#[test]
fn error_messages_name_the_problem() {
    let messages = [
        error(&config(&["HS256"])).to_string(),
        error(&pem_config(&["RS256"], "garbage.pem")).to_string(),
        error(&pem_config(&["RS256"], "ec256_public.pem")).to_string(),
        error(&pem_config(&["ES384"], "ec256_public.pem")).to_string(),
    ];
    for m in &messages {
        println!("{m}");
        assert!(
            m.chars().next().is_some_and(|c| c.is_lowercase()) && !m.ends_with('.'),
            "{m}"
        );
    }
}
