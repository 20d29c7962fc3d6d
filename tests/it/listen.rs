//! `freshet listen` as a developer uses it: pointed at by an endpoint, it verifies each
//! delivery, prints a line for it and forwards it to the app.

use std::{process::Stdio, time::Duration};

use freshet_engine::testing::{Answer, Receiver};
use freshet_store::testing::Backend;
use reqwest::Method;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::support::TestApp;

const EXE: &str = env!("CARGO_BIN_EXE_freshet");

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts `freshet listen` with `args` and returns it with its stdout lines.
async fn listen(
    args: &[&str],
) -> (
    tokio::process::Child,
    tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
) {
    let mut child = tokio::process::Command::new(EXE)
        .arg("listen")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(first.starts_with("listening on"), "{first}");
    (child, lines)
}

async fn next_line(lines: &mut tokio::io::Lines<BufReader<tokio::process::ChildStdout>>) -> String {
    tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await
        .expect("a line in time")
        .unwrap()
        .unwrap()
}

#[tokio::test]
async fn listen_verifies_prints_and_forwards() {
    let Some(app) = TestApp::spawn(Backend::Sqlite, |_| {}).await else {
        return;
    };
    let key = app.new_application("listen").await;
    let port = free_port();
    let (s, ep) = app
        .call(
            Method::POST,
            "/v1/webhook-endpoints",
            Some(&key),
            Some(json!({"url": format!("http://127.0.0.1:{port}/hooks")})),
        )
        .await;
    assert_eq!(s, 201, "{ep}");
    let secret = ep["secret"].as_str().unwrap();
    let id = ep["id"].as_str().unwrap();
    let app_side = Receiver::start(vec![Answer::Status(202)]).await;
    let (mut child, mut lines) = listen(&[
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--secret",
        secret,
        "--forward-to",
        &app_side.url(),
    ])
    .await;
    let (s, _) = app
        .call(
            Method::POST,
            &format!("/v1/webhook-endpoints/{id}/test"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(s, 202);
    let line = next_line(&mut lines).await;
    assert!(
        line.contains("endpoint.test")
            && line.contains("webhook-signature ok")
            && line.contains(" 202"),
        "{line}"
    );
    assert_eq!(
        app_side.wait_for(1, Duration::from_secs(10)).await.len(),
        1,
        "forwarded to the app"
    );
    child.kill().await.unwrap();

    // The wrong secret: the line says so.
    let (mut child, mut lines) = listen(&[
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--secret",
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    ])
    .await;
    app.call(
        Method::POST,
        &format!("/v1/webhook-endpoints/{id}/test"),
        Some(&key),
        None,
    )
    .await;
    let line = next_line(&mut lines).await;
    assert!(line.contains("webhook-signature FAILED"), "{line}");
    child.kill().await.unwrap();
}

#[tokio::test]
async fn listen_refuses_an_unknown_dialect() {
    let out = std::process::Command::new(EXE)
        .args(["listen", "--dialect", "swift"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--dialect"));
}
