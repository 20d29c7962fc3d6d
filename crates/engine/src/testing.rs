//! Test support (feature `testing`): a scriptable webhook receiver on an ephemeral loopback
//! port, recording every request it gets.

use std::{
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use axum::{
    Router,
    body::Bytes,
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::{any, post},
};

/// One request the receiver got.
#[derive(Clone, Debug)]
pub struct Received {
    pub headers: HeaderMap,
    pub body: Bytes,
    /// When it arrived, on this process's clock.
    pub at: std::time::Instant,
}

/// How the receiver answers its next requests, in order; the last answer repeats.
#[derive(Clone, Debug)]
pub enum Answer {
    Status(u16),
    StatusWithBody(u16, String),
    RetryAfter(u16, &'static str),
    Redirect(&'static str),
    Hang(Duration),
}

/// A receiver; cheap to clone, all clones see the same requests.
#[derive(Clone)]
pub struct Receiver {
    pub addr: SocketAddr,
    pub got: Arc<Mutex<Vec<Received>>>,
    script: Arc<Mutex<Vec<Answer>>>,
    /// Requests being answered now, and the most there ever were at once.
    open: Arc<(AtomicUsize, AtomicUsize)>,
}

impl Receiver {
    /// Starts a receiver answering with `script`.
    pub async fn start(script: Vec<Answer>) -> Self {
        Self::start_on("127.0.0.1:0".parse().unwrap(), script).await
    }

    /// Starts a receiver on `addr` (a port a test reserved earlier, say).
    pub async fn start_on(addr: SocketAddr, script: Vec<Answer>) -> Self {
        let got = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(Mutex::new(script));
        let open = Arc::new((AtomicUsize::new(0), AtomicUsize::new(0)));
        let (g, s, o) = (got.clone(), script.clone(), open.clone());
        let app = Router::new()
            .route(
                "/hook",
                post(move |headers: HeaderMap, body: Bytes| {
                    let (g, s, o) = (g.clone(), s.clone(), o.clone());
                    async move {
                        let now_open = o.0.fetch_add(1, Ordering::AcqRel) + 1;
                        o.1.fetch_max(now_open, Ordering::AcqRel);
                        let _closing = Closing(&o.0);
                        g.lock().unwrap().push(Received {
                            headers,
                            body,
                            at: std::time::Instant::now(),
                        });
                        let answer = {
                            let mut s = s.lock().unwrap();
                            if s.len() > 1 {
                                s.remove(0)
                            } else {
                                s[0].clone()
                            }
                        };
                        respond(answer).await
                    }
                }),
            )
            .route("/elsewhere", any(|| async { StatusCode::OK }));
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self {
            addr,
            got,
            script,
            open,
        }
    }

    /// The most requests the receiver was answering at once.
    pub fn peak_concurrency(&self) -> usize {
        self.open.1.load(Ordering::Acquire)
    }

    /// The URL to register as an endpoint.
    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    /// Everything received so far.
    pub fn received(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }

    /// Waits until `n` requests arrived, or panics after `within`.
    pub async fn wait_for(&self, n: usize, within: Duration) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + within;
        while self.count() < n {
            assert!(
                tokio::time::Instant::now() < deadline,
                "only {} of {n} requests arrived",
                self.count()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.received()
    }

    /// How many requests arrived.
    pub fn count(&self) -> usize {
        self.got.lock().unwrap().len()
    }

    /// Replaces the script of answers.
    pub fn answer_next(&self, script: Vec<Answer>) {
        *self.script.lock().unwrap() = script;
    }
}

/// Counts a request as answered however its handler ends.
struct Closing<'a>(&'a AtomicUsize);

impl Drop for Closing<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

async fn respond(answer: Answer) -> Response {
    match answer {
        Answer::Status(s) => StatusCode::from_u16(s).unwrap().into_response(),
        Answer::StatusWithBody(s, body) => (StatusCode::from_u16(s).unwrap(), body).into_response(),
        Answer::RetryAfter(s, after) => {
            (StatusCode::from_u16(s).unwrap(), [("retry-after", after)]).into_response()
        }
        Answer::Redirect(to) => (StatusCode::FOUND, [("location", to)]).into_response(),
        Answer::Hang(d) => {
            tokio::time::sleep(d).await;
            StatusCode::OK.into_response()
        }
    }
}
