//! Per plugin and hook counters: calls, decisions, failures, timeouts and a latency
//! histogram. Lock-free (relaxed atomics); [`PluginStats`] is the snapshot callers read.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use super::Hook;

/// Upper bounds of the latency buckets in microseconds; the last bucket is open.
pub const LATENCY_BUCKETS_US: [u64; 16] = [
    1, 2, 5, 10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000,
];

/// A snapshot of one plugin's counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginStats {
    /// The plugin's configured name.
    pub plugin: String,
    /// True once `max_consecutive_failures` was reached; the plugin is no longer called.
    pub failed: bool,
    /// Keys in the plugin's key-value store.
    pub kv_keys: usize,
    /// One entry per hook the plugin declared, in [`Hook::ALL`] order.
    pub hooks: Vec<HookStats>,
}

/// Counters of one hook of one plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookStats {
    /// The hook.
    pub hook: Hook,
    /// Calls into the plugin (failed ones included).
    pub calls: u64,
    /// Connect/subscribe answers: allow.
    pub allow: u64,
    /// Connect/subscribe answers: deny.
    pub deny: u64,
    /// Connect/subscribe answers: no opinion.
    pub no_opinion: u64,
    /// Publish answers: continue unchanged.
    pub continued: u64,
    /// Publish answers: replace.
    pub replaced: u64,
    /// Publish answers: drop.
    pub dropped: u64,
    /// Failed calls: traps, deadlines, memory cap, invalid answers.
    pub failures: u64,
    /// Failed calls that ran out of time (also counted in `failures`).
    pub timeouts: u64,
    /// Invalid answers (also counted in `failures`).
    pub invalid_answers: u64,
    /// Calls not made because the plugin is marked failed; the policy answered.
    pub skipped_failed: u64,
    /// Sum of call latencies in nanoseconds.
    pub latency_sum_ns: u64,
    /// Call counts per latency bucket ([`LATENCY_BUCKETS_US`] plus one open bucket).
    pub latency_buckets: Vec<u64>,
}

impl HookStats {
    /// The upper bound (µs) of the bucket holding the `q` quantile (0.0..=1.0) of call
    /// latencies; `None` without calls, `u64::MAX` for the open bucket.
    pub fn latency_quantile_us(&self, q: f64) -> Option<u64> {
        let total: u64 = self.latency_buckets.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = ((total as f64) * q.clamp(0.0, 1.0)).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, count) in self.latency_buckets.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return Some(LATENCY_BUCKETS_US.get(i).copied().unwrap_or(u64::MAX));
            }
        }
        Some(u64::MAX)
    }
}

/// What one call decided, for counting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Decision {
    Allow,
    Deny,
    NoOpinion,
    Continue,
    Replace,
    Drop,
    /// `on-disconnect` returns nothing.
    Notified,
}

/// How a call failed, for counting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FailureKind {
    Timeout,
    InvalidAnswer,
    Other,
}

#[derive(Debug, Default)]
struct HookCounters {
    calls: AtomicU64,
    allow: AtomicU64,
    deny: AtomicU64,
    no_opinion: AtomicU64,
    continued: AtomicU64,
    replaced: AtomicU64,
    dropped: AtomicU64,
    failures: AtomicU64,
    timeouts: AtomicU64,
    invalid_answers: AtomicU64,
    skipped_failed: AtomicU64,
    latency_sum_ns: AtomicU64,
    latency_buckets: [AtomicU64; LATENCY_BUCKETS_US.len() + 1],
}

/// The live counters of one plugin.
#[derive(Debug, Default)]
pub(super) struct Counters {
    hooks: [HookCounters; 4],
    failed: AtomicBool,
}

fn add(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl Counters {
    fn hook(&self, hook: Hook) -> &HookCounters {
        &self.hooks[hook as usize]
    }

    /// Counts one call that completed (answered or failed) after `elapsed`.
    pub(super) fn record_call(&self, hook: Hook, elapsed: Duration) {
        let c = self.hook(hook);
        add(&c.calls);
        let ns = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        c.latency_sum_ns.fetch_add(ns, Ordering::Relaxed);
        let us = ns / 1_000;
        let bucket = LATENCY_BUCKETS_US
            .iter()
            .position(|bound| us < *bound)
            .unwrap_or(LATENCY_BUCKETS_US.len());
        add(&c.latency_buckets[bucket]);
    }

    pub(super) fn record_decision(&self, hook: Hook, decision: Decision) {
        let c = self.hook(hook);
        match decision {
            Decision::Allow => add(&c.allow),
            Decision::Deny => add(&c.deny),
            Decision::NoOpinion => add(&c.no_opinion),
            Decision::Continue => add(&c.continued),
            Decision::Replace => add(&c.replaced),
            Decision::Drop => add(&c.dropped),
            Decision::Notified => {}
        }
    }

    pub(super) fn record_failure(&self, hook: Hook, kind: FailureKind) {
        let c = self.hook(hook);
        add(&c.failures);
        match kind {
            FailureKind::Timeout => add(&c.timeouts),
            FailureKind::InvalidAnswer => add(&c.invalid_answers),
            FailureKind::Other => {}
        }
    }

    pub(super) fn record_skipped(&self, hook: Hook) {
        add(&self.hook(hook).skipped_failed);
    }

    /// Marks the plugin failed; true the first time.
    pub(super) fn mark_failed(&self) -> bool {
        !self.failed.swap(true, Ordering::Relaxed)
    }

    pub(super) fn is_failed(&self) -> bool {
        self.failed.load(Ordering::Relaxed)
    }

    pub(super) fn snapshot(&self, plugin: &str, declared: impl Fn(Hook) -> bool) -> PluginStats {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let hooks = Hook::ALL
            .into_iter()
            .filter(|h| declared(*h))
            .map(|hook| {
                let c = self.hook(hook);
                HookStats {
                    hook,
                    calls: load(&c.calls),
                    allow: load(&c.allow),
                    deny: load(&c.deny),
                    no_opinion: load(&c.no_opinion),
                    continued: load(&c.continued),
                    replaced: load(&c.replaced),
                    dropped: load(&c.dropped),
                    failures: load(&c.failures),
                    timeouts: load(&c.timeouts),
                    invalid_answers: load(&c.invalid_answers),
                    skipped_failed: load(&c.skipped_failed),
                    latency_sum_ns: load(&c.latency_sum_ns),
                    latency_buckets: c.latency_buckets.iter().map(load).collect(),
                }
            })
            .collect();
        PluginStats {
            plugin: plugin.to_owned(),
            failed: self.is_failed(),
            kv_keys: 0,
            hooks,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_quantiles_come_from_bucket_bounds() {
        let counters = Counters::default();
        for _ in 0..98 {
            counters.record_call(Hook::Publish, Duration::from_nanos(1_500));
        }
        counters.record_call(Hook::Publish, Duration::from_micros(300));
        counters.record_call(Hook::Publish, Duration::from_secs(1));
        let stats = counters.snapshot("p", |h| h == Hook::Publish);
        let publish = &stats.hooks[0];
        assert_eq!(publish.calls, 100);
        assert_eq!(publish.latency_quantile_us(0.5), Some(2));
        assert_eq!(publish.latency_quantile_us(0.99), Some(500));
        assert_eq!(publish.latency_quantile_us(1.0), Some(u64::MAX));
        assert_eq!(stats.hooks.len(), 1, "only declared hooks are listed");
    }

    #[test]
    fn mark_failed_reports_the_first_time_only() {
        let counters = Counters::default();
        assert!(counters.mark_failed());
        assert!(!counters.mark_failed());
        assert!(counters.is_failed());
    }
}
