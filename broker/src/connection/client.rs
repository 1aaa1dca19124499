//! What a connection keeps of its client for the plugins: the [`ClientInfo`] record is
//! built from it on the first hook call, and most connections never make one.
//!
//! A `ClientInfo` is 200 bytes and repeats what the connection holds anyway (the client
//! id, the protocol). An anonymous client on a plain listener keeps its address, its
//! listener, its keep alive and its clean start inline; the username, the certificate
//! subject, the will and the attributes the chain granted are boxed, and only when one
//! is present.

use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6};
use std::sync::Arc;

use crate::plugin::{ClientInfo, WillInfo};
use crate::types::{ClientId, ProtocolVersion};

/// The client as the plugins see it, less the client id and the protocol.
#[derive(Debug)]
pub(crate) struct ClientRecord {
    remote_addr: Addr,
    listener: Arc<str>,
    keep_alive: u16,
    clean_start: bool,
    rest: Option<Box<Rest>>,
}

/// A client's address in 16 bytes rather than a `SocketAddr`'s 32: IPv4 inline, IPv6
/// boxed.
#[derive(Debug)]
enum Addr {
    V4(SocketAddrV4),
    V6(Box<SocketAddrV6>),
}

impl From<SocketAddr> for Addr {
    fn from(addr: SocketAddr) -> Self {
        match addr {
            SocketAddr::V4(a) => Addr::V4(a),
            SocketAddr::V6(a) => Addr::V6(Box::new(a)),
        }
    }
}

impl Addr {
    fn get(&self) -> SocketAddr {
        match self {
            Addr::V4(a) => SocketAddr::V4(*a),
            Addr::V6(a) => SocketAddr::V6(**a),
        }
    }
}

/// The parts most clients do not have.
#[derive(Debug, Default)]
struct Rest {
    username: Option<String>,
    tls_peer: Option<String>,
    will: Option<WillInfo>,
    attributes: Vec<(String, String)>,
}

impl ClientRecord {
    /// Keeps `info` (the record the authentication chain saw, with the attributes it
    /// granted) without its client id and protocol.
    pub(crate) fn new(info: ClientInfo) -> ClientRecord {
        let ClientInfo {
            client_id: _,
            username,
            protocol: _,
            remote_addr,
            listener,
            tls_peer,
            keep_alive,
            clean_start,
            will,
            attributes,
        } = info;
        let rest = Rest {
            username,
            tls_peer,
            will,
            attributes,
        };
        let empty = rest.username.is_none()
            && rest.tls_peer.is_none()
            && rest.will.is_none()
            && rest.attributes.is_empty();
        ClientRecord {
            remote_addr: remote_addr.into(),
            listener,
            keep_alive,
            clean_start,
            rest: (!empty).then(|| Box::new(rest)),
        }
    }

    /// The client's address.
    pub(crate) fn remote_addr(&self) -> SocketAddr {
        self.remote_addr.get()
    }

    /// The listener the client connected to.
    pub(crate) fn listener(&self) -> &Arc<str> {
        &self.listener
    }

    /// The full record again, for `client_id` on `protocol`.
    pub(crate) fn info(&self, client_id: &ClientId, protocol: ProtocolVersion) -> ClientInfo {
        let rest = self.rest.as_deref();
        ClientInfo {
            client_id: client_id.clone(),
            username: rest.and_then(|r| r.username.clone()),
            protocol,
            remote_addr: self.remote_addr.get(),
            listener: Arc::clone(&self.listener),
            tls_peer: rest.and_then(|r| r.tls_peer.clone()),
            keep_alive: self.keep_alive,
            clean_start: self.clean_start,
            will: rest.and_then(|r| r.will.clone()),
            attributes: rest.map(|r| r.attributes.clone()).unwrap_or_default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topic::TopicName;
    use crate::types::QoS;

    fn anonymous() -> ClientInfo {
        ClientInfo {
            client_id: ClientId::new("c1"),
            username: None,
            protocol: ProtocolVersion::V5,
            remote_addr: "127.0.0.1:4000".parse().unwrap(),
            listener: "plain".into(),
            tls_peer: None,
            keep_alive: 30,
            clean_start: true,
            will: None,
            attributes: Vec::new(),
        }
    }

    #[test]
    fn an_anonymous_client_is_kept_without_a_box_and_given_back_whole() {
        let info = anonymous();
        let record = ClientRecord::new(info.clone());
        assert!(record.rest.is_none());
        assert_eq!(record.info(&info.client_id, info.protocol), info);
    }

    #[test]
    fn username_subject_will_and_attributes_come_back_as_they_went_in() {
        let info = ClientInfo {
            username: Some("alice".into()),
            tls_peer: Some("CN=alice".into()),
            will: Some(WillInfo {
                topic: TopicName::new("w/alice").unwrap(),
                qos: QoS::AtLeastOnce,
                retain: true,
            }),
            attributes: vec![("tenant".into(), "a".into())],
            clean_start: false,
            protocol: ProtocolVersion::V3_1_1,
            ..anonymous()
        };
        let record = ClientRecord::new(info.clone());
        assert!(record.rest.is_some());
        assert_eq!(record.info(&info.client_id, info.protocol), info);
    }

    #[test]
    fn an_ipv6_address_and_port_come_back_whole() {
        let info = ClientInfo {
            remote_addr: "[2001:db8::7%3]:61000".parse().unwrap(),
            ..anonymous()
        };
        let record = ClientRecord::new(info.clone());
        assert_eq!(record.info(&info.client_id, info.protocol), info);
    }

    #[test]
    fn the_record_is_smaller_than_the_client_info_it_replaces() {
        // 200 bytes of `Arc<ClientInfo>` (216 with the counts) per connection before;
        // 64 with a whole `SocketAddr` inline.
        let size = std::mem::size_of::<ClientRecord>();
        assert!(size <= 48, "ClientRecord is {size} bytes");
    }
}
