//! The API the dashboard reads: refresh tasks and consents across customers, endpoint health,
//! and the event log newest first.

use std::time::Duration;

use freshet_engine::testing::{Answer, Receiver};
use freshet_store::testing::Backend;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::{
    on_both_stores,
    refresh::{Client, quiet},
    support::{TestApp, assert_problem, run_with},
};

const WAIT: Duration = Duration::from_secs(10);

fn ids(list: &Value, field: &str) -> Vec<String> {
    list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v[field].as_str().unwrap().to_string())
        .collect()
}

async fn refreshed(c: &Client<'_>, customer: &str) -> String {
    let (s, t) = c
        .call(
            Method::POST,
            &format!("/v1/customers/{customer}/refresh"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{t}");
    let id = t["task_id"].as_str().unwrap().to_string();
    let done = c.finished(&id).await;
    assert_eq!(done["status"], "Completed", "{done}");
    id
}

async fn tasks_and_consents_across_customers(app: TestApp) {
    let c = Client {
        app: &app,
        key: app.new_application("operator").await,
    };
    let stranger = app.new_application("stranger").await;
    let a = app.new_customer(&c.key, json!({"external_id": "a"})).await;
    let b = app.new_customer(&c.key, json!({"external_id": "b"})).await;
    let (a, b) = (a["id"].as_str().unwrap(), b["id"].as_str().unwrap());
    let expires = "2099-01-31T12:00:00Z";
    let natwest = c
        .connect(a, "natwest", json!({"expires_at": expires}))
        .await;
    let tatra = c.connect(a, "tatrabanka", json!({})).await;
    let lloyds = c.connect(b, "lloyds", json!({})).await;
    let task_a = refreshed(&c, a).await;
    let task_b = refreshed(&c, b).await;

    // Newest first, each task with its sub-tasks as GET /v1/refresh-tasks/{id} shows them.
    let (s, all) = c.call(Method::GET, "/v1/refresh-tasks", None).await;
    assert_eq!(s, StatusCode::OK, "{all}");
    assert_eq!(ids(&all, "task_id"), [task_b.clone(), task_a.clone()]);
    assert_eq!(all["next_cursor"], Value::Null);
    let (_, one) = c
        .call(Method::GET, &format!("/v1/refresh-tasks/{task_a}"), None)
        .await;
    assert_eq!(
        all["data"][1], one,
        "a listed task reads as the task itself"
    );
    let mut providers: Vec<_> = one["sub_tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["provider"].as_str().unwrap())
        .collect();
    providers.sort_unstable();
    assert_eq!(providers, ["natwest", "tatrabanka"]);
    assert_eq!(all["data"][0]["sub_tasks"][0]["provider"], "lloyds");

    // Filters and pages.
    let (_, only_a) = c
        .call(
            Method::GET,
            &format!("/v1/refresh-tasks?customer_id={a}"),
            None,
        )
        .await;
    assert_eq!(ids(&only_a, "task_id"), std::slice::from_ref(&task_a));
    let (_, done) = c
        .call(Method::GET, "/v1/refresh-tasks?status=Completed", None)
        .await;
    assert_eq!(done["data"].as_array().unwrap().len(), 2);
    let (_, failed) = c
        .call(Method::GET, "/v1/refresh-tasks?status=Failed", None)
        .await;
    assert_eq!(failed["data"], json!([]));
    let (_, first) = c.call(Method::GET, "/v1/refresh-tasks?limit=1", None).await;
    assert_eq!(ids(&first, "task_id"), [task_b]);
    let cursor = first["next_cursor"].as_str().unwrap();
    let (_, second) = c
        .call(
            Method::GET,
            &format!("/v1/refresh-tasks?limit=1&cursor={cursor}"),
            None,
        )
        .await;
    assert_eq!(ids(&second, "task_id"), [task_a]);
    assert_eq!(second["next_cursor"], Value::Null);
    for (query, field) in [
        ("status=done", "status"),
        ("customer_id=someone", "customer_id"),
        ("cursor=zzz", "cursor"),
        ("limit=0", "limit"),
        ("colour=red", "colour"),
    ] {
        let (s, p) = c
            .call(Method::GET, &format!("/v1/refresh-tasks?{query}"), None)
            .await;
        assert_problem(s, &p, StatusCode::BAD_REQUEST, Some(field));
    }
    let (_, theirs) = app
        .call(Method::GET, "/v1/refresh-tasks", Some(&stranger), None)
        .await;
    assert_eq!(theirs["data"], json!([]));

    // Consents of every customer, oldest first, with what the dashboard shows of each.
    let (s, consents) = c.call(Method::GET, "/v1/consents", None).await;
    assert_eq!(s, StatusCode::OK, "{consents}");
    let want: Vec<String> = [&natwest, &tatra, &lloyds]
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids(&consents, "id"), want);
    let first = &consents["data"][0];
    assert_eq!(first["provider_id"], "natwest");
    assert_eq!(first["status"], "authorised");
    assert_eq!(first["expires_at"], expires);
    assert_eq!(first["reconnect_required"], false);
    assert!(first["last_refreshed_at"].is_string(), "{first}");
    assert!(first["next_refresh_at"].is_string(), "{first}");
    assert_eq!(consents["data"][2]["customer_id"], b);

    let tatra_id = tatra["id"].as_str().unwrap();
    let (s, _) = c
        .call(Method::DELETE, &format!("/v1/consents/{tatra_id}"), None)
        .await;
    assert_eq!(s, StatusCode::OK);
    let (_, revoked) = c
        .call(Method::GET, "/v1/consents?status=revoked", None)
        .await;
    assert_eq!(ids(&revoked, "id"), [tatra_id.to_string()]);
    let (_, authorised) = c
        .call(Method::GET, "/v1/consents?status=authorised&limit=1", None)
        .await;
    assert_eq!(ids(&authorised, "id"), [want[0].clone()]);
    let cursor = authorised["next_cursor"].as_str().unwrap();
    let (_, rest) = c
        .call(
            Method::GET,
            &format!("/v1/consents?status=authorised&cursor={cursor}"),
            None,
        )
        .await;
    assert_eq!(ids(&rest, "id"), [want[2].clone()]);
    let (s, p) = c
        .call(Method::GET, "/v1/consents?status=lapsed", None)
        .await;
    assert_problem(s, &p, StatusCode::BAD_REQUEST, Some("status"));
    let (_, theirs) = app
        .call(Method::GET, "/v1/consents", Some(&stranger), None)
        .await;
    assert_eq!(theirs["data"], json!([]));
}

#[tokio::test]
async fn tasks_and_consents_across_customers_on_sqlite() {
    run_with(Backend::Sqlite, quiet, tasks_and_consents_across_customers).await;
}

#[tokio::test]
async fn tasks_and_consents_across_customers_on_postgres() {
    run_with(
        Backend::Postgres,
        quiet,
        tasks_and_consents_across_customers,
    )
    .await;
}

/// Waits until the event's one delivery is in `status`; returns it.
async fn delivery_in(app: &TestApp, key: &str, event: &str, status: &str) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (_, ds) = app
            .call(
                Method::GET,
                &format!("/v1/events/{event}/deliveries"),
                Some(key),
                None,
            )
            .await;
        if ds["data"][0]["status"] == status {
            return ds["data"][0].clone();
        }
        assert!(tokio::time::Instant::now() < deadline, "{ds}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

on_both_stores! {
    async fn endpoints_report_their_health(app: TestApp) {
        let key = app.new_application("health").await;
        let r = Receiver::start(vec![Answer::StatusWithBody(500, "down".into()), Answer::Status(200)]).await;
        let create = |body: Value| app.call(Method::POST, "/v1/webhook-endpoints", Some(&key), Some(body));
        let (s, busy) = create(json!({"url": r.url(), "retry_schedule": [3600]})).await;
        assert_eq!(s, StatusCode::CREATED, "{busy}");
        assert!(busy.get("health").is_none(), "health is shown when endpoints are read: {busy}");
        let (_, idle) = create(json!({"url": r.url(), "dialect": "bud"})).await;
        let (busy, idle) = (busy["id"].as_str().unwrap(), idle["id"].as_str().unwrap());

        let health = |id: &str| {
            let id = id.to_string();
            let app = &app;
            let key = &key;
            async move {
                let (_, list) = app.call(Method::GET, "/v1/webhook-endpoints", Some(key), None).await;
                list["data"].as_array().unwrap().iter().find(|e| e["id"] == id.as_str()).unwrap()["health"].clone()
            }
        };
        let fresh = health(busy).await;
        assert_eq!(fresh["attempts"], 0, "{fresh}");
        assert_eq!(fresh["window_hours"], 24);
        assert_eq!(fresh["success_rate"], Value::Null);
        assert_eq!(fresh["last_failure"], Value::Null);

        let (_, t) = app.call(Method::POST, &format!("/v1/webhook-endpoints/{busy}/test"), Some(&key), None).await;
        let event = t["event_id"].as_str().unwrap();
        let failed = delivery_in(&app, &key, event, "failed").await;
        let h = health(busy).await;
        assert_eq!((h["attempts"].as_u64(), h["succeeded"].as_u64(), h["failed"].as_u64()), (Some(1), Some(0), Some(1)), "{h}");
        assert_eq!(h["success_rate"], 0.0);
        assert_eq!(h["last_failure"]["status_code"], 500);
        assert!(h["failing_since"].is_string(), "{h}");
        assert_eq!(h["last_success_at"], Value::Null);
        let failed_at = h["last_failure"]["at"].clone();
        assert_eq!(health(idle).await["attempts"], 0, "one endpoint's attempts are its own");

        let did = failed["id"].as_str().unwrap();
        let (s, _) = app.call(Method::POST, &format!("/v1/deliveries/{did}/retry"), Some(&key), None).await;
        assert_eq!(s, StatusCode::ACCEPTED);
        delivery_in(&app, &key, event, "succeeded").await;
        let (_, one) = app.call(Method::GET, &format!("/v1/webhook-endpoints/{busy}"), Some(&key), None).await;
        let h = &one["health"];
        assert_eq!((h["attempts"].as_u64(), h["succeeded"].as_u64()), (Some(2), Some(1)), "{one}");
        assert_eq!(h["success_rate"], 0.5);
        assert_eq!(h["last_failure"]["at"], failed_at, "the last failure stays until another");
        assert!(h["last_success_at"].is_string() && h["failing_since"].is_null(), "{h}");
        assert_eq!(h["disabled"], false);

        let (_, patched) = app
            .call(Method::PATCH, &format!("/v1/webhook-endpoints/{busy}"), Some(&key), Some(json!({"enabled": false})))
            .await;
        assert!(patched.get("health").is_none(), "{patched}");
        assert_eq!(health(busy).await["disabled"], true);
    }

    async fn events_list_newest_first(app: TestApp) {
        let key = app.new_application("log").await;
        let r = Receiver::start(vec![Answer::Status(204)]).await;
        let (_, ep) = app.call(Method::POST, "/v1/webhook-endpoints", Some(&key), Some(json!({"url": r.url()}))).await;
        let ep = ep["id"].as_str().unwrap();
        let mut sent = Vec::new();
        for _ in 0..3 {
            let (_, t) = app.call(Method::POST, &format!("/v1/webhook-endpoints/{ep}/test"), Some(&key), None).await;
            sent.push(t["event_id"].as_str().unwrap().to_string());
        }
        let (_, page) = app.call(Method::GET, "/v1/events?order=desc&limit=2", Some(&key), None).await;
        assert_eq!(ids(&page, "id"), [sent[2].clone(), sent[1].clone()]);
        let cursor = page["next_cursor"].as_str().unwrap();
        let (_, older) = app
            .call(Method::GET, &format!("/v1/events?order=desc&limit=2&type=endpoint.test&cursor={cursor}"), Some(&key), None)
            .await;
        assert_eq!(ids(&older, "id"), [sent[0].clone()]);
        assert_eq!(older["next_cursor"], Value::Null);
        let (_, oldest) = app.call(Method::GET, "/v1/events?order=asc&limit=1", Some(&key), None).await;
        assert_eq!(ids(&oldest, "id"), [sent[0].clone()]);
        let (s, p) = app.call(Method::GET, "/v1/events?order=sideways", Some(&key), None).await;
        assert_problem(s, &p, StatusCode::BAD_REQUEST, Some("order"));
    }
}
