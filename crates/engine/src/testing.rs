//! Test support (feature `testing`): a scriptable webhook receiver on an ephemeral loopback
//! port, recording every request it gets.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
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
        let (g, s) = (got.clone(), script.clone());
        let app = Router::new()
            .route(
                "/hook",
                post(move |headers: HeaderMap, body: Bytes| {
                    let (g, s) = (g.clone(), s.clone());
                    async move {
                        g.lock().unwrap().push(Received { headers, body });
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
        Self { addr, got, script }
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
