//! A busy connection lets the other tasks of its worker run (see
//! `task::READ_PER_POLL`).
//!
//! The connection's future is polled by hand on the test thread, outside any
//! scheduler, so that a yield shows as a wake-up during the poll. Its stream is an
//! in-memory duplex with room for the whole backlog, so that what one poll reads is
//! limited by the connection, not by socket buffers.

use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::task::READ_PER_POLL;
use super::test_io::{Counter, poll_once};
use crate::broker::Broker;
use crate::stats::Stats;
use crate::types::QoS;

fn received(stats: &Stats) -> usize {
    stats.bytes_received.get() as usize
}

#[test]
fn a_connection_with_a_backlog_yields_once_it_has_read_its_share_and_loses_nothing() {
    // The bug this guards against: a publisher whose socket always had data read,
    // routed, acknowledged and parked over and over in one poll, until tokio's budget
    // ran out; the subscribers it woke waited in its worker's LIFO slot for up to 6 ms.
    let rt = super::test_io::runtime();
    let _guard = rt.enter();
    let broker = Arc::new(Broker::new(crate::config::Config::default()));
    let (mut client, server) = tokio::io::duplex(4 << 20);
    let mut task = super::test_io::served(&broker, server);
    let counter = Arc::new(Counter::default());

    // CONNECT (MQTT 3.1.1, clean session, keep alive 60 s, client id "c"); CONNACK.
    rt.block_on(client.write_all(&[
        0x10, 13, 0, 4, b'M', b'Q', b'T', b'T', 4, 0x02, 0, 60, 0, 1, b'c',
    ]))
    .unwrap();
    poll_once(task.as_mut(), &counter);
    let mut connack = [0u8; 4];
    rt.block_on(tokio::time::timeout(
        std::time::Duration::from_secs(5),
        client.read_exact(&mut connack),
    ))
    .expect("no CONNACK after one poll")
    .unwrap();
    assert_eq!(connack, [0x20, 2, 0, 0], "CONNACK accepted");
    let before = received(&broker.stats);

    // A backlog of QoS 0 PUBLISH packets (topic "t", 1000-byte payload, no
    // subscriber: nothing to answer) more than twice the share of one poll. The
    // parked connection reads from 128 bytes up, doubling to 128 KiB, each read a
    // wake-up.
    let mut one = vec![0x30, 0xEB, 0x07, 0, 1, b't'];
    one.resize(one.len() + 1000, 0x55);
    let count = 3 * READ_PER_POLL / one.len();
    let backlog = one.repeat(count);
    rt.block_on(client.write_all(&backlog)).unwrap();

    let yielded = poll_once(task.as_mut(), &counter);
    let read = received(&broker.stats) - before;
    assert!(
        read < backlog.len(),
        "one poll read the whole backlog ({read} bytes): it did not yield"
    );
    assert!(
        read >= READ_PER_POLL,
        "one poll read only {read} bytes of {}",
        backlog.len()
    );
    assert!(
        yielded,
        "the poll stopped with a backlog but did not ask to run again"
    );

    // The rest follows on later polls, and every message arrives.
    for _ in 0..100 {
        if received(&broker.stats) - before == backlog.len() {
            break;
        }
        poll_once(task.as_mut(), &counter);
    }
    assert_eq!(received(&broker.stats) - before, backlog.len());
    assert_eq!(
        broker.stats.messages_received.get(QoS::AtMostOnce),
        count as u64,
        "every PUBLISH was handled"
    );
}
