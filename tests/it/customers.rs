//! Customers over HTTP: create, read, list, update, delete, with validation.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::{on_both_stores, support::assert_problem};

fn id_of(v: &Value) -> &str {
    v["id"].as_str().unwrap()
}

on_both_stores! {
    async fn customer_crud(app: TestApp) {
        let key = app.new_application("crud").await;
        let info = json!({"myTraceId": "yourTraceId-1", "myUuid": "yourUuid-1"});
        let c = app
            .new_customer(&key, json!({
                "external_id": "user-42",
                "login_name": "fri21",
                "personal_tax_id": "258.722.521-37",
                "external_info": info,
            }))
            .await;
        assert_eq!(c["personal_tax_id"], "25872252137", "stored as digits");
        assert_eq!(c["business_tax_id"], Value::Null);
        assert_eq!(c["external_info"], info);
        let id = uuid::Uuid::parse_str(id_of(&c)).unwrap();
        assert_eq!(id.get_version_num(), 7);
        let path = format!("/v1/customers/{id}");

        let (s, got) = app.call(Method::GET, &path, Some(&key), None).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(got, c);

        let (s, upd) = app
            .call(Method::PATCH, &path, Some(&key), Some(json!({
                "login_name": "fri22",
                "external_info": null,
                "business_tax_id": "12.345.678/0001-95"
            })))
            .await;
        assert_eq!(s, StatusCode::OK, "{upd}");
        assert_eq!(upd["login_name"], "fri22");
        assert_eq!(upd["external_info"], Value::Null);
        assert_eq!(upd["business_tax_id"], "12345678000195");
        assert_eq!(upd["external_id"], "user-42", "absent fields are left alone");
        assert_eq!(upd["created_at"], c["created_at"]);

        let (s, b) = app.call(Method::DELETE, &path, Some(&key), None).await;
        assert_eq!(s, StatusCode::OK, "{b}");
        assert_eq!(b["customer_id"], c["id"]);
        assert_eq!(b["removed"]["consents"], 0, "{b}");
        let (s, b) = app.call(Method::GET, &path, Some(&key), None).await;
        assert_problem(s, &b, StatusCode::NOT_FOUND, None);
        let (s, b) = app.call(Method::DELETE, &path, Some(&key), None).await;
        assert_problem(s, &b, StatusCode::NOT_FOUND, None);
    }

    async fn customer_list_pages_with_a_cursor(app: TestApp) {
        let key = app.new_application("pages").await;
        let mut made = Vec::new();
        for i in 0..5 {
            let c = app.new_customer(&key, json!({"external_id": format!("c{i}")})).await;
            made.push(id_of(&c).to_string());
        }
        let mut seen = Vec::new();
        let mut path = "/v1/customers?limit=2".to_string();
        loop {
            let (s, page) = app.call(Method::GET, &path, Some(&key), None).await;
            assert_eq!(s, StatusCode::OK, "{page}");
            let rows = page["data"].as_array().unwrap();
            assert!(rows.len() <= 2);
            seen.extend(rows.iter().map(|r| id_of(r).to_string()));
            match page["next_cursor"].as_str() {
                Some(cursor) => path = format!("/v1/customers?limit=2&cursor={cursor}"),
                None => break,
            }
        }
        assert_eq!(seen, made);
        for (query, field) in [("limit=0", "limit"), ("limit=501", "limit"), ("limit=x", "limit"),
                               ("cursor=bogus", "cursor"), ("colour=red", "colour")] {
            let (s, b) = app.call(Method::GET, &format!("/v1/customers?{query}"), Some(&key), None).await;
            assert_problem(s, &b, StatusCode::BAD_REQUEST, Some(field));
        }
    }

    async fn customer_fields_are_validated(app: TestApp) {
        let key = app.new_application("valid").await;
        let cases = [
            (json!({"external_id": ""}), "external_id"),
            (json!({"login_name": "x".repeat(256)}), "login_name"),
            (json!({"personal_tax_id": "123"}), "personal_tax_id"),
            (json!({"business_tax_id": "1234567890123X"}), "business_tax_id"),
            (json!({"external_info": "not an object"}), "external_info"),
        ];
        for (body, field) in cases {
            let (s, b) = app.call(Method::POST, "/v1/customers", Some(&key), Some(body)).await;
            assert_problem(s, &b, StatusCode::UNPROCESSABLE_ENTITY, Some(field));
        }
        // Several bad fields are reported together.
        let (s, b) = app
            .call(Method::POST, "/v1/customers", Some(&key),
                  Some(json!({"personal_tax_id": "1", "business_tax_id": "2"})))
            .await;
        assert_problem(s, &b, StatusCode::UNPROCESSABLE_ENTITY, Some("personal_tax_id"));
        assert_eq!(b["errors"].as_array().unwrap().len(), 2, "{b}");
        // Nothing was stored by the refused requests.
        let (_, list) = app.call(Method::GET, "/v1/customers", Some(&key), None).await;
        assert_eq!(list["data"], json!([]));
    }

    async fn duplicate_external_id_is_a_conflict(app: TestApp) {
        let key = app.new_application("dup").await;
        app.new_customer(&key, json!({"external_id": "same"})).await;
        let (s, b) = app
            .call(Method::POST, "/v1/customers", Some(&key), Some(json!({"external_id": "same"})))
            .await;
        assert_problem(s, &b, StatusCode::CONFLICT, Some("external_id"));
        let other = app.new_customer(&key, json!({"external_id": "other"})).await;
        let (s, b) = app
            .call(Method::PATCH, &format!("/v1/customers/{}", id_of(&other)), Some(&key),
                  Some(json!({"external_id": "same"})))
            .await;
        assert_problem(s, &b, StatusCode::CONFLICT, Some("external_id"));
    }
}
