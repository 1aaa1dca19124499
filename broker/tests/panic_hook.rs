//! The binary's panic hook (`contain::install_hook`) sends a panic's message, source
//! location and thread through `tracing`, so it reaches the broker's log in its format.
//!
//! Its own test binary: the hook and the subscriber are process-wide.
#![allow(clippy::unwrap_used)] // a test: a failed step is a failed test

use std::io::Write;
use std::sync::{Arc, Mutex};

/// A log written into memory.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_panic_is_logged_through_tracing_with_its_location_and_thread() {
    let log = Captured::default();
    let writer = log.clone();
    tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .init();
    cauldron::contain::install_hook();

    let line = line!() + 4;
    let joined = std::thread::Builder::new()
        .name("doomed".to_owned())
        .spawn(|| {
            panic!("a test panic {}", 42);
        })
        .unwrap()
        .join();
    assert!(joined.is_err(), "the thread panicked");

    let text = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
    assert!(text.contains("ERROR"), "{text}");
    assert!(text.contains("panic=a test panic 42"), "{text}");
    assert!(
        text.contains(&format!("panic_hook.rs:{line}")),
        "the location: {text}"
    );
    assert!(text.contains("thread=\"doomed\""), "{text}");
}
