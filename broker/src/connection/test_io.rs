//! What the connection tests share: a connection served over an in-memory stream, the
//! CONNECT they send, reads that give up after a while, and polls of a connection by
//! hand.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, DuplexStream};
use tokio_util::sync::CancellationToken;

use crate::broker::Broker;
use crate::transport::{Peer, Split};

/// Serves `stream`, the broker's end of an in-memory connection, on its own task.
pub(super) fn spawn_served<S>(broker: &Arc<Broker>, stream: S)
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    tokio::spawn(served(broker, stream));
}

/// The future that serves `stream`, for a test to spawn or to poll by hand.
pub(super) fn served<S>(
    broker: &Arc<Broker>,
    stream: S,
) -> Pin<Box<impl Future<Output = ()> + Send + 'static>>
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let peer = Peer {
        addr: std::net::SocketAddr::from(([127, 0, 0, 1], 1)),
        tls: None,
    };
    Box::pin(super::serve(
        Split::new(stream),
        peer,
        "x".into(),
        Arc::clone(broker),
        CancellationToken::new(),
    ))
}

/// CONNECT, MQTT 3.1.1, keep alive 60 s, client id `id`, clean session or not.
pub(super) fn connect_v4(id: &str, clean: bool) -> Vec<u8> {
    let flags = if clean { 0x02 } else { 0x00 };
    let mut connect = vec![0x10, 12 + id.len() as u8, 0, 4, b'M', b'Q', b'T', b'T', 4];
    connect.extend_from_slice(&[flags, 0, 60, 0, id.len() as u8]);
    connect.extend_from_slice(id.as_bytes());
    connect
}

/// Reads exactly `n` bytes, failing the test when they do not come `within`.
pub(super) async fn read(client: &mut DuplexStream, n: usize, within: Duration) -> Vec<u8> {
    let mut buf = vec![0; n];
    tokio::time::timeout(within, client.read_exact(&mut buf))
        .await
        .unwrap_or_else(|_| panic!("no {n} bytes within {within:?}"))
        .unwrap();
    buf
}

/// Counts wake-ups.
#[derive(Default)]
pub(super) struct Counter(AtomicUsize);

impl Wake for Counter {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// Polls the task once; true when it was woken during the poll (it yielded).
pub(super) fn poll_once<F: Future>(task: Pin<&mut F>, counter: &Arc<Counter>) -> bool {
    let waker = Waker::from(Arc::clone(counter));
    let before = counter.0.load(Ordering::SeqCst);
    let polled = task.poll(&mut Context::from_waker(&waker));
    assert!(matches!(polled, Poll::Pending), "the connection ended");
    counter.0.load(Ordering::SeqCst) > before
}

/// A single-threaded runtime for one test.
pub(super) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// `S` without vectored writes (as a WebSocket stream): every write is one buffer.
pub(super) struct NotVectored<S>(pub S);

impl<S: AsyncRead + Unpin> AsyncRead for NotVectored<S> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for NotVectored<S> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_shutdown(cx)
    }
}
