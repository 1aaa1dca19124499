//! Whatever a client sends after its CONNECT, the connection answers it or closes, and
//! the broker's code never panics: random CONNECTs (every version, flags, will,
//! credentials, properties) followed by random client packets, over in-memory streams,
//! against a fresh broker each time. A panic would be caught and counted
//! (`internal_errors`, see `crate::contain`), so the count must stay 0.

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use proptest::prelude::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::test_io::{connect_v4, read, runtime, spawn_served};
use crate::broker::Broker;
use crate::codec::proptests::{any_version, connect_packet, from_client};
use crate::codec::{self, Packet};
use crate::stats::Stats;
use crate::types::ProtocolVersion;

fn session() -> impl Strategy<Value = (ProtocolVersion, Packet, Vec<Packet>)> {
    any_version().prop_flat_map(|v| {
        (
            Just(v),
            connect_packet(v),
            proptest::collection::vec(from_client(v), 0..24),
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn any_client_session_is_served_without_a_panic((v, connect, packets) in session()) {
        runtime().block_on(async {
            let broker = Arc::new(Broker::new(crate::config::Config::default()));
            let mut bytes = BytesMut::new();
            codec::encode(&connect, v, &mut bytes).unwrap();
            for p in &packets {
                codec::encode(p, v, &mut bytes).unwrap();
            }
            let (client, server) = tokio::io::duplex(1 << 20);
            spawn_served(&broker, server);
            let (mut rx, mut tx) = tokio::io::split(client);
            // Sent, then the client's end of the stream: the connection ends either way.
            tx.write_all(&bytes).await.unwrap();
            tx.shutdown().await.unwrap();
            let mut answers = Vec::new();
            tokio::time::timeout(Duration::from_secs(10), rx.read_to_end(&mut answers))
                .await
                .expect("the connection ends once the client's stream does")
                .unwrap();
            for _ in 0..100 {
                if Stats::get(&broker.stats.clients_connected) == 0 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            assert_eq!(Stats::get(&broker.stats.internal_errors), 0, "a panic was caught");
            assert_eq!(Stats::get(&broker.stats.clients_connected), 0);
            // The broker still serves the next client.
            let (mut next, server) = tokio::io::duplex(1 << 16);
            spawn_served(&broker, server);
            next.write_all(&connect_v4("next", true)).await.unwrap();
            assert_eq!(read(&mut next, 4, Duration::from_secs(5)).await, [0x20, 2, 0, 0]);
        });
    }
}
