//! Helpers shared by the config test modules.
#![allow(clippy::result_large_err)]

use std::path::Path;

use super::load;

/// The config file name the tests create inside a figment `Jail`.
pub(super) const FILE: &str = "cauldron.toml";

/// Loads [`FILE`] and returns the error's Display, failing the test if loading succeeded.
pub(super) fn load_err() -> String {
    match load(Some(Path::new(FILE))) {
        Ok(c) => panic!("expected an error, got {c:?}"),
        Err(e) => e.to_string(),
    }
}
