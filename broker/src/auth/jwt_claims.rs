//! Claim checks of the JWT authenticator that run after the signature is verified: `exp`/`nbf`
//! against an injected clock, the username/client id bindings, and extraction of the claims map,
//! roles and topic permissions. Pure functions over a decoded JSON object; knows nothing about
//! keys, files or sockets. Every error is a fixed, log-safe reason (never a claim value).

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};

use super::super::identity::TokenPermissions;

/// A decoded JWT payload.
pub(super) type Claims = Map<String, Value>;

/// Seconds since the Unix epoch (0 for clocks before it).
pub(super) fn unix_secs(now: SystemTime) -> u64 {
    now.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A JWT NumericDate (RFC 7519 section 2): a non-negative number of seconds, fractions rounded down.
fn numeric_date(claims: &Claims, name: &'static str) -> Result<Option<u64>, String> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => match (n.as_u64(), n.as_f64()) {
            (Some(secs), _) => Ok(Some(secs)),
            (None, Some(f)) if f.is_finite() && f >= 0.0 && f < u64::MAX as f64 => {
                Ok(Some(f as u64))
            }
            _ => Err(format!("claim {name} is not a valid date")),
        },
        Some(_) => Err(format!("claim {name} is not a number")),
    }
}

/// Checks `exp` and `nbf` (RFC 7519 sections 4.1.4 and 4.1.5) at `now` with `leeway_secs` of
/// tolerance either way; returns when the credentials stop being valid: `exp + leeway`.
///
/// A token is expired once `now >= exp + leeway` and not yet valid while `now + leeway < nbf`.
pub(super) fn check_times(
    claims: &Claims,
    now: SystemTime,
    leeway_secs: u64,
    require_exp: bool,
) -> Result<Option<SystemTime>, String> {
    let now = unix_secs(now);
    let exp = numeric_date(claims, "exp")?;
    let nbf = numeric_date(claims, "nbf")?;
    if let Some(exp) = exp
        && now >= exp.saturating_add(leeway_secs)
    {
        return Err("token expired".into());
    }
    if exp.is_none() && require_exp {
        return Err("missing required claim exp".into());
    }
    if let Some(nbf) = nbf
        && now.saturating_add(leeway_secs) < nbf
    {
        return Err("token not yet valid (nbf)".into());
    }
    Ok(
        exp.and_then(|e| {
            UNIX_EPOCH.checked_add(Duration::from_secs(e.saturating_add(leeway_secs)))
        }),
    )
}

/// Top-level scalar claims as strings (for ACL `${claim.NAME}` placeholders): strings as they
/// are, numbers and booleans rendered; objects, arrays and null are left out.
pub(super) fn scalar_claims(claims: &Claims) -> BTreeMap<String, String> {
    claims
        .iter()
        .filter_map(|(name, value)| {
            let text = match value {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                Value::Null | Value::Array(_) | Value::Object(_) => return None,
            };
            Some((name.clone(), text))
        })
        .collect()
}

/// The claim `claim` (rendered as in [`scalar_claims`]) must equal `expected`.
pub(super) fn check_binding(
    scalars: &BTreeMap<String, String>,
    claim: &str,
    expected: Option<&str>,
    what: &str,
) -> Result<(), String> {
    let Some(expected) = expected else {
        return Err(format!(
            "claim {claim} must match the {what}, but none was given"
        ));
    };
    match scalars.get(claim) {
        None => Err(format!(
            "missing claim {claim} required to match the {what}"
        )),
        Some(value) if value == expected => Ok(()),
        Some(_) => Err(format!("claim {claim} does not match the {what}")),
    }
}

/// Roles: a string or an array of strings; absent or null means none.
pub(super) fn roles(claims: &Claims, claim: &str) -> Result<Vec<String>, String> {
    match claims.get(claim) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(role)) => Ok(vec![role.clone()]),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| match v {
                Value::String(role) => Ok(role.clone()),
                _ => Err(format!("claim {claim} must hold only strings")),
            })
            .collect(),
        Some(_) => Err(format!(
            "claim {claim} must be a string or an array of strings"
        )),
    }
}

/// Permissions: an object `{"pub": [filters], "sub": [filters]}` (`publish`/`subscribe` are
/// accepted too and merged); absent or null means `None`. Any other shape, unknown key or
/// invalid topic filter makes the token invalid.
pub(super) fn permissions(
    claims: &Claims,
    claim: &str,
) -> Result<Option<TokenPermissions>, String> {
    let object = match claims.get(claim) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Object(object)) => object,
        Some(_) => return Err(format!("claim {claim} must be an object")),
    };
    let mut granted = TokenPermissions::default();
    for (key, value) in object {
        let list = match key.as_str() {
            "pub" | "publish" => &mut granted.publish,
            "sub" | "subscribe" => &mut granted.subscribe,
            _ => {
                return Err(format!(
                    "claim {claim} has an unknown key (expected pub/sub)"
                ));
            }
        };
        let Value::Array(filters) = value else {
            return Err(format!(
                "claim {claim}.{key} must be an array of topic filters"
            ));
        };
        for filter in filters {
            match filter {
                Value::String(f) if is_valid_topic_filter(f) => list.push(f.clone()),
                _ => return Err(format!("claim {claim}.{key} holds an invalid topic filter")),
            }
        }
    }
    Ok(Some(granted))
}

/// MQTT topic filter syntax, as the broker checks it (`crate::topic`).
pub(super) fn is_valid_topic_filter(filter: &str) -> bool {
    crate::topic::TopicFilter::new(filter.to_owned()).is_ok()
}
