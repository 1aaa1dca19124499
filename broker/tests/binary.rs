//! The `cauldron` binary itself, as the README runs it: paho-mqtt completes QoS 0/1/2,
//! retained, will and persistent-session scenarios in MQTT 3.1.1 and 5.0 against it,
//! SIGTERM stops it cleanly, a bad config file is refused with the key named, and a
//! TLS listener reloads its certificate on SIGHUP (mosquitto_pub over TLS).
//!
//! Needs python3 with paho-mqtt 2.x (`.ci/run` installs it); fails, never skips, when
//! it is missing.

use std::io::Write;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_cauldron");

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn write_config(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("cauldron-bin-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("cauldron.toml");
    let mut f = std::fs::File::create(&path).expect("config file");
    f.write_all(text.as_bytes()).expect("write config");
    path
}

struct Broker {
    child: Child,
    port: u16,
}

impl Broker {
    fn start(name: &str) -> Broker {
        Broker::start_with(name, "")
    }

    /// A broker whose config is one listener plus `extra` TOML.
    fn start_with(name: &str, extra: &str) -> Broker {
        let port = free_port();
        let config = write_config(
            name,
            &format!("[[listeners]]\nname = \"tcp\"\nbind = \"127.0.0.1:{port}\"\n{extra}"),
        );
        let child = Command::new(BIN)
            .arg("--config")
            .arg(&config)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn cauldron");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "cauldron did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Broker { child, port }
    }

    fn signal(&self, signal: &str) {
        let pid = self.child.id().to_string();
        let status = Command::new("kill")
            .args([signal, &pid])
            .status()
            .expect("kill");
        assert!(status.success());
    }

    fn sigterm_and_wait(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let status = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill");
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "cauldron ignored SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn paho(port: u16, protocol: &str) {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/interop/paho_flows.py");
    let out = Command::new("python3")
        .arg(&script)
        .args([
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--protocol",
            protocol,
        ])
        .output()
        .expect("python3 is required: run .ci/run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "paho-mqtt MQTT {protocol} against the binary failed (is paho-mqtt 2.x installed? run .ci/run):\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for scenario in ["qos_flows", "retained", "will", "persistent_session"] {
        assert!(
            stdout.contains(&format!("ok   MQTT {protocol} {scenario}")),
            "{scenario} missing:\n{stdout}"
        );
    }
}

#[test]
fn paho_v311_and_v5_flows_against_the_binary_then_sigterm_exits_cleanly() {
    let broker = Broker::start("paho");
    paho(broker.port, "311");
    paho(broker.port, "5");
    let status = broker.sigterm_and_wait();
    assert!(status.success(), "exit status after SIGTERM: {status}");
}

#[test]
fn bad_config_value_exits_non_zero_naming_key_and_file() {
    let config = write_config("bad", "[limits]\nmax_packet_bytes = 0\n");
    let out = Command::new(BIN)
        .arg("--config")
        .arg(&config)
        .output()
        .expect("run");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("limits.max_packet_bytes"),
        "key not named: {stderr}"
    );
    assert!(stderr.contains("cauldron.toml"), "file not named: {stderr}");
}

#[test]
fn unknown_config_key_exits_non_zero() {
    let config = write_config("unknown", "[limits]\nmax_packet_byte = 10\n");
    let out = Command::new(BIN)
        .arg("--config")
        .arg(&config)
        .output()
        .expect("run");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("max_packet_byte"),
        "key not named: {stderr}"
    );
}

#[test]
fn print_default_config_is_the_embedded_file() {
    let out = Command::new(BIN)
        .arg("--print-default-config")
        .output()
        .expect("run");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("[[listeners]]") && text.contains("max_packet_bytes"),
        "{text}"
    );
}

/// Runs `cauldron passwd` with `stdin` fed in; returns (success, stdout + stderr).
fn passwd(args: &[&str], stdin: &str) -> (bool, String) {
    let mut child = Command::new(BIN)
        .arg("passwd")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn cauldron passwd");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    let out = child.wait_with_output().expect("wait");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// mosquitto_pub with these credentials; true when it published.
fn mosquitto_pub(port: u16, user: &str, password: &str) -> bool {
    Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-V", "mqttv5"])
        .args(["-u", user, "-P", password, "-t", "t", "-m", "m", "-q", "1"])
        .output()
        .expect("mosquitto_pub is required: run .ci/run")
        .status
        .success()
}

#[test]
fn passwd_round_trip_with_the_broker_and_mosquitto_clients() {
    // Issue 4: `cauldron passwd` creates the file, adds or updates a user, deletes a
    // user, and never echoes a password; the broker accepts what it wrote and applies
    // a deletion on SIGHUP.
    let dir = std::env::temp_dir().join(format!("cauldron-passwd-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("passwd");
    let _ = std::fs::remove_file(&file);
    let file_arg = file.to_str().expect("utf-8 path");
    let cost = ["--memory-kib", "64", "--iterations", "1"];
    let (ok, out) = passwd(
        &[&[file_arg, "alice", "--stdin"][..], &cost].concat(),
        "s3cret-Alice\n",
    );
    assert!(ok, "{out}");
    assert!(
        !out.contains("s3cret-Alice"),
        "the password is never echoed: {out}"
    );
    let (ok, out) = passwd(
        &[&[file_arg, "bob", "--stdin"][..], &cost].concat(),
        "b0b\n",
    );
    assert!(ok, "{out}");
    let text = std::fs::read_to_string(&file).expect("password file");
    assert!(
        text.contains("alice:$argon2id$") && text.contains("bob:$argon2id$"),
        "{text}"
    );
    assert!(!text.contains("s3cret-Alice"));

    let broker = Broker::start_with(
        "passwd",
        &format!("[auth]\nallow_anonymous = false\n[auth.password_file]\npath = \"{file_arg}\"\n"),
    );
    assert!(mosquitto_pub(broker.port, "alice", "s3cret-Alice"));
    assert!(!mosquitto_pub(broker.port, "alice", "wrong"));
    assert!(mosquitto_pub(broker.port, "bob", "b0b"));

    let (ok, out) = passwd(&[file_arg, "bob", "--delete"], "");
    assert!(ok, "{out}");
    let (ok, out) = passwd(&[file_arg, "bob", "--delete"], "");
    assert!(!ok, "deleting an absent user is an error: {out}");
    broker.signal("-HUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    while mosquitto_pub(broker.port, "bob", "b0b") {
        assert!(
            Instant::now() < deadline,
            "bob still accepted after the reload"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(mosquitto_pub(broker.port, "alice", "s3cret-Alice"));
    let status = broker.sigterm_and_wait();
    assert!(status.success(), "exit status after SIGTERM: {status}");
}

/// A CA and a `localhost` server certificate it signed, as PEM (CA, cert, key).
fn pki(cn: &str) -> (String, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca.distinguished_name
        .push(DnType::CommonName, format!("{cn} CA"));
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_pem = ca.self_signed(&ca_key).expect("CA").pem();
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().expect("server key");
    let mut server = CertificateParams::new(vec!["localhost".to_owned()]).expect("params");
    server.distinguished_name.push(DnType::CommonName, cn);
    let cert = server.signed_by(&key, &issuer).expect("server certificate");
    (ca_pem, cert.pem(), key.serialize_pem())
}

/// mosquitto_pub over TLS trusting `cafile`; true when it published.
fn mosquitto_pub_tls(port: u16, cafile: &std::path::Path) -> bool {
    Command::new("mosquitto_pub")
        .args(["-h", "localhost", "-p", &port.to_string(), "-V", "mqttv311"])
        .arg("--cafile")
        .arg(cafile)
        .args(["-t", "t", "-m", "m", "-q", "1"])
        .output()
        .expect("mosquitto_pub is required: run .ci/run")
        .status
        .success()
}

#[test]
fn tls_listener_serves_mosquitto_clients_and_sighup_reloads_the_certificate() {
    // Issue 5: certificates from files, reloaded on SIGHUP without a restart.
    let dir = std::env::temp_dir().join(format!("cauldron-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let (ca1, cert1, key1) = pki("first");
    let (ca2, cert2, key2) = pki("second");
    let (ca1_file, ca2_file) = (dir.join("ca1.crt"), dir.join("ca2.crt"));
    std::fs::write(&ca1_file, ca1).expect("write");
    std::fs::write(&ca2_file, ca2).expect("write");
    let (cert_file, key_file) = (dir.join("server.crt"), dir.join("server.key"));
    std::fs::write(&cert_file, cert1).expect("write");
    std::fs::write(&key_file, key1).expect("write");
    let broker = Broker::start_with(
        "tls",
        &format!(
            "protocol = \"tls\"\n[listeners.tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\n",
            cert_file.display(),
            key_file.display()
        ),
    );
    assert!(mosquitto_pub_tls(broker.port, &ca1_file));
    assert!(
        !mosquitto_pub_tls(broker.port, &ca2_file),
        "not yet trusted"
    );

    std::fs::write(&cert_file, cert2).expect("write");
    std::fs::write(&key_file, key2).expect("write");
    broker.signal("-HUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !mosquitto_pub_tls(broker.port, &ca2_file) {
        assert!(
            Instant::now() < deadline,
            "the new certificate is not served after SIGHUP"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        !mosquitto_pub_tls(broker.port, &ca1_file),
        "the old one is gone"
    );
    let status = broker.sigterm_and_wait();
    assert!(status.success(), "exit status after SIGTERM: {status}");
}
