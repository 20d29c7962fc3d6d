//! The dashboard in a real browser: headless Chromium signs in with an API key, watches a
//! delivery fail, retries it once the receiver recovers and sees it succeed. A screenshot of
//! each view is saved under `target/test-artifacts/` (`dashboard.png` is the Events view).

use std::{
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicU16, Ordering},
    },
};

use axum::{http::StatusCode as Code, routing::post};
use freshet_engine::testing::{Answer, Receiver};
use freshet_store::testing::Backend;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::{
    refresh::{Client, quiet},
    support::{TestApp, assert_problem},
    webdriver::Browser,
};

/// Where screenshots go: `$CARGO_TARGET_DIR/test-artifacts`, else `target/test-artifacts`.
pub fn artifact(name: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    target.join("test-artifacts").join(name)
}

/// A receiver that answers whatever status it is set to, and says so in its body.
async fn switchable_receiver(status: Arc<AtomicU16>) -> String {
    let app = axum::Router::new().route(
        "/hook",
        post(move || {
            let code = status.load(Ordering::SeqCst);
            async move {
                let status = Code::from_u16(code).unwrap();
                (status, format!("receiver answered {code}"))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/hook")
}

async fn endpoint(c: &Client<'_>, body: Value) -> String {
    let (s, e) = c
        .call(Method::POST, "/v1/webhook-endpoints", Some(body))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{e}");
    e["id"].as_str().unwrap().to_string()
}

/// What an operator would find on a working day: endpoints in three dialects (one failing),
/// a customer with two banks and a finished refresh, and the events of it all.
/// Returns the failing endpoint's id and the Bud one's.
async fn realistic_state(c: &Client<'_>, failing_url: &str) -> (String, String) {
    let healthy = Receiver::start(vec![Answer::Status(204)]).await;
    let billing = endpoint(
        c,
        json!({"url": failing_url, "description": "Billing service", "retry_schedule": [3600]}),
    )
    .await;
    let bud = endpoint(
        c,
        json!({"url": healthy.url(), "dialect": "bud", "description": "Insights (Bud format)"}),
    )
    .await;
    endpoint(
        c,
        json!({"url": healthy.url(), "dialect": "tatra", "security_header": "Basic dXNlcjpwYXNz",
               "description": "Tatra banka partner feed"}),
    )
    .await;
    let customer = c
        .app
        .new_customer(&c.key, json!({"external_id": "user-42"}))
        .await;
    let cid = customer["id"].as_str().unwrap();
    let in_days = |n: i64| {
        (time::OffsetDateTime::now_utc() + time::Duration::days(n))
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    };
    c.connect(cid, "natwest", json!({"expires_at": in_days(90)}))
        .await;
    c.connect(cid, "lloyds", json!({"expires_at": in_days(5)}))
        .await;
    let (s, t) = c
        .call(Method::POST, &format!("/v1/customers/{cid}/refresh"), None)
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{t}");
    c.finished(t["task_id"].as_str().unwrap()).await;
    (billing, bud)
}

#[tokio::test]
async fn an_operator_retries_a_failed_delivery() {
    let Some(browser) = Browser::launch().await else {
        return;
    };
    let Some(app) = TestApp::spawn(Backend::Sqlite, quiet).await else {
        return;
    };
    let c = Client {
        app: &app,
        key: app.new_application("dashboard").await,
    };
    let answer = Arc::new(AtomicU16::new(500));
    let receiver = switchable_receiver(answer.clone()).await;
    let (billing, bud) = realistic_state(&c, &receiver).await;
    let (s, t) = c
        .call(
            Method::POST,
            &format!("/v1/webhook-endpoints/{billing}/test"),
            Some(json!({"data": {"invoice": "INV-1042"}})),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{t}");
    let event = t["event_id"].as_str().unwrap();

    // A wrong key is refused with the API's own words; the right one lets the operator in.
    browser.goto(&app.url("/dashboard")).await;
    browser
        .type_into("[data-testid=api-key]", "fsk_0123456789abcdef_wrong")
        .await;
    browser.click("[data-testid=sign-in]").await;
    browser
        .wait_for("[data-testid=signin-error]", "the refusal", |t| {
            t.iter()
                .any(|t| t.contains("not accepted: invalid API key"))
        })
        .await;
    browser.screenshot(&artifact("dashboard-signin.png")).await;
    browser.type_into("[data-testid=api-key]", &c.key).await;
    browser.click("[data-testid=sign-in]").await;
    browser
        .wait_for("[data-testid=endpoint-row]", "three endpoints", |t| {
            t.len() == 3
        })
        .await;

    // The event's delivery failed: the attempt shows the receiver's 500 and its body.
    browser.click("[data-testid=nav-events]").await;
    let row = format!("tr[data-event-id=\"{event}\"]");
    browser
        .click(&format!("{row} [data-testid=event-toggle]"))
        .await;
    let delivery = format!("{row} + tr [data-testid=delivery-row]");
    browser
        .wait_for(
            &format!("{delivery} [data-testid=delivery-status]"),
            "the failed delivery",
            |t| t == ["failed"],
        )
        .await;
    browser
        .click(&format!("{delivery} [data-testid=attempts-toggle]"))
        .await;
    let attempts = format!("{row} + tr [data-testid=attempt-row]");
    let first = browser
        .wait_for(&attempts, "the failed attempt", |t| t.len() == 1)
        .await;
    assert!(first[0].contains("500"), "{first:?}");
    assert!(first[0].contains("receiver answered 500"), "{first:?}");

    // The receiver recovers; Retry sends the delivery again and it succeeds.
    answer.store(200, Ordering::SeqCst);
    browser
        .click(&format!("{delivery} [data-testid=retry-delivery]"))
        .await;
    browser
        .wait_for(
            &format!("{delivery} [data-testid=delivery-status]"),
            "the delivered delivery",
            |t| t == ["succeeded"],
        )
        .await;
    let statuses = browser
        .wait_for(
            &format!("{row} + tr [data-testid=attempt-status]"),
            "both attempts",
            |t| t.len() == 2,
        )
        .await;
    assert_eq!(statuses, ["500", "200"]);
    browser
        .wait_for("[data-testid=status]", "the confirmation", |t| {
            t.iter().any(|t| t.contains("succeeded (HTTP 200)"))
        })
        .await;
    browser.screenshot(&artifact("dashboard.png")).await;

    // The endpoints' health took both attempts in.
    browser.click("[data-testid=nav-endpoints]").await;
    let health = browser
        .wait_for(
            &format!("[data-endpoint-id=\"{billing}\"] [data-testid=endpoint-health]"),
            "the billing endpoint's health",
            |t| t.len() == 1 && t[0].contains('%'),
        )
        .await;
    assert!(health[0].contains("attempts"), "{health:?}");

    // Replay the last hour to the billing endpoint, then fire a test event at the Bud one.
    let billing_row = format!("[data-endpoint-id=\"{billing}\"]");
    browser
        .click(&format!("{billing_row} [data-testid=replay-toggle]"))
        .await;
    browser
        .click(&format!("{billing_row} + tr [data-testid=replay]"))
        .await;
    let said = browser
        .wait_for("[data-testid=status]", "the replay queued", |t| {
            t.iter().any(|t| t.contains("Replay queued"))
        })
        .await;
    assert!(!said[0].contains(": 0 deliveries"), "{said:?}");
    browser
        .click(&format!(
            "[data-endpoint-id=\"{bud}\"] [data-testid=send-test]"
        ))
        .await;
    browser
        .wait_for("[data-testid=status]", "the test sent", |t| {
            t.iter().any(|t| t.contains("Test event"))
        })
        .await;
    browser
        .screenshot(&artifact("dashboard-endpoints.png"))
        .await;

    browser.click("[data-testid=nav-tasks]").await;
    browser
        .wait_for("[data-testid=subtask-status]", "two banks refreshed", |t| {
            t == ["Completed", "Completed"]
        })
        .await;
    browser.screenshot(&artifact("dashboard-tasks.png")).await;

    browser.click("[data-testid=nav-consents]").await;
    browser
        .wait_for("[data-testid=consent-status]", "two consents", |t| {
            t == ["authorised", "authorised"]
        })
        .await;
    let expiries = browser.texts("[data-testid=consent-expiry]").await;
    assert_eq!(expiries, ["in 90 days", "in 5 days"]);
    browser
        .screenshot(&artifact("dashboard-consents.png"))
        .await;

    browser.click("[data-testid=sign-out]").await;
    browser
        .wait_for(
            "#signin:not([hidden]) [data-testid=api-key]",
            "the sign-in form again",
            |t| t.len() == 1,
        )
        .await;
    eprintln!("screenshots in {}", artifact("").display());
    drop(browser);
    app.stop().await;
}

/// The dashboard is served by freshet itself, locked down by its Content-Security-Policy.
#[tokio::test]
async fn the_dashboard_is_served_with_a_strict_policy() {
    let Some(app) = TestApp::spawn(Backend::Sqlite, |_| {}).await else {
        return;
    };
    for (path, kind, marker) in [
        ("/dashboard", "text/html", "data-testid=\"api-key\""),
        ("/dashboard/app.js", "text/javascript", "sessionStorage"),
        ("/dashboard/app.css", "text/css", ":focus-visible"),
    ] {
        let res = app.http.get(app.url(path)).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{path}");
        let header = |name: &str| {
            res.headers()
                .get(name)
                .map(|v| v.to_str().unwrap().to_string())
                .unwrap_or_default()
        };
        assert!(header("content-type").starts_with(kind), "{path}");
        let csp = header("content-security-policy");
        assert!(csp.contains("default-src 'self'"), "{path}: {csp}");
        assert!(csp.contains("script-src 'self'"), "{path}: {csp}");
        assert!(!csp.contains("unsafe-inline"), "{path}: {csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert_eq!(header("x-content-type-options"), "nosniff");
        let body = res.text().await.unwrap();
        assert!(body.contains(marker), "{path}");
    }
    let page = app.http.get(app.url("/dashboard")).send().await.unwrap();
    let page = page.text().await.unwrap();
    assert!(
        page.contains("<option>endpoint.test</option>"),
        "event types fill the filter"
    );
    let (s, p) = app
        .call(Method::GET, "/dashboard/secrets.txt", None, None)
        .await;
    assert_problem(s, &p, StatusCode::NOT_FOUND, None);
    app.stop().await;
}
