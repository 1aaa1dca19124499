//! Builds test plugins for wasm32-wasip2: the scripted plugin (`src/plugin/testdata/
//! scripted`, its own workspace) once per process, and workspace plugins (`plugins/*`) on
//! request. Shared by the unit tests and `benches/plugin_hooks.rs` (which
//! includes this file by path), so it uses std and figment only.
//!
//! The config tests clear the process environment inside `figment::Jail`; reading the
//! environment and running cargo inside a jail of our own keeps them from racing.
//!
//! `CAULDRON_SCRIPTED_WASM=/path/to/scripted_plugin.wasm` skips the build. Otherwise the
//! plugin is built into `<target dir>/plugin-fixtures`; a missing wasm target fails with
//! the `rustup target add wasm32-wasip2` hint, never a silent skip.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The scripted plugin's `.wasm`, built on first use.
pub fn scripted_wasm() -> &'static Path {
    static WASM: OnceLock<PathBuf> = OnceLock::new();
    WASM.get_or_init(|| {
        let manifest =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("src/plugin/testdata/scripted/Cargo.toml");
        locate_or_build(
            "CAULDRON_SCRIPTED_WASM",
            "scripted_plugin",
            &["--manifest-path".as_ref(), manifest.as_os_str()],
        )
    })
}

/// A plugin crate of the workspace (`plugins/<package>`), built on first use. The
/// environment variable `CAULDRON_<PACKAGE>_WASM` (upper case, `-` as `_`) skips the build.
#[allow(dead_code)] // used by the benchmark only
pub fn workspace_plugin_wasm(package: &str) -> PathBuf {
    let var = format!("CAULDRON_{}_WASM", package.to_uppercase().replace('-', "_"));
    let artefact = package.replace('-', "_");
    locate_or_build(&var, &artefact, &["--package".as_ref(), package.as_ref()])
}

/// The path in `var`, else `cargo build --release --target wasm32-wasip2 <args>`.
#[allow(clippy::result_large_err)] // figment's Jail closure returns figment::Error
fn locate_or_build(var: &str, artefact: &str, args: &[&std::ffi::OsStr]) -> PathBuf {
    let mut wasm = PathBuf::new();
    figment::Jail::expect_with(|_| {
        wasm = match std::env::var_os(var) {
            Some(path) => PathBuf::from(path),
            None => build(artefact, args),
        };
        Ok(())
    });
    wasm
}

/// `<target dir>/plugin-fixtures`: next to the `debug`/`release` directory holding the
/// running test or bench binary (`<target>/<profile>/deps/<binary>`).
pub fn fixtures_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    let target = exe
        .ancestors()
        .nth(3)
        .map(Path::to_owned)
        .unwrap_or_else(std::env::temp_dir);
    target.join("plugin-fixtures")
}

fn build(artefact: &str, args: &[&std::ffi::OsStr]) -> PathBuf {
    let target_dir = fixtures_dir();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| env!("CARGO").into());
    let output = Command::new(cargo)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["build", "--release", "--target=wasm32-wasip2"])
        .args(args)
        .env("CARGO_TARGET_DIR", &target_dir)
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .output()
        .unwrap_or_else(|e| panic!("cannot run cargo to build the {artefact} plugin: {e}"));
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let hint = if stderr.contains("target may not be installed") {
            "the wasm32-wasip2 target is missing: run `rustup target add wasm32-wasip2`\n"
        } else {
            "(if the wasm32-wasip2 target is missing: `rustup target add wasm32-wasip2`)\n"
        };
        panic!("building the {artefact} test plugin failed\n{hint}{stderr}");
    }
    target_dir.join(format!("wasm32-wasip2/release/{artefact}.wasm"))
}
