//! Giving freed memory back to the operating system (glibc's allocator).
//!
//! glibc keeps what the program frees for its own reuse, and by default hardly ever
//! returns it: after a scenario the broker's resident memory stayed near its peak.
//! - `malloc_trim` gives back the whole free pages between live blocks, and the free
//!   memory at the top of the main arena. A thread ([`spawn_trimmer`]) calls it every
//!   [`TRIM_EVERY`] when the allocator holds at least [`TRIM_FREE_MIN`] free.
//! - It does not touch the top of the other arenas (glibc gives each thread that meets
//!   contention an arena of its own). Those shrink only when a free leaves more than the
//!   trim threshold at their top, and glibc raises that threshold after each large free
//!   (to twice the largest freed block, up to 64 MiB). [`configure`] keeps one arena
//!   ([`ARENAS`]) unless the operator set `MALLOC_ARENA_MAX`: the tokio workers share it
//!   (each thread still has its own cache of small blocks), and the trim reaches it all.
//!
//! Lowering the trim threshold instead (128 KiB to 2 MiB) returned the memory as well but
//! cost p2p 64 KiB 20-30% more broker CPU: the arenas' tops shrank and grew again every
//! few messages (page faults per 12,000 messages: 20,000-45,000 by default, 49,000-127,000
//! with those thresholds, 9,000 with one arena).
//!
//! Measured with `mqtt-load` scenarios one after another on one broker (2000 idle
//! clients, a storm, a QoS 0 flood, fan-in, p2p 64 KiB, another flood): resident memory
//! went 9.2 -> 12.9 -> 20.7 -> 19.3 MiB by default, and stayed within 0.6 MiB of its start
//! (10.4 -> 11.0) with one arena and the trim. Idle memory per connection at 2000
//! connections: 1.55-1.59 KiB by default, 1.49-1.51 with one arena.
//!
//! Elsewhere (musl, the static container build; other systems) every function here
//! does nothing: musl's allocator returns freed memory itself.

use std::time::{Duration, Instant};

/// The arenas glibc may make (`M_ARENA_MAX`); see the module docs.
pub const ARENAS: usize = 1;
/// The shortest time between two trims.
pub const TRIM_EVERY: Duration = Duration::from_secs(1);
/// Free memory inside the allocator below which a trim is not worth its walk.
pub const TRIM_FREE_MIN: usize = 1024 * 1024;

/// Limits glibc to [`ARENAS`] arenas (see the module docs) unless `MALLOC_ARENA_MAX`
/// is set. Call once at start, before other threads allocate. Returns false when glibc
/// refused.
pub fn configure() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        if std::env::var_os("MALLOC_ARENA_MAX").is_some() {
            return true; // the operator's choice (glibc reads it itself)
        }
        let arenas = libc::c_int::try_from(ARENAS).unwrap_or(1);
        // SAFETY: mallopt takes two integers and changes the allocator's settings
        // under its own lock.
        unsafe { libc::mallopt(libc::M_ARENA_MAX, arenas) == 1 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        true
    }
}

/// Bytes the allocator holds free (freed by the program, kept for reuse), when known.
pub fn free_bytes() -> Option<usize> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallinfo2 only reads the allocator's statistics, under its locks.
        let info = unsafe { libc::mallinfo2() };
        Some(info.fordblks)
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        None
    }
}

/// Returns the whole free pages the allocator holds to the operating system; true when
/// it gave some back.
pub fn trim() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: malloc_trim walks the allocator's free lists under its locks.
        unsafe { libc::malloc_trim(0) == 1 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

/// True when `free` (what the allocator holds free) is worth a trim's walk.
pub fn worth_trimming(free: Option<usize>) -> bool {
    free.is_some_and(|f| f >= TRIM_FREE_MIN)
}

/// Starts the thread that trims every [`TRIM_EVERY`] when [`worth_trimming`] (see the
/// module docs). Once per process: the heap is the process's. Nothing is started where
/// there is no glibc.
pub fn spawn_trimmer() -> std::io::Result<()> {
    if free_bytes().is_none() {
        return Ok(());
    }
    std::thread::Builder::new()
        .name("cauldron-heap".into())
        .stack_size(256 * 1024)
        .spawn(|| {
            loop {
                std::thread::sleep(TRIM_EVERY);
                // The walk holds the arena's lock, which may hold up an allocation on
                // a worker for a millisecond or two (0.1-2.4 ms at 10,000
                // connections): on this thread, no worker stops to trim.
                if worth_trimming(free_bytes()) {
                    let started = Instant::now();
                    let released = trim();
                    tracing::debug!(
                        released,
                        micros = started.elapsed().as_micros() as u64,
                        "heap trimmed"
                    );
                }
            }
        })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trim_needs_a_mebibyte_free() {
        assert!(!worth_trimming(None), "unknown: no trim");
        assert!(!worth_trimming(Some(TRIM_FREE_MIN - 1)));
        assert!(worth_trimming(Some(TRIM_FREE_MIN)));
    }
}
