//! The transport settings of one listener: its protocol (`tcp`, `tls`, `ws`, `wss`), the
//! PROXY protocol switch, the WebSocket path and the `[listeners.tls]` table, with their
//! validation. Plain values only: loading certificates is the transport layer's job.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::ListenerConfig;
use super::validate::{Violation, violation};

/// What a listener speaks on top of TCP.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ListenerProtocol {
    /// Plain MQTT over TCP.
    #[default]
    Tcp,
    /// MQTT over TLS 1.2 or 1.3.
    Tls,
    /// MQTT over WebSocket (binary frames, subprotocol `mqtt`).
    Ws,
    /// MQTT over WebSocket over TLS.
    Wss,
}

impl ListenerProtocol {
    /// True for `tls` and `wss`.
    pub fn uses_tls(self) -> bool {
        matches!(self, ListenerProtocol::Tls | ListenerProtocol::Wss)
    }

    /// True for `ws` and `wss`.
    pub fn uses_websocket(self) -> bool {
        matches!(self, ListenerProtocol::Ws | ListenerProtocol::Wss)
    }

    /// The name used in the configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            ListenerProtocol::Tcp => "tcp",
            ListenerProtocol::Tls => "tls",
            ListenerProtocol::Ws => "ws",
            ListenerProtocol::Wss => "wss",
        }
    }
}

/// Where the username comes from when a client presents a verified certificate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CertUsername {
    /// The CONNECT username is kept.
    #[default]
    None,
    /// The subject's Common Name.
    Cn,
    /// The whole subject, RFC 4514 style (`CN=dev1, O=Acme`).
    Subject,
}

/// The `[listeners.tls]` table of a `tls` or `wss` listener.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain, leaf first (relative to the working directory).
    pub cert_file: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
    /// PEM CA certificates; when set, client certificates are verified against them (mTLS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ca_file: Option<PathBuf>,
    /// Whether a client must present a certificate; defaults to true when
    /// `client_ca_file` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub require_client_cert: Option<bool>,
    /// `none`, `cn` or `subject`: the username taken from a verified client certificate.
    #[serde(default)]
    pub username_from_cert: CertUsername,
}

impl TlsConfig {
    /// Whether clients must present a certificate (the default with a client CA).
    pub fn requires_client_cert(&self) -> bool {
        self.require_client_cert
            .unwrap_or(self.client_ca_file.is_some())
    }
}

/// Checks the transport keys of listener `i`.
pub(super) fn check_transport(i: usize, l: &ListenerConfig) -> Result<(), Violation> {
    let protocol = l.protocol.as_str();
    match (&l.tls, l.protocol.uses_tls()) {
        (None, true) => {
            return Err(violation(
                format!("listeners.{i}.tls"),
                format!("a [listeners.tls] table is required when protocol is \"{protocol}\""),
            ));
        }
        (Some(_), false) => {
            return Err(violation(
                format!("listeners.{i}.tls"),
                format!("only tls and wss listeners take a tls table, protocol is \"{protocol}\""),
            ));
        }
        _ => {}
    }
    if l.protocol.uses_websocket() && !valid_ws_path(&l.ws_path) {
        return Err(violation(
            format!("listeners.{i}.ws_path"),
            format!(
                "must start with `/` and hold no spaces, got `{}`",
                l.ws_path
            ),
        ));
    }
    match &l.tls {
        Some(tls) => check_tls(i, tls),
        None => Ok(()),
    }
}

fn valid_ws_path(path: &str) -> bool {
    path.starts_with('/') && !path.contains(char::is_whitespace) && !path.contains(['?', '#'])
}

fn check_tls(i: usize, tls: &TlsConfig) -> Result<(), Violation> {
    check_file(&format!("listeners.{i}.tls.cert_file"), &tls.cert_file)?;
    check_file(&format!("listeners.{i}.tls.key_file"), &tls.key_file)?;
    if let Some(ca) = &tls.client_ca_file {
        check_file(&format!("listeners.{i}.tls.client_ca_file"), ca)?;
    } else {
        if tls.require_client_cert == Some(true) {
            return Err(violation(
                format!("listeners.{i}.tls.require_client_cert"),
                "needs client_ca_file to verify client certificates against",
            ));
        }
        if tls.username_from_cert != CertUsername::None {
            return Err(violation(
                format!("listeners.{i}.tls.username_from_cert"),
                "needs client_ca_file: only verified certificates give a username",
            ));
        }
    }
    Ok(())
}

/// The file must be named and exist (it is read when the server starts).
fn check_file(key: &str, path: &Path) -> Result<(), Violation> {
    if path.as_os_str().is_empty() {
        return Err(violation(key, "must not be empty"));
    }
    if !path.is_file() {
        return Err(violation(
            key,
            format!("file `{}` does not exist or is not a file", path.display()),
        ));
    }
    Ok(())
}
