//! Erasure as a client sees it: `DELETE /v1/customers/{id}` on a customer with consents at two
//! banks, a refresh behind them and deliveries waiting for a receiver that is down.

use std::time::Duration;

use freshet_engine::testing::{Answer, Receiver};
use freshet_store::testing::Backend;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::{
    refresh::{Client, quiet},
    support::{TestApp, run_with},
};

/// Every personal value the customer and their links carry; none may survive the erasure.
const SECRETS: [&str; 6] = [
    "erase-ext-7781",
    "erase-login-fri21",
    "25872252137",
    "11222333000181",
    "erase-info-5521",
    "erase-track-0042",
];

/// The Berlin Group banks of the sandbox: their consent status says who ended a consent.
const BANKS: [&str; 2] = ["tatrabanka", "slsp"];

async fn bank_status(app: &TestApp, bank: &str, bank_consent_id: &str) -> String {
    let r = app
        .http
        .get(app.url(&format!(
            "/sandbox/{bank}/v1/consents/{bank_consent_id}/status"
        )))
        .header("x-request-id", uuid::Uuid::now_v7().to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    body["consentStatus"].as_str().unwrap().to_string()
}

fn event_type(body: &[u8]) -> String {
    let v: Value = serde_json::from_slice(body).unwrap();
    v["type"].as_str().unwrap_or_default().to_string()
}

async fn erasure(app: TestApp) {
    let c = Client {
        app: &app,
        key: app.new_application("erasure").await,
    };
    // The receiver is down: every attempt gets a 503, and a retry follows every 2 s.
    let hooks = Receiver::start(vec![Answer::Status(503)]).await;
    let (s, endpoint) = c
        .call(
            Method::POST,
            "/v1/webhook-endpoints",
            Some(json!({"url": hooks.url(), "retry_schedule": vec![2; 20]})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{endpoint}");

    let customer = app
        .new_customer(
            &c.key,
            json!({
                "external_id": SECRETS[0],
                "login_name": SECRETS[1],
                "personal_tax_id": SECRETS[2],
                "business_tax_id": SECRETS[3],
                "external_info": {"crm": SECRETS[4]},
            }),
        )
        .await;
    let cid = customer["id"].as_str().unwrap().to_string();
    let mut consents = Vec::new();
    for bank in BANKS {
        let consent = c
            .connect(&cid, bank, json!({"external_track_id": SECRETS[5]}))
            .await;
        consents.push(consent);
    }
    let (s, started) = c
        .call(Method::POST, &format!("/v1/customers/{cid}/refresh"), None)
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{started}");
    let task = c.finished(started["task_id"].as_str().unwrap()).await;
    assert_eq!(task["status"], "Completed", "{task}");

    let (s, accounts) = c
        .call(Method::GET, &format!("/v1/customers/{cid}/accounts"), None)
        .await;
    assert_eq!(s, StatusCode::OK, "{accounts}");
    let accounts: Vec<String> = accounts["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap().to_string())
        .collect();
    assert!(!accounts.is_empty());
    let mut transactions = 0;
    for a in &accounts {
        let (s, page) = c
            .call(
                Method::GET,
                &format!("/v1/accounts/{a}/transactions?limit=500"),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{page}");
        assert!(page["next_cursor"].is_null(), "one page holds them all");
        transactions += page["data"].as_array().unwrap().len();
    }
    assert!(transactions > 0);

    // The customer's events hold their personal fields, and their deliveries wait.
    let before = c.events("").await;
    let theirs: Vec<&Value> = before
        .iter()
        .filter(|e| e["data"]["customer"]["id"] == cid.as_str())
        .collect();
    assert!(theirs.len() >= 6, "{before:?}");
    assert!(serde_json::to_string(&theirs).unwrap().contains(SECRETS[4]));
    let first = theirs[0]["id"].as_str().unwrap();
    let (_, deliveries) = c
        .call(Method::GET, &format!("/v1/events/{first}/deliveries"), None)
        .await;
    assert_ne!(deliveries["data"][0]["status"], "succeeded", "{deliveries}");

    let (s, erased) = c
        .call(Method::DELETE, &format!("/v1/customers/{cid}"), None)
        .await;
    assert_eq!(s, StatusCode::OK, "{erased}");
    assert_eq!(erased["customer_id"], cid.as_str());
    let removed = &erased["removed"];
    assert_eq!(removed["consents"], 2, "{erased}");
    assert_eq!(removed["links"], 2, "{erased}");
    assert_eq!(removed["consents_revoked_at_bank"], 2, "{erased}");
    assert_eq!(removed["bank_revocations_failed"], 0, "{erased}");
    assert!(removed["tokens"].as_u64().unwrap() >= 2, "{erased}");
    assert_eq!(removed["accounts"], accounts.len(), "{erased}");
    assert_eq!(removed["transactions"], transactions, "{erased}");
    assert_eq!(removed["refresh_tasks"], 1, "{erased}");
    assert_eq!(removed["events_scrubbed"], theirs.len(), "{erased}");
    assert!(
        removed["deliveries_cancelled"].as_u64().unwrap() >= 1,
        "{erased}"
    );
    // Once the answer is in, nothing more about the customer leaves: what the receiver got
    // from here on is only ever `customer.erased`.
    let seen_before = hooks.count();

    // Gone, as if it had never existed.
    for path in [
        format!("/v1/customers/{cid}"),
        format!("/v1/customers/{cid}/accounts"),
        format!("/v1/consents/{}", consents[0]["id"].as_str().unwrap()),
        format!("/v1/consents/{}", consents[1]["id"].as_str().unwrap()),
        format!("/v1/accounts/{}/transactions", accounts[0]),
    ] {
        let (s, body) = c.call(Method::GET, &path, None).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{path}: {body}");
    }
    let (s, _) = c
        .call(Method::DELETE, &format!("/v1/customers/{cid}"), None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // The banks were told.
    for (bank, consent) in BANKS.iter().zip(&consents) {
        let at_bank = consent["bank_consent_id"].as_str().unwrap();
        assert_eq!(bank_status(&app, bank, at_bank).await, "terminatedByTpp");
    }

    // The log keeps every event, with no personal field left in any payload.
    let after = c.events("").await;
    let ids = |list: &[Value]| -> Vec<String> {
        list.iter()
            .map(|e| e["id"].as_str().unwrap().to_string())
            .collect()
    };
    let kept: Vec<String> = ids(&after)
        .into_iter()
        .filter(|id| ids(&before).contains(id))
        .collect();
    assert_eq!(kept, ids(&before));
    let erased_events = c.events("customer.erased").await;
    assert_eq!(erased_events.len(), 1);
    assert_eq!(erased_events[0]["data"]["removed"], *removed);
    let stored = app
        .db
        .store
        .stored_event_payloads()
        .await
        .unwrap()
        .join("\n");
    assert!(stored.contains(&cid), "the customer's id stays in the log");
    for secret in SECRETS {
        assert!(
            !stored.contains(secret),
            "{secret} survived in a stored payload"
        );
        assert!(
            !serde_json::to_string(&after).unwrap().contains(secret),
            "{secret} survived in GET /v1/events"
        );
    }
    let (_, deliveries) = c
        .call(Method::GET, &format!("/v1/events/{first}/deliveries"), None)
        .await;
    let delivery = &deliveries["data"][0];
    assert_eq!(delivery["status"], "cancelled", "{deliveries}");
    let (s, refused) = c
        .call(
            Method::POST,
            &format!("/v1/deliveries/{}/retry", delivery["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{refused}");

    // The receiver comes back: `customer.erased` arrives, and nothing of what was pending.
    hooks.answer_next(vec![Answer::Status(204)]);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let announced = loop {
        let got = hooks.received();
        if let Some(r) = got[seen_before..]
            .iter()
            .find(|r| event_type(&r.body) == "customer.erased")
        {
            break r.body.clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "customer.erased never arrived"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let announced: Value = serde_json::from_slice(&announced).unwrap();
    assert_eq!(announced["data"]["customer_id"], cid.as_str());
    for secret in SECRETS {
        assert!(!announced.to_string().contains(secret));
    }
    // Longer than two turns of the endpoint's retry schedule.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let late: Vec<String> = hooks.received()[seen_before..]
        .iter()
        .map(|r| event_type(&r.body))
        .collect();
    assert!(
        !late.is_empty() && late.iter().all(|t| t == "customer.erased"),
        "sent after the erasure: {late:?}"
    );
    app.stop().await;
}

#[tokio::test]
async fn erasure_sqlite() {
    run_with(Backend::Sqlite, quiet, erasure).await;
}

#[tokio::test]
async fn erasure_postgres() {
    run_with(Backend::Postgres, quiet, erasure).await;
}
