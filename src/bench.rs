//! `freshet bench delivery`: end-to-end webhook throughput, latency and CPU on this machine.
//!
//! Starts a fast receiver on loopback, one or more freshet nodes as child processes (so their
//! peak memory and CPU are theirs alone), creates an application and one or more endpoints,
//! then has N clients push test events through the public API, spread over the endpoints and
//! the nodes. Each client notes when it starts a call and when the 202 comes back; the
//! receiver notes when each event arrives and, per endpoint, every delivery; all on this
//! process's clock. CPU time comes from /proc for the nodes, for PostgreSQL and for this
//! process. Then the same clients POST straight to the receiver, to show the loopback limit
//! freshet is measured against. The last line of the output is the run as JSON.

mod load;
mod receiver;
mod report;
mod window;

use std::{
    path::PathBuf,
    process::Stdio,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use clap::Args;
use serde_json::{Value, json};
use tokio::process::{Child, Command};

use self::{load::Load, receiver::Arrivals, report::Outcome};
use crate::cpu::{Postgres, Watched};

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
    /// Nodes to start (more than one needs PostgreSQL). Clients call the nodes in turn.
    #[arg(long, default_value_t = 1)]
    pub nodes: u16,
    /// Endpoints to create; events go to them in turn. Nodes share the work by endpoint, so
    /// several nodes need several endpoints.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub endpoints: u32,
    /// Create the endpoints with this `rate_limit` (deliveries per second), report each
    /// endpoint's busiest second, and wait until every event is delivered.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub rate_limit: Option<u32>,
    /// The store: a `postgres://` URL, or omitted for a fresh SQLite file.
    #[arg(long)]
    pub database_url: Option<String>,
    /// Skip the direct-to-receiver baseline.
    #[arg(long)]
    pub no_baseline: bool,
}

const ADMIN: &str = "bench-admin-token-0123456789abcdef";

pub async fn run(b: DeliveryBench) -> anyhow::Result<()> {
    if b.nodes > 1 && b.database_url.is_none() {
        bail!("--nodes > 1 needs --database-url postgres://…");
    }
    let endpoints = b.endpoints as usize;
    let arrivals = Arc::new(Mutex::new(Arrivals::new(endpoints)));
    let receiver = receiver::start(arrivals.clone()).await?;
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
    let mut ids = Vec::new();
    for n in 0..endpoints {
        let url = format!("http://{receiver}/hook/{n}");
        ids.push(create_endpoint(&http, &api, &key, &url, b.rate_limit).await?);
    }
    let urls: Vec<Vec<String>> = nodes
        .iter()
        .map(|node| {
            ids.iter()
                .map(|id| format!("{}/v1/webhook-endpoints/{id}/test", node.base))
                .collect()
        })
        .collect();

    let database = b.database_url.as_deref().and_then(database_name);
    println!(
        "freshet bench delivery: {} events, {} clients, rate {}, {} node(s), {} endpoint(s), store {}",
        b.events,
        b.clients,
        if b.rate == 0 {
            "max".to_string()
        } else {
            format!("{}/s", b.rate)
        },
        b.nodes,
        endpoints,
        if b.database_url.is_some() {
            "postgres"
        } else {
            "sqlite"
        }
    );
    if endpoints < b.nodes as usize {
        println!(
            "note       claiming is partitioned by endpoint (issue 18): with fewer endpoints than nodes, some nodes get no deliveries"
        );
    }
    // At the limit each endpoint takes its share of the events at `limit` per second.
    let limited_for = b
        .rate_limit
        .map(|limit| Duration::from_secs_f64(b.events as f64 / (endpoints as f64 * limit as f64)));
    if let (Some(limit), Some(expected)) = (b.rate_limit, limited_for) {
        println!(
            "rate limit {limit} deliveries/s per endpoint: delivering everything takes at least {:.1} s",
            expected.as_secs_f64()
        );
    }
    let watched = Watched {
        children: nodes
            .iter()
            .filter_map(|n| Some((report::NODES.to_string(), n.pid()?)))
            .collect(),
    };
    let postgres = match (&b.database_url, &database) {
        (None, _) => Postgres::Skip,
        (Some(_), Some(name)) => Postgres::Database(name),
        (Some(_), None) => Postgres::All,
    };
    let cpu_before = watched.sample_with(postgres);
    let started = Instant::now();
    let load = Load {
        events: b.events,
        clients: b.clients,
        rate: b.rate,
    };
    let calls = load::push(&http, &key, Arc::new(urls), load, started).await?;
    let accepted_in = started.elapsed();
    let patience = Duration::from_secs(120)
        .max(limited_for.unwrap_or_default() * 3 / 2 + Duration::from_secs(30));
    wait_for_deliveries(&arrivals, calls.len(), started + patience).await;
    let delivered_in = started.elapsed();
    let cpu = watched.sample_with(postgres).since(&cpu_before);
    let mut outcome = Outcome::measure(&arrivals.lock().unwrap(), &calls);
    outcome.accepted_in = accepted_in;
    outcome.delivered_in = delivered_in;
    outcome.cpu = cpu;
    outcome.peak_rss_kib = nodes.iter().map(|n| n.peak_rss_kib()).collect();
    outcome.print(b.rate_limit, b.database_url.is_some());
    for n in nodes {
        n.stop().await;
    }
    let baseline = if b.no_baseline {
        None
    } else {
        let base = load::baseline(&http, receiver, b.events.min(50_000), b.clients).await?;
        println!(
            "baseline   the same clients POSTing straight to the receiver: {base:.0} requests/s"
        );
        println!(
            "ratio      freshet end to end is {:.1}% of the loopback baseline",
            100.0 * outcome.events_per_second() / base
        );
        Some(base)
    };
    let run = json!({
        "bench": "delivery",
        "store": if b.database_url.is_some() { "postgres" } else { "sqlite" },
        "nodes": b.nodes,
        "endpoints": endpoints,
        "clients": b.clients,
        "events": b.events,
        "rate": b.rate,
        "rate_limit": b.rate_limit,
    });
    let postgres = b.database_url.is_some();
    println!(
        "{}",
        outcome.summary(run, (b.rate_limit, postgres), baseline)
    );
    Ok(())
}

/// Waits until `expected` events have arrived or `deadline` passes, telling how far it got
/// every ten seconds (a rate-limited run can take minutes).
async fn wait_for_deliveries(arrivals: &Mutex<Arrivals>, expected: usize, deadline: Instant) {
    let mut next_word = Instant::now() + Duration::from_secs(10);
    loop {
        let arrived = arrivals.lock().unwrap().at.len();
        if arrived >= expected || Instant::now() >= deadline {
            return;
        }
        if Instant::now() >= next_word {
            println!("waiting    {arrived} of {expected} delivered");
            next_word += Duration::from_secs(10);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Creates an endpoint delivering to `url`, with `rate_limit` when given; answers its id.
async fn create_endpoint(
    http: &reqwest::Client,
    api: &str,
    key: &str,
    url: &str,
    rate_limit: Option<u32>,
) -> anyhow::Result<String> {
    let mut body = json!({ "url": url });
    if let Some(limit) = rate_limit {
        body["rate_limit"] = json!(limit);
    }
    let resp = http
        .post(format!("{api}/v1/webhook-endpoints"))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await?;
    let status = resp.status();
    if !status.is_success() {
        let problem = resp.text().await.unwrap_or_default();
        bail!("creating an endpoint: the API answered {status}: {problem}");
    }
    let endpoint: Value = resp.json().await?;
    endpoint["id"]
        .as_str()
        .map(str::to_string)
        .context("no id in the endpoint's answer")
}

/// The database a `postgres://…/name?…` URL names.
fn database_name(url: &str) -> Option<String> {
    let path = url.split(['?', '#']).next()?.split_once("://")?.1;
    let name = path.split_once('/')?.1;
    (!name.is_empty()).then(|| name.to_string())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_database_is_the_urls_path() {
        let name = |url| database_name(url);
        assert_eq!(
            name("postgres://postgres@127.0.0.1:5432/freshet_bench?sslmode=disable").as_deref(),
            Some("freshet_bench")
        );
        assert_eq!(name("postgresql://h/db").as_deref(), Some("db"));
        assert_eq!(name("postgres://127.0.0.1:5432"), None);
        assert_eq!(name("postgres://127.0.0.1:5432/"), None);
    }
}
