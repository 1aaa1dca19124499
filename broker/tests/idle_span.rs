//! A connection's tracing span costs a few hundred bytes in the subscriber's registry
//! while it is open: 0.5 KiB per idle connection at the default `info` level, about a
//! third of all that an idle connection holds. A connection keeps its span while it
//! works and none while it waits cold, and has it back on its next packet.
//!
//! Its own test binary: tracing caches which callsites are enabled process-wide, and a
//! thread-local subscriber in a test binary that runs other tests in parallel does not
//! reliably see every span.
#![allow(clippy::unwrap_used)] // a test: a failed step is a failed test

use std::sync::Arc;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Duration;

use cauldron::config::{Config, StorageBackend};
use cauldron::server::Server;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;
use tracing::Subscriber;
use tracing::span::{Attributes, Id};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

/// Counts the open `conn` spans, and the client ids recorded on them.
struct ConnSpans(Arc<AtomicIsize>, Arc<AtomicIsize>);

/// Counts `client_id = c1` among a span's fields.
struct ClientId<'a>(&'a AtomicIsize);

impl tracing::field::Visit for ClientId<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "client_id" && format!("{value:?}") == "c1" {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
}

impl<S> tracing_subscriber::Layer<S> for ConnSpans
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, _: &Id, _: Context<'_, S>) {
        if attrs.metadata().name() == "conn" {
            self.0.fetch_add(1, Ordering::SeqCst);
            attrs.record(&mut ClientId(&self.1));
        }
    }

    fn on_record(&self, _: &Id, values: &tracing::span::Record<'_>, _: Context<'_, S>) {
        values.record(&mut ClientId(&self.1));
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        if ctx.span(&id).is_some_and(|span| span.name() == "conn") {
            self.0.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// Waits (up to 5 s) until `open` holds `want`; returns what it holds then.
async fn settle(open: &AtomicIsize, want: isize) -> isize {
    for _ in 0..500 {
        if open.load(Ordering::SeqCst) == want {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    open.load(Ordering::SeqCst)
}

/// CONNECT (3.1.1, clean session, keep alive 60 s, client id "c1"), then CONNACK.
async fn connect_c1(stream: &mut TcpStream) {
    stream
        .write_all(b"\x10\x0e\x00\x04MQTT\x04\x02\x00\x3c\x00\x02c1")
        .await
        .unwrap();
    let mut connack = [0u8; 4];
    stream.read_exact(&mut connack).await.unwrap();
    assert_eq!(connack, [0x20, 2, 0, 0]);
}

#[tokio::test]
async fn an_idle_connection_keeps_no_tracing_span_and_gets_it_back_when_it_wakes() {
    let open = Arc::new(AtomicIsize::new(0));
    let named = Arc::new(AtomicIsize::new(0));
    let subscriber =
        tracing_subscriber::registry().with(ConnSpans(Arc::clone(&open), Arc::clone(&named)));
    // Every task of this (current-thread) runtime runs on this thread.
    let _default = tracing::subscriber::set_default(subscriber);

    let mut config = Config::default();
    config.listeners.truncate(1);
    config.listeners[0].bind = "127.0.0.1:0".parse().unwrap();
    config.storage.backend = StorageBackend::Memory;
    config.sys.enabled = false;
    config.metrics.enabled = false;
    let server = Server::bind(config).await.unwrap();
    let addr = server.local_addrs()[0];
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(server.run(shutdown.clone()));

    let mut client = TcpStream::connect(addr).await.unwrap();
    assert_eq!(settle(&open, 1).await, 1, "waiting for CONNECT: one span");
    connect_c1(&mut client).await;
    assert_eq!(settle(&open, 0).await, 0, "connected and idle: no span");
    for _ in 0..3 {
        client.write_all(&[0xC0, 0]).await.unwrap();
        let mut pingresp = [0u8; 2];
        client.read_exact(&mut pingresp).await.unwrap();
        assert_eq!(
            pingresp,
            [0xD0, 0],
            "a connection without its span still answers"
        );
        assert_eq!(settle(&open, 0).await, 0, "idle again: no span");
    }
    assert_eq!(
        named.load(Ordering::SeqCst),
        4,
        "the handshake's span and each remade one carry the client id"
    );
    // A second client, for a span that is open while its connection works: the first
    // one's takeover (same client id) is handled with a span again.
    let mut second = TcpStream::connect(addr).await.unwrap();
    assert_eq!(settle(&open, 1).await, 1, "the second client's handshake");
    connect_c1(&mut second).await;
    let mut rest = Vec::new();
    let n = client.read_to_end(&mut rest).await.unwrap();
    assert_eq!(
        n, 0,
        "3.1.1: the first connection is closed, without a DISCONNECT"
    );
    assert_eq!(settle(&open, 0).await, 0, "both idle or gone: no span");
    shutdown.cancel();
    running.await.unwrap().unwrap();
}
