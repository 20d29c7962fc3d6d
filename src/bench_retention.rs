//! `freshet bench retention`: what purging old data costs delivery, and whether the store
//! stops growing.
//!
//! Seeds a million old rows (settled events with a delivery and an attempt each) straight into
//! a store, then measures end-to-end delivery throughput through a node twice: with retention
//! off, and while the node's retention task purges those rows. Then a steady run: events at a
//! fixed rate through a node keeping them `--steady-retention-seconds`, sampling the store's
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
    /// Concurrent API clients.
    #[arg(long, default_value_t = 16)]
    pub clients: u64,
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
}

const ADMIN: &str = "bench-admin-token-0123456789abcdef";

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
        "freshet bench retention: store {kind}, {} old events (x3 rows), {} events per phase, {} clients",
        b.old_events, b.events, b.clients
    );

    // Phase 0: schema, an application and an endpoint, then the old rows.
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
    if b.events > 0 {
        // Phase 1: delivery with retention off.
        let quiet = push(
            &http, &node.base, &key, endpoint, b.events, b.clients, 0, &arrived,
        )
        .await?;
        println!("no purge   {quiet:.0} events/s delivered end to end");
        node.stop().await;
        // Phase 2: the same while the retention task purges the old rows.
        purge_phase(
            &b,
            &exe,
            &db,
            dir.path().into(),
            &http,
            &key,
            endpoint,
            &arrived,
            quiet,
        )
        .await?;
        report_sizes("after the purge", &store, &file).await?;
    } else {
        node.stop().await;
    }
    if b.steady_seconds > 0 {
        steady(
            &b,
            &exe,
            &db,
            dir.path().into(),
            &http,
            &key,
            endpoint,
            &arrived,
            &store,
            &file,
        )
        .await?;
    }
    store.close().await;
    Ok(())
}

/// Delivery through a node whose retention task is purging the old rows; `quiet` is the
/// rate measured without.
#[allow(clippy::too_many_arguments)]
async fn purge_phase(
    b: &RetentionBench,
    exe: &std::path::Path,
    db: &str,
    dir: std::path::PathBuf,
    http: &reqwest::Client,
    key: &str,
    endpoint: uuid::Uuid,
    arrived: &Arc<AtomicU64>,
    quiet: f64,
) -> anyhow::Result<()> {
    let node = ChildNode::start(
        exe,
        db,
        "purge",
        ADMIN,
        dir,
        &[
            "--retention-days",
            "30",
            "--retention-every-seconds",
            "3600",
        ],
        "info",
    )
    .await?;
    let purging_from = Instant::now();
    let during = push(
        http, &node.base, key, endpoint, b.events, b.clients, 0, arrived,
    )
    .await?;
    let pushed_for = purging_from.elapsed();
    let purged_then = purged(http, &node.base).await?;
    println!(
        "purging    {during:.0} events/s delivered end to end ({:+.1} % vs no purge); \
         {purged_then:.0} rows purged during the {:.1} s measured",
        100.0 * (during - quiet) / quiet,
        pushed_for.as_secs_f64()
    );
    let target = 3.0 * b.old_events as f64;
    let deadline = Instant::now() + Duration::from_secs(1800);
    while purged(http, &node.base).await? < target && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let total = purged(http, &node.base).await?;
    println!(
        "purge      {total:.0} rows in {:.1} s = {:.0} rows/s",
        purging_from.elapsed().as_secs_f64(),
        total / purging_from.elapsed().as_secs_f64()
    );
    tokio::time::sleep(Duration::from_secs(2)).await; // the file's free pages go after the pass
    node.stop().await;
    Ok(())
}

/// Events at a steady rate through a node that keeps them a short while, with the store's
/// size sampled along the way.
#[allow(clippy::too_many_arguments)]
async fn steady(
    b: &RetentionBench,
    exe: &std::path::Path,
    db: &str,
    dir: std::path::PathBuf,
    http: &reqwest::Client,
    key: &str,
    endpoint: uuid::Uuid,
    arrived: &Arc<AtomicU64>,
    store: &Store,
    file: &std::path::Path,
) -> anyhow::Result<()> {
    let retention = b.steady_retention_seconds.to_string();
    let node = ChildNode::start(
        exe,
        db,
        "steady",
        ADMIN,
        dir,
        &[
            "--retention-seconds",
            &retention,
            "--retention-every-seconds",
            "10",
        ],
        "warn",
    )
    .await?;
    println!(
        "steady     {} events/s for {} s, retention {} s",
        b.steady_rate, b.steady_seconds, b.steady_retention_seconds
    );
    let n = b.steady_rate * b.steady_seconds;
    let pusher = {
        let (http, base, key, arrived) = (
            http.clone(),
            node.base.clone(),
            key.to_string(),
            arrived.clone(),
        );
        let rate = b.steady_rate;
        tokio::spawn(async move { push(&http, &base, &key, endpoint, n, 8, rate, &arrived).await })
    };
    let started = Instant::now();
    let mut samples = Vec::new();
    while !pusher.is_finished() {
        tokio::time::sleep(Duration::from_secs(15)).await;
        let sizes = sizes(store, file).await?;
        println!(
            "  t={:>4.0} s  {}",
            started.elapsed().as_secs_f64(),
            describe(&sizes)
        );
        samples.push((started.elapsed(), sizes.iter().map(|(_, b)| b).sum::<u64>()));
    }
    pusher.await??;
    let window = Duration::from_secs(b.steady_retention_seconds + 20);
    if let (Some(first), Some(last)) = (samples.iter().find(|(t, _)| *t >= window), samples.last())
    {
        println!(
            "steady     size after the first window (t={:.0} s) {:.1} MiB, at the end (t={:.0} s) {:.1} MiB: {:+.1} %",
            first.0.as_secs_f64(),
            mib(first.1),
            last.0.as_secs_f64(),
            mib(last.1),
            100.0 * (last.1 as f64 - first.1 as f64) / first.1 as f64
        );
    }
    println!(
        "steady     rows purged {:.0}",
        purged(http, &node.base).await?
    );
    node.stop().await;
    Ok(())
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
async fn purged(http: &reqwest::Client, api: &str) -> anyhow::Result<f64> {
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
