//! What a plugin knows about a client: its [`Client`] record, its CONNECT [`Credentials`] and
//! why it went away ([`DisconnectReason`]).
//!
//! Plain Rust types with getters; the builders (`Client::new(..).with_*`) exist so that plugin
//! tests can make clients without a broker. Nothing here talks to the host.

use crate::message::QoS;

/// MQTT protocol version a client connected with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Protocol {
    /// MQTT 3.1 (protocol level 3).
    V31,
    /// MQTT 3.1.1 (protocol level 4).
    V311,
    /// MQTT 5.0 (protocol level 5).
    #[default]
    V5,
}

/// The last will a client registered in CONNECT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Will {
    /// Will topic.
    pub topic: String,
    /// Will QoS.
    pub qos: QoS,
    /// Will retain flag.
    pub retain: bool,
}

/// What the broker knows about a connected (or connecting) client.
///
/// ```
/// use cauldron_sdk::Client;
///
/// let client = Client::new("sensor-1")
///     .with_username("acme@sensor-1")
///     .with_attribute("tenant", "acme");
/// assert_eq!(client.client_id(), "sensor-1");
/// assert_eq!(client.attribute("tenant"), Some("acme"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    pub(crate) client_id: String,
    pub(crate) username: Option<String>,
    pub(crate) protocol: Protocol,
    pub(crate) remote_addr: String,
    pub(crate) listener: String,
    pub(crate) tls_peer: Option<String>,
    pub(crate) keep_alive_secs: u16,
    pub(crate) clean_start: bool,
    pub(crate) will: Option<Will>,
    pub(crate) attributes: Vec<(String, String)>,
}

impl Client {
    /// A client with this id, MQTT 5, no user name, no attributes, from `127.0.0.1:0` on
    /// listener `default`: a starting point for tests.
    pub fn new(client_id: impl Into<String>) -> Client {
        Client {
            client_id: client_id.into(),
            username: None,
            protocol: Protocol::V5,
            remote_addr: "127.0.0.1:0".to_owned(),
            listener: "default".to_owned(),
            tls_peer: None,
            keep_alive_secs: 60,
            clean_start: true,
            will: None,
            attributes: Vec::new(),
        }
    }

    /// Client identifier (assigned by the broker when the client sent none).
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// User name from CONNECT.
    pub fn username(&self) -> Option<&str> {
        self.username.as_deref()
    }

    /// Protocol version.
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// Remote socket address, `ip:port`.
    pub fn remote_addr(&self) -> &str {
        &self.remote_addr
    }

    /// Name of the listener the client connected to.
    pub fn listener(&self) -> &str {
        &self.listener
    }

    /// TLS client certificate subject, when the client presented one.
    pub fn tls_peer(&self) -> Option<&str> {
        self.tls_peer.as_deref()
    }

    /// Keep alive in seconds (0: none).
    pub fn keep_alive_secs(&self) -> u16 {
        self.keep_alive_secs
    }

    /// Clean session (3.1.1) / clean start (5.0).
    pub fn clean_start(&self) -> bool {
        self.clean_start
    }

    /// The will, if the client set one.
    pub fn will(&self) -> Option<&Will> {
        self.will.as_ref()
    }

    /// Attributes granted to the session by the authentication chain (empty in `on_connect`).
    pub fn attributes(&self) -> &[(String, String)] {
        &self.attributes
    }

    /// The value of the attribute named `key`, if granted.
    pub fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// This client with a user name.
    pub fn with_username(mut self, username: impl Into<String>) -> Client {
        self.username = Some(username.into());
        self
    }

    /// This client with another protocol version.
    pub fn with_protocol(mut self, protocol: Protocol) -> Client {
        self.protocol = protocol;
        self
    }

    /// This client with another remote address.
    pub fn with_remote_addr(mut self, addr: impl Into<String>) -> Client {
        self.remote_addr = addr.into();
        self
    }

    /// This client on another listener.
    pub fn with_listener(mut self, listener: impl Into<String>) -> Client {
        self.listener = listener.into();
        self
    }

    /// This client with a TLS peer identity.
    pub fn with_tls_peer(mut self, subject: impl Into<String>) -> Client {
        self.tls_peer = Some(subject.into());
        self
    }

    /// This client with another keep alive.
    pub fn with_keep_alive_secs(mut self, secs: u16) -> Client {
        self.keep_alive_secs = secs;
        self
    }

    /// This client with the clean start flag set or cleared.
    pub fn with_clean_start(mut self, clean_start: bool) -> Client {
        self.clean_start = clean_start;
        self
    }

    /// This client with a will.
    pub fn with_will(mut self, will: Will) -> Client {
        self.will = Some(will);
        self
    }

    /// This client with one more session attribute.
    pub fn with_attribute(mut self, key: impl Into<String>, value: impl Into<String>) -> Client {
        self.attributes.push((key.into(), value.into()));
        self
    }
}

/// Credentials from CONNECT.
///
/// ```
/// use cauldron_sdk::Credentials;
///
/// let creds = Credentials::new().with_username("alice").with_password("s3cret");
/// assert_eq!(creds.password_str(), Some("s3cret"));
/// ```
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Credentials {
    pub(crate) username: Option<String>,
    pub(crate) password: Option<Vec<u8>>,
}

impl Credentials {
    /// No user name and no password.
    pub fn new() -> Credentials {
        Credentials::default()
    }

    /// User name.
    pub fn username(&self) -> Option<&str> {
        self.username.as_deref()
    }

    /// Password bytes (MQTT passwords are binary data).
    pub fn password(&self) -> Option<&[u8]> {
        self.password.as_deref()
    }

    /// The password as text, `None` when absent or not UTF-8.
    pub fn password_str(&self) -> Option<&str> {
        self.password().and_then(|p| std::str::from_utf8(p).ok())
    }

    /// These credentials with a user name.
    pub fn with_username(mut self, username: impl Into<String>) -> Credentials {
        self.username = Some(username.into());
        self
    }

    /// These credentials with a password.
    pub fn with_password(mut self, password: impl Into<Vec<u8>>) -> Credentials {
        self.password = Some(password.into());
        self
    }
}

/// Debug output never shows the password.
impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// Why a client's connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DisconnectReason {
    /// The client sent DISCONNECT.
    Normal,
    /// The client sent DISCONNECT with reason 0x04 (publish the will).
    WithWill,
    /// The socket closed without DISCONNECT.
    ConnectionLost,
    /// The broker closed it for a protocol violation.
    ProtocolError,
    /// Keep alive expired.
    KeepAliveTimeout,
    /// Another connection took over the client id.
    TakenOver,
    /// The broker is shutting down.
    ServerShutdown,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attribute_finds_granted_value() {
        let c = Client::new("c").with_attribute("role", "admin");
        assert_eq!(c.attribute("role"), Some("admin"));
        assert_eq!(c.attribute("tenant"), None);
    }

    #[test]
    fn credentials_debug_redacts_password() {
        let creds = Credentials::new()
            .with_username("u")
            .with_password("hunter2");
        let shown = format!("{creds:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("redacted"));
    }

    #[test]
    fn binary_password_has_no_text_form() {
        let creds = Credentials::new().with_password(vec![0xff, 0x00]);
        assert_eq!(creds.password(), Some(&[0xff, 0x00][..]));
        assert_eq!(creds.password_str(), None);
    }
}
