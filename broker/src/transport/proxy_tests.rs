//! PROXY header parsing: v1 and v2, partial input, strictness, replayed bytes.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;

use tokio::io::AsyncReadExt;

use super::*;

fn v2_ipv4(src: [u8; 4], src_port: u16, command: u8) -> Vec<u8> {
    let mut h = V2_SIGNATURE.to_vec();
    h.push(0x20 | command); // version 2, LOCAL (0) or PROXY (1)
    h.push(0x11); // AF_INET, STREAM
    h.extend_from_slice(&12u16.to_be_bytes()); // address block length
    h.extend_from_slice(&src);
    h.extend_from_slice(&[10, 0, 0, 1]); // destination address
    h.extend_from_slice(&src_port.to_be_bytes());
    h.extend_from_slice(&1883u16.to_be_bytes());
    h
}

#[test]
fn parses_v1_tcp4_and_stops_at_crlf() {
    let mut input = b"PROXY TCP4 192.0.2.7 10.0.0.1 40000 1883\r\n".to_vec();
    let len = input.len();
    input.extend_from_slice(&[0x10, 0x0c]); // the start of CONNECT
    let h = parse(&input).unwrap().unwrap();
    assert_eq!(h.len, len);
    assert_eq!(
        h.source,
        Some("192.0.2.7:40000".parse::<SocketAddr>().unwrap())
    );
}

#[test]
fn parses_v1_tcp6_and_unknown() {
    let h = parse(b"PROXY TCP6 2001:db8::1 ::1 5000 1883\r\n")
        .unwrap()
        .unwrap();
    assert_eq!(h.source, Some("[2001:db8::1]:5000".parse().unwrap()));
    let h = parse(b"PROXY UNKNOWN\r\n").unwrap().unwrap();
    assert_eq!((h.len, h.source), (15, None));
}

#[test]
fn parses_v2_proxy_and_local_commands() {
    let input = v2_ipv4([198, 51, 100, 9], 6000, 1);
    let h = parse(&input).unwrap().unwrap();
    assert_eq!(h.len, 28);
    assert_eq!(h.source, Some("198.51.100.9:6000".parse().unwrap()));
    let h = parse(&v2_ipv4([198, 51, 100, 9], 6000, 0))
        .unwrap()
        .unwrap();
    assert_eq!(h.source, None, "LOCAL keeps the real peer address");
}

#[test]
fn waits_for_more_bytes_on_a_partial_header() {
    assert_eq!(parse(b"PROX").unwrap(), None);
    assert_eq!(parse(b"PROXY TCP4 192.0.2.7 10.0.").unwrap(), None);
    let v2 = v2_ipv4([1, 2, 3, 4], 1, 1);
    assert_eq!(parse(&v2[..5]).unwrap(), None);
    assert_eq!(parse(&v2[..20]).unwrap(), None);
}

#[test]
fn rejects_a_connection_without_a_header_at_once() {
    // A plain MQTT CONNECT on a PROXY listener.
    assert!(matches!(
        parse(&[0x10, 0x0c, 0x00, 0x04]),
        Err(Error::Missing)
    ));
    assert!(matches!(parse(b"GET / HTTP/1.1\r\n"), Err(Error::Missing)));
}

#[test]
fn rejects_malformed_and_overlong_v1_headers() {
    assert!(matches!(
        parse(b"PROXY TCP4 999.0.0.1 10.0.0.1 1 2\r\n"),
        Err(Error::Invalid(_))
    ));
    let long = [b"PROXY TCP4 ".as_slice(), &[b'1'; 120]].concat();
    assert!(
        matches!(parse(&long), Err(Error::TooLong(_) | Error::Invalid(_))),
        "a v1 header has at most 107 bytes"
    );
}

#[tokio::test]
async fn accept_replays_bytes_read_past_the_header() {
    let mut input = b"PROXY TCP4 192.0.2.7 10.0.0.1 40000 1883\r\n".to_vec();
    input.extend_from_slice(b"mqtt bytes");
    let peer: SocketAddr = "127.0.0.1:1".parse().unwrap();
    let (mut stream, addr) = accept(&input[..], peer).await.unwrap();
    assert_eq!(addr, "192.0.2.7:40000".parse().unwrap());
    let mut rest = Vec::new();
    stream.read_to_end(&mut rest).await.unwrap();
    assert_eq!(rest, b"mqtt bytes");
}

#[tokio::test]
async fn accept_fails_on_a_truncated_header() {
    let peer: SocketAddr = "127.0.0.1:1".parse().unwrap();
    let res = accept(&b"PROXY TCP4 192.0.2.7"[..], peer).await;
    assert!(matches!(res, Err(Error::Truncated)));
}
