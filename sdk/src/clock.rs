//! The broker's wall clock. Plugins read time through the host (WASI clocks work too, but this
//! one is the fake's under `cargo test`, so time-dependent logic is testable).
//!
//! ```
//! use cauldron_sdk::{clock, testing};
//!
//! let before = clock::now_millis();
//! testing::advance_millis(250);
//! assert_eq!(clock::now_millis() - before, 250);
//! ```

/// Milliseconds since the Unix epoch, by the broker's clock.
pub fn now_millis() -> u64 {
    crate::backend::now_millis()
}
