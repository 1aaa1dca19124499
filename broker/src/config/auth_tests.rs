//! Tests of the `[auth]`, `[acl]` and per-listener chain keys.
#![allow(clippy::unwrap_used, clippy::result_large_err)]

use std::path::Path;

use figment::Jail;

use super::*;

use super::test_support::{FILE, load_err};

#[test]
fn default_chain_is_the_configured_built_ins_then_the_plugins() {
    Jail::expect_with(|jail| {
        jail.clear_env();
        jail.create_file(
            FILE,
            "[auth.password_file]\npath = \"passwd\"\n\
             [auth.jwt]\nalgorithms = [\"HS256\"]\nsecret = \"s\"\n\
             [[acl.rules]]\nwho = \"all\"\naction = \"all\"\ntopic = \"#\"\npermission = \"allow\"\n",
        )?;
        let config = load(Some(Path::new(FILE))).unwrap();
        assert_eq!(
            config.auth_chain("tcp"),
            vec![
                ChainEntry::PasswordFile,
                ChainEntry::Jwt,
                ChainEntry::Acl,
                ChainEntry::Plugins
            ]
        );
        assert!(config.allow_anonymous("tcp"));
        Ok(())
    });
}

#[test]
fn listener_chain_and_anonymous_setting_override_auth() {
    Jail::expect_with(|jail| {
        jail.clear_env();
        jail.create_file(
            FILE,
            "[[listeners]]\nname = \"tcp\"\nbind = \"0.0.0.0:1883\"\n\
             [[listeners]]\nname = \"internal\"\nbind = \"127.0.0.1:1884\"\n\
             auth_chain = [\"plugins\"]\nallow_anonymous = false\n\
             [auth]\nchain = [\"password_file\"]\n\
             [auth.password_file]\npath = \"passwd\"\n",
        )?;
        let config = load(Some(Path::new(FILE))).unwrap();
        assert_eq!(config.auth_chain("tcp"), vec![ChainEntry::PasswordFile]);
        assert_eq!(config.auth_chain("internal"), vec![ChainEntry::Plugins]);
        assert!(config.allow_anonymous("tcp"));
        assert!(!config.allow_anonymous("internal"));
        Ok(())
    });
}

#[test]
fn rejects_unknown_and_duplicate_chain_entries_naming_key_and_file() {
    Jail::expect_with(|jail| {
        jail.clear_env();
        jail.create_file(FILE, "[auth]\nchain = [\"ldap\"]\n")?;
        assert_eq!(
            load_err(),
            "invalid value for key `auth.chain.0` in cauldron.toml: unknown chain entry \
             `ldap`; expected password_file, jwt, acl, plugins or plugin:NAME"
        );
        jail.create_file(FILE, "[auth]\nchain = [\"plugins\", \"plugins\"]\n")?;
        assert_eq!(
            load_err(),
            "invalid value for key `auth.chain.1` in cauldron.toml: `plugins` appears twice"
        );
        Ok(())
    });
}

#[test]
fn rejects_chain_entries_without_their_configuration() {
    Jail::expect_with(|jail| {
        jail.clear_env();
        jail.create_file(FILE, "[auth]\nchain = [\"jwt\"]\n")?;
        assert_eq!(
            load_err(),
            "invalid value for key `auth.chain.0` in cauldron.toml: `jwt` needs an [auth.jwt] table"
        );
        jail.create_file(FILE, "[auth]\nchain = [\"plugin:nope\"]\n")?;
        assert_eq!(
            load_err(),
            "invalid value for key `auth.chain.0` in cauldron.toml: no plugin named `nope` in [[plugins]]"
        );
        jail.create_file(
            FILE,
            "[[listeners]]\nname = \"tcp\"\nbind = \"0.0.0.0:1883\"\nauth_chain = [\"acl\"]\n",
        )?;
        assert_eq!(
            load_err(),
            "invalid value for key `listeners.0.auth_chain.0` in cauldron.toml: \
             `acl` needs [[acl.rules]] or acl.file"
        );
        Ok(())
    });
}

#[test]
fn rejects_empty_password_path_and_unpinned_jwt() {
    Jail::expect_with(|jail| {
        jail.clear_env();
        jail.create_file(FILE, "[auth.password_file]\npath = \"\"\n")?;
        assert_eq!(
            load_err(),
            "invalid value for key `auth.password_file.path` in cauldron.toml: must not be empty"
        );
        jail.create_file(FILE, "[auth.jwt]\nsecret = \"s\"\n")?;
        assert_eq!(
            load_err(),
            "invalid value for key `auth.jwt.algorithms` in cauldron.toml: \
             pin at least one algorithm, e.g. [\"RS256\"]"
        );
        Ok(())
    });
}

#[test]
fn acl_rules_and_denied_publish_policy_come_from_env() {
    Jail::expect_with(|jail| {
        jail.clear_env();
        jail.set_env("CAULDRON_AUTH__DENIED_PUBLISH_V3", "disconnect");
        jail.set_env("CAULDRON_ACL__DEFAULT", "allow");
        let config = load(None).unwrap();
        assert_eq!(config.auth.denied_publish_v3, DeniedPublish::Disconnect);
        assert_eq!(config.acl.default, crate::acl::Permission::Allow);
        Ok(())
    });
}
