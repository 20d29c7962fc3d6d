//! U+0000 in a JSON string is refused with 422 naming the field, on both stores alike:
//! SQLite accepted it and PostgreSQL, which cannot store it, answered 500.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::{on_both_stores, support::assert_problem};

on_both_stores! {
    async fn nul_characters_are_refused_naming_the_field(app: TestApp) {
        let key = app.new_application("nul").await;
        let cases = [
            ("/v1/customers", Method::POST, json!({"external_id": "a\u{0}b"}), "external_id"),
            ("/v1/customers", Method::POST, json!({"external_info": {"trace": ["ok", "\u{0}"]}}), "external_info.trace[1]"),
            ("/v1/customers", Method::POST, json!({"external_info": {"k\u{0}": 1}}), "external_info.k\\u0000"),
            ("/v1/webhook-endpoints", Method::POST, json!({"url": "https://example.com/h", "description": "\u{0}"}), "description"),
        ];
        for (path, method, body, field) in cases {
            let (s, b) = app.call(method, path, Some(&key), Some(body)).await;
            assert_problem(s, &b, StatusCode::UNPROCESSABLE_ENTITY, Some(field));
        }
        let (_, customers) = app.call(Method::GET, "/v1/customers", Some(&key), None).await;
        assert_eq!(customers["data"], json!([]), "nothing refused was stored");

        // A change is checked the same way; the customer keeps what it had.
        let c = app.new_customer(&key, json!({"external_id": "alice"})).await;
        let path = format!("/v1/customers/{}", c["id"].as_str().unwrap());
        let (s, b) = app.call(Method::PATCH, &path, Some(&key), Some(json!({"login_name": "x\u{0}"}))).await;
        assert_problem(s, &b, StatusCode::UNPROCESSABLE_ENTITY, Some("login_name"));
        let (s, got) = app.call(Method::GET, &path, Some(&key), None).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(got["external_id"], "alice");
        assert!(got["login_name"].is_null(), "{got}");

        // The text `\u0000` (an escaped backslash) is ordinary and kept as sent.
        let c = app.new_customer(&key, json!({"external_id": "\\u0000"})).await;
        assert_eq!(c["external_id"], "\\u0000");
    }
}
