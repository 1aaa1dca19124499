//! MQTT over WebSocket (MQTT 5.0 section 6): the `mqtt` subprotocol, binary frames
//! carrying a byte stream, `ws` and `wss` listeners.

use std::time::Duration;

use cauldron::config::{CertUsername, ListenerProtocol};
use cauldron::transport::ws::WsStream;
use futures_util::{SinkExt, StreamExt};
use integration::packets::{self, Connect};
use integration::tls::{Ca, connector, tls_connect, ws_upgrade};
use integration::{Publish, RawClient, TestBroker};
use rustls::version::TLS13;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use super::{listener, tls_table, with_listeners};

async fn ws_broker() -> TestBroker {
    TestBroker::start_listeners(with_listeners(vec![listener("ws", ListenerProtocol::Ws)])).await
}

fn url(b: &TestBroker, path: &str) -> String {
    format!("ws://localhost:{}{path}", b.addr.port())
}

/// Full MQTT flow through `client`: connect, subscribe, publish, receive.
async fn round_trip(mut c: RawClient, id: &str) {
    assert_eq!(c.handshake(&Connect::v5(id)).await.code, 0);
    assert_eq!(c.subscribe("ws/echo", 1).await, vec![1]);
    c.publish(Publish::new("ws/echo", b"framed").qos(1, 0))
        .await;
    let p = c.recv_publish().await;
    assert_eq!(
        (p.topic.as_str(), p.payload.as_slice()),
        ("ws/echo", &b"framed"[..])
    );
    c.ack(&p).await;
    // A payload large enough to be queued shared on a stream that writes vectors; a
    // WebSocket stream does not, and gets it copied.
    let large: Vec<u8> = (0..100_000u32).map(|i| (i % 241) as u8).collect();
    c.publish(Publish::new("ws/echo", &large).qos(1, 0)).await;
    let p = c.recv_publish().await;
    assert!(p.payload == large, "{} bytes back", p.payload.len());
    c.ack(&p).await;
    c.disconnect().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ws_and_wss_listeners_carry_mqtt_and_echo_the_subprotocol() {
    // [MQTT-6.0.0-4] the server selects and returns "mqtt".
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("test CA");
    let mut wss = listener("wss", ListenerProtocol::Wss);
    wss.ws_path = "/secure".into();
    wss.tls = Some(tls_table(
        dir.path(),
        &ca.server("broker"),
        None,
        CertUsername::None,
    ));
    let b = TestBroker::start_listeners(with_listeners(vec![
        listener("ws", ListenerProtocol::Ws),
        wss,
    ]))
    .await;

    let tcp = TcpStream::connect(b.addrs[0]).await.unwrap();
    let (ws, response) = ws_upgrade(tcp, &url(&b, "/mqtt"), Some("mqtt"))
        .await
        .unwrap();
    assert_eq!(
        response
            .headers()
            .get("sec-websocket-protocol")
            .map(|v| v.as_bytes()),
        Some(&b"mqtt"[..]),
        "[MQTT-6.0.0-4]"
    );
    round_trip(RawClient::from_io(WsStream::new(ws)), "over-ws").await;

    let tls = tls_connect(b.addrs[1], &connector(&ca.pem, None, &[&TLS13]))
        .await
        .unwrap();
    let wss_url = format!("ws://localhost:{}/secure", b.addrs[1].port());
    let (ws, _) = ws_upgrade(tls, &wss_url, Some("mqttv5, mqtt"))
        .await
        .unwrap();
    round_trip(RawClient::from_io(WsStream::new(ws)), "over-wss").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packets_may_span_frames_and_frames_may_hold_several_packets() {
    // [MQTT-6.0.0-2]: the receiver must not assume packets are aligned on frames.
    let b = ws_broker().await;
    let tcp = TcpStream::connect(b.addr).await.unwrap();
    let (mut ws, _) = ws_upgrade(tcp, &url(&b, "/mqtt"), Some("mqtt"))
        .await
        .unwrap();
    let connect = Connect::v311("frames").bytes();
    let (head, tail) = connect.split_at(5);
    ws.send(Message::binary(head.to_vec())).await.unwrap();
    ws.send(Message::binary(tail.to_vec())).await.unwrap();
    let mut batch = packets::subscribe(1, &[("ws/t", 0)]);
    batch.extend_from_slice(&Publish::new("ws/t", b"hi").bytes());
    ws.send(Message::binary(batch)).await.unwrap();

    let mut expected = vec![0x20, 0x02, 0x00, 0x00]; // CONNACK, accepted
    expected.extend_from_slice(&[0x90, 0x03, 0x00, 0x01, 0x00]); // SUBACK, QoS 0
    expected.extend_from_slice(&[0x30, 0x08, 0x00, 0x04, b'w', b's', b'/', b't', b'h', b'i']);
    let mut got = Vec::new();
    while got.len() < expected.len() {
        let next = tokio::time::timeout(Duration::from_secs(5), ws.next()).await;
        match next {
            Ok(Some(Ok(Message::Binary(data)))) => got.extend_from_slice(&data),
            other => panic!("expected binary frames, got {other:?} after {got:02x?}"),
        }
    }
    assert_eq!(got, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_without_mqtt_subprotocol_or_on_another_path_is_refused() {
    // [MQTT-6.0.0-3] the client must offer "mqtt".
    let b = ws_broker().await;
    for (path, protocol, status) in [
        ("/mqtt", None, 400),
        ("/mqtt", Some("mqttv3.1"), 400),
        ("/other", Some("mqtt"), 404),
    ] {
        let tcp = TcpStream::connect(b.addr).await.unwrap();
        match ws_upgrade(tcp, &url(&b, path), protocol).await {
            Err(WsError::Http(response)) => {
                assert_eq!(response.status().as_u16(), status, "{path} {protocol:?}")
            }
            Ok(_) => panic!("upgrade of {path} with {protocol:?} must fail"),
            Err(e) => panic!("expected an HTTP refusal, got {e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_text_frame_closes_the_connection() {
    // [MQTT-6.0.0-1] data in a non-binary frame: the server closes the connection.
    let b = ws_broker().await;
    let tcp = TcpStream::connect(b.addr).await.unwrap();
    let (ws, _) = ws_upgrade(tcp, &url(&b, "/mqtt"), Some("mqtt"))
        .await
        .unwrap();
    let mut c = RawClient::from_io(WsStream::new(ws));
    assert_eq!(c.handshake(&Connect::v311("texter")).await.code, 0);
    drop(c);
    let tcp = TcpStream::connect(b.addr).await.unwrap();
    let (mut ws, _) = ws_upgrade(tcp, &url(&b, "/mqtt"), Some("mqtt"))
        .await
        .unwrap();
    ws.send(Message::binary(Connect::v311("texter2").bytes()))
        .await
        .unwrap();
    let ack = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .unwrap();
    assert!(
        matches!(ack, Some(Ok(Message::Binary(_)))),
        "CONNACK: {ack:?}"
    );
    ws.send(Message::text("PINGREQ")).await.unwrap();
    match tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
        Err(_) => panic!("the connection stays open after a text frame"),
        Ok(None | Some(Err(_)) | Some(Ok(Message::Close(_)))) => {}
        Ok(Some(Ok(m))) => panic!("unexpected frame after a text frame: {m:?}"),
    }
}
