//! Built-in authentication and authorisation, and the one ordered chain they form with
//! the plugins.
//!
//! - [`password`] / [`password_file`]: the argon2id password file;
//! - [`jwt`]: JWT in the password field;
//! - [`identity`]: who a session is once the chain accepted it (read by the ACL);
//! - [`Auth`]: the loaded built-ins, reloadable; [`chain`]: the chain semantics for
//!   connect, subscribe, publish and delivery.
//!
//! The ACL rules themselves are [`crate::acl`]. This module knows nothing about
//! sockets or packets: the connection layer passes plain values in and gets reason
//! codes out.

pub mod chain;
pub mod identity;
pub mod jwt;
pub mod password;
pub mod password_file;
pub mod password_limits;

use std::sync::{Arc, RwLock};

use crate::acl::{self, Acl};
use crate::config::Config;
use jwt::JwtAuth;
use password::PasswordAuth;

pub use chain::{Grant, Refusal};
pub use identity::{Identity, TokenPermissions};

/// Why the built-ins could not be loaded (at start: the broker does not start).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The password file.
    #[error("auth.password_file: {0}")]
    PasswordFile(#[from] password::Error),
    /// The JWT keys.
    #[error("auth.jwt: {0}")]
    Jwt(#[from] jwt::Error),
    /// The ACL rules.
    #[error("{0}")]
    Acl(#[from] acl::Error),
}

/// The loaded built-ins. Reloading replaces their contents in place; sessions keep
/// the ACL compiled when they connected.
pub struct Auth {
    /// The password file, when configured.
    pub password: Option<PasswordAuth>,
    /// The JWT authenticator, when configured.
    pub jwt: Option<JwtAuth>,
    acl: RwLock<Arc<Acl>>,
    acl_config: acl::AclConfig,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("password", &self.password)
            .field("jwt", &self.jwt.is_some())
            .field("acl_rules", &self.acl().len())
            .finish()
    }
}

impl Auth {
    /// Loads the password file, the JWT keys and the ACL rules `config` names. Blocks on
    /// file I/O: call at start or from a blocking task.
    pub fn load(config: &Config) -> Result<Auth, Error> {
        let password = config
            .auth
            .password_file
            .as_ref()
            .map(PasswordAuth::load)
            .transpose()?;
        let jwt = config.auth.jwt.as_ref().map(JwtAuth::new).transpose()?;
        let acl = Acl::new(&config.acl)?;
        Ok(Auth {
            password,
            jwt,
            acl: RwLock::new(Arc::new(acl)),
            acl_config: config.acl.clone(),
        })
    }

    /// Built-ins that are all off (tests, and the default config).
    pub fn none() -> Auth {
        Auth {
            password: None,
            jwt: None,
            acl: RwLock::new(Arc::new(Acl::default())),
            acl_config: acl::AclConfig::default(),
        }
    }

    /// The ACL rules new sessions compile.
    pub fn acl(&self) -> Arc<Acl> {
        Arc::clone(&self.acl.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Re-reads the password file, the JWT key files and the ACL rules file. Each part
    /// that fails keeps its previous state; the errors are returned for logging.
    /// Blocks on file I/O.
    pub fn reload(&self) -> Vec<Error> {
        let mut errors = Vec::new();
        if let Some(p) = &self.password {
            match p.reload() {
                Ok(users) => {
                    tracing::info!(users, path = %p.path().display(), "password file reloaded")
                }
                Err(e) => errors.push(e.into()),
            }
        }
        if let Some(j) = &self.jwt
            && let Err(e) = j.reload()
        {
            errors.push(e.into());
        }
        match Acl::new(&self.acl_config) {
            Ok(acl) => {
                let rules = acl.len();
                *self.acl.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(acl);
                tracing::info!(rules, "acl rules reloaded");
            }
            Err(e) => errors.push(e.into()),
        }
        errors
    }

    /// Whether any built-in reads a file the server should watch for changes.
    pub fn has_watched_files(&self) -> bool {
        self.password.is_some() || self.jwt.as_ref().is_some_and(JwtAuth::has_key_file)
    }

    /// Reloads the password file and the JWT key file when they changed on disk (polled
    /// by the server). Blocks on file I/O.
    pub fn reload_changed_files(&self) {
        if let Some(p) = &self.password {
            match p.reload_if_changed() {
                Ok(Some(users)) => {
                    tracing::info!(users, path = %p.path().display(), "password file changed; reloaded");
                }
                Ok(None) => {}
                Err(error) => {
                    tracing::warn!(%error, "password file changed but cannot be used; the previous users stay in force");
                }
            }
        }
        if let Some(j) = &self.jwt
            && let Err(error) = j.reload_if_changed()
        {
            tracing::warn!(%error, "jwt key file changed but cannot be used; the previous keys stay in force");
        }
    }
}
