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

#[tokio::test]
async fn accept_waits_for_a_v1_header_split_across_reads() {
    // The bug this guards against (found by the property test below): the first part
    // of a valid v1 header, without its CRLF, was parsed as a whole header and refused
    // ("invalid TCP port for the destination": the read ended before "1883"), closing
    // the connection.
    assert_eq!(parse(b"PROXY TCP4 0.0.0.0 10.0.0.1 0 ").unwrap(), None);
    let (mut client, server) = tokio::io::duplex(256);
    let peer: SocketAddr = "127.0.0.1:1".parse().unwrap();
    let accepted = tokio::spawn(accept(server, peer));
    use tokio::io::AsyncWriteExt;
    client
        .write_all(b"PROXY TCP4 192.0.2.7 10.0.0.1 40000 ")
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    client.write_all(b"1883\r\nmqtt").await.unwrap();
    drop(client);
    let (mut stream, addr) = accepted.await.unwrap().unwrap();
    assert_eq!(addr, "192.0.2.7:40000".parse().unwrap());
    let mut rest = Vec::new();
    stream.read_to_end(&mut rest).await.unwrap();
    assert_eq!(rest, b"mqtt");
}

/// A v2 PROXY header over TCP from `src` (IPv4 or IPv6), with one TLV of type 0xE0 (the
/// custom range) holding `tlv_content` when that is not empty.
fn v2_header(src: SocketAddr, tlv_content: &[u8]) -> Vec<u8> {
    let mut addresses = Vec::new();
    let family = match src {
        SocketAddr::V4(a) => {
            addresses.extend_from_slice(&a.ip().octets());
            addresses.extend_from_slice(&[10, 0, 0, 1]);
            0x11
        }
        SocketAddr::V6(a) => {
            addresses.extend_from_slice(&a.ip().octets());
            addresses.extend_from_slice(&std::net::Ipv6Addr::LOCALHOST.octets());
            0x21
        }
    };
    addresses.extend_from_slice(&src.port().to_be_bytes());
    addresses.extend_from_slice(&1883u16.to_be_bytes());
    if !tlv_content.is_empty() {
        addresses.push(0xE0);
        addresses.extend_from_slice(&(tlv_content.len() as u16).to_be_bytes());
        addresses.extend_from_slice(tlv_content);
    }
    let mut h = V2_SIGNATURE.to_vec();
    h.extend_from_slice(&[0x21, family]);
    h.extend_from_slice(&(addresses.len() as u16).to_be_bytes());
    h.extend_from_slice(&addresses);
    h
}

/// A v1 PROXY header from `src` (TCP4 or TCP6).
fn v1_header(src: SocketAddr) -> Vec<u8> {
    match src {
        SocketAddr::V4(a) => format!("PROXY TCP4 {} 10.0.0.1 {} 1883\r\n", a.ip(), a.port()),
        SocketAddr::V6(a) => format!("PROXY TCP6 {} ::1 {} 1883\r\n", a.ip(), a.port()),
    }
    .into_bytes()
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]

    /// Whatever a client sends first, parsing answers (no panic), and a header never
    /// claims more bytes than were read: `accept` advances the buffer by its length.
    #[test]
    fn any_input_is_answered_and_a_header_fits_in_what_was_read(
        start in proptest::sample::select(vec![&b""[..], V1_PREFIX, V2_SIGNATURE, b"PROXY TCP4 ", b"PROXY TCP6 ", b"PROXY UNKNOWN"]),
        v2_head in proptest::collection::vec(proptest::num::u8::ANY, 0..4),
        tail in proptest::collection::vec(proptest::num::u8::ANY, 0..300),
    ) {
        let mut input = start.to_vec();
        if start == V2_SIGNATURE {
            input.extend_from_slice(&v2_head);
        }
        input.extend_from_slice(&tail);
        if let Ok(Some(header)) = parse(&input) {
            proptest::prop_assert!(header.len <= input.len(), "{} > {}", header.len, input.len());
        }
    }

    /// A valid header is found whole, with its source, whatever follows it; every
    /// shorter read of it asks for more bytes (so `accept` reads on, and never refuses
    /// a header that arrives in pieces).
    #[test]
    fn a_valid_header_is_found_and_its_prefixes_ask_for_more(
        v2 in proptest::bool::ANY,
        src in proptest::prelude::any::<SocketAddr>(),
        tlv in proptest::collection::vec(proptest::num::u8::ANY, 0..64),
        after in proptest::collection::vec(proptest::num::u8::ANY, 0..32),
    ) {
        // Headers carry no IPv6 flow label or scope.
        let src = SocketAddr::new(src.ip(), src.port());
        let header = if v2 { v2_header(src, &tlv) } else { v1_header(src) };
        let mut input = header.clone();
        input.extend_from_slice(&after);
        let found = parse(&input).unwrap();
        proptest::prop_assert_eq!(found, Some(Header { len: header.len(), source: Some(src) }));
        for cut in 0..header.len() {
            proptest::prop_assert!(
                matches!(parse(&header[..cut]), Ok(None)),
                "the first {} bytes of {:?}: {:?}", cut, header, parse(&header[..cut])
            );
        }
    }
}
