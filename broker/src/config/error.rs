//! `config::Error` and the rendering of figment errors into messages that always name
//! the key and where its value came from (file path, environment variable or default).

use std::path::PathBuf;

use figment::error::Kind;
use figment::{Metadata, Source};

/// Name given to the metadata of the environment layer; see `load::EnvLayer`.
pub(super) const ENV_SOURCE: &str = "environment variable";
/// Where a value came from when no provider set it (serde `default`).
pub(super) const DEFAULT_SOURCE: &str = "built-in default";

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A value could not be parsed or deserialized (syntax error, unknown key, wrong type).
    /// Display names the key and its source; the figment error is kept for inspection.
    #[error("{}", describe(.0))]
    Extract(Box<figment::Error>),
    /// A value parsed but is out of range or conflicts with another one.
    #[error("invalid value for key `{key}` in {source_name}: {message}")]
    Invalid {
        /// Dotted key, e.g. `limits.max_packet_bytes` or `listeners.1.name`.
        key: String,
        /// Where the value came from: the file path, `environment variable CAULDRON_…`
        /// or `built-in default`.
        source_name: String,
        /// What is wrong with the value.
        message: String,
    },
    /// The configuration file given explicitly does not exist.
    #[error("config file `{}` does not exist", path.display())]
    MissingFile {
        /// The path as given.
        path: PathBuf,
    },
}

impl From<figment::Error> for Error {
    fn from(e: figment::Error) -> Self {
        Error::Extract(Box::new(e))
    }
}

/// Renders every error in figment's chain as one line each, joined by `; `.
fn describe(err: &figment::Error) -> String {
    let lines: Vec<String> = err.clone().into_iter().map(|e| describe_one(&e)).collect();
    lines.join("; ")
}

fn describe_one(e: &figment::Error) -> String {
    let key = e.path.join(".");
    let source = match &e.metadata {
        Some(md) => source_name(md, &e.path),
        None => "configuration".to_owned(),
    };
    match (&e.kind, key.is_empty()) {
        (Kind::UnknownField(_, expected), false) => format!(
            "unknown key `{key}` in {source}, expected one of: {}",
            expected.join(", ")
        ),
        (kind, false) => format!("{kind} for key `{key}` in {source}"),
        (kind, true) => format!("{kind} in {source}"),
    }
}

/// Human name of the provider that set `path`: the file path as given, the environment
/// variable (computed by the env layer's interpolater) or `built-in default`.
pub(super) fn source_name<S: AsRef<str>>(md: &Metadata, path: &[S]) -> String {
    if md.name == ENV_SOURCE {
        let var = md.interpolate(&figment::Profile::Default, path);
        return format!("{ENV_SOURCE} {var}");
    }
    if md.name == std::any::type_name::<super::Config>() {
        return DEFAULT_SOURCE.to_owned();
    }
    match &md.source {
        Some(Source::File(p)) => p.display().to_string(),
        Some(other) => format!("{} {other}", md.name),
        None => md.name.to_string(),
    }
}
