//! A log-linear latency histogram in nanoseconds: exact below 128 ns, then 64 buckets
//! per power of two (at most 1/64 relative error), fixed memory whatever the count.
//! Percentiles use the nearest-rank method; the maximum is kept exactly. Knows nothing
//! about MQTT or sockets.

/// Values below this are counted exactly, one bucket each.
const LINEAR: u64 = 128;
/// Buckets per power of two above [`LINEAR`].
const SUB: u64 = 64;
/// Enough buckets for any u64: 128 exact + 57 octaves (2^7 .. 2^63) of 64.
const BUCKETS: usize = (LINEAR + 57 * SUB) as usize;

/// Counts of values by bucket.
#[derive(Debug, Clone)]
pub struct Histogram {
    counts: Vec<u64>,
    count: u64,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: vec![0; BUCKETS],
            count: 0,
            max: 0,
        }
    }
}

fn index(v: u64) -> usize {
    if v < LINEAR {
        return v as usize;
    }
    let octave = 63 - u64::from(v.leading_zeros()); // >= 7
    let shift = octave - 6;
    let mantissa = v >> shift; // 64..=127
    (LINEAR + (octave - 7) * SUB + (mantissa - SUB)) as usize
}

/// The smallest value that falls into bucket `i`.
fn lower_bound(i: usize) -> u64 {
    let i = i as u64;
    if i < LINEAR {
        return i;
    }
    let octave = (i - LINEAR) / SUB + 7;
    let mantissa = (i - LINEAR) % SUB + SUB;
    mantissa << (octave - 6)
}

impl Histogram {
    /// Records one value.
    pub fn record(&mut self, v: u64) {
        if let Some(c) = self.counts.get_mut(index(v)) {
            *c += 1;
        }
        self.count += 1;
        self.max = self.max.max(v);
    }

    /// Adds every value of `other`.
    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.count += other.count;
        self.max = self.max.max(other.max);
    }

    /// Number of values recorded.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The largest value recorded (exact), 0 when empty.
    pub fn max(&self) -> u64 {
        self.max
    }

    /// The nearest-rank percentile `p` (0 < p <= 100): the lower bound of the bucket
    /// holding the value of rank ceil(p/100 * count), capped by the exact maximum.
    /// 0 when empty.
    pub fn percentile(&self, p: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let rank = ((p / 100.0) * self.count as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return lower_bound(i).min(self.max);
            }
        }
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_one_to_a_hundred_are_exact() {
        let mut h = Histogram::default();
        for v in (1..=100).rev() {
            h.record(v);
        }
        assert_eq!(h.count(), 100);
        assert_eq!(h.percentile(50.0), 50);
        assert_eq!(h.percentile(99.0), 99);
        assert_eq!(h.percentile(100.0), 100);
        assert_eq!(h.percentile(0.1), 1, "the smallest rank is 1");
        assert_eq!(h.max(), 100);
    }

    #[test]
    fn large_values_stay_within_one_part_in_sixty_four() {
        let mut h = Histogram::default();
        // 1 ms .. 1000 ms in steps of 1 ms: p50 = 500 ms, p99 = 990 ms.
        for ms in 1..=1000u64 {
            h.record(ms * 1_000_000);
        }
        for (p, want) in [(50.0, 500_000_000u64), (99.0, 990_000_000)] {
            let got = h.percentile(p);
            assert!(got <= want, "p{p}: {got} is a lower bound of {want}");
            assert!(want - got <= want / 64, "p{p}: {got} too far from {want}");
        }
        assert_eq!(h.max(), 1_000_000_000, "the maximum is exact");
    }

    #[test]
    fn every_bucket_lower_bound_maps_back_to_its_bucket() {
        for i in 0..BUCKETS {
            assert_eq!(index(lower_bound(i)), i, "bucket {i}");
        }
        assert_eq!(index(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn merge_adds_counts_and_keeps_the_larger_maximum() {
        let (mut a, mut b) = (Histogram::default(), Histogram::default());
        for v in 1..=10 {
            a.record(v);
        }
        for v in 11..=20 {
            b.record(v);
        }
        b.record(5_000);
        a.merge(&b);
        assert_eq!(a.count(), 21);
        assert_eq!(a.max(), 5_000);
        assert_eq!(a.percentile(50.0), 11);
    }

    #[test]
    fn empty_histogram_reports_zeroes() {
        let h = Histogram::default();
        assert_eq!((h.count(), h.percentile(50.0), h.max()), (0, 0, 0));
    }
}
