//! Transports: what runs between an accepted TCP connection and the MQTT byte stream.
//! Per listener, in this order: an optional PROXY protocol header ([`proxy`]), TLS
//! ([`tls`], for `tls` and `wss`), and the WebSocket upgrade ([`ws`], for `ws` and
//! `wss`). The result is a boxed byte stream plus the [`Peer`] it came from.
//!
//! This module knows sockets, TLS and HTTP; it knows nothing about MQTT packets,
//! sessions or authentication. The connection task runs [`Transport::establish`], so a
//! slow handshake never holds up the accept loop.

pub mod proxy;
pub mod tls;
pub mod ws;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite, ReadHalf, WriteHalf};
use tokio::net::TcpStream;

use crate::config::{ListenerConfig, ListenerProtocol};

/// Any byte stream the connection layer can serve.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Stream for T {}

/// A stream behind a vtable: TLS over PROXY over TCP and the like.
pub type BoxStream = Box<dyn Stream>;

/// A byte stream whose reading and writing halves a connection uses at once (a read
/// and a write are in flight together in its event loop).
///
/// A plain TCP stream splits by borrowing: no allocation and no lock per poll. Other
/// streams are split once, when they are served ([`Split`]). `Unpin`: a parked
/// connection's task holds its stream inline and moves it into each active phase.
pub trait Duplex: Send + Unpin + 'static {
    /// The reading half, borrowed.
    type Reader<'a>: AsyncRead + Unpin + Send
    where
        Self: 'a;
    /// The writing half, borrowed.
    type Writer<'a>: AsyncWrite + Unpin + Send
    where
        Self: 'a;
    /// Both halves.
    fn halves(&mut self) -> (Self::Reader<'_>, Self::Writer<'_>);
}

impl Duplex for TcpStream {
    type Reader<'a> = tokio::net::tcp::ReadHalf<'a>;
    type Writer<'a> = tokio::net::tcp::WriteHalf<'a>;

    fn halves(&mut self) -> (Self::Reader<'_>, Self::Writer<'_>) {
        self.split()
    }
}

/// Any other stream, split once into two halves that share it behind a lock
/// (`tokio::io::split`: one allocation per connection).
pub struct Split<S> {
    reader: ReadHalf<S>,
    writer: WriteHalf<S>,
}

impl<S: AsyncRead + AsyncWrite> Split<S> {
    /// Splits `stream`.
    pub fn new(stream: S) -> Self {
        let (reader, writer) = tokio::io::split(stream);
        Split { reader, writer }
    }
}

impl<S: AsyncRead + AsyncWrite + Send + 'static> Duplex for Split<S> {
    type Reader<'a> = &'a mut ReadHalf<S>;
    type Writer<'a> = &'a mut WriteHalf<S>;

    fn halves(&mut self) -> (Self::Reader<'_>, Self::Writer<'_>) {
        (&mut self.reader, &mut self.writer)
    }
}

/// Where a connection comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// The client address: the TCP peer, or the PROXY header's source.
    pub addr: SocketAddr,
    /// The verified client certificate, on TLS listeners.
    pub tls: Option<TlsPeer>,
}

/// What a verified client certificate says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsPeer {
    /// The subject, RFC 4514 style (`CN=dev1, O=Acme`).
    pub subject: String,
    /// The username it gives per `username_from_cert`, if any.
    pub username: Option<String>,
}

/// Why a connection's transport could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The PROXY header is missing or invalid.
    #[error(transparent)]
    Proxy(#[from] proxy::Error),
    /// The TLS handshake failed.
    #[error("tls handshake failed: {0}")]
    Tls(std::io::Error),
    /// The WebSocket upgrade failed.
    #[error("websocket upgrade failed: {0}")]
    WebSocket(#[from] tokio_tungstenite::tungstenite::Error),
}

/// One listener's transport stack.
pub struct Transport {
    protocol: ListenerProtocol,
    proxy_protocol: bool,
    ws_path: String,
    ws_max_message_bytes: usize,
    tls: Option<Arc<tls::TlsState>>,
}

impl Transport {
    /// The stack for `listener`, certificates loaded. `max_packet_bytes` sizes the
    /// largest WebSocket message (a packet plus room for small ones batched with it).
    pub fn from_config(
        listener: &ListenerConfig,
        max_packet_bytes: u32,
    ) -> Result<Transport, tls::Error> {
        let tls = match (&listener.tls, listener.protocol.uses_tls()) {
            (Some(settings), true) => Some(Arc::new(tls::TlsState::load(settings)?)),
            _ => None,
        };
        Ok(Transport {
            protocol: listener.protocol,
            proxy_protocol: listener.proxy_protocol,
            ws_path: listener.ws_path.clone(),
            ws_max_message_bytes: (max_packet_bytes as usize).saturating_add(64 * 1024),
            tls,
        })
    }

    /// True for plain TCP without a PROXY header: the socket is served as it is.
    pub fn is_plain(&self) -> bool {
        self.protocol == ListenerProtocol::Tcp && !self.proxy_protocol
    }

    /// The listener's TLS state, for reloads.
    pub fn tls(&self) -> Option<&Arc<tls::TlsState>> {
        self.tls.as_ref()
    }

    /// Reads the PROXY header, runs the TLS handshake and the WebSocket upgrade, as
    /// configured. The caller bounds the time this takes.
    pub async fn establish(
        &self,
        tcp: TcpStream,
        addr: SocketAddr,
    ) -> Result<(BoxStream, Peer), Error> {
        let (stream, addr): (BoxStream, SocketAddr) = if self.proxy_protocol {
            let (stream, addr) = proxy::accept(tcp, addr).await?;
            (Box::new(stream), addr)
        } else {
            (Box::new(tcp), addr)
        };
        let (stream, tls): (BoxStream, _) = match &self.tls {
            Some(state) => {
                let (stream, peer) = state.accept(stream).await.map_err(Error::Tls)?;
                (Box::new(stream), peer)
            }
            None => (stream, None),
        };
        let stream: BoxStream = if self.protocol.uses_websocket() {
            Box::new(ws::accept(stream, &self.ws_path, self.ws_max_message_bytes).await?)
        } else {
            stream
        };
        Ok((stream, Peer { addr, tls }))
    }
}
