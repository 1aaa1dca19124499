//! `[metrics]` loading and validation.
// Tests unwrap freely; `Jail` closures return `figment::Error`, which is large.
#![allow(clippy::unwrap_used, clippy::result_large_err)]

use std::path::Path;

use figment::Jail;

use super::*;

#[test]
fn metrics_endpoint_is_off_and_on_loopback_by_default() {
    let m = MetricsConfig::default();
    assert!(!m.enabled);
    assert!(m.bind.ip().is_loopback(), "{}", m.bind);
}

#[test]
fn metrics_table_in_file_and_env_enable_the_endpoint() {
    Jail::expect_with(|jail| {
        jail.clear_env();
        jail.create_file("c.toml", "[metrics]\nbind = \"0.0.0.0:9100\"\n")?;
        jail.set_env("CAULDRON_METRICS__ENABLED", "true");
        let config = load(Some(Path::new("c.toml"))).unwrap();
        assert!(config.metrics.enabled);
        assert_eq!(config.metrics.bind, "0.0.0.0:9100".parse().unwrap());
        Ok(())
    });
}

#[test]
fn rejects_metrics_bind_overlapping_an_mqtt_listener() {
    Jail::expect_with(|jail| {
        jail.clear_env();
        jail.create_file(
            "c.toml",
            "[metrics]\nenabled = true\nbind = \"127.0.0.1:1883\"\n",
        )?;
        let err = load(Some(Path::new("c.toml"))).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid value for key `metrics.bind` in c.toml: 127.0.0.1:1883 conflicts \
             with 0.0.0.0:1883 of listener `tcp` (listeners.0)"
        );
        Ok(())
    });
}

#[test]
fn disabled_metrics_bind_is_not_checked_against_listeners() {
    let mut config = Config::default();
    config.metrics.bind = "127.0.0.1:1883".parse().unwrap();
    assert!(config.validate().is_ok());
}

#[test]
fn rejects_unknown_key_in_metrics_table() {
    Jail::expect_with(|jail| {
        jail.clear_env();
        jail.create_file("c.toml", "[metrics]\nport = 9100\n")?;
        let err = load(Some(Path::new("c.toml"))).unwrap_err().to_string();
        assert!(
            err.contains("unknown key `metrics.port` in c.toml"),
            "{err}"
        );
        Ok(())
    });
}
