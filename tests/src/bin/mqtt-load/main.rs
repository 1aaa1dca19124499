//! `mqtt-load`: a small MQTT 3.1.1 load generator for comparing brokers on loopback.
//!
//! P publishers each send N messages of B bytes at QoS q to `load/{publisher}`; S
//! subscribers subscribe to `load/#` and count what arrives. It prints the delivered
//! message rate (messages received by all subscribers per second) and the publish rate.
//!
//! ```sh
//! cargo run --release -p integration --bin mqtt-load -- --addr 127.0.0.1:1883 \
//!     --publishers 4 --subscribers 4 --messages 50000 --qos 1 --payload 64
//! ```
//! Packets are built by hand (no broker code involved), so the same binary measures any
//! broker.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};
use tokio::net::TcpStream;

struct Args {
    addr: String,
    publishers: usize,
    subscribers: usize,
    messages: usize,
    qos: u8,
    payload: usize,
    inflight: usize,
}

fn parse_args() -> Result<Args> {
    let mut a = Args {
        addr: "127.0.0.1:1883".into(),
        publishers: 4,
        subscribers: 4,
        messages: 20_000,
        qos: 0,
        payload: 64,
        inflight: 100,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--addr" => a.addr = value,
            "--publishers" => a.publishers = value.parse()?,
            "--subscribers" => a.subscribers = value.parse()?,
            "--messages" => a.messages = value.parse()?,
            "--qos" => a.qos = value.parse()?,
            "--payload" => a.payload = value.parse()?,
            "--inflight" => a.inflight = value.parse()?,
            other => bail!("unknown flag {other}"),
        }
    }
    if a.qos > 1 {
        bail!("--qos must be 0 or 1");
    }
    Ok(a)
}

fn remaining_length(mut n: usize, out: &mut Vec<u8>) {
    loop {
        let mut byte = (n % 128) as u8;
        n /= 128;
        if n > 0 {
            byte |= 0x80;
        }
        out.push(byte);
        if n == 0 {
            break;
        }
    }
}

fn connect_packet(client_id: &str) -> Vec<u8> {
    let mut body = vec![0, 4, b'M', b'Q', b'T', b'T', 4, 0x02, 0, 60];
    body.extend_from_slice(&(client_id.len() as u16).to_be_bytes());
    body.extend_from_slice(client_id.as_bytes());
    let mut p = vec![0x10];
    remaining_length(body.len(), &mut p);
    p.extend_from_slice(&body);
    p
}

fn publish_packet(topic: &str, qos: u8, id: u16, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x30 | (qos << 1)];
    let len = 2 + topic.len() + if qos > 0 { 2 } else { 0 } + payload.len();
    remaining_length(len, &mut p);
    p.extend_from_slice(&(topic.len() as u16).to_be_bytes());
    p.extend_from_slice(topic.as_bytes());
    if qos > 0 {
        p.extend_from_slice(&id.to_be_bytes());
    }
    p.extend_from_slice(payload);
    p
}

/// Reads one packet: (first byte, body).
async fn read_packet(s: &mut (impl AsyncReadExt + Unpin), buf: &mut Vec<u8>) -> Result<u8> {
    let first = s.read_u8().await?;
    let mut len = 0usize;
    let mut mult = 1usize;
    loop {
        let b = s.read_u8().await?;
        len += usize::from(b & 0x7f) * mult;
        mult *= 128;
        if b & 0x80 == 0 {
            break;
        }
    }
    buf.resize(len, 0);
    s.read_exact(buf).await?;
    Ok(first)
}

async fn connected(addr: &str, id: &str) -> Result<TcpStream> {
    let mut s = TcpStream::connect(addr).await?;
    s.set_nodelay(true)?;
    s.write_all(&connect_packet(id)).await?;
    let mut buf = Vec::new();
    let first = read_packet(&mut s, &mut buf).await?;
    if first != 0x20 || buf.get(1) != Some(&0) {
        bail!("CONNACK refused: {first:#x} {buf:?}");
    }
    Ok(s)
}

async fn subscriber(addr: String, n: usize, qos: u8, expect: usize) -> Result<(usize, Instant)> {
    let mut s = connected(&addr, &format!("load-sub-{n}")).await?;
    let filter = b"load/#";
    let mut p = vec![
        0x82,
        (2 + 2 + filter.len() + 1) as u8,
        0,
        1,
        0,
        filter.len() as u8,
    ];
    p.extend_from_slice(filter);
    p.push(qos);
    s.write_all(&p).await?;
    let (r, w) = s.into_split();
    let mut r = tokio::io::BufReader::with_capacity(64 * 1024, r);
    let mut w = BufWriter::new(w);
    let mut buf = Vec::new();
    let mut got = 0;
    let mut last = Instant::now();
    while got < expect {
        let first =
            match tokio::time::timeout(Duration::from_secs(2), read_packet(&mut r, &mut buf)).await
            {
                Ok(res) => res?,
                Err(_) => break,
            };
        if first >> 4 == 3 {
            got += 1;
            last = Instant::now();
            if (first >> 1) & 3 == 1 {
                let tlen = usize::from(u16::from_be_bytes([buf[0], buf[1]]));
                let id = [buf[2 + tlen], buf[3 + tlen]];
                w.write_all(&[0x40, 2, id[0], id[1]]).await?;
                if r.buffer().is_empty() {
                    w.flush().await?;
                }
            }
        }
    }
    w.flush().await?;
    Ok((got, last))
}

async fn publisher(addr: String, n: usize, a: (usize, u8, usize, usize)) -> Result<()> {
    let (messages, qos, size, inflight) = a;
    let s = connected(&addr, &format!("load-pub-{n}")).await?;
    let (r, w) = s.into_split();
    let mut w = BufWriter::with_capacity(64 * 1024, w);
    let mut r = tokio::io::BufReader::new(r);
    let topic = format!("load/{n}");
    let payload = vec![b'x'; size];
    let mut outstanding = 0usize;
    let mut buf = Vec::new();
    for i in 0..messages {
        let id = (i % 65535 + 1) as u16;
        w.write_all(&publish_packet(&topic, qos, id, &payload))
            .await?;
        if qos > 0 {
            outstanding += 1;
            if outstanding >= inflight {
                w.flush().await?;
                read_packet(&mut r, &mut buf).await?;
                outstanding -= 1;
            }
        }
    }
    w.flush().await?;
    while outstanding > 0 {
        read_packet(&mut r, &mut buf).await?;
        outstanding -= 1;
    }
    // DISCONNECT
    w.write_all(&[0xe0, 0]).await?;
    w.flush().await?;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let a = parse_args()?;
    let expect = a.publishers * a.messages;
    let mut subs = Vec::new();
    for n in 0..a.subscribers {
        subs.push(tokio::spawn(subscriber(a.addr.clone(), n, a.qos, expect)));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let start = Instant::now();
    let mut pubs = Vec::new();
    for n in 0..a.publishers {
        pubs.push(tokio::spawn(publisher(
            a.addr.clone(),
            n,
            (a.messages, a.qos, a.payload, a.inflight),
        )));
    }
    for p in pubs {
        p.await??;
    }
    let published = start.elapsed();
    let mut received = 0;
    let mut last = start;
    for s in subs {
        let (got, at) = s.await??;
        received += got;
        last = last.max(at);
    }
    let elapsed = last - start;
    let total = expect * a.subscribers;
    println!(
        "addr={} qos={} payload={}B publishers={} subscribers={} published={} in {:.3}s ({:.0} msg/s) delivered={}/{} in {:.3}s ({:.0} msg/s)",
        a.addr,
        a.qos,
        a.payload,
        a.publishers,
        a.subscribers,
        expect,
        published.as_secs_f64(),
        expect as f64 / published.as_secs_f64(),
        received,
        total,
        elapsed.as_secs_f64(),
        received as f64 / elapsed.as_secs_f64()
    );
    Ok(())
}
