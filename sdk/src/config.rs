//! The plugin's own config table, `[plugins.config]` in the broker config, handed to `init` as
//! JSON text and read here through typed accessors or serde.
//!
//! This module knows JSON and serde only; it does not know where the table came from.

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

/// Why a config value could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The host handed over text that is not JSON.
    #[error("config is not valid json: {0}")]
    Json(#[source] serde_json::Error),
    /// The config is JSON but not a table (object).
    #[error("config must be a table, found {found}")]
    NotATable {
        /// The JSON type found instead.
        found: &'static str,
    },
    /// A key holds a value of the wrong type.
    #[error("config key `{key}` must be {expected}, found {found}")]
    WrongType {
        /// The key.
        key: String,
        /// What the accessor wanted.
        expected: &'static str,
        /// The JSON type found.
        found: &'static str,
    },
    /// A required key is missing.
    #[error("config key `{key}` is required")]
    Missing {
        /// The key.
        key: String,
    },
    /// The table does not deserialize into the plugin's config type.
    #[error("invalid config: {0}")]
    Deserialize(#[source] serde_json::Error),
}

/// Lets `init` use `?` on config accessors, since it returns `Result<(), String>`.
impl From<ConfigError> for String {
    fn from(e: ConfigError) -> String {
        e.to_string()
    }
}

/// The plugin's config table.
///
/// Every `get_*` accessor returns `Ok(None)` for a missing key and an error for a value of the
/// wrong type, so a typo in a type is reported rather than silently defaulted:
///
/// ```
/// use cauldron_sdk::Config;
///
/// let config = Config::from_json(r#"{"window_ms": 1000, "users": ["a", "b"], "strict": true}"#)?;
/// assert_eq!(config.get_u64("window_ms")?, Some(1000));
/// assert_eq!(config.get_u64("missing")?.unwrap_or(10), 10);
/// assert_eq!(config.get_list_of_str("users")?, Some(vec!["a", "b"]));
/// assert_eq!(config.get_bool("strict")?, Some(true));
/// assert!(config.get_str("window_ms").is_err());
/// # Ok::<(), cauldron_sdk::ConfigError>(())
/// ```
///
/// For anything nested, derive `Deserialize` (through the SDK's re-exported serde):
///
/// ```
/// use cauldron_sdk::Config;
/// use cauldron_sdk::serde::Deserialize;
///
/// #[derive(Deserialize)]
/// #[serde(crate = "cauldron_sdk::serde")]
/// struct Settings {
///     limit: u32,
///     #[serde(default)]
///     exempt: Vec<String>,
/// }
///
/// let settings: Settings = Config::from_json(r#"{"limit": 5}"#)?.deserialize()?;
/// assert_eq!(settings.limit, 5);
/// assert!(settings.exempt.is_empty());
/// # Ok::<(), cauldron_sdk::ConfigError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Config {
    table: Map<String, Value>,
}

impl Config {
    /// An empty table.
    pub fn empty() -> Config {
        Config::default()
    }

    /// Parses the JSON text the host hands to `init`. Empty text and `null` are an empty table.
    ///
    /// # Errors
    /// [`ConfigError::Json`] for text that is not JSON, [`ConfigError::NotATable`] for JSON
    /// that is not an object.
    pub fn from_json(text: &str) -> Result<Config, ConfigError> {
        if text.trim().is_empty() {
            return Ok(Config::empty());
        }
        match serde_json::from_str(text).map_err(ConfigError::Json)? {
            Value::Object(table) => Ok(Config { table }),
            Value::Null => Ok(Config::empty()),
            other => Err(ConfigError::NotATable {
                found: type_name(&other),
            }),
        }
    }

    /// True when the table has no keys.
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// True when `key` is present.
    pub fn contains(&self, key: &str) -> bool {
        self.table.contains_key(key)
    }

    /// The keys of the table, in sorted order.
    pub fn keys(&self) -> Vec<&str> {
        let mut keys: Vec<&str> = self.table.keys().map(String::as_str).collect();
        keys.sort_unstable();
        keys
    }

    /// A string value.
    ///
    /// # Errors
    /// [`ConfigError::WrongType`] when the value is not a string.
    pub fn get_str(&self, key: &str) -> Result<Option<&str>, ConfigError> {
        self.typed(key, "a string", Value::as_str)
    }

    /// A boolean value.
    ///
    /// # Errors
    /// [`ConfigError::WrongType`] when the value is not a boolean.
    pub fn get_bool(&self, key: &str) -> Result<Option<bool>, ConfigError> {
        self.typed(key, "a boolean", Value::as_bool)
    }

    /// A non-negative integer value.
    ///
    /// # Errors
    /// [`ConfigError::WrongType`] when the value is not an integer in `0..=u64::MAX`.
    pub fn get_u64(&self, key: &str) -> Result<Option<u64>, ConfigError> {
        self.typed(key, "a non-negative integer", Value::as_u64)
    }

    /// An integer value.
    ///
    /// # Errors
    /// [`ConfigError::WrongType`] when the value is not an integer in the `i64` range.
    pub fn get_i64(&self, key: &str) -> Result<Option<i64>, ConfigError> {
        self.typed(key, "an integer", Value::as_i64)
    }

    /// A number (integers included).
    ///
    /// # Errors
    /// [`ConfigError::WrongType`] when the value is not a number.
    pub fn get_f64(&self, key: &str) -> Result<Option<f64>, ConfigError> {
        self.typed(key, "a number", Value::as_f64)
    }

    /// A list of strings.
    ///
    /// # Errors
    /// [`ConfigError::WrongType`] when the value is not a list or holds a non-string.
    pub fn get_list_of_str(&self, key: &str) -> Result<Option<Vec<&str>>, ConfigError> {
        self.typed(key, "a list of strings", |v| {
            v.as_array()?.iter().map(Value::as_str).collect()
        })
    }

    /// A nested table of strings (`key = "value"` pairs), in sorted key order.
    ///
    /// # Errors
    /// [`ConfigError::WrongType`] when the value is not a table or holds a non-string.
    pub fn get_table_of_str(&self, key: &str) -> Result<Option<Vec<(&str, &str)>>, ConfigError> {
        let mut pairs = self.typed(key, "a table of strings", |v| {
            v.as_object()?
                .iter()
                .map(|(k, v)| Some((k.as_str(), v.as_str()?)))
                .collect::<Option<Vec<_>>>()
        })?;
        if let Some(pairs) = pairs.as_mut() {
            pairs.sort_unstable();
        }
        Ok(pairs)
    }

    /// A string value that must be present.
    ///
    /// # Errors
    /// [`ConfigError::Missing`] or [`ConfigError::WrongType`].
    pub fn require_str(&self, key: &str) -> Result<&str, ConfigError> {
        self.get_str(key)?.ok_or_else(|| ConfigError::Missing {
            key: key.to_owned(),
        })
    }

    /// The whole table as a `T`, for configs with nesting or many keys.
    ///
    /// # Errors
    /// [`ConfigError::Deserialize`] with serde's message (which names the offending field).
    pub fn deserialize<T: DeserializeOwned>(&self) -> Result<T, ConfigError> {
        T::deserialize(&Value::Object(self.table.clone())).map_err(ConfigError::Deserialize)
    }

    fn typed<'a, T>(
        &'a self,
        key: &str,
        expected: &'static str,
        read: impl FnOnce(&'a Value) -> Option<T>,
    ) -> Result<Option<T>, ConfigError> {
        let Some(value) = self.table.get(key) else {
            return Ok(None);
        };
        read(value).map(Some).ok_or_else(|| ConfigError::WrongType {
            key: key.to_owned(),
            expected,
            found: type_name(value),
        })
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a table",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_text_and_null_are_empty_tables() {
        assert!(Config::from_json("").unwrap().is_empty());
        assert!(Config::from_json("  null ").unwrap().is_empty());
        assert!(Config::from_json("{}").unwrap().is_empty());
    }

    #[test]
    fn rejects_non_table_config() {
        let e = Config::from_json("[1, 2]").unwrap_err();
        assert_eq!(e.to_string(), "config must be a table, found a list");
        assert!(matches!(
            Config::from_json("{nope").unwrap_err(),
            ConfigError::Json(_)
        ));
    }

    #[test]
    fn wrong_type_names_key_and_types() {
        let c = Config::from_json(r#"{"limit": "ten", "neg": -1, "l": ["a", 1]}"#).unwrap();
        assert_eq!(
            c.get_u64("limit").unwrap_err().to_string(),
            "config key `limit` must be a non-negative integer, found a string"
        );
        assert!(c.get_u64("neg").is_err());
        assert_eq!(c.get_i64("neg").unwrap(), Some(-1));
        assert!(c.get_list_of_str("l").is_err());
    }

    #[test]
    fn missing_keys_are_none_and_required_keys_error() {
        let c = Config::empty();
        assert_eq!(c.get_bool("x").unwrap(), None);
        assert_eq!(
            c.require_str("x").unwrap_err().to_string(),
            "config key `x` is required"
        );
    }

    #[test]
    fn table_of_str_is_sorted_by_key() {
        let c = Config::from_json(r#"{"map": {"b/": "y/", "a/": "x/"}}"#).unwrap();
        assert_eq!(
            c.get_table_of_str("map").unwrap(),
            Some(vec![("a/", "x/"), ("b/", "y/")])
        );
        assert!(c.contains("map"));
        assert_eq!(c.keys(), vec!["map"]);
    }

    #[test]
    fn config_error_converts_to_init_error_string() {
        fn init(c: &Config) -> Result<(), String> {
            c.require_str("name")?;
            Ok(())
        }
        assert_eq!(
            init(&Config::empty()).unwrap_err(),
            "config key `name` is required"
        );
    }

    #[test]
    fn get_f64_accepts_integers() {
        let c = Config::from_json(r#"{"a": 2, "b": 2.5}"#).unwrap();
        assert_eq!(c.get_f64("a").unwrap(), Some(2.0));
        assert_eq!(c.get_f64("b").unwrap(), Some(2.5));
    }
}
