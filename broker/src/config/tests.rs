//! Loading and validation tests, run in `figment::Jail` (temporary cwd and environment).
// Tests unwrap freely; `Jail` closures return `figment::Error`, which is large.
#![allow(clippy::unwrap_used, clippy::result_large_err)]

use std::path::Path;

use figment::providers::{Format, Serialized, Toml};
use figment::value::Value;
use figment::{Figment, Jail, Provider};

use super::*;

const FILE: &str = "cauldron.toml";

/// Loads `FILE` from the jail with the real layers.
fn load_file() -> Result<Config, Error> {
    load(Some(Path::new(FILE)))
}

/// Loads and returns the error's Display, failing the test if loading succeeded.
fn load_err(path: Option<&str>) -> String {
    match load(path.map(Path::new)) {
        Ok(c) => panic!("expected an error, got {c:?}"),
        Err(e) => e.to_string(),
    }
}

fn leaf_keys(prefix: &str, value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Dict(_, dict) => {
            for (k, v) in dict {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                leaf_keys(&key, v, out);
            }
        }
        Value::Array(_, items) => {
            for (i, v) in items.iter().enumerate() {
                leaf_keys(&format!("{prefix}.{i}"), v, out);
            }
        }
        _ => out.push(prefix.to_owned()),
    }
}

fn keys_of(provider: impl Provider) -> Vec<String> {
    let value: Value = Figment::from(provider).extract().unwrap();
    let mut out = Vec::new();
    leaf_keys("", &value, &mut out);
    out.sort();
    out
}

#[test]
fn embedded_default_file_equals_default_config() {
    let from_file: Config = Figment::from(Toml::string(DEFAULT_CONFIG_TOML))
        .extract()
        .unwrap();
    assert_eq!(from_file, Config::default());
    assert_eq!(Config::default().validate().unwrap(), ());
}

#[test]
fn embedded_default_file_spells_out_every_key() {
    let in_file = keys_of(Toml::string(DEFAULT_CONFIG_TOML));
    let mut in_code = keys_of(Serialized::defaults(Config::default()));
    // An unset Option has no TOML form; the file shows it commented out.
    let unset = [
        "mqtt.response_information",
        "plugin_host.cache_dir",
        "auth.password_file",
        "auth.jwt",
        "acl.file",
        "listeners.0.tls",
    ];
    in_code.retain(|k| !unset.contains(&k.as_str()));
    // A RelativePathBuf serialises as two figment-internal keys; the file has one.
    for k in &mut in_code {
        if let Some(base) = k.strip_suffix(".___figment_relative_path") {
            *k = base.to_owned();
        }
    }
    in_code.retain(|k| !k.ends_with(".___figment_relative_metadata_path"));
    assert_eq!(in_file, in_code);
    for commented in [
        "# response_information = ",
        "# cache_dir = ",
        "# [auth.password_file]",
        "# [auth.jwt]",
        "# file = ",
        "# [listeners.tls]",
        "# username_from_cert = ",
    ] {
        assert!(DEFAULT_CONFIG_TOML.contains(commented), "{commented}");
    }
}

#[test]
fn loads_defaults_without_file() {
    Jail::expect_with(|jail| {
        jail.clear_env();
        assert_eq!(load(None).unwrap(), Config::default());
        Ok(())
    });
}

#[test]
fn file_overrides_defaults() {
    Jail::expect_with(|jail| {
        jail.clear_env();
        jail.create_file(
            FILE,
            r#"
            [[listeners]]
            name = "local"
            bind = "127.0.0.1:1884"
            max_connections = 5

            [limits]
            max_packet_bytes = 4096

            [mqtt]
            maximum_qos = 1
            response_information = "replies/"
            "#,
        )?;
        let config = load_file().unwrap();
        assert_eq!(config.listeners.len(), 1);
        assert_eq!(config.listeners[0].name, "local");
        assert_eq!(config.listeners[0].bind, "127.0.0.1:1884".parse().unwrap());
        assert_eq!(config.listeners[0].max_connections, 5);
        assert_eq!(config.limits.max_packet_bytes, 4096);
        assert_eq!(
            config.limits.receive_maximum, 1024,
            "untouched keys keep defaults"
        );
        assert_eq!(config.mqtt.maximum_qos, 1);
        assert_eq!(
            config.mqtt.response_information.as_deref(),
            Some("replies/")
        );
        Ok(())
    });
}

#[test]
fn env_overrides_file() {
    Jail::expect_with(|jail| {
        jail.clear_env();
        jail.create_file(
            FILE,
            "[limits]\nmax_packet_bytes = 4096\nreceive_maximum = 7\n",
        )?;
        jail.set_env("CAULDRON_LIMITS__MAX_PACKET_BYTES", "2048");
        jail.set_env("CAULDRON_SYS__ENABLED", "false");
        jail.set_env("CAULDRON_MQTT__RESPONSE_INFORMATION", "replies/");
        let config = load_file().unwrap();
        assert_eq!(config.limits.max_packet_bytes, 2048);
        assert_eq!(config.limits.receive_maximum, 7);
        assert!(!config.sys.enabled);
        assert_eq!(
            config.mqtt.response_information.as_deref(),
            Some("replies/")
        );
        Ok(())
    });
}

#[test]
fn env_replaces_listener_list() {
    Jail::expect_with(|jail| {
        jail.clear_env();
        jail.create_file(
            FILE,
            "[[listeners]]\nname = \"file\"\nbind = \"127.0.0.1:1\"\n",
        )?;
        jail.set_env(
            "CAULDRON_LISTENERS",
            r#"[{name="a", bind="127.0.0.1:1884"}, {name="b", bind="[::1]:1885", max_connections=3}]"#,
        );
        let config = load_file().unwrap();
        let names: Vec<&str> = config.listeners.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(config.listeners[1].bind, "[::1]:1885".parse().unwrap());
        assert_eq!(config.listeners[1].max_connections, 3);
        Ok(())
    });
}

#[test]
fn env_indexed_listener_is_rejected_naming_the_variable() {
    Jail::expect_with(|jail| {
        jail.clear_env();
        jail.set_env("CAULDRON_LISTENERS__0__BIND", "127.0.0.1:1884");
        assert_eq!(
            load_err(None),
            "invalid type: found map, expected a sequence for key `listeners` \
             in environment variable CAULDRON_LISTENERS__0__BIND"
        );
        Ok(())
    });
}

#[test]
fn unknown_key_in_file_names_key_and_file() {
    Jail::expect_with(|jail| {
        jail.clear_env();
        jail.create_file(FILE, "[sys]\nenabled = true\ninterval = 5\n")?;
        assert_eq!(
            load_err(Some(FILE)),
            "unknown key `sys.interval` in cauldron.toml, expected one of: enabled, interval_secs"
        );
        jail.create_file(FILE, "bogus = 1\n")?;
        assert!(
            load_err(Some(FILE)).starts_with("unknown key `bogus` in cauldron.toml"),
            "top-level unknown key"
        );
        Ok(())
    });
}

#[test]
fn unknown_key_in_env_names_variable() {
    Jail::expect_with(|jail| {
        jail.clear_env();
        jail.set_env("CAULDRON_SYS__INTERVAL", "5");
        assert_eq!(
            load_err(None),
            "unknown key `sys.interval` in environment variable CAULDRON_SYS__INTERVAL, \
             expected one of: enabled, interval_secs"
        );
        Ok(())
    });
}

#[test]
fn wrong_type_in_file_names_key_and_file() {
    Jail::expect_with(|jail| {
        jail.clear_env();
        jail.create_file(FILE, "[limits]\nmax_packet_bytes = \"big\"\n")?;
        assert_eq!(
            load_err(Some(FILE)),
            "invalid type: found string \"big\", expected u32 \
             for key `limits.max_packet_bytes` in cauldron.toml"
        );
        jail.create_file(FILE, "[limits]\nreceive_maximum = 70000\n")?;
        assert_eq!(
            load_err(Some(FILE)),
            "invalid value signed int `70000`, expected u16 \
             for key `limits.receive_maximum` in cauldron.toml"
        );
        Ok(())
    });
}

#[test]
fn wrong_type_in_env_names_variable() {
    Jail::expect_with(|jail| {
        jail.clear_env();
        jail.set_env("CAULDRON_LIMITS__MAX_PACKET_BYTES", "2kb");
        assert_eq!(
            load_err(None),
            "invalid type: found string \"2kb\", expected u32 \
             for key `limits.max_packet_bytes` in environment variable CAULDRON_LIMITS__MAX_PACKET_BYTES"
        );
        Ok(())
    });
}

#[test]
fn bad_address_inside_env_list_names_the_list_variable() {
    Jail::expect_with(|jail| {
        jail.clear_env();
        jail.set_env("CAULDRON_LISTENERS", r#"[{name="a", bind="localhost"}]"#);
        assert_eq!(
            load_err(None),
            "invalid socket address syntax for key `listeners.0.bind` \
             in environment variable CAULDRON_LISTENERS"
        );
        Ok(())
    });
}

#[test]
fn toml_syntax_error_names_file() {
    Jail::expect_with(|jail| {
        jail.clear_env();
        jail.create_file(FILE, "[limits\n")?;
        let message = load_err(Some(FILE));
        assert!(
            message.starts_with("TOML parse error at line 1"),
            "{message}"
        );
        assert!(message.ends_with(" in cauldron.toml"), "{message}");
        Ok(())
    });
}

#[test]
fn out_of_range_in_file_is_invalid_naming_key_and_file() {
    Jail::expect_with(|jail| {
        jail.clear_env();
        jail.create_file(FILE, "[limits]\nmax_packet_bytes = 268435456\n")?;
        let err = load_file().unwrap_err();
        assert!(matches!(err, Error::Invalid { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            "invalid value for key `limits.max_packet_bytes` in cauldron.toml: \
             must be between 1 and 268435455, got 268435456"
        );
        Ok(())
    });
}

#[test]
fn out_of_range_in_env_is_invalid_naming_variable() {
    Jail::expect_with(|jail| {
        jail.clear_env();
        jail.create_file(FILE, "[mqtt]\nmaximum_qos = 1\n")?;
        jail.set_env("CAULDRON_MQTT__MAXIMUM_QOS", "3");
        assert_eq!(
            load_err(Some(FILE)),
            "invalid value for key `mqtt.maximum_qos` in environment variable \
             CAULDRON_MQTT__MAXIMUM_QOS: must be 0, 1 or 2, got 3"
        );
        Ok(())
    });
}

#[test]
fn invalid_default_value_names_built_in_default() {
    let mut defaults = Config::default();
    defaults.limits.receive_maximum = 0;
    let err = from_figment(Figment::from(Serialized::defaults(defaults))).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid value for key `limits.receive_maximum` in built-in default: \
         must be at least 1, got 0"
    );
}

#[test]
fn missing_file_names_path() {
    Jail::expect_with(|jail| {
        jail.clear_env();
        let err = load(Some(Path::new("nope/cauldron.toml"))).unwrap_err();
        assert!(matches!(err, Error::MissingFile { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            "config file `nope/cauldron.toml` does not exist"
        );
        Ok(())
    });
}

#[test]
fn figment_layer_does_not_skip_or_search_for_missing_file() {
    Jail::expect_with(|jail| {
        jail.clear_env();
        // figment's `Toml::file` would find this one from the sub-directory and would
        // silently skip a missing file; `figment()` does neither.
        jail.create_file(FILE, "[sys]\ninterval_secs = 5\n")?;
        jail.create_dir("sub")?;
        jail.change_dir("sub")?;
        let err = from_figment(figment(Some(Path::new(FILE)))).unwrap_err();
        assert!(matches!(err, Error::Extract(_)), "{err:?}");
        assert!(err.to_string().ends_with(" in cauldron.toml"), "{err}");
        Ok(())
    });
}

#[test]
fn rejects_duplicate_listener_names() {
    Jail::expect_with(|jail| {
        jail.clear_env();
        jail.create_file(
            FILE,
            r#"
            [[listeners]]
            name = "tcp"
            bind = "127.0.0.1:1883"
            [[listeners]]
            name = "tcp"
            bind = "127.0.0.1:1884"
            "#,
        )?;
        assert_eq!(
            load_err(Some(FILE)),
            "invalid value for key `listeners.1.name` in cauldron.toml: \
             duplicate listener name `tcp` (also listeners.0)"
        );
        Ok(())
    });
}

fn listener(name: &str, bind: &str) -> ListenerConfig {
    ListenerConfig {
        name: name.to_owned(),
        bind: bind.parse().unwrap(),
        max_connections: 0,
        ..ListenerConfig::default()
    }
}

fn with_listeners(listeners: Vec<ListenerConfig>) -> Result<(), Error> {
    Config {
        listeners,
        ..Config::default()
    }
    .validate()
}

#[test]
fn rejects_two_listeners_on_same_address() {
    let err = with_listeners(vec![
        listener("a", "127.0.0.1:1883"),
        listener("b", "127.0.0.1:1883"),
    ])
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid value for key `listeners.1.bind` in in-memory config: \
         127.0.0.1:1883 conflicts with 127.0.0.1:1883 of listener `a` (listeners.0)"
    );
}

#[test]
fn rejects_specific_address_under_wildcard_on_same_port() {
    let err = with_listeners(vec![
        listener("a", "127.0.0.1:1883"),
        listener("b", "0.0.0.0:1883"),
    ]);
    assert!(matches!(err, Err(Error::Invalid { key, .. }) if key == "listeners.1.bind"));
}

#[test]
fn accepts_distinct_addresses_and_repeated_port_zero() {
    let ok = with_listeners(vec![
        listener("a", "0.0.0.0:1883"),
        listener("b", "0.0.0.0:1884"),
        listener("c", "[::]:1883"),
        listener("d", "127.0.0.1:0"),
        listener("e", "127.0.0.1:0"),
    ]);
    assert!(ok.is_ok(), "{ok:?}");
}

#[test]
fn rejects_empty_listener_list_naming_file() {
    Jail::expect_with(|jail| {
        jail.clear_env();
        jail.create_file(FILE, "listeners = []\n")?;
        assert_eq!(
            load_err(Some(FILE)),
            "invalid value for key `listeners` in cauldron.toml: at least one listener is required"
        );
        Ok(())
    });
}

#[test]
fn rejects_empty_listener_name() {
    let err = with_listeners(vec![listener(" ", "127.0.0.1:1883")]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid value for key `listeners.0.name` in in-memory config: must not be empty"
    );
}

#[test]
fn rejects_zero_windows_and_out_of_range_limits() {
    type Mutation = fn(&mut Config);
    let cases: [(&str, Mutation); 10] = [
        ("limits.max_connections", |c| c.limits.max_connections = 0),
        ("limits.max_packet_bytes", |c| c.limits.max_packet_bytes = 0),
        ("limits.receive_maximum", |c| c.limits.receive_maximum = 0),
        ("limits.max_inflight_messages", |c| {
            c.limits.max_inflight_messages = 0
        }),
        ("limits.max_queued_messages", |c| {
            c.limits.max_queued_messages = 0
        }),
        ("limits.max_topic_levels", |c| c.limits.max_topic_levels = 0),
        ("limits.connect_timeout_secs", |c| {
            c.limits.connect_timeout_secs = 0
        }),
        ("limits.client_id_max_bytes", |c| {
            c.limits.client_id_max_bytes = 65_536
        }),
        ("sys.interval_secs", |c| c.sys.interval_secs = 0),
        ("mqtt.response_information", |c| {
            c.mqtt.response_information = Some("x".repeat(65_536));
        }),
    ];
    for (expected_key, mutate) in cases {
        let mut config = Config::default();
        mutate(&mut config);
        match config.validate() {
            Err(Error::Invalid { key, .. }) => assert_eq!(key, expected_key),
            other => panic!("{expected_key}: expected Invalid, got {other:?}"),
        }
    }
}

#[test]
fn accepts_zero_for_keys_where_zero_means_unlimited_or_off() {
    let mut config = Config::default();
    config.limits.max_keep_alive_secs = 0;
    config.limits.max_session_expiry_secs = 0;
    config.limits.topic_alias_maximum = 0;
    config.limits.max_subscriptions_per_session = 0;
    config.limits.write_buffer_high_water_bytes = 0;
    config.mqtt.maximum_qos = 0;
    config.mqtt.max_retained_messages = 0;
    assert!(config.validate().is_ok());
}
#[test]
fn env_string_that_reads_as_number_must_be_quoted() {
    Jail::expect_with(|jail| {
        jail.clear_env();
        jail.set_env("CAULDRON_MQTT__RESPONSE_INFORMATION", "42");
        assert_eq!(
            load_err(None),
            "invalid type: found unsigned int `42`, expected a string for key \
             `mqtt.response_information` in environment variable CAULDRON_MQTT__RESPONSE_INFORMATION"
        );
        jail.set_env("CAULDRON_MQTT__RESPONSE_INFORMATION", "\"42\"");
        assert_eq!(
            load(None).unwrap().mqtt.response_information.as_deref(),
            Some("42")
        );
        Ok(())
    });
}

#[test]
fn error_can_cross_threads_and_be_wrapped_by_anyhow() {
    fn assert_send_sync_static<T: Send + Sync + 'static>() {}
    assert_send_sync_static::<Error>();
    let err: Box<dyn std::error::Error + Send + Sync> = Box::new(Error::MissingFile {
        path: "x.toml".into(),
    });
    assert_eq!(err.to_string(), "config file `x.toml` does not exist");
}
