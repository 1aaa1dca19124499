//! Interop with independent clients over real sockets: Eclipse paho-mqtt 2.x
//! (Python, `tests/interop/*.py`) and Debian's mosquitto_pub / mosquitto_sub,
//! in MQTT 3.1.1 and 5.0. A missing tool fails the test (never a silent skip):
//! `.ci/run` installs them.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use integration::packets::Publish;
use integration::{RawClient, TestBroker, ms};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

const INSTALL_HINT: &str =
    "run `.ci/run` (it installs python3, paho-mqtt 2.x and mosquitto-clients)";

fn interop_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("interop")
}

/// Fails the test unless `python3` with paho-mqtt 2.x is available.
async fn require_paho() {
    let out = Command::new("python3")
        .args([
            "-c",
            "import paho.mqtt, sys; sys.exit(0 if paho.mqtt.__version__.startswith('2.') else 3)",
        ])
        .output()
        .await
        .unwrap_or_else(|e| panic!("python3 is not available ({e}): {INSTALL_HINT}"));
    assert!(
        out.status.success(),
        "python3 has no paho-mqtt 2.x (status {}, {}): {INSTALL_HINT}",
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
}

/// Fails the test unless `tool` (mosquitto_pub / mosquitto_sub) runs.
async fn require_tool(tool: &str) {
    let out = Command::new(tool).arg("--help").output().await;
    assert!(out.is_ok(), "{tool} is not installed: {INSTALL_HINT}");
}

async fn paho_flows(protocol: &str) {
    require_paho().await;
    let b = TestBroker::start_default().await;
    let script = interop_dir().join("paho_flows.py");
    let run = Command::new("python3")
        .arg(&script)
        .args([
            "--host",
            "127.0.0.1",
            "--port",
            &b.addr.port().to_string(),
            "--protocol",
            protocol,
        ])
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("paho scenarios hung")
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "paho-mqtt MQTT {protocol} scenarios failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    for scenario in ["qos_flows", "retained", "will", "persistent_session"] {
        assert!(
            stdout.contains(&format!("ok   MQTT {protocol} {scenario}")),
            "scenario {scenario} did not run:\n{stdout}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paho_v311_qos_retained_will_and_persistent_session() {
    paho_flows("311").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paho_v5_qos_retained_will_and_persistent_session() {
    paho_flows("5").await;
}

/// mosquitto_sub subscribes at QoS 2; once a probe message shows it is
/// subscribed, mosquitto_pub sends a QoS 2 message that must come out of
/// mosquitto_sub exactly once.
async fn mosquitto_clients_qos2_roundtrip(version: &str) {
    require_tool("mosquitto_sub").await;
    require_tool("mosquitto_pub").await;
    let b = TestBroker::start_default().await;
    let port = b.addr.port().to_string();
    let mut sub = Command::new("mosquitto_sub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-V",
            version,
            "-q",
            "2",
            "-v",
        ])
        .args([
            "-i",
            &format!("msub-{version}"),
            "-t",
            "interop/probe",
            "-t",
            "interop/data",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("mosquitto_sub: {e}: {INSTALL_HINT}"));
    let mut lines = BufReader::new(sub.stdout.take().expect("stdout")).lines();
    let mut probe = RawClient::connect_v311(b.addr, "probe").await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        assert!(
            Instant::now() < deadline,
            "mosquitto_sub never received a probe"
        );
        probe.publish(Publish::new("interop/probe", b"p")).await;
        if let Ok(line) = tokio::time::timeout(ms(200), lines.next_line()).await {
            let line = line
                .expect("read mosquitto_sub")
                .expect("mosquitto_sub exited");
            assert_eq!(line, "interop/probe p");
            break;
        }
    }
    let payload = format!("exactly-once-{version}");
    let status = Command::new("mosquitto_pub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-V",
            version,
            "-q",
            "2",
            "-t",
            "interop/data",
            "-m",
            &payload,
        ])
        .status()
        .await
        .unwrap_or_else(|e| panic!("mosquitto_pub: {e}: {INSTALL_HINT}"));
    assert!(
        status.success(),
        "mosquitto_pub -V {version} -q 2 failed: {status}"
    );
    let mut data = Vec::new();
    let quiet_until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < quiet_until {
        match tokio::time::timeout(ms(500), lines.next_line()).await {
            Ok(Ok(Some(line))) if line.starts_with("interop/data") => data.push(line),
            Ok(Ok(Some(_probe))) => {}
            Ok(other) => panic!("mosquitto_sub ended: {other:?}"),
            Err(_) if !data.is_empty() => break,
            Err(_) => {}
        }
    }
    assert_eq!(
        data,
        vec![format!("interop/data {payload}")],
        "mosquitto_sub -V {version} output"
    );
    sub.kill().await.ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_clients_v311_qos2_roundtrip() {
    mosquitto_clients_qos2_roundtrip("mqttv311").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_clients_v5_qos2_roundtrip() {
    mosquitto_clients_qos2_roundtrip("mqttv5").await;
}
