//! Crashes: nodes killed with SIGKILL in the middle of a burst lose no acknowledged event.
//! These run the real binary as child processes against a real receiver.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
    time::Duration,
};

use freshet::bench::{ChildNode, create_app};
use freshet_engine::testing::{Answer, Receiver};
use freshet_store::testing::{Backend, TestDb};
use serde_json::{Value, json};

use crate::support::{AckTrigger, seq_of};

const ADMIN: &str = "crash-admin-token-0123456789";
const EXE: &str = env!("CARGO_BIN_EXE_freshet");
/// Short leases, so a dead node's claims come back within the test.
const FAST_LEASES: &[&str] = &[
    "--delivery-timeout-seconds",
    "2",
    "--delivery-lease-seconds",
    "8",
];

/// Pushes `seqs` as test events across `bases` with `clients` workers; returns the acked seqs.
/// When `kill_after` acks have arrived, `on_threshold` runs once (it kills a node).
async fn push(
    http: &reqwest::Client,
    key: &str,
    urls: Vec<String>,
    seqs: Vec<u64>,
    clients: usize,
    kill_after: Option<(u64, tokio::sync::oneshot::Sender<()>)>,
) -> HashSet<u64> {
    let queue = Arc::new(Mutex::new(seqs));
    let acked = Arc::new(Mutex::new(HashSet::new()));
    let trigger = AckTrigger::new(kill_after);
    let workers: Vec<_> = (0..clients)
        .map(|c| {
            let (http, key, urls, queue, acked, trigger) = (
                http.clone(),
                key.to_string(),
                urls.clone(),
                queue.clone(),
                acked.clone(),
                trigger.clone(),
            );
            tokio::spawn(async move {
                loop {
                    let Some(seq) = queue.lock().unwrap().pop() else {
                        break;
                    };
                    let url = &urls[(seq as usize + c) % urls.len()];
                    let sent = http
                        .post(url)
                        .bearer_auth(&key)
                        .json(&json!({"data": {"seq": seq}}))
                        .send()
                        .await;
                    if sent.is_ok_and(|r| r.status().as_u16() == 202) {
                        acked.lock().unwrap().insert(seq);
                        trigger.acked();
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

/// Waits until the receiver has every seq in `want`; returns how many deliveries were
/// duplicates (the same webhook-id more than once).
async fn await_all(r: &Receiver, want: &HashSet<u64>, within: Duration) -> usize {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let got = r.received();
        let seen: HashSet<u64> = got.iter().filter_map(seq_of).collect();
        let missing = want.difference(&seen).count();
        if missing == 0 {
            let mut ids: HashMap<String, usize> = HashMap::new();
            for g in &got {
                *ids.entry(g.headers["webhook-id"].to_str().unwrap().to_string())
                    .or_default() += 1;
            }
            return ids.values().map(|n| n - 1).sum();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{missing} acknowledged events never arrived"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn endpoint(http: &reqwest::Client, base: &str, key: &str, url: &str) -> String {
    let ep: Value = http
        .post(format!("{base}/v1/webhook-endpoints"))
        .bearer_auth(key)
        .json(&json!({"url": url}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    ep["id"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_mid_burst_loses_nothing_on_sqlite() {
    const TOTAL: u64 = 10_000;
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("freshet.db").display());
    let r = Receiver::start(vec![Answer::Status(204)]).await;
    let http = reqwest::Client::new();
    let node = ChildNode::start(
        EXE.as_ref(),
        &db,
        "crash-a",
        ADMIN,
        dir.path().into(),
        FAST_LEASES,
        "warn",
    )
    .await
    .unwrap();
    let key = create_app(&http, &node.base, ADMIN).await.unwrap();
    let ep = endpoint(&http, &node.base, &key, &r.url()).await;
    let test_url = |base: &str| format!("{base}/v1/webhook-endpoints/{ep}/test");

    let first_url = test_url(&node.base);
    let (kill_tx, kill_rx) = tokio::sync::oneshot::channel();
    let killer = tokio::spawn(async move {
        let _ = kill_rx.await;
        node.kill().await;
    });
    let mut acked = push(
        &http,
        &key,
        vec![first_url],
        (0..TOTAL).rev().collect(),
        16,
        Some((3_000, kill_tx)),
    )
    .await;
    killer.await.unwrap();
    assert!(
        acked.len() >= 3_000 && acked.len() < TOTAL as usize,
        "the kill landed mid-burst: {}",
        acked.len()
    );

    // Restarted on the same file, the node finds what the dead one committed and left leased.
    let node = ChildNode::start(
        EXE.as_ref(),
        &db,
        "crash-a",
        ADMIN,
        dir.path().into(),
        FAST_LEASES,
        "warn",
    )
    .await
    .unwrap();
    let rest: Vec<u64> = (0..TOTAL).filter(|s| !acked.contains(s)).collect();
    acked.extend(push(&http, &key, vec![test_url(&node.base)], rest, 16, None).await);
    assert_eq!(acked.len(), TOTAL as usize);
    let duplicates = await_all(&r, &acked, Duration::from_secs(120)).await;
    println!(
        "sqlite, SIGKILL mid-burst: {TOTAL} events acknowledged, every one arrived, {duplicates} duplicates"
    );
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_nodes_on_postgres_survive_one_killed() {
    const TOTAL: u64 = 6_000;
    let Some(db) = TestDb::new(Backend::Postgres).await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // The nodes run in `dir`, where the development profile looks for its master key.
    std::fs::write(
        dir.path().join(freshet_store::MASTER_KEY_FILE),
        db.master_key.to_base64(),
    )
    .unwrap();
    let r = Receiver::start(vec![Answer::Status(204)]).await;
    let http = reqwest::Client::new();
    let mut nodes = Vec::new();
    for i in 0..3 {
        let n = ChildNode::start(
            EXE.as_ref(),
            &db.url,
            &format!("pg-{i}"),
            ADMIN,
            dir.path().into(),
            FAST_LEASES,
            "warn",
        )
        .await
        .unwrap();
        nodes.push(n);
    }
    let key = create_app(&http, &nodes[0].base, ADMIN).await.unwrap();
    let ep = endpoint(&http, &nodes[0].base, &key, &r.url()).await;
    let urls: Vec<String> = nodes
        .iter()
        .map(|n| format!("{}/v1/webhook-endpoints/{ep}/test", n.base))
        .collect();
    let victim = nodes.pop().unwrap();
    let (kill_tx, kill_rx) = tokio::sync::oneshot::channel();
    let killer = tokio::spawn(async move {
        let _ = kill_rx.await;
        victim.kill().await;
    });
    // Events go to all three nodes' APIs; the victim dies a third of the way through.
    let mut acked = push(
        &http,
        &key,
        urls.clone(),
        (0..TOTAL).rev().collect(),
        12,
        Some((TOTAL / 3, kill_tx)),
    )
    .await;
    killer.await.unwrap();
    assert!(
        acked.len() < TOTAL as usize,
        "requests to the killed node failed, so some are re-sent"
    );
    let rest: Vec<u64> = (0..TOTAL).filter(|s| !acked.contains(s)).collect();
    acked.extend(push(&http, &key, urls[..2].to_vec(), rest, 12, None).await);
    assert_eq!(acked.len(), TOTAL as usize);
    let duplicates = await_all(&r, &acked, Duration::from_secs(120)).await;
    println!(
        "postgres, 3 nodes, one SIGKILLed: {TOTAL} events acknowledged, every one arrived, {duplicates} duplicates"
    );
    for n in nodes {
        n.stop().await;
    }
}

/// A node killed while a bank hangs mid-refresh: restarted, it runs the sub-task again, the
/// task ends, and each of its events is written once. The sandbox bank runs as its own process
/// so that it outlives the node.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_mid_refresh_finishes_it_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("freshet.db").display());
    let bank = ChildNode::sandbox(EXE.as_ref(), dir.path().into(), &[])
        .await
        .unwrap();
    let args = [
        "--sandbox-url",
        bank.base.as_str(),
        "--refresh-tick-seconds",
        "3600",
        "--bank-timeout-seconds",
        "30",
    ];
    let node = ChildNode::start(
        EXE.as_ref(),
        &db,
        "refresh-a",
        ADMIN,
        dir.path().into(),
        &args,
        "warn",
    )
    .await
    .unwrap();
    let http = reqwest::Client::new();
    let key = create_app(&http, &node.base, ADMIN).await.unwrap();
    let call = |method: reqwest::Method, base: &str, path: &str, body: Option<Value>| {
        let mut req = http
            .request(method, format!("{base}{path}"))
            .bearer_auth(&key);
        if let Some(b) = body {
            req = req.json(&b);
        }
        async move { req.send().await.unwrap().json::<Value>().await.unwrap() }
    };
    let customer = call(
        reqwest::Method::POST,
        &node.base,
        "/v1/customers",
        Some(json!({})),
    )
    .await;
    let cid = customer["id"].as_str().unwrap();
    let link = call(
        reqwest::Method::POST,
        &node.base,
        &format!("/v1/customers/{cid}/links"),
        Some(json!({"provider_id": "natwest"})),
    )
    .await;
    let approved = http
        .post(link["consent"]["authorisation_url"].as_str().unwrap())
        .form(&[("decision", "approve")])
        .send()
        .await
        .unwrap();
    assert!(approved.text().await.unwrap().contains("Connected"));
    // The bank's next call hangs; the node dies while waiting on it.
    let fault = http
        .post(format!("{}/control/faults", bank.base))
        .json(&json!({"provider_id": "natwest", "kind": "timeout", "times": 1}))
        .send()
        .await
        .unwrap();
    assert!(fault.status().is_success());
    let task = call(
        reqwest::Method::POST,
        &node.base,
        &format!("/v1/customers/{cid}/refresh"),
        None,
    )
    .await;
    let task_id = task["task_id"].as_str().unwrap().to_string();
    // Kill once the bank holds the call: the fault, set for one call, is then used up.
    for _ in 0..200 {
        let faults: Value = http
            .get(format!("{}/control/faults", bank.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if faults["data"].as_array().is_some_and(|f| f.is_empty()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let running = call(
        reqwest::Method::GET,
        &node.base,
        &format!("/v1/refresh-tasks/{task_id}"),
        None,
    )
    .await;
    assert_eq!(running["sub_tasks"][0]["status"], "Running", "{running}");
    assert_eq!(
        running["status"], "Running",
        "a task runs from its first claimed sub-task: {running}"
    );
    node.kill().await;

    let node = ChildNode::start(
        EXE.as_ref(),
        &db,
        "refresh-b",
        ADMIN,
        dir.path().into(),
        &args,
        "warn",
    )
    .await
    .unwrap();
    let mut t = Value::Null;
    for _ in 0..300 {
        t = call(
            reqwest::Method::GET,
            &node.base,
            &format!("/v1/refresh-tasks/{task_id}"),
            None,
        )
        .await;
        if t["status"] == "Completed" || t["status"] == "Failed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        t["status"], "Completed",
        "the restarted node finished it: {t}"
    );
    assert_eq!(t["sub_tasks"][0]["attempts"], 2, "{t}");
    for (kind, want) in [
        ("refresh.completed", 1),
        ("refresh.provider.completed", 1),
        ("accounts.updated", 1),
        ("transactions.new", 1),
        ("refresh.progress", 2),
    ] {
        let page = call(
            reqwest::Method::GET,
            &node.base,
            &format!("/v1/events?type={kind}"),
            None,
        )
        .await;
        assert_eq!(page["data"].as_array().unwrap().len(), want, "{kind} once");
    }
    node.stop().await;
    bank.kill().await;
}
