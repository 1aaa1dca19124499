//! [`Identity`]: who a session is once the authentication chain accepted it. Built at
//! CONNECT from the username, the client id and whatever the authenticators granted
//! (plugin attributes, JWT claims, roles, token permissions); read by the ACL and the
//! plugins. Plain data: this module knows nothing about sockets, files or crypto.

use std::collections::BTreeMap;
use std::time::SystemTime;

/// The identity of one session.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identity {
    /// The client identifier (assigned ones included).
    pub client_id: String,
    /// The username the client presented, or the one an authenticator established
    /// (for example the certificate subject); `None` for anonymous clients.
    pub username: Option<String>,
    /// True when no authenticator vouched for the client (anonymous access).
    pub anonymous: bool,
    /// Roles or groups (ACL `role:NAME` / `group:NAME`).
    pub roles: Vec<String>,
    /// Attributes granted by plugins at connect (ACL placeholder `${attr.NAME}`).
    pub attributes: BTreeMap<String, String>,
    /// String-valued claims of a verified JWT (ACL placeholder `${claim.NAME}`).
    pub claims: BTreeMap<String, String>,
    /// Topic permissions carried by a token; checked before the configured rules.
    pub permissions: Option<TokenPermissions>,
    /// When the credentials stop being valid (JWT `exp`); the broker disconnects then.
    pub expires_at: Option<SystemTime>,
}

/// Topic filters a token allows for publish and subscribe.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenPermissions {
    /// Filters the client may publish to.
    pub publish: Vec<String>,
    /// Filters the client may subscribe to (and receive from).
    pub subscribe: Vec<String>,
}
