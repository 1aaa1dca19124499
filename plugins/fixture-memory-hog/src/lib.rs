//! Test fixture: allocates until it dies in `on-publish`, so the broker's per-store memory cap
//! must stop it (the failed allocation traps) while the broker stays healthy.
//!
//! It hogs only on publishes whose topic starts with `publish_prefix` (default `hog/`; empty:
//! every publish), in chunks of `chunk_bytes` (default 1 MiB), each written to so that no page
//! stays untouched. Other publishes continue.

use cauldron_sdk::prelude::*;

/// The plugin, configured.
#[derive(Debug)]
pub struct MemoryHog {
    publish_prefix: String,
    chunk_bytes: usize,
}

impl Default for MemoryHog {
    fn default() -> Self {
        MemoryHog {
            publish_prefix: "hog/".to_owned(),
            chunk_bytes: 1 << 20,
        }
    }
}

impl Plugin for MemoryHog {
    const HOOKS: Hooks = Hooks::PUBLISH;

    fn init(&mut self, config: &Config) -> Result<(), String> {
        if let Some(p) = config.get_str("publish_prefix")? {
            self.publish_prefix = p.to_owned();
        }
        if let Some(n) = config.get_u64("chunk_bytes")? {
            self.chunk_bytes = usize::try_from(n)
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("chunk_bytes {n} must be between 1 and usize::MAX"))?;
        }
        Ok(())
    }

    fn on_publish(&self, _client: &Client, message: &Message) -> Verdict {
        if message.topic().starts_with(&self.publish_prefix) {
            hog_forever(self.chunk_bytes);
        }
        Verdict::Continue
    }
}

/// Allocates and fills chunks until the allocator fails, which aborts (a trap in wasm).
fn hog_forever(chunk_bytes: usize) -> ! {
    let mut chunks: Vec<Vec<u8>> = Vec::new();
    loop {
        let chunk = vec![0xA5u8; chunk_bytes];
        chunks.push(std::hint::black_box(chunk));
        std::hint::black_box(&chunks);
    }
}

cauldron_sdk::export_plugin!(MemoryHog);

#[cfg(test)]
mod tests {
    use super::*;
    use cauldron_sdk::testing;

    #[test]
    fn other_topics_continue() {
        let p: MemoryHog = testing::instantiate("{}").unwrap();
        let v = p.on_publish(&Client::new("c"), &Message::new("normal/x", "1"));
        assert_eq!(v, Verdict::Continue);
    }

    #[test]
    fn config_sets_prefix_and_rejects_zero_chunks() {
        let p: MemoryHog =
            testing::instantiate(r#"{"publish_prefix": "eat/", "chunk_bytes": 4096}"#).unwrap();
        assert_eq!((p.publish_prefix.as_str(), p.chunk_bytes), ("eat/", 4096));
        let e = testing::instantiate::<MemoryHog>(r#"{"chunk_bytes": 0}"#).unwrap_err();
        assert!(e.contains("chunk_bytes 0"), "{e}");
    }
}
