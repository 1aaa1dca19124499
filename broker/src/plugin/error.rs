//! `plugin::Error`: why a plugin could not be loaded or why one call into it failed.
//! wasmtime errors are converted here and kept as the `source`.

use std::path::PathBuf;

/// A wasmtime error kept as the source of an [`Error`].
pub type Source = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why loading a plugin, or one call into it, failed. Every variant names the plugin.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The `.wasm` file could not be read.
    #[error("plugin `{plugin}`: cannot read `{}`: {source}", path.display())]
    Load {
        /// The plugin's configured name.
        plugin: String,
        /// The path as resolved.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not a valid WebAssembly component (a core module, garbage, or a
    /// component this engine cannot compile).
    #[error("plugin `{plugin}`: `{}` is not a valid WebAssembly component: {}", path.display(), chain(source.as_ref()))]
    Compile {
        /// The plugin's configured name.
        plugin: String,
        /// The path as resolved.
        path: PathBuf,
        /// wasmtime's error.
        source: Source,
    },
    /// The component's imports or exports do not match the supported interface.
    #[error("plugin `{plugin}` does not match cauldron:plugin@0.4.0: {detail}")]
    Interface {
        /// The plugin's configured name.
        plugin: String,
        /// What does not match, e.g. "imports `cauldron:plugin/host@0.4.0`".
        detail: String,
    },
    /// The component could not be instantiated.
    #[error("plugin `{plugin}`: instantiation failed: {}", chain(source.as_ref()))]
    Instantiate {
        /// The plugin's configured name.
        plugin: String,
        /// wasmtime's error.
        source: Source,
    },
    /// The plugin's `init` returned an error (its own message) or failed.
    #[error("plugin `{plugin}`: init failed: {message}")]
    Init {
        /// The plugin's configured name.
        plugin: String,
        /// The plugin's message, or the failure.
        message: String,
    },
    /// The engine or the artefact cache could not be set up.
    #[error("plugin host: {message}")]
    Engine {
        /// What failed.
        message: String,
    },
    /// A call trapped (panic, `unreachable`, out of bounds) or the host refused it.
    #[error("plugin `{plugin}`: {hook} trapped: {}", chain(source.as_ref()))]
    Trap {
        /// The plugin's configured name.
        plugin: String,
        /// The hook that was called.
        hook: &'static str,
        /// wasmtime's error.
        source: Source,
    },
    /// A call went past its memory cap.
    #[error("plugin `{plugin}`: {hook} exceeded its memory limit of {limit_mib} MiB")]
    MemoryLimit {
        /// The plugin's configured name.
        plugin: String,
        /// The hook that was called.
        hook: &'static str,
        /// The configured cap.
        limit_mib: u32,
    },
    /// A call ran past its deadline.
    #[error("plugin `{plugin}`: {hook} exceeded its deadline of {timeout_ms} ms")]
    Deadline {
        /// The plugin's configured name.
        plugin: String,
        /// The hook that was called.
        hook: &'static str,
        /// The configured deadline.
        timeout_ms: u64,
    },
    /// A call returned an answer that breaks the interface's rules.
    #[error("plugin `{plugin}`: {hook} returned an invalid answer: {reason}")]
    InvalidAnswer {
        /// The plugin's configured name.
        plugin: String,
        /// The hook that was called.
        hook: &'static str,
        /// Which rule the answer breaks.
        reason: String,
    },
}

impl Error {
    /// True for a call that ran out of time.
    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::Deadline { .. })
    }
}

/// Converts a wasmtime error into a boxed source, keeping its context chain.
pub(super) fn source(e: wasmtime::Error) -> Source {
    e.into_boxed_dyn_error()
}

/// An error and its sources as one line: `outer: inner: innermost`.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(inner) = next {
        let text = inner.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        next = inner.source();
    }
    out
}
