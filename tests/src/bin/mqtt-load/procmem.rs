//! The resident set size of another process (the broker under test), read from
//! `/proc/PID/status` (`VmRSS`), and a sampler that keeps the peak while a scenario runs.
//! Linux only; elsewhere every reading is `None`. Knows nothing about MQTT.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::task::JoinHandle;

/// How often the sampler reads the broker's RSS.
const SAMPLE_EVERY: Duration = Duration::from_millis(100);

/// The `VmRSS` line of a `/proc/PID/status` text, in KiB.
pub fn parse_vm_rss_kib(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let mut words = line.split_whitespace().skip(1);
    let n: u64 = words.next()?.parse().ok()?;
    match words.next() {
        Some("kB") | None => Some(n),
        _ => None,
    }
}

/// The current RSS of process `pid` in KiB, `None` if it cannot be read.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_vm_rss_kib(&status)
}

/// Samples a process's RSS in the background and remembers the largest value.
pub struct PeakSampler {
    peak: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl PeakSampler {
    /// Starts sampling `pid` every 100 ms.
    pub fn start(pid: u32) -> PeakSampler {
        let peak = Arc::new(AtomicU64::new(rss_kib(pid).unwrap_or(0)));
        let shared = Arc::clone(&peak);
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(SAMPLE_EVERY);
            loop {
                tick.tick().await;
                if let Some(kib) = rss_kib(pid) {
                    shared.fetch_max(kib, Ordering::Relaxed);
                }
            }
        });
        PeakSampler { peak, task }
    }

    /// Stops sampling and returns the peak in KiB (0 if nothing could be read).
    pub fn stop(self) -> u64 {
        self.task.abort();
        self.peak.load(Ordering::Relaxed)
    }
}

/// Broker RSS around a scenario, in KiB.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RssReport {
    /// Before the scenario's traffic started (clients connected).
    pub before: u64,
    /// The largest sample while traffic ran.
    pub peak: u64,
    /// After the clients left and a settle time passed.
    pub after: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_vm_rss_from_a_status_text() {
        let status = "Name:\tmosquitto\nVmPeak:\t   20000 kB\nVmRSS:\t    7412 kB\nThreads:\t1\n";
        assert_eq!(parse_vm_rss_kib(status), Some(7412));
    }

    #[test]
    fn missing_or_odd_vm_rss_is_none() {
        assert_eq!(parse_vm_rss_kib("Name:\tkthreadd\n"), None);
        assert_eq!(parse_vm_rss_kib("VmRSS:\t12 MB\n"), None);
        assert_eq!(parse_vm_rss_kib("VmRSS:\tlots kB\n"), None);
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn reads_this_process_and_keeps_the_peak() {
        let me = std::process::id();
        let now = rss_kib(me).unwrap();
        assert!(now > 0);
        let sampler = PeakSampler::start(me);
        let ballast = vec![1u8; 32 << 20];
        tokio::time::sleep(Duration::from_millis(350)).await;
        let peak = sampler.stop();
        assert!(ballast.iter().all(|&b| b == 1));
        assert!(peak >= now + 16 * 1024, "peak {peak} KiB, before {now} KiB");
    }
}
