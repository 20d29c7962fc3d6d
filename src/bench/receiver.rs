//! The receiver the benchmark delivers to: it notes when each event first arrives, every
//! delivery per endpoint (duplicates included: a rate limit governs requests), and each
//! `webhook-id` seen, on this process's clock.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant, SystemTime},
};

use axum::{
    Router,
    body::Bytes,
    extract::Path,
    http::{HeaderMap, StatusCode},
    routing::post,
};
use serde_json::Value;

/// What the receiver has seen so far.
pub struct Arrivals {
    /// When each event (by `seq`) first arrived.
    pub at: HashMap<u64, Instant>,
    /// Deliveries per `webhook-id`: more than one is a duplicate.
    pub webhook_ids: HashMap<String, u32>,
    /// Every delivery's arrival, per endpoint (the `/hook/{n}` it came to).
    pub per_endpoint: Vec<Vec<Instant>>,
    /// This clock's reading at `origin_wall`, to place arrivals in calendar seconds.
    origin: Instant,
    origin_wall: Duration,
}

impl Arrivals {
    pub fn new(endpoints: usize) -> Self {
        Self {
            at: HashMap::new(),
            webhook_ids: HashMap::new(),
            per_endpoint: vec![Vec::new(); endpoints],
            origin: Instant::now(),
            origin_wall: SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default(),
        }
    }

    /// Endpoint `n`'s deliveries in arrival order, as times since the Unix epoch.
    pub fn wall_times(&self, n: usize) -> Vec<Duration> {
        let mut times: Vec<Duration> = self.per_endpoint[n]
            .iter()
            .map(|at| self.origin_wall + at.saturating_duration_since(self.origin))
            .collect();
        times.sort();
        times
    }
}

/// Serves `POST /hook/{n}` (endpoint n's deliveries) and `POST /direct` (the baseline) on a
/// free loopback port.
pub async fn start(arrivals: Arc<Mutex<Arrivals>>) -> anyhow::Result<SocketAddr> {
    let app = Router::new()
        .route(
            "/hook/{endpoint}",
            post(
                move |Path(endpoint): Path<usize>, headers: HeaderMap, body: Bytes| {
                    let arrivals = arrivals.clone();
                    async move {
                        let now = Instant::now();
                        let seq = serde_json::from_slice::<Value>(&body)
                            .ok()
                            .and_then(|v| v["data"]["data"]["seq"].as_u64());
                        let mut a = arrivals.lock().unwrap();
                        let Some(times) = a.per_endpoint.get_mut(endpoint) else {
                            return StatusCode::NOT_FOUND;
                        };
                        times.push(now);
                        if let Some(id) = headers.get("webhook-id").and_then(|v| v.to_str().ok()) {
                            *a.webhook_ids.entry(id.to_string()).or_default() += 1;
                        }
                        if let Some(seq) = seq {
                            a.at.entry(seq).or_insert(now);
                        }
                        StatusCode::NO_CONTENT
                    }
                },
            ),
        )
        .route("/direct", post(|| async { StatusCode::NO_CONTENT }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(addr)
}
