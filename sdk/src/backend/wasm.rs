//! The real backend: one-line adapters from SDK types to the generated `host` imports.

use crate::bindings::cauldron::plugin::host;
use crate::bindings::cauldron::plugin::types as wit;
use crate::client::Client;
use crate::convert;
use crate::log::Level;
use crate::message::Message;

pub(crate) fn log(level: Level, message: &str, fields: Vec<(String, String)>) {
    let fields: Vec<wit::Pair> = fields.into_iter().map(convert::pair_to_wit).collect();
    host::log(convert::level_to_wit(level), message, &fields);
}

pub(crate) fn current_client() -> Option<Client> {
    host::current_client().map(convert::client_from_wit)
}

pub(crate) fn now_millis() -> u64 {
    host::now_millis()
}

pub(crate) fn kv_get(key: &str) -> Option<Vec<u8>> {
    host::kv_get(key)
}

pub(crate) fn kv_set(key: &str, value: &[u8], ttl_ms: Option<u64>) {
    host::kv_set(key, value, ttl_ms);
}

pub(crate) fn kv_incr(key: &str, delta: i64, ttl_ms: Option<u64>) -> i64 {
    host::kv_incr(key, delta, ttl_ms)
}

pub(crate) fn kv_delete(key: &str) {
    host::kv_delete(key);
}

pub(crate) fn publish(message: Message) -> Result<(), String> {
    host::publish(&convert::message_to_wit(message))
}
