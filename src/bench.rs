//! `freshet bench delivery`: end-to-end webhook throughput and latency on this machine.
//!
//! Starts a fast receiver on loopback, one or more freshet nodes as child processes (so their
//! peak memory is theirs alone), creates an application and an endpoint, then has N clients
//! push test events through the public API. The receiver notes when each event arrives; the
//! client notes when the API acknowledged it; both clocks are this process's. Then the same
//! clients POST straight to the receiver, to show the loopback limit freshet is measured against.

use std::{
    collections::HashMap,
    net::SocketAddr,
    path::PathBuf,
    process::Stdio,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use axum::{Router, body::Bytes, http::HeaderMap, routing::post};
use clap::Args;
use serde_json::{Value, json};
use tokio::process::{Child, Command};

/// Options of `freshet bench delivery`.
#[derive(Args, Debug, Clone)]
pub struct DeliveryBench {
    /// Events to push.
    #[arg(long, default_value_t = 20_000)]
    pub events: u64,
    /// Concurrent API clients.
    #[arg(long, default_value_t = 32)]
    pub clients: u64,
    /// Events per second to offer (0 = as fast as accepted).
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// Nodes to start (more than one needs PostgreSQL).
    #[arg(long, default_value_t = 1)]
    pub nodes: u16,
    /// The store: a `postgres://` URL, or omitted for a fresh SQLite file.
    #[arg(long)]
    pub database_url: Option<String>,
    /// Skip the direct-to-receiver baseline.
    #[arg(long)]
    pub no_baseline: bool,
}

#[derive(Default)]
struct Arrivals {
    at: HashMap<u64, Instant>,
    webhook_ids: HashMap<String, u32>,
    total: u64,
}

const ADMIN: &str = "bench-admin-token-0123456789abcdef";

pub async fn run(b: DeliveryBench) -> anyhow::Result<()> {
    if b.nodes > 1 && b.database_url.is_none() {
        bail!("--nodes > 1 needs --database-url postgres://…");
    }
    let arrivals = Arc::new(Mutex::new(Arrivals::default()));
    let receiver = start_receiver(arrivals.clone()).await?;
    let dir = tempfile::tempdir()?;
    let db = b
        .database_url
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}", dir.path().join("bench.db").display()));
    let mut nodes = Vec::new();
    for i in 0..b.nodes {
        let exe = std::env::current_exe()?;
        nodes.push(
            ChildNode::start(
                &exe,
                &db,
                &format!("bench-{i}"),
                ADMIN,
                dir.path().to_path_buf(),
                &[],
                "warn",
            )
            .await?,
        );
    }
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(b.clients as usize * 2)
        .build()?;
    let api = nodes[0].base.clone();
    let key = create_app(&http, &api, ADMIN).await?;
    let endpoint: Value = http
        .post(format!("{api}/v1/webhook-endpoints"))
        .bearer_auth(&key)
        .json(&json!({"url": format!("http://{receiver}/hook")}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let test_url: Vec<String> = nodes
        .iter()
        .map(|n| {
            format!(
                "{}/v1/webhook-endpoints/{}/test",
                n.base,
                endpoint["id"].as_str().unwrap_or_default()
            )
        })
        .collect();

    println!(
        "freshet bench delivery: {} events, {} clients, rate {}, {} node(s), store {}",
        b.events,
        b.clients,
        if b.rate == 0 {
            "max".to_string()
        } else {
            format!("{}/s", b.rate)
        },
        b.nodes,
        if b.database_url.is_some() {
            "postgres"
        } else {
            "sqlite"
        }
    );
    let acks = Arc::new(Mutex::new(HashMap::with_capacity(b.events as usize)));
    let next = Arc::new(AtomicU64::new(0));
    let watched = crate::cpu::Watched {
        children: nodes
            .iter()
            .filter_map(|n| Some(("freshet".to_string(), n.pid()?)))
            .collect(),
    };
    let cpu_before = watched.sample();
    let started = Instant::now();
    let mut clients = Vec::new();
    for c in 0..b.clients {
        let (http, key, urls, acks, next) = (
            http.clone(),
            key.clone(),
            test_url.clone(),
            acks.clone(),
            next.clone(),
        );
        let (total, rate) = (b.events, b.rate);
        clients.push(tokio::spawn(async move {
            loop {
                let seq = next.fetch_add(1, Ordering::Relaxed);
                if seq >= total {
                    break;
                }
                if rate > 0 {
                    let due = started + Duration::from_secs_f64(seq as f64 / rate as f64);
                    tokio::time::sleep_until(due.into()).await;
                }
                let url = &urls[(seq as usize + c as usize) % urls.len()];
                let resp = http
                    .post(url)
                    .bearer_auth(&key)
                    .json(&json!({"data": {"seq": seq}}))
                    .send()
                    .await;
                match resp {
                    Ok(r) if r.status().as_u16() == 202 => {
                        acks.lock().unwrap().insert(seq, Instant::now());
                    }
                    Ok(r) => eprintln!("event {seq}: API answered {}", r.status()),
                    Err(e) => eprintln!("event {seq}: {e}"),
                }
            }
        }));
    }
    for c in clients {
        c.await?;
    }
    let accepted_in = started.elapsed();
    let accepted = acks.lock().unwrap().len() as u64;
    let deadline = Instant::now() + Duration::from_secs(120);
    while (arrivals.lock().unwrap().at.len() as u64) < accepted && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let delivered_in = started.elapsed();
    let cpu = watched.sample().since(&cpu_before);
    let peak_kib: Vec<u64> = nodes.iter().map(|n| n.peak_rss_kib()).collect();
    let (lat, delivered, dupes) = {
        let a = arrivals.lock().unwrap();
        let acks = acks.lock().unwrap();
        let mut lat: Vec<Duration> =
            a.at.iter()
                .filter_map(|(seq, at)| acks.get(seq).map(|ack| at.saturating_duration_since(*ack)))
                .collect();
        lat.sort();
        let dupes: u32 = a.webhook_ids.values().map(|n| n - 1).sum();
        (lat, a.at.len() as u64, dupes)
    };
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    println!(
        "accepted   {accepted} events in {:.2} s = {:.0} events/s",
        accepted_in.as_secs_f64(),
        accepted as f64 / accepted_in.as_secs_f64()
    );
    println!(
        "delivered  {delivered} events in {:.2} s = {:.0} events/s end to end",
        delivered_in.as_secs_f64(),
        delivered as f64 / delivered_in.as_secs_f64()
    );
    println!(
        "latency    ack -> receiver: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        ms(pct(0.50)),
        ms(pct(0.99)),
        ms(lat.last().copied().unwrap_or_default())
    );
    println!(
        "duplicates {dupes}; lost {}",
        accepted.saturating_sub(delivered)
    );
    println!(
        "peak RSS   {} MiB per node",
        peak_kib
            .iter()
            .map(|k| format!("{:.0}", *k as f64 / 1024.0))
            .collect::<Vec<_>>()
            .join(", ")
    );
    crate::cpu::report(&cpu, delivered, "event");
    for n in nodes {
        n.stop().await;
    }
    if !b.no_baseline {
        let base = baseline(&http, receiver, b.events.min(50_000), b.clients).await?;
        println!(
            "baseline   the same clients POSTing straight to the receiver: {base:.0} requests/s"
        );
        println!(
            "ratio      freshet end to end is {:.1}% of the loopback baseline",
            100.0 * delivered as f64 / delivered_in.as_secs_f64() / base
        );
    }
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

async fn start_receiver(arrivals: Arc<Mutex<Arrivals>>) -> anyhow::Result<SocketAddr> {
    let app = Router::new()
        .route(
            "/hook",
            post(move |headers: HeaderMap, body: Bytes| {
                let arrivals = arrivals.clone();
                async move {
                    let now = Instant::now();
                    let seq = serde_json::from_slice::<Value>(&body)
                        .ok()
                        .and_then(|v| v["data"]["data"]["seq"].as_u64());
                    let mut a = arrivals.lock().unwrap();
                    a.total += 1;
                    if let Some(id) = headers.get("webhook-id").and_then(|v| v.to_str().ok()) {
                        *a.webhook_ids.entry(id.to_string()).or_default() += 1;
                    }
                    if let Some(seq) = seq {
                        a.at.entry(seq).or_insert(now);
                    }
                    axum::http::StatusCode::NO_CONTENT
                }
            }),
        )
        .route(
            "/direct",
            post(|| async { axum::http::StatusCode::NO_CONTENT }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(addr)
}

async fn baseline(
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

/// Creates an application through the admin API and returns its API key.
pub async fn create_app(http: &reqwest::Client, api: &str, admin: &str) -> anyhow::Result<String> {
    let app: Value = http
        .post(format!("{api}/v1/applications"))
        .bearer_auth(admin)
        .json(&json!({"name": "bench"}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    app["api_key"]
        .as_str()
        .map(str::to_string)
        .context("no api_key in the answer")
}

/// A freshet node run as a child process (by the bench, and by crash tests).
pub struct ChildNode {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
}

impl ChildNode {
    /// Starts `exe serve` on a free port with the admin token `admin`, and waits until healthy.
    /// It logs at `log_filter` (tracing's syntax, e.g. `warn`) to `dir/<name>.log`.
    pub async fn start(
        exe: &std::path::Path,
        db: &str,
        name: &str,
        admin: &str,
        dir: PathBuf,
        extra: &[&str],
        log_filter: &str,
    ) -> anyhow::Result<Self> {
        let mut args = vec![
            "serve",
            "--database-url",
            db,
            "--admin-token",
            admin,
            "--node-name",
            name,
        ];
        args.extend_from_slice(extra);
        Self::spawn(exe, &args, name, dir, log_filter, "/healthz").await
    }

    /// Starts `exe sandbox --strict` on a free port with a test PKI of its own in `dir/pki`: a
    /// sandbox bank demanding mutual TLS and every signature. Answers the bank and the client
    /// (transport certificate, the PKI's CA) that reaches its control API.
    pub async fn strict_sandbox(
        exe: &std::path::Path,
        dir: PathBuf,
    ) -> anyhow::Result<(Self, reqwest::Client)> {
        let port = free_port()?;
        let base = format!("https://127.0.0.1:{port}");
        let pki = dir.join("pki");
        let made = Command::new(exe)
            .args(["sandbox", "pki"])
            .arg(&pki)
            .args(["--url", &base])
            .output()
            .await?;
        if !made.status.success() {
            bail!(
                "freshet sandbox pki: {}",
                String::from_utf8_lossy(&made.stderr)
            );
        }
        let read = |name: &str| std::fs::read_to_string(pki.join(name));
        let identity = reqwest::Identity::from_pem(
            format!(
                "{}\n{}",
                read("tpp-transport.pem")?,
                read("tpp-transport.key")?
            )
            .as_bytes(),
        )?;
        let http = reqwest::Client::builder()
            .identity(identity)
            .add_root_certificate(reqwest::Certificate::from_pem(read("ca.pem")?.as_bytes())?)
            .build()?;
        let pki_dir = pki.display().to_string();
        let args = ["sandbox", "--strict", "--pki", pki_dir.as_str()];
        let bank = Self::spawn_at(
            exe,
            &args,
            "sandbox",
            dir,
            "warn",
            (&base, "/providers", &http),
        )
        .await?;
        Ok((bank, http))
    }

    /// Starts `exe sandbox` on a free port: a sandbox bank that outlives the nodes using it.
    pub async fn sandbox(
        exe: &std::path::Path,
        dir: PathBuf,
        extra: &[&str],
    ) -> anyhow::Result<Self> {
        let mut args = vec!["sandbox"];
        args.extend_from_slice(extra);
        Self::spawn(exe, &args, "sandbox", dir, "warn", "/providers").await
    }

    async fn spawn(
        exe: &std::path::Path,
        args: &[&str],
        name: &str,
        dir: PathBuf,
        log_filter: &str,
        ready: &str,
    ) -> anyhow::Result<Self> {
        let base = format!("http://127.0.0.1:{}", free_port()?);
        let probe = reqwest::Client::new();
        Self::spawn_at(exe, args, name, dir, log_filter, (&base, ready, &probe)).await
    }

    /// Starts `exe args --listen` on `base`'s port and waits until `probe` gets a success from
    /// `base` + `ready`.
    async fn spawn_at(
        exe: &std::path::Path,
        args: &[&str],
        name: &str,
        dir: PathBuf,
        log_filter: &str,
        (base, ready, probe): (&str, &str, &reqwest::Client),
    ) -> anyhow::Result<Self> {
        let listen = base
            .split("://")
            .nth(1)
            .context("a base URL with a scheme")?;
        let child = Command::new(exe)
            .args(args)
            .args(["--listen", listen])
            .env("FRESHET_LOG", log_filter)
            .stderr(std::fs::File::create(dir.join(format!("{name}.log")))?)
            .current_dir(dir)
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let health = probe.get(format!("{base}{ready}")).send().await;
            if health.is_ok_and(|r| r.status().is_success()) {
                break;
            }
            if Instant::now() > deadline {
                bail!("{name} did not become ready");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(Self {
            child,
            base: base.to_string(),
        })
    }

    /// Kills the node at once, as a crash or an OOM killer would (SIGKILL).
    pub async fn kill(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }

    /// The child's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// The node's peak resident memory, from /proc.
    pub fn peak_rss_kib(&self) -> u64 {
        let Some(pid) = self.child.id() else { return 0 };
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("VmHWM:"))
                    .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
            })
            .unwrap_or(0)
    }

    /// Stops the node gracefully (SIGTERM) and waits for it.
    pub async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
        }
        let _ = tokio::time::timeout(Duration::from_secs(30), self.child.wait()).await;
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}
