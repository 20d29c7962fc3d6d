//! The HTTP accept loop: `axum::serve` with the limits a server facing the internet needs.
//!
//! `axum::serve` reads headers and bodies for as long as a client cares to send them and
//! spawns a task for every connection it accepts, so 2,000 idle connections stayed open for
//! minutes and a declared 10 GB body was not refused up front (issue 17). This loop serves the
//! same router over hyper's HTTP/1 with:
//! - a header read timeout (hyper's own): a connection that sends no complete request head in
//!   time, including an idle keep-alive connection, is closed;
//! - a body idle timeout: a body that stops arriving for that long is answered 408 and the
//!   connection closed;
//! - a connection limit: beyond it, connections wait in the kernel's accept queue — no task
//!   is spawned and no memory is spent on them;
//! - a declared `Content-Length` above the body limit answered 413 before the body is read.
//!
//! Every request carries [`ConnectInfo`] with the peer's address. Nothing here is specific to
//! freshet's API beyond the problem details of the 408 and 413 answers.

use std::{
    convert::Infallible,
    future::Future,
    net::SocketAddr,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use axum::{
    Router,
    body::Body,
    extract::ConnectInfo,
    http::{HeaderValue, Request, Response, header},
    response::IntoResponse,
};
use bytes::Bytes;
use freshet_api::problem::ApiError;
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::{
    net::{TcpListener, TcpStream},
    sync::Semaphore,
    time::Sleep,
};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// The limits of one server.
#[derive(Clone, Copy, Debug)]
pub struct ServeLimits {
    /// Time a connection has to send a complete request head (also the keep-alive idle time).
    pub header_read_timeout: Duration,
    /// Time a request body may go without a byte arriving.
    pub body_idle_timeout: Duration,
    /// Connections served at once; more wait to be accepted.
    pub max_connections: usize,
    /// Largest `Content-Length` accepted.
    pub max_body_bytes: usize,
}

impl Default for ServeLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            body_idle_timeout: Duration::from_secs(30),
            max_connections: 4096,
            max_body_bytes: 1024 * 1024,
        }
    }
}

/// Serves `app` on `listener` until `stop` is cancelled, then lets in-flight requests finish
/// and returns once every connection has closed.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ServeLimits,
    stop: CancellationToken,
) -> std::io::Result<()> {
    let permits = limits.max_connections.max(1);
    let slots = Arc::new(Semaphore::new(permits));
    loop {
        // A slot first, then accept: connections beyond the limit stay in the accept queue.
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
            () = stop.cancelled() => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    on_accept_error(e).await;
                    continue;
                }
            },
            () = stop.cancelled() => break,
        };
        let app = app.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            serve_connection(stream, peer, app, limits, stop).await;
            drop(slot);
        });
    }
    // Every connection holds a slot until it closes: having them all back means all closed.
    let _all = slots
        .acquire_many(u32::try_from(permits).unwrap_or(u32::MAX))
        .await;
    Ok(())
}

/// Errors of `accept` that concern one connection are skipped; others (out of file
/// descriptors) are waited out rather than spun on.
async fn on_accept_error(e: std::io::Error) {
    use std::io::ErrorKind::*;
    if matches!(
        e.kind(),
        ConnectionAborted | ConnectionReset | ConnectionRefused
    ) {
        return;
    }
    tracing::warn!(error = %e, "accepting a connection failed; retrying in a second");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    app: Router,
    limits: ServeLimits,
    stop: CancellationToken,
) {
    let _ = stream.set_nodelay(true);
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let app = app.clone();
        async move { Ok::<_, Infallible>(handle(app, req, peer, limits).await) }
    });
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let conn = http.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    let result = tokio::select! {
        result = conn.as_mut() => result,
        () = stop.cancelled() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}

/// One request: refused at once if its declared length is too large, otherwise served with a
/// body that may not stall.
async fn handle(
    app: Router,
    req: Request<Incoming>,
    peer: SocketAddr,
    limits: ServeLimits,
) -> Response<Body> {
    if declared_length(&req).is_some_and(|n| n > limits.max_body_bytes as u64) {
        return closing(
            ApiError::PayloadTooLarge {
                limit: limits.max_body_bytes,
            }
            .into_response(),
        );
    }
    let stalled = Arc::new(AtomicBool::new(false));
    let (mut parts, body) = req.into_parts();
    parts.extensions.insert(ConnectInfo(peer));
    let body = IdleTimeoutBody::new(body, limits.body_idle_timeout, stalled.clone());
    let req = Request::from_parts(parts, Body::new(body));
    let response = match app.oneshot(req).await {
        Ok(response) => response,
        Err(never) => match never {},
    };
    if stalled.load(Ordering::Acquire) {
        // Whatever the handler made of the failed read, the client is told why.
        return closing(ApiError::RequestTimeout.into_response());
    }
    response
}

fn declared_length<B>(req: &Request<B>) -> Option<u64> {
    req.headers()
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Marks a response as the connection's last: the unread rest of the body makes it unusable.
fn closing(mut response: Response<Body>) -> Response<Body> {
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// The body stalled for longer than the idle timeout.
#[derive(Debug, thiserror::Error)]
#[error("the request body stalled for longer than {0:?}")]
pub struct BodyStalled(Duration);

/// A request body that fails when no frame arrives for `timeout`, recording that it did. The
/// timer exists only while the body is waited for: most requests never wait.
struct IdleTimeoutBody {
    inner: Incoming,
    timeout: Duration,
    sleep: Option<Pin<Box<Sleep>>>,
    stalled: Arc<AtomicBool>,
}

impl IdleTimeoutBody {
    fn new(inner: Incoming, timeout: Duration, stalled: Arc<AtomicBool>) -> Self {
        Self {
            inner,
            timeout,
            sleep: None,
            stalled,
        }
    }
}

impl HttpBody for IdleTimeoutBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                // Something arrived: the next wait gets a whole timeout again.
                this.sleep = None;
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => {
                let timeout = this.timeout;
                let sleep = this
                    .sleep
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                match sleep.as_mut().poll(cx) {
                    Poll::Ready(()) => {
                        this.stalled.store(true, Ordering::Release);
                        Poll::Ready(Some(Err(BodyStalled(timeout).into())))
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
