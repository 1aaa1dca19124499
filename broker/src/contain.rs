//! Keeping a bug in one part of the broker from taking down another: a panic in a
//! background job (the sweeper, `$SYS`, the file watcher) or in one connection's code is
//! caught where it happens, logged as an error, counted (`internal_errors`, metric
//! `cauldron_internal_errors_total`), and the rest goes on. Left to unwind, a panic ended
//! the tokio task that hit it: a panicking sweep stopped every later one (keep alives and
//! session expiry were never checked again), and a connection's panic dropped its
//! session without handing it back.
//!
//! The process's panic hook ([`install_hook`]) sends every panic message, caught or
//! not, through `tracing`, so it reaches the same log as the rest.

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};

use crate::stats::Stats;

/// The text of a panic's payload (`panic!` gives a `&str` or a `String`).
pub fn panic_message(panic: &(dyn Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_owned()
    }
}

/// Runs `job`; a panic in it is logged (naming `what`), counted in `internal_errors`
/// and turned into `None`.
///
/// Whatever `job` left half-changed stays so: the broker's locks are taken with
/// `unwrap_or_else(PoisonError::into_inner)`, so a lock poisoned by the panic still
/// works, and each job is written to be run again (a sweep looks at the whole state
/// each time).
pub fn run<T>(stats: &Stats, what: &'static str, job: impl FnOnce() -> T) -> Option<T> {
    match catch_unwind(AssertUnwindSafe(job)) {
        Ok(value) => Some(value),
        Err(panic) => {
            report(stats, what, &panic_message(panic.as_ref()));
            None
        }
    }
}

/// Logs and counts a panic caught elsewhere (a connection's, a blocking job's).
pub fn report(stats: &Stats, what: &'static str, message: &str) {
    Stats::incr(&stats.internal_errors);
    tracing::error!(panic = %message, "{what} panicked; the broker goes on (a bug: please report it)");
}

/// Sends panic messages through `tracing` (at `error`, with the thread, the source
/// location and, with `RUST_BACKTRACE=1`, the backtrace) instead of standard error, so
/// they reach the log the broker writes, in its format. The binary installs it once
/// logging is set up.
pub fn install_hook() {
    std::panic::set_hook(Box::new(|info| {
        let message = panic_message(info.payload());
        let location = info
            .location()
            .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()))
            .unwrap_or_default();
        let thread = std::thread::current();
        let thread = thread.name().unwrap_or("unnamed");
        // With RUST_BACKTRACE=1, as the default hook would print it.
        let backtrace = std::backtrace::Backtrace::capture();
        if backtrace.status() == std::backtrace::BacktraceStatus::Captured {
            tracing::error!(panic = %message, %location, thread, %backtrace, "panic");
        } else {
            tracing::error!(panic = %message, %location, thread, "panic");
        }
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_that_returns_gives_its_value_and_counts_nothing() {
        let stats = Stats::default();
        assert_eq!(run(&stats, "test job", || 7), Some(7));
        assert_eq!(Stats::get(&stats.internal_errors), 0);
    }

    #[test]
    fn a_panicking_job_is_caught_and_counted_and_the_next_runs() {
        let stats = Stats::default();
        let mut runs = 0;
        for i in 0..3 {
            let out = run(&stats, "test job", || {
                runs += 1;
                if i == 1 {
                    panic!("job {i} fails");
                }
                i
            });
            assert_eq!(out, (i != 1).then_some(i));
        }
        assert_eq!(runs, 3, "the runs after the panic still happen");
        assert_eq!(Stats::get(&stats.internal_errors), 1);
    }

    #[test]
    fn panic_messages_are_read_from_str_and_string_payloads() {
        let from_str = catch_unwind(|| panic!("plain")).unwrap_err();
        assert_eq!(panic_message(from_str.as_ref()), "plain");
        let n = 3;
        let from_string = catch_unwind(|| panic!("formatted {n}")).unwrap_err();
        assert_eq!(panic_message(from_string.as_ref()), "formatted 3");
        let other = catch_unwind(|| std::panic::panic_any(5u8)).unwrap_err();
        assert_eq!(panic_message(other.as_ref()), "a panic without a message");
    }
}
