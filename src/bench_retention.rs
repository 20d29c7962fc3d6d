//! `freshet bench retention`: what purging old data costs delivery, and whether the store
//! stops growing.
//!
//! Seeds a million old rows (settled events with a delivery and an attempt each) straight into
//! a store, then measures end-to-end delivery throughput through a node in alternating phases:
//! a node with retention off (normal), then one whose retention task is purging those rows,
//! and so on, in the order normal-purging, purging-normal, ... so that a machine drifting
//! (others' builds starting or ending, tables growing) weighs on both kinds alike. Then,
//! optionally, the rest of the purge with nothing else running. Then a steady run: events at
//! a fixed rate through a node keeping them `--steady-retention-seconds`, sampling the store's
//! size, so the size at the end can be compared with the size after the first window.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context;
use axum::{Router, routing::post};
use clap::Args;
use freshet_store::{Store, StoreOptions};
use serde_json::{Value, json};

use crate::bench::ChildNode;

/// Options of `freshet bench retention`.
#[derive(Args, Debug, Clone)]
pub struct RetentionBench {
    /// Old settled events to seed; each brings a delivery and an attempt (3 rows).
    #[arg(long, default_value_t = 340_000)]
    pub old_events: usize,
    /// Events pushed in each throughput phase.
    #[arg(long, default_value_t = 10_000)]
    pub events: u64,
    /// Pairs of phases (one normal, one purging each).
    #[arg(long, default_value_t = 2)]
    pub pairs: u32,
    /// Concurrent API clients.
    #[arg(long, default_value_t = 16)]
    pub clients: u64,
    /// After the phases, how long to let the rest of the purge run with no delivery, to see
    /// its pace and the store's size after it (0 skips it).
    #[arg(long, default_value_t = 600)]
    pub purge_wait_seconds: u64,
    /// The store: a `postgres://` URL of an empty database, or omitted for a fresh SQLite
    /// file.
    #[arg(long)]
    pub database_url: Option<String>,
    /// Length of the steady run in seconds (0 skips it).
    #[arg(long, default_value_t = 300)]
    pub steady_seconds: u64,
    /// Events per second in the steady run.
    #[arg(long, default_value_t = 100)]
    pub steady_rate: u64,
    /// Retention period of the steady run, in seconds.
    #[arg(long, default_value_t = 60)]
    pub steady_retention_seconds: u64,
    /// Seconds between the steady node's retention passes.
    #[arg(long, default_value_t = 10)]
    pub steady_every_seconds: u64,
    /// Seconds between two samples of the store's size in the steady run.
    #[arg(long, default_value_t = 15)]
    pub steady_sample_seconds: u64,
}

const ADMIN: &str = "bench-admin-token-0123456789abcdef";

/// What the phases share.
struct Bench<'a> {
    b: &'a RetentionBench,
    exe: std::path::PathBuf,
    db: String,
    dir: std::path::PathBuf,
    http: reqwest::Client,
    key: String,
    endpoint: uuid::Uuid,
    arrived: Arc<AtomicU64>,
}

pub async fn run(b: RetentionBench) -> anyhow::Result<()> {
    let arrived = Arc::new(AtomicU64::new(0));
    let receiver = start_receiver(arrived.clone()).await?;
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("bench.db");
    let db = b
        .database_url
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}", file.display()));
    let exe = std::env::current_exe()?;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(b.clients as usize * 2)
        .build()?;
    let kind = if b.database_url.is_some() {
        "postgres"
    } else {
        "sqlite"
    };
    println!(
        "freshet bench retention: store {kind}, {} old events (x3 rows), {} pairs of phases of {} events, {} clients",
        b.old_events, b.pairs, b.events, b.clients
    );

    // Schema, an application and an endpoint, then the old rows.
    let node = ChildNode::start(
        &exe,
        &db,
        "seed",
        ADMIN,
        dir.path().into(),
        &["--retention-days", "0"],
        "warn",
    )
    .await?;
    let (app, key, endpoint) = setup(&http, &node.base, receiver).await?;
    node.stop().await;
    let store = Store::connect(&db, &StoreOptions::default()).await?;
    if b.old_events > 0 {
        let seeded = Instant::now();
        let old = freshet_model::time::now() - time::Duration::days(60);
        store
            .seed_settled_events(app.into(), endpoint.into(), b.old_events, old)
            .await?;
        println!(
            "seeded     {} rows in {:.1} s",
            3 * b.old_events,
            seeded.elapsed().as_secs_f64()
        );
        report_sizes("after seeding", &store, &file).await?;
    }
    let bench = Bench {
        b: &b,
        exe,
        db,
        dir: dir.path().into(),
        http,
        key,
        endpoint,
        arrived,
    };
    if b.events > 0 && b.pairs > 0 {
        let purged = bench.phases().await?;
        if b.purge_wait_seconds > 0 && b.old_events > 0 {
            bench.rest_of_purge(purged, &store, &file).await?;
        }
    }
    if b.steady_seconds > 0 {
        bench.steady(&store, &file).await?;
    }
    store.close().await;
    Ok(())
}

impl Bench<'_> {
    /// Starts a node named `name`: purging with a 30-day period (the old rows are 60 days
    /// old), or with retention off.
    async fn node(&self, name: &str, purging: bool) -> anyhow::Result<ChildNode> {
        let days = if purging { "30" } else { "0" };
        ChildNode::start(
            &self.exe,
            &self.db,
            name,
            ADMIN,
            self.dir.clone(),
            &[
                "--retention-days",
                days,
                "--retention-every-seconds",
                "3600",
            ],
            if purging { "info" } else { "warn" },
        )
        .await
    }

    /// The alternating phases; answers the rows purged in them.
    async fn phases(&self) -> anyhow::Result<f64> {
        let b = self.b;
        let (mut normal, mut purging) = (Vec::new(), Vec::new());
        let (mut purged, mut purging_for) = (0.0, Duration::ZERO);
        for pair in 0..b.pairs {
            let order = if pair % 2 == 0 {
                [false, true]
            } else {
                [true, false]
            };
            for purge in order {
                let kind = if purge { "purging" } else { "normal" };
                let node = self.node(&format!("{kind}-{pair}"), purge).await?;
                let began = Instant::now();
                let rate = push(
                    &self.http,
                    &node.base,
                    &self.key,
                    self.endpoint,
                    b.events,
                    b.clients,
                    0,
                    &self.arrived,
                )
                .await?;
                let took = began.elapsed();
                if purge {
                    let rows = purged_rows(&self.http, &node.base).await?;
                    println!(
                        "pair {pair} {kind:<8} {rate:>6.0} events/s delivered end to end in {:.1} s; {rows:.0} rows purged meanwhile",
                        took.as_secs_f64()
                    );
                    purged += rows;
                    purging_for += took;
                    purging.push(rate);
                } else {
                    println!(
                        "pair {pair} {kind:<8} {rate:>6.0} events/s delivered end to end in {:.1} s",
                        took.as_secs_f64()
                    );
                    normal.push(rate);
                }
                node.stop().await;
            }
        }
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        let changes: Vec<f64> = normal
            .iter()
            .zip(&purging)
            .map(|(n, p)| 100.0 * (p - n) / n)
            .collect();
        let (lo, hi) = changes
            .iter()
            .fold((f64::MAX, f64::MIN), |(lo, hi), c| (lo.min(*c), hi.max(*c)));
        println!(
            "no purge   {:.0} events/s (mean of {}), purging {:.0} events/s: {:+.1} % (pairs from {lo:+.1} to {hi:+.1} %)",
            mean(&normal),
            normal.len(),
            mean(&purging),
            100.0 * (mean(&purging) - mean(&normal)) / mean(&normal),
        );
        println!(
            "purging    {purged:.0} rows in the {:.1} s of the purging phases = {:.0} rows/s",
            purging_for.as_secs_f64(),
            purged / purging_for.as_secs_f64()
        );
        Ok(purged)
    }

    /// The rest of the purge on a node doing nothing else; then the store's size.
    async fn rest_of_purge(
        &self,
        done: f64,
        store: &Store,
        file: &std::path::Path,
    ) -> anyhow::Result<()> {
        let node = self.node("purge-rest", true).await?;
        let began = Instant::now();
        let left = 3.0 * self.b.old_events as f64 - done;
        let deadline = began + Duration::from_secs(self.b.purge_wait_seconds);
        while purged_rows(&self.http, &node.base).await? < left && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let rows = purged_rows(&self.http, &node.base).await?;
        let took = began.elapsed().as_secs_f64();
        println!(
            "rest       {rows:.0} rows purged in {took:.1} s = {:.0} rows/s with no delivery{}",
            rows / took,
            if rows < left {
                " (deadline reached)"
            } else {
                ""
            }
        );
        // The pass ends with its last batches, then SQLite's free pages are returned to the
        // file system and PostgreSQL's tables vacuumed, both paced: give them a while.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let settle = Instant::now() + Duration::from_secs(120);
        while Instant::now() < settle {
            let sizes = sizes(store, file).await?;
            let free = sizes
                .iter()
                .find(|(name, _)| name == "free pages")
                .map(|(_, b)| *b);
            if free.is_none_or(|f| f < 1 << 20) {
                break;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        report_sizes("after the purge", store, file).await?;
        node.stop().await;
        Ok(())
    }

    /// Events at a steady rate through a node that keeps them a short while, with the store's
    /// size sampled along the way.
    async fn steady(&self, store: &Store, file: &std::path::Path) -> anyhow::Result<()> {
        let b = self.b;
        let retention = b.steady_retention_seconds.to_string();
        let every = b.steady_every_seconds.to_string();
        let node = ChildNode::start(
            &self.exe,
            &self.db,
            "steady",
            ADMIN,
            self.dir.clone(),
            &[
                "--retention-seconds",
                &retention,
                "--retention-every-seconds",
                &every,
            ],
            "info",
        )
        .await?;
        println!(
            "steady     {} events/s for {} s, retention {} s, a pass every {} s",
            b.steady_rate, b.steady_seconds, b.steady_retention_seconds, b.steady_every_seconds
        );
        let n = b.steady_rate * b.steady_seconds;
        let pusher = {
            let (http, base, key, arrived, endpoint) = (
                self.http.clone(),
                node.base.clone(),
                self.key.clone(),
                self.arrived.clone(),
                self.endpoint,
            );
            let rate = b.steady_rate;
            tokio::spawn(
                async move { push(&http, &base, &key, endpoint, n, 8, rate, &arrived).await },
            )
        };
        let started = Instant::now();
        let mut samples = Vec::new();
        while !pusher.is_finished() {
            tokio::time::sleep(Duration::from_secs(b.steady_sample_seconds)).await;
            let sizes = sizes(store, file).await?;
            let purged = purged_rows(&self.http, &node.base).await?;
            println!(
                "  t={:>5.0} s  {}; {purged:.0} rows purged",
                started.elapsed().as_secs_f64(),
                describe(&sizes)
            );
            samples.push((started.elapsed(), stored_bytes(&sizes)));
        }
        pusher.await??;
        // The first window: data old enough to go, and a pass to remove it.
        let window = Duration::from_secs(b.steady_retention_seconds + b.steady_every_seconds + 5);
        let after: Vec<_> = samples.iter().filter(|(t, _)| *t >= window).collect();
        if let (Some(first), Some(last)) = (after.first(), after.last()) {
            let (lo, hi) = after
                .iter()
                .fold((u64::MAX, 0), |(lo, hi), (_, s)| (lo.min(*s), hi.max(*s)));
            let change = |s: u64| 100.0 * (s as f64 - first.1 as f64) / first.1 as f64;
            println!(
                "steady     size after the first window (t={:.0} s) {:.1} MiB, at the end (t={:.0} s) {:.1} MiB: {:+.1} %; \
                 between them from {:.1} MiB ({:+.1} %) to {:.1} MiB ({:+.1} %)",
                first.0.as_secs_f64(),
                mib(first.1),
                last.0.as_secs_f64(),
                mib(last.1),
                change(last.1),
                mib(lo),
                change(lo),
                mib(hi),
                change(hi),
            );
        }
        println!(
            "steady     rows purged {:.0}",
            purged_rows(&self.http, &node.base).await?
        );
        node.stop().await;
        Ok(())
    }
}

async fn setup(
    http: &reqwest::Client,
    api: &str,
    receiver: SocketAddr,
) -> anyhow::Result<(uuid::Uuid, String, uuid::Uuid)> {
    let app: Value = http
        .post(format!("{api}/v1/applications"))
        .bearer_auth(ADMIN)
        .json(&json!({"name": "bench"}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let key = app["api_key"].as_str().context("no api_key")?.to_string();
    let endpoint: Value = http
        .post(format!("{api}/v1/webhook-endpoints"))
        .bearer_auth(&key)
        .json(&json!({"url": format!("http://{receiver}/hook")}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    Ok((
        app["id"].as_str().context("no id")?.parse()?,
        key,
        endpoint["id"].as_str().context("no id")?.parse()?,
    ))
}

/// Pushes `n` test events (at `rate` per second, 0: as fast as accepted) and waits for them
/// to arrive; the end-to-end rate.
#[allow(clippy::too_many_arguments)]
async fn push(
    http: &reqwest::Client,
    api: &str,
    key: &str,
    endpoint: uuid::Uuid,
    n: u64,
    clients: u64,
    rate: u64,
    arrived: &Arc<AtomicU64>,
) -> anyhow::Result<f64> {
    let before = arrived.load(Ordering::Relaxed);
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let url = format!("{api}/v1/webhook-endpoints/{endpoint}/test");
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let (http, next, url, key) = (http.clone(), next.clone(), url.clone(), key.to_string());
            tokio::spawn(async move {
                loop {
                    let seq = next.fetch_add(1, Ordering::Relaxed);
                    if seq >= n {
                        break;
                    }
                    if rate > 0 {
                        let due = started + Duration::from_secs_f64(seq as f64 / rate as f64);
                        tokio::time::sleep_until(due.into()).await;
                    }
                    let r = http
                        .post(&url)
                        .bearer_auth(&key)
                        .json(&json!({"data": {"seq": seq}}))
                        .send()
                        .await;
                    if !r.is_ok_and(|r| r.status().as_u16() == 202) {
                        eprintln!("event {seq}: not accepted");
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await?;
    }
    let deadline = Instant::now() + Duration::from_secs(300);
    while arrived.load(Ordering::Relaxed) - before < n && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok((arrived.load(Ordering::Relaxed) - before) as f64 / started.elapsed().as_secs_f64())
}

/// The node's `freshet_retention_purged_rows_total`, summed over tables.
async fn purged_rows(http: &reqwest::Client, api: &str) -> anyhow::Result<f64> {
    let text = http
        .get(format!("{api}/metrics"))
        .send()
        .await?
        .text()
        .await?;
    Ok(text
        .lines()
        .filter(|l| l.starts_with("freshet_retention_purged_rows_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum())
}

async fn sizes(store: &Store, file: &std::path::Path) -> anyhow::Result<Vec<(String, u64)>> {
    let mut sizes = store.storage_sizes().await?;
    if store.kind() == freshet_store::StoreKind::Sqlite {
        let on_disk = |p: std::path::PathBuf| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        let free = sizes.into_iter().filter(|(name, _)| name == "free pages");
        sizes = vec![
            ("file on disk".into(), on_disk(file.to_path_buf())),
            ("WAL".into(), on_disk(file.with_extension("db-wal"))),
        ];
        sizes.extend(free);
    }
    Ok(sizes)
}

async fn report_sizes(when: &str, store: &Store, file: &std::path::Path) -> anyhow::Result<()> {
    println!(
        "size       {when}: {}",
        describe(&sizes(store, file).await?)
    );
    Ok(())
}

/// What the store takes on disk: SQLite's file and WAL (the free pages are inside the file),
/// or PostgreSQL's three tables with their indexes and TOAST.
fn stored_bytes(sizes: &[(String, u64)]) -> u64 {
    sizes
        .iter()
        .filter(|(name, _)| name != "free pages")
        .map(|(_, b)| b)
        .sum()
}

fn describe(sizes: &[(String, u64)]) -> String {
    sizes
        .iter()
        .map(|(name, b)| format!("{name} {:.1} MiB", mib(*b)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn mib(b: u64) -> f64 {
    b as f64 / (1024.0 * 1024.0)
}

async fn start_receiver(arrived: Arc<AtomicU64>) -> anyhow::Result<SocketAddr> {
    let app = Router::new().route(
        "/hook",
        post(move || {
            let arrived = arrived.clone();
            async move {
                arrived.fetch_add(1, Ordering::Relaxed);
                axum::http::StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(addr)
}
