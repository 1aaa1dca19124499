//! Issue 5, network part: TLS and mTLS listeners, usernames from client
//! certificates, certificate reload, MQTT over WebSocket (MQTT 5.0 section 6) and
//! the PROXY protocol. Certificates are made per test with rcgen.

mod proxy;
mod tls;
mod ws;

use std::path::Path;

use cauldron::config::{CertUsername, Config, ListenerConfig, ListenerProtocol, TlsConfig};
use integration::tls::{Ca, Issued};

/// A listener named `name` speaking `protocol`.
pub fn listener(name: &str, protocol: ListenerProtocol) -> ListenerConfig {
    ListenerConfig {
        name: name.into(),
        protocol,
        ..ListenerConfig::default()
    }
}

/// The TLS table for `server` (files written into `dir`), verifying clients
/// against `client_ca` when given.
pub fn tls_table(
    dir: &Path,
    server: &Issued,
    client_ca: Option<&Ca>,
    username_from_cert: CertUsername,
) -> TlsConfig {
    let (cert_file, key_file) = server.write(dir, "server");
    let client_ca_file = client_ca.map(|ca| {
        let path = dir.join("client-ca.crt");
        std::fs::write(&path, &ca.pem).expect("write the client CA");
        path
    });
    TlsConfig {
        cert_file,
        key_file,
        client_ca_file,
        require_client_cert: None,
        username_from_cert,
    }
}

/// A config with exactly these listeners.
pub fn with_listeners(listeners: Vec<ListenerConfig>) -> Config {
    Config {
        listeners,
        ..Config::default()
    }
}
