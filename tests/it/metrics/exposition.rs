//! Test-side readers for the metrics endpoint, written from the Prometheus text format
//! 0.0.4 and HTTP/1.1 specifications rather than from the broker's code: a one-request
//! HTTP GET over a plain socket and a parser that also checks the format's rules.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A response: status code, lower-cased header names, body.
pub struct HttpResponse {
    pub status: u16,
    pub headers: HashMap<String, String>,
    pub body: String,
}

/// `GET path` with `Connection: close`; the response is read to the end.
pub async fn get(addr: SocketAddr, path: &str) -> HttpResponse {
    let mut stream = TcpStream::connect(addr).await.expect("connect to metrics");
    let request = format!("GET {path} HTTP/1.1\r\nHost: cauldron\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .expect("send the request");
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut raw))
        .await
        .expect("metrics response within 10 s")
        .expect("read metrics response");
    let text = String::from_utf8(raw).expect("UTF-8 response");
    let (head, body) = text.split_once("\r\n\r\n").expect("header/body separator");
    let mut lines = head.split("\r\n");
    let status_line = lines.next().expect("status line");
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect::<HashMap<_, _>>();
    if let Some(len) = headers.get("content-length") {
        assert_eq!(
            len.parse::<usize>().expect("numeric Content-Length"),
            body.len(),
            "Content-Length"
        );
    }
    HttpResponse {
        status,
        headers,
        body: body.to_owned(),
    }
}

/// A parsed exposition: sample values by name and sorted labels, family types by name.
#[derive(Debug, Default)]
pub struct Exposition {
    samples: HashMap<(String, Vec<(String, String)>), f64>,
    types: HashMap<String, String>,
}

impl Exposition {
    /// Parses `text`, failing the test on any line that breaks the format: a sample
    /// before its family's `# TYPE`, a counter not named `_total`, a repeated sample.
    pub fn parse(text: &str) -> Exposition {
        let mut e = Exposition::default();
        let mut helped = Vec::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let name = rest.split(' ').next().expect("# HELP name");
                helped.push(name.to_owned());
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').expect("# TYPE name kind");
                assert!(
                    helped.iter().any(|h| h == name),
                    "# TYPE {name} without # HELP"
                );
                let previous = e.types.insert(name.to_owned(), kind.to_owned());
                assert!(previous.is_none(), "family {name} described twice");
                if kind == "counter" {
                    assert!(name.ends_with("_total"), "counter {name} not named _total");
                }
            } else if !line.is_empty() {
                let (name, labels, value) = parse_sample(line);
                let family = e.family_of(&name);
                assert!(family.is_some(), "sample {name} before its # TYPE");
                let previous = e.samples.insert((name, labels), value);
                assert!(previous.is_none(), "repeated sample: {line}");
            }
        }
        e
    }

    fn family_of(&self, name: &str) -> Option<&str> {
        if let Some(kind) = self.types.get(name) {
            return Some(kind);
        }
        ["_bucket", "_sum", "_count"]
            .iter()
            .filter_map(|suffix| name.strip_suffix(suffix))
            .find_map(|base| self.types.get(base).filter(|k| *k == "histogram"))
            .map(String::as_str)
    }

    /// The type of family `name`.
    pub fn kind(&self, name: &str) -> Option<&str> {
        self.types.get(name).map(String::as_str)
    }

    /// The value of the sample `name{labels}`; fails the test when it is missing.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let mut key: Vec<(String, String)> = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        key.sort();
        *self
            .samples
            .get(&(name.to_owned(), key))
            .unwrap_or_else(|| panic!("no sample {name}{labels:?}"))
    }

    /// Every sample of `name` whose labels include `labels`, as (labels, value).
    pub fn matching(
        &self,
        name: &str,
        labels: &[(&str, &str)],
    ) -> Vec<(Vec<(String, String)>, f64)> {
        self.samples
            .iter()
            .filter(|((n, l), _)| {
                n == name
                    && labels
                        .iter()
                        .all(|(k, v)| l.iter().any(|(lk, lv)| lk == k && lv == v))
            })
            .map(|((_, l), v)| (l.clone(), *v))
            .collect()
    }
}

/// `name{a="x",b="y"} value` → (name, sorted labels, value); label values unescaped.
fn parse_sample(line: &str) -> (String, Vec<(String, String)>, f64) {
    let name_end = line.find(['{', ' ']).expect("sample name");
    let name = line[..name_end].to_owned();
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(inner) = rest.strip_prefix('{') {
        let mut chars = inner.char_indices();
        let mut key = String::new();
        let end = loop {
            let (i, c) = chars.next().expect("unterminated label set");
            match c {
                '}' => break i,
                ',' => {}
                '=' => {
                    assert_eq!(chars.next().map(|(_, c)| c), Some('"'), "label value quote");
                    let mut value = String::new();
                    loop {
                        match chars.next().expect("unterminated label value").1 {
                            '"' => break,
                            '\\' => match chars.next().expect("escape").1 {
                                'n' => value.push('\n'),
                                other => value.push(other),
                            },
                            other => value.push(other),
                        }
                    }
                    labels.push((std::mem::take(&mut key), value));
                }
                other => key.push(other),
            }
        };
        rest = &inner[end + 1..];
    }
    let value = rest.trim();
    let value = match value {
        "+Inf" => f64::INFINITY,
        v => v
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line:?}")),
    };
    labels.sort();
    (name, labels, value)
}

#[test]
fn parser_reads_labels_with_escapes() {
    let e = Exposition::parse(
        "# HELP x_total h\n# TYPE x_total counter\nx_total{b=\"q\\\"\\\\\\n\",a=\"1\"} 3\n",
    );
    assert_eq!(e.value("x_total", &[("a", "1"), ("b", "q\"\\\n")]), 3.0);
}
