//! PROXY protocol v1 (text) and v2 (binary) headers, as sent by HAProxy and most load
//! balancers in front of a listener with `proxy_protocol = true`. The header's source
//! address stands for the client's. Parsing is strict: the stream must start with a
//! complete, valid header; anything else closes the connection. Bytes read past the
//! header are replayed to the next layer by [`Rewind`].
//!
//! This module knows only bytes and addresses (parsing by the `ppp` crate).

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use ppp::HeaderResult;
use ppp::v1;
use ppp::v2;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

/// The v2 signature (12 bytes).
const V2_SIGNATURE: &[u8] = b"\r\n\r\n\0\r\nQUIT\n";
/// The v1 prefix.
const V1_PREFIX: &[u8] = b"PROXY ";
/// A v1 header is at most 107 bytes, CRLF included.
const V1_MAX: usize = 107;
/// Largest v2 header accepted (16 bytes plus addresses and TLVs).
const V2_MAX: usize = 4096;

/// Why a PROXY header was refused.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The stream does not start with a PROXY protocol signature.
    #[error("connection does not start with a PROXY protocol header")]
    Missing,
    /// The header is malformed.
    #[error("invalid PROXY protocol header: {0}")]
    Invalid(String),
    /// The header is longer than allowed.
    #[error("PROXY protocol header longer than {0} bytes")]
    TooLong(usize),
    /// The connection closed before the header was complete.
    #[error("connection closed inside the PROXY protocol header")]
    Truncated,
    /// Reading failed.
    #[error("i/o error reading the PROXY protocol header: {0}")]
    Io(#[from] io::Error),
}

/// A parsed header: its length and the client address it carries (`None` for v1
/// `UNKNOWN`, v2 `LOCAL` and non-IP families, where the real peer address stays).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Bytes the header occupies at the start of the stream.
    pub len: usize,
    /// The original client address.
    pub source: Option<SocketAddr>,
}

/// Parses the header at the start of `buf`: `Ok(None)` when more bytes are needed.
///
/// Where the header ends is found here, not by the parser: a v1 header at its CRLF, a
/// v2 header from its length field. Given a v1 header cut short, `ppp` parsed what it
/// had and could refuse a valid header that arrived in two reads ("PROXY TCP4 0.0.0.0
/// 10.0.0.1 0 " was an invalid destination port, the "1883\r\n" still to come).
pub fn parse(buf: &[u8]) -> Result<Option<Header>, Error> {
    let v2 = is_prefix(buf, V2_SIGNATURE);
    if !v2 && !is_prefix(buf, V1_PREFIX) {
        return Err(Error::Missing);
    }
    let (limit, end) = if v2 {
        (V2_MAX, v2_end(buf))
    } else {
        (
            V1_MAX,
            buf.windows(2).position(|w| w == b"\r\n").map(|at| at + 2),
        )
    };
    let Some(end) = end else {
        // [PROXY v1] the line is at most 107 bytes, CRLF included.
        if buf.len() >= limit {
            return Err(Error::TooLong(limit));
        }
        return Ok(None);
    };
    if end > limit {
        return Err(Error::TooLong(limit));
    }
    if end > buf.len() {
        return Ok(None);
    }
    let header = match HeaderResult::parse(&buf[..end]) {
        HeaderResult::V1(Ok(h)) => Header {
            len: h.header.len(),
            source: match h.addresses {
                v1::Addresses::Tcp4(a) => Some(SocketAddr::from((a.source_address, a.source_port))),
                v1::Addresses::Tcp6(a) => Some(SocketAddr::from((a.source_address, a.source_port))),
                v1::Addresses::Unknown => None,
            },
        },
        HeaderResult::V2(Ok(h)) => Header {
            len: h.len(),
            source: match (h.command, h.addresses) {
                (v2::Command::Local, _) => None,
                (_, v2::Addresses::IPv4(a)) => {
                    Some(SocketAddr::from((a.source_address, a.source_port)))
                }
                (_, v2::Addresses::IPv6(a)) => {
                    Some(SocketAddr::from((a.source_address, a.source_port)))
                }
                _ => None,
            },
        },
        HeaderResult::V1(Err(e)) => return Err(Error::Invalid(e.to_string())),
        HeaderResult::V2(Err(e)) => return Err(Error::Invalid(e.to_string())),
    };
    if header.len != end {
        // The parser and the framing disagree: refuse rather than guess.
        return Err(Error::Invalid(format!(
            "header of {} bytes parsed as {}",
            end, header.len
        )));
    }
    Ok(Some(header))
}

/// The length of the v2 header at the start of `buf` (16 bytes, then as many as its
/// length field says), once those 16 bytes are there.
fn v2_end(buf: &[u8]) -> Option<usize> {
    let field = buf.get(14..16)?;
    Some(16 + usize::from(u16::from_be_bytes([field[0], field[1]])))
}

/// Whether `buf` and `signature` agree on their common length.
fn is_prefix(buf: &[u8], signature: &[u8]) -> bool {
    let n = buf.len().min(signature.len());
    buf[..n] == signature[..n]
}

/// Reads the header from `stream`. Returns the client address (the header's source,
/// or `peer` when it carries none) and the stream with any bytes read past the header
/// put back in front. The caller bounds the time this may take.
pub async fn accept<S: AsyncRead + Unpin>(
    mut stream: S,
    peer: SocketAddr,
) -> Result<(Rewind<S>, SocketAddr), Error> {
    let mut buf = BytesMut::with_capacity(256);
    loop {
        if stream.read_buf(&mut buf).await? == 0 {
            return Err(Error::Truncated);
        }
        if let Some(header) = parse(&buf)? {
            buf.advance(header.len);
            let addr = header.source.unwrap_or(peer);
            return Ok((Rewind::new(buf.freeze(), stream), addr));
        }
    }
}

/// A stream with some bytes already read from it put back in front.
pub struct Rewind<S> {
    prefix: Bytes,
    inner: S,
}

impl<S> Rewind<S> {
    /// `prefix` is read before `inner`.
    pub fn new(prefix: Bytes, inner: S) -> Rewind<S> {
        Rewind { prefix, inner }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Rewind<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix[..n]);
            self.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Rewind<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
#[path = "proxy_tests.rs"]
mod tests;
