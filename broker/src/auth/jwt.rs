//! The built-in JWT authenticator: checks a JWS compact token presented as the MQTT password
//! (signature with a pinned algorithm, `exp`/`nbf` with leeway, `iss`, `aud`, bindings to the
//! username and client id) and turns its claims into a [`JwtGrant`] (roles, topic permissions,
//! claims for ACL placeholders). Keys come from an HMAC secret, a PEM public key or a JWKS file
//! (`jwt_keys.rs`); claim checks live in `jwt_claims.rs`. This module knows nothing about
//! sockets, MQTT packets or the other authenticators; it never logs or returns the token.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::SystemTime;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, AlgorithmFamily, Validation};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::identity::TokenPermissions;
use crate::file_watch::FileWatch;

#[path = "jwt_claims.rs"]
mod claims;
#[cfg(test)]
#[path = "jwt_config_tests.rs"]
mod config_tests;
#[cfg(test)]
#[path = "jwt_grant_tests.rs"]
mod grant_tests;
#[path = "jwt_keys.rs"]
mod keys;
#[cfg(test)]
#[path = "jwt_tests.rs"]
mod tests;

use keys::{KeySet, KeySource};

/// Configuration of the JWT authenticator (`[auth.jwt]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JwtConfig {
    /// Pinned JOSE algorithm names (`HS256` .. `EdDSA`), non-empty, all of one key family.
    /// A token's `alg` header must be one of these; it is never trusted otherwise.
    pub algorithms: Vec<String>,
    /// HMAC shared secret (UTF-8, or base64 when `secret_base64`).
    pub secret: Option<String>,
    /// `secret` is base64 (standard, or URL-safe without padding).
    pub secret_base64: bool,
    /// PEM public key: RSA (PKCS#1 or SPKI), EC P-256/P-384 or Ed25519 (SPKI).
    pub public_key_file: Option<PathBuf>,
    /// JWKS JSON file; the key is chosen by the token's `kid` and must accept its `alg`.
    pub jwks_file: Option<PathBuf>,
    /// When set, `iss` is required and must equal it.
    pub issuer: Option<String>,
    /// When non-empty, `aud` is required and must contain one of these. When empty, `aud`
    /// is not checked.
    pub audience: Vec<String>,
    /// Clock-skew tolerance for `exp` and `nbf`, in seconds.
    pub leeway_secs: u64,
    /// Reject tokens without `exp`.
    pub require_exp: bool,
    /// When set, this claim must equal the MQTT username (e.g. `"sub"`).
    pub username_claim: Option<String>,
    /// When set, this claim must equal the client id.
    pub clientid_claim: Option<String>,
    /// Claim holding `{"pub": [filters], "sub": [filters]}` (`publish`/`subscribe` too).
    pub permissions_claim: String,
    /// Claim holding the roles: a string or an array of strings.
    pub roles_claim: Option<String>,
}

impl Default for JwtConfig {
    fn default() -> Self {
        JwtConfig {
            algorithms: Vec::new(),
            secret: None,
            secret_base64: false,
            public_key_file: None,
            jwks_file: None,
            issuer: None,
            audience: Vec::new(),
            leeway_secs: 30,
            require_exp: true,
            username_claim: None,
            clientid_claim: None,
            permissions_claim: "acl".into(),
            roles_claim: Some("roles".into()),
        }
    }
}

/// Configuration and key-loading errors of the JWT authenticator.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `algorithms` is empty.
    #[error("jwt algorithms is empty: pin at least one algorithm")]
    NoAlgorithms,
    /// An algorithm name is not a supported JOSE signature algorithm.
    #[error(
        "unsupported jwt algorithm {0:?} (supported: HS256 HS384 HS512 RS256 RS384 RS512 PS256 PS384 PS512 ES256 ES384 EdDSA)"
    )]
    UnsupportedAlgorithm(String),
    /// The pinned algorithms belong to more than one key family.
    #[error("jwt algorithms [{0}] mix key families: pin algorithms of one family")]
    MixedAlgorithmFamilies(String),
    /// None of `secret`, `public_key_file`, `jwks_file` is set.
    #[error("jwt needs a key: set one of secret, public_key_file, jwks_file")]
    NoKey,
    /// More than one of `secret`, `public_key_file`, `jwks_file` is set.
    #[error("jwt takes exactly one of secret, public_key_file, jwks_file, but several are set")]
    SeveralKeys,
    /// The HMAC secret is empty or not valid base64.
    #[error("bad jwt secret: {0}")]
    BadSecret(&'static str),
    /// A key file could not be read.
    #[error("cannot read jwt key file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A PEM file holds no usable public key.
    #[error("bad jwt public key file {}: {reason}", path.display())]
    BadPem {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A JWKS file is malformed or holds no usable key.
    #[error("bad jwt jwks file {}: {reason}", path.display())]
    BadJwks {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The key does not fit the pinned algorithms (family or curve).
    #[error("jwt key {source_name} does not fit the pinned algorithms: {reason}")]
    KeyMismatch {
        /// The file path, or `secret`.
        source_name: String,
        /// Why.
        reason: String,
    },
}

/// The outcome of [`JwtAuth::verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwtVerdict {
    /// The password is not shaped like a JWS compact token: pass it to the next authenticator.
    NotAToken,
    /// The token is valid.
    Valid(JwtGrant),
    /// The token is shaped like a JWT but rejected; the reason is safe to log (never the token).
    Invalid(String),
}

/// What a valid token grants.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JwtGrant {
    /// When the token stops being accepted: `exp` plus the leeway; `None` without `exp`.
    pub expires_at: Option<SystemTime>,
    /// Top-level string claims (numbers and booleans rendered), for ACL placeholders.
    pub claims: BTreeMap<String, String>,
    /// Roles from the roles claim.
    pub roles: Vec<String>,
    /// Topic permissions from the permissions claim; `None` when absent.
    pub permissions: Option<TokenPermissions>,
}

/// The JWT authenticator. Cheap to share (`Send + Sync`); keys can be reloaded in place.
pub struct JwtAuth {
    cfg: JwtConfig,
    source: KeySource,
    algorithms: Vec<Algorithm>,
    family: AlgorithmFamily,
    validation: Validation,
    keys: RwLock<Arc<KeySet>>,
    /// The key file (`None` with a secret), and the version of it last read.
    watch: Option<FileWatch>,
}

impl std::fmt::Debug for JwtAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Deliberately not the config: it may hold the HMAC secret.
        f.debug_struct("JwtAuth")
            .field("algorithms", &self.algorithms)
            .finish_non_exhaustive()
    }
}

impl JwtAuth {
    /// Validates the configuration and loads the key(s).
    pub fn new(cfg: &JwtConfig) -> Result<JwtAuth, Error> {
        let (algorithms, family) = keys::parse_algorithms(&cfg.algorithms)?;
        let source = keys::key_source(cfg)?;
        let watch = match &source {
            KeySource::Secret(_) => None,
            KeySource::Pem(path) | KeySource::Jwks(path) => Some(FileWatch::new(path)),
        };
        let load = || keys::load(&source, &algorithms, family);
        let keys = match &watch {
            Some(watch) => watch.read(|_| load())?,
            None => load()?,
        };
        Ok(JwtAuth {
            validation: validation(cfg, &algorithms),
            cfg: cfg.clone(),
            source,
            algorithms,
            family,
            keys: RwLock::new(Arc::new(keys)),
            watch,
        })
    }

    /// Re-reads the key file (on SIGHUP, or when it changed). On error the old keys
    /// stay in force.
    pub fn reload(&self) -> Result<(), Error> {
        let Some(watch) = &self.watch else {
            return Ok(());
        };
        watch.read(|_| {
            let keys = keys::load(&self.source, &self.algorithms, self.family)?;
            *self.keys.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(keys);
            tracing::info!(path = %watch.path().display(), "jwt keys reloaded");
            Ok(())
        })
    }

    /// Reloads the key file when it changed on disk and the change has held since the
    /// previous call ([`FileWatch::changed`]); `Ok(false)` otherwise, and always with a
    /// secret. Called every few seconds by the server's file watcher, so rotated keys
    /// (a new JWKS) are taken without a SIGHUP. A file that failed to load is not
    /// retried until it changes again.
    pub fn reload_if_changed(&self) -> Result<bool, Error> {
        let Some(watch) = &self.watch else {
            return Ok(false);
        };
        let changed = watch.changed().map_err(|source| Error::Read {
            path: watch.path().to_path_buf(),
            source,
        })?;
        if changed {
            self.reload().map(|()| true)
        } else {
            Ok(false)
        }
    }

    /// Whether the keys come from a file (which the server then watches).
    pub fn has_key_file(&self) -> bool {
        self.watch.is_some()
    }

    /// Verifies `token` (the MQTT password) now. See [`JwtAuth::verify_at`].
    pub fn verify(&self, token: &[u8], username: Option<&str>, client_id: &str) -> JwtVerdict {
        self.verify_at(token, username, client_id, SystemTime::now())
    }

    /// Verifies `token` with `now` as the current time. [`JwtVerdict::NotAToken`] when it is
    /// not shaped like a JWS compact token (three base64url segments, a JSON object header).
    pub fn verify_at(
        &self,
        token: &[u8],
        username: Option<&str>,
        client_id: &str,
        now: SystemTime,
    ) -> JwtVerdict {
        let Some((token, header)) = token_shape(token) else {
            return JwtVerdict::NotAToken;
        };
        match self.check(token, &header, username, client_id, now) {
            Ok(grant) => JwtVerdict::Valid(grant),
            Err(reason) => JwtVerdict::Invalid(reason),
        }
    }

    fn check(
        &self,
        token: &str,
        header: &Map<String, Value>,
        username: Option<&str>,
        client_id: &str,
        now: SystemTime,
    ) -> Result<JwtGrant, String> {
        let alg = self.pinned_alg(header)?;
        if header.contains_key("crit") {
            return Err("token has critical header parameters, none are supported".into());
        }
        let kid = match header.get("kid") {
            None => None,
            Some(Value::String(kid)) => Some(kid.as_str()),
            Some(_) => return Err("header kid is not a string".into()),
        };
        let key_set = Arc::clone(&self.keys.read().unwrap_or_else(PoisonError::into_inner));
        let key = key_set.select(kid)?;
        if !key.algorithms.contains(&alg) {
            return Err(format!("the selected key does not accept {alg:?}"));
        }
        let data = jsonwebtoken::decode::<claims::Claims>(token, &key.key, &self.validation)
            .map_err(|e| decode_reason(e.kind()))?;
        self.grant(&data.claims, username, client_id, now)
    }

    /// The header's `alg`, only if it is one of the pinned algorithms.
    fn pinned_alg(&self, header: &Map<String, Value>) -> Result<Algorithm, String> {
        let Some(name) = header.get("alg").and_then(Value::as_str) else {
            return Err("header has no alg".into());
        };
        match name.parse::<Algorithm>() {
            Ok(alg) if self.algorithms.contains(&alg) => Ok(alg),
            Ok(alg) => Err(format!("algorithm {alg:?} is not allowed")),
            Err(_) if name.eq_ignore_ascii_case("none") => {
                Err("unsigned token (alg none) is not allowed".into())
            }
            Err(_) => Err("unsupported algorithm".into()),
        }
    }

    fn grant(
        &self,
        claims: &claims::Claims,
        username: Option<&str>,
        client_id: &str,
        now: SystemTime,
    ) -> Result<JwtGrant, String> {
        let cfg = &self.cfg;
        let expires_at = claims::check_times(claims, now, cfg.leeway_secs, cfg.require_exp)?;
        let scalars = claims::scalar_claims(claims);
        if let Some(claim) = &cfg.username_claim {
            claims::check_binding(&scalars, claim, username, "username")?;
        }
        if let Some(claim) = &cfg.clientid_claim {
            claims::check_binding(&scalars, claim, Some(client_id), "client id")?;
        }
        let roles = match &cfg.roles_claim {
            Some(claim) => claims::roles(claims, claim)?,
            None => Vec::new(),
        };
        let permissions = claims::permissions(claims, &cfg.permissions_claim)?;
        Ok(JwtGrant {
            expires_at,
            claims: scalars,
            roles,
            permissions,
        })
    }
}

/// The `jsonwebtoken` validation: pinned algorithms, required claims, `iss`, `aud`. `exp` and
/// `nbf` are checked by `claims::check_times` against the injectable clock instead, because
/// `jsonwebtoken` reads the system clock.
fn validation(cfg: &JwtConfig, algorithms: &[Algorithm]) -> Validation {
    let mut v = Validation::new(algorithms.first().copied().unwrap_or_default());
    v.algorithms = algorithms.to_vec();
    let mut required = Vec::new();
    if cfg.require_exp {
        required.push("exp");
    }
    if cfg.issuer.is_some() {
        required.push("iss");
    }
    if !cfg.audience.is_empty() {
        required.push("aud");
    }
    v.set_required_spec_claims(&required);
    v.leeway = cfg.leeway_secs;
    v.validate_exp = false;
    v.validate_nbf = false;
    if let Some(issuer) = &cfg.issuer {
        v.set_issuer(&[issuer]);
    }
    if cfg.audience.is_empty() {
        v.validate_aud = false;
    } else {
        v.set_audience(&cfg.audience);
    }
    v
}

/// Splits a JWS compact token: three base64url segments (the signature may be empty, as in
/// `alg: none` tokens, which are then rejected as Invalid) and a header that decodes to a JSON
/// object. `None` for anything else, ordinary passwords and non-UTF-8 bytes included.
fn token_shape(token: &[u8]) -> Option<(&str, Map<String, Value>)> {
    let token = std::str::from_utf8(token).ok()?;
    let is_b64url = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    let mut parts = token.split('.');
    let (header, payload, signature) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some()
        || header.is_empty()
        || payload.is_empty()
        || ![header, payload, signature].into_iter().all(is_b64url)
    {
        return None;
    }
    let decoded = URL_SAFE_NO_PAD.decode(header).ok()?;
    match serde_json::from_slice(&decoded).ok()? {
        Value::Object(map) => Some((token, map)),
        _ => None,
    }
}

/// A log-safe reason for a `jsonwebtoken` error (fixed strings: no token or claim content).
fn decode_reason(kind: &ErrorKind) -> String {
    match kind {
        ErrorKind::InvalidSignature => "invalid signature".into(),
        ErrorKind::InvalidAlgorithm | ErrorKind::MissingAlgorithm => "algorithm not allowed".into(),
        ErrorKind::InvalidIssuer => "issuer not accepted".into(),
        ErrorKind::InvalidAudience => "audience not accepted".into(),
        ErrorKind::MissingRequiredClaim(claim) => format!("missing required claim {claim}"),
        ErrorKind::InvalidClaimFormat(claim) => format!("claim {claim} has an invalid format"),
        ErrorKind::Base64(_)
        | ErrorKind::Json(_)
        | ErrorKind::Utf8(_)
        | ErrorKind::InvalidToken => "malformed token".into(),
        _ => "token rejected".into(),
    }
}
