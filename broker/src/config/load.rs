//! The figment layers and the extract-then-validate entry points.

use std::path::Path;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider};

use super::Config;
use super::error::{DEFAULT_SOURCE, ENV_SOURCE, Error, source_name};

/// Prefix of the environment variables that override the file; `__` separates key levels
/// (`CAULDRON_LIMITS__MAX_PACKET_BYTES=2048`).
pub const ENV_PREFIX: &str = "CAULDRON_";

/// Loads the configuration: built-in defaults, then the TOML file at `path` (if given),
/// then `CAULDRON_*` environment variables; then validates it.
///
/// A `path` that does not exist is [`Error::MissingFile`]. Never panics.
pub fn load(path: Option<&Path>) -> Result<Config, Error> {
    if let Some(path) = path {
        // figment's `Toml::file` silently skips a missing file; an explicit path must exist.
        // Other metadata errors (permissions) are left to figment, which names the file.
        if matches!(path.try_exists(), Ok(false)) {
            return Err(Error::MissingFile {
                path: path.to_owned(),
            });
        }
    }
    let figment = figment(path);
    let mut config = from_figment(figment.clone())?;
    // The default data directory sits next to the config file, like every other
    // relative path in it (and in the working directory without a file).
    if let Some(path) = path
        && source_of(&figment, "storage.dir") == DEFAULT_SOURCE
        && config.storage.dir.original().is_relative()
    {
        let base = path.parent().unwrap_or(Path::new("."));
        config.storage.dir =
            figment::value::magic::RelativePathBuf::from(base.join(config.storage.dir.original()));
    }
    Ok(config)
}

/// The layered provider used by [`load`]: `Serialized::defaults(Config::default())`, then
/// `Toml::file_exact(path)` (no search of parent directories; a missing file is an
/// extraction error), then `Env::prefixed("CAULDRON_").split("__")`.
pub fn figment(path: Option<&Path>) -> Figment {
    let mut figment = Figment::from(Serialized::defaults(Config::default()));
    if let Some(path) = path {
        figment = figment.merge(Toml::file_exact(path));
    }
    figment.merge(EnvLayer::new())
}

/// Extracts a [`Config`] from `figment` and validates it. Validation errors name the
/// source of the offending value as figment recorded it.
pub fn from_figment(figment: Figment) -> Result<Config, Error> {
    let config: Config = figment.extract()?;
    config.check().map_err(|violation| Error::Invalid {
        source_name: source_of(&figment, &violation.key),
        key: violation.key,
        message: violation.message,
    })?;
    Ok(config)
}

/// Finds which provider set `key` (dotted, array indices allowed, e.g. `listeners.1.name`).
/// figment's `find_metadata` cannot step into arrays, so walk the value by hand and use
/// the tag of the deepest value found. A key no provider set came from serde `default`.
fn source_of(figment: &Figment, key: &str) -> String {
    let parts: Vec<&str> = key.split('.').collect();
    let Some(first) = parts.first() else {
        return DEFAULT_SOURCE.to_owned();
    };
    let Ok(root) = figment.find_value(first) else {
        return DEFAULT_SOURCE.to_owned();
    };
    let mut value = &root;
    let mut depth = 1;
    for part in &parts[1..] {
        let next = match value {
            Value::Dict(_, dict) => dict.get(*part),
            Value::Array(_, items) => part.parse::<usize>().ok().and_then(|i| items.get(i)),
            _ => None,
        };
        match next {
            Some(v) => {
                value = v;
                depth += 1;
            }
            None => break,
        }
    }
    match figment.get_metadata(value.tag()) {
        Some(md) => source_name(md, &parts[..depth]),
        None => DEFAULT_SOURCE.to_owned(),
    }
}

/// `Env::prefixed("CAULDRON_").split("__")` with metadata that names the actual variable.
///
/// figment's own env metadata renders `limits.max_packet_bytes` as `LIMITS.MAX_PACKET_BYTES`
/// in "`CAULDRON_` environment variable(s)", which is not a variable a user can grep for.
/// This layer remembers which keys the environment set, so a path inside a structured value
/// (`listeners.0.bind` from `CAULDRON_LISTENERS=[...]`) maps back to the variable that holds it.
struct EnvLayer {
    env: Env,
    keys: Vec<String>,
}

impl EnvLayer {
    fn new() -> Self {
        let env = Env::prefixed(ENV_PREFIX).split("__");
        let keys = env.iter().map(|(k, _)| k.as_str().to_owned()).collect();
        Self { env, keys }
    }
}

impl Provider for EnvLayer {
    fn metadata(&self) -> Metadata {
        let keys = self.keys.clone();
        Metadata::named(ENV_SOURCE)
            .interpolater(move |_: &Profile, path: &[&str]| env_var_name(&keys, path))
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        self.env.data()
    }
}

/// The variable that set `path`: the longest prefix of `path` that the environment set
/// (`listeners.0.bind` → `CAULDRON_LISTENERS`), else the first variable nested under
/// `path` (`listeners` → `CAULDRON_LISTENERS__0__BIND`), else `path` itself.
fn env_var_name(keys: &[String], path: &[&str]) -> String {
    let joined = path.join(".");
    let set_by_env = (1..=path.len())
        .rev()
        .map(|n| path[..n].join("."))
        .find(|prefix| keys.iter().any(|k| k == prefix))
        .or_else(|| {
            let nested = format!("{joined}.");
            keys.iter().find(|k| k.starts_with(&nested)).cloned()
        });
    let key = set_by_env.unwrap_or(joined);
    format!(
        "{ENV_PREFIX}{}",
        key.replace('.', "__").to_ascii_uppercase()
    )
}
