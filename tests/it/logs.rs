//! Secrets never appear in logs, even at debug level.

use freshet::bench::{ChildNode, create_app};
use freshet_engine::testing::{Answer, Receiver};
use serde_json::{Value, json};

const ADMIN: &str = "logs-admin-token-0123456789";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_stay_out_of_debug_logs() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("freshet.db").display());
    let exe = env!("CARGO_BIN_EXE_freshet");
    let node = ChildNode::start(
        exe.as_ref(),
        &db,
        "logs",
        ADMIN,
        dir.path().into(),
        &[],
        "debug",
    )
    .await
    .unwrap();
    let http = reqwest::Client::new();
    let r = Receiver::start(vec![Answer::Status(500), Answer::Status(200)]).await;
    let key = create_app(&http, &node.base, ADMIN).await.unwrap();
    let ep: Value = http
        .post(format!("{}/v1/webhook-endpoints", node.base))
        .bearer_auth(&key)
        .json(&json!({"url": r.url(), "security_header": "Basic c2VjcmV0LWhlYWRlcg==", "retry_schedule": [1]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = ep["id"].as_str().unwrap();
    let rotated: Value = http
        .post(format!(
            "{}/v1/webhook-endpoints/{id}/rotate-secret",
            node.base
        ))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    http.post(format!("{}/v1/webhook-endpoints/{id}/test", node.base))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    r.wait_for(2, std::time::Duration::from_secs(10)).await;
    // A wrong key too: refusals are logged, the presented key must not be.
    http.get(format!("{}/v1/customers", node.base))
        .bearer_auth(format!("{key}x"))
        .send()
        .await
        .unwrap();
    node.stop().await;

    let log = std::fs::read_to_string(dir.path().join("logs.log")).unwrap();
    assert!(log.contains("DEBUG"), "the node logged at debug level");
    // The secret is everything after `fsk_<16 hex digits>_`: it is URL-safe base64 and may
    // itself hold `_`, so splitting at the last one would check only its tail — a few
    // characters that can turn up anywhere in a debug log by chance.
    let secret_part = &key["fsk_".len() + 16 + 1..];
    assert!(secret_part.len() >= 40, "{key}");
    for (what, secret) in [
        ("API key", secret_part),
        ("admin token", ADMIN),
        (
            "endpoint secret",
            ep["secret"].as_str().unwrap().trim_start_matches("whsec_"),
        ),
        (
            "rotated secret",
            rotated["secret"]
                .as_str()
                .unwrap()
                .trim_start_matches("whsec_"),
        ),
        ("security header", "c2VjcmV0LWhlYWRlcg=="),
    ] {
        assert!(!log.contains(secret), "the {what} appears in the log");
    }
}
