//! The result of one run ([`Outcome`]): printed as a small table and appended as one JSON
//! line. Knows nothing about sockets; the field names here are what `compare` reads.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use serde_json::{Value, json};

use crate::args::Args;
use crate::latency::Histogram;
use crate::procmem::RssReport;

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LatencySummary {
    /// Samples.
    pub count: u64,
    /// Median.
    pub p50_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// Maximum.
    pub max_us: f64,
}

impl LatencySummary {
    /// Summarises a histogram of nanoseconds; `None` when it is empty.
    pub fn of(h: &Histogram) -> Option<LatencySummary> {
        (h.count() > 0).then(|| LatencySummary {
            count: h.count(),
            p50_us: h.percentile(50.0) as f64 / 1e3,
            p99_us: h.percentile(99.0) as f64 / 1e3,
            max_us: h.max() as f64 / 1e3,
        })
    }
}

/// Everything one run measured.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// Case label (what `compare` groups by).
    pub name: String,
    /// Scenario name.
    pub scenario: String,
    /// Broker label.
    pub broker: String,
    /// QoS.
    pub qos: u8,
    /// Payload bytes.
    pub payload: usize,
    /// Publishers.
    pub publishers: usize,
    /// Subscribers.
    pub subscribers: usize,
    /// Clean Session of the subscribers.
    pub clean_session: bool,
    /// Whether CONNECT carried a username.
    pub auth: bool,
    /// Messages published (storm, idle: connections attempted).
    pub sent: u64,
    /// Deliveries expected from what was published (storm, idle: connections attempted).
    pub expected: u64,
    /// Deliveries counted (storm, idle: connections accepted).
    pub delivered: u64,
    /// Deliveries that were duplicates or out of order per publisher.
    pub out_of_order: u64,
    /// Seconds the publishers took (storm, idle: seconds to connect them all).
    pub publish_secs: f64,
    /// Seconds from the first publish to the last delivery.
    pub elapsed_secs: f64,
    /// Deliveries per second (storm: connections per second).
    pub rate: f64,
    /// End-to-end latency (storm, idle: connect time).
    pub latency: Option<LatencySummary>,
    /// Broker RSS, when its pid was given.
    pub rss: Option<RssReport>,
    /// Idle: broker RSS growth per accepted connection, in KiB.
    pub rss_per_conn_kib: Option<f64>,
}

impl Outcome {
    /// An outcome labelled from the run's arguments.
    pub fn for_args(a: &Args) -> Outcome {
        Outcome {
            name: a.name.clone(),
            scenario: a.scenario.name().into(),
            broker: a.broker.clone(),
            qos: a.qos,
            payload: a.payload,
            publishers: a.publishers,
            subscribers: a.subscribers,
            clean_session: a.clean_session,
            auth: a.username.is_some(),
            ..Outcome::default()
        }
    }

    /// Deliveries as a percentage of those expected (100 when none were expected).
    pub fn delivered_pct(&self) -> f64 {
        if self.expected == 0 {
            100.0
        } else {
            100.0 * self.delivered as f64 / self.expected as f64
        }
    }

    /// The JSON record `compare` reads.
    pub fn to_json(&self) -> Value {
        let latency = self.latency.map(|l| {
            json!({"count": l.count, "p50_us": l.p50_us, "p99_us": l.p99_us, "max_us": l.max_us})
        });
        let rss = self
            .rss
            .map(|r| json!({"before_kib": r.before, "peak_kib": r.peak, "after_kib": r.after}));
        json!({
            "name": self.name, "scenario": self.scenario, "broker": self.broker,
            "qos": self.qos, "payload": self.payload,
            "publishers": self.publishers, "subscribers": self.subscribers,
            "clean_session": self.clean_session, "auth": self.auth,
            "sent": self.sent, "expected": self.expected, "delivered": self.delivered,
            "delivered_pct": self.delivered_pct(), "out_of_order": self.out_of_order,
            "publish_secs": self.publish_secs, "elapsed_secs": self.elapsed_secs,
            "rate": self.rate, "latency": latency, "rss": rss,
            "rss_per_conn_kib": self.rss_per_conn_kib,
        })
    }

    /// Appends [`Outcome::to_json`] as one line to `path`.
    pub fn append_json(&self, path: &Path) -> Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("opening {}", path.display()))?;
        writeln!(f, "{}", self.to_json())?;
        Ok(())
    }

    /// A two-line table: header and values.
    pub fn table(&self) -> String {
        let lat = |f: fn(&LatencySummary) -> f64| {
            self.latency
                .map_or_else(|| "-".to_string(), |l| format_ms(f(&l) / 1e3))
        };
        let rss = self.rss.map_or_else(
            || "-".to_string(),
            |r| format!("{}/{}/{}", mib(r.before), mib(r.peak), mib(r.after)),
        );
        let rate_unit = match self.scenario.as_str() {
            "storm" | "idle" => "conn/s",
            _ => "msg/s",
        };
        let header = format!(
            "{:<28} {:<12} {:>10} {:>10} {:>10} {:>7} {:>10} {:>9} {:>9} {:>9} {:>15}",
            "case",
            "broker",
            "sent",
            "expected",
            "delivered",
            "deliv%",
            rate_unit,
            "p50 ms",
            "p99 ms",
            "max ms",
            "RSS MiB b/p/a"
        );
        let row = format!(
            "{:<28} {:<12} {:>10} {:>10} {:>10} {:>7.2} {:>10.0} {:>9} {:>9} {:>9} {:>15}",
            self.name,
            self.broker,
            self.sent,
            self.expected,
            self.delivered,
            self.delivered_pct(),
            self.rate,
            lat(|l| l.p50_us),
            lat(|l| l.p99_us),
            lat(|l| l.max_us),
            rss
        );
        let mut out = format!("{header}\n{row}");
        if self.out_of_order > 0 {
            out.push_str(&format!(
                "\nout of order or duplicated: {}",
                self.out_of_order
            ));
        }
        if let Some(k) = self.rss_per_conn_kib {
            out.push_str(&format!("\nbroker RSS per connection: {k:.1} KiB"));
        }
        out
    }
}

/// KiB to MiB with one decimal.
fn mib(kib: u64) -> String {
    format!("{:.1}", kib as f64 / 1024.0)
}

/// Milliseconds with three significant digits (0.0123, 1.23, 123).
pub fn format_ms(ms: f64) -> String {
    if ms >= 100.0 {
        format!("{ms:.0}")
    } else if ms >= 10.0 {
        format!("{ms:.1}")
    } else if ms >= 1.0 {
        format!("{ms:.2}")
    } else {
        format!("{ms:.3}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Outcome {
        let a = Args::parse(
            "fan-in --qos 1 --broker mosq --username u"
                .split(' ')
                .map(String::from),
        )
        .unwrap();
        let mut h = Histogram::default();
        for us in 1..=100u64 {
            h.record(us * 1_000);
        }
        Outcome {
            sent: 100,
            expected: 200,
            delivered: 150,
            rate: 1234.0,
            latency: LatencySummary::of(&h),
            rss: Some(RssReport {
                before: 1024,
                peak: 3072,
                after: 2048,
            }),
            ..Outcome::for_args(&a)
        }
    }

    #[test]
    fn json_record_carries_counts_percentiles_and_rss() {
        let v = sample().to_json();
        assert_eq!(v["name"], "fan-in q1 16B 8x1");
        assert_eq!(v["broker"], "mosq");
        assert_eq!(v["auth"], true);
        assert_eq!(
            (v["sent"].as_u64(), v["delivered"].as_u64()),
            (Some(100), Some(150))
        );
        assert_eq!(v["delivered_pct"].as_f64(), Some(75.0));
        // Bucket lower bounds, within 1/64 below the true values.
        let near =
            |got: Option<f64>, want: f64| got.is_some_and(|g| g <= want && g >= want * 63.0 / 64.0);
        assert!(
            near(v["latency"]["p50_us"].as_f64(), 50.0),
            "{}",
            v["latency"]
        );
        assert!(
            near(v["latency"]["p99_us"].as_f64(), 99.0),
            "{}",
            v["latency"]
        );
        assert_eq!(
            v["latency"]["max_us"].as_f64(),
            Some(100.0),
            "the maximum is exact"
        );
        assert_eq!(v["rss"]["peak_kib"].as_u64(), Some(3072));
    }

    #[test]
    fn table_shows_the_row_under_its_header() {
        let t = sample().table();
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].starts_with("case") && lines[0].contains("msg/s"));
        assert!(lines[1].contains("75.00") && lines[1].contains("1234"));
        assert!(lines[1].contains("1.0/3.0/2.0"), "{}", lines[1]);
        assert!(
            lines[1].contains(" 0.050 ") || lines[1].contains(" 0.049 "),
            "p50 in ms: {}",
            lines[1]
        );
    }

    #[test]
    fn appends_one_json_line_per_run() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("runs.jsonl");
        sample().append_json(&path).unwrap();
        sample().append_json(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 2);
        for line in text.lines() {
            let v: Value = serde_json::from_str(line).unwrap();
            assert_eq!(v["expected"].as_u64(), Some(200));
        }
    }

    #[test]
    fn format_ms_keeps_three_significant_digits() {
        assert_eq!(format_ms(0.0123), "0.012");
        assert_eq!(format_ms(1.234), "1.23");
        assert_eq!(format_ms(12.34), "12.3");
        assert_eq!(format_ms(1234.5), "1234");
    }
}
