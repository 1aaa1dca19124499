//! `mqtt-load compare`: reads the JSON lines of many runs, takes the median of each
//! metric per case and broker over the rounds, and prints a Markdown table with the
//! ratios baseline/peer. Knows only the JSON field names written by `report`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::report::format_ms;

/// Which way a metric is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Better {
    Higher,
    Lower,
}

/// A metric: label, which way is better, and how to read it from a run.
type Metric = (&'static str, Better, fn(&Value) -> Option<f64>);

fn latency(v: &Value, key: &str) -> Option<f64> {
    v["latency"][key].as_f64().map(|us| us / 1e3)
}

fn rss_mib(v: &Value, key: &str) -> Option<f64> {
    v["rss"][key].as_f64().map(|kib| kib / 1024.0)
}

/// The metrics shown for a scenario.
fn metrics(scenario: &str) -> Vec<Metric> {
    use Better::{Higher, Lower};
    match scenario {
        "storm" => vec![
            ("conn/s", Higher, |v| v["rate"].as_f64()),
            ("accepted %", Higher, |v| v["delivered_pct"].as_f64()),
            ("connect p50 ms", Lower, |v| latency(v, "p50_us")),
            ("connect p99 ms", Lower, |v| latency(v, "p99_us")),
        ],
        "idle" => vec![
            ("KiB/conn", Lower, |v| v["rss_per_conn_kib"].as_f64()),
            ("RSS held MiB", Lower, |v| rss_mib(v, "peak_kib")),
            // Before the clients connected and a second after they left: memory
            // should return to where it was.
            ("RSS before MiB", Lower, |v| rss_mib(v, "before_kib")),
            ("RSS after MiB", Lower, |v| rss_mib(v, "after_kib")),
            ("accepted %", Higher, |v| v["delivered_pct"].as_f64()),
        ],
        "flood" => vec![
            ("msg/s accepted", Higher, |v| {
                Some(v["sent"].as_f64()? / v["publish_secs"].as_f64().filter(|s| *s > 0.0)?)
            }),
            ("msg/s delivered", Higher, |v| v["rate"].as_f64()),
            ("RSS before MiB", Lower, |v| rss_mib(v, "before_kib")),
            ("RSS peak MiB", Lower, |v| rss_mib(v, "peak_kib")),
            ("RSS after MiB", Lower, |v| rss_mib(v, "after_kib")),
        ],
        _ => vec![
            ("msg/s", Higher, |v| v["rate"].as_f64()),
            ("delivered %", Higher, |v| v["delivered_pct"].as_f64()),
            ("p50 ms", Lower, |v| latency(v, "p50_us")),
            ("p99 ms", Lower, |v| latency(v, "p99_us")),
            ("max ms", Lower, |v| latency(v, "max_us")),
        ],
    }
}

/// The median (upper median for an even count); `None` when empty.
pub fn median(mut xs: Vec<f64>) -> Option<f64> {
    xs.sort_by(f64::total_cmp);
    xs.get(xs.len() / 2).copied()
}

/// One row of the comparison.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Case label.
    pub case: String,
    /// Metric label.
    pub metric: &'static str,
    /// "higher" or "lower".
    pub better: &'static str,
    /// Median per broker, in broker order.
    pub values: Vec<Option<f64>>,
}

/// Groups runs into rows; brokers are returned baseline first, then in order of appearance.
pub fn rows(runs: &[Value], baseline: &str) -> (Vec<String>, Vec<Row>) {
    let mut brokers: Vec<String> = vec![baseline.to_string()];
    let mut cases: Vec<(String, String)> = Vec::new();
    let mut by: BTreeMap<(String, String), Vec<&Value>> = BTreeMap::new();
    for v in runs {
        let (Some(case), Some(broker)) = (v["name"].as_str(), v["broker"].as_str()) else {
            continue;
        };
        if !brokers.iter().any(|b| b == broker) {
            brokers.push(broker.into());
        }
        if !cases.iter().any(|(c, _)| c == case) {
            cases.push((case.into(), v["scenario"].as_str().unwrap_or("").into()));
        }
        by.entry((case.into(), broker.into())).or_default().push(v);
    }
    let mut out = Vec::new();
    for (case, scenario) in &cases {
        for (metric, better, read) in metrics(scenario) {
            let values = brokers
                .iter()
                .map(|b| {
                    let runs = by.get(&(case.clone(), b.clone()))?;
                    median(runs.iter().filter_map(|v| read(v)).collect())
                })
                .collect();
            out.push(Row {
                case: case.clone(),
                metric,
                better: if better == Better::Higher {
                    "higher"
                } else {
                    "lower"
                },
                values,
            });
        }
    }
    (brokers, out)
}

/// `a / b`, when both are known and b is not 0.
fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b != 0.0 => Some(a / b),
        _ => None,
    }
}

fn cell(metric: &str, v: Option<f64>) -> String {
    match v {
        None => "-".into(),
        Some(v) if metric.ends_with(" ms") => format_ms(v),
        Some(v) if metric.contains('%') || metric.contains("MiB") || metric.contains("KiB") => {
            format!("{v:.1}")
        }
        Some(v) => format!("{v:.0}"),
    }
}

/// The Markdown table: one column per broker and one ratio column per peer.
pub fn markdown(brokers: &[String], rows: &[Row]) -> String {
    let base = brokers.first().map_or("", String::as_str);
    let mut head = "| case | metric | better |".to_string();
    let mut rule = "|---|---|---|".to_string();
    for b in brokers {
        head.push_str(&format!(" {b} |"));
        rule.push_str("---:|");
    }
    for b in brokers.iter().skip(1) {
        head.push_str(&format!(" {base}/{b} |"));
        rule.push_str("---:|");
    }
    let mut out = format!("{head}\n{rule}\n");
    for r in rows {
        out.push_str(&format!("| {} | {} | {} |", r.case, r.metric, r.better));
        for v in &r.values {
            out.push_str(&format!(" {} |", cell(r.metric, *v)));
        }
        let b0 = r.values.first().copied().flatten();
        for v in r.values.iter().skip(1) {
            let cell = ratio(b0, *v).map_or_else(|| "-".into(), |x| format!("{x:.2}"));
            out.push_str(&format!(" {cell} |"));
        }
        out.push('\n');
    }
    out
}

/// Arguments of `compare`.
struct CompareArgs {
    input: PathBuf,
    json: Option<PathBuf>,
    baseline: String,
}

fn parse(mut it: impl Iterator<Item = String>) -> Result<CompareArgs> {
    let mut c = CompareArgs {
        input: PathBuf::new(),
        json: None,
        baseline: "cauldron".into(),
    };
    while let Some(flag) = it.next() {
        let v = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--input" => c.input = v.into(),
            "--json" => c.json = Some(v.into()),
            "--baseline" => c.baseline = v,
            other => bail!("unknown flag {other}"),
        }
    }
    if c.input.as_os_str().is_empty() {
        bail!("--input is required");
    }
    Ok(c)
}

/// Runs `compare` with the arguments after the word `compare`.
pub fn main(it: impl Iterator<Item = String>) -> Result<()> {
    let c = parse(it)?;
    let text = std::fs::read_to_string(&c.input)
        .with_context(|| format!("reading {}", c.input.display()))?;
    let runs: Vec<Value> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()
        .context("a line is not JSON")?;
    let (brokers, rows) = rows(&runs, &c.baseline);
    print!("{}", markdown(&brokers, &rows));
    if let Some(path) = c.json {
        let table: Vec<Value> = rows
            .iter()
            .map(|r| {
                let values: serde_json::Map<String, Value> = brokers
                    .iter()
                    .zip(&r.values)
                    .map(|(b, v)| (b.clone(), json!(v)))
                    .collect();
                json!({"case": r.case, "metric": r.metric, "better": r.better, "values": values})
            })
            .collect();
        let doc = json!({"baseline": c.baseline, "brokers": brokers, "table": table, "runs": runs});
        std::fs::write(&path, serde_json::to_string_pretty(&doc)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(name: &str, broker: &str, rate: f64, p99_us: f64) -> Value {
        json!({"name": name, "scenario": "fan-in", "broker": broker, "rate": rate,
               "delivered_pct": 100.0, "latency": {"p50_us": 10.0, "p99_us": p99_us, "max_us": 900.0}})
    }

    #[test]
    fn median_picks_the_middle_value() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), Some(3.0));
        assert_eq!(median(vec![]), None);
    }

    #[test]
    fn rows_take_medians_per_broker_with_the_baseline_first() {
        let runs = vec![
            run("c1", "mosquitto", 100.0, 2000.0),
            run("c1", "cauldron", 300.0, 1000.0),
            run("c1", "mosquitto", 200.0, 4000.0),
            run("c1", "cauldron", 100.0, 3000.0),
            run("c1", "mosquitto", 150.0, 3000.0),
            run("c1", "cauldron", 200.0, 2000.0),
        ];
        let (brokers, rows) = rows(&runs, "cauldron");
        assert_eq!(brokers, ["cauldron", "mosquitto"]);
        let msgs = rows.iter().find(|r| r.metric == "msg/s").unwrap();
        assert_eq!(msgs.values, [Some(200.0), Some(150.0)]);
        let p99 = rows.iter().find(|r| r.metric == "p99 ms").unwrap();
        assert_eq!(p99.values, [Some(2.0), Some(3.0)]);
        assert_eq!(p99.better, "lower");
    }

    #[test]
    fn markdown_has_a_ratio_column_per_peer_and_dashes_for_gaps() {
        let runs = vec![
            run("c1", "cauldron", 300.0, 1000.0),
            run("c1", "mosquitto", 150.0, 2000.0),
            run("c2", "cauldron", 10.0, 1000.0),
        ];
        let (brokers, rows) = rows(&runs, "cauldron");
        let md = markdown(&brokers, &rows);
        let lines: Vec<&str> = md.lines().collect();
        assert!(lines[0].ends_with("| cauldron | mosquitto | cauldron/mosquitto |"));
        let c1 = lines
            .iter()
            .find(|l| l.starts_with("| c1 | msg/s |"))
            .unwrap();
        assert!(c1.ends_with("| 300 | 150 | 2.00 |"), "{c1}");
        let c2 = lines
            .iter()
            .find(|l| l.starts_with("| c2 | msg/s |"))
            .unwrap();
        assert!(c2.ends_with("| 10 | - | - |"), "{c2}");
    }

    #[test]
    fn idle_rows_show_the_memory_before_the_clients_and_after_they_left() {
        let runs = vec![
            json!({"name": "idle 2000", "scenario": "idle", "broker": "cauldron",
            "delivered_pct": 100.0, "rss_per_conn_kib": 1.5,
            "rss": {"before_kib": 10240, "peak_kib": 13312, "after_kib": 10752}}),
        ];
        let (_, rows) = rows(&runs, "cauldron");
        let value = |metric: &str| {
            rows.iter()
                .find(|r| r.metric == metric)
                .and_then(|r| r.values[0])
        };
        assert_eq!(value("RSS before MiB"), Some(10.0));
        assert_eq!(value("RSS held MiB"), Some(13.0));
        assert_eq!(value("RSS after MiB"), Some(10.5));
    }
}
