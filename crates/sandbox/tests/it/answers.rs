//! What a bank tells the TPP of its own accord: the permissions it actually granted, and
//! notifications of new transactions at the URI the TPP gave.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{Json, Router, extract::State, routing::post};
use freshet_sandbox::SandboxConfig;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::{Bank, expiry};

async fn json_of(r: reqwest::Response) -> Value {
    r.json().await.unwrap()
}

/// The Brasil bank has accounts and no cards: a consent asking for card data too is granted
/// without it, and the consent's answer lists what was granted, not what was asked.
#[tokio::test]
async fn the_brasil_bank_grants_only_what_it_offers() {
    let b = Bank::start(SandboxConfig::default()).await;
    let asked = [
        "ACCOUNTS_READ",
        "ACCOUNTS_BALANCES_READ",
        "ACCOUNTS_TRANSACTIONS_READ",
        "RESOURCES_READ",
        "CUSTOMERS_PERSONAL_IDENTIFICATIONS_READ",
        "CREDIT_CARDS_ACCOUNTS_READ",
        "CREDIT_CARDS_ACCOUNTS_TRANSACTIONS_READ",
    ];
    let created = b
        .call(
            Method::POST,
            "santander-br",
            "/open-banking/consents/v2/consents",
            None,
            None,
        )
        .json(&json!({"data": {
            "loggedUser": {"document": {"identification": "76109277673", "rel": "CPF"}},
            "permissions": asked,
            "expirationDateTime": expiry(),
        }}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let created = json_of(created).await;
    assert_eq!(
        created["data"]["permissions"],
        json!(asked),
        "as asked, until decided"
    );
    let id = created["data"]["consentId"].as_str().unwrap().to_string();
    b.approve("santander-br", &id, None).await;
    let read = b
        .call(
            Method::GET,
            "santander-br",
            &format!("/open-banking/consents/v2/consents/{id}"),
            None,
            None,
        )
        .send()
        .await
        .unwrap();
    let read = json_of(read).await;
    assert_eq!(read["data"]["status"], "AUTHORISED");
    assert_eq!(read["data"]["permissions"], json!(asked[..5]), "no cards");
}

type Got = Arc<Mutex<Vec<Value>>>;

/// A TPP's notification endpoint on loopback: what it was sent.
async fn tpp() -> (String, Got) {
    async fn take(State(got): State<Got>, Json(body): Json<Value>) -> StatusCode {
        got.lock().unwrap().push(body);
        StatusCode::ACCEPTED
    }
    let got: Got = Arc::default();
    let app = Router::new()
        .route("/notify", post(take))
        .with_state(got.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/notify"), got)
}

async fn notifications(got: &Got, n: usize) -> Vec<Value> {
    for _ in 0..100 {
        if got.lock().unwrap().len() >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    got.lock().unwrap().clone()
}

/// A Berlin Group consent created with a `TPP-Notification-URI` has the bank post there when
/// new transactions reach its accounts, naming the consent and the accounts; one without is
/// not notified. The notified consent's next call to each endpoint is on the bank: it does
/// not count against the unattended budget.
#[tokio::test]
async fn new_transactions_are_notified_and_the_calls_they_prompt_are_free() {
    let b = Bank::start(SandboxConfig {
        unattended_per_day: 1,
        ..SandboxConfig::default()
    })
    .await;
    let (uri, got) = tpp().await;
    let notified = b
        .open_with(
            "tatrabanka",
            Some("alice"),
            &[("TPP-Notification-URI", uri.as_str())],
        )
        .await;
    let silent = b.open("tatrabanka", Some("bob")).await;
    assert_eq!(
        b.get("tatrabanka", "/v1/accounts", &notified)
            .await
            .status(),
        200
    );
    assert_eq!(
        b.get("tatrabanka", "/v1/accounts", &notified)
            .await
            .status(),
        429,
        "the day's budget is spent"
    );

    let added = b
        .control(
            Method::POST,
            "/control/transactions",
            Some(json!({"provider_id": "tatrabanka", "count": 1})),
        )
        .await;
    assert_eq!(added.status(), StatusCode::CREATED);
    let added = json_of(added).await;
    assert_eq!(added["notified"], 1, "{added}");
    let sent = notifications(&got, 1).await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0]["consentId"], notified.consent_id.as_str());
    let accounts = json_of(b.get("tatrabanka", "/v1/accounts", &silent).await).await;
    let theirs: Vec<&Value> = accounts["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| &a["resourceId"])
        .collect();
    let notified_of = sent[0]["accountIds"].as_array().unwrap();
    assert!(!notified_of.is_empty());
    assert!(
        notified_of.iter().all(|a| !theirs.contains(&a)),
        "only the notified consent's accounts: {sent:?}"
    );

    assert_eq!(
        b.get("tatrabanka", "/v1/accounts", &notified)
            .await
            .status(),
        200,
        "the call the notification prompted is on the bank"
    );
    assert_eq!(
        b.get("tatrabanka", "/v1/accounts", &notified)
            .await
            .status(),
        429,
        "once per endpoint"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        got.lock().unwrap().len(),
        1,
        "bob asked for no notifications"
    );
}
