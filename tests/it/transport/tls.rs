//! TLS listeners: TLS 1.2 and 1.3 only, mTLS, usernames from certificates, reload.

use std::time::Duration;

use cauldron::acl::{Action, Permission};
use cauldron::config::{CertUsername, ListenerProtocol};
use integration::packets::Connect;
use integration::tls::{Ca, connector, tls_connect};
use integration::{RawClient, TestBroker};
use rustls::version::{TLS12, TLS13};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{listener, tls_table, with_listeners};
use crate::auth::rule;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_listener_serves_mqtt_over_tls_1_2_and_1_3() {
    let (_dir, ca, b) = tls_broker("broker").await;
    for (version, id) in [(&TLS13, "tls13"), (&TLS12, "tls12")] {
        let stream = tls_connect(b.addr, &connector(&ca.pem, None, &[version]))
            .await
            .unwrap_or_else(|e| panic!("{id} handshake: {e}"));
        assert_eq!(
            stream.get_ref().1.protocol_version(),
            Some(version.version),
            "negotiated version"
        );
        let mut c = RawClient::from_io(stream);
        assert_eq!(c.handshake(&Connect::v5(id)).await.code, 0);
        assert_eq!(c.subscribe("t/tls", 1).await, vec![1]);
        c.publish(integration::Publish::new("t/tls", b"over tls").qos(1, 0))
            .await;
        let p = c.recv_publish().await;
        assert_eq!(p.payload, b"over tls");
        // A large payload goes out beside its head in one vectored write, which the
        // TLS stream takes.
        let large: Vec<u8> = (0..100_000u32).map(|i| (i % 239) as u8).collect();
        c.publish(integration::Publish::new("t/tls", &large).qos(1, 0))
            .await;
        let p = c.recv_publish().await;
        assert!(p.payload == large, "{} bytes back", p.payload.len());
    }
    // Plain MQTT on the TLS port gets a TLS alert and a closed connection, no CONNACK.
    let mut plain = TcpStream::connect(b.addr).await.unwrap();
    plain
        .write_all(&Connect::v5("plain").bytes())
        .await
        .unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), plain.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "the broker closes the connection");
    assert_eq!(answer.first(), Some(&0x15), "a TLS alert: {answer:02x?}");
}

/// A TLS 1.1 ClientHello (record version 0x0301, client_version 0x0302), no extensions.
fn tls11_client_hello() -> Vec<u8> {
    let mut hello = vec![0x03, 0x02]; // client_version TLS 1.1
    hello.extend_from_slice(&[7; 32]); // random
    hello.push(0); // session id length
    hello.extend_from_slice(&[0x00, 0x04, 0x00, 0x2f, 0x00, 0x35]); // two AES-CBC suites
    hello.extend_from_slice(&[0x01, 0x00]); // compression: null
    let mut handshake = vec![0x01, 0x00, 0x00, hello.len() as u8];
    handshake.extend_from_slice(&hello);
    let mut record = vec![0x16, 0x03, 0x01, 0x00, handshake.len() as u8];
    record.extend_from_slice(&handshake);
    record
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_1_1_is_refused() {
    let (_dir, _ca, b) = tls_broker("broker").await;
    let mut tcp = TcpStream::connect(b.addr).await.unwrap();
    tcp.write_all(&tls11_client_hello()).await.unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "the broker closes the connection");
    assert_eq!(
        answer.first(),
        Some(&0x15),
        "a TLS alert record, not a ServerHello: {answer:02x?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mtls_refuses_missing_and_foreign_client_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("test CA");
    let clients = Ca::new("client CA");
    let rogue = Ca::new("rogue CA");
    let mut l = listener("mtls", ListenerProtocol::Tls);
    l.tls = Some(tls_table(
        dir.path(),
        &ca.server("broker"),
        Some(&clients),
        CertUsername::None,
    ));
    let b = TestBroker::start_listeners(with_listeners(vec![l])).await;

    let good = clients.client("device-1");
    let stream = tls_connect(b.addr, &connector(&ca.pem, Some(&good), &[&TLS13]))
        .await
        .unwrap();
    let mut c = RawClient::from_io(stream);
    assert_eq!(c.handshake(&Connect::v5("device-1")).await.code, 0);

    let foreign = rogue.client("device-2");
    for (what, cert) in [("no certificate", None), ("foreign CA", Some(&foreign))] {
        for version in [&TLS12, &TLS13] {
            let refused = match tls_connect(b.addr, &connector(&ca.pem, cert, &[version])).await {
                Err(_) => true,
                // TLS 1.3: the client learns of the refusal when it reads.
                Ok(mut s) => {
                    let _ = s.write_all(&Connect::v5("x").bytes()).await;
                    let mut buf = [0u8; 16];
                    !matches!(
                        tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await,
                        Ok(Ok(n)) if n > 0
                    )
                }
            };
            assert!(refused, "{what} over {version:?} must be refused");
        }
    }
    assert_healthy_tls(&b, &ca, &good).await;
}

async fn assert_healthy_tls(b: &TestBroker, ca: &Ca, client: &integration::tls::Issued) {
    let stream = tls_connect(b.addr, &connector(&ca.pem, Some(client), &[&TLS13]))
        .await
        .expect("TLS handshake with a good certificate");
    let mut c = RawClient::from_io(stream);
    assert_eq!(c.handshake(&Connect::v5("health")).await.code, 0);
    c.ping().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn username_from_certificate_authenticates_and_feeds_the_acl() {
    // The certificate's CN replaces the CONNECT username and authenticates a
    // password-less client where anonymous access is off; the ACL sees the name.
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("test CA");
    let clients = Ca::new("client CA");
    let mut tls = listener("mtls", ListenerProtocol::Tls);
    tls.tls = Some(tls_table(
        dir.path(),
        &ca.server("broker"),
        Some(&clients),
        CertUsername::Cn,
    ));
    let plain = listener("tcp", ListenerProtocol::Tcp);
    let mut config = with_listeners(vec![tls, plain]);
    config.auth.allow_anonymous = false;
    config.acl.default = Permission::Deny;
    config.acl.rules = vec![rule(
        "user:sensor-9",
        Action::All,
        "sensors/${username}/#",
        Permission::Allow,
    )];
    let b = TestBroker::start_listeners(config).await;

    let cert = clients.client("sensor-9");
    let stream = tls_connect(b.addrs[0], &connector(&ca.pem, Some(&cert), &[&TLS13]))
        .await
        .unwrap();
    let mut c = RawClient::from_io(stream);
    let ack = c
        .handshake(&Connect::v5("s9").credentials("someone-else", b""))
        .await;
    assert_eq!(ack.code, 0, "the certificate authenticates: {ack:?}");
    assert_eq!(
        c.subscribe("sensors/sensor-9/temp", 1).await,
        vec![1],
        "the ACL sees the certificate's name, not the CONNECT username"
    );
    assert_eq!(
        c.subscribe("sensors/someone-else/temp", 1).await,
        vec![0x87]
    );

    let mut anon = RawClient::connect(b.addrs[1]).await;
    let refused = anon.handshake(&Connect::v5("s9-plain")).await;
    assert_eq!(
        refused.code, 0x87,
        "without the certificate: not authorized"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reloaded_certificates_are_served_to_new_connections() {
    let (dir, ca, b) = tls_broker("first").await;
    let tls = connector(&ca.pem, None, &[&TLS13]);
    let before = tls_connect(b.addr, &tls).await.unwrap();
    assert!(serves(&before, "first"));
    let mut old = RawClient::from_io(before);
    assert_eq!(old.handshake(&Connect::v5("old")).await.code, 0);

    // A broken file keeps the running certificate.
    std::fs::write(dir.path().join("server.crt"), "garbage").unwrap();
    let errors = cauldron::server::reload_tls(&b.broker()).await;
    assert_eq!(errors.len(), 1, "the broken file is reported");
    assert!(
        errors[0].1.to_string().contains("server.crt"),
        "{}",
        errors[0].1
    );
    let still = tls_connect(b.addr, &tls).await.unwrap();
    assert!(serves(&still, "first"), "the running certificate stays");

    ca.server("second").write(dir.path(), "server");
    assert!(cauldron::server::reload_tls(&b.broker()).await.is_empty());
    let after = tls_connect(b.addr, &tls).await.unwrap();
    assert!(serves(&after, "second"), "the new certificate is served");
    old.ping().await; // connections made before the reload stay up
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewed_certificate_on_disk_is_served_without_a_sighup() {
    // Certificates are renewed in place (cert-manager, certbot): the server watches the
    // certificate, key and client CA files and reloads once a change has held for one
    // look (looks 2 s apart), a pair rewritten one file after the other only once both
    // have settled.
    let (dir, ca, b) = tls_broker("first").await;
    let tls = connector(&ca.pem, None, &[&TLS13]);
    let mut old = RawClient::from_io(tls_connect(b.addr, &tls).await.unwrap());
    assert_eq!(old.handshake(&Connect::v5("old")).await.code, 0);

    ca.server("second").write(dir.path(), "server");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let s = tls_connect(b.addr, &tls).await.unwrap();
        if serves(&s, "second") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the renewed certificate was not picked up"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    old.ping().await; // connections made before the reload stay up

    // A broken file keeps the running certificate.
    std::fs::write(dir.path().join("server.crt"), "garbage").unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let still = tls_connect(b.addr, &tls).await.unwrap();
    assert!(serves(&still, "second"), "the running certificate stays");
}

/// A broker with one TLS listener serving a certificate for `cn`, from files in the
/// returned folder (`server.crt`, `server.key`), signed by the returned CA.
async fn tls_broker(cn: &str) -> (tempfile::TempDir, Ca, TestBroker) {
    let dir = tempfile::tempdir().expect("temporary folder");
    let ca = Ca::new("test CA");
    let mut l = listener("tls", ListenerProtocol::Tls);
    l.tls = Some(tls_table(
        dir.path(),
        &ca.server(cn),
        None,
        CertUsername::None,
    ));
    let b = TestBroker::start_listeners(with_listeners(vec![l])).await;
    (dir, ca, b)
}

/// Whether the server certificate of `s` names `cn` (the CN's bytes appear in the DER).
fn serves(s: &tokio_rustls::client::TlsStream<TcpStream>, cn: &str) -> bool {
    let der = &s
        .get_ref()
        .1
        .peer_certificates()
        .expect("server certificates")[0];
    der.windows(cn.len()).any(|w| w == cn.as_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_certificate_file_stops_the_start_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("test CA");
    let mut l = listener("tls", ListenerProtocol::Tls);
    l.tls = Some(tls_table(
        dir.path(),
        &ca.server("broker"),
        None,
        CertUsername::None,
    ));
    let missing = dir.path().join("server.crt");
    std::fs::remove_file(&missing).unwrap();
    let e = with_listeners(vec![l]).validate().unwrap_err().to_string();
    assert!(e.contains("listeners.0.tls.cert_file"), "{e}");
    assert!(e.contains(&missing.display().to_string()), "{e}");
}
