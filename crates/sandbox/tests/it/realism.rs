//! The misbehaviour of real banks that the sandbox reproduces on purpose (standards.md), its
//! determinism, the authorisation page and the control API.

use std::collections::HashMap;

use freshet_sandbox::SandboxConfig;
use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::{Bank, REDIRECT};

fn config() -> SandboxConfig {
    SandboxConfig {
        page_size: 20,
        ..Default::default()
    }
}

async fn json_of(r: reqwest::Response) -> Value {
    r.json().await.unwrap()
}

#[tokio::test]
async fn the_same_seed_gives_the_same_accounts_and_history() {
    let mut histories = Vec::new();
    for seed in [42, 42, 43] {
        let b = Bank::start(SandboxConfig { seed, ..config() }).await;
        let opened = b.open("natwest", Some("alice")).await;
        let accounts = json_of(b.get("natwest", "/accounts", &opened).await).await;
        let id = accounts["Data"]["Account"][0]["AccountId"]
            .as_str()
            .unwrap()
            .to_string();
        let mut rows = Vec::new();
        let mut next = Some(format!("/accounts/{id}/transactions"));
        while let Some(url) = next.take() {
            let page = json_of(b.get("natwest", &url, &opened).await).await;
            rows.extend(
                page["Data"]["Transaction"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .cloned(),
            );
            next = page["Links"]["Next"].as_str().map(str::to_string);
        }
        histories.push((accounts["Data"].clone(), rows));
    }
    assert_eq!(
        histories[0], histories[1],
        "same seed, same customer: same data"
    );
    assert_ne!(
        histories[0].0, histories[2].0,
        "another seed: other accounts"
    );
    assert!(histories[0].1.len() > 30, "90 days of history");
}

#[tokio::test]
async fn unattended_calls_are_budgeted_per_consent_day_and_endpoint() {
    let b = Bank::start(SandboxConfig {
        unattended_per_day: 2,
        ..config()
    })
    .await;
    let opened = b.open("natwest", None).await;
    for _ in 0..2 {
        assert_eq!(b.get("natwest", "/accounts", &opened).await.status(), 200);
    }
    let over = b.get("natwest", "/accounts", &opened).await;
    assert_eq!(over.status(), 429);
    let retry: u64 = over.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=86_400).contains(&retry), "until the day ends: {retry}");
    let present = b
        .call(
            Method::GET,
            "natwest",
            "/accounts",
            Some(&opened.token),
            None,
        )
        .header("x-fapi-customer-ip-address", "203.0.113.9")
        .send()
        .await
        .unwrap();
    assert_eq!(
        present.status(),
        200,
        "calls with the customer present are exempt"
    );
    let accounts = json_of(present).await;
    let id = accounts["Data"]["Account"][0]["AccountId"]
        .as_str()
        .unwrap();
    assert_eq!(
        b.get("natwest", &format!("/accounts/{id}/balances"), &opened)
            .await
            .status(),
        200,
        "each endpoint has its own budget"
    );
    let first = json_of(
        b.get("natwest", &format!("/accounts/{id}/transactions"), &opened)
            .await,
    )
    .await;
    let next = first["Links"]["Next"].as_str().unwrap().to_string();
    for _ in 0..4 {
        assert_eq!(
            b.get("natwest", &next, &opened).await.status(),
            200,
            "follow-up pages are exempt"
        );
    }
    let other = b.open("natwest", None).await;
    assert_eq!(
        b.get("natwest", "/accounts", &other).await.status(),
        200,
        "each consent has its own budget"
    );

    let bg = b.open("slsp", None).await;
    for _ in 0..2 {
        b.get("slsp", "/v1/accounts", &bg).await;
    }
    let over = b.get("slsp", "/v1/accounts", &bg).await;
    assert_eq!(over.status(), 429);
    assert!(!over.headers().contains_key("retry-after"));
    assert_eq!(
        json_of(over).await["tppMessages"][0]["code"],
        "ACCESS_EXCEEDED"
    );
}

#[tokio::test]
async fn obie_consents_stay_authorised_when_revoked_or_expired_and_data_calls_answer_401() {
    let b = Bank::start(config()).await;
    for action in ["expire", "revoke"] {
        let opened = b.open("lloyds", None).await;
        assert_eq!(b.get("lloyds", "/accounts", &opened).await.status(), 200);
        let r = b
            .control(
                Method::POST,
                &format!("/control/consents/{}/{action}", opened.consent_id),
                None,
            )
            .await;
        assert_eq!(r.status(), 200);
        let data = b.get("lloyds", "/accounts", &opened).await;
        assert_eq!(data.status(), 401, "{action}");
        assert!(data.text().await.unwrap().is_empty());
        let consent = b
            .call(
                Method::GET,
                "lloyds",
                &format!("/account-access-consents/{}", opened.consent_id),
                None,
                None,
            )
            .send()
            .await
            .unwrap();
        assert_eq!(
            json_of(consent).await["Data"]["Status"],
            "Authorised",
            "{action} leaves the status as it was"
        );
    }
}

#[tokio::test]
async fn each_standard_reports_expiry_and_revocation_its_own_way() {
    let b = Bank::start(config()).await;
    let expired = b.open("tatrabanka", None).await;
    b.control(
        Method::POST,
        &format!("/control/consents/{}/expire", expired.consent_id),
        None,
    )
    .await;
    let r = b.get("tatrabanka", "/v1/accounts", &expired).await;
    assert_eq!(r.status(), 401);
    assert_eq!(
        json_of(r).await["tppMessages"][0]["code"],
        "CONSENT_EXPIRED"
    );
    let revoked = b.open("tatrabanka", None).await;
    b.control(
        Method::POST,
        &format!("/control/consents/{}/revoke", revoked.consent_id),
        None,
    )
    .await;
    let r = b.get("tatrabanka", "/v1/accounts", &revoked).await;
    assert_eq!(
        json_of(r).await["tppMessages"][0]["code"],
        "CONSENT_INVALID"
    );
    let status = b
        .call(
            Method::GET,
            "tatrabanka",
            &format!("/v1/consents/{}/status", revoked.consent_id),
            None,
            None,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(json_of(status).await["consentStatus"], "revokedByPsu");

    let br = b.open("santander-br", None).await;
    b.control(
        Method::POST,
        &format!("/control/consents/{}/expire", br.consent_id),
        None,
    )
    .await;
    let r = b
        .get("santander-br", "/open-banking/accounts/v2/accounts", &br)
        .await;
    assert_eq!(r.status(), 401);
    let consent = b
        .call(
            Method::GET,
            "santander-br",
            &format!("/open-banking/consents/v2/consents/{}", br.consent_id),
            None,
            None,
        )
        .send()
        .await
        .unwrap();
    let consent = json_of(consent).await;
    assert_eq!(consent["data"]["status"], "REJECTED");
    assert_eq!(
        consent["data"]["rejection"]["reason"]["code"],
        "CONSENT_MAX_DATE_REACHED"
    );
}

#[tokio::test]
async fn berlin_group_ends_the_older_recurring_consent_of_the_same_customer() {
    let b = Bank::start(config()).await;
    let older = b.open("tatrabanka", Some("jana")).await;
    let other_customer = b.open("tatrabanka", Some("peter")).await;
    let newer = b.open("tatrabanka", Some("jana")).await;
    let status = |id: String| {
        let req = b.call(
            Method::GET,
            "tatrabanka",
            &format!("/v1/consents/{id}/status"),
            None,
            None,
        );
        async move { json_of(req.send().await.unwrap()).await["consentStatus"].clone() }
    };
    assert_eq!(status(older.consent_id.clone()).await, "expired");
    assert_eq!(status(newer.consent_id.clone()).await, "valid");
    assert_eq!(status(other_customer.consent_id.clone()).await, "valid");
    let r = b.get("tatrabanka", "/v1/accounts", &older).await;
    assert_eq!(
        json_of(r).await["tppMessages"][0]["code"],
        "CONSENT_EXPIRED"
    );
    assert_eq!(
        b.get("tatrabanka", "/v1/accounts", &newer).await.status(),
        200
    );
}

async fn all_obie_rows(b: &Bank, opened: &crate::harness::Opened, account: &str) -> Vec<Value> {
    let mut rows = Vec::new();
    let mut next = Some(format!("/accounts/{account}/transactions"));
    while let Some(url) = next.take() {
        let page = json_of(b.get("natwest", &url, opened).await).await;
        rows.extend(
            page["Data"]["Transaction"]
                .as_array()
                .unwrap()
                .iter()
                .cloned(),
        );
        next = page["Links"]["Next"].as_str().map(str::to_string);
    }
    rows
}

#[tokio::test]
async fn pending_items_are_booked_and_some_change_their_id() {
    let b = Bank::start(config()).await;
    let opened = b.open("natwest", None).await;
    let added = b
        .control(
            Method::POST,
            "/control/transactions",
            Some(json!({"provider_id": "natwest", "count": 8, "status": "pending"})),
        )
        .await;
    assert_eq!(added.status(), 201);
    let accounts = json_of(added).await["account_ids"].clone();
    let account = accounts[0].as_str().unwrap();
    let before = all_obie_rows(&b, &opened, account).await;
    // Rows repeat across pages; the ids tell.
    let mut pending: Vec<&Value> = before
        .iter()
        .filter(|t| t["Status"] == "Pending" && t["TransactionId"].as_str().unwrap().ends_with('N'))
        .collect();
    pending.dedup_by_key(|t| t["TransactionId"].clone());
    assert_eq!(pending.len(), 8);
    assert!(
        pending
            .iter()
            .all(|t| t["TransactionMutability"] == "Mutable")
    );
    let booked = json_of(
        b.control(
            Method::POST,
            "/control/transactions/book",
            Some(json!({"provider_id": "natwest"})),
        )
        .await,
    )
    .await;
    assert!(booked["booked"].as_u64().unwrap() >= 8);
    let after = all_obie_rows(&b, &opened, account).await;
    let after_ids: HashMap<&str, &Value> = after
        .iter()
        .map(|t| (t["TransactionId"].as_str().unwrap(), t))
        .collect();
    let kept = pending
        .iter()
        .filter(|p| {
            after_ids
                .get(p["TransactionId"].as_str().unwrap())
                .is_some_and(|t| t["Status"] == "Booked")
        })
        .count();
    assert_eq!(kept, 6, "two of eight are booked under a new id");
    let renumbered = after
        .iter()
        .filter(|t| t["TransactionId"].as_str().unwrap().ends_with("NB"))
        .count();
    assert_eq!(renumbered, 2);
}

#[tokio::test]
async fn rows_repeat_across_page_boundaries() {
    let b = Bank::start(config()).await;
    let opened = b.open("natwest", Some("alice")).await;
    let accounts = json_of(b.get("natwest", "/accounts", &opened).await).await;
    let id = accounts["Data"]["Account"][0]["AccountId"]
        .as_str()
        .unwrap();
    let first = json_of(
        b.get("natwest", &format!("/accounts/{id}/transactions"), &opened)
            .await,
    )
    .await;
    let second = json_of(
        b.get("natwest", first["Links"]["Next"].as_str().unwrap(), &opened)
            .await,
    )
    .await;
    let last = first["Data"]["Transaction"]
        .as_array()
        .unwrap()
        .last()
        .unwrap();
    assert_eq!(&second["Data"]["Transaction"][0], last);
}

#[tokio::test]
async fn berlin_group_ids_collide_and_booking_dates_shift_between_fetches() {
    let b = Bank::start(SandboxConfig {
        page_size: 1000,
        ..config()
    })
    .await;
    let opened = b.open("tatrabanka", Some("jana")).await;
    let accounts = json_of(b.get("tatrabanka", "/v1/accounts", &opened).await).await;
    let mut fetches = Vec::new();
    for _ in 0..2 {
        let mut by_id: HashMap<String, Vec<Value>> = HashMap::new();
        for a in accounts["accounts"].as_array().unwrap() {
            let id = a["resourceId"].as_str().unwrap();
            let page = json_of(
                b.get(
                    "tatrabanka",
                    &format!("/v1/accounts/{id}/transactions?bookingStatus=booked"),
                    &opened,
                )
                .await,
            )
            .await;
            for t in page["transactions"]["booked"].as_array().unwrap() {
                by_id
                    .entry(t["transactionId"].as_str().unwrap().to_string())
                    .or_default()
                    .push(t.clone());
            }
        }
        fetches.push(by_id);
    }
    assert!(
        fetches[0]
            .get(freshet_sandbox::data::REUSED_ID)
            .is_some_and(|v| v.len() > 1),
        "the bank reuses an id"
    );
    let shifted = fetches[0]
        .iter()
        .filter(|(id, rows)| {
            fetches[1][*id]
                .iter()
                .zip(rows.iter())
                .any(|(a, b)| a["bookingDate"] != b["bookingDate"])
        })
        .count();
    assert!(shifted > 0, "some booking dates move between fetches");
}

#[tokio::test]
async fn the_authorisation_page_is_for_people_and_scripts() {
    let b = Bank::start(config()).await;
    let created = json_of(b.create_consent("slsp").await).await;
    let id = created["consentId"].as_str().unwrap();
    let sca = created["_links"]["scaRedirect"]["href"].as_str().unwrap();
    let page = b
        .http
        .get(format!("{sca}&redirect_uri={REDIRECT}&state=s1"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    for needle in ["Slovensk", "value=\"approve\"", "value=\"reject\"", id] {
        assert!(html.contains(needle), "the page shows {needle}");
    }
    let rejected = b.decide("slsp", id, None, "reject").await;
    assert_eq!(rejected.status(), 303);
    let location = rejected.headers()["location"].to_str().unwrap().to_string();
    assert!(
        location.starts_with(REDIRECT)
            && location.contains("error=access_denied")
            && location.contains("state=s1"),
        "{location}"
    );
    let status = json_of(
        b.call(
            Method::GET,
            "slsp",
            &format!("/v1/consents/{id}/status"),
            None,
            None,
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status["consentStatus"], "rejected");
    assert_eq!(
        b.decide("slsp", id, None, "approve").await.status(),
        400,
        "decided once"
    );

    let created = json_of(b.create_consent("natwest").await).await;
    let id = created["Data"]["ConsentId"].as_str().unwrap();
    let approved = b.decide("natwest", id, None, "approve").await;
    let code = url::Url::parse(approved.headers()["location"].to_str().unwrap())
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    assert_eq!(b.token("natwest", &code).await.status(), 200);
    let again = b.token("natwest", &code).await;
    assert_eq!(again.status(), 400, "a code works once");
    assert_eq!(json_of(again).await["error"], "invalid_grant");
}

#[tokio::test]
async fn faults_apply_for_the_calls_asked_then_stop() {
    let b = Bank::start(config()).await;
    let opened = b.open("natwest", None).await;
    let r = b
        .control(
            Method::POST,
            "/control/faults",
            Some(json!({"provider_id": "natwest", "kind": "maintenance", "times": 2})),
        )
        .await;
    assert_eq!(r.status(), 201);
    for _ in 0..2 {
        assert_eq!(b.get("natwest", "/accounts", &opened).await.status(), 503);
    }
    assert_eq!(b.get("natwest", "/accounts", &opened).await.status(), 200);
    let other = b.open("lloyds", None).await;
    b.control(
        Method::POST,
        "/control/faults",
        Some(json!({"provider_id": "lloyds", "kind": "provider_failure"})),
    )
    .await;
    for _ in 0..3 {
        assert_eq!(
            b.get("lloyds", "/accounts", &other).await.status(),
            500,
            "until cleared"
        );
    }
    assert_eq!(
        b.get("natwest", "/accounts", &opened).await.status(),
        200,
        "other banks are unaffected"
    );
    let listed = json_of(b.control(Method::GET, "/control/faults", None).await).await;
    assert_eq!(
        listed["data"],
        json!([{"provider_id": "lloyds", "kind": "provider_failure", "times": null}])
    );
    assert_eq!(
        b.control(Method::DELETE, "/control/faults?provider_id=lloyds", None)
            .await
            .status(),
        204
    );
    assert_eq!(b.get("lloyds", "/accounts", &other).await.status(), 200);
}

#[tokio::test]
async fn a_slow_bank_answers_as_usual_after_the_delay() {
    let b = Bank::start(config()).await;
    let opened = b.open("natwest", None).await;
    let r = b
        .control(
            Method::POST,
            "/control/faults",
            Some(json!({"provider_id": "natwest", "kind": "slow", "times": 1, "delay_ms": 300})),
        )
        .await;
    assert_eq!(r.status(), 201);
    assert_eq!(
        json_of(r).await,
        json!({"provider_id": "natwest", "kind": "slow", "times": 1, "delay_ms": 300})
    );
    let started = std::time::Instant::now();
    let held = b.get("natwest", "/accounts", &opened).await;
    assert_eq!(held.status(), 200);
    assert!(started.elapsed() >= std::time::Duration::from_millis(300));
    let held = json_of(held).await;
    let quick = json_of(b.get("natwest", "/accounts", &opened).await).await;
    assert_eq!(held, quick, "the same answer, only later");
}

#[tokio::test]
async fn the_control_api_names_what_is_wrong() {
    let b = Bank::start(config()).await;
    let cases = [
        (
            "/control/faults",
            json!({"provider_id": "monzo", "kind": "timeout"}),
            "provider_id",
        ),
        (
            "/control/faults",
            json!({"provider_id": "natwest", "kind": "gremlins"}),
            "kind",
        ),
        (
            "/control/faults",
            json!({"provider_id": "natwest", "kind": "timeout", "times": 0}),
            "times",
        ),
        (
            "/control/faults",
            json!({"provider_id": "natwest", "kind": "timeout", "when": "now"}),
            "when",
        ),
        (
            "/control/faults",
            json!({"provider_id": "natwest", "kind": "timeout", "delay_ms": 10}),
            "delay_ms",
        ),
        (
            "/control/faults",
            json!({"provider_id": "natwest", "kind": "slow", "delay_ms": 600_001}),
            "delay_ms",
        ),
        (
            "/control/transactions",
            json!({"provider_id": "natwest", "count": 0}),
            "count",
        ),
        (
            "/control/transactions",
            json!({"provider_id": "natwest", "count": 1, "status": "cleared"}),
            "status",
        ),
    ];
    for (path, body, field) in cases {
        let r = b.control(Method::POST, path, Some(body.clone())).await;
        assert_eq!(r.status(), 400, "{body}");
        assert_eq!(r.headers()["content-type"], "application/problem+json");
        let problem = json_of(r).await;
        assert!(
            problem["errors"][0]["field"]
                .as_str()
                .unwrap()
                .contains(field),
            "{body}: {problem}"
        );
    }
    let missing = b
        .control(Method::POST, "/control/consents/nope/revoke", None)
        .await;
    assert_eq!(missing.status(), 404);
    assert!(
        json_of(b.control(Method::GET, "/control/faults", None).await).await["data"]
            .as_array()
            .unwrap()
            .is_empty(),
        "nothing refused was kept"
    );
}
