//! One ordered chain of built-ins and plugins: first definite answer wins, no opinion
//! passes on, plugin grants feed the ACL, and listeners may have their own chain.

use cauldron::acl::{Action, Permission};
use cauldron::config::PluginConfig;
use integration::packets::{Connect, Publish};
use integration::plugins::API_KEYS_WASM;
use integration::{Config, RawClient, TestBroker};
use serde_json::json;

use super::{connack_code, password_config, password_file, rule, v5_login};
use crate::plugins::{cache_dir, plugin, warm_cache};

/// api-keys with one key granting tenant `acme`, unknown credentials as `on_unknown`.
fn api_keys(on_unknown: &str) -> PluginConfig {
    plugin(
        "api-keys",
        API_KEYS_WASM,
        json!({
            "keys": [{"key": "key-acme", "attributes": {"tenant": "acme", "role": "device"}}],
            "on_unknown": on_unknown,
        }),
    )
}

async fn start(f: impl FnOnce(&mut Config)) -> TestBroker {
    warm_cache().await;
    let mut config = Config::default();
    config.plugin_host.cache_dir = Some(cache_dir().into());
    f(&mut config);
    TestBroker::start(config).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn built_ins_and_plugins_answer_in_chain_order() {
    // Issue 4 "The chain": e.g. ["password_file", "plugin:api-keys"]; first definite
    // answer wins, no opinion passes on. An unknown user passes from the password file
    // to the plugin, whose grant (tenant) feeds an ACL placeholder.
    let (_dir, path) = password_file(&[("alice", "wonderland")]);
    let b = start(|c| {
        c.plugins = vec![api_keys("deny")];
        c.auth.password_file = Some(password_config(&path));
        c.auth.chain = vec![
            "password_file".into(),
            "plugin:api-keys".into(),
            "acl".into(),
        ];
        c.acl.rules = vec![
            rule(
                "role:device",
                Action::All,
                "tenants/${attr.tenant}/#",
                Permission::Allow,
            ),
            rule("user:alice", Action::All, "#", Permission::Allow),
        ];
    })
    .await;
    let mut alice = v5_login(&b, "alice", "alice", "wonderland").await;
    assert_eq!(alice.subscribe("anything/at/all", 0).await, vec![0]);
    let mut device = v5_login(&b, "dev-1", "dev-1", "key-acme").await;
    assert_eq!(device.subscribe("tenants/acme/#", 1).await, vec![1]);
    assert_eq!(device.subscribe("tenants/other/#", 1).await, vec![0x87]);
    assert_eq!(
        device
            .publish(Publish::new("tenants/other/x", b"1").qos(1, 0))
            .await,
        0x87
    );
    let wrong = Connect::v5("x").credentials("alice", b"wrong");
    assert_eq!(
        connack_code(&b, &wrong).await,
        0x86,
        "the password file answers first and definitely"
    );
    let unknown = Connect::v5("y").credentials("nobody", b"nokey");
    assert_eq!(connack_code(&b, &unknown).await, 0x86, "the plugin denies");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_first_in_the_chain_decides_before_the_password_file() {
    let (_dir, path) = password_file(&[("alice", "wonderland")]);
    let b = start(|c| {
        c.plugins = vec![api_keys("deny")];
        c.auth.password_file = Some(password_config(&path));
        c.auth.chain = vec!["plugin:api-keys".into(), "password_file".into()];
    })
    .await;
    let alice = Connect::v5("alice").credentials("alice", b"wonderland");
    assert_eq!(
        connack_code(&b, &alice).await,
        0x86,
        "api-keys denies unknown keys before the password file is asked"
    );
    RawClient::connect_with(b.addr, &Connect::v5("dev").credentials("dev", b"key-acme")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_may_have_its_own_chain() {
    // Issue 4: the chain is set "per listener where listeners differ".
    let (_dir, path) = password_file(&[("alice", "wonderland")]);
    let b = start(|c| {
        c.plugins = vec![api_keys("no-opinion")];
        c.auth.password_file = Some(password_config(&path));
        c.listeners[0].auth_chain = Some(vec!["plugin:api-keys".into()]);
    })
    .await;
    let alice = Connect::v5("alice").credentials("alice", b"wonderland");
    assert_eq!(
        connack_code(&b, &alice).await,
        0x86,
        "this listener's chain has no password file"
    );
    RawClient::connect_with(b.addr, &Connect::v5("dev").credentials("dev", b"key-acme")).await;
}
