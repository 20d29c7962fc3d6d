//! IPv6 addresses that wrap a loopback or private IPv4 address are refused as that address
//! would be. Nothing is ever sent to them: the refusal happens when the endpoint is saved.

use freshet::config::Profile;
use freshet_store::testing::Backend;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::support::{TestApp, assert_problem, run_with};

const WRAPPED: [&str; 8] = [
    "http://[2002:7f00:1::1]:8080/hooks", // 6to4 around 127.0.0.1
    "http://[2002:a9fe:a9fe::]/latest",   // 6to4 around 169.254.169.254
    "http://[::127.0.0.1]:8080/hooks",    // IPv4-compatible
    "http://[::a00:1]/hooks",             // IPv4-compatible, 10.0.0.1 in hex
    "http://[::ffff:0:c0a8:101]/hooks",   // IPv4-translated, 192.168.1.1
    "http://[::ffff:127.0.0.1]/hooks",    // IPv4-mapped
    "http://[64:ff9b::a9fe:a9fe]/latest", // NAT64 around the metadata address
    "http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/", // Teredo around 127.0.0.1
];

async fn wrapped_ipv4_targets_are_refused_at_save(app: TestApp) {
    let key = app.new_application("ssrf").await;
    for url in WRAPPED {
        let (s, b) = app
            .call(
                Method::POST,
                "/v1/webhook-endpoints",
                Some(&key),
                Some(json!({"url": url})),
            )
            .await;
        assert_problem(s, &b, StatusCode::UNPROCESSABLE_ENTITY, Some("url"));
    }
    let (_, list) = app
        .call(Method::GET, "/v1/webhook-endpoints", Some(&key), None)
        .await;
    assert_eq!(list["data"], json!([]), "nothing refused was stored");
    // A URL changed later is checked the same way.
    let (s, ep) = app
        .call(
            Method::POST,
            "/v1/webhook-endpoints",
            Some(&key),
            Some(json!({"url": "https://example.com/hooks"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{ep}");
    let id = ep["id"].as_str().unwrap();
    let (s, b) = app
        .call(
            Method::PATCH,
            &format!("/v1/webhook-endpoints/{id}"),
            Some(&key),
            Some(json!({"url": WRAPPED[0]})),
        )
        .await;
    assert_problem(s, &b, StatusCode::UNPROCESSABLE_ENTITY, Some("url"));
}

fn production(c: &mut freshet::config::Config) {
    c.profile = Profile::Production;
    c.sandbox = false;
}

#[tokio::test]
async fn wrapped_ipv4_targets_are_refused_sqlite() {
    run_with(
        Backend::Sqlite,
        production,
        wrapped_ipv4_targets_are_refused_at_save,
    )
    .await;
}

#[tokio::test]
async fn wrapped_ipv4_targets_are_refused_postgres() {
    run_with(
        Backend::Postgres,
        production,
        wrapped_ipv4_targets_are_refused_at_save,
    )
    .await;
}
