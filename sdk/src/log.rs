//! Structured logging into the broker's log (target `plugin::<name>`), through `host.log`.
//!
//! The macros take a format string and its arguments, then optionally `;` and `key = value`
//! fields (any `Display` value). Under `cargo test` the lines go to the fake host, where
//! [`crate::testing::logs`] returns them. Never log passwords, tokens or payloads.
//!
//! ```
//! use cauldron_sdk::log::{info, warn};
//!
//! let client_id = "sensor-1";
//! info!("client {client_id} connected");
//! warn!("rate limited"; client = client_id, count = 11);
//! # let logs = cauldron_sdk::testing::logs();
//! # assert_eq!(logs[1].fields, vec![("client".to_owned(), "sensor-1".to_owned()), ("count".to_owned(), "11".to_owned())]);
//! ```

use std::fmt::Display;

/// Log levels, lowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// Trace: very detailed.
    Trace,
    /// Debug: per message.
    Debug,
    /// Info: lifecycle.
    Info,
    /// Warn: something is off with a client or the plugin's input.
    Warn,
    /// Error: the plugin itself is broken.
    Error,
}

/// Writes one log line with `fields`; the macros call this.
///
/// ```
/// use cauldron_sdk::log::{Level, log};
///
/// log(Level::Info, "dropped", &[("topic", &"a/b"), ("qos", &1)]);
/// ```
pub fn log(level: Level, message: &str, fields: &[(&str, &dyn Display)]) {
    let fields = fields
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.to_string()))
        .collect();
    crate::backend::log(level, message, fields);
}

#[doc(hidden)]
#[macro_export]
macro_rules! __cauldron_log {
    ($level:expr, $fmt:literal $(, $arg:expr)* ; $($key:ident = $value:expr),+ $(,)?) => {
        $crate::log::log(
            $level,
            &::std::format!($fmt $(, $arg)*),
            &[$((::core::stringify!($key), &$value as &dyn ::core::fmt::Display)),+],
        )
    };
    ($level:expr, $($arg:tt)+) => {
        $crate::log::log($level, &::std::format!($($arg)+), &[])
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __cauldron_trace {
    ($($arg:tt)+) => { $crate::__cauldron_log!($crate::log::Level::Trace, $($arg)+) };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __cauldron_debug {
    ($($arg:tt)+) => { $crate::__cauldron_log!($crate::log::Level::Debug, $($arg)+) };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __cauldron_info {
    ($($arg:tt)+) => { $crate::__cauldron_log!($crate::log::Level::Info, $($arg)+) };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __cauldron_warn {
    ($($arg:tt)+) => { $crate::__cauldron_log!($crate::log::Level::Warn, $($arg)+) };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __cauldron_error {
    ($($arg:tt)+) => { $crate::__cauldron_log!($crate::log::Level::Error, $($arg)+) };
}

/// Logs at debug level: `debug!("fmt", args; key = value, ..)`.
pub use crate::__cauldron_debug as debug;
/// Logs at error level: `error!("fmt", args; key = value, ..)`.
pub use crate::__cauldron_error as error;
/// Logs at info level: `info!("fmt", args; key = value, ..)`.
pub use crate::__cauldron_info as info;
/// Logs at trace level: `trace!("fmt", args; key = value, ..)`.
pub use crate::__cauldron_trace as trace;
/// Logs at warn level: `warn!("fmt", args; key = value, ..)`.
pub use crate::__cauldron_warn as warn;

#[cfg(test)]
mod tests {
    use super::Level;
    use crate::testing;

    #[test]
    fn macros_format_message_and_fields() {
        let topic = "a/b";
        crate::log::info!("dropped {}", topic);
        crate::log::warn!("limited {topic}"; client = "c1", count = 3,);
        crate::log::error!("plain");
        let logs = testing::logs();
        assert_eq!(logs.len(), 3);
        assert_eq!(logs[0].level, Level::Info);
        assert_eq!(logs[0].message, "dropped a/b");
        assert!(logs[0].fields.is_empty());
        assert_eq!(logs[1].level, Level::Warn);
        assert_eq!(logs[1].message, "limited a/b");
        assert_eq!(
            logs[1].fields,
            vec![
                ("client".to_owned(), "c1".to_owned()),
                ("count".to_owned(), "3".to_owned())
            ]
        );
        assert_eq!(logs[2].level, Level::Error);
    }

    #[test]
    fn every_level_macro_logs_at_its_level() {
        crate::log::trace!("t");
        crate::log::debug!("d"; k = 1);
        let levels: Vec<Level> = testing::logs().iter().map(|r| r.level).collect();
        assert_eq!(levels, vec![Level::Trace, Level::Debug]);
    }
}
