//! Giving freed memory back to the operating system (glibc's allocator).
//!
//! glibc keeps what the program frees for its own reuse, and by default hardly ever
//! returns it: after a scenario the broker's resident memory stayed near its peak.
//! - `malloc_trim` gives back the whole free pages between live blocks, and the free
//!   memory at the top of the main arena. A thread ([`spawn_trimmer`]) looks every
//!   [`TRIM_EVERY`] and calls it when the allocator holds at least [`TRIM_FREE_MIN`]
//!   free, that free memory or the process's resident memory grew by
//!   [`TRIM_GROWTH_MIN`] since the last trim, and the broker is quiet ([`should_trim`]).
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
/// How often the trimmer looks (and so the shortest time between two trims).
pub const TRIM_EVERY: Duration = Duration::from_secs(1);
/// Free memory inside the allocator below which a trim is not worth its walk.
pub const TRIM_FREE_MIN: usize = 1024 * 1024;
/// Growth of the free or the resident memory since the last trim (or the trimmer's
/// start) below which a trim is not worth its walk.
///
/// The amount free alone does not tell: glibc still counts the pages a trim gave back as
/// free, so after any load the broker held more than [`TRIM_FREE_MIN`] free for good
/// and was trimmed every quiet second, for ever: at 500 messages a second, 42 trims in
/// a minute, each holding the allocator's lock for 20-60 us (up to 2.8 ms with 10,000
/// connections) to give back a few pages the next messages faulted in again. Memory
/// freed after a trim shows as more free; pages of the free memory used and freed again
/// show as more resident.
pub const TRIM_GROWTH_MIN: usize = 1024 * 1024;

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

/// The process is busy when it used more CPU than this share of one core since the last
/// look: the trimmer then waits (see [`should_trim`]).
pub const BUSY_CPU_SHARE: f64 = 0.25;
/// The longest a busy process goes without a trim.
pub const TRIM_AT_LEAST_EVERY: Duration = Duration::from_secs(30);

/// What the trimmer saw since its last look.
#[derive(Debug, Clone, Copy)]
pub struct Look {
    /// What the allocator holds free (freed by the program, kept for reuse) and the
    /// process's resident memory, now.
    pub now: Held,
    /// CPU time the process used since the last look (all threads).
    pub cpu: Duration,
    /// Wall time since the last look.
    pub elapsed: Duration,
    /// Wall time since the last trim.
    pub since_trim: Duration,
    /// What was free and resident right after the last trim (or at the trimmer's start).
    pub after_trim: Held,
}

/// The allocator's free memory and the process's resident memory at one moment, each
/// when known.
#[derive(Debug, Clone, Copy, Default)]
pub struct Held {
    /// What the allocator held free.
    pub free: Option<usize>,
    /// The process's resident memory.
    pub resident: Option<usize>,
}

impl Held {
    fn now() -> Held {
        Held {
            free: free_bytes(),
            resident: resident_bytes(),
        }
    }
}

/// Whether to trim now: at least [`TRIM_FREE_MIN`] free, the free or the resident
/// memory grown by [`TRIM_GROWTH_MIN`] since the last trim (when neither can be compared,
/// it counts as grown), and the process quiet (below [`BUSY_CPU_SHARE`] of a core) or not
/// trimmed for [`TRIM_AT_LEAST_EVERY`].
///
/// A trim holds the arena's lock for 0.1-2.8 ms (10,000 connections), and while the
/// broker is busy the pages it gives back are faulted in again at once, so it waits for a
/// quiet second: after a scenario that comes within a second or two. (Trimming every
/// second regardless showed larger maximum latencies in p2p 64 KiB at full speed, 17-30
/// against 14-22 ms in three rounds, within that row's spread.)
pub fn should_trim(look: Look) -> bool {
    if look.now.free.is_none_or(|f| f < TRIM_FREE_MIN) {
        return false;
    }
    let grew = |now: Option<usize>, then: Option<usize>| {
        now.zip(then)
            .map(|(now, then)| now >= then.saturating_add(TRIM_GROWTH_MIN))
    };
    match (
        grew(look.now.free, look.after_trim.free),
        grew(look.now.resident, look.after_trim.resident),
    ) {
        (None, None) | (Some(true), _) | (_, Some(true)) => {}
        _ => return false,
    }
    let busy = look.cpu.as_secs_f64() > look.elapsed.as_secs_f64() * BUSY_CPU_SHARE;
    !busy || look.since_trim >= TRIM_AT_LEAST_EVERY
}

/// CPU time (user and system) the process used so far, when known.
fn cpu_time() -> Option<Duration> {
    #[cfg(unix)]
    {
        let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
        // SAFETY: getrusage fills the struct it is given; it is read only on success.
        if unsafe { libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) } != 0 {
            return None;
        }
        // SAFETY: initialised by the successful call above.
        let usage = unsafe { usage.assume_init() };
        let tv = |t: libc::timeval| {
            Duration::from_secs(u64::try_from(t.tv_sec).unwrap_or(0))
                + Duration::from_micros(u64::try_from(t.tv_usec).unwrap_or(0))
        };
        Some(tv(usage.ru_utime) + tv(usage.ru_stime))
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// The process's resident memory in bytes (`/proc/self/statm`), when known.
fn resident_bytes() -> Option<usize> {
    #[cfg(target_os = "linux")]
    {
        let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
        let pages: usize = statm.split_whitespace().nth(1)?.parse().ok()?;
        // SAFETY: sysconf only reads a system setting.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        pages.checked_mul(usize::try_from(page).ok()?)
    }
    #[cfg(not(target_os = "linux"))]
    {
        None
    }
}

/// Starts the thread that trims when [`should_trim`] says so, looking every
/// [`TRIM_EVERY`] (see the module docs). Once per process: the heap is the process's.
/// Nothing is started where there is no glibc.
pub fn spawn_trimmer() -> std::io::Result<()> {
    if free_bytes().is_none() {
        return Ok(());
    }
    std::thread::Builder::new()
        .name("cauldron-heap".into())
        .stack_size(256 * 1024)
        .spawn(|| {
            let mut last_look = Instant::now();
            let mut last_trim = last_look;
            let mut last_cpu = cpu_time().unwrap_or_default();
            let mut after_trim = Held::now();
            loop {
                std::thread::sleep(TRIM_EVERY);
                let now = Instant::now();
                let cpu = cpu_time().unwrap_or_default();
                let look = Look {
                    now: Held::now(),
                    cpu: cpu.saturating_sub(last_cpu),
                    elapsed: now.duration_since(last_look),
                    since_trim: now.duration_since(last_trim),
                    after_trim,
                };
                last_look = now;
                last_cpu = cpu;
                // On this thread, no worker stops to trim.
                if should_trim(look) {
                    let released = trim();
                    last_trim = Instant::now();
                    after_trim = Held::now();
                    tracing::debug!(
                        released,
                        free = look.now.free,
                        resident_before = look.now.resident,
                        resident_after = after_trim.resident,
                        micros = last_trim.duration_since(now).as_micros() as u64,
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

    fn look(free: usize, cpu_ms: u64, since_trim_secs: u64) -> Look {
        Look {
            now: Held {
                free: Some(free),
                resident: None,
            },
            cpu: Duration::from_millis(cpu_ms),
            elapsed: Duration::from_secs(1),
            since_trim: Duration::from_secs(since_trim_secs),
            after_trim: Held::default(),
        }
    }

    #[test]
    fn a_trim_needs_a_mebibyte_free() {
        assert!(!should_trim(Look {
            now: Held::default(),
            ..look(0, 0, 60)
        }));
        assert!(!should_trim(look(TRIM_FREE_MIN - 1, 0, 60)));
        assert!(should_trim(look(TRIM_FREE_MIN, 0, 1)));
    }

    #[test]
    fn a_busy_process_is_trimmed_only_after_a_long_while() {
        assert!(
            should_trim(look(TRIM_FREE_MIN, 250, 1)),
            "a quarter core: quiet"
        );
        assert!(!should_trim(look(TRIM_FREE_MIN, 251, 1)), "busy");
        assert!(!should_trim(look(TRIM_FREE_MIN, 2000, 29)), "busy");
        assert!(
            should_trim(look(TRIM_FREE_MIN, 2000, 30)),
            "30 s without a trim"
        );
    }

    const MIB: usize = 1024 * 1024;

    /// 4 MiB free and quiet; `free` and `resident` in MiB, now and after the last trim.
    fn since(free: (usize, usize), resident: (usize, usize)) -> Look {
        Look {
            now: Held {
                free: Some(free.0 * MIB),
                resident: Some(resident.0 * MIB),
            },
            after_trim: Held {
                free: Some(free.1 * MIB),
                resident: Some(resident.1 * MIB),
            },
            ..look(4 * MIB, 0, 60)
        }
    }

    #[test]
    fn a_trim_needs_more_free_or_more_resident_than_after_the_last() {
        assert!(
            !should_trim(since((4, 4), (10, 10))),
            "the pages a trim gave back still count as free: no trim again"
        );
        assert!(should_trim(since((5, 4), (10, 10))), "1 MiB more freed");
        assert!(
            should_trim(since((4, 4), (11, 10))),
            "1 MiB faulted in again"
        );
        assert!(should_trim(since((2, 4), (30, 10))), "grown, less free");
        assert!(!should_trim(since((3, 4), (9, 10))), "shrunk");
        let mut short = since((4, 4), (11, 10));
        short.now.resident = short.now.resident.map(|r| r - 1);
        assert!(!should_trim(short), "a byte short");
    }

    #[test]
    fn what_cannot_be_compared_counts_as_grown() {
        let mut unknown = since((4, 4), (10, 10));
        unknown.now.resident = None;
        unknown.after_trim.free = None;
        assert!(should_trim(unknown), "nothing to compare");
        let mut free_only = since((4, 4), (10, 10));
        free_only.now.resident = None;
        assert!(!should_trim(free_only), "the free memory did not grow");
    }

    #[test]
    fn the_resident_memory_is_read_and_grows_with_touched_pages() {
        let before = resident_bytes().expect("/proc/self/statm");
        // 64 MiB, every page written: resident for as long as it lives.
        let block = vec![1u8; 64 * 1024 * 1024];
        let after = resident_bytes().expect("/proc/self/statm");
        assert!(
            std::hint::black_box(&block)
                .iter()
                .step_by(4096)
                .all(|b| *b == 1)
        );
        // Other tests' threads may free memory meanwhile, but not 32 MiB of it.
        assert!(after >= before + 32 * 1024 * 1024, "{before} -> {after}");
    }

    #[test]
    fn the_process_cpu_time_is_read_and_grows() {
        // Spins until the CPU time shows 20 ms more, not for a wall-clock time: on a
        // loaded machine the thread may wait for a core, and the test is not about
        // that. It fails if the reading never grows.
        let before = cpu_time().expect("getrusage");
        let give_up = Instant::now() + Duration::from_secs(10);
        let mut x = 0u64;
        let mut now = before;
        while now < before + Duration::from_millis(20) && Instant::now() < give_up {
            for _ in 0..10_000 {
                x = std::hint::black_box(x.wrapping_add(1));
            }
            now = cpu_time().expect("getrusage");
        }
        assert!(
            now >= before + Duration::from_millis(20),
            "{before:?} -> {now:?}"
        );
    }
}
