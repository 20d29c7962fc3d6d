//! Many nodes, one outbox: the proofs of partitioned claiming. Each test runs the real binary
//! as child processes on a PostgreSQL database of its own, with short leases so that what a
//! lease decides happens within the test.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use freshet::bench::{ChildNode, create_app};
use freshet_engine::testing::{Answer, Received, Receiver};
use freshet_model::webhooks::EndpointId;
use freshet_store::testing::{Backend, TestDb};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{AckTrigger, seq_of};

const ADMIN: &str = "scaling-admin-token-0123456789";
const EXE: &str = env!("CARGO_BIN_EXE_freshet");
/// The partition lease the nodes run with: a node that stops loses its partitions after it.
const PARTITION_LEASE: Duration = Duration::from_secs(2);
/// The delivery lease: what a dead node claimed comes back after it.
const DELIVERY_LEASE: Duration = Duration::from_secs(7);
const NODE_ARGS: &[&str] = &[
    "--partition-lease-seconds",
    "2",
    "--delivery-timeout-seconds",
    "2",
    "--delivery-lease-seconds",
    "7",
    // The outbox's backlog in /metrics is read from the database at most this often.
    "--metrics-cache-seconds",
    "1",
];
/// Each of three nodes' fair share of the 64 partitions: once all are at most this, the
/// shares have settled (22, 22, 20) and stop moving.
const SHARE_OF_THREE: u64 = 22;
/// Room for a loaded two-core machine: rounds late, processes slow to start.
const MARGIN: Duration = Duration::from_secs(5);

/// A database, the directory the nodes run in, and an application's API.
struct Cluster {
    db: TestDb,
    dir: tempfile::TempDir,
    http: reqwest::Client,
}

impl Cluster {
    async fn new() -> Option<Self> {
        let db = TestDb::new(Backend::Postgres).await?;
        let dir = tempfile::tempdir().unwrap();
        // The nodes run in `dir`, where the development profile looks for its master key.
        std::fs::write(
            dir.path().join(freshet_store::MASTER_KEY_FILE),
            db.master_key.to_base64(),
        )
        .unwrap();
        Some(Self {
            db,
            dir,
            http: reqwest::Client::new(),
        })
    }

    async fn node(&self, name: &str) -> ChildNode {
        ChildNode::start(
            EXE.as_ref(),
            &self.db.url,
            name,
            ADMIN,
            self.dir.path().into(),
            NODE_ARGS,
            "warn",
        )
        .await
        .unwrap()
    }

    /// Three nodes named `prefix-0..2`, once their shares of the partitions have settled;
    /// with their API addresses.
    async fn three(&self, prefix: &str) -> (Vec<ChildNode>, Vec<String>) {
        let mut nodes = Vec::new();
        for i in 0..3 {
            nodes.push(self.node(&format!("{prefix}-{i}")).await);
        }
        let bases: Vec<String> = nodes.iter().map(|n| n.base.clone()).collect();
        let all: Vec<&str> = bases.iter().map(String::as_str).collect();
        self.await_shares(
            &all,
            |h| h.iter().sum::<u64>() == 64 && h.iter().all(|n| *n > 0 && *n <= SHARE_OF_THREE),
            Duration::from_secs(20),
        )
        .await;
        (nodes, bases)
    }

    /// An endpoint made from `body` whose partition is in the upper half (32..64): what a
    /// node holding all 64 gives up first when a second joins. Others made on the way go.
    async fn upper_half_endpoint(&self, base: &str, key: &str, body: Value) -> String {
        loop {
            let ep = self.endpoint(base, key, body.clone()).await;
            if partition(&ep) >= 32 {
                return ep;
            }
            self.call(
                key,
                Method::DELETE,
                format!("{base}/v1/webhook-endpoints/{ep}"),
                None,
            )
            .await;
        }
    }

    async fn call(&self, key: &str, method: Method, url: String, body: Option<Value>) -> Value {
        let mut req = self.http.request(method, &url).bearer_auth(key);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.unwrap();
        let status = res.status();
        let body = res.json::<Value>().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "{url}: {status} {body}");
        body
    }

    /// Creates an endpoint; answers its id.
    async fn endpoint(&self, base: &str, key: &str, body: Value) -> String {
        let ep = self
            .call(
                key,
                Method::POST,
                format!("{base}/v1/webhook-endpoints"),
                Some(body),
            )
            .await;
        ep["id"].as_str().unwrap().to_string()
    }

    /// A gauge without labels from a node's `/metrics`; `None` when the node does not answer.
    async fn gauge(&self, base: &str, name: &str) -> Option<f64> {
        let text = self
            .http
            .get(format!("{base}/metrics"))
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
    }

    /// Each node's `freshet_outbox_partitions_held`.
    async fn held(&self, bases: &[&str]) -> Vec<u64> {
        let mut held = Vec::new();
        for b in bases {
            let h = self
                .gauge(b, "freshet_outbox_partitions_held")
                .await
                .unwrap_or(-1.0);
            held.push(h as u64);
        }
        held
    }

    /// Waits until the nodes' held partitions satisfy `ok`; answers how long it took.
    async fn await_shares(
        &self,
        bases: &[&str],
        ok: impl Fn(&[u64]) -> bool,
        within: Duration,
    ) -> Duration {
        let started = Instant::now();
        loop {
            let held = self.held(bases).await;
            if ok(&held) {
                return started.elapsed();
            }
            assert!(
                started.elapsed() < within,
                "the nodes' shares did not settle within {within:?}: {held:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The partitions `node` holds, as the database records them.
    async fn partitions_of(&self, node: &str) -> HashSet<u16> {
        let pool = sqlx::PgPool::connect(&self.db.url).await.unwrap();
        let held: Vec<i32> =
            sqlx::query_scalar("SELECT partition_no FROM outbox_partitions WHERE owner = $1")
                .bind(node)
                .fetch_all(&pool)
                .await
                .unwrap();
        pool.close().await;
        held.into_iter().map(|p| p as u16).collect()
    }

    /// Waits until no delivery is unsettled; answers when that was seen.
    async fn await_settled(&self, within: Duration) -> Instant {
        let pool = sqlx::PgPool::connect(&self.db.url).await.unwrap();
        let deadline = Instant::now() + within;
        loop {
            let unsettled: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM deliveries \
                 WHERE status IN ('pending', 'failed', 'delivering')",
            )
            .fetch_one(&pool)
            .await
            .unwrap();
            if unsettled == 0 {
                let at = Instant::now();
                pool.close().await;
                return at;
            }
            assert!(
                Instant::now() < deadline,
                "{unsettled} deliveries still unsettled"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The nodes that attempted the deliveries of `event`.
    async fn attempted_by(&self, base: &str, key: &str, event: &str) -> Vec<String> {
        let deliveries = self
            .call(
                key,
                Method::GET,
                format!("{base}/v1/events/{event}/deliveries"),
                None,
            )
            .await;
        let mut nodes = Vec::new();
        for d in deliveries["data"].as_array().unwrap() {
            let id = d["id"].as_str().unwrap();
            let attempts = self
                .call(
                    key,
                    Method::GET,
                    format!("{base}/v1/deliveries/{id}/attempts"),
                    None,
                )
                .await;
            for a in attempts["data"].as_array().unwrap() {
                nodes.push(a["node"].as_str().unwrap().to_string());
            }
        }
        nodes
    }
}

fn partition(endpoint: &str) -> u16 {
    freshet_store::partition_of(EndpointId(endpoint.parse().unwrap()))
}

/// Test events to push: for each seq, the endpoint it goes to.
struct Burst {
    key: String,
    /// The nodes' bases that take requests; a killed node is taken out.
    alive: Arc<Mutex<Vec<String>>>,
    clients: usize,
}

impl Burst {
    /// Pushes each `(seq, endpoint)` through the alive nodes in turn, moving on to the next
    /// node when one fails; answers when each seq was acknowledged. After `then_after` acks,
    /// `then` runs once.
    async fn push(
        &self,
        http: &reqwest::Client,
        work: Vec<(u64, String)>,
        then_after: Option<(u64, tokio::sync::oneshot::Sender<()>)>,
    ) -> HashMap<u64, Instant> {
        let queue = Arc::new(Mutex::new(work));
        let acked = Arc::new(Mutex::new(HashMap::new()));
        let trigger = AckTrigger::new(then_after);
        let workers: Vec<_> = (0..self.clients)
            .map(|c| {
                let (http, key, alive, queue, acked, trigger) = (
                    http.clone(),
                    self.key.clone(),
                    self.alive.clone(),
                    queue.clone(),
                    acked.clone(),
                    trigger.clone(),
                );
                tokio::spawn(async move {
                    loop {
                        let Some((seq, ep)) = queue.lock().unwrap().pop() else {
                            break;
                        };
                        for turn in 0..6 {
                            let base = {
                                let alive = alive.lock().unwrap();
                                alive[(seq as usize + c + turn) % alive.len()].clone()
                            };
                            let sent = http
                                .post(format!("{base}/v1/webhook-endpoints/{ep}/test"))
                                .bearer_auth(&key)
                                .json(&json!({"data": {"seq": seq}}))
                                .timeout(Duration::from_secs(10))
                                .send()
                                .await;
                            if sent.is_ok_and(|r| r.status() == StatusCode::ACCEPTED) {
                                acked.lock().unwrap().insert(seq, Instant::now());
                                trigger.acked();
                                break;
                            }
                        }
                    }
                })
            })
            .collect();
        for w in workers {
            w.await.unwrap();
        }
        Arc::try_unwrap(acked).unwrap().into_inner().unwrap()
    }
}

/// When each seq first arrived at any of `rs`.
fn first_arrivals(rs: &[&Receiver]) -> HashMap<u64, Instant> {
    let mut first: HashMap<u64, Instant> = HashMap::new();
    for g in rs.iter().flat_map(|r| r.received()) {
        if let Some(seq) = seq_of(&g) {
            let at = first.entry(seq).or_insert(g.at);
            *at = (*at).min(g.at);
        }
    }
    first
}

/// Waits until every seq in `want` arrived at one of `rs`, or panics after `within`.
async fn await_seqs(rs: &[&Receiver], want: impl Iterator<Item = u64> + Clone, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let got = first_arrivals(rs);
        let missing: Vec<u64> = want.clone().filter(|s| !got.contains_key(s)).collect();
        if missing.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{} acknowledged events never arrived, e.g. {:?}",
            missing.len(),
            &missing[..missing.len().min(10)]
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_node_s_partitions_go_to_the_others() {
    const TOTAL: u64 = 1_500;
    let Some(c) = Cluster::new().await else {
        return;
    };
    let (mut nodes, bases) = c.three("kill").await;
    let all: Vec<&str> = bases.iter().map(String::as_str).collect();
    let victim_name = "kill-2";
    let victims = c.partitions_of(victim_name).await;
    assert!(!victims.is_empty(), "the victim holds partitions");

    // Endpoints on both sides of the kill; each event names its seq. The victim's receiver
    // answers slowly, so that the victim dies with requests in flight: deliveries it claimed
    // and never recorded, which come back to the others when their lease runs out.
    let r = Receiver::start(vec![Answer::Status(204)]).await;
    let slow = Receiver::start(vec![Answer::Hang(Duration::from_millis(300))]).await;
    let key = create_app(&c.http, &bases[0], ADMIN).await.unwrap();
    let mut eps: Vec<String> = Vec::new();
    while eps.len() < 16
        || eps
            .iter()
            .filter(|e| victims.contains(&partition(e)))
            .count()
            < 4
        || eps
            .iter()
            .filter(|e| !victims.contains(&partition(e)))
            .count()
            < 4
    {
        assert!(eps.len() < 80, "endpoints spread over the partitions");
        let ep = c.endpoint(&bases[0], &key, json!({"url": r.url()})).await;
        if victims.contains(&partition(&ep)) {
            c.call(
                &key,
                Method::PATCH,
                format!("{}/v1/webhook-endpoints/{ep}", bases[0]),
                Some(json!({"url": slow.url()})),
            )
            .await;
        }
        eps.push(ep);
    }
    let on_victim = |seq: u64| victims.contains(&partition(&eps[seq as usize % eps.len()]));

    let burst = Burst {
        key: key.clone(),
        alive: Arc::new(Mutex::new(bases.clone())),
        clients: 12,
    };
    let victim = nodes.pop().unwrap();
    let (kill_tx, kill_rx) = tokio::sync::oneshot::channel();
    let killer = {
        let (alive, victim_base) = (burst.alive.clone(), victim.base.clone());
        tokio::spawn(async move {
            let _ = kill_rx.await;
            alive.lock().unwrap().retain(|b| *b != victim_base);
            let at = Instant::now();
            victim.kill().await;
            at
        })
    };
    let work: Vec<(u64, String)> = (0..TOTAL)
        .rev()
        .map(|s| (s, eps[s as usize % eps.len()].clone()))
        .collect();
    let pushing = burst.push(&c.http, work, Some((TOTAL / 3, kill_tx)));
    // The survivors take the victim's partitions once its lease ran out.
    let survivors: Vec<&str> = all[..2].to_vec();
    let (acked, (killed_at, took_over)) = tokio::join!(pushing, async {
        let killed_at = killer.await.unwrap();
        c.await_shares(
            &survivors,
            |h| h.iter().sum::<u64>() == 64,
            Duration::from_secs(30),
        )
        .await;
        (killed_at, killed_at.elapsed())
    });
    assert!(
        took_over <= PARTITION_LEASE + MARGIN,
        "the survivors held all 64 partitions {took_over:?} after the kill"
    );
    assert!(
        acked.len() as u64 > TOTAL / 3 && acked.len() as u64 <= TOTAL,
        "acked {}",
        acked.len()
    );

    // Every acknowledged event arrives. Of the victim's partitions, those acknowledged before
    // the kill within the two leases that follow it (the partition's, then the deliveries it
    // had claimed), those acknowledged after it once the partition was taken over.
    let bound = PARTITION_LEASE + DELIVERY_LEASE + MARGIN;
    await_seqs(
        &[&r, &slow],
        acked.keys().copied(),
        bound + Duration::from_secs(20),
    )
    .await;
    let first = first_arrivals(&[&r, &slow]);
    let victim_seqs: Vec<u64> = acked.keys().copied().filter(|s| on_victim(*s)).collect();
    let (before, after): (Vec<u64>, Vec<u64>) =
        victim_seqs.iter().partition(|s| acked[*s] < killed_at);
    let pending_at_kill = before.iter().filter(|s| first[*s] > killed_at).count();
    let latest_before = before
        .iter()
        .map(|s| first[s].saturating_duration_since(killed_at))
        .max()
        .unwrap_or_default();
    let latest_after = after
        .iter()
        .map(|s| first[s].saturating_duration_since(acked[s]))
        .max()
        .unwrap_or_default();
    assert!(
        !after.is_empty(),
        "events for the victim's partitions were acknowledged after the kill"
    );
    assert!(
        latest_before <= bound,
        "an event of the victim's partitions acknowledged before the kill arrived \
         {latest_before:?} after it (bound {bound:?})"
    );
    let bound_after = PARTITION_LEASE + MARGIN;
    assert!(
        latest_after <= bound_after,
        "an event of the victim's partitions acknowledged after the kill arrived \
         {latest_after:?} after its acknowledgement (bound {bound_after:?})"
    );
    // The victim died with requests in flight to its slow receiver (events it accepted, which
    // it sends itself); the holders of those partitions sent them again once the deliveries'
    // lease ran out, and the outbox settled within it.
    let settled = c.await_settled(Duration::from_secs(30)).await;
    let mut sends: HashMap<String, Vec<Instant>> = HashMap::new();
    for g in slow.received() {
        let id = g.headers["webhook-id"].to_str().unwrap().to_string();
        sends.entry(id).or_default().push(g.at);
    }
    let resent: Vec<Instant> = sends
        .values()
        .filter(|at| at.len() > 1)
        .map(|at| *at.iter().max().unwrap())
        .collect();
    assert!(
        !resent.is_empty(),
        "the victim died with deliveries in flight, which were sent again"
    );
    let last_resend = resent
        .iter()
        .map(|at| at.saturating_duration_since(killed_at))
        .max()
        .unwrap();
    assert!(
        last_resend <= bound,
        "a delivery the victim had in flight was sent again {last_resend:?} after the kill (bound {bound:?})"
    );
    let last_ack = acked.values().max().copied().unwrap();
    let settled_by = (killed_at + bound).max(last_ack + bound_after);
    assert!(
        settled <= settled_by,
        "the outbox settled {:?} after the kill",
        settled - killed_at
    );
    println!(
        "3 nodes, one SIGKILLed: {} acked, survivors held 64 partitions {took_over:?} after the kill; \
         of the victim's partitions' events, {} were acked before it ({pending_at_kill} arrived \
         after it, the last {latest_before:?} after it), {} after it (the slowest arrived \
         {latest_after:?} after its ack); {} in flight at the kill were sent again, the last \
         {last_resend:?} after it; the outbox settled {:?} after it",
        acked.len(),
        before.len(),
        after.len(),
        resent.len(),
        settled - killed_at
    );
    for n in nodes {
        n.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_joining_node_takes_its_share() {
    let Some(c) = Cluster::new().await else {
        return;
    };
    let a = c.node("join-a").await;
    c.await_shares(&[&a.base], |h| h == [64], Duration::from_secs(10))
        .await;
    // Each event's first attempt fails, so its retry is claimed: by its partition's holder.
    // The receiver fails the first ten requests whatever they are, so the retry waits long
    // enough (5 s) for all ten first attempts to come first, even on a loaded machine.
    let mut script = vec![Answer::Status(500); 10];
    script.push(Answer::Status(204));
    let r = Receiver::start(script).await;
    let key = create_app(&c.http, &a.base, ADMIN).await.unwrap();
    // An endpoint in the upper half: what the first node gives up.
    let ep = c
        .upper_half_endpoint(
            &a.base,
            &key,
            json!({"url": r.url(), "retry_schedule": [5]}),
        )
        .await;

    let b = c.node("join-b").await;
    let took = c
        .await_shares(
            &[&a.base, &b.base],
            |h| h == [32, 32],
            Duration::from_secs(15),
        )
        .await;
    assert_eq!(c.partitions_of("join-b").await, (32..64).collect());

    // Pushed afterwards through either node: the node that accepted an event makes its first
    // attempt (it wrote the delivery leased to itself); the retry is claimed, and only the
    // partition's new holder claims it.
    let mut events = Vec::new();
    for seq in 0..10u64 {
        let base = if seq % 2 == 0 { &a.base } else { &b.base };
        let ev = c
            .call(
                &key,
                Method::POST,
                format!("{base}/v1/webhook-endpoints/{ep}/test"),
                Some(json!({"data": {"seq": seq}})),
            )
            .await;
        events.push(ev["event_id"].as_str().unwrap().to_string());
    }
    r.wait_for(20, Duration::from_secs(30)).await;
    for (seq, ev) in events.iter().enumerate() {
        let accepted_by = if seq % 2 == 0 { "join-a" } else { "join-b" };
        let by = c.attempted_by(&a.base, &key, ev).await;
        assert_eq!(by, [accepted_by, "join-b"], "event {ev}");
    }
    println!("a second node joined: 32 partitions each {took:?} after it was up");
    a.stop().await;
    b.stop().await;
}

/// Most requests `r` received in any second.
fn busiest_second(got: &[Received]) -> usize {
    let mut at: Vec<Instant> = got.iter().map(|g| g.at).collect();
    at.sort();
    let mut most = 0;
    let mut start = 0;
    for end in 0..at.len() {
        while at[end].duration_since(at[start]) >= Duration::from_secs(1) {
            start += 1;
        }
        most = most.max(end - start + 1);
    }
    most
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_rate_limit_holds_across_three_nodes() {
    const EVENTS: u64 = 120;
    const RATE: u64 = 20;
    let Some(c) = Cluster::new().await else {
        return;
    };
    let (nodes, bases) = c.three("rate").await;
    let key = create_app(&c.http, &bases[0], ADMIN).await.unwrap();
    let r = Receiver::start(vec![Answer::Status(204)]).await;
    let ep = c
        .endpoint(&bases[0], &key, json!({"url": r.url(), "rate_limit": RATE}))
        .await;
    let burst = Burst {
        key: key.clone(),
        alive: Arc::new(Mutex::new(bases.clone())),
        clients: 12,
    };

    // While the backlog waits, the endpoint's health and /metrics show it.
    let watching = {
        let (c_http, key, base, ep) = (c.http.clone(), key.clone(), bases[1].clone(), ep.clone());
        let (c, r) = (&c, r.clone());
        async move {
            let (mut health, mut metric) = (0u64, 0f64);
            let deadline = Instant::now() + Duration::from_secs(30);
            while (health == 0 || metric == 0.0) && Instant::now() < deadline {
                let list: Value = c_http
                    .get(format!("{base}/v1/webhook-endpoints"))
                    .bearer_auth(&key)
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                let waiting = list["data"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|e| e["id"] == ep.as_str())
                    .and_then(|e| e["health"]["waiting"].as_u64())
                    .unwrap_or(0);
                health = health.max(waiting);
                let m = c
                    .gauge(&base, "freshet_deliveries_waiting_for_limits")
                    .await
                    .unwrap_or(0.0);
                metric = metric.max(m);
                if r.count() as u64 >= EVENTS {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            (health, metric)
        }
    };
    let work: Vec<(u64, String)> = (0..EVENTS).map(|s| (s, ep.clone())).collect();
    let started = Instant::now();
    let (acked, (waiting_health, waiting_metric)) =
        tokio::join!(burst.push(&c.http, work, None), watching);
    let pushed_in = started.elapsed();
    assert_eq!(acked.len() as u64, EVENTS);
    await_seqs(&[&r], 0..EVENTS, Duration::from_secs(40)).await;
    let got = r.received();
    let busiest = busiest_second(&got);
    let mut at: Vec<Instant> = got.iter().map(|g| g.at).collect();
    at.sort();
    let spread = at[at.len() - 1] - at[0];
    if busiest as u64 > RATE {
        // Which node sent what, and when, for the report of a broken limit.
        let t0 = at[0];
        let mut lines = Vec::new();
        for g in &got {
            let seq = seq_of(g).unwrap();
            let id = g.headers["webhook-id"].to_str().unwrap();
            let delivery = uuid::Uuid::parse_str(id.trim_start_matches("msg_")).unwrap();
            let attempts = c
                .call(
                    &key,
                    Method::GET,
                    format!("{}/v1/deliveries/{delivery}/attempts", bases[0]),
                    None,
                )
                .await;
            let by: Vec<String> = attempts["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| format!("{} at {}", a["node"], a["attempted_at"]))
                .collect();
            lines.push(format!(
                "{:>6} ms seq {seq:>3} by {by:?}",
                g.at.duration_since(t0).as_millis()
            ));
        }
        lines.sort();
        panic!(
            "the receiver got {busiest} deliveries in one second (rate_limit {RATE}):\n{}",
            lines.join("\n")
        );
    }
    let floor = Duration::from_secs(EVENTS / RATE - 1);
    assert!(
        spread >= floor,
        "{EVENTS} deliveries at {RATE}/s arrived within {spread:?}"
    );
    assert!(
        waiting_health > 0,
        "health.waiting showed the backlog held back"
    );
    assert!(
        waiting_metric > 0.0,
        "freshet_deliveries_waiting_for_limits showed the backlog held back"
    );
    println!(
        "rate_limit {RATE}: {EVENTS} pushed through 3 nodes in {pushed_in:?}, arrived over {spread:?}, \
         at most {busiest} in any second; waiting seen: health {waiting_health}, metric {waiting_metric}"
    );

    // max_in_flight: a slow receiver never has more than the limit open at once.
    const SLOW: u64 = 24;
    let slow = Receiver::start(vec![Answer::Hang(Duration::from_millis(300))]).await;
    let ep = c
        .endpoint(
            &bases[0],
            &key,
            json!({"url": slow.url(), "max_in_flight": 2}),
        )
        .await;
    let work: Vec<(u64, String)> = (0..SLOW).map(|s| (s, ep.clone())).collect();
    let started = Instant::now();
    let acked = burst.push(&c.http, work, None).await;
    assert_eq!(acked.len() as u64, SLOW);
    await_seqs(&[&slow], 0..SLOW, Duration::from_secs(40)).await;
    let peak = slow.peak_concurrency();
    assert!(
        peak <= 2,
        "the receiver answered {peak} at once (max_in_flight 2)"
    );
    assert_eq!(peak, 2, "the limit, not a lack of work, held them back");
    println!(
        "max_in_flight 2: {SLOW} deliveries of 300 ms through 3 nodes in {:?}, at most {peak} at once",
        started.elapsed()
    );
    for n in nodes {
        n.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ordered_delivery_across_a_partition_handover() {
    const LINKS: usize = 60;
    let Some(c) = Cluster::new().await else {
        return;
    };
    let a = c.node("order-a").await;
    c.await_shares(&[&a.base], |h| h == [64], Duration::from_secs(10))
        .await;
    let key = create_app(&c.http, &a.base, ADMIN).await.unwrap();
    // Slow enough that the queue is still long when the second node takes the partition.
    let r = Receiver::start(vec![Answer::Hang(Duration::from_millis(150))]).await;
    let ep = c
        .upper_half_endpoint(
            &a.base,
            &key,
            json!({"url": r.url(), "ordered": true, "event_types": ["link.created"]}),
        )
        .await;
    let customer = c
        .call(
            &key,
            Method::POST,
            format!("{}/v1/customers", a.base),
            Some(json!({})),
        )
        .await;
    let cid = customer["id"].as_str().unwrap();
    let mut links = Vec::new();
    for _ in 0..LINKS {
        let link = c
            .call(
                &key,
                Method::POST,
                format!("{}/v1/customers/{cid}/links", a.base),
                Some(json!({"provider_id": "natwest"})),
            )
            .await;
        links.push(link["id"].as_str().unwrap().to_string());
    }
    // Part way through the queue a second node joins and takes the endpoint's partition.
    r.wait_for(10, Duration::from_secs(30)).await;
    let b = c.node("order-b").await;
    c.await_shares(
        &[&a.base, &b.base],
        |h| h == [32, 32],
        Duration::from_secs(15),
    )
    .await;
    let when_b_took = r.count();
    let link_of = |g: &Received| {
        serde_json::from_slice::<Value>(&g.body).ok()?["data"]["link"]["id"]
            .as_str()
            .map(str::to_string)
    };
    let deadline = Instant::now() + Duration::from_secs(40);
    let order = loop {
        let mut seen = HashSet::new();
        let order: Vec<String> = r
            .received()
            .iter()
            .filter_map(link_of)
            .filter(|l| seen.insert(l.clone()))
            .collect();
        if order.len() == LINKS {
            break order;
        }
        assert!(
            Instant::now() < deadline,
            "only {} of {LINKS} links arrived",
            order.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        order, links,
        "the customer's links arrived in the order they were created"
    );
    let events = c
        .call(
            &key,
            Method::GET,
            format!("{}/v1/events?type=link.created&limit=100", a.base),
            None,
        )
        .await;
    let mut by: HashMap<String, usize> = HashMap::new();
    for e in events["data"].as_array().unwrap() {
        for n in c
            .attempted_by(&a.base, &key, e["id"].as_str().unwrap())
            .await
        {
            *by.entry(n).or_default() += 1;
        }
    }
    assert!(
        by.get("order-a").is_some_and(|n| *n > 0) && by.get("order-b").is_some_and(|n| *n > 0),
        "both nodes sent: {by:?}"
    );
    println!(
        "{LINKS} ordered link.created events across a handover (at {when_b_took} arrived): \
         in order, sent by {by:?} (endpoint in partition {})",
        partition(&ep)
    );
    a.stop().await;
    b.stop().await;
}
