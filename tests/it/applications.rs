//! Creating tenants through the admin API.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::{
    on_both_stores,
    support::{ADMIN_TOKEN, assert_problem},
};

on_both_stores! {
    async fn admin_token_guards_application_creation(app: TestApp) {
        let body = Some(json!({"name": "Acme"}));
        let (s, b) = app.call(Method::POST, "/v1/applications", None, body.clone()).await;
        assert_problem(s, &b, StatusCode::UNAUTHORIZED, None);
        let (s, b) = app
            .call(Method::POST, "/v1/applications", Some("wrong-token-wrong-token"), body.clone())
            .await;
        assert_problem(s, &b, StatusCode::UNAUTHORIZED, None);
        // An application's own key is not the admin token either.
        let key = app.new_application("first").await;
        let (s, b) = app.call(Method::POST, "/v1/applications", Some(&key), body).await;
        assert_problem(s, &b, StatusCode::UNAUTHORIZED, None);
    }

    async fn created_application_gets_a_working_key(app: TestApp) {
        let (s, b) = app
            .call(Method::POST, "/v1/applications", Some(ADMIN_TOKEN), Some(json!({"name": " Acme "})))
            .await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        assert_eq!(b["name"], "Acme");
        let key = b["api_key"].as_str().unwrap();
        assert!(key.starts_with("fsk_"), "{key}");
        let (s, _) = app.call(Method::GET, "/v1/customers", Some(key), None).await;
        assert_eq!(s, StatusCode::OK);
        // The key is stored hashed: its secret part appears nowhere in the database.
        let secret = &key["fsk_".len() + 16 + 1..];
        let rows = app.db.store.find_api_key(&key[4..20]).await.unwrap().unwrap();
        assert_ne!(rows.secret_hash, secret.as_bytes());
        assert_eq!(rows.secret_hash.len(), 32);
    }

    async fn application_name_is_validated(app: TestApp) {
        for name in [json!(""), json!("   "), json!("x".repeat(201))] {
            let (s, b) = app
                .call(Method::POST, "/v1/applications", Some(ADMIN_TOKEN), Some(json!({"name": name})))
                .await;
            assert_problem(s, &b, StatusCode::UNPROCESSABLE_ENTITY, Some("name"));
        }
        let (s, b) = app
            .call(Method::POST, "/v1/applications", Some(ADMIN_TOKEN), Some(json!({})))
            .await;
        assert_problem(s, &b, StatusCode::BAD_REQUEST, Some("name"));
    }
}
