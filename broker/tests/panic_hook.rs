//! The binary's panic hook (`contain::install_hook`) sends a panic's message, source
//! location and thread through `tracing`, so it reaches the broker's log in its format.
//!
//! Its own test binary: the hook and the subscriber are process-wide.
#![allow(clippy::unwrap_used)] // a test: a failed step is a failed test

#[path = "support/captured_log.rs"]
mod captured_log;
use captured_log::Captured;

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

    let text = log.text();
    assert!(text.contains("ERROR"), "{text}");
    assert!(text.contains("panic=a test panic 42"), "{text}");
    assert!(
        text.contains(&format!("panic_hook.rs:{line}")),
        "the location: {text}"
    );
    assert!(text.contains("thread=\"doomed\""), "{text}");
}
