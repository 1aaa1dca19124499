//! What hooks answer: [`ConnectDecision`], [`SubscribeDecision`], [`Verdict`], the [`Hooks`] a
//! plugin declares, and the MQTT 5 [`reason`] codes refusals carry.
//!
//! The SDK does not police the answers (a reason code below 0x80, a QoS above the requested
//! one): the broker validates every answer and treats an invalid one as a plugin failure.

use std::ops::BitOr;

use crate::message::{Message, QoS};

/// MQTT 5 reason codes a plugin may refuse with (MQTT 5.0 section 2.4, table 2-6).
///
/// MQTT 3.1.1 clients see the nearest 3.1.1 equivalent. Each packet allows only some codes:
/// the list says where each one is valid.
pub mod reason {
    /// 0x80, unspecified error (CONNACK, PUBACK, PUBREC, SUBACK).
    pub const UNSPECIFIED_ERROR: u8 = 0x80;
    /// 0x83, implementation specific error (CONNACK, PUBACK, PUBREC, SUBACK).
    pub const IMPLEMENTATION_SPECIFIC_ERROR: u8 = 0x83;
    /// 0x85, client identifier not valid (CONNACK).
    pub const CLIENT_IDENTIFIER_NOT_VALID: u8 = 0x85;
    /// 0x86, bad user name or password (CONNACK).
    pub const BAD_USERNAME_OR_PASSWORD: u8 = 0x86;
    /// 0x87, not authorized (CONNACK, PUBACK, PUBREC, SUBACK): the default of the helpers.
    pub const NOT_AUTHORIZED: u8 = 0x87;
    /// 0x8A, banned (CONNACK).
    pub const BANNED: u8 = 0x8A;
    /// 0x8F, topic filter invalid (SUBACK).
    pub const TOPIC_FILTER_INVALID: u8 = 0x8F;
    /// 0x90, topic name invalid (CONNACK for the will, PUBACK, PUBREC).
    pub const TOPIC_NAME_INVALID: u8 = 0x90;
    /// 0x96, message rate too high: valid in DISCONNECT only, so not in a PUBACK; use
    /// [`QUOTA_EXCEEDED`] to drop a message for its rate.
    pub const MESSAGE_RATE_TOO_HIGH: u8 = 0x96;
    /// 0x97, quota exceeded (CONNACK, PUBACK, PUBREC, SUBACK).
    pub const QUOTA_EXCEEDED: u8 = 0x97;
    /// 0x99, payload format invalid (CONNACK for the will, PUBACK, PUBREC).
    pub const PAYLOAD_FORMAT_INVALID: u8 = 0x99;
}

/// The set of hooks a plugin implements; the broker never calls the others.
///
/// `|` combines sets at run time; in a `const` use [`Hooks::union`]:
///
/// ```
/// use cauldron_sdk::Hooks;
///
/// const MINE: Hooks = Hooks::CONNECT.union(Hooks::PUBLISH);
/// assert!(MINE.contains(Hooks::PUBLISH));
/// assert!(!MINE.contains(Hooks::SUBSCRIBE));
/// assert_eq!(MINE, Hooks::CONNECT | Hooks::PUBLISH);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Hooks(u8);

impl Hooks {
    /// No hook: the plugin only runs `init`.
    pub const NONE: Hooks = Hooks(0);
    /// `on_connect`.
    pub const CONNECT: Hooks = Hooks(1);
    /// `on_subscribe`.
    pub const SUBSCRIBE: Hooks = Hooks(1 << 1);
    /// `on_publish`.
    pub const PUBLISH: Hooks = Hooks(1 << 2);
    /// `on_disconnect`.
    pub const DISCONNECT: Hooks = Hooks(1 << 3);
    /// Every hook.
    pub const ALL: Hooks = Hooks(0b1111);

    /// Both sets.
    pub const fn union(self, other: Hooks) -> Hooks {
        Hooks(self.0 | other.0)
    }

    /// True when every hook of `other` is in `self`.
    pub const fn contains(self, other: Hooks) -> bool {
        self.0 & other.0 == other.0
    }

    /// The set as bits, in the order of the WIT `hook-set` flags (connect = bit 0).
    pub const fn bits(self) -> u8 {
        self.0
    }
}

impl BitOr for Hooks {
    type Output = Hooks;

    fn bitor(self, rhs: Hooks) -> Hooks {
        self.union(rhs)
    }
}

/// Answer of [`Plugin::on_connect`](crate::Plugin::on_connect).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectDecision {
    /// Accept the client and grant these attributes (key, value) to its session.
    Allow(Vec<(String, String)>),
    /// Refuse the client: CONNACK carries `code` (0x80 and above).
    Deny {
        /// MQTT 5 reason code, see [`reason`].
        code: u8,
        /// Reason string for MQTT 5 clients that asked for problem information.
        reason: String,
    },
    /// No opinion: the next plugin in the chain decides.
    NoOpinion,
}

impl ConnectDecision {
    /// Accept without granting attributes.
    pub fn allow() -> ConnectDecision {
        ConnectDecision::Allow(Vec::new())
    }

    /// Accept and grant these attributes to the session.
    ///
    /// ```
    /// use cauldron_sdk::ConnectDecision;
    ///
    /// let d = ConnectDecision::allow_with([("role", "admin"), ("tenant", "acme")]);
    /// assert_eq!(
    ///     d,
    ///     ConnectDecision::Allow(vec![
    ///         ("role".to_owned(), "admin".to_owned()),
    ///         ("tenant".to_owned(), "acme".to_owned()),
    ///     ])
    /// );
    /// ```
    pub fn allow_with<K, V>(attributes: impl IntoIterator<Item = (K, V)>) -> ConnectDecision
    where
        K: Into<String>,
        V: Into<String>,
    {
        ConnectDecision::Allow(
            attributes
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }

    /// Refuse with 0x87 (not authorized).
    pub fn deny(reason: impl Into<String>) -> ConnectDecision {
        ConnectDecision::deny_with(reason::NOT_AUTHORIZED, reason)
    }

    /// Refuse with a reason code of your choice (0x80 and above, valid in CONNACK).
    pub fn deny_with(code: u8, reason: impl Into<String>) -> ConnectDecision {
        ConnectDecision::Deny {
            code,
            reason: reason.into(),
        }
    }
}

/// Answer of [`Plugin::on_subscribe`](crate::Plugin::on_subscribe).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubscribeDecision {
    /// Grant the subscription with this QoS (never above the requested one).
    Allow(QoS),
    /// Refuse the subscription: SUBACK carries `code` (0x80 and above).
    Deny {
        /// MQTT 5 reason code, see [`reason`].
        code: u8,
        /// Reason string for MQTT 5 clients that asked for problem information.
        reason: String,
    },
    /// No opinion: the next plugin in the chain decides.
    NoOpinion,
}

impl SubscribeDecision {
    /// Refuse with 0x87 (not authorized).
    pub fn deny(reason: impl Into<String>) -> SubscribeDecision {
        SubscribeDecision::deny_with(reason::NOT_AUTHORIZED, reason)
    }

    /// Refuse with a reason code of your choice (0x80 and above, valid in SUBACK).
    pub fn deny_with(code: u8, reason: impl Into<String>) -> SubscribeDecision {
        SubscribeDecision::Deny {
            code,
            reason: reason.into(),
        }
    }
}

/// Answer of [`Plugin::on_publish`](crate::Plugin::on_publish).
///
/// ```
/// use cauldron_sdk::{Message, Verdict, reason};
///
/// let v = Verdict::drop("blocked");
/// assert_eq!(v, Verdict::Drop { code: reason::NOT_AUTHORIZED, reason: "blocked".into() });
/// let v = Verdict::Replace(Message::new("new/topic", "payload"));
/// assert!(matches!(v, Verdict::Replace(_)));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Verdict {
    /// Pass the message on unchanged.
    #[default]
    Continue,
    /// Pass this message on instead; later plugins see the replacement.
    Replace(Message),
    /// Drop the message; MQTT 5 publishers see `code` in PUBACK/PUBREC.
    Drop {
        /// MQTT 5 reason code (0x80 and above, valid in PUBACK), see [`reason`].
        code: u8,
        /// Reason string for MQTT 5 clients that asked for problem information.
        reason: String,
    },
}

impl Verdict {
    /// Drop with 0x87 (not authorized).
    pub fn drop(reason: impl Into<String>) -> Verdict {
        Verdict::drop_with(reason::NOT_AUTHORIZED, reason)
    }

    /// Drop with a reason code of your choice (0x80 and above, valid in PUBACK).
    pub fn drop_with(code: u8, reason: impl Into<String>) -> Verdict {
        Verdict::Drop {
            code,
            reason: reason.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hooks_bits_follow_wit_flag_order() {
        assert_eq!(Hooks::CONNECT.bits(), 1);
        assert_eq!(Hooks::SUBSCRIBE.bits(), 2);
        assert_eq!(Hooks::PUBLISH.bits(), 4);
        assert_eq!(Hooks::DISCONNECT.bits(), 8);
        assert_eq!(
            Hooks::CONNECT | Hooks::SUBSCRIBE | Hooks::PUBLISH | Hooks::DISCONNECT,
            Hooks::ALL
        );
        assert!(Hooks::ALL.contains(Hooks::NONE));
        assert!(!Hooks::NONE.contains(Hooks::CONNECT));
    }

    #[test]
    fn deny_helpers_use_not_authorized() {
        assert_eq!(
            ConnectDecision::deny("no"),
            ConnectDecision::Deny {
                code: 0x87,
                reason: "no".into()
            }
        );
        assert_eq!(
            SubscribeDecision::deny("no"),
            SubscribeDecision::Deny {
                code: 0x87,
                reason: "no".into()
            }
        );
        assert_eq!(
            Verdict::drop_with(reason::QUOTA_EXCEEDED, "slow down"),
            Verdict::Drop {
                code: 0x97,
                reason: "slow down".into()
            }
        );
    }

    #[test]
    fn allow_without_attributes_grants_nothing() {
        assert_eq!(ConnectDecision::allow(), ConnectDecision::Allow(vec![]));
    }
}
