//! `mqtt-load`: an MQTT 3.1.1 load generator and benchmark harness for comparing brokers
//! on loopback. Packets are built by hand (no broker code involved), so the same binary
//! measures any broker.
//!
//! Scenarios: fan-in, shared (`$share` subscribers), fan-out, p2p, flood (QoS 0 faster
//! than the subscribers read, broker RSS before/peak/after), storm (connections per
//! second) and idle (broker RSS per connection). Every payload starts with a timestamp,
//! so subscribers measure end-to-end latency (median, p99, maximum). Each run prints a
//! table and can append a JSON line; `mqtt-load compare` turns many such lines into a
//! table of ratios. `bench/compare.sh` runs everything against Cauldron, Mosquitto and
//! rumqttd.
//!
//! ```sh
//! mqtt-load fan-in --addr 127.0.0.1:1883 --qos 1 --payload 1024 --publishers 8
//! mqtt-load storm --connections 5000 --concurrency 100 --broker-pid $(pidof mosquitto)
//! mqtt-load compare --input runs.jsonl --json results.json
//! ```

mod args;
mod client;
mod compare;
mod conns;
mod latency;
mod populate;
mod procmem;
mod report;
mod scenario;
mod wire;

use std::process::ExitCode;

use args::{Args, Scenario, USAGE};

#[tokio::main]
async fn main() -> ExitCode {
    let mut argv = std::env::args().skip(1).peekable();
    let result = match argv.peek().map(String::as_str) {
        None | Some("-h" | "--help" | "help") => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Some("compare") => compare::main(argv.skip(1)),
        Some(_) => match Args::parse(argv) {
            Ok(a) => run(a).await,
            Err(e) => {
                eprintln!("mqtt-load: {e:#}\n\n{USAGE}");
                return ExitCode::from(2);
            }
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mqtt-load: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(a: Args) -> anyhow::Result<()> {
    let outcome = match a.scenario {
        Scenario::Storm => conns::storm(&a).await?,
        Scenario::Idle => conns::idle(&a).await?,
        Scenario::Populate => populate::populate(&a).await?,
        _ => scenario::run(&a).await?,
    };
    println!("{}", outcome.table());
    if let Some(path) = &a.json {
        outcome.append_json(path)?;
    }
    Ok(())
}
