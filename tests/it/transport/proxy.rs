//! PROXY protocol v1 and v2 on a listener with `proxy_protocol = true`: the header's
//! source address is the client's (seen here through per-address throttling of
//! failed logins), and a connection without a valid header is closed.

use cauldron::config::ListenerProtocol;
use integration::packets::Connect;
use integration::{RawClient, TestBroker, ms};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::{listener, with_listeners};
use crate::auth::{password_config, password_file};

fn v1(src: &str) -> Vec<u8> {
    format!("PROXY TCP4 {src} 10.0.0.1 40000 1883\r\n").into_bytes()
}

fn v2(src: [u8; 4], command: u8) -> Vec<u8> {
    let mut h = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    h.push(0x20 | command); // version 2; LOCAL (0) or PROXY (1)
    h.push(0x11); // AF_INET, STREAM
    h.extend_from_slice(&12u16.to_be_bytes());
    h.extend_from_slice(&src);
    h.extend_from_slice(&[10, 0, 0, 1]);
    h.extend_from_slice(&40000u16.to_be_bytes());
    h.extend_from_slice(&1883u16.to_be_bytes());
    h
}

async fn via_proxy(b: &TestBroker, header: &[u8]) -> RawClient {
    let mut tcp = TcpStream::connect(b.addr).await.expect("connect");
    tcp.write_all(header).await.expect("write the PROXY header");
    RawClient::from_io(tcp)
}

async fn code(b: &TestBroker, header: &[u8], connect: &Connect) -> u8 {
    via_proxy(b, header).await.handshake(connect).await.code
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_source_addresses_replace_the_peer_for_throttling() {
    // Every connection comes from 127.0.0.1; only the PROXY headers differ. After
    // one failure an address is throttled and its next attempts queue up to the cap,
    // beyond which they are refused with 0x97; another address is not affected.
    let (_dir, path) = password_file(&[("alice", "wonderland")]);
    let mut l = listener("proxied", ListenerProtocol::Tcp);
    l.proxy_protocol = true;
    let mut config = with_listeners(vec![l]);
    let mut p = password_config(&path);
    p.max_failures = 1;
    p.throttle_delay_ms = 3_000;
    p.max_throttle_delay_ms = 3_000;
    config.auth.password_file = Some(p);
    let b = TestBroker::start_listeners(config).await;
    let wrong = Connect::v5("guess").credentials("alice", b"guess");

    for (a, other) in [
        (v1("192.0.2.1"), v1("192.0.2.2")),
        (v2([198, 51, 100, 1], 1), v2([198, 51, 100, 2], 1)),
    ] {
        assert_eq!(code(&b, &a, &wrong).await, 0x86);
        let held = via_proxy(&b, &a).await;
        let held = tokio::spawn(async move {
            let mut held = held;
            held.handshake(&Connect::v5("held").credentials("alice", b"guess"))
                .await
        });
        tokio::time::sleep(ms(300)).await;
        assert_eq!(
            code(&b, &a, &wrong).await,
            0x97,
            "the same source is throttled"
        );
        assert_eq!(
            code(&b, &other, &wrong).await,
            0x86,
            "another source address is judged on its own"
        );
        held.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_listener_closes_connections_without_a_valid_header() {
    let mut l = listener("proxied", ListenerProtocol::Tcp);
    l.proxy_protocol = true;
    let b = TestBroker::start_listeners(with_listeners(vec![l])).await;
    let mut plain = RawClient::connect(b.addr).await;
    plain.send(&Connect::v5("no-header").bytes()).await;
    plain.expect_closed().await;
    let mut bad = via_proxy(&b, b"PROXY TCP4 300.1.1.1 10.0.0.1 1 2\r\n").await;
    bad.send(&Connect::v5("bad-header").bytes()).await;
    bad.expect_closed().await;
    // v2 LOCAL (a health check from the proxy itself) keeps the real address.
    assert_eq!(code(&b, &v2([0; 4], 0), &Connect::v5("local")).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_header_that_arrives_in_two_segments_is_waited_for() {
    // A proxy's header may reach the broker in two TCP segments. It was refused when
    // the first ended before the destination port ("... 10.0.0.1 40000 ").
    let mut l = listener("proxied", ListenerProtocol::Tcp);
    l.proxy_protocol = true;
    let b = TestBroker::start_listeners(with_listeners(vec![l])).await;
    let header = v1("192.0.2.9");
    let cut = header.len() - "1883\r\n".len();
    for (first, second) in [header.split_at(cut), header.split_at(7)] {
        let mut tcp = TcpStream::connect(b.addr).await.expect("connect");
        tcp.set_nodelay(true).expect("nodelay");
        tcp.write_all(first).await.expect("first segment");
        tokio::time::sleep(ms(50)).await;
        tcp.write_all(second).await.expect("second segment");
        let mut c = RawClient::from_io(tcp);
        assert_eq!(c.handshake(&Connect::v5("split")).await.code, 0);
    }
}
