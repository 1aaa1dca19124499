//! A `tracing` writer that collects everything into a shared buffer, for tests that
//! check what was logged. Shared by path between the library's unit tests and the test
//! binaries under `broker/tests/`.

use std::io::Write;
use std::sync::{Arc, Mutex, PoisonError};

/// Pass a clone to `tracing_subscriber::fmt().with_writer(move || c.clone())`.
#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    /// Everything written so far.
    pub fn text(&self) -> String {
        let bytes = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
