//! The HTTP listener (shard 0), opened before recovery so probes can tell "starting" from
//! "down":
//!
//! - `GET /health`: 200 `ok` as long as the process serves HTTP (liveness).
//! - `GET /ready`: 200 once every shard recovered its partitions and opened its Kafka and RESP
//!   listeners, 503 before (readiness).
//! - `GET /metrics`: Prometheus text (`metrics::scrape` asks every shard over the mesh);
//!   503 until ready, since shards that are still recovering do not serve the mesh yet.
//! - `GET /`: the console, one self-contained page (`console.html`: no external scripts,
//!   styles or fonts) that reads `/api/overview` every 2 s and draws rates, latency and lag.
//! - `GET /api/overview`: the same merged metrics as `/metrics`, as JSON
//!   (`metrics::overview`); 503 until ready, like `/metrics`.
use std::sync::atomic::{AtomicUsize, Ordering};

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::{TcpListener, TcpStream};

use crate::metrics::exposition::CONTENT_TYPE as METRICS_CONTENT_TYPE;
use crate::metrics::overview::CONTENT_TYPE as OVERVIEW_CONTENT_TYPE;
use crate::runtime::ShardRef;

const HTTP_REQUEST_BYTES_MAX: usize = 8 << 10;
const TEXT_CONTENT_TYPE: &str = "text/plain; charset=utf-8";
const HTML_CONTENT_TYPE: &str = "text/html; charset=utf-8";
/// The console page, built into the binary.
const CONSOLE_PAGE: &str = include_str!("console.html");

/// How far start-up got, shared by the shard threads (written once per shard, read by probes).
pub struct Readiness {
    shards: usize,
    recovered: AtomicUsize,
    listening: AtomicUsize,
}

impl Readiness {
    pub fn new(shards: usize) -> Self {
        Self { shards, recovered: AtomicUsize::new(0), listening: AtomicUsize::new(0) }
    }

    /// A shard recovered its partitions and serves the mesh.
    pub fn shard_recovered(&self) {
        let recovered = self.recovered.fetch_add(1, Ordering::AcqRel) + 1;
        assert!(recovered <= self.shards, "more shards recovered than started");
    }

    pub fn all_recovered(&self) -> bool {
        self.recovered.load(Ordering::Acquire) == self.shards
    }

    /// A shard recovered and opened its Kafka and RESP listeners.
    pub fn shard_listening(&self) {
        let listening = self.listening.fetch_add(1, Ordering::AcqRel) + 1;
        assert!(listening <= self.shards, "more shards listening than started");
    }

    pub fn is_ready(&self) -> bool {
        self.listening.load(Ordering::Acquire) == self.shards
    }
}

pub fn listen(shard: ShardRef, readiness: std::sync::Arc<Readiness>) -> Result<glommio::Task<()>, String> {
    let address = shard.config.http_listen;
    let listener = TcpListener::bind(address)
        .map_err(|error| format!("cannot listen for HTTP on {address}: {}", std::io::Error::from(error)))?;
    tracing::info!(%address, "HTTP listener ready");
    Ok(glommio::spawn_local(async move {
        loop {
            match listener.accept().await {
                Ok(stream) => {
                    let (shard, readiness) = (shard.clone(), readiness.clone());
                    glommio::spawn_local(async move {
                        if let Err(error) = serve(&shard, &readiness, stream).await {
                            tracing::debug!(%error, "HTTP connection closed");
                        }
                    })
                    .detach();
                }
                Err(error) => {
                    tracing::warn!(%error, "HTTP accept failed");
                    glommio::timer::sleep(std::time::Duration::from_millis(10)).await;
                }
            }
        }
    }))
}

/// What a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Health,
    Ready,
    Metrics,
    Console,
    Overview,
    NotReady,
    NotFound,
    MethodNotAllowed,
}

/// Routes a request line's method and target (the query string is ignored).
fn route(method: &[u8], target: &[u8], ready: bool) -> Route {
    let path = target.split(|byte| *byte == b'?').next().unwrap_or_default();
    let known = matches!(path, b"/health" | b"/ready" | b"/metrics" | b"/" | b"/api/overview");
    if known && method != b"GET" && method != b"HEAD" {
        return Route::MethodNotAllowed;
    }
    match (path, ready) {
        (b"/health", _) => Route::Health,
        (b"/", _) => Route::Console,
        (b"/ready" | b"/metrics" | b"/api/overview", false) => Route::NotReady,
        (b"/ready", true) => Route::Ready,
        (b"/metrics", true) => Route::Metrics,
        (b"/api/overview", true) => Route::Overview,
        _ => Route::NotFound,
    }
}

async fn serve(shard: &ShardRef, readiness: &Readiness, mut stream: TcpStream) -> std::io::Result<()> {
    let mut request = Vec::new();
    let mut chunk = [0u8; 1024];
    while !request.windows(4).any(|window| window == b"\r\n\r\n") {
        let read = stream.read(&mut chunk).await?;
        if read == 0 || request.len() + read > HTTP_REQUEST_BYTES_MAX {
            return Ok(());
        }
        request.extend_from_slice(&chunk[..read]);
    }
    let line = request.split(|byte| *byte == b'\n').next().unwrap_or_default();
    let mut words = line.split(|byte| *byte == b' ');
    let (method, target) = (words.next().unwrap_or_default(), words.next().unwrap_or_default());
    let (status, content_type, body) = match route(method, target, readiness.is_ready()) {
        Route::Health => ("200 OK", TEXT_CONTENT_TYPE, "ok\n".to_string()),
        Route::Ready => ("200 OK", TEXT_CONTENT_TYPE, "ready\n".to_string()),
        Route::NotReady => ("503 Service Unavailable", TEXT_CONTENT_TYPE, "starting\n".to_string()),
        Route::Metrics => ("200 OK", METRICS_CONTENT_TYPE, crate::metrics::scrape(shard).await),
        Route::Console => ("200 OK", HTML_CONTENT_TYPE, CONSOLE_PAGE.to_string()),
        Route::Overview => {
            ("200 OK", OVERVIEW_CONTENT_TYPE, crate::metrics::overview::render(&crate::metrics::collect(shard).await))
        }
        Route::NotFound => ("404 Not Found", TEXT_CONTENT_TYPE, "not found\n".to_string()),
        Route::MethodNotAllowed => ("405 Method Not Allowed", TEXT_CONTENT_TYPE, "method not allowed\n".to_string()),
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    if method != b"HEAD" {
        stream.write_all(body.as_bytes()).await?;
    }
    stream.close().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_and_metrics_wait_for_start_up_and_health_does_not() {
        assert_eq!(route(b"GET", b"/health", false), Route::Health);
        assert_eq!(route(b"GET", b"/ready", false), Route::NotReady);
        assert_eq!(route(b"GET", b"/metrics", false), Route::NotReady);
        assert_eq!(route(b"GET", b"/ready", true), Route::Ready);
        assert_eq!(route(b"GET", b"/metrics?x=1", true), Route::Metrics);
        assert_eq!(route(b"HEAD", b"/metrics", true), Route::Metrics);
        assert_eq!(route(b"POST", b"/metrics", true), Route::MethodNotAllowed);
        assert_eq!(route(b"GET", b"/nothing", true), Route::NotFound);
    }

    #[test]
    fn the_console_page_is_served_at_once_and_its_data_once_ready() {
        assert_eq!(route(b"GET", b"/", false), Route::Console);
        assert_eq!(route(b"GET", b"/?refresh=1", true), Route::Console);
        assert_eq!(route(b"GET", b"/api/overview", false), Route::NotReady);
        assert_eq!(route(b"GET", b"/api/overview", true), Route::Overview);
        assert_eq!(route(b"POST", b"/api/overview", true), Route::MethodNotAllowed);
        assert_eq!(route(b"GET", b"/api", true), Route::NotFound);
    }

    #[test]
    fn the_console_page_loads_nothing_from_elsewhere() {
        let page = CONSOLE_PAGE.to_ascii_lowercase();
        for outside in ["http://", "https://", "//cdn", "<link", "src=", "@import", "url("] {
            assert!(!page.contains(outside), "the console page must be self-contained, found {outside:?}");
        }
        assert!(page.contains("/api/overview"));
    }

    #[test]
    fn readiness_counts_every_shard() {
        let readiness = Readiness::new(2);
        readiness.shard_recovered();
        assert!(!readiness.all_recovered());
        readiness.shard_recovered();
        assert!(readiness.all_recovered());
        assert!(!readiness.is_ready());
        readiness.shard_listening();
        assert!(!readiness.is_ready());
        readiness.shard_listening();
        assert!(readiness.is_ready());
    }
}
