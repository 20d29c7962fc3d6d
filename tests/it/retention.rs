//! Retention and the store's faults of issue 17, as a client and an operator see them: old
//! settled events leave with their deliveries and attempts while unsettled ones stay, an
//! application's own period wins over the node's, the data of ended consents goes and that of
//! active ones stays, `/metrics` counts it all; a full SQLite disk leaves the node able to
//! write once space is back (and `/healthz` says so meanwhile); a receiver back from an outage
//! gets its backlog within seconds.

use std::{collections::HashSet, time::Duration};

use freshet::config::Config;
use freshet_engine::testing::{Answer, Receiver};
use freshet_store::testing::Backend;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::{
    refresh::Client,
    support::{ADMIN_TOKEN, TestApp, run_with},
};

/// A node that keeps data two seconds and looks for old data five times a second.
fn short(c: &mut Config) {
    c.retention = Some(Duration::from_secs(2));
    c.retention_every = Duration::from_millis(200);
    c.metrics_cache = Duration::ZERO;
    c.refresh_tick = Duration::from_secs(3600);
}

/// Runs `$case` on both stores with `$tweak`.
macro_rules! on_both_stores_with {
    ($tweak:expr, $($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test]
                async fn sqlite() {
                    super::run_with(super::Backend::Sqlite, $tweak, super::$name).await;
                }

                #[tokio::test]
                async fn postgres() {
                    super::run_with(super::Backend::Postgres, $tweak, super::$name).await;
                }
            }
        )*
    };
}

on_both_stores_with!(
    super::short,
    old_settled_events_go_unsettled_and_overridden_stay,
    ended_consents_lose_their_accounts_and_active_ones_keep_them,
);
on_both_stores_with!(
    super::quiet,
    a_recovered_receiver_gets_its_backlog_within_seconds
);

fn quiet(c: &mut Config) {
    c.refresh_tick = Duration::from_secs(3600);
}

async fn endpoint(app: &TestApp, key: &str, url: &str) -> String {
    let (s, ep) = app
        .call(
            Method::POST,
            "/v1/webhook-endpoints",
            Some(key),
            Some(json!({"url": url})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{ep}");
    ep["id"].as_str().unwrap().to_string()
}

/// Sends a test event to an endpoint; its id.
async fn test_event(app: &TestApp, key: &str, endpoint: &str) -> String {
    let (s, b) = app
        .call(
            Method::POST,
            &format!("/v1/webhook-endpoints/{endpoint}/test"),
            Some(key),
            Some(json!({"data": {}})),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    b["event_id"].as_str().unwrap().to_string()
}

async fn get(app: &TestApp, key: &str, path: &str) -> (StatusCode, Value) {
    app.call(Method::GET, path, Some(key), None).await
}

/// Polls `check` every 100 ms until it holds, or panics naming `what` after `within`.
async fn eventually<F, Fut>(what: &str, within: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A sample of `/metrics` by its exact series text, e.g. `name{table="events"}`.
async fn metric(app: &TestApp, series: &str) -> f64 {
    let text = reqwest::get(app.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{series} is not in /metrics"))
}

async fn old_settled_events_go_unsettled_and_overridden_stay(app: TestApp) {
    let ok = Receiver::start(vec![Answer::Status(204)]).await;
    let down = Receiver::start(vec![Answer::Status(500)]).await;
    let short_key = app.new_application("short").await;
    let (long_id, long_key) = app.new_application_with_id("long").await;
    let (s, b) = app
        .call(
            Method::PATCH,
            &format!("/v1/applications/{long_id}"),
            Some(ADMIN_TOKEN),
            Some(json!({"retention_days": 30})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["retention_days"], 30);
    let (s, b) = app
        .call(
            Method::PATCH,
            &format!("/v1/applications/{long_id}"),
            Some(ADMIN_TOKEN),
            Some(json!({"retention_days": 0})),
        )
        .await;
    crate::support::assert_problem(
        s,
        &b,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("retention_days"),
    );

    let settled = test_event(
        &app,
        &short_key,
        &endpoint(&app, &short_key, &ok.url()).await,
    )
    .await;
    let failing = test_event(
        &app,
        &short_key,
        &endpoint(&app, &short_key, &down.url()).await,
    )
    .await;
    let kept = test_event(&app, &long_key, &endpoint(&app, &long_key, &ok.url()).await).await;
    ok.wait_for(2, Duration::from_secs(10)).await;
    let (_, ds) = get(
        &app,
        &short_key,
        &format!("/v1/events/{settled}/deliveries"),
    )
    .await;
    let delivery = ds["data"][0]["id"].as_str().unwrap().to_string();

    eventually(
        "the old settled event goes",
        Duration::from_secs(15),
        || async {
            get(&app, &short_key, &format!("/v1/events/{settled}"))
                .await
                .0
                == StatusCode::NOT_FOUND
        },
    )
    .await;
    let (s, _) = get(
        &app,
        &short_key,
        &format!("/v1/deliveries/{delivery}/attempts"),
    )
    .await;
    assert_eq!(
        s,
        StatusCode::NOT_FOUND,
        "its delivery and attempts went with it"
    );
    let (s, ds) = get(
        &app,
        &short_key,
        &format!("/v1/events/{failing}/deliveries"),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "an event still failing stays");
    let status = ds["data"][0]["status"].as_str().unwrap();
    assert!(["failed", "delivering"].contains(&status), "{ds}");
    let (s, _) = get(&app, &long_key, &format!("/v1/events/{kept}")).await;
    assert_eq!(
        s,
        StatusCode::OK,
        "the application's 30 days win over the node's 2 s"
    );

    for table in ["events", "deliveries", "delivery_attempts"] {
        let n = metric(
            &app,
            &format!("freshet_retention_purged_rows_total{{table=\"{table}\"}}"),
        )
        .await;
        assert!(n >= 1.0, "{table}: {n}");
    }
    let age = metric(&app, "freshet_retention_oldest_event_age_seconds").await;
    assert!(age > 0.0 && age < 600.0, "{age}");
    app.stop().await;
}

async fn ended_consents_lose_their_accounts_and_active_ones_keep_them(app: TestApp) {
    let c = Client {
        app: &app,
        key: app.new_application("consents").await,
    };
    let (ended_customer, ended) = c.new_consent("natwest").await;
    let (active_customer, _) = c.new_consent("natwest").await;
    for customer in [&ended_customer, &active_customer] {
        let (s, t) = c
            .call(
                Method::POST,
                &format!("/v1/customers/{customer}/refresh"),
                Some(json!({})),
            )
            .await;
        assert_eq!(s, StatusCode::ACCEPTED, "{t}");
        let done = c.finished(t["task_id"].as_str().unwrap()).await;
        assert_eq!(done["status"], "Completed", "{done}");
    }
    let accounts = |customer: String| {
        let c = &c;
        async move {
            let (s, b) = c
                .call(
                    Method::GET,
                    &format!("/v1/customers/{customer}/accounts"),
                    None,
                )
                .await;
            assert_eq!(s, StatusCode::OK, "{b}");
            b["data"].as_array().unwrap().clone()
        }
    };
    let ended_accounts = accounts(ended_customer.clone()).await;
    assert!(!ended_accounts.is_empty());
    let account = ended_accounts[0]["id"].as_str().unwrap().to_string();
    let (s, txns) = c
        .call(
            Method::GET,
            &format!("/v1/accounts/{account}/transactions"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{txns}");
    let (s, b) = c
        .call(Method::DELETE, &format!("/v1/consents/{ended}"), None)
        .await;
    assert!(s.is_success(), "{b}");

    eventually(
        "the ended consent's accounts go",
        Duration::from_secs(15),
        || {
            let f = accounts(ended_customer.clone());
            async move { f.await.is_empty() }
        },
    )
    .await;
    let (s, _) = c
        .call(
            Method::GET,
            &format!("/v1/accounts/{account}/transactions"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "its transactions went with it");
    assert!(
        !accounts(active_customer.clone()).await.is_empty(),
        "an active consent's accounts stay, however old"
    );
    for table in ["accounts", "transactions"] {
        let n = metric(
            &app,
            &format!("freshet_retention_purged_rows_total{{table=\"{table}\"}}"),
        )
        .await;
        assert!(n >= 1.0, "{table}: {n}");
    }
    app.stop().await;
}

/// Regression (issue 17): after one failed write the SQLite writer refused every later
/// transaction ("begin_with at non-zero transaction depth") until a restart, while
/// `/healthz` said `ok`. A disk that fills is simulated with a page limit on the writer.
#[tokio::test]
async fn a_full_disk_leaves_the_writer_usable_and_healthz_truthful() {
    let Some(app) = TestApp::spawn(Backend::Sqlite, quiet).await else {
        return;
    };
    let c = Client {
        app: &app,
        key: app.new_application("disk").await,
    };
    let customer = app.new_customer(&c.key, json!({})).await;
    let cid = customer["id"].as_str().unwrap().to_string();
    assert_eq!(health(&app).await.0, StatusCode::OK);
    let store = app.server.as_ref().unwrap().store().clone();
    let pages = store.sqlite_page_count().await.unwrap();
    store.limit_sqlite_pages(Some(pages)).await.unwrap();

    // Rows until the file is full, then links (a transaction each) until one fails.
    let blob = "x".repeat(15_000);
    let mut full = false;
    for _ in 0..400 {
        let (s, _) = c
            .call(
                Method::POST,
                "/v1/customers",
                Some(json!({"external_info": {"blob": blob}})),
            )
            .await;
        if s != StatusCode::CREATED {
            assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
            full = true;
            break;
        }
    }
    assert!(full, "the page limit never stopped a write");
    let mut refused = None;
    for _ in 0..100 {
        let (s, b) = c
            .call(
                Method::POST,
                &format!("/v1/customers/{cid}/links"),
                Some(json!({"provider_id": "natwest"})),
            )
            .await;
        if s != StatusCode::CREATED {
            refused = Some((s, b));
            break;
        }
    }
    let (s, b) = refused.expect("a full file refused a link");
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{b}");
    eventually(
        "healthz reports the store cannot write",
        Duration::from_secs(10),
        || async {
            let (s, b) = health(&app).await;
            s == StatusCode::SERVICE_UNAVAILABLE && b["store"] == "cannot write"
        },
    )
    .await;

    store.limit_sqlite_pages(None).await.unwrap();
    eventually("healthz recovers", Duration::from_secs(10), || async {
        health(&app).await.0 == StatusCode::OK
    })
    .await;
    let (s, b) = c
        .call(
            Method::POST,
            &format!("/v1/customers/{cid}/links"),
            Some(json!({"provider_id": "natwest"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "a transaction works again: {b}");
    c.new_consent("natwest").await;
    app.stop().await;
}

async fn health(app: &TestApp) -> (StatusCode, Value) {
    let res = reqwest::get(app.url("/healthz")).await.unwrap();
    let status = res.status();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// Regression (issue 17): after a 30 s receiver outage half a burst waited for the 5-minute
/// retry while new deliveries already went through. A success brings the endpoint's waiting
/// retries forward.
async fn a_recovered_receiver_gets_its_backlog_within_seconds(app: TestApp) {
    const N: usize = 30;
    let r = Receiver::start(vec![Answer::Status(503)]).await;
    let key = app.new_application("outage").await;
    let ep = endpoint(&app, &key, &r.url()).await;
    for _ in 0..N {
        test_event(&app, &key, &ep).await;
    }
    // Each delivery fails at once and again 5 s later; its next try is 5 minutes away.
    r.wait_for(2 * N, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    r.answer_next(vec![Answer::Status(204)]);
    let outage_ended = r.count();
    let recovered_at = tokio::time::Instant::now();
    test_event(&app, &key, &ep).await;
    eventually(
        "the backlog arrives within seconds",
        Duration::from_secs(15),
        || async {
            let ids: HashSet<String> = r.received()[outage_ended..]
                .iter()
                .filter_map(|g| Some(g.headers.get("webhook-id")?.to_str().ok()?.to_string()))
                .collect();
            ids.len() > N
        },
    )
    .await;
    assert!(recovered_at.elapsed() < Duration::from_secs(15));
    app.stop().await;
}
