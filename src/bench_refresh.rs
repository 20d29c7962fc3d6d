//! `freshet bench refresh`: the refresh engine against the sandbox bank on this machine.
//!
//! A sandbox bank and a freshet node run as child processes. Customers get one consent each,
//! spread over the five banks and authorised through the real flow (link, the bank's page,
//! the callback). Then two measured phases, each a refresh of every customer through the
//! public API, timed until the last `refresh.completed` webhook arrives at a local receiver:
//!
//! - the first 90-day import of `--import` consents;
//! - a steady cycle over `--cycle` consents already imported, each with a few new
//!   transactions at the bank.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use axum::{Router, body::Bytes, routing::post};
use clap::Args;
use serde_json::{Value, json};

use crate::bench::{ChildNode, create_app};

/// Options of `freshet bench refresh`.
#[derive(Args, Debug, Clone)]
pub struct RefreshBench {
    /// Consents in the first-import phase.
    #[arg(long, default_value_t = 1_000)]
    pub import: usize,
    /// Consents in the steady-cycle phase (the import's and more).
    #[arg(long, default_value_t = 10_000)]
    pub cycle: usize,
    /// New transactions per account at the bank before the cycle.
    #[arg(long, default_value_t = 2)]
    pub new_per_account: u32,
    /// Concurrent API clients.
    #[arg(long, default_value_t = 32)]
    pub clients: usize,
    /// The store: a `postgres://` URL, or omitted for a fresh SQLite file.
    #[arg(long)]
    pub database_url: Option<String>,
    /// The node's database connections (its `--db-max-connections`).
    #[arg(long, default_value_t = 16)]
    pub db_max_connections: u32,
    /// Against the strict sandbox: mutual TLS on every bank call, client assertions, request
    /// objects, PAR, ID tokens and Berlin Group's signed requests, all made and checked.
    #[arg(long)]
    pub strict: bool,
}

const ADMIN: &str = "bench-admin-token-0123456789abcdef";
const BANKS: [&str; 5] = ["natwest", "lloyds", "tatrabanka", "slsp", "santander-br"];

#[derive(Default)]
struct Seen {
    completed: HashMap<String, (Instant, bool)>,
    events: HashMap<String, u64>,
}

pub async fn run(b: RefreshBench) -> anyhow::Result<()> {
    if b.cycle < b.import {
        bail!("--cycle must be at least --import");
    }
    let dir = tempfile::tempdir()?;
    let exe = std::env::current_exe()?;
    let db = b
        .database_url
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}", dir.path().join("bench.db").display()));
    let (bank, bank_http) = if b.strict {
        ChildNode::strict_sandbox(&exe, dir.path().into()).await?
    } else {
        let bank = ChildNode::sandbox(&exe, dir.path().into(), &[]).await?;
        (bank, reqwest::Client::new())
    };
    let registry = dir.path().join("pki").join("providers.toml");
    let registry = registry.display().to_string();
    let banks: [&str; 2] = if b.strict {
        ["--providers", &registry]
    } else {
        ["--sandbox-url", &bank.base]
    };
    let node = ChildNode::start(
        &exe,
        &db,
        "bench-refresh",
        ADMIN,
        dir.path().into(),
        &[banks[0], banks[1], "--refresh-tick-seconds", "3600"],
        "warn",
    )
    .await?;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(b.clients)
        .build()?;
    let roots = if b.strict {
        vec![std::fs::read_to_string(
            dir.path().join("pki").join("ca.pem"),
        )?]
    } else {
        Vec::new()
    };
    let browser = crate::cli::links::browser(&roots).map_err(|e| anyhow::anyhow!("{e}"))?;
    let key = create_app(&http, &node.base, ADMIN).await?;
    let seen = Arc::new(Mutex::new(Seen::default()));
    let hook = receiver(seen.clone()).await?;
    http.post(format!("{}/v1/webhook-endpoints", node.base))
        .bearer_auth(&key)
        .json(&json!({"url": format!("http://{hook}/hook")}))
        .send()
        .await?
        .error_for_status()?;

    let started = Instant::now();
    let customers = connect_all(&http, &browser, &node.base, &key, 0, b.import, b.clients).await?;
    let setup = started.elapsed();
    println!(
        "connected {} consents in {:.1} s ({:.0}/s)",
        customers.len(),
        setup.as_secs_f64(),
        customers.len() as f64 / setup.as_secs_f64()
    );
    let import = phase(
        &http,
        (&bank_http, &bank),
        &node,
        &key,
        &customers,
        &seen,
        b.clients,
    )
    .await?;
    let import_rss = node.peak_rss_kib();

    let more = connect_all(
        &http, &browser, &node.base, &key, b.import, b.cycle, b.clients,
    )
    .await?;
    println!(
        "connected {} more; importing them (not measured)",
        more.len()
    );
    phase(
        &http,
        (&bank_http, &bank),
        &node,
        &key,
        &more,
        &seen,
        b.clients,
    )
    .await?;
    let mut all = customers;
    all.extend(more);
    for id in BANKS {
        bank_http
            .post(format!("{}/control/transactions", bank.base))
            .json(&json!({"provider_id": id, "count": b.new_per_account}))
            .send()
            .await?
            .error_for_status()?;
    }
    let cycle = phase(
        &http,
        (&bank_http, &bank),
        &node,
        &key,
        &all,
        &seen,
        b.clients,
    )
    .await?;
    let cycle_rss = node.peak_rss_kib();

    println!();
    println!(
        "| phase | consents | time | consents/s | bank calls/s | events | failed | peak RSS |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for (name, p, rss) in [
        ("first import (90 days)", &import, import_rss),
        ("steady cycle", &cycle, cycle_rss),
    ] {
        println!(
            "| {name} | {} | {:.1} s | {:.0} | {:.0} | {} | {} | {} MiB |",
            p.consents,
            p.elapsed.as_secs_f64(),
            p.consents as f64 / p.elapsed.as_secs_f64(),
            p.bank_calls as f64 / p.elapsed.as_secs_f64(),
            p.events,
            p.failed,
            rss / 1024
        );
    }
    for (name, p) in [("first import", &import), ("steady cycle", &cycle)] {
        println!("\n{name}:");
        crate::cpu::report(&p.cpu, p.consents as u64, "consent");
    }
    let events = seen.lock().unwrap().events.clone();
    println!("\nevents delivered by type: {events:?}");
    node.stop().await;
    bank.kill().await;
    Ok(())
}

struct Phase {
    consents: usize,
    /// CPU seconds per program during the phase.
    cpu: Vec<(String, f64)>,
    elapsed: Duration,
    bank_calls: u64,
    events: u64,
    failed: usize,
}

/// Refreshes every customer and waits for every `refresh.completed`.
async fn phase(
    http: &reqwest::Client,
    (bank_http, bank): (&reqwest::Client, &ChildNode),
    node: &ChildNode,
    key: &str,
    customers: &[String],
    seen: &Arc<Mutex<Seen>>,
    clients: usize,
) -> anyhow::Result<Phase> {
    let calls_before = bank_calls(bank_http, &bank.base).await?;
    let events_before: u64 = seen.lock().unwrap().events.values().sum();
    let watched = crate::cpu::Watched {
        children: [("freshet", node), ("sandbox bank", bank)]
            .iter()
            .filter_map(|(name, c)| Some((name.to_string(), c.pid()?)))
            .collect(),
    };
    let cpu_before = watched.sample();
    let started = Instant::now();
    let tasks = Arc::new(Mutex::new(Vec::new()));
    let next = Arc::new(AtomicUsize::new(0));
    let customers = Arc::new(customers.to_vec());
    let workers: Vec<_> = (0..clients)
        .map(|_| {
            let (http, base, key, tasks, next, customers) = (
                http.clone(),
                node.base.clone(),
                key.to_string(),
                tasks.clone(),
                next.clone(),
                customers.clone(),
            );
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(c) = customers.get(i) else {
                        return Ok::<_, anyhow::Error>(());
                    };
                    let t: Value = http
                        .post(format!("{base}/v1/customers/{c}/refresh"))
                        .bearer_auth(&key)
                        .send()
                        .await?
                        .error_for_status()?
                        .json()
                        .await?;
                    let id = t["task_id"].as_str().context("a task id")?.to_string();
                    tasks.lock().unwrap().push(id);
                }
            })
        })
        .collect();
    for w in workers {
        w.await??;
    }
    let tasks = tasks.lock().unwrap().clone();
    let deadline = Instant::now() + Duration::from_secs(1800);
    let (last, failed) = loop {
        {
            let s = seen.lock().unwrap();
            let done: Vec<&(Instant, bool)> =
                tasks.iter().filter_map(|t| s.completed.get(t)).collect();
            if done.len() == tasks.len() {
                let last = done.iter().map(|(at, _)| *at).max().unwrap_or(started);
                break (last, done.iter().filter(|(_, ok)| !ok).count());
            }
        }
        if Instant::now() > deadline {
            bail!("refreshes did not finish within 30 minutes");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let cpu = watched.sample().since(&cpu_before);
    // Let the other events of the phase arrive before counting them.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let events_after: u64 = seen.lock().unwrap().events.values().sum();
    Ok(Phase {
        consents: tasks.len(),
        cpu,
        elapsed: last - started,
        bank_calls: bank_calls(bank_http, &bank.base).await? - calls_before,
        events: events_after - events_before,
        failed,
    })
}

async fn bank_calls(http: &reqwest::Client, bank: &str) -> anyhow::Result<u64> {
    let stats: Value = http
        .get(format!("{bank}/control/stats"))
        .send()
        .await?
        .json()
        .await?;
    stats["calls"].as_u64().context("sandbox stats")
}

/// Creates customers `from..to`, one consent each, authorised through the bank's page.
async fn connect_all(
    http: &reqwest::Client,
    browser: &reqwest::Client,
    base: &str,
    key: &str,
    from: usize,
    to: usize,
    clients: usize,
) -> anyhow::Result<Vec<String>> {
    let next = Arc::new(AtomicUsize::new(from));
    let out = Arc::new(Mutex::new(Vec::new()));
    let workers: Vec<_> = (0..clients)
        .map(|_| {
            let (http, browser, base, key, next, out) = (http.clone(), browser.clone(), base.to_string(), key.to_string(), next.clone(), out.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= to {
                        return Ok::<_, anyhow::Error>(());
                    }
                    let customer: Value = http
                        .post(format!("{base}/v1/customers"))
                        .bearer_auth(&key)
                        .json(&json!({"external_id": format!("bench-{i}"), "personal_tax_id": cpf(i as u64)}))
                        .send()
                        .await?
                        .error_for_status()?
                        .json()
                        .await?;
                    let id = customer["id"].as_str().context("a customer id")?.to_string();
                    let link: Value = http
                        .post(format!("{base}/v1/customers/{id}/links"))
                        .bearer_auth(&key)
                        .json(&json!({"provider_id": BANKS[i % BANKS.len()]}))
                        .send()
                        .await?
                        .error_for_status()?
                        .json()
                        .await?;
                    let url = link["consent"]["authorisation_url"].as_str().context("an authorisation URL")?;
                    crate::cli::links::approve_in_browser(&browser, url, None)
                        .await
                        .map_err(|e| match e {
                            crate::cli::links::Approval::Unreachable(url, e) => anyhow::anyhow!("{url}: {e}"),
                            crate::cli::links::Approval::Refused(why) => anyhow::anyhow!(why),
                        })?;
                    out.lock().unwrap().push(id);
                }
            })
        })
        .collect();
    for w in workers {
        w.await??;
    }
    let mut v = out.lock().unwrap().clone();
    v.sort();
    Ok(v)
}

/// A valid CPF for `n`: nine digits from `n`, then the two check digits.
fn cpf(n: u64) -> String {
    let mut d: Vec<u32> = format!("{:09}", 100_000_000 + n % 800_000_000)
        .chars()
        .map(|c| c.to_digit(10).unwrap_or(0))
        .collect();
    for len in [9, 10] {
        let sum: u32 = d
            .iter()
            .take(len)
            .enumerate()
            .map(|(i, x)| x * (len as u32 + 1 - i as u32))
            .sum();
        let r = (sum * 10) % 11;
        d.push(if r == 10 { 0 } else { r });
    }
    d.iter()
        .map(|x| char::from_digit(*x, 10).unwrap_or('0'))
        .collect()
}

async fn receiver(seen: Arc<Mutex<Seen>>) -> anyhow::Result<SocketAddr> {
    let app = Router::new().route(
        "/hook",
        post(move |body: Bytes| {
            let seen = seen.clone();
            async move {
                let now = Instant::now();
                if let Ok(v) = serde_json::from_slice::<Value>(&body) {
                    let kind = v["type"].as_str().unwrap_or("").to_string();
                    let mut s = seen.lock().unwrap();
                    if kind == "refresh.completed"
                        && let Some(task) = v["data"]["task_id"].as_str()
                    {
                        let ok = v["data"]["status"] == "Completed";
                        s.completed.entry(task.to_string()).or_insert((now, ok));
                    }
                    *s.events.entry(kind).or_default() += 1;
                }
                axum::http::StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(addr)
}

#[cfg(test)]
mod tests {
    use freshet_model::{CustomerFields, NewCustomer};

    #[test]
    fn generated_cpfs_pass_freshet_s_own_check() {
        for n in [0, 1, 7, 42, 9_999, 123_456] {
            let fields = CustomerFields {
                personal_tax_id: Some(super::cpf(n)),
                ..Default::default()
            };
            assert!(NewCustomer::parse(fields).is_ok(), "{}", super::cpf(n));
        }
    }
}
