//! Thin wrappers around rumqttc (3.1.1 and 5.0) for the ordinary flows: the
//! event loop runs in a task that forwards received PUBLISHes and
//! acknowledgements to channels the test awaits with a timeout.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::timeout;

use crate::raw::RECV_TIMEOUT;

/// rumqttc's MQTT 3.1.1 client, connected.
pub struct V311 {
    /// The rumqttc handle, for requests the wrapper does not cover.
    pub client: rumqttc::AsyncClient,
    /// Session Present from the CONNACK.
    pub session_present: bool,
    publishes: mpsc::UnboundedReceiver<rumqttc::Publish>,
    acks: mpsc::UnboundedReceiver<rumqttc::Packet>,
    task: JoinHandle<()>,
}

impl V311 {
    /// Options for a client of this broker: keep alive 30 s, clean session.
    pub fn options(addr: SocketAddr, client_id: &str) -> rumqttc::MqttOptions {
        let mut o = rumqttc::MqttOptions::new(client_id, addr.ip().to_string(), addr.port());
        o.set_keep_alive(Duration::from_secs(30));
        o.set_max_packet_size(1 << 20, 1 << 20);
        o
    }

    /// A clean-session client.
    pub async fn connect(addr: SocketAddr, client_id: &str) -> V311 {
        V311::connect_opts(V311::options(addr, client_id)).await
    }

    /// Connects with these options, failing the test unless CONNACK accepts.
    pub async fn connect_opts(opts: rumqttc::MqttOptions) -> V311 {
        let (client, mut eventloop) = rumqttc::AsyncClient::new(opts, 1000);
        let (ptx, publishes) = mpsc::unbounded_channel();
        let (atx, acks) = mpsc::unbounded_channel();
        let (ctx, crx) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            let mut ctx = Some(ctx);
            loop {
                match eventloop.poll().await {
                    Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(ack))) => {
                        if let Some(c) = ctx.take() {
                            let _ = c.send(Ok(ack));
                        }
                    }
                    Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p))) => {
                        let _ = ptx.send(p);
                    }
                    Ok(rumqttc::Event::Incoming(
                        p @ (rumqttc::Packet::SubAck(_)
                        | rumqttc::Packet::UnsubAck(_)
                        | rumqttc::Packet::PubAck(_)
                        | rumqttc::Packet::PubComp(_)),
                    )) => {
                        let _ = atx.send(p);
                    }
                    Ok(_) => {}
                    Err(e) => {
                        if let Some(c) = ctx.take() {
                            let _ = c.send(Err(e.to_string()));
                        }
                        return;
                    }
                }
            }
        });
        let ack = timeout(RECV_TIMEOUT, crx)
            .await
            .expect("rumqttc 3.1.1: no CONNACK in time")
            .expect("rumqttc 3.1.1: event loop ended")
            .unwrap_or_else(|e| panic!("rumqttc 3.1.1 connect failed: {e}"));
        assert_eq!(ack.code, rumqttc::ConnectReturnCode::Success, "CONNACK");
        V311 {
            client,
            session_present: ack.session_present,
            publishes,
            acks,
            task,
        }
    }

    async fn next_ack(&mut self) -> rumqttc::Packet {
        timeout(RECV_TIMEOUT, self.acks.recv())
            .await
            .expect("rumqttc 3.1.1: no acknowledgement in time")
            .expect("rumqttc 3.1.1: connection ended while waiting for an acknowledgement")
    }

    /// Subscribes and waits for the SUBACK; returns the return codes.
    pub async fn subscribe(
        &mut self,
        filter: &str,
        qos: rumqttc::QoS,
    ) -> Vec<rumqttc::SubscribeReasonCode> {
        self.client
            .subscribe(filter, qos)
            .await
            .unwrap_or_else(|e| panic!("rumqttc request: {e}"));
        match self.next_ack().await {
            rumqttc::Packet::SubAck(s) => s.return_codes,
            other => panic!("expected SUBACK, got {other:?}"),
        }
    }

    /// Unsubscribes and waits for the UNSUBACK.
    pub async fn unsubscribe(&mut self, filter: &str) {
        self.client
            .unsubscribe(filter)
            .await
            .unwrap_or_else(|e| panic!("rumqttc request: {e}"));
        match self.next_ack().await {
            rumqttc::Packet::UnsubAck(_) => {}
            other => panic!("expected UNSUBACK, got {other:?}"),
        }
    }

    /// Publishes and, for QoS 1 and 2, waits for PUBACK / PUBCOMP.
    pub async fn publish(&mut self, topic: &str, qos: rumqttc::QoS, retain: bool, payload: &[u8]) {
        self.client
            .publish(topic, qos, retain, payload.to_vec())
            .await
            .unwrap_or_else(|e| panic!("rumqttc request: {e}"));
        match qos {
            rumqttc::QoS::AtMostOnce => {}
            rumqttc::QoS::AtLeastOnce => match self.next_ack().await {
                rumqttc::Packet::PubAck(_) => {}
                other => panic!("expected PUBACK, got {other:?}"),
            },
            rumqttc::QoS::ExactlyOnce => match self.next_ack().await {
                rumqttc::Packet::PubComp(_) => {}
                other => panic!("expected PUBCOMP, got {other:?}"),
            },
        }
    }

    /// The next received PUBLISH.
    pub async fn recv(&mut self) -> rumqttc::Publish {
        timeout(RECV_TIMEOUT, self.publishes.recv())
            .await
            .expect("rumqttc 3.1.1: no PUBLISH within the timeout")
            .expect("rumqttc 3.1.1: connection ended while waiting for a PUBLISH")
    }

    /// Fails if a PUBLISH arrives within `wait`.
    pub async fn expect_none(&mut self, wait: Duration) {
        if let Ok(Some(p)) = timeout(wait, self.publishes.recv()).await {
            panic!("unexpected PUBLISH {p:?}");
        }
    }

    /// Sends DISCONNECT and waits for the event loop to end.
    pub async fn disconnect(self) {
        let _ = self.client.disconnect().await;
        let _ = timeout(RECV_TIMEOUT, self.task).await;
    }

    /// Drops the connection without DISCONNECT.
    pub fn abort(self) {
        self.task.abort();
    }
}

/// rumqttc's MQTT 5.0 client, connected.
pub struct V5 {
    /// The rumqttc handle, for requests the wrapper does not cover.
    pub client: rumqttc::v5::AsyncClient,
    /// The CONNACK, properties included.
    pub connack: rumqttc::v5::mqttbytes::v5::ConnAck,
    publishes: mpsc::UnboundedReceiver<rumqttc::v5::mqttbytes::v5::Publish>,
    acks: mpsc::UnboundedReceiver<rumqttc::v5::mqttbytes::v5::Packet>,
    task: JoinHandle<()>,
}

/// The rumqttc MQTT 5 QoS.
pub use rumqttc::v5::mqttbytes::QoS as QoS5;

impl V5 {
    /// Options: keep alive 30 s, clean start.
    pub fn options(addr: SocketAddr, client_id: &str) -> rumqttc::v5::MqttOptions {
        let mut o = rumqttc::v5::MqttOptions::new(client_id, addr.ip().to_string(), addr.port());
        o.set_keep_alive(Duration::from_secs(30));
        o
    }

    /// A clean-start client.
    pub async fn connect(addr: SocketAddr, client_id: &str) -> V5 {
        V5::connect_opts(V5::options(addr, client_id)).await
    }

    /// Connects with these options, failing the test unless CONNACK accepts.
    pub async fn connect_opts(opts: rumqttc::v5::MqttOptions) -> V5 {
        use rumqttc::v5::mqttbytes::v5::Packet;
        use rumqttc::v5::{AsyncClient, Event};
        let (client, mut eventloop) = AsyncClient::new(opts, 1000);
        let (ptx, publishes) = mpsc::unbounded_channel();
        let (atx, acks) = mpsc::unbounded_channel();
        let (ctx, crx) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            let mut ctx = Some(ctx);
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                        if let Some(c) = ctx.take() {
                            let _ = c.send(Ok(ack));
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let _ = ptx.send(p);
                    }
                    Ok(Event::Incoming(
                        p @ (Packet::SubAck(_)
                        | Packet::UnsubAck(_)
                        | Packet::PubAck(_)
                        | Packet::PubComp(_)
                        | Packet::PubRec(_)),
                    )) => {
                        let _ = atx.send(p);
                    }
                    Ok(_) => {}
                    Err(e) => {
                        if let Some(c) = ctx.take() {
                            let _ = c.send(Err(e.to_string()));
                        }
                        return;
                    }
                }
            }
        });
        let connack = timeout(RECV_TIMEOUT, crx)
            .await
            .expect("rumqttc 5: no CONNACK in time")
            .expect("rumqttc 5: event loop ended")
            .unwrap_or_else(|e| panic!("rumqttc 5 connect failed: {e}"));
        assert_eq!(
            connack.code,
            rumqttc::v5::mqttbytes::v5::ConnectReturnCode::Success,
            "CONNACK"
        );
        V5 {
            client,
            connack,
            publishes,
            acks,
            task,
        }
    }

    async fn next_ack(&mut self) -> rumqttc::v5::mqttbytes::v5::Packet {
        timeout(RECV_TIMEOUT, self.acks.recv())
            .await
            .expect("rumqttc 5: no acknowledgement in time")
            .expect("rumqttc 5: connection ended while waiting for an acknowledgement")
    }

    /// Subscribes and waits for the SUBACK; returns the reason codes.
    pub async fn subscribe(
        &mut self,
        filter: &str,
        qos: QoS5,
    ) -> Vec<rumqttc::v5::mqttbytes::v5::SubscribeReasonCode> {
        self.client
            .subscribe(filter, qos)
            .await
            .unwrap_or_else(|e| panic!("rumqttc request: {e}"));
        self.wait_suback().await
    }

    /// Waits for the next SUBACK.
    pub async fn wait_suback(&mut self) -> Vec<rumqttc::v5::mqttbytes::v5::SubscribeReasonCode> {
        use rumqttc::v5::mqttbytes::v5::Packet;
        match self.next_ack().await {
            Packet::SubAck(s) => s.return_codes,
            other => panic!("expected SUBACK, got {other:?}"),
        }
    }

    /// Unsubscribes and waits for the UNSUBACK.
    pub async fn unsubscribe(&mut self, filter: &str) {
        use rumqttc::v5::mqttbytes::v5::Packet;
        self.client
            .unsubscribe(filter)
            .await
            .unwrap_or_else(|e| panic!("rumqttc request: {e}"));
        match self.next_ack().await {
            Packet::UnsubAck(_) => {}
            other => panic!("expected UNSUBACK, got {other:?}"),
        }
    }

    /// Publishes and, for QoS 1 and 2, waits for PUBACK / PUBCOMP.
    pub async fn publish(&mut self, topic: &str, qos: QoS5, retain: bool, payload: &[u8]) {
        self.client
            .publish(topic, qos, retain, payload.to_vec())
            .await
            .unwrap_or_else(|e| panic!("rumqttc request: {e}"));
        self.wait_ack(qos).await;
    }

    /// Publishes with properties and waits for the acknowledgement.
    pub async fn publish_with(
        &mut self,
        topic: &str,
        qos: QoS5,
        retain: bool,
        payload: &[u8],
        props: rumqttc::v5::mqttbytes::v5::PublishProperties,
    ) {
        self.client
            .publish_with_properties(topic, qos, retain, payload.to_vec(), props)
            .await
            .unwrap_or_else(|e| panic!("rumqttc request: {e}"));
        self.wait_ack(qos).await;
    }

    async fn wait_ack(&mut self, qos: QoS5) {
        use rumqttc::v5::mqttbytes::v5::Packet;
        match qos {
            QoS5::AtMostOnce => {}
            QoS5::AtLeastOnce => match self.next_ack().await {
                Packet::PubAck(_) => {}
                other => panic!("expected PUBACK, got {other:?}"),
            },
            QoS5::ExactlyOnce => loop {
                match self.next_ack().await {
                    Packet::PubRec(_) => continue,
                    Packet::PubComp(_) => break,
                    other => panic!("expected PUBCOMP, got {other:?}"),
                }
            },
        }
    }

    /// The next received PUBLISH.
    pub async fn recv(&mut self) -> rumqttc::v5::mqttbytes::v5::Publish {
        timeout(RECV_TIMEOUT, self.publishes.recv())
            .await
            .expect("rumqttc 5: no PUBLISH within the timeout")
            .expect("rumqttc 5: connection ended while waiting for a PUBLISH")
    }

    /// Fails if a PUBLISH arrives within `wait`.
    pub async fn expect_none(&mut self, wait: Duration) {
        if let Ok(Some(p)) = timeout(wait, self.publishes.recv()).await {
            panic!("unexpected PUBLISH {p:?}");
        }
    }

    /// Sends DISCONNECT and waits for the event loop to end.
    pub async fn disconnect(self) {
        let _ = self.client.disconnect().await;
        let _ = timeout(RECV_TIMEOUT, self.task).await;
    }
}
