//! A panic in the broker's code while it handles a connection ends that connection
//! only, through its usual close (see `activate` in `mod.rs`). Real connections over
//! in-memory streams; under `cfg(test)` a PUBLISH to [`PANIC_TOPIC`] panics, a
//! [`Tripwire`] stream panics in its read, and the handshake panics where a test
//! [`arm`]ed it.

use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream, ReadBuf};

use super::test_io::{connect_v4, read, runtime, spawn_served};
use crate::broker::Broker;

/// A PUBLISH to this topic panics in the broker (test builds only).
pub(super) const PANIC_TOPIC: &str = "cauldron-test/panic";

/// Handshake panics a test asked for: (point, client id), each one panics once.
static ARMED: Mutex<Vec<(&str, String)>> = Mutex::new(Vec::new());

/// Makes the next CONNECT of `client` panic at `at` in the handshake (see [`trip`]).
fn arm(at: &'static str, client: &str) {
    let mut armed = ARMED.lock().unwrap_or_else(|e| e.into_inner());
    armed.push((at, client.to_owned()));
}

/// Called by the handshake at its points ("claimed": the session claimed in the
/// registry, not yet held by the connection; "connack": held, CONNACK not yet sent).
pub(super) fn trip(at: &str, client: &str) {
    let mut armed = ARMED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(i) = armed.iter().position(|(a, c)| *a == at && c == client) {
        armed.swap_remove(i);
        drop(armed);
        panic!("a test asked for a panic at {at}");
    }
}

/// Opens a connection served on its own task and sends `connect`; returns the
/// client's end.
async fn open(broker: &Arc<Broker>, connect: &[u8]) -> DuplexStream {
    let (mut client, server) = tokio::io::duplex(1 << 16);
    spawn_served(broker, server);
    client.write_all(connect).await.unwrap();
    client
}

/// A PUBLISH at QoS 0 to the panicking topic; MQTT 5 adds an empty property length.
fn panicking_publish(v5: bool) -> Vec<u8> {
    let topic = PANIC_TOPIC.as_bytes();
    let remaining = 2 + topic.len() + usize::from(v5);
    let mut p = vec![0x30, remaining as u8, 0, topic.len() as u8];
    p.extend_from_slice(topic);
    if v5 {
        p.push(0); // no properties
    }
    p
}

async fn closed(client: &mut DuplexStream) {
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), client.read_to_end(&mut rest))
        .await
        .expect("the connection was not closed within 5 s")
        .unwrap();
    assert!(
        rest.is_empty(),
        "unexpected bytes before the close: {rest:?}"
    );
}

/// Waits until `done` holds (the close runs after the socket is shut).
async fn eventually(what: &str, done: impl Fn() -> bool) {
    for _ in 0..500 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("not within 5 s: {what}");
}

#[test]
fn a_panic_while_handling_a_client_closes_it_and_keeps_its_session() {
    // The bug this guards against: the panic unwound out of the connection's task,
    // which tokio dropped without the close. The registry kept the client online,
    // its next CONNECT waited 5 s for a hand-over and got a fresh session, and its
    // subscriptions stayed in the router.
    runtime().block_on(async {
        let broker = Arc::new(Broker::new(crate::config::Config::default()));
        let stats = &broker.stats;
        let mut c = subscribed(&broker, "c").await;

        c.write_all(&panicking_publish(false)).await.unwrap();
        let mut c = closed_by_a_panic_and_back(&broker, &mut c, "c").await;
        assert_eq!(broker.registry.len(), 1, "one session");
        assert_eq!(stats.protocol_errors.load(Ordering::SeqCst), 0);
        // Its subscription still delivers.
        delivers_on_k(&broker, &mut c, "p").await;
    });
}

#[test]
fn an_mqtt5_client_gets_disconnect_0x80_before_the_close() {
    runtime().block_on(async {
        let broker = Arc::new(Broker::new(crate::config::Config::default()));
        // CONNECT, MQTT 5, clean start, keep alive 60 s, no properties, client id "v".
        let connect = [
            0x10, 14, 0, 4, b'M', b'Q', b'T', b'T', 5, 0x02, 0, 60, 0, 0, 1, b'v',
        ];
        let mut c = open(&broker, &connect).await;
        let head = read(&mut c, 2, Duration::from_secs(5)).await;
        assert_eq!(head[0], 0x20, "CONNACK");
        let connack = read(&mut c, usize::from(head[1]), Duration::from_secs(5)).await;
        assert_eq!(connack[..2], [0, 0], "accepted, no session");

        c.write_all(&panicking_publish(true)).await.unwrap();
        let head = read(&mut c, 2, Duration::from_secs(5)).await;
        assert_eq!(head[0], 0xE0, "DISCONNECT");
        let body = read(&mut c, usize::from(head[1]), Duration::from_secs(5)).await;
        assert_eq!(body[0], 0x80, "Unspecified error");
        // [MQTT-4.13.2-1] a reason code of 0x80 or above: the connection is closed.
        closed(&mut c).await;
        eventually("the session ends with the connection", || {
            broker.registry.is_empty()
        })
        .await;
        assert_eq!(broker.stats.internal_errors.load(Ordering::SeqCst), 1);
    });
}

/// The broker's end of an in-memory connection whose read panics when the bytes read
/// hold [`Tripwire::MARK`], as a bug in a TLS or WebSocket stream's read would.
struct Tripwire(DuplexStream);

impl Tripwire {
    const MARK: &'static [u8] = b"TRIP";
}

impl AsyncRead for Tripwire {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.get_mut().0).poll_read(cx, buf);
        if buf.filled()[before..]
            .windows(Self::MARK.len())
            .any(|w| w == Self::MARK)
        {
            panic!("the tripwire stream's read");
        }
        poll
    }
}

impl AsyncWrite for Tripwire {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }
}

#[test]
fn a_panic_in_a_parked_connections_read_closes_it_and_keeps_its_session() {
    // The read that wakes an idle connection runs outside its active phase (see
    // `task.rs`); before it was caught, a panic there unwound out of the task, which
    // tokio dropped without the close: the session stayed registered as online.
    runtime().block_on(async {
        let broker = Arc::new(Broker::new(crate::config::Config::default()));
        let (mut c, server) = tokio::io::duplex(1 << 16);
        spawn_served(&broker, Tripwire(server));
        c.write_all(&connect_v4("idle", false)).await.unwrap();
        assert_eq!(
            read(&mut c, 4, Duration::from_secs(5)).await,
            [0x20, 2, 0, 0]
        );
        // Idle long enough to park (cold, its active phase gone).
        tokio::time::sleep(super::task::COOL_AFTER * 5).await;

        c.write_all(Tripwire::MARK).await.unwrap();
        closed_by_a_panic_and_back(&broker, &mut c, "idle").await;
    });
}

#[test]
fn a_panic_before_connack_closes_that_connection_and_is_counted() {
    runtime().block_on(async {
        let broker = Arc::new(Broker::new(crate::config::Config::default()));
        let (mut c, server) = tokio::io::duplex(1 << 16);
        spawn_served(&broker, Tripwire(server));
        c.write_all(Tripwire::MARK).await.unwrap();
        closed(&mut c).await;
        eventually("the panic is counted", || {
            broker.stats.internal_errors.load(Ordering::SeqCst) == 1
        })
        .await;
        assert!(broker.registry.is_empty());
        // The broker goes on: the next client is served.
        let mut c = open(&broker, &connect_v4("next", true)).await;
        assert_eq!(
            read(&mut c, 4, Duration::from_secs(5)).await,
            [0x20, 2, 0, 0]
        );
    });
}

/// After a panic closed `c` (a durable client's connection): the session is stored
/// offline, the panic counted once and the connection no longer, and the client comes
/// back at once to its session [MQTT-3.2.2-2]. Returns its new connection.
async fn closed_by_a_panic_and_back(
    broker: &Arc<Broker>,
    c: &mut DuplexStream,
    client: &str,
) -> DuplexStream {
    closed(c).await;
    eventually("the session is stored offline", || {
        broker.registry.offline() == 1
    })
    .await;
    assert_eq!(broker.stats.internal_errors.load(Ordering::SeqCst), 1);
    assert_eq!(
        broker.stats.clients_connected.load(Ordering::SeqCst),
        0,
        "the connection is no longer counted"
    );
    let mut back = open(broker, &connect_v4(client, false)).await;
    assert_eq!(
        read(&mut back, 4, Duration::from_secs(2)).await,
        [0x20, 2, 1, 0],
        "back at once, session present"
    );
    back
}

/// A new durable client `client`, subscribed to "k" at QoS 1 (SUBSCRIBE packet id 1).
async fn subscribed(broker: &Arc<Broker>, client: &str) -> DuplexStream {
    let mut c = open(broker, &connect_v4(client, false)).await;
    assert_eq!(
        read(&mut c, 4, Duration::from_secs(5)).await,
        [0x20, 2, 0, 0]
    );
    c.write_all(&[0x82, 6, 0, 1, 0, 1, b'k', 1]).await.unwrap();
    assert_eq!(
        read(&mut c, 5, Duration::from_secs(5)).await,
        [0x90, 3, 0, 1, 1]
    );
    c
}

/// A message to "k" from a new client `publisher` reaches `c`.
async fn delivers_on_k(broker: &Arc<Broker>, c: &mut DuplexStream, publisher: &str) {
    let mut p = open(broker, &connect_v4(publisher, true)).await;
    assert_eq!(
        read(&mut p, 4, Duration::from_secs(5)).await,
        [0x20, 2, 0, 0]
    );
    p.write_all(&[0x30, 5, 0, 1, b'k', b'h', b'i'])
        .await
        .unwrap();
    assert_eq!(
        read(c, 7, Duration::from_secs(5)).await,
        [0x30, 5, 0, 1, b'k', b'h', b'i']
    );
}

/// A durable client with a subscription to "k", then disconnected: its session offline.
async fn offline_session(broker: &Arc<Broker>, client: &str) {
    let mut c = subscribed(broker, client).await;
    c.write_all(&[0xE0, 0]).await.unwrap(); // DISCONNECT
    closed(&mut c).await;
    eventually("the session is stored offline", || {
        broker.registry.offline() == 1
    })
    .await;
}

/// A panic in the handshake at `at`, on the CONNECT that resumes an offline session:
/// the client is closed without CONNACK, and comes back at once to its session.
async fn a_panic_in_the_handshake_keeps_the_session(at: &'static str, client: &str) {
    // The bug this guards against: the claim stayed in the registry with the control
    // block of a connection that was gone. The client's next CONNECT waited 5 s for a
    // hand-over, got a fresh session, and its subscriptions stayed in the router.
    let broker = Arc::new(Broker::new(crate::config::Config::default()));
    offline_session(&broker, client).await;

    arm(at, client);
    let mut c = open(&broker, &connect_v4(client, false)).await;
    let mut c = closed_by_a_panic_and_back(&broker, &mut c, client).await;
    // Its subscription still delivers, once.
    delivers_on_k(&broker, &mut c, &format!("{client}-p")).await;
    assert_eq!(broker.router.len(), 1, "one subscription in the router");
}

#[test]
fn a_panic_after_the_session_is_claimed_gives_the_claim_back() {
    runtime().block_on(a_panic_in_the_handshake_keeps_the_session(
        "claimed", "claimed",
    ));
}

#[test]
fn a_panic_before_connack_gives_the_held_session_back() {
    runtime().block_on(a_panic_in_the_handshake_keeps_the_session(
        "connack", "connack",
    ));
}

#[test]
fn a_panic_after_a_fresh_claim_leaves_no_registry_entry() {
    runtime().block_on(async {
        let broker = Arc::new(Broker::new(crate::config::Config::default()));
        arm("claimed", "fresh");
        let mut c = open(&broker, &connect_v4("fresh", true)).await;
        closed(&mut c).await;
        eventually("the panic is counted", || {
            broker.stats.internal_errors.load(Ordering::SeqCst) == 1
        })
        .await;
        assert!(broker.registry.is_empty(), "the claim was given back");
        let mut c = open(&broker, &connect_v4("fresh", true)).await;
        assert_eq!(
            read(&mut c, 4, Duration::from_secs(2)).await,
            [0x20, 2, 0, 0],
            "served at once"
        );
    });
}
