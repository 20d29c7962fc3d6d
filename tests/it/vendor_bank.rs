//! Vendor dialects whose words come from the bank itself: Klavi's `permissionsGranted` is what
//! the bank's consent answer grants, and Tatra banka's transactionEvent follows the bank's own
//! notification of a new transaction. Every test here looks only at what receivers got.

use std::time::Duration;

use freshet_dialects::klavi::verify_klavi;
use freshet_engine::testing::{Answer, Received, Receiver};
use freshet_store::testing::Backend;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::{
    refresh::{Client, quiet},
    support::{TestApp, run_with},
};

const WAIT: Duration = Duration::from_secs(20);

fn body(g: &Received) -> Value {
    serde_json::from_slice(&g.body).unwrap()
}

async fn endpoint(c: &Client<'_>, body: Value) -> Value {
    let (s, e) = c
        .call(Method::POST, "/v1/webhook-endpoints", Some(body))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{e}");
    e
}

/// The Klavi event named `name` among what `r` got, once it arrived, its signature checked
/// under each of `secrets`: its `payload.consents`, and its `X-Klavi-Signature`.
async fn klavi_event(r: &Receiver, secrets: &[&str], name: &str) -> (Value, String) {
    for _ in 0..200 {
        let found = r.received().into_iter().find_map(|g| {
            let b = body(&g);
            (b[0]["eventName"] == name).then_some((g, b))
        });
        if let Some((g, b)) = found {
            let sig = g.headers["x-klavi-signature"].to_str().unwrap();
            for secret in secrets {
                assert!(verify_klavi(secret, sig, &g.body), "{name}: signature");
            }
            return (b[0]["payload"]["consents"].clone(), sig.to_string());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no {name} arrived");
}

/// A customer asks santander-br for card data too; the bank grants only the groups it offers
/// (it has no cards), and `consent_authorised` says so: `permissionsGranted` a strict subset
/// of `permissionsApply`. A revoked consent keeps saying what it had granted (Klavi's own
/// example); an expired one grants nothing. After a secret rotation `X-Klavi-Signature`
/// carries a signature per active secret, and either secret verifies it.
#[tokio::test]
async fn klavi_permissions_are_what_the_bank_granted() {
    run_with(
        Backend::Sqlite,
        |c| c.refresh_tick = Duration::from_millis(500),
        |app| async move {
            check_klavi_permissions(&app).await;
            app.stop().await;
        },
    )
    .await;
}

async fn check_klavi_permissions(app: &TestApp) {
    let c = Client {
        app,
        key: app.new_application("klavi-permissions").await,
    };
    let r = Receiver::start(vec![Answer::Status(200)]).await;
    let e = endpoint(
        &c,
        json!({"url": r.url(), "dialect": "klavi",
               "event_types": ["consent.authorised", "consent.revoked", "consent.expired"]}),
    )
    .await;
    let secret = e["secret"].as_str().unwrap().to_string();
    let customer = app
        .new_customer(&c.key, json!({"personal_tax_id": "25872252137"}))
        .await;
    let cid = customer["id"].as_str().unwrap();
    let asked = json!({"permissions": ["registration_all", "accounts_all", "credit_cards_all"]});
    let consent = c.connect(cid, "santander-br", asked).await;
    assert_eq!(
        consent["permissions_granted"],
        json!(["registration_all", "accounts_all"]),
        "{consent}"
    );

    let (authorised, sig) = klavi_event(&r, &[&secret], "consent_authorised").await;
    assert_eq!(sig.split(' ').count(), 1, "one secret, one signature");
    assert_eq!(
        authorised["permissionsApply"],
        json!(["REGISTRATION_ALL", "ACCOUNTS_ALL", "CREDIT_CARDS_ALL"])
    );
    assert_eq!(
        authorised["permissionsGranted"],
        json!(["REGISTRATION_ALL", "ACCOUNTS_ALL"]),
        "the bank has no cards"
    );

    // A rotation: until the overlap ends both secrets sign, either verifies.
    let path = format!(
        "/v1/webhook-endpoints/{}/rotate-secret",
        e["id"].as_str().unwrap()
    );
    let (s, rotated) = c.call(Method::POST, &path, None).await;
    assert_eq!(s, StatusCode::OK, "{rotated}");
    let new_secret = rotated["secret"].as_str().unwrap().to_string();
    assert_ne!(new_secret, secret);

    let id = consent["id"].as_str().unwrap();
    let (s, revoked) = c
        .call(Method::DELETE, &format!("/v1/consents/{id}"), None)
        .await;
    assert_eq!(s, StatusCode::OK, "{revoked}");
    let (revoked, sig) = klavi_event(&r, &[&new_secret, &secret], "consent_revoked").await;
    assert_eq!(
        sig.split(' ').count(),
        2,
        "one signature per active secret: {sig}"
    );
    assert_eq!(revoked["permissionsApply"], authorised["permissionsApply"]);
    assert_eq!(
        revoked["permissionsGranted"],
        authorised["permissionsGranted"]
    );

    // A consent that expires a few seconds after it is granted.
    let soon = freshet_model::time::now() + time::Duration::seconds(4);
    let soon = soon
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let short = c
        .connect(
            cid,
            "santander-br",
            json!({"permissions": ["accounts_all"], "expires_at": soon}),
        )
        .await;
    assert_eq!(short["permissions_granted"], json!(["accounts_all"]));
    let (expired, _) = klavi_event(&r, &[&new_secret, &secret], "consent_expired").await;
    assert_eq!(expired["consentId"], short["id"]);
    assert_eq!(expired["permissionsApply"], json!(["ACCOUNTS_ALL"]));
    assert_eq!(expired["permissionsGranted"], json!([]));
}

/// Tatra banka's bank tells freshet of a new transaction and the transactionEvent follows
/// within seconds, with no refresh asked for: the notification refreshes the consent at once
/// (trigger `bank_notification`), and only the transactionEvent reaches an endpoint that did
/// not opt in to unrequested refreshes.
#[tokio::test]
async fn tatra_transaction_events_follow_the_banks_notification() {
    run_with(Backend::Sqlite, quiet, |app| async move {
        check_tatra_push(&app).await;
        app.stop().await;
    })
    .await;
}

async fn check_tatra_push(app: &TestApp) {
    let c = Client {
        app,
        key: app.new_application("tatra-push").await,
    };
    let r = Receiver::start(vec![Answer::Status(200)]).await;
    endpoint(
        &c,
        json!({"url": r.url(), "dialect": "tatra", "activation": "immediate"}),
    )
    .await;
    let (_, consent) = c.new_consent("tatrabanka").await;
    let (s, started) = c
        .call(
            Method::PUT,
            &format!("/v1/consents/{consent}/refresh"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{started}");
    c.finished(started["refresh_task_id"].as_str().unwrap())
        .await;
    // What the asked-for refresh sent: its accountEvent, and a transactionEvent for the
    // history it imported.
    let before = 1 + c.events("transactions.new").await.len();
    r.wait_for(before, WAIT).await;
    let tasks_before = c.events("refresh.completed").await.len();

    let added = c
        .app
        .http
        .post(app.url("/sandbox/control/transactions"))
        .json(&json!({"provider_id": "tatrabanka", "count": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(added.status(), StatusCode::CREATED);
    let added: Value = added.json().await.unwrap();
    assert_eq!(added["notified"], 1, "{added}");
    let at = std::time::Instant::now();
    r.wait_for(before + 1, Duration::from_secs(5)).await;
    let within = at.elapsed();
    let got = body(&r.received()[before]);
    assert_eq!(got["eventType"], "NEW", "a transactionEvent: {got}");
    assert_eq!(got["consentId"], consent.as_str());
    assert!(got.get("taskId").is_none(), "{got}");
    assert!(within < Duration::from_secs(5), "{within:?}");

    // The refresh the notification started, and nothing else reached the endpoint.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        r.count(),
        before + 1,
        "no accountEvent for a refresh nobody asked for"
    );
    let completed = c.events("refresh.completed").await;
    assert_eq!(completed.len(), tasks_before + 1);
    let task = completed.last().unwrap()["data"]["task_id"]
        .as_str()
        .unwrap();
    let (_, t) = c
        .call(Method::GET, &format!("/v1/refresh-tasks/{task}"), None)
        .await;
    assert_eq!(t["trigger"], "bank_notification", "{t}");
    assert_eq!(t["status"], "Completed", "{t}");
    // The client's refresh spent one of the consent's four unattended refreshes; the bank's
    // notification none.
    let metrics = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let left = metrics
        .lines()
        .find_map(|l| l.strip_prefix("freshet_unattended_budget_left{provider=\"tatrabanka\"} "))
        .unwrap_or_else(|| panic!("no tatrabanka budget in {metrics}"));
    assert_eq!(left.trim().parse::<f64>().unwrap(), 3.0, "{metrics}");

    // Only an authorised consent of a provider with push is refreshed by a notification.
    for (path, consent_id, want) in [
        ("tatrabanka", "no-such-consent", StatusCode::NOT_FOUND),
        ("slsp", "no-such-consent", StatusCode::NOT_FOUND),
        ("natwest", "no-such-consent", StatusCode::NOT_FOUND),
    ] {
        let res = app
            .http
            .post(app.url(&format!("/v1/banks/{path}/notifications")))
            .json(&json!({"consentId": consent_id}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), want, "{path}");
        assert_eq!(
            res.headers()["content-type"],
            "application/problem+json",
            "{path}"
        );
    }
}
