//! Freed memory goes back to the operating system (`heap.rs`).
//!
//! Its own test binary without the test harness: the arena limit must be set before any
//! other thread allocates, and the resident size it reads would move with other tests.
#![allow(clippy::unwrap_used)]

/// Resident memory of this process in KiB.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn rss_kib() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Memory freed between live blocks: glibc's own trimming (the top of a heap) never
/// returns it.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn holes_between_live_blocks_are_returned() {
    // 32 MiB in 64 KiB blocks, every other one freed.
    let mut blocks: Vec<Vec<u8>> = (0..512).map(|i| vec![i as u8 | 1; 64 << 10]).collect();
    let free_before = cauldron::heap::free_bytes().unwrap();
    for b in blocks.iter_mut().step_by(2) {
        *b = Vec::new();
    }
    let free_after = cauldron::heap::free_bytes().unwrap();
    assert!(
        free_after >= free_before + (15 << 20),
        "16 MiB freed; free bytes {free_before} -> {free_after}"
    );
    let rss_before = rss_kib();
    assert!(cauldron::heap::trim(), "the trim released nothing");
    let rss_after = rss_kib();
    assert!(
        rss_after + 12 * 1024 <= rss_before,
        "16 MiB of holes; resident {rss_before} -> {rss_after} KiB"
    );
    for (i, b) in blocks.iter().enumerate().skip(1).step_by(2) {
        assert!(b.iter().all(|&x| x == i as u8 | 1), "a live block changed");
    }
}

/// Memory another thread (a tokio worker) freed at the top of the heap it allocated
/// from, below glibc's trim threshold: with an arena per thread no trim reached it.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn what_another_thread_freed_is_returned() {
    // Freeing a 4 MiB block (mapped on its own) raises glibc's thresholds: its trim
    // threshold to 8 MiB, so the 6 MiB below stay at the top after they are freed.
    drop(std::hint::black_box(vec![1u8; 4 << 20]));
    std::thread::spawn(|| {
        let blocks: Vec<Vec<u8>> = (0..96).map(|i| vec![i as u8 | 1; 64 << 10]).collect();
        drop(std::hint::black_box(blocks));
    })
    .join()
    .unwrap();
    let rss_before = rss_kib();
    cauldron::heap::trim();
    let rss_after = rss_kib();
    assert!(
        rss_after + 4 * 1024 <= rss_before,
        "6 MiB freed by a thread; resident {rss_before} -> {rss_after} KiB"
    );
}

fn main() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        assert!(cauldron::heap::configure(), "glibc refused the arena limit");
        holes_between_live_blocks_are_returned();
        println!("test holes_between_live_blocks_are_returned ... ok");
        what_another_thread_freed_is_returned();
        println!("test what_another_thread_freed_is_returned ... ok");
    }
}
