//! Where host calls go: the broker's `host` imports on wasm32, an in-memory fake elsewhere.
//!
//! Both backends offer the same crate-private functions, so `log`, `kv`, `clock` and `publish`
//! are written once. Nothing outside this module knows which backend is in use.

#[cfg(not(target_arch = "wasm32"))]
pub(crate) mod native;
#[cfg(target_arch = "wasm32")]
mod wasm;

#[cfg(not(target_arch = "wasm32"))]
pub(crate) use native::{
    current_client, kv_delete, kv_get, kv_incr, kv_set, log, now_millis, publish,
};
#[cfg(target_arch = "wasm32")]
pub(crate) use wasm::{
    current_client, kv_delete, kv_get, kv_incr, kv_set, log, now_millis, publish,
};
