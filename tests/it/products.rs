//! Klavi data products as a client sees them: a customer connected to the Brazilian sandbox
//! bank and refreshed, a request for a checking-account statement and a credit-card summary,
//! Klavi's product events at a klavi endpoint, and the statement at its callback URL — signed,
//! and adding up to what the transactions API shows.

use std::{path::Path, time::Duration};

use freshet::config::Config;
use freshet_engine::testing::{Answer, Received, Receiver};
use freshet_store::testing::Backend;
use reqwest::{Method, StatusCode};
use rust_decimal::Decimal;
use serde_json::{Value, json};

use crate::{
    refresh::Client,
    support::{TestApp, assert_problem, run_with},
};

fn quiet(c: &mut Config) {
    c.refresh_tick = Duration::from_secs(3600);
}

fn header<'a>(got: &'a Received, name: &str) -> Option<&'a str> {
    got.headers.get(name).map(|v| v.to_str().unwrap())
}

fn body(got: &Received) -> Value {
    serde_json::from_slice(&got.body).unwrap()
}

/// The restored Klavi example of seed 002 for `name`.
fn fixture(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("crates/dialects/tests/fixtures")
        .join(format!("seed-002-klavi-{name}.json"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Same member names, nesting and JSON types as the vendor's example, all the way down.
fn assert_same_shape(got: &Value, want: &Value, at: &str) {
    match (got, want) {
        (Value::Object(g), Value::Object(w)) => {
            let mut gk: Vec<_> = g.keys().collect();
            let mut wk: Vec<_> = w.keys().collect();
            gk.sort();
            wk.sort();
            assert_eq!(gk, wk, "members of {at}");
            for (k, v) in w {
                assert_same_shape(&g[k], v, &format!("{at}.{k}"));
            }
        }
        (Value::Array(g), Value::Array(w)) => {
            assert_eq!(g.is_empty(), w.is_empty(), "{at}");
            if let (Some(g), Some(w)) = (g.first(), w.first()) {
                assert_same_shape(g, w, &format!("{at}[0]"));
            }
        }
        (g, w) => assert_eq!(
            std::mem::discriminant(g),
            std::mem::discriminant(w),
            "type of {at}: {g} vs {w}"
        ),
    }
}

fn verify_klavi(secret: &str, got: &Received) {
    let expected = freshet_dialects::klavi::klavi_signature(secret, &got.body);
    assert_eq!(header(got, "x-klavi-signature"), Some(expected.as_str()));
}

fn decimal(v: &Value) -> Decimal {
    v.as_str()
        .unwrap_or_else(|| panic!("an amount as a string: {v}"))
        .parse()
        .unwrap()
}

/// Credits, debits and how many of each, booked in `[from, to]`, by the transactions API.
async fn booked_totals(
    c: &Client<'_>,
    account: &str,
    from: &str,
    to: &str,
) -> (Decimal, Decimal, usize) {
    let (mut credits, mut debits, mut n) = (Decimal::ZERO, Decimal::ZERO, 0);
    let mut cursor = String::new();
    loop {
        let (s, page) = c
            .call(
                Method::GET,
                &format!(
                    "/v1/accounts/{account}/transactions?from={from}&to={to}&status=booked&limit=500{cursor}"
                ),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{page}");
        for t in page["data"].as_array().unwrap() {
            let amount = decimal(&t["amount"]);
            if amount.is_sign_negative() {
                debits -= amount;
            } else {
                credits += amount;
            }
            n += 1;
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => return (credits, debits, n),
        }
    }
}

async fn products_reach_klavi_and_their_callbacks(app: TestApp) {
    let key = app.new_application("klavi").await;
    let c = Client { app: &app, key };
    let klavi = Receiver::start(vec![Answer::Status(204)]).await;
    let (s, endpoint) = c
        .call(
            Method::POST,
            "/v1/webhook-endpoints",
            Some(json!({"url": klavi.url(), "dialect": "klavi", "partner_app_id": "12345678"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{endpoint}");
    let klavi_secret = endpoint["secret"].as_str().unwrap().to_string();
    let checking = Receiver::start(vec![Answer::Status(200)]).await;
    let cards = Receiver::start(vec![Answer::Status(200)]).await;

    let customer = app
        .new_customer(
            &c.key,
            json!({"personal_tax_id": "25872252137",
                   "external_info": {"myTraceId": "yourTraceId-1", "myUuid": "yourUuid-1"}}),
        )
        .await;
    let cid = customer["id"].as_str().unwrap();
    let consent = c.connect(cid, "santander-br", json!({})).await;
    let (s, task) = c
        .call(Method::POST, &format!("/v1/customers/{cid}/refresh"), None)
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{task}");
    let task = c.finished(task["task_id"].as_str().unwrap()).await;
    assert_eq!(task["status"], "Completed", "{task}");
    let before = klavi.count(); // link_created, consent_authorised

    let link_id = consent["link_id"].as_str().unwrap();
    let consent_id = consent["id"].as_str().unwrap();
    let (s, created) = c
        .call(
            Method::POST,
            &format!("/v1/customers/{cid}/product-requests"),
            Some(json!({
                "link_id": link_id,
                "consent_ids": [consent_id],
                "products": ["pf_checking_account", "pf_credit_card"],
                "product_callback_urls": {
                    "pf_checking_account": checking.url(),
                    "pf_credit_card": cards.url(),
                },
            })),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{created}");
    let request_id = created["request_id"].as_str().unwrap().to_string();
    let callback_secret = created["callback_secret"].as_str().unwrap().to_string();

    // Klavi's three product events, in Klavi's wire format, signed Klavi's way.
    let got = klavi.wait_for(before + 3, Duration::from_secs(20)).await;
    let mut by_name = std::collections::HashMap::new();
    for g in &got[before..] {
        verify_klavi(&klavi_secret, g);
        let b = body(g);
        assert_eq!(b.as_array().unwrap().len(), 1, "{b}");
        by_name.insert(
            b[0]["eventName"].as_str().unwrap().to_string(),
            b[0].clone(),
        );
    }
    for (name, fixture_name) in [
        ("product_request_received", "product-request-received"),
        ("product_generated_success", "product-generated-success"),
        ("product_generated_failed", "product-generated-failed"),
    ] {
        let e = by_name
            .get(name)
            .unwrap_or_else(|| panic!("no {name}: {by_name:?}"));
        assert_same_shape(e, &fixture(fixture_name)[0], name);
        assert_eq!(e["partnerAppId"], "12345678");
        assert_eq!(e["eventType"], "api");
        assert_eq!(e["payload"]["requestId"], request_id.as_str());
        assert_eq!(e["payload"]["personalTaxId"], "25872252137");
        assert_eq!(e["externalInfo"]["myTraceId"], "yourTraceId-1");
    }
    let received = &by_name["product_request_received"]["payload"]["requestBody"];
    assert_eq!(received["taxId"], "25872252137");
    assert_eq!(received["institutionCode"], "033");
    assert_eq!(received["linkId"], link_id);
    assert_eq!(received["consentIds"], json!([consent_id]));
    assert_eq!(
        received["products"],
        json!(["pf_checking_account", "pf_credit_card"])
    );
    assert_eq!(
        received["productCallbackUrl"]["pf_credit_card"],
        cards.url()
    );
    assert_eq!(
        by_name["product_generated_success"]["payload"]["product"],
        "pf_checking_account"
    );
    let failed = &by_name["product_generated_failed"]["payload"];
    assert_eq!(failed["product"], "pf_credit_card");
    assert_eq!(failed["failureReason"], "no credit card account");

    // The statement at its callback URL, signed with the request's secret.
    let got = checking.wait_for(1, Duration::from_secs(20)).await;
    let wh = standardwebhooks::Webhook::new(&callback_secret).unwrap();
    wh.verify(&got[0].body, &got[0].headers)
        .expect("the callback's Standard Webhooks signature verifies");
    assert_eq!(header(&got[0], "content-type"), Some("application/json"));
    let statement = body(&got[0]);
    assert_eq!(statement["requestId"], request_id.as_str());
    assert_eq!(statement["product"], "pf_checking_account");
    let (from, to) = (
        statement["period"]["from"].as_str().unwrap().to_string(),
        statement["period"]["to"].as_str().unwrap().to_string(),
    );
    let accounts = statement["accounts"].as_array().unwrap();
    assert!(!accounts.is_empty(), "{statement}");
    let mut any_movement = false;
    for a in accounts {
        assert_eq!(
            a["type"], "CONTA_DEPOSITO_A_VISTA",
            "checking accounts only"
        );
        let id = a["accountId"].as_str().unwrap();
        let (credits, debits, n) = booked_totals(&c, id, &from, &to).await;
        assert_eq!(decimal(&a["totalCredits"]), credits, "{a}");
        assert_eq!(decimal(&a["totalDebits"]), debits, "{a}");
        assert_eq!(a["transactions"].as_array().unwrap().len(), n);
        assert_eq!(
            a["creditCount"].as_u64().unwrap() + a["debitCount"].as_u64().unwrap(),
            n as u64
        );
        assert_eq!(
            decimal(&a["closingBalance"]) - decimal(&a["openingBalance"]),
            credits - debits
        );
        any_movement |= n > 0;
    }
    assert!(
        any_movement,
        "the sandbox history has transactions: {statement}"
    );

    // A failed product sends nothing; the request says how each product went.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(cards.count(), 0);
    let (s, view) = c
        .call(
            Method::GET,
            &format!("/v1/product-requests/{request_id}"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{view}");
    assert_eq!(view["status"], "completed", "{view}");
    assert_eq!(view["products"][0]["product"], "pf_checking_account");
    assert_eq!(view["products"][0]["status"], "succeeded");
    assert_eq!(view["products"][1]["status"], "failed");
    assert_eq!(
        view["products"][1]["failure_reason"],
        "no credit card account"
    );
    assert!(view["products"][1]["delivery_id"].is_null());
    let delivery = view["products"][0]["delivery_id"].as_str().unwrap();
    let (s, attempts) = c
        .call(
            Method::GET,
            &format!("/v1/deliveries/{delivery}/attempts"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{attempts}");
    assert_eq!(attempts["data"][0]["status_code"], 200, "{attempts}");

    // One event each, and the callback endpoints stay out of the endpoint list.
    for t in [
        "product.request_received",
        "product.generated_success",
        "product.generated_failed",
    ] {
        assert_eq!(c.events(t).await.len(), 1, "{t}");
    }
    let (_, endpoints) = c.call(Method::GET, "/v1/webhook-endpoints", None).await;
    assert_eq!(
        endpoints["data"].as_array().unwrap().len(),
        1,
        "{endpoints}"
    );
    app.stop().await;
}

#[tokio::test]
async fn products_reach_klavi_and_their_callbacks_on_sqlite() {
    run_with(
        Backend::Sqlite,
        quiet,
        products_reach_klavi_and_their_callbacks,
    )
    .await;
}

#[tokio::test]
async fn products_reach_klavi_and_their_callbacks_on_postgres() {
    run_with(
        Backend::Postgres,
        quiet,
        products_reach_klavi_and_their_callbacks,
    )
    .await;
}

async fn refused_requests_name_their_field_and_change_nothing(app: TestApp) {
    let (app_id, key) = app.new_application_with_id("refusals").await;
    let c = Client { app: &app, key };
    let klavi = Receiver::start(vec![Answer::Status(204)]).await;
    let (s, _) = c
        .call(
            Method::POST,
            "/v1/webhook-endpoints",
            Some(json!({"url": klavi.url(), "dialect": "klavi"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let alice = app.new_customer(&c.key, json!({})).await;
    let bob = app.new_customer(&c.key, json!({})).await;
    let (alice, bob) = (alice["id"].as_str().unwrap(), bob["id"].as_str().unwrap());
    let mine = c.connect(alice, "natwest", json!({})).await;
    let theirs = c.connect(bob, "lloyds", json!({})).await;
    let good = json!({
        "link_id": mine["link_id"],
        "consent_ids": [mine["id"]],
        "products": ["pf_checking_account"],
        "product_callback_urls": {"pf_checking_account": "https://example.com/checking"},
    });
    let with = |patch: Value| {
        let mut b = good.clone();
        for (k, v) in patch.as_object().unwrap() {
            if v.is_null() {
                b.as_object_mut().unwrap().remove(k);
            } else {
                b[k] = v.clone();
            }
        }
        b
    };
    let unprocessable = StatusCode::UNPROCESSABLE_ENTITY;
    let cases = [
        (with(json!({"link_id": null})), unprocessable, "link_id"),
        (with(json!({"link_id": "nope"})), unprocessable, "link_id"),
        (
            with(json!({"link_id": theirs["link_id"]})),
            unprocessable,
            "link_id",
        ),
        (
            with(json!({"consent_ids": []})),
            unprocessable,
            "consent_ids",
        ),
        (
            with(json!({"consent_ids": [theirs["id"]]})),
            unprocessable,
            "consent_ids[0]",
        ),
        (with(json!({"products": []})), unprocessable, "products"),
        (
            with(json!({"products": ["pf_loans"]})),
            unprocessable,
            "products[0]",
        ),
        (
            with(json!({"product_callback_urls": {}})),
            unprocessable,
            "product_callback_urls.pf_checking_account",
        ),
        (
            with(json!({"product_callback_urls": {"pf_checking_account": "ftp://example.com/x"}})),
            unprocessable,
            "product_callback_urls.pf_checking_account",
        ),
        (
            with(json!({"product_callback_urls":
                {"pf_checking_account": "http://169.254.169.254/latest/meta-data"}})),
            unprocessable,
            "product_callback_urls.pf_checking_account",
        ),
        (
            with(json!({"product_callback_urls": {
                "pf_checking_account": "https://example.com/c",
                "pf_credit_card": "https://example.com/k"}})),
            unprocessable,
            "product_callback_urls.pf_credit_card",
        ),
        (
            with(json!({"from": "2026-03-01", "to": "2026-02-01"})),
            unprocessable,
            "from",
        ),
        (with(json!({"to": "2999-01-01"})), unprocessable, "to"),
        (with(json!({"link": "x"})), StatusCode::BAD_REQUEST, "link"),
    ];
    for (body, status, field) in cases {
        let (s, b) = c
            .call(
                Method::POST,
                &format!("/v1/customers/{alice}/product-requests"),
                Some(body.clone()),
            )
            .await;
        assert_problem(s, &b, status, Some(field));
    }
    let (s, b) = c
        .call(
            Method::POST,
            &format!("/v1/customers/{}/product-requests", uuid::Uuid::now_v7()),
            Some(good.clone()),
        )
        .await;
    assert_problem(s, &b, StatusCode::NOT_FOUND, None);
    let (s, b) = c
        .call(
            Method::GET,
            &format!("/v1/product-requests/{}", uuid::Uuid::now_v7()),
            None,
        )
        .await;
    assert_problem(s, &b, StatusCode::NOT_FOUND, None);
    // Another application cannot ask about this customer.
    let stranger = app.new_application("stranger").await;
    let (s, b) = app
        .call(
            Method::POST,
            &format!("/v1/customers/{alice}/product-requests"),
            Some(&stranger),
            Some(good.clone()),
        )
        .await;
    assert_problem(s, &b, StatusCode::NOT_FOUND, None);

    // Nothing refused was kept: no request, no event, no callback endpoint.
    let store = &app.db.store;
    assert_eq!(
        store
            .count_product_requests(freshet_model::ApplicationId(app_id))
            .await
            .unwrap(),
        0
    );
    assert!(c.events("product.request_received").await.is_empty());
    let (_, endpoints) = c.call(Method::GET, "/v1/webhook-endpoints", None).await;
    assert_eq!(endpoints["data"].as_array().unwrap().len(), 1);

    // The same request, well formed, is accepted.
    let (s, b) = c
        .call(
            Method::POST,
            &format!("/v1/customers/{alice}/product-requests"),
            Some(good),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    app.stop().await;
}

#[tokio::test]
async fn refused_requests_name_their_field_and_change_nothing_on_sqlite() {
    run_with(
        Backend::Sqlite,
        quiet,
        refused_requests_name_their_field_and_change_nothing,
    )
    .await;
}

#[tokio::test]
async fn refused_requests_name_their_field_and_change_nothing_on_postgres() {
    run_with(
        Backend::Postgres,
        quiet,
        refused_requests_name_their_field_and_change_nothing,
    )
    .await;
}
