//! Tests of the `[[plugins]]` and `[plugin_host]` keys.
#![allow(clippy::unwrap_used, clippy::result_large_err)]

use std::path::Path;

use figment::Jail;

use super::*;

use super::test_support::{FILE, load_err};

#[test]
fn plugin_keys_default_when_only_name_and_path_are_given() {
    Jail::expect_with(|jail| {
        jail.clear_env();
        jail.create_file(FILE, "[[plugins]]\nname = \"auth\"\npath = \"auth.wasm\"\n")?;
        let config = load(Some(Path::new(FILE))).unwrap();
        let p = &config.plugins[0];
        assert_eq!(p.name, "auth");
        assert_eq!(p.hook_timeout_ms, 50);
        assert_eq!(p.memory_limit_mib, 32);
        assert_eq!(p.instances, None);
        assert!(p.instance_count() >= 1);
        assert_eq!(p.max_consecutive_failures, 5);
        assert_eq!(p.on_error.connect, FailurePolicy::Deny);
        assert_eq!(p.on_error.subscribe, FailurePolicy::Deny);
        assert_eq!(p.on_error.publish, FailurePolicy::Allow);
        assert!(p.config.is_empty());
        assert_eq!(
            p.wasm_path(),
            Path::new("auth.wasm"),
            "next to the config file"
        );
        let mut expected = PluginConfig::new("auth", "auth.wasm");
        expected.path = p.path.clone();
        assert_eq!(p, &expected);
        Ok(())
    });
}

#[test]
fn plugin_path_and_cache_dir_are_relative_to_the_config_file() {
    Jail::expect_with(|jail| {
        jail.clear_env();
        jail.create_dir("etc")?;
        jail.create_file(
            "etc/cauldron.toml",
            "[plugin_host]\ncache_dir = \"cache\"\n\n\
             [[plugins]]\nname = \"a\"\npath = \"plugins/a.wasm\"\n",
        )?;
        let config = load(Some(Path::new("etc/cauldron.toml"))).unwrap();
        let etc = Path::new("etc");
        assert_eq!(config.plugins[0].wasm_path(), etc.join("plugins/a.wasm"));
        assert_eq!(config.plugin_host.cache_path(), Some(etc.join("cache")));
        Ok(())
    });
}

#[test]
fn plugin_table_becomes_json_config_and_policies_parse() {
    Jail::expect_with(|jail| {
        jail.clear_env();
        jail.create_file(
            FILE,
            r#"
            [[plugins]]
            name = "auth"
            path = "auth.wasm"
            instances = 3
            on_error = { connect = "allow", publish = "skip" }
            [plugins.config]
            keys = ["k1", "k2"]
            nested = { depth = 2 }
            "#,
        )?;
        let p = load(Some(Path::new(FILE))).unwrap().plugins.remove(0);
        assert_eq!(p.instance_count(), 3);
        assert_eq!(p.on_error.connect, FailurePolicy::Allow);
        assert_eq!(
            p.on_error.subscribe,
            FailurePolicy::Deny,
            "unset key keeps default"
        );
        assert_eq!(p.on_error.publish, FailurePolicy::Skip);
        let json = serde_json::to_string(&p.config).unwrap();
        assert_eq!(json, r#"{"keys":["k1","k2"],"nested":{"depth":2}}"#);
        Ok(())
    });
}

#[test]
fn rejects_duplicate_plugin_names_naming_key_and_file() {
    Jail::expect_with(|jail| {
        jail.clear_env();
        jail.create_file(
            FILE,
            "[[plugins]]\nname = \"a\"\npath = \"a.wasm\"\n[[plugins]]\nname = \"a\"\npath = \"b.wasm\"\n",
        )?;
        assert_eq!(
            load_err(),
            "invalid value for key `plugins.1.name` in cauldron.toml: \
             duplicate plugin name `a` (also plugins.0)"
        );
        Ok(())
    });
}

#[test]
fn rejects_plugin_names_that_cannot_appear_in_topics_or_labels() {
    Jail::expect_with(|jail| {
        jail.clear_env();
        jail.create_file(FILE, "[[plugins]]\nname = \"a/#\"\npath = \"a.wasm\"\n")?;
        assert_eq!(
            load_err(),
            "invalid value for key `plugins.0.name` in cauldron.toml: \
             `a/#` may contain only ASCII letters, digits, `-`, `_` and `.`"
        );
        Ok(())
    });
}

#[test]
fn rejects_out_of_range_plugin_limits_naming_key_and_file() {
    Jail::expect_with(|jail| {
        jail.clear_env();
        jail.create_file(
            FILE,
            "[[plugins]]\nname = \"a\"\npath = \"a.wasm\"\nhook_timeout_ms = 0\n",
        )?;
        assert_eq!(
            load_err(),
            "invalid value for key `plugins.0.hook_timeout_ms` in cauldron.toml: \
             must be between 1 and 60000, got 0"
        );
        Ok(())
    });
}

#[test]
fn rejects_unknown_policy_and_missing_path() {
    Jail::expect_with(|jail| {
        jail.clear_env();
        jail.create_file(
            FILE,
            "[[plugins]]\nname = \"a\"\npath = \"a.wasm\"\non_error = { connect = \"maybe\" }\n",
        )?;
        let err = load_err();
        assert!(err.contains("plugins.0.on_error.connect"), "{err}");
        assert!(err.contains("cauldron.toml"), "{err}");
        jail.create_file(FILE, "[[plugins]]\nname = \"a\"\n")?;
        let err = load_err();
        assert!(err.contains("missing field `path`"), "{err}");
        Ok(())
    });
}

#[test]
fn rejects_zero_instances_and_failures() {
    type Mutation = fn(&mut PluginConfig);
    let cases: [(&str, Mutation); 6] = [
        ("plugins.0.instances", |p| p.instances = Some(0)),
        ("plugins.0.memory_limit_mib", |p| p.memory_limit_mib = 0),
        ("plugins.0.max_consecutive_failures", |p| {
            p.max_consecutive_failures = 0
        }),
        ("plugins.0.kv_max_keys", |p| p.kv_max_keys = 0),
        ("plugins.0.name", |p| p.name = String::new()),
        ("plugins.0.path", |p| p.path = "".into()),
    ];
    for (expected_key, mutate) in cases {
        let mut config = Config::default();
        let mut plugin = PluginConfig::new("a", "a.wasm");
        mutate(&mut plugin);
        config.plugins.push(plugin);
        match config.validate() {
            Err(Error::Invalid { key, .. }) => assert_eq!(key, expected_key),
            other => panic!("{expected_key}: expected Invalid, got {other:?}"),
        }
    }
}

#[test]
fn default_file_documents_the_plugin_keys() {
    for key in [
        "# cache_dir = ",
        "# [[plugins]]",
        "# hook_timeout_ms = 50",
        "# memory_limit_mib = 32",
        "# on_error = { connect = \"deny\", subscribe = \"deny\", publish = \"allow\" }",
        "# max_consecutive_failures = 5",
        "# kv_max_keys = 10000",
        "# kv_max_bytes = 16777216",
        "# [plugins.config]",
    ] {
        assert!(DEFAULT_CONFIG_TOML.contains(key), "{key}");
    }
}
