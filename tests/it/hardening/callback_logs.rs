//! The OAuth `code` and `state` of the consent callback never reach the logs, even at debug.

use freshet::bench::{ChildNode, create_app};
use reqwest::{StatusCode, redirect::Policy};
use serde_json::{Value, json};

const ADMIN: &str = "callback-admin-token-0123456789";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_callback_code_and_state_stay_out_of_debug_logs() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("freshet.db").display());
    let exe = env!("CARGO_BIN_EXE_freshet");
    let node = ChildNode::start(
        exe.as_ref(),
        &db,
        "callback",
        ADMIN,
        dir.path().into(),
        &[],
        "debug",
    )
    .await
    .unwrap();
    let http = reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap();
    let key = create_app(&http, &node.base, ADMIN).await.unwrap();
    let api = |path: &str| format!("{}{path}", node.base);
    let customer: Value = http
        .post(api("/v1/customers"))
        .bearer_auth(&key)
        .json(&json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let link: Value = http
        .post(api(&format!(
            "/v1/customers/{}/links",
            customer["id"].as_str().unwrap()
        )))
        .bearer_auth(&key)
        .json(&json!({"provider_id": "natwest"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let page = link["consent"]["authorisation_url"].as_str().unwrap();
    let approved = http
        .post(page)
        .form(&[("decision", "approve")])
        .send()
        .await
        .unwrap();
    assert_eq!(approved.status(), StatusCode::SEE_OTHER);
    let callback = approved.headers()["location"].to_str().unwrap().to_string();
    assert!(callback.contains("/v1/consents/callback?"), "{callback}");
    let query: Vec<(String, String)> = reqwest::Url::parse(&callback)
        .unwrap()
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let value = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap()
    };
    let (code, state) = (value("code"), value("state"));
    assert!(
        code.len() >= 8 && state.len() >= 8,
        "values long enough to search for"
    );
    let done = http.get(&callback).send().await.unwrap();
    assert!(
        done.status().is_success() || done.status().is_redirection(),
        "{}",
        done.status()
    );
    // The same names on another path are redacted too.
    http.get(api(&format!(
        "/v1/customers?code={code}&access_token={state}"
    )))
    .bearer_auth(&key)
    .send()
    .await
    .unwrap();
    let consent: Value = http
        .get(api(&format!(
            "/v1/consents/{}",
            link["consent"]["id"].as_str().unwrap()
        )))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(consent["status"], "authorised", "{consent}");
    node.stop().await;

    let log = std::fs::read_to_string(dir.path().join("callback.log")).unwrap();
    assert!(
        log.contains("/v1/consents/callback?code=REDACTED"),
        "the callback request was logged, redacted"
    );
    assert!(
        !log.contains(&code),
        "the authorisation code appears in the log"
    );
    assert!(!log.contains(&state), "the state appears in the log");
}
