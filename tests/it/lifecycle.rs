//! Health, the OpenAPI document, configuration and graceful shutdown.

use std::time::Duration;

use freshet_store::testing::Backend;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::{on_both_stores, support::TestApp};

on_both_stores! {
    async fn healthz_reports_the_store(app: TestApp) {
        let (s, b) = app.call(Method::GET, "/healthz", None, None).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(b["status"], "ok");
        let want = if app.db.url.starts_with("sqlite") { "sqlite" } else { "postgres" };
        assert_eq!(b["store"], want);
    }
}

/// `/openapi.json` is generated from the routes: every documented operation is served (no
/// "no such route" answer), and the resources that exist are documented.
#[tokio::test]
async fn openapi_matches_the_routes() {
    let Some(app) = TestApp::spawn(Backend::Sqlite, |_| {}).await else {
        return;
    };
    let (s, doc) = app.call(Method::GET, "/openapi.json", None, None).await;
    assert_eq!(s, StatusCode::OK);
    let paths = doc["paths"].as_object().unwrap();
    for p in [
        "/healthz",
        "/v1/applications",
        "/v1/customers",
        "/v1/customers/{customer_id}",
        "/v1/webhook-endpoints",
        "/.well-known/jwks.json",
        "/v1/admin/signing-keys/rotate",
    ] {
        assert!(paths.contains_key(p), "{p} is not documented");
    }
    for (path, ops) in paths {
        let concrete: String = path
            .split('/')
            .map(|seg| {
                if seg.starts_with('{') {
                    uuid::Uuid::now_v7().to_string()
                } else {
                    seg.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("/");
        for method in ops.as_object().unwrap().keys() {
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            // The consent callback answers the customer's browser with a page, not JSON.
            let resp = app
                .http
                .request(method.clone(), app.url(&concrete))
                .send()
                .await
                .unwrap();
            let body: Value = resp.json().await.unwrap_or(Value::Null);
            assert_ne!(
                body["type"], "urn:freshet:problem:no-route",
                "{method} {path}"
            );
            assert_ne!(
                body["type"], "urn:freshet:problem:method-not-allowed",
                "{method} {path}"
            );
        }
    }
    assert!(doc["components"]["securitySchemes"]["api_key"].is_object());
}

/// A request that is still arriving when shutdown begins is completed, not cut off; new
/// connections are refused afterwards.
#[tokio::test]
async fn shutdown_finishes_in_flight_requests() {
    let Some(mut app) = TestApp::spawn(Backend::Sqlite, |_| {}).await else {
        return;
    };
    let key = app.new_application("slow").await;
    let body = br#"{"external_id": "in-flight"}"#;
    let mut conn = TcpStream::connect(app.server.as_ref().unwrap().addr())
        .await
        .unwrap();
    let head = format!(
        "POST /v1/customers HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {key}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    conn.write_all(&body[..5]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;

    let server = app.server.take().unwrap();
    let addr = server.addr();
    let stopping = tokio::spawn(server.shutdown());
    tokio::time::sleep(Duration::from_millis(100)).await;
    conn.write_all(&body[5..]).await.unwrap();
    let mut answer = String::new();
    conn.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    stopping.await.unwrap().unwrap();
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "no new connections after shutdown"
    );

    let stored = app
        .db
        .store
        .list_customers(
            app.db
                .store
                .find_api_key(&key[4..20])
                .await
                .unwrap()
                .unwrap()
                .application_id,
            freshet_model::PageRequest::first(),
        )
        .await
        .unwrap();
    assert_eq!(stored.data.len(), 1);
}

/// Flags beat `FRESHET_*` variables, which beat the TOML file, which beats defaults — checked
/// on the real binary.
#[test]
fn configuration_precedence() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("freshet.toml");
    std::fs::write(
        &file,
        "listen = \"127.0.0.1:7001\"\nmax_body_bytes = 4096\ndb_max_connections = 3\n",
    )
    .unwrap();
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_freshet"));
        cmd.arg("config").arg("--config").arg(&file).args(args);
        for var in [
            "FRESHET_LISTEN",
            "FRESHET_MAX_BODY_BYTES",
            "FRESHET_DATABASE_URL",
            "FRESHET_ADMIN_TOKEN",
        ] {
            cmd.env_remove(var);
        }
        cmd.envs(env.iter().copied());
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let from_file = run(&[], &[]);
    assert!(from_file.contains("listen = 127.0.0.1:7001"), "{from_file}");
    assert!(from_file.contains("max_body_bytes = 4096"));
    assert!(
        from_file.contains("shutdown_grace_seconds = 30"),
        "defaults fill the rest"
    );
    let from_env = run(
        &[],
        &[
            ("FRESHET_LISTEN", "127.0.0.1:7002"),
            ("FRESHET_DATABASE_URL", "postgres://u:hunter2@h/db"),
        ],
    );
    assert!(from_env.contains("listen = 127.0.0.1:7002"), "{from_env}");
    assert!(
        from_env.contains("postgres://u:***@h/db"),
        "passwords are masked: {from_env}"
    );
    assert!(!from_env.contains("hunter2"));
    let from_flag = run(
        &["--listen", "127.0.0.1:7003"],
        &[("FRESHET_LISTEN", "127.0.0.1:7002")],
    );
    assert!(from_flag.contains("listen = 127.0.0.1:7003"), "{from_flag}");

    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_freshet"))
        .args(["config", "--max-body-bytes", "5"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("max_body_bytes"));
}
