//! One write per turn of the event loop (see `SinceWrite`): what a read answers and what
//! the outbox holds go out together, and a client that writes without reading is still
//! read while its socket is full.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, DuplexStream, ReadBuf};

use super::test_io::{Counter, connect_v4, poll_once, read, served, spawn_served};
use crate::broker::Broker;
use crate::config::Config;
use crate::types::QoS;

/// A stream that records the size of every write the broker makes to it.
struct Recording {
    inner: DuplexStream,
    writes: Arc<Mutex<Vec<usize>>>,
}

impl AsyncRead for Recording {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Recording {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = polled {
            self.writes.lock().unwrap().push(n);
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[test]
fn an_answer_and_a_waiting_delivery_go_out_in_one_write() {
    let rt = super::test_io::runtime();
    let _guard = rt.enter();
    let broker = Arc::new(Broker::new(Config::default()));

    // The subscriber's connection is polled by hand, so that what it finds when it
    // wakes is staged beforehand.
    let (mut sub, server) = tokio::io::duplex(64 * 1024);
    let writes = Arc::new(Mutex::new(Vec::new()));
    let stream = Recording {
        inner: server,
        writes: Arc::clone(&writes),
    };
    let mut task = served(&broker, stream);
    let wakes = Arc::new(Counter::default());
    rt.block_on(sub.write_all(&connect_v4("sub", true)))
        .unwrap();
    poll_once(task.as_mut(), &wakes);
    let connack = rt.block_on(read(&mut sub, 4, Duration::from_secs(5)));
    assert_eq!(connack, [0x20, 2, 0, 0]);
    // SUBSCRIBE id 1, "t" at QoS 0; SUBACK.
    rt.block_on(sub.write_all(&[0x82, 6, 0, 1, 0, 1, b't', 0]))
        .unwrap();
    poll_once(task.as_mut(), &wakes);
    let suback = rt.block_on(read(&mut sub, 5, Duration::from_secs(5)));
    assert_eq!(suback, [0x90, 3, 0, 1, 0]);

    // A publisher on its own task sends a QoS 1 message to "t"; its PUBACK comes once
    // the message is in the subscriber's outbox.
    let (mut publisher, server) = tokio::io::duplex(64 * 1024);
    spawn_served(&broker, server);
    rt.block_on(publisher.write_all(&connect_v4("pub", true)))
        .unwrap();
    let connack = rt.block_on(read(&mut publisher, 4, Duration::from_secs(5)));
    assert_eq!(connack, [0x20, 2, 0, 0]);
    rt.block_on(publisher.write_all(&[0x32, 6, 0, 1, b't', 0, 7, b'm']))
        .unwrap();
    let puback = rt.block_on(read(&mut publisher, 4, Duration::from_secs(5)));
    assert_eq!(puback, [0x40, 2, 0, 7]);

    // The subscriber sends PINGREQ. Its connection wakes to a read that wants an answer
    // and a delivery in the outbox.
    rt.block_on(sub.write_all(&[0xC0, 0])).unwrap();
    writes.lock().unwrap().clear();
    poll_once(task.as_mut(), &wakes);
    // PINGRESP, then the PUBLISH (QoS 0: the subscription's maximum).
    let expected = [0xD0, 0, 0x30, 4, 0, 1, b't', b'm'];
    let got = rt.block_on(read(&mut sub, expected.len(), Duration::from_secs(5)));
    assert_eq!(got, expected);
    assert_eq!(
        *writes.lock().unwrap(),
        vec![expected.len()],
        "the answer and the delivery were written apart"
    );
}

#[test]
fn a_client_that_writes_without_reading_is_read_while_its_socket_is_full() {
    // The event loop reads once before it writes; while the write waits for a full
    // socket, it must read on (up to the write buffer's limit), or a client that sends
    // a batch before it reads the answers waits for ever. [MQTT-4.3.2-2]: each QoS 1
    // PUBLISH is answered by a PUBACK.
    let rt = super::test_io::runtime();
    let _guard = rt.enter();
    let broker = Arc::new(Broker::new(Config::default()));
    // Room for 256 PUBACKs towards the client, which reads none of them.
    let (mut client, server) = tokio::io::duplex(1024);
    spawn_served(&broker, server);
    const N: u16 = 3000;
    let mut batch = connect_v4("batch", true);
    for id in 1..=N {
        let [hi, lo] = id.to_be_bytes();
        batch.extend_from_slice(&[0x32, 6, 0, 1, b't', hi, lo, b'm']);
    }
    let sent = tokio::spawn(async move {
        client.write_all(&batch).await.unwrap();
        client
    });
    rt.block_on(async {
        let received = || broker.stats.messages_received.get(QoS::AtLeastOnce);
        let waited = tokio::time::timeout(Duration::from_secs(10), async {
            while received() < u64::from(N) {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await;
        assert!(
            waited.is_ok(),
            "the broker stopped reading after {} of {N} PUBLISH packets",
            received()
        );
        // Every PUBACK waits for the client: 4 bytes each, after the CONNACK.
        let mut client = sent.await.unwrap();
        let mut answers = read(&mut client, 4 + 4 * usize::from(N), Duration::from_secs(5)).await;
        answers.drain(..4);
        for (i, puback) in answers.chunks(4).enumerate() {
            let [hi, lo] = (i as u16 + 1).to_be_bytes();
            assert_eq!(puback, [0x40, 2, hi, lo]);
        }
    });
}

#[test]
fn a_turn_reads_and_pulls_once_before_it_writes_unless_the_write_waits() {
    use super::SinceWrite;
    let mut since = SinceWrite::default();
    since.settle(true);
    assert!(since.may_read() && since.may_pull());
    assert!(!since.holds_back(), "nothing held back yet");
    since.read = true;
    assert!(!since.may_read(), "a second read before the write");
    assert!(since.holds_back());
    since.pulled = true;
    assert!(!since.may_pull());
    since.settle(true);
    assert!(!since.may_read(), "still something to write: still held");
    since.blocked = true;
    assert!(since.may_read() && since.may_pull());
    assert!(!since.holds_back(), "a blocked write holds nothing back");
    since.blocked = false;
    since.settle(false);
    assert!(
        since.may_read() && since.may_pull(),
        "with nothing to write, reads and pulls go on"
    );
    assert!(!since.holds_back());
}
