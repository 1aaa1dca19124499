//! `cauldron probe URL`: one HTTP/1.1 GET over plain TCP, succeeding on a 2xx answer.
//! It is the container health check: a `FROM scratch` image has no shell and no curl,
//! so the binary probes its own `/health` or `/ready` endpoint. Blocking std I/O only,
//! no TLS, no redirects. This module knows nothing about the running broker.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

/// The largest answer head read before giving up on finding the status line.
const MAX_HEAD_BYTES: usize = 4096;

/// Arguments of `cauldron probe`.
#[derive(clap::Args, Debug)]
pub struct ProbeArgs {
    /// The URL to GET, `http://HOST:PORT/PATH` (for example http://127.0.0.1:9883/health).
    pub url: String,
    /// Connect, write and read deadline, each, in milliseconds.
    #[arg(long, default_value_t = 2000)]
    pub timeout_ms: u64,
}

/// Why a probe failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The URL is not `http://HOST:PORT/PATH`.
    #[error("invalid url `{0}`: expected http://HOST:PORT/PATH")]
    InvalidUrl(String),
    /// The host did not resolve.
    #[error("cannot resolve `{0}`")]
    Resolve(String),
    /// Connecting, writing or reading failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The answer does not start with an HTTP status line.
    #[error("malformed http answer")]
    Malformed,
    /// The server answered with a status outside 200..=299.
    #[error("http status {0}")]
    Status(u16),
}

/// A parsed `http://` URL.
#[derive(Debug, PartialEq, Eq)]
struct Target {
    authority: String,
    path: String,
}

fn parse_url(url: &str) -> Result<Target, Error> {
    let invalid = || Error::InvalidUrl(url.to_owned());
    let rest = url.strip_prefix("http://").ok_or_else(invalid)?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    // A port is required: the metrics endpoint has no well-known one.
    let port_ok = authority
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
    if !port_ok || path.contains(char::is_whitespace) {
        return Err(invalid());
    }
    Ok(Target {
        authority: authority.to_owned(),
        path: path.to_owned(),
    })
}

/// The status code of an answer head, from its first line `HTTP/1.x NNN ...`.
fn status_code(head: &[u8]) -> Result<u16, Error> {
    let line_end = head
        .windows(2)
        .position(|w| w == b"\r\n")
        .ok_or(Error::Malformed)?;
    let line = std::str::from_utf8(&head[..line_end]).map_err(|_| Error::Malformed)?;
    let mut parts = line.split(' ');
    let version = parts.next().ok_or(Error::Malformed)?;
    if !version.starts_with("HTTP/1.") {
        return Err(Error::Malformed);
    }
    let code = parts.next().ok_or(Error::Malformed)?;
    code.parse().map_err(|_| Error::Malformed)
}

/// GETs `args.url` and returns its status code when it is 2xx.
pub fn run(args: &ProbeArgs) -> Result<u16, Error> {
    let target = parse_url(&args.url)?;
    let timeout = Duration::from_millis(args.timeout_ms.max(1));
    let addrs: Vec<SocketAddr> = target
        .authority
        .to_socket_addrs()
        .map_err(|_| Error::Resolve(target.authority.clone()))?
        .collect();
    let addr = addrs
        .first()
        .ok_or_else(|| Error::Resolve(target.authority.clone()))?;
    let mut stream = TcpStream::connect_timeout(addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: cauldron-probe\r\nConnection: close\r\n\r\n",
        target.path, target.authority
    );
    stream.write_all(request.as_bytes())?;
    let mut head = Vec::with_capacity(256);
    let mut buf = [0u8; 512];
    while !head.windows(2).any(|w| w == b"\r\n") && head.len() < MAX_HEAD_BYTES {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    match status_code(&head)? {
        code @ 200..=299 => Ok(code),
        code => Err(Error::Status(code)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::thread;

    fn args(url: String) -> ProbeArgs {
        ProbeArgs {
            url,
            timeout_ms: 2000,
        }
    }

    /// A one-shot server answering `answer` to the first request, returning the request.
    fn serve_once(answer: &'static str) -> (String, thread::JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let handle = thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut req = Vec::new();
            let mut buf = [0u8; 512];
            while !req.ends_with(b"\r\n\r\n") {
                let n = s.read(&mut buf).unwrap();
                req.extend_from_slice(&buf[..n]);
            }
            s.write_all(answer.as_bytes()).unwrap();
            String::from_utf8(req).unwrap()
        });
        (format!("http://{addr}/health"), handle)
    }

    #[test]
    fn parses_host_port_and_path() {
        assert_eq!(
            parse_url("http://127.0.0.1:9883/health").unwrap(),
            Target {
                authority: "127.0.0.1:9883".into(),
                path: "/health".into()
            }
        );
        assert_eq!(parse_url("http://[::1]:9883").unwrap().path, "/");
    }

    #[test]
    fn rejects_urls_without_http_scheme_or_port() {
        for url in [
            "https://127.0.0.1:9883/health",
            "127.0.0.1:9883/health",
            "http://127.0.0.1/health",
            "http://:9883/health",
            "http://127.0.0.1:99999/",
            "http://127.0.0.1:9883/a b",
        ] {
            assert!(matches!(parse_url(url), Err(Error::InvalidUrl(_))), "{url}");
        }
    }

    #[test]
    fn succeeds_on_200_and_sends_a_get_for_the_path() {
        let (url, server) = serve_once("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok");
        assert_eq!(run(&args(url)).unwrap(), 200);
        let request = server.join().unwrap();
        assert!(request.starts_with("GET /health HTTP/1.1\r\n"), "{request}");
        assert!(request.contains("\r\nConnection: close\r\n"), "{request}");
    }

    #[test]
    fn fails_on_503() {
        let (url, server) = serve_once("HTTP/1.1 503 Service Unavailable\r\n\r\n");
        assert!(matches!(run(&args(url)), Err(Error::Status(503))));
        server.join().unwrap();
    }

    #[test]
    fn fails_on_a_non_http_answer() {
        let (url, server) = serve_once("SSH-2.0-OpenSSH\r\n");
        assert!(matches!(run(&args(url)), Err(Error::Malformed)));
        server.join().unwrap();
    }

    #[test]
    fn fails_when_nothing_listens() {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("http://127.0.0.1:{port}/health");
        assert!(matches!(run(&args(url)), Err(Error::Io(_))));
    }
}
