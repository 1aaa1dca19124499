//! The command line of `mqtt-load`: a scenario name, then `--flag value` pairs. Hand
//! parsed (no clap) to keep the tool's dependencies small. Knows nothing about sockets.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};

/// The usage text printed by `--help` and after an error.
pub const USAGE: &str = "\
usage: mqtt-load <scenario> [--flag value]...
       mqtt-load compare --input FILE.jsonl [--json OUT.json] [--baseline cauldron]

scenarios:
  fan-in   many publishers -> few subscribers on load/<run>/#      (defaults P=8 S=1)
  shared   many publishers -> a $share/load group of S subscribers (defaults P=8 S=4)
  fan-out  few publishers -> many subscribers                      (defaults P=1 S=50)
  p2p      P pairs, publisher i -> subscriber i on its own topic   (defaults P=10)
  flood    QoS 0 for --duration-secs, subscribers read at --sub-rate; broker RSS
           before/peak/after (needs --broker-pid)                  (defaults P=4 S=2)
  storm    --connections CONNECT/CONNACK/DISCONNECT cycles, --concurrency at once
  idle     --idle connections held open; broker RSS per connection (needs --broker-pid)
  populate --messages retained messages and --connections persistent sessions (one
           subscription each), for a restart benchmark

flags (defaults in brackets):
  --addr A              broker address [127.0.0.1:1883]
  --broker NAME         broker label for the report [addr]
  --name NAME           case label for the report and compare [scenario + settings]
  --qos Q               0, 1 or 2 [0]
  --payload B           payload bytes, at least 16 (timestamp + ids) [16]
  --publishers P        publishers (p2p: pairs) [per scenario]
  --subscribers S       subscribers [per scenario]
  --messages N          messages per publisher [10000]
  --duration-secs D     publish for D seconds instead of --messages (storm: connect
                        for D seconds instead of --connections) [0 = use the count]
  --rate R              messages/s per publisher, 0 = flat out [0]
  --sub-rate R          messages/s each subscriber reads, 0 = as fast as it can [0]
  --max-ahead K         publishers pause while K messages are sent but not yet
                        delivered (lossless throughput); 0 = never pause [0]
  --inflight W          publisher window of unacknowledged QoS 1/2 messages [100]
  --clean-session BOOL  false: subscribers use durable sessions [true]
  --username U          username in every CONNECT
  --password P          password in every CONNECT
  --connections N       storm: connections to open, unless --duration-secs [1000]
  --concurrency C       storm: connections in progress at once [50]
  --idle N              idle: connections to hold [1000]
  --hold-secs H         idle: seconds to hold them before measuring [2]
  --warmup W            idle: first open and close W connections, then read the baseline,
                        so one-time costs (code first run, allocator arenas) are not
                        divided among the held connections [0]
  --drain-secs D        longest wait for deliveries after the last publish [10]
  --broker-pid PID      read the broker's RSS from /proc/PID/status
  --json FILE           append the result as one JSON line to FILE
";

/// Which scenario to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// Many publishers, few subscribers, all on one wildcard filter.
    FanIn,
    /// Like fan-in, but the subscribers form one `$share` group.
    Shared,
    /// Few publishers, many subscribers.
    FanOut,
    /// Publisher i to subscriber i, each pair on its own topic.
    P2p,
    /// QoS 0 faster than the subscribers read; broker memory is the result.
    Flood,
    /// Connection setup rate.
    Storm,
    /// Memory per idle connection.
    Idle,
    /// Retained messages and persistent sessions for a restart benchmark.
    Populate,
}

impl Scenario {
    /// Parses a scenario name.
    pub fn parse(s: &str) -> Result<Scenario> {
        Ok(match s {
            "fan-in" => Scenario::FanIn,
            "shared" => Scenario::Shared,
            "fan-out" => Scenario::FanOut,
            "p2p" => Scenario::P2p,
            "flood" => Scenario::Flood,
            "storm" => Scenario::Storm,
            "idle" => Scenario::Idle,
            "populate" => Scenario::Populate,
            other => bail!("unknown scenario {other:?}"),
        })
    }

    /// The scenario's name on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::FanIn => "fan-in",
            Scenario::Shared => "shared",
            Scenario::FanOut => "fan-out",
            Scenario::P2p => "p2p",
            Scenario::Flood => "flood",
            Scenario::Storm => "storm",
            Scenario::Idle => "idle",
            Scenario::Populate => "populate",
        }
    }

    /// Default (publishers, subscribers).
    fn default_clients(self) -> (usize, usize) {
        match self {
            Scenario::FanIn => (8, 1),
            Scenario::Shared => (8, 4),
            Scenario::FanOut => (1, 50),
            Scenario::P2p => (10, 10),
            Scenario::Flood => (4, 2),
            Scenario::Storm | Scenario::Idle | Scenario::Populate => (0, 0),
        }
    }
}

/// Everything a run needs.
#[derive(Debug, Clone)]
pub struct Args {
    /// The scenario.
    pub scenario: Scenario,
    /// Broker address.
    pub addr: String,
    /// Broker label for the report.
    pub broker: String,
    /// Case label for the report.
    pub name: String,
    /// QoS of publications and subscriptions.
    pub qos: u8,
    /// Payload size in bytes (>= 16).
    pub payload: usize,
    /// Publishers (p2p: pairs).
    pub publishers: usize,
    /// Subscribers (p2p: equal to publishers).
    pub subscribers: usize,
    /// Messages per publisher, when `duration_secs` is 0.
    pub messages: u64,
    /// Publish for this long instead (0: use `messages`).
    pub duration_secs: f64,
    /// Messages/s per publisher, 0 = flat out.
    pub rate: f64,
    /// Messages/s each subscriber reads, 0 = unlimited.
    pub sub_rate: f64,
    /// Publisher window at QoS 1/2.
    pub inflight: usize,
    /// Messages sent but not yet delivered before publishers pause (0: never).
    pub max_ahead: u64,
    /// Clean Session of the subscribers.
    pub clean_session: bool,
    /// Username in every CONNECT.
    pub username: Option<String>,
    /// Password in every CONNECT.
    pub password: Option<String>,
    /// Storm: connections to open.
    pub connections: usize,
    /// Storm: connections in progress at once.
    pub concurrency: usize,
    /// Idle: connections to hold.
    pub idle: usize,
    /// Idle: seconds to hold before measuring.
    pub hold_secs: f64,
    /// Idle: connections opened and closed before the baseline RSS is read.
    pub warmup: usize,
    /// Longest wait for deliveries after the last publish.
    pub drain_secs: f64,
    /// Broker process id for RSS readings.
    pub broker_pid: Option<u32>,
    /// Append the JSON result here.
    pub json: Option<PathBuf>,
}

impl Args {
    /// Defaults for `scenario`, before any flag.
    pub fn new(scenario: Scenario) -> Args {
        let (publishers, subscribers) = scenario.default_clients();
        let flood = scenario == Scenario::Flood;
        Args {
            scenario,
            addr: "127.0.0.1:1883".into(),
            broker: String::new(),
            name: String::new(),
            qos: 0,
            payload: 16,
            publishers,
            subscribers,
            messages: 10_000,
            duration_secs: if flood { 5.0 } else { 0.0 },
            rate: 0.0,
            sub_rate: if flood { 500.0 } else { 0.0 },
            inflight: 100,
            max_ahead: 0,
            clean_session: true,
            username: None,
            password: None,
            connections: 1000,
            concurrency: 50,
            idle: 1000,
            hold_secs: 2.0,
            warmup: 0,
            drain_secs: if flood { 1.0 } else { 10.0 },
            broker_pid: None,
            json: None,
        }
    }

    /// Parses `scenario --flag value ...` (the program name already removed).
    pub fn parse(mut it: impl Iterator<Item = String>) -> Result<Args> {
        let scenario = Scenario::parse(&it.next().context("missing scenario")?)?;
        let mut a = Args::new(scenario);
        while let Some(flag) = it.next() {
            let v = it.next().with_context(|| format!("{flag} needs a value"))?;
            a.set(&flag, &v)
                .with_context(|| format!("bad value {v:?} for {flag}"))?;
        }
        a.finish()
    }

    fn set(&mut self, flag: &str, v: &str) -> Result<()> {
        match flag {
            "--addr" => self.addr = v.into(),
            "--broker" => self.broker = v.into(),
            "--name" => self.name = v.into(),
            "--qos" => self.qos = v.parse()?,
            "--payload" => self.payload = v.parse()?,
            "--publishers" => self.publishers = v.parse()?,
            "--subscribers" => self.subscribers = v.parse()?,
            "--messages" => self.messages = v.parse()?,
            "--duration-secs" => self.duration_secs = v.parse()?,
            "--rate" => self.rate = v.parse()?,
            "--sub-rate" => self.sub_rate = v.parse()?,
            "--inflight" => self.inflight = v.parse()?,
            "--max-ahead" => self.max_ahead = v.parse()?,
            "--clean-session" => self.clean_session = v.parse()?,
            "--username" => self.username = Some(v.into()),
            "--password" => self.password = Some(v.into()),
            "--connections" => self.connections = v.parse()?,
            "--concurrency" => self.concurrency = v.parse()?,
            "--idle" => self.idle = v.parse()?,
            "--hold-secs" => self.hold_secs = v.parse()?,
            "--warmup" => self.warmup = v.parse()?,
            "--drain-secs" => self.drain_secs = v.parse()?,
            "--broker-pid" => self.broker_pid = Some(v.parse()?),
            "--json" => self.json = Some(v.into()),
            other => bail!("unknown flag {other}"),
        }
        Ok(())
    }

    /// Checks ranges and fills the derived labels.
    pub fn finish(mut self) -> Result<Args> {
        if self.qos > 2 {
            bail!("--qos must be 0, 1 or 2");
        }
        if self.payload < crate::wire::STAMP_LEN {
            bail!("--payload must be at least 16 bytes (timestamp and ids)");
        }
        if self.scenario == Scenario::P2p {
            self.subscribers = self.publishers;
        }
        if self.inflight == 0 || self.inflight > 65_000 || self.concurrency == 0 {
            bail!("--inflight must be 1..=65000 and --concurrency at least 1");
        }
        if self.broker.is_empty() {
            self.broker = self.addr.clone();
        }
        if self.name.is_empty() {
            self.name = self.default_name();
        }
        Ok(self)
    }

    fn default_name(&self) -> String {
        match self.scenario {
            Scenario::Storm if self.duration_secs > 0.0 => {
                format!("storm {}s x{}", self.duration_secs, self.concurrency)
            }
            Scenario::Storm => format!("storm {}x{}", self.connections, self.concurrency),
            Scenario::Idle => format!("idle {}", self.idle),
            Scenario::Populate => format!("populate {}+{}", self.messages, self.connections),
            s => format!(
                "{} q{} {} {}x{}",
                s.name(),
                self.qos,
                size_label(self.payload),
                self.publishers,
                self.subscribers
            ),
        }
    }
}

/// 16 -> "16B", 1024 -> "1KiB", 65536 -> "64KiB".
pub fn size_label(bytes: usize) -> String {
    if bytes >= 1024 && bytes.is_multiple_of(1024) {
        format!("{}KiB", bytes / 1024)
    } else {
        format!("{bytes}B")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Args> {
        Args::parse(s.split_whitespace().map(String::from))
    }

    #[test]
    fn parses_flags_and_derives_labels() {
        let a =
            parse("fan-in --qos 2 --payload 1024 --publishers 3 --clean-session false").unwrap();
        assert_eq!(
            (a.scenario, a.qos, a.payload, a.publishers),
            (Scenario::FanIn, 2, 1024, 3)
        );
        assert!(!a.clean_session);
        assert_eq!(a.subscribers, 1, "fan-in default");
        assert_eq!(a.name, "fan-in q2 1KiB 3x1");
        assert_eq!(a.broker, "127.0.0.1:1883");
    }

    #[test]
    fn populate_takes_retained_and_session_counts() {
        let a = parse("populate --messages 100000 --connections 10000 --concurrency 50").unwrap();
        assert_eq!(a.scenario, Scenario::Populate);
        assert_eq!(
            (a.messages, a.connections, a.concurrency),
            (100_000, 10_000, 50)
        );
        assert_eq!(a.name, "populate 100000+10000");
    }

    #[test]
    fn p2p_has_as_many_subscribers_as_publishers() {
        let a = parse("p2p --publishers 7 --subscribers 2").unwrap();
        assert_eq!(a.subscribers, 7);
    }

    #[test]
    fn rejects_bad_input() {
        assert!(parse("fan-in --qos 3").is_err());
        assert!(
            parse("fan-in --payload 8").is_err(),
            "no room for the stamp"
        );
        assert!(parse("fan-in --qos").is_err(), "missing value");
        assert!(parse("fan-in --bogus 1").is_err());
        assert!(parse("sideways").is_err());
        assert!(parse("").is_err());
    }

    #[test]
    fn flood_defaults_to_a_timed_run_with_slow_readers() {
        let a = parse("flood").unwrap();
        assert!(a.duration_secs > 0.0 && a.sub_rate > 0.0);
        assert_eq!(size_label(65_536), "64KiB");
        assert_eq!(size_label(100), "100B");
    }
}
