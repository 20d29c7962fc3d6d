//! Every bad request gets problem details naming what is wrong, and changes nothing.

use reqwest::{Method, StatusCode, header};
use serde_json::{Value, json};

use crate::{
    on_both_stores,
    support::{TestApp, assert_problem},
};

async fn raw(
    app: &TestApp,
    key: &str,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> (StatusCode, Value) {
    let mut req = app
        .http
        .post(app.url("/v1/customers"))
        .bearer_auth(key)
        .body(body);
    if let Some(ct) = content_type {
        req = req.header(header::CONTENT_TYPE, ct);
    }
    let res = req.send().await.unwrap();
    let status = res.status();
    assert_eq!(
        res.headers()[header::CONTENT_TYPE],
        "application/problem+json"
    );
    (status, res.json().await.unwrap())
}

on_both_stores! {
    async fn malformed_bodies_are_named(app: TestApp) {
        let key = app.new_application("bad").await;
        let json = Some("application/json");
        let (s, b) = raw(&app, &key, json, b"{\"login_name\": ".to_vec()).await;
        assert_problem(s, &b, StatusCode::BAD_REQUEST, Some("body"));
        let (s, b) = raw(&app, &key, json, Vec::new()).await;
        assert_problem(s, &b, StatusCode::BAD_REQUEST, Some("body"));
        let (s, b) = raw(&app, &key, json, b"[1, 2]".to_vec()).await;
        assert_problem(s, &b, StatusCode::BAD_REQUEST, Some("body"));
        let (s, b) = raw(&app, &key, json, br#"{"login_name": 5}"#.to_vec()).await;
        assert_problem(s, &b, StatusCode::BAD_REQUEST, Some("login_name"));
        let (s, b) = raw(&app, &key, json, br#"{"logn_name": "x"}"#.to_vec()).await;
        assert_problem(s, &b, StatusCode::BAD_REQUEST, Some("logn_name"));
        let (s, b) = raw(&app, &key, None, br#"{}"#.to_vec()).await;
        assert_problem(s, &b, StatusCode::UNSUPPORTED_MEDIA_TYPE, None);
        let (s, b) = raw(&app, &key, Some("text/plain"), br#"{}"#.to_vec()).await;
        assert_problem(s, &b, StatusCode::UNSUPPORTED_MEDIA_TYPE, None);
        let (_, list) = app.call(Method::GET, "/v1/customers", Some(&key), None).await;
        assert_eq!(list["data"], json!([]), "no refused request stored anything");
    }

    async fn unknown_routes_methods_and_ids(app: TestApp) {
        let key = app.new_application("routes").await;
        let (s, b) = app.call(Method::GET, "/v1/nothing-here", Some(&key), None).await;
        assert_problem(s, &b, StatusCode::NOT_FOUND, None);
        let (s, b) = app.call(Method::PUT, "/v1/customers", Some(&key), None).await;
        assert_problem(s, &b, StatusCode::METHOD_NOT_ALLOWED, None);
        let (s, b) = app.call(Method::GET, "/v1/customers/not-a-uuid", Some(&key), None).await;
        assert_problem(s, &b, StatusCode::BAD_REQUEST, Some("customer_id"));
    }
}

/// The body limit is configurable; a larger body is refused before it is parsed.
mod oversized_bodies {
    use freshet_store::testing::Backend;

    use super::*;

    #[tokio::test]
    async fn refused_with_413() {
        let Some(app) = TestApp::spawn(Backend::Sqlite, |c| c.max_body_bytes = 2048).await else {
            return;
        };
        let key = app.new_application("big").await;
        let big = json!({"external_info": {"blob": "x".repeat(4096)}}).to_string();
        let (s, b) = raw(&app, &key, Some("application/json"), big.into_bytes()).await;
        assert_problem(s, &b, StatusCode::PAYLOAD_TOO_LARGE, None);
        assert!(b["detail"].as_str().unwrap().contains("2048"), "{b}");
        let small = json!({"external_info": {"blob": "x".repeat(100)}}).to_string();
        let res = app
            .http
            .post(app.url("/v1/customers"))
            .bearer_auth(&key)
            .header(header::CONTENT_TYPE, "application/json")
            .body(small)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::CREATED);
    }
}
