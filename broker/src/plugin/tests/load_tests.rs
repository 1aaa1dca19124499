//! Loading: bad files, interface mismatches, init failures, the artefact cache.

use std::path::{Path, PathBuf};

use super::*;

/// Writes a WAT component (or module) to a temporary `.wasm` file.
fn wat_file(dir: &Path, name: &str, wat: &str) -> PathBuf {
    let bytes = wat::parse_str(wat).unwrap();
    let path = dir.join(format!("{name}.wasm"));
    std::fs::write(&path, bytes).unwrap();
    path
}

async fn load_err(cfg: PluginConfig) -> Error {
    match PluginChain::load(&[cfg], Arc::new(NoPublisher)).await {
        Ok(chain) => panic!("expected an error, loaded {chain:?}"),
        Err(e) => e,
    }
}

#[tokio::test]
async fn missing_file_error_names_plugin_and_path() {
    let err = load_err(PluginConfig::new("auth", "/nonexistent/auth.wasm")).await;
    assert!(matches!(err, Error::Load { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("plugin `auth`"), "{text}");
    assert!(text.contains("/nonexistent/auth.wasm"), "{text}");
}

#[tokio::test]
async fn core_module_or_garbage_is_not_a_component() {
    let dir = tempfile::tempdir().unwrap();
    let module = wat_file(dir.path(), "module", "(module)");
    let err = load_err(PluginConfig::new("core", &module)).await;
    assert!(matches!(err, Error::Compile { .. }), "{err:?}");
    assert!(err.to_string().starts_with("plugin `core`: "), "{err}");
    assert!(
        err.to_string()
            .contains("not a valid WebAssembly component"),
        "{err}"
    );

    let garbage = dir.path().join("garbage.wasm");
    std::fs::write(&garbage, b"not wasm at all").unwrap();
    let err = load_err(PluginConfig::new("garbage", &garbage)).await;
    assert!(matches!(err, Error::Compile { .. }), "{err:?}");
}

#[tokio::test]
async fn component_built_for_another_interface_version_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = wat_file(
        dir.path(),
        "future",
        r#"(component
            (import "cauldron:plugin/host@0.5.0" (instance
                (export "now-millis" (func (result u64)))))
        )"#,
    );
    let err = load_err(PluginConfig::new("future", &path)).await;
    assert!(matches!(err, Error::Interface { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "plugin `future` does not match cauldron:plugin@0.4.0: it imports \
         `cauldron:plugin/host@0.5.0`; this broker implements cauldron:plugin@0.4.0"
    );
}

/// 0.4.0 changed the message record (0.3.0 the hooks' client parameter): a component
/// built for an earlier version is refused naming both versions.
#[tokio::test]
async fn component_built_for_a_previous_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    for old in ["0.1.0", "0.2.0", "0.3.0"] {
        let component = format!(
            r#"(component
                (import "cauldron:plugin/host@{old}" (instance
                    (export "now-millis" (func (result u64)))))
            )"#
        );
        let path = wat_file(dir.path(), "old", &component);
        let err = load_err(PluginConfig::new("old", &path)).await;
        assert_eq!(
            err.to_string(),
            format!(
                "plugin `old` does not match cauldron:plugin@0.4.0: it imports \
                 `cauldron:plugin/host@{old}`; this broker implements cauldron:plugin@0.4.0"
            )
        );
    }
}

#[tokio::test]
async fn component_without_the_hooks_export_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = wat_file(dir.path(), "empty", "(component)");
    let err = load_err(PluginConfig::new("empty", &path)).await;
    assert_eq!(
        err.to_string(),
        "plugin `empty` does not match cauldron:plugin@0.4.0: it does not export \
         `cauldron:plugin/hooks@0.4.0`"
    );
}

#[tokio::test]
async fn host_import_with_the_wrong_signature_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = wat_file(
        dir.path(),
        "wrong",
        r#"(component
            (import "cauldron:plugin/host@0.4.0" (instance
                (export "now-millis" (func (result u32)))))
        )"#,
    );
    let err = load_err(PluginConfig::new("wrong", &path)).await;
    assert!(matches!(err, Error::Interface { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("plugin `wrong`"), "{text}");
    assert!(text.contains("now-millis"), "{text}");
}

#[tokio::test]
async fn init_error_fails_the_load_with_the_plugins_message() {
    let err = load(&[scripted("picky", json!({"init": "fail"}))])
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "plugin `picky`: init failed: init refused by config"
    );
}

#[tokio::test]
async fn init_has_a_deadline_too() {
    let mut cfg = scripted("slow-init", json!({"init": "spin"}));
    cfg.hook_timeout_ms = 10;
    let err = load(&[cfg]).await.unwrap_err();
    assert!(matches!(err, Error::Init { .. }), "{err:?}");
    assert!(err.to_string().contains("deadline"), "{err}");
}

#[tokio::test]
async fn publish_is_refused_during_init() {
    let err = load(&[scripted("eager", json!({"init": "publish"}))])
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "plugin `eager`: init failed: publish is only available inside hooks, not in init"
    );
}

#[tokio::test]
async fn pool_has_the_configured_number_of_instances() {
    let mut cfg = scripted("three", json!({}));
    cfg.instances = Some(3);
    let chain = load(&[cfg]).await.unwrap();
    assert_eq!(chain.instances(), vec![3]);
    assert_eq!(chain.names(), vec!["three".to_owned()]);
}

#[tokio::test]
async fn compiled_artefact_is_cached_and_reused() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = scripted("cached", json!({}));
    let publisher = Arc::new(NoPublisher);
    PluginChain::load_with_cache(
        std::slice::from_ref(&cfg),
        Some(dir.path()),
        publisher.clone(),
    )
    .await
    .unwrap();
    let artefacts: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(artefacts.len(), 1, "{artefacts:?}");
    assert!(artefacts[0].starts_with("cached-") && artefacts[0].ends_with(".cwasm"));
    let started = std::time::Instant::now();
    let chain = PluginChain::load_with_cache(&[cfg], Some(dir.path()), publisher)
        .await
        .unwrap();
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
    assert!(chain.has(Hook::Publish));
}

#[tokio::test]
async fn corrupt_cached_artefact_is_ignored_and_rewritten() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = scripted("corrupt", json!({}));
    let publisher = Arc::new(NoPublisher);
    PluginChain::load_with_cache(
        std::slice::from_ref(&cfg),
        Some(dir.path()),
        publisher.clone(),
    )
    .await
    .unwrap();
    let artefact = std::fs::read_dir(dir.path())
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    std::fs::write(&artefact, b"junk").unwrap();
    PluginChain::load_with_cache(&[cfg], Some(dir.path()), publisher)
        .await
        .unwrap();
    assert!(
        std::fs::metadata(&artefact).unwrap().len() > 1000,
        "rewritten"
    );
}
