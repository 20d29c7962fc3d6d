//! `freshet backup` as an operator runs it: the real binary copying a SQLite store while a node
//! serves, and a new node started on the copy delivering what was pending when it was taken.

use std::{collections::HashSet, time::Duration};

use freshet::bench::{ChildNode, create_app};
use freshet_engine::testing::{Answer, Receiver};
use serde_json::{Value, json};

use crate::support::seq_of;

const ADMIN: &str = "backup-admin-token-0123456789";
const EXE: &str = env!("CARGO_BIN_EXE_freshet");
const FAST: &[&str] = &[
    "--delivery-timeout-seconds",
    "2",
    "--delivery-lease-seconds",
    "8",
];

/// Runs `freshet backup ARGS` with nothing inherited that names a store; (success, output).
async fn backup(args: &[&str]) -> (bool, String) {
    let out = tokio::process::Command::new(EXE)
        .arg("backup")
        .args(args)
        .env_remove("FRESHET_DATABASE_URL")
        .env_remove("FRESHET_CONFIG")
        .output()
        .await
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Sends a test event carrying `seq` to `endpoint`.
async fn test_event(http: &reqwest::Client, base: &str, key: &str, endpoint: &str, seq: u64) {
    let r = http
        .post(format!("{base}/v1/webhook-endpoints/{endpoint}/test"))
        .bearer_auth(key)
        .json(&json!({"data": {"seq": seq}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 202, "{}", r.text().await.unwrap());
}

fn seqs(r: &Receiver) -> HashSet<u64> {
    r.received().iter().filter_map(seq_of).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_while_serving_restores_into_a_node_that_delivers_what_was_pending() {
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("freshet.db");
    let copy = dir.path().join("backup.db");
    let db = format!("sqlite://{}", live.display());
    let copy_url = format!("sqlite://{}", copy.display());
    // The receiver's port, reserved now and listened on only once the backup is restored:
    // until then every attempt fails to connect.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let http = reqwest::Client::new();

    let node = ChildNode::start(
        EXE.as_ref(),
        &db,
        "backup-a",
        ADMIN,
        dir.path().into(),
        FAST,
        "warn",
    )
    .await
    .unwrap();
    let key = create_app(&http, &node.base, ADMIN).await.unwrap();
    let ep: Value = http
        .post(format!("{}/v1/webhook-endpoints", node.base))
        .bearer_auth(&key)
        .json(&json!({"url": format!("http://{port}/hook"), "retry_schedule": vec![1; 20]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ep = ep["id"].as_str().unwrap().to_string();
    let pending: HashSet<u64> = (1..=5).collect();
    for seq in &pending {
        test_event(&http, &node.base, &key, &ep, *seq).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    let (ok, out) = backup(&[copy.to_str().unwrap(), "--database-url", &db]).await;
    assert!(ok, "{out}");
    assert!(out.contains("backed up"), "{out}");
    // Never over an existing file, and never for PostgreSQL.
    let (ok, out) = backup(&[copy.to_str().unwrap(), "--database-url", &db]).await;
    assert!(!ok && out.contains("already exists"), "{out}");
    let elsewhere = dir.path().join("pg.db");
    let (ok, out) = backup(&[
        elsewhere.to_str().unwrap(),
        "--database-url",
        "postgres://postgres@127.0.0.1:5432/test",
    ])
    .await;
    assert!(!ok && out.contains("docs/operations.md"), "{out}");
    assert!(!elsewhere.exists());

    // Written after the copy was taken: the restored node must not know it.
    test_event(&http, &node.base, &key, &ep, 99).await;
    node.stop().await;

    let receiver = Receiver::start_on(port, vec![Answer::Status(204)]).await;
    let restored = ChildNode::start(
        EXE.as_ref(),
        &copy_url,
        "backup-b",
        ADMIN,
        dir.path().into(),
        FAST,
        "warn",
    )
    .await
    .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !pending.is_subset(&seqs(&receiver)) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "pending at backup time but never delivered: {:?}",
            pending.difference(&seqs(&receiver)).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        !seqs(&receiver).contains(&99),
        "an event written after the backup"
    );
    restored.stop().await;
}
