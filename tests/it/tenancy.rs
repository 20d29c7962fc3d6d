//! One application can never read or change another's data.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::{on_both_stores, support::assert_problem};

on_both_stores! {
    async fn foreign_customers_are_not_found(app: TestApp) {
        let alice = app.new_application("alice").await;
        let mallory = app.new_application("mallory").await;
        let c = app.new_customer(&alice, json!({"external_id": "a-1", "login_name": "al"})).await;
        let path = format!("/v1/customers/{}", c["id"].as_str().unwrap());

        let (s, b) = app.call(Method::GET, &path, Some(&mallory), None).await;
        assert_problem(s, &b, StatusCode::NOT_FOUND, None);
        let (s, b) = app
            .call(Method::PATCH, &path, Some(&mallory), Some(json!({"login_name": "owned"})))
            .await;
        assert_problem(s, &b, StatusCode::NOT_FOUND, None);
        let (s, b) = app.call(Method::DELETE, &path, Some(&mallory), None).await;
        assert_problem(s, &b, StatusCode::NOT_FOUND, None);
        let (s, b) = app.call(Method::GET, "/v1/customers", Some(&mallory), None).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(b["data"], json!([]));
        // A foreign id answers exactly like an id that never existed.
        let never = format!("/v1/customers/{}", uuid::Uuid::now_v7());
        let (_, missing) = app.call(Method::GET, &never, Some(&mallory), None).await;
        let (_, foreign) = app.call(Method::GET, &path, Some(&mallory), None).await;
        assert_eq!(missing, foreign);

        // The owner still sees it untouched.
        let (s, b) = app.call(Method::GET, &path, Some(&alice), None).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(b["login_name"], "al");
        // And external ids are scoped per application.
        app.new_customer(&mallory, json!({"external_id": "a-1"})).await;
    }

    async fn data_plane_needs_a_valid_key(app: TestApp) {
        let key = app.new_application("k").await;
        let tampered = format!("{}x", &key[..key.len() - 1]);
        for token in [None, Some("nonsense"), Some(tampered.as_str()), Some("fsk_0000000000000000_abc")] {
            let (s, b) = app.call(Method::GET, "/v1/customers", token, None).await;
            assert_problem(s, &b, StatusCode::UNAUTHORIZED, None);
        }
        let res = app.http.get(app.url("/v1/customers")).send().await.unwrap();
        assert_eq!(res.headers()["www-authenticate"], "Bearer realm=\"freshet\"");
        let res = app
            .http
            .get(app.url("/v1/customers"))
            .header("authorization", format!("Basic {key}"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    }
}
