//! Key material for the JWT authenticator: parses the pinned algorithm list and loads the
//! HMAC secret, the PEM public key or the JWKS file, checking that every key fits the pinned
//! algorithms (one family; for EC keys, the curve). Knows nothing about claims, MQTT or the
//! authenticator chain; the only I/O is reading the configured key file.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey};

use super::{Error, JwtConfig};

/// One verification key and the pinned algorithms it may verify.
pub(super) struct VerifyKey {
    /// The JWKS `kid`; `None` for a secret or a PEM key.
    pub kid: Option<String>,
    /// The key itself.
    pub key: DecodingKey,
    /// Subset of the pinned algorithms usable with this key (never empty).
    pub algorithms: Vec<Algorithm>,
}

/// The keys in force: a single key (secret or PEM; any `kid` is ignored) or a JWKS.
pub(super) enum KeySet {
    /// A secret or a PEM public key.
    Single(VerifyKey),
    /// The usable keys of a JWKS file, chosen by `kid`.
    Jwks(Vec<VerifyKey>),
}

impl KeySet {
    /// The key for a token with this `kid`, or a reason that is safe to log.
    pub(super) fn select(&self, kid: Option<&str>) -> Result<&VerifyKey, &'static str> {
        match (self, kid) {
            (KeySet::Single(key), _) => Ok(key),
            (KeySet::Jwks(keys), Some(kid)) => keys
                .iter()
                .find(|k| k.kid.as_deref() == Some(kid))
                .ok_or("unknown key id"),
            // Without a kid the choice is unambiguous only when the set holds one key.
            (KeySet::Jwks(keys), None) => match keys.as_slice() {
                [only] => Ok(only),
                _ => Err("token has no key id and the key set holds several keys"),
            },
        }
    }
}

/// Where the key comes from, decided once from the configuration.
#[derive(Debug, Clone)]
pub(super) enum KeySource {
    /// HMAC secret bytes.
    Secret(Vec<u8>),
    /// PEM public key file.
    Pem(PathBuf),
    /// JWKS JSON file.
    Jwks(PathBuf),
}

/// Parses the pinned algorithm names; all must exist and share one family.
pub(super) fn parse_algorithms(
    names: &[String],
) -> Result<(Vec<Algorithm>, AlgorithmFamily), Error> {
    let mut algorithms = Vec::with_capacity(names.len());
    for name in names {
        let alg: Algorithm = name
            .parse()
            .map_err(|_| Error::UnsupportedAlgorithm(name.clone()))?;
        if !algorithms.contains(&alg) {
            algorithms.push(alg);
        }
    }
    let family = match algorithms.first() {
        Some(first) => first.family(),
        None => return Err(Error::NoAlgorithms),
    };
    if algorithms.iter().any(|a| a.family() != family) {
        return Err(Error::MixedAlgorithmFamilies(names.join(", ")));
    }
    Ok((algorithms, family))
}

/// Decides the key source: exactly one of `secret`, `public_key_file`, `jwks_file`.
pub(super) fn key_source(cfg: &JwtConfig) -> Result<KeySource, Error> {
    let given = [
        cfg.secret.is_some(),
        cfg.public_key_file.is_some(),
        cfg.jwks_file.is_some(),
    ];
    match given.iter().filter(|g| **g).count() {
        0 => return Err(Error::NoKey),
        1 => {}
        _ => return Err(Error::SeveralKeys),
    }
    if let Some(path) = &cfg.public_key_file {
        return Ok(KeySource::Pem(path.clone()));
    }
    if let Some(path) = &cfg.jwks_file {
        return Ok(KeySource::Jwks(path.clone()));
    }
    let secret = cfg.secret.as_deref().unwrap_or_default();
    let bytes = if cfg.secret_base64 {
        STANDARD
            .decode(secret.trim())
            .or_else(|_| URL_SAFE_NO_PAD.decode(secret.trim()))
            .map_err(|_| Error::BadSecret("secret is not valid base64"))?
    } else {
        secret.as_bytes().to_vec()
    };
    if bytes.is_empty() {
        return Err(Error::BadSecret("secret is empty"));
    }
    if bytes.len() < 32 {
        tracing::warn!(
            bytes = bytes.len(),
            "jwt hmac secret is shorter than 32 bytes; use a longer random secret"
        );
    }
    Ok(KeySource::Secret(bytes))
}

/// Loads the keys from `source` and checks them against the pinned algorithms.
pub(super) fn load(
    source: &KeySource,
    algorithms: &[Algorithm],
    family: AlgorithmFamily,
) -> Result<KeySet, Error> {
    match source {
        KeySource::Secret(bytes) => {
            if family != AlgorithmFamily::Hmac {
                return Err(Error::KeyMismatch {
                    source_name: "secret".into(),
                    reason: format!("an hmac secret cannot verify {} algorithms", name(family)),
                });
            }
            Ok(KeySet::Single(VerifyKey {
                kid: None,
                key: DecodingKey::from_secret(bytes),
                algorithms: algorithms.to_vec(),
            }))
        }
        KeySource::Pem(path) => load_pem(path, algorithms, family).map(KeySet::Single),
        KeySource::Jwks(path) => load_jwks(path, algorithms, family).map(KeySet::Jwks),
    }
}

/// A family's name for error messages.
fn name(family: AlgorithmFamily) -> &'static str {
    match family {
        AlgorithmFamily::Hmac => "hmac",
        AlgorithmFamily::Rsa => "rsa",
        AlgorithmFamily::Ec => "ecdsa",
        AlgorithmFamily::Ed => "eddsa",
    }
}

fn read(path: &Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|source| Error::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn load_pem(
    path: &Path,
    algorithms: &[Algorithm],
    family: AlgorithmFamily,
) -> Result<VerifyKey, Error> {
    let pem = read(path)?;
    let parsed = [
        (AlgorithmFamily::Rsa, DecodingKey::from_rsa_pem(&pem)),
        (AlgorithmFamily::Ec, DecodingKey::from_ec_pem(&pem)),
        (AlgorithmFamily::Ed, DecodingKey::from_ed_pem(&pem)),
    ];
    let mismatch = |reason: String| Error::KeyMismatch {
        source_name: path.display().to_string(),
        reason,
    };
    if family == AlgorithmFamily::Hmac {
        return Err(mismatch(
            "hmac algorithms need `secret`, not a public key".into(),
        ));
    }
    let mut found = None;
    for (key_family, result) in parsed {
        if let Ok(key) = result {
            found = Some((key_family, key));
            break;
        }
    }
    let Some((key_family, key)) = found else {
        return Err(Error::BadPem {
            path: path.to_path_buf(),
            reason: "not an RSA, EC or Ed25519 public key in PEM form".into(),
        });
    };
    if key_family != family {
        return Err(mismatch(format!(
            "the key is {} but the algorithms are {}",
            name(key_family),
            name(family)
        )));
    }
    let usable = usable_algorithms(&key, algorithms, None).map_err(|reason| Error::BadPem {
        path: path.to_path_buf(),
        reason: reason.into(),
    })?;
    if let Some(bad) = algorithms.iter().find(|a| !usable.contains(a)) {
        return Err(mismatch(format!(
            "the key cannot verify {bad:?} (wrong curve)"
        )));
    }
    Ok(VerifyKey {
        kid: None,
        key,
        algorithms: usable,
    })
}

fn load_jwks(
    path: &Path,
    algorithms: &[Algorithm],
    family: AlgorithmFamily,
) -> Result<Vec<VerifyKey>, Error> {
    let bad = |reason: String| Error::BadJwks {
        path: path.to_path_buf(),
        reason,
    };
    let set: JwkSet = serde_json::from_slice(&read(path)?)
        .map_err(|e| bad(format!("not a JWKS document: {e}")))?;
    let mut keys: Vec<VerifyKey> = Vec::new();
    for jwk in &set.keys {
        let kid = jwk.common.key_id.clone();
        let Some(key) = jwk_key(jwk, algorithms, family).map_err(|r| {
            bad(format!(
                "key {}: {r}",
                kid.as_deref().unwrap_or("without kid")
            ))
        })?
        else {
            tracing::debug!(path = %path.display(), kid = ?kid, "jwks key skipped (other family, use or alg)");
            continue;
        };
        if keys.iter().any(|k| k.kid == key.kid) {
            return Err(bad(format!("duplicate kid {:?}", key.kid)));
        }
        keys.push(key);
    }
    if keys.is_empty() {
        return Err(bad(format!(
            "no key usable with the pinned {} algorithms",
            name(family)
        )));
    }
    Ok(keys)
}

/// One JWK: `Ok(None)` when it does not apply to the pinned algorithms (other family,
/// `use` other than `sig`, `alg` outside the pinned list), `Err` when it applies but is broken.
fn jwk_key(
    jwk: &Jwk,
    algorithms: &[Algorithm],
    family: AlgorithmFamily,
) -> Result<Option<VerifyKey>, &'static str> {
    if matches!(&jwk.common.public_key_use, Some(u) if *u != PublicKeyUse::Signature) {
        return Ok(None);
    }
    let (key_family, curve) = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => (AlgorithmFamily::Rsa, None),
        AlgorithmParameters::EllipticCurve(p) => (AlgorithmFamily::Ec, Some(p.curve.clone())),
        AlgorithmParameters::OctetKeyPair(p) => (AlgorithmFamily::Ed, Some(p.curve.clone())),
        AlgorithmParameters::OctetKey(_) => (AlgorithmFamily::Hmac, None),
        _ => return Ok(None),
    };
    if key_family != family {
        return Ok(None);
    }
    let mut pinned: Vec<Algorithm> = algorithms.to_vec();
    if let Some(declared) = jwk.common.key_algorithm {
        match Algorithm::try_from(declared) {
            Ok(alg) if algorithms.contains(&alg) => pinned = vec![alg],
            _ => return Ok(None),
        }
    }
    let key = DecodingKey::from_jwk(jwk).map_err(|_| "malformed key parameters")?;
    let usable = usable_algorithms(&key, &pinned, curve.as_ref())?;
    if usable.is_empty() {
        return Ok(None);
    }
    Ok(Some(VerifyKey {
        kid: jwk.common.key_id.clone(),
        key,
        algorithms: usable,
    }))
}

/// The algorithms of `pinned` this key can verify. For EC the curve follows from the point
/// size (and must agree with a declared `crv`); Ed25519 keys must be exactly 32 bytes.
/// `Err` when the key bytes are unusable for its own family.
fn usable_algorithms(
    key: &DecodingKey,
    pinned: &[Algorithm],
    declared_curve: Option<&EllipticCurve>,
) -> Result<Vec<Algorithm>, &'static str> {
    let bytes = key.try_get_as_bytes().ok();
    let usable: Vec<Algorithm> = match key.family() {
        AlgorithmFamily::Hmac | AlgorithmFamily::Rsa => pinned.to_vec(),
        AlgorithmFamily::Ec => {
            let (alg, curve) = match bytes.map(<[u8]>::len) {
                Some(65) => (Algorithm::ES256, EllipticCurve::P256),
                Some(97) => (Algorithm::ES384, EllipticCurve::P384),
                _ => return Err("unsupported EC key (only P-256 and P-384)"),
            };
            if declared_curve.is_some_and(|c| *c != curve) {
                return Err("EC point size does not match crv");
            }
            pinned.iter().copied().filter(|a| *a == alg).collect()
        }
        AlgorithmFamily::Ed => {
            if bytes.map(<[u8]>::len) != Some(32)
                || declared_curve.is_some_and(|c| *c != EllipticCurve::Ed25519)
            {
                return Err("unsupported EdDSA key (only Ed25519)");
            }
            pinned.to_vec()
        }
    };
    // Building a verifier parses EC and Ed points: reject keys that are not on the curve now
    // rather than failing every token later.
    for alg in &usable {
        if jsonwebtoken::crypto::verify("AA", b"probe", key, *alg).is_err() {
            return Err("the key bytes are not a valid public key");
        }
    }
    Ok(usable)
}
