//! Built-in authentication and authorisation (issue 4) through real MQTT clients: the
//! argon2id password file, JWT in the password field, the ACL rules, and the one
//! ordered chain they form with the plugins.
//!
//! The helpers here write password files and build configs; the submodules hold the
//! tests, each naming the statement of issue 4 it checks.

mod acl;
mod chain;
mod jwt;
mod password;

use std::path::{Path, PathBuf};

use cauldron::acl::{Action, Permission, RuleConfig};
use cauldron::auth::password::hash_password;
use cauldron::config::{Argon2Params, PasswordFileConfig};
use integration::packets::Connect;
use integration::{Config, RawClient, TestBroker};

/// argon2id parameters cheap enough for tests (the format and checks are the same).
pub const TEST_ARGON2: Argon2Params = Argon2Params {
    memory_kib: 8,
    iterations: 1,
    parallelism: 1,
};

/// A password file with these users in a fresh temporary directory (kept alive by the
/// returned guard).
pub fn password_file(users: &[(&str, &str)]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("passwd");
    write_users(&path, users);
    (dir, path)
}

/// Overwrites `path` with these users.
pub fn write_users(path: &Path, users: &[(&str, &str)]) {
    let mut text = String::from("# test users\n");
    for (user, password) in users {
        let hash = hash_password(password.as_bytes(), &TEST_ARGON2).expect("argon2id hash");
        text.push_str(&format!("{user}:{hash}\n"));
    }
    std::fs::write(path, text).expect("write password file");
}

/// `[auth.password_file]` for `path`, with throttling off unless a test turns it on.
pub fn password_config(path: &Path) -> PasswordFileConfig {
    PasswordFileConfig {
        path: path.to_owned(),
        max_failures: 0,
        argon2: TEST_ARGON2,
        ..PasswordFileConfig::default()
    }
}

/// One ACL rule.
pub fn rule(who: &str, action: Action, topic: &str, permission: Permission) -> RuleConfig {
    RuleConfig {
        who: who.to_owned(),
        action,
        topic: topic.to_owned(),
        permission,
    }
}

/// A broker on the default config changed by `f`.
pub async fn start_with(f: impl FnOnce(&mut Config)) -> TestBroker {
    let mut config = Config::default();
    f(&mut config);
    TestBroker::start(config).await
}

/// The CONNACK code for this CONNECT (the connection is dropped afterwards).
pub async fn connack_code(b: &TestBroker, connect: &Connect) -> u8 {
    let mut c = RawClient::connect(b.addr).await;
    c.handshake(connect).await.code
}

/// An MQTT 5 client that logs in with `user` / `password` (CONNACK asserted 0).
pub async fn v5_login(b: &TestBroker, id: &str, user: &str, password: &str) -> RawClient {
    let connect = Connect::v5(id).credentials(user, password.as_bytes());
    RawClient::connect_with(b.addr, &connect).await.0
}
