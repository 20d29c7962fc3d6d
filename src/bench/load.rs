//! The load: clients calling the public API, each call timed from the moment it starts, and
//! the same clients posting straight to the receiver for the loopback baseline.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use serde_json::json;

/// One accepted API call: when the client started it and when the 202 came back.
#[derive(Clone, Copy, Debug)]
pub struct Call {
    pub started: Instant,
    pub acked: Instant,
}

/// How much to offer.
#[derive(Clone, Copy, Debug)]
pub struct Load {
    pub events: u64,
    pub clients: u64,
    /// Events per second from the start; 0: each client sends as soon as it is answered.
    pub rate: u64,
}

/// The node and the endpoint of event `seq`: endpoints in turn, and the next node after each
/// round of endpoints, so that every node carries an equal share of every endpoint's events
/// (with `seq % nodes` instead, six endpoints on three nodes would each have one node).
pub fn route(seq: u64, nodes: usize, endpoints: usize) -> (usize, usize) {
    let endpoint = seq % endpoints as u64;
    let node = (seq / endpoints as u64) % nodes as u64;
    (node as usize, endpoint as usize)
}

/// Sends `load.events` test events, event `seq` to `urls[node][endpoint]` as [`route`] says,
/// from `load.clients` concurrent clients. Answers the accepted calls by `seq`.
pub async fn push(
    http: &reqwest::Client,
    key: &str,
    urls: Arc<Vec<Vec<String>>>,
    load: Load,
    started: Instant,
) -> anyhow::Result<HashMap<u64, Call>> {
    let calls = Arc::new(Mutex::new(HashMap::with_capacity(load.events as usize)));
    let next = Arc::new(AtomicU64::new(0));
    let clients: Vec<_> = (0..load.clients)
        .map(|_| {
            let (http, key, urls, calls, next) = (
                http.clone(),
                key.to_string(),
                urls.clone(),
                calls.clone(),
                next.clone(),
            );
            tokio::spawn(async move {
                loop {
                    let seq = next.fetch_add(1, Ordering::Relaxed);
                    if seq >= load.events {
                        break;
                    }
                    if load.rate > 0 {
                        let due = started + Duration::from_secs_f64(seq as f64 / load.rate as f64);
                        tokio::time::sleep_until(due.into()).await;
                    }
                    let (node, endpoint) = route(seq, urls.len(), urls[0].len());
                    let call_started = Instant::now();
                    let resp = http
                        .post(&urls[node][endpoint])
                        .bearer_auth(&key)
                        .json(&json!({"data": {"seq": seq}}))
                        .send()
                        .await;
                    match resp {
                        Ok(r) if r.status().as_u16() == 202 => {
                            let call = Call {
                                started: call_started,
                                acked: Instant::now(),
                            };
                            calls.lock().unwrap().insert(seq, call);
                        }
                        Ok(r) => eprintln!("event {seq}: API answered {}", r.status()),
                        Err(e) => eprintln!("event {seq}: {e}"),
                    }
                }
            })
        })
        .collect();
    for c in clients {
        c.await?;
    }
    let calls = std::mem::take(&mut *calls.lock().unwrap());
    Ok(calls)
}

/// Requests per second of `clients` clients posting `n` requests straight to the receiver.
pub async fn baseline(
    http: &reqwest::Client,
    receiver: SocketAddr,
    n: u64,
    clients: u64,
) -> anyhow::Result<f64> {
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let (http, next) = (http.clone(), next.clone());
            let url = format!("http://{receiver}/direct");
            tokio::spawn(async move {
                while next.fetch_add(1, Ordering::Relaxed) < n {
                    let _ = http
                        .post(&url)
                        .json(&json!({"data": {"seq": 0}}))
                        .send()
                        .await;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await?;
    }
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_node_carries_every_endpoint_equally() {
        let mut share = HashMap::new();
        for seq in 0..36 {
            *share.entry(route(seq, 3, 6)).or_insert(0) += 1;
        }
        assert_eq!(share.len(), 18);
        assert!(share.values().all(|n| *n == 2));
        assert_eq!(route(7, 1, 1), (0, 0));
    }
}
