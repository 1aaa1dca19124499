//! The HTTP/1.1 side of the monitoring endpoint (hyper): `GET /metrics`, `GET /health`,
//! `GET /ready`, 404 for any other path and 405 for other methods.
//!
//! Readiness follows the server's shutdown token: the endpoint only runs once the
//! listeners are bound and the plugins loaded, answers 503 on `/ready` from the moment
//! shutdown starts, and keeps answering until [`Running::stop`] (after the MQTT
//! connections have drained), so an orchestrator sees the broker go unready before it
//! goes away. It knows nothing about MQTT.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{ALLOW, CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use super::{Snapshot, render};
use crate::broker::Broker;
use crate::config::MetricsConfig;

/// Monitoring connections served at once; more are closed on accept.
const MAX_CONNECTIONS: usize = 16;
/// Time a client has to send a request's headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Time open requests get to finish once the endpoint stops.
const STOP_GRACE: Duration = Duration::from_secs(1);

/// The bound, not yet serving endpoint.
#[derive(Debug)]
pub struct Endpoint {
    socket: TcpListener,
}

impl Endpoint {
    /// Binds `config.bind` when the endpoint is enabled; `None` when it is not.
    pub async fn bind(config: &MetricsConfig) -> std::io::Result<Option<Endpoint>> {
        if !config.enabled {
            return Ok(None);
        }
        let socket = TcpListener::bind(config.bind).await?;
        Ok(Some(Endpoint { socket }))
    }

    /// The bound address.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.socket.local_addr().ok()
    }

    /// Serves in a task of its own until [`Running::stop`]. `/ready` answers 503 once
    /// `shutdown` is cancelled.
    pub fn spawn(self, broker: Arc<Broker>, shutdown: CancellationToken) -> Running {
        if let Some(addr) = self.local_addr() {
            info!(%addr, "metrics endpoint listening");
        }
        let stop = CancellationToken::new();
        let task = tokio::spawn(accept_loop(self.socket, broker, shutdown, stop.clone()));
        Running { stop, task }
    }
}

/// A serving endpoint.
#[derive(Debug)]
pub struct Running {
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl Running {
    /// Stops accepting, lets open requests finish (briefly) and waits for the task.
    pub async fn stop(self) {
        self.stop.cancel();
        if let Err(e) = self.task.await {
            warn!(error = %e, "metrics endpoint task failed");
        }
    }
}

async fn accept_loop(
    socket: TcpListener,
    broker: Arc<Broker>,
    shutdown: CancellationToken,
    stop: CancellationToken,
) {
    let tracker = TaskTracker::new();
    let limit = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let (stream, peer) = tokio::select! {
            _ = stop.cancelled() => break,
            res = socket.accept() => match res {
                Ok(pair) => pair,
                Err(e) => {
                    warn!(error = %e, "metrics endpoint: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = Arc::clone(&limit).try_acquire_owned() else {
            debug!(%peer, "metrics endpoint: too many connections, closed");
            continue;
        };
        tracker.spawn(serve_connection(
            stream,
            Arc::clone(&broker),
            shutdown.clone(),
            stop.clone(),
            permit,
        ));
    }
    tracker.close();
    let _ = tokio::time::timeout(STOP_GRACE * 2, tracker.wait()).await;
}

async fn serve_connection(
    stream: TcpStream,
    broker: Arc<Broker>,
    shutdown: CancellationToken,
    stop: CancellationToken,
    _permit: OwnedSemaphorePermit,
) {
    let service = service_fn(move |req: Request<Incoming>| {
        let response = respond(&broker, &shutdown, req.method(), req.uri().path());
        std::future::ready(Ok::<_, Infallible>(response))
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    let mut conn = std::pin::pin!(conn);
    tokio::select! {
        res = conn.as_mut() => {
            if let Err(e) = res {
                debug!(error = %e, "metrics connection closed");
            }
        }
        _ = stop.cancelled() => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(STOP_GRACE, conn).await;
        }
    }
}

/// The answer to one request.
pub(super) fn respond(
    broker: &Broker,
    shutdown: &CancellationToken,
    method: &Method,
    path: &str,
) -> Response<Full<Bytes>> {
    if !matches!(path, "/metrics" | "/health" | "/ready") {
        return text(StatusCode::NOT_FOUND, "not found\n");
    }
    if method != Method::GET && method != Method::HEAD {
        let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
        r.headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    match path {
        "/metrics" => {
            let body = render(&Snapshot::of(broker));
            let mut r = Response::new(Full::new(Bytes::from(body)));
            r.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static(super::CONTENT_TYPE));
            r.headers_mut()
                .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
            r
        }
        "/ready" if shutdown.is_cancelled() => {
            text(StatusCode::SERVICE_UNAVAILABLE, "shutting down\n")
        }
        "/ready" => text(StatusCode::OK, "ready\n"),
        _ => text(StatusCode::OK, "ok\n"),
    }
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn status(shutdown: &CancellationToken, method: Method, path: &str) -> StatusCode {
        let broker = Broker::new(Config::default());
        respond(&broker, shutdown, &method, path).status()
    }

    #[test]
    fn routes_metrics_health_and_ready() {
        let running = CancellationToken::new();
        assert_eq!(status(&running, Method::GET, "/metrics"), StatusCode::OK);
        assert_eq!(status(&running, Method::GET, "/health"), StatusCode::OK);
        assert_eq!(status(&running, Method::GET, "/ready"), StatusCode::OK);
        assert_eq!(status(&running, Method::HEAD, "/ready"), StatusCode::OK);
    }

    #[test]
    fn unknown_path_is_404_and_other_methods_405() {
        let running = CancellationToken::new();
        assert_eq!(status(&running, Method::GET, "/"), StatusCode::NOT_FOUND);
        assert_eq!(
            status(&running, Method::GET, "/metrics/"),
            StatusCode::NOT_FOUND
        );
        let broker = Broker::new(Config::default());
        let r = respond(&broker, &running, &Method::POST, "/metrics");
        assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(r.headers()[ALLOW], "GET, HEAD");
    }

    #[test]
    fn not_ready_but_healthy_once_shutdown_starts() {
        let shutdown = CancellationToken::new();
        shutdown.cancel();
        assert_eq!(
            status(&shutdown, Method::GET, "/ready"),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(status(&shutdown, Method::GET, "/health"), StatusCode::OK);
    }

    #[test]
    fn metrics_are_served_as_prometheus_text() {
        let broker = Broker::new(Config::default());
        let r = respond(&broker, &CancellationToken::new(), &Method::GET, "/metrics");
        assert_eq!(
            r.headers()[CONTENT_TYPE],
            "text/plain; version=0.0.4; charset=utf-8"
        );
    }
}
