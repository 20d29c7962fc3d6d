//! `/metrics` as Prometheus scrapes it: every scrape is parsed strictly, and the counts it
//! shows are those of the deliveries, refreshes and requests the test made.

mod exposition;

use std::time::Duration;

use freshet::{config::Config, server::Server};
use freshet_engine::testing::{Answer, Receiver};
use freshet_store::testing::Backend;
use reqwest::{Method, StatusCode, header};
use serde_json::{Value, json};

use self::exposition::Scrape;
use crate::{
    refresh::Client,
    support::{ADMIN_TOKEN, TestApp, run_with},
};

const WAIT: Duration = Duration::from_secs(10);

/// The scheduler stays out of the way, and every scrape reads the database afresh.
fn fresh(c: &mut Config) {
    c.refresh_tick = Duration::from_secs(3600);
    c.metrics_cache = Duration::ZERO;
}

async fn scrape(base: &str) -> Scrape {
    let res = reqwest::get(format!("{base}/metrics")).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        res.headers()[header::CONTENT_TYPE],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let scrape = Scrape::parse(&res.text().await.unwrap());
    for family in [
        "freshet_delivery_attempts_total",
        "freshet_delivery_attempt_duration_seconds",
        "freshet_delivery_queue_depth",
        "freshet_delivery_oldest_pending_age_seconds",
        "freshet_refresh_subtasks_total",
        "freshet_refresh_subtask_duration_seconds",
        "freshet_unattended_budget_left",
        "freshet_unattended_budget_exhausted_consents",
        "process_resident_memory_bytes",
    ] {
        assert!(scrape.types.contains_key(family), "{family} is missing");
    }
    assert_eq!(scrape.value("freshet_metrics_store_up", &[]), 1.0);
    scrape
}

fn attempts(s: &Scrape, dialect: &str, outcome: &str) -> f64 {
    s.value(
        "freshet_delivery_attempts_total",
        &[("dialect", dialect), ("outcome", outcome)],
    )
}

fn budget_left(s: &Scrape, provider: &str) -> f64 {
    s.value("freshet_unattended_budget_left", &[("provider", provider)])
}

fn exhausted(s: &Scrape, provider: &str) -> f64 {
    s.value(
        "freshet_unattended_budget_exhausted_consents",
        &[("provider", provider)],
    )
}

/// Waits until the only delivery of `event` is `status`.
async fn delivery(app: &TestApp, key: &str, event: &str, status: &str) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let path = format!("/v1/events/{event}/deliveries");
        let (_, ds) = app.call(Method::GET, &path, Some(key), None).await;
        if ds["data"][0]["status"] == status {
            return ds["data"][0].clone();
        }
        assert!(tokio::time::Instant::now() < deadline, "{ds}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Runs a refresh of `customer` and waits for it to end.
async fn refresh(c: &Client<'_>, customer: &str, body: Value) -> Value {
    let path = format!("/v1/customers/{customer}/refresh");
    let (s, started) = c.call(Method::POST, &path, Some(body)).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{started}");
    c.finished(started["task_id"].as_str().unwrap()).await
}

async fn deliveries_refreshes_and_requests_are_counted(app: TestApp) {
    let s = scrape(&app.base).await;
    assert_eq!(
        attempts(&s, "standard", "success"),
        0.0,
        "series start at 0"
    );
    assert_eq!(s.value("freshet_delivery_queue_depth", &[]), 0.0);
    assert_eq!(budget_left(&s, "natwest"), 4.0);

    // A receiver that fails once, then takes three seconds to say yes.
    let key = app.new_application("hooks").await;
    let r = Receiver::start(vec![
        Answer::Status(500),
        Answer::Hang(Duration::from_secs(3)),
    ])
    .await;
    let body = json!({"url": r.url(), "retry_schedule": [3600]});
    let (st, ep) = app
        .call(
            Method::POST,
            "/v1/webhook-endpoints",
            Some(&key),
            Some(body),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{ep}");
    let path = format!("/v1/webhook-endpoints/{}/test", ep["id"].as_str().unwrap());
    let (_, t) = app.call(Method::POST, &path, Some(&key), None).await;
    let event = t["event_id"].as_str().unwrap();
    let failed = delivery(&app, &key, event, "failed").await;
    let s = scrape(&app.base).await;
    assert_eq!(attempts(&s, "standard", "http_error"), 1.0);
    assert_eq!(attempts(&s, "standard", "success"), 0.0);
    assert_eq!(
        s.value("freshet_delivery_queue_depth", &[]),
        1.0,
        "retrying in an hour"
    );
    assert_eq!(
        s.value("freshet_delivery_oldest_pending_age_seconds", &[]),
        0.0,
        "not due yet"
    );

    // Retried now: while the receiver holds it, the delivery is due and unsettled.
    let path = format!("/v1/deliveries/{}/retry", failed["id"].as_str().unwrap());
    let (st, _) = app.call(Method::POST, &path, Some(&key), None).await;
    assert_eq!(st, StatusCode::ACCEPTED);
    r.wait_for(2, WAIT).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let s = scrape(&app.base).await;
    assert_eq!(
        s.value("freshet_delivery_queue_depth", &[]),
        1.0,
        "in flight"
    );
    let age = s.value("freshet_delivery_oldest_pending_age_seconds", &[]);
    assert!((1.0..60.0).contains(&age), "due since the retry: {age}");

    delivery(&app, &key, event, "succeeded").await;
    let s = scrape(&app.base).await;
    assert_eq!(attempts(&s, "standard", "http_error"), 1.0);
    assert_eq!(attempts(&s, "standard", "success"), 1.0);
    assert_eq!(attempts(&s, "bud", "success"), 0.0);
    let dead = [("dialect", "standard")];
    assert_eq!(s.value("freshet_deliveries_dead_total", &dead), 0.0);
    assert_eq!(
        s.value("freshet_delivery_queue_depth", &[]),
        0.0,
        "back to empty"
    );
    assert_eq!(
        s.value("freshet_delivery_oldest_pending_age_seconds", &[]),
        0.0
    );
    let bucket = |le| {
        s.value(
            "freshet_delivery_attempt_duration_seconds_bucket",
            &[("dialect", "standard"), ("le", le)],
        )
    };
    assert_eq!(bucket("2.5"), 1.0, "the quick 500");
    assert_eq!(bucket("5"), 2.0, "and the three-second 200");
    let test_events = [("type", "endpoint.test")];
    assert_eq!(s.value("freshet_events_recorded_total", &test_events), 1.0);

    // Refreshes, by another application (no endpoints: no more deliveries).
    let c = Client {
        app: &app,
        key: app.new_application("banks").await,
    };
    let customer = app.new_customer(&c.key, json!({})).await;
    let cid = customer["id"].as_str().unwrap();
    c.connect(cid, "natwest", json!({})).await;
    c.connect(cid, "tatrabanka", json!({})).await;
    let fault = json!({"provider_id": "tatrabanka", "kind": "provider_failure"});
    c.sandbox("faults", fault).await;
    let unattended = refresh(&c, cid, json!({})).await;
    assert_eq!(unattended["result"], "provider_failure", "{unattended}");
    let present = json!({"providers": ["natwest"], "customer_ip": "203.0.113.7"});
    let present = refresh(&c, cid, present).await;
    assert_eq!(present["status"], "Completed", "{present}");

    let s = scrape(&app.base).await;
    let subtasks = |provider, result| {
        s.value(
            "freshet_refresh_subtasks_total",
            &[("provider", provider), ("result", result)],
        )
    };
    assert_eq!(subtasks("natwest", "success"), 2.0);
    assert_eq!(subtasks("tatrabanka", "provider_failure"), 1.0);
    assert_eq!(subtasks("tatrabanka", "success"), 0.0);
    let natwest = [("provider", "natwest")];
    assert_eq!(
        s.value("freshet_refresh_subtask_duration_seconds_count", &natwest),
        2.0
    );
    assert_eq!(
        budget_left(&s, "natwest"),
        3.0,
        "the present refresh is free"
    );
    assert_eq!(
        budget_left(&s, "tatrabanka"),
        3.0,
        "a refused call still counts"
    );
    assert_eq!(budget_left(&s, "lloyds"), 4.0, "no consent there");
    assert_eq!(exhausted(&s, "natwest"), 0.0);

    // One refused request between two scrapes; the first scrape counts once it is answered.
    let before = scrape(&app.base).await;
    let (st, _) = app.call(Method::GET, "/v1/nothing-here", None, None).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let after = scrape(&app.base).await;
    let class = |s: &Scrape, c| s.value("freshet_http_requests_total", &[("class", c)]);
    assert_eq!(class(&after, "4xx") - class(&before, "4xx"), 1.0);
    assert_eq!(class(&after, "2xx") - class(&before, "2xx"), 1.0);
    app.stop().await;
}

#[tokio::test]
async fn deliveries_refreshes_and_requests_are_counted_on_sqlite() {
    run_with(
        Backend::Sqlite,
        fresh,
        deliveries_refreshes_and_requests_are_counted,
    )
    .await;
}

#[tokio::test]
async fn deliveries_refreshes_and_requests_are_counted_on_postgres() {
    run_with(
        Backend::Postgres,
        fresh,
        deliveries_refreshes_and_requests_are_counted,
    )
    .await;
}

/// A consent whose unattended budget is spent shows as exhausted, and the scheduler leaves it
/// alone while it refreshes the customer's other bank.
async fn a_spent_budget_is_reported_and_not_scheduled(app: TestApp) {
    let c = Client {
        app: &app,
        key: app.new_application("budget").await,
    };
    let customer = app.new_customer(&c.key, json!({})).await;
    let cid = customer["id"].as_str().unwrap();
    // Both first imports are due, but this node's scheduler will not pass for an hour.
    c.connect(cid, "natwest", json!({})).await;
    c.connect(cid, "lloyds", json!({})).await;
    c.sandbox(
        "faults",
        json!({"provider_id": "natwest", "kind": "provider_failure"}),
    )
    .await;
    for _ in 0..4 {
        let t = refresh(&c, cid, json!({"providers": ["natwest"]})).await;
        assert_eq!(t["result"], "provider_failure", "{t}");
    }
    app.http
        .delete(app.url("/sandbox/control/faults"))
        .send()
        .await
        .unwrap();
    let s = scrape(&app.base).await;
    assert_eq!(budget_left(&s, "natwest"), 0.0);
    assert_eq!(exhausted(&s, "natwest"), 1.0);
    assert_eq!(budget_left(&s, "lloyds"), 4.0);

    // A second node whose scheduler passes every second.
    let mut config = Config::new(app.db.url.clone());
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.admin_token = Some(ADMIN_TOKEN.to_string().into());
    config.master_key = Some(app.db.master_key.clone());
    config.refresh_tick = Duration::from_secs(1);
    config.metrics_cache = Duration::ZERO;
    config.sandbox = false;
    config.sandbox_url = Some(app.url("/sandbox"));
    let scheduler = Server::start(config).await.unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    while c.events("refresh.completed").await.len() < 5 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "lloyds' import never ran"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Two more passes, in which natwest's refresh stays skipped.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut runs = Vec::new();
    for e in c.events("refresh.completed").await {
        let path = format!(
            "/v1/refresh-tasks/{}",
            e["data"]["task_id"].as_str().unwrap()
        );
        let (_, t) = c.call(Method::GET, &path, None).await;
        runs.push(format!(
            "{} {}",
            t["trigger"], t["sub_tasks"][0]["provider"]
        ));
    }
    runs.sort();
    let mut want = vec![r#""first_import" "lloyds""#.to_string()];
    want.extend(vec![r#""manual" "natwest""#.to_string(); 4]);
    assert_eq!(runs, want);

    let s = scrape(&format!("http://{}", scheduler.addr())).await;
    assert_eq!(budget_left(&s, "natwest"), 0.0);
    assert_eq!(
        budget_left(&s, "lloyds"),
        3.0,
        "the scheduled import was unattended"
    );
    assert_eq!(exhausted(&s, "natwest"), 1.0);
    assert_eq!(exhausted(&s, "lloyds"), 0.0);
    scheduler.shutdown().await.unwrap();
    app.stop().await;
}

#[tokio::test]
async fn a_spent_budget_is_reported_and_not_scheduled_on_sqlite() {
    run_with(
        Backend::Sqlite,
        fresh,
        a_spent_budget_is_reported_and_not_scheduled,
    )
    .await;
}

#[tokio::test]
async fn a_spent_budget_is_reported_and_not_scheduled_on_postgres() {
    run_with(
        Backend::Postgres,
        fresh,
        a_spent_budget_is_reported_and_not_scheduled,
    )
    .await;
}

/// With the default cache, a scrape right after another reuses its database facts.
#[tokio::test]
async fn database_facts_are_cached_between_close_scrapes() {
    run_with(
        Backend::Sqlite,
        |c| c.metrics_cache = Duration::from_secs(300),
        |app| async move {
            let before = scrape(&app.base).await;
            assert_eq!(before.value("freshet_delivery_queue_depth", &[]), 0.0);
            let key = app.new_application("cache").await;
            let r = Receiver::start(vec![Answer::Status(500)]).await;
            let body = json!({"url": r.url(), "retry_schedule": [3600]});
            let (_, ep) = app
                .call(
                    Method::POST,
                    "/v1/webhook-endpoints",
                    Some(&key),
                    Some(body),
                )
                .await;
            let path = format!("/v1/webhook-endpoints/{}/test", ep["id"].as_str().unwrap());
            let (_, t) = app.call(Method::POST, &path, Some(&key), None).await;
            delivery(&app, &key, t["event_id"].as_str().unwrap(), "failed").await;
            let after = scrape(&app.base).await;
            assert_eq!(
                attempts(&after, "standard", "http_error"),
                1.0,
                "counted live"
            );
            assert_eq!(
                after.value("freshet_delivery_queue_depth", &[]),
                0.0,
                "read from the database at the first scrape, not again"
            );
            app.stop().await;
        },
    )
    .await;
}
