//! The process-wide wasmtime engine, its epoch ticker and linker, and compiling a plugin
//! file into a `Component`, through the precompiled-artefact cache when one is configured.
//!
//! One engine serves every plugin and every reload (hot reload compiles the new set with
//! the same engine). The cache keys artefacts by the SHA-256 of the `.wasm` bytes and
//! the engine's compatibility hash, so a changed plugin or a wasmtime upgrade never
//! loads a stale artefact.

use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine, OptLevel};

use super::Error;
use super::bindings;
use super::error::source;
use super::host::HostState;

/// How often the ticker bumps the epoch: the granularity of deadlines, and how often a
/// running plugin yields to tokio.
pub(super) const EPOCH_TICK: Duration = Duration::from_millis(1);

/// The engine and the linker every plugin is instantiated through.
pub(super) struct Host {
    pub(super) engine: Engine,
    pub(super) linker: Linker<HostState>,
}

static HOST: OnceLock<Result<Host, String>> = OnceLock::new();

/// The shared engine, created (with its ticker thread) on first use.
pub(super) fn host() -> Result<&'static Host, Error> {
    HOST.get_or_init(|| new_host().map_err(|e| format!("{e:#}")))
        .as_ref()
        .map_err(|message| Error::Engine {
            message: message.clone(),
        })
}

fn new_host() -> wasmtime::Result<Host> {
    let mut config = Config::new();
    config
        .wasm_component_model(true)
        .epoch_interruption(true)
        .cranelift_opt_level(OptLevel::Speed);
    let engine = Engine::new(&config)?;
    let linker = bindings::linker(&engine)?;
    start_ticker(&engine)?;
    Ok(Host { engine, linker })
}

/// A thread that bumps the epoch every tick until the engine is dropped.
fn start_ticker(engine: &Engine) -> wasmtime::Result<()> {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("plugin-epoch".to_owned())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })
        .map_err(|e| wasmtime::format_err!("cannot start the epoch ticker: {e}"))?;
    Ok(())
}

/// Reads and compiles the plugin at `path`, using `cache_dir` for precompiled artefacts.
/// Reading and compiling run on tokio's blocking pool.
pub(super) async fn compile(
    host: &'static Host,
    plugin: &str,
    path: &Path,
    cache_dir: Option<&Path>,
) -> Result<Component, Error> {
    let (plugin, path) = (plugin.to_owned(), path.to_owned());
    let cache_dir = cache_dir.map(Path::to_owned);
    let join = tokio::task::spawn_blocking(move || {
        let bytes = std::fs::read(&path).map_err(|e| Error::Load {
            plugin: plugin.clone(),
            path: path.clone(),
            source: e,
        })?;
        compile_blocking(&host.engine, &plugin, &path, &bytes, cache_dir.as_deref())
    });
    join.await.map_err(|e| Error::Engine {
        message: format!("compilation task failed: {e}"),
    })?
}

fn compile_blocking(
    engine: &Engine,
    plugin: &str,
    path: &Path,
    bytes: &[u8],
    cache_dir: Option<&Path>,
) -> Result<Component, Error> {
    let cached = cache_dir.map(|dir| artefact_path(engine, dir, plugin, bytes));
    if let Some(artefact) = cached.as_deref().filter(|p| p.exists()) {
        // SAFETY: `deserialize_file` trusts the file to be an artefact this engine
        // wrote. The cache directory is operator configuration, as trusted as the
        // plugin paths; files in it are written only by `store_artefact` (write to a
        // temporary name, then rename) under a name derived from the SHA-256 of the
        // source bytes and the engine's compatibility hash, so a partial write, a
        // changed plugin or another wasmtime version never matches.
        match unsafe { Component::deserialize_file(engine, artefact) } {
            Ok(component) => {
                tracing::debug!(plugin, artefact = %artefact.display(), "loaded precompiled plugin");
                return Ok(component);
            }
            Err(e) => {
                tracing::warn!(plugin, artefact = %artefact.display(), error = %e, "ignoring unusable precompiled plugin");
            }
        }
    }
    let component = Component::new(engine, bytes).map_err(|e| Error::Compile {
        plugin: plugin.to_owned(),
        path: path.to_owned(),
        source: source(e),
    })?;
    if let Some(artefact) = cached
        && let Err(e) = store_artefact(&component, &artefact)
    {
        tracing::warn!(plugin, artefact = %artefact.display(), error = %e, "cannot write precompiled plugin");
    }
    Ok(component)
}

/// `<dir>/<plugin>-<hash>.cwasm`.
fn artefact_path(engine: &Engine, dir: &Path, plugin: &str, bytes: &[u8]) -> PathBuf {
    let mut hasher = ShaHasher(Sha256::new());
    hasher.0.update(bytes);
    engine.precompile_compatibility_hash().hash(&mut hasher);
    let digest = hasher.0.finalize();
    let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    let safe: String = plugin
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    dir.join(format!("{safe}-{hex}.cwasm"))
}

fn store_artefact(component: &Component, artefact: &Path) -> std::io::Result<()> {
    let bytes = component
        .serialize()
        .map_err(|e| std::io::Error::other(format!("{e:#}")))?;
    if let Some(dir) = artefact.parent() {
        std::fs::create_dir_all(dir)?;
    }
    // Unique per write: two tasks may compile the same plugin at once.
    static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = artefact.with_extension(format!("tmp{}-{n}", std::process::id()));
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(&bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, artefact)
}

/// Feeds `Hash` data into SHA-256.
struct ShaHasher(Sha256);

impl Hasher for ShaHasher {
    fn finish(&self) -> u64 {
        0
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}
