//! Every dialect end to end: one endpoint per dialect with a real receiver, canonical events
//! recorded as the refresh engine will record them, and each receiver checking what a vendor's
//! own receiver would check — the body in its format, its signature (Bud against the JWKS
//! freshet serves, Klavi by HMAC, Tatra's Authorization) — plus the Standard Webhooks
//! signature every delivery carries, verified by the `standardwebhooks` crate.

use std::time::Duration;

use freshet_dialects::{BudSigningKey, Context, Dialect, render, verify_bud};
use freshet_engine::{
    Engine,
    testing::{Answer, Received, Receiver},
};
use freshet_model::{
    ApplicationId, EventType,
    events::{Event, EventData},
};
use freshet_store::StoredEvent;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::{
    on_both_stores,
    support::{ADMIN_TOKEN, TestApp, assert_problem},
};

const WAIT: Duration = Duration::from_secs(10);
const TATRA_HEADER: &str = "Basic dXNlcjpwYXNzd29yZA==";
const PARTNER_APP_ID: &str = "12345678";

/// Records a canonical event for `app` the way the engine's own callers do (in a transaction
/// they commit), through the store of the node under test. Test-only: the API has no call
/// that records arbitrary events.
async fn record(app: &TestApp, app_id: uuid::Uuid, t: EventType, data: Value) -> StoredEvent {
    // This engine is not the node's: the node's dispatcher finds the deliveries at its poll.
    let engine = Engine::new(app.db.store.clone());
    let data = EventData::from_json(t, data).expect("a canonical payload");
    let mut tx = engine.begin().await.unwrap();
    let event = tx
        .record(ApplicationId(app_id), None, data, t)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    event
}

async fn endpoint(app: &TestApp, key: &str, body: Value) -> Value {
    let (s, b) = app
        .call(Method::POST, "/v1/webhook-endpoints", Some(key), Some(body))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    b
}

async fn jwks(app: &TestApp) -> Value {
    let res = app
        .http
        .get(app.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    res.json().await.unwrap()
}

fn header<'a>(got: &'a Received, name: &str) -> Option<&'a str> {
    let mut all = got.headers.get_all(name).iter();
    let first = all.next().map(|v| v.to_str().unwrap());
    assert!(
        all.next().is_none(),
        "{name} arrived twice: {:?}",
        got.headers
    );
    first
}

/// The Standard Webhooks signature, checked by an independent implementation.
fn verify_standard(secret: &str, got: &Received) {
    let wh = standardwebhooks::Webhook::new(secret).expect("a whsec_ secret");
    wh.verify(&got.body, &got.headers)
        .expect("the Standard Webhooks signature verifies");
    for name in [
        "content-type",
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
    ] {
        assert!(header(got, name).is_some(), "{name} missing");
    }
    assert_eq!(header(got, "content-type"), Some("application/json"));
}

fn verify_bud_signature(jwks: &Value, got: &Received) -> String {
    let kid = header(got, "x-signing-id").expect("X-Signing-ID");
    let jwt = header(got, "x-signature").expect("X-Signature");
    let claims = verify_bud(jwks, kid, jwt, &got.body).expect("the Bud signature verifies");
    assert_eq!(Some(claims.jti.as_str()), header(got, "webhook-id"));
    kid.to_string()
}

/// Klavi's signature recomputed with ring: lower-case hex HMAC-SHA256 of the raw body, keyed
/// with the endpoint's secret as given.
fn verify_klavi_signature(secret: &str, got: &Received) {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let expected: String = ring::hmac::sign(&key, &got.body)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(header(got, "x-klavi-signature"), Some(expected.as_str()));
    let ts: i64 = header(got, "x-klavi-timestamp").unwrap().parse().unwrap();
    assert!((freshet_model::time::now().unix_timestamp() - ts).abs() < 60);
}

/// The stored event that, rendered in `dialect` for this delivery, gives exactly the body
/// received; panics when none does.
fn rendered_from<'a>(
    dialect: Dialect,
    events: &'a [StoredEvent],
    got: &Received,
    partner: &str,
) -> &'a StoredEvent {
    let webhook_id = header(got, "webhook-id").unwrap();
    let key = BudSigningKey::generate().unwrap();
    let ctx = Context {
        partner_app_id: Some(partner),
        bud_key: Some(&key),
        klavi_secret: Some("irrelevant to the body"),
        ..Context::new(webhook_id, freshet_model::time::now())
    };
    events
        .iter()
        .find(|e| {
            let event = Event {
                id: e.id.to_string(),
                event_type: e.event_type,
                created_at: e.created_at,
                data: EventData::from_json(e.event_type, e.data.clone()).unwrap(),
            };
            render(dialect, &event, &ctx).is_ok_and(|r| r.body == got.body)
        })
        .unwrap_or_else(|| {
            panic!(
                "no recorded event renders in {dialect} to {}",
                String::from_utf8_lossy(&got.body)
            )
        })
}

fn customer() -> Value {
    json!({"id": "0190c1d2-0000-7000-8000-000000000001", "external_id": "user-42",
           "login_name": "fri21", "personal_tax_id": "25872252137", "business_tax_id": null,
           "external_info": {"myTraceId": "yourTraceId-1"}})
}

fn natwest() -> Value {
    json!({"id": "natwest", "name": "Natwest", "code": "NWB", "numeric_id": 16441})
}

fn slsp() -> Value {
    json!({"id": "slsp", "name": "Slovenská sporiteľňa", "code": "SLSP", "numeric_id": 2})
}

fn link() -> Value {
    json!({"id": "ed812-81fcec", "number": 10995860, "created_at": "2026-11-20T05:47:35Z"})
}

fn sub_task(status: &str, result: Option<&str>) -> Value {
    json!({"task_id": "030d4439-6ed5-480e-943e-827a812a45c5", "provider": natwest(),
           "link": link(), "status": status, "result": result, "reconnect_required": false,
           "has_new_transactions": true, "account_ids": ["d607d0da"], "consent_ids": ["k-1"],
           "consent_details": [{"id": "k-1", "expiration_date": "2027-06-25T20:08:17Z"}],
           "request_id": "NSyMGo+R4dktywIu3hBIkc3PgWA=",
           "last_updated": "2026-11-24T11:00:00Z", "last_update_attempt": "2026-11-24T11:00:00Z"})
}

/// One canonical event of every type some vendor sends.
fn canonical_events() -> Vec<(EventType, Value)> {
    let consent = json!({"id": "k-1", "status": "revoked",
        "permissions_requested": ["registration_all", "accounts_all"],
        "permissions_granted": ["accounts_all"], "expires_at": "2027-06-25T20:08:17Z",
        "external_track_id": "222121", "reconnect_required": false});
    vec![
        (
            EventType::RefreshCompleted,
            json!({"customer": customer(),
            "task_id": "030d4a8c-e3b3-4956-8d86-ce3f450c3522", "status": "Completed",
            "result": "success", "has_new_transactions": true,
            "sub_tasks": [sub_task("Completed", Some("success"))]}),
        ),
        (
            EventType::ConsentRevoked,
            json!({"customer": customer(), "provider": natwest(),
            "link": link(), "consent": consent, "reason": null}),
        ),
        (
            EventType::LinkCreated,
            json!({"customer": customer(), "provider": natwest(),
            "link": link()}),
        ),
        (
            EventType::TransactionsNew,
            json!({"customer": customer(), "provider": slsp(),
            "consent_id": "151f5dsf5s", "task_id": null,
            "accounts": [{"account_id": "ds8f4ds8", "count": 2}]}),
        ),
        (
            EventType::AccountsUpdated,
            json!({"customer": customer(), "provider": slsp(),
            "consent_id": "151f5dsf5s", "task_id": "ds8f4ds8-d18saf4d8f",
            "task_status": "Completed",
            "accounts": [{"account_id": "ds8f4ds8", "change": "added"}]}),
        ),
        (
            EventType::RefreshProgress,
            json!({"customer": customer(), "task_id": "t-1",
            "trigger": "manual", "stage": "login_success",
            "sub_task": sub_task("Running", None)}),
        ),
        (
            EventType::RefreshProviderCompleted,
            json!({"customer": customer(), "task_id": "t-1",
            "trigger": "manual", "sub_task": sub_task("Completed", Some("success"))}),
        ),
    ]
}

struct Hooks {
    receiver: Receiver,
    endpoint: Value,
}

impl Hooks {
    fn secret(&self) -> &str {
        self.endpoint["secret"].as_str().unwrap()
    }

    fn id(&self) -> &str {
        self.endpoint["id"].as_str().unwrap()
    }
}

/// One endpoint per dialect, each with its own receiver, all active at once.
async fn one_endpoint_per_dialect(app: &TestApp, key: &str) -> Vec<(Dialect, Hooks)> {
    let mut all = Vec::new();
    for dialect in Dialect::ALL {
        let receiver = Receiver::start(vec![Answer::Status(200)]).await;
        let mut body = json!({"url": receiver.url(), "dialect": dialect.name(),
                              "activation": "immediate"});
        match dialect {
            Dialect::Tatra => body["security_header"] = json!(TATRA_HEADER),
            Dialect::Klavi => body["partner_app_id"] = json!(PARTNER_APP_ID),
            _ => {}
        }
        let endpoint = endpoint(app, key, body).await;
        assert_eq!(endpoint["dialect"], dialect.name());
        all.push((dialect, Hooks { receiver, endpoint }));
    }
    all
}

on_both_stores! {
    async fn every_dialect_receives_its_own_format_signed_its_own_way(app: TestApp) {
        let (app_id, key) = app.new_application_with_id("dialects").await;
        let hooks = one_endpoint_per_dialect(&app, &key).await;
        let mut events = Vec::new();
        for (t, data) in canonical_events() {
            events.push(record(&app, app_id, t, data).await);
        }
        let jwks = jwks(&app).await;
        for (dialect, h) in &hooks {
            let expected = events.iter().filter(|e| dialect.sends(e.event_type)).count();
            let got = h.receiver.wait_for(expected, WAIT).await;
            tokio::time::sleep(Duration::from_millis(200)).await;
            assert_eq!(h.receiver.count(), expected, "{dialect} got only what it sends");
            let mut seen = Vec::new();
            for g in &got {
                verify_standard(h.secret(), g);
                let partner = if *dialect == Dialect::Klavi { PARTNER_APP_ID.to_string() } else { app_id.to_string() };
                let event = rendered_from(*dialect, &events, g, &partner);
                seen.push(event.id);
                let body: Value = serde_json::from_slice(&g.body).unwrap();
                let webhook_id = header(g, "webhook-id").unwrap();
                match dialect {
                    Dialect::Standard => {
                        assert_eq!(body["type"], event.event_type.as_str());
                        assert_eq!(body["data"], event.data);
                    }
                    Dialect::Bud => {
                        verify_bud_signature(&jwks, g);
                        let name = body["event"].as_str().or(body["data"]["event"].as_str());
                        assert!(name.unwrap().starts_with("open_banking."), "{body}");
                    }
                    Dialect::Tatra => {
                        assert_eq!(header(g, "authorization"), Some(TATRA_HEADER), "verbatim, once");
                        assert_eq!(body["consentId"], "151f5dsf5s");
                    }
                    Dialect::Klavi => {
                        verify_klavi_signature(h.secret(), g);
                        assert!(body.is_array(), "{body}");
                        assert_eq!(body[0]["partnerAppId"], PARTNER_APP_ID);
                        assert_eq!(body[0]["eventId"], event.id.to_string());
                        assert_eq!(body[0]["externalInfo"]["myTraceId"], "yourTraceId-1");
                    }
                    Dialect::Yodlee => {
                        assert_eq!(body["event"]["notificationId"], webhook_id);
                        assert_eq!(body["event"]["loginName"], "fri21");
                    }
                }
                if *dialect != Dialect::Tatra {
                    assert_eq!(header(g, "authorization"), None);
                }
                if *dialect != Dialect::Bud {
                    assert_eq!(header(g, "x-signature"), None);
                }
                if *dialect != Dialect::Klavi {
                    assert_eq!(header(g, "x-klavi-signature"), None);
                }
            }
            seen.sort();
            seen.dedup();
            assert_eq!(seen.len(), expected, "{dialect}: each event once");
        }
        app.stop().await;
    }

    async fn each_endpoint_is_tested_in_its_vendors_shape_signed_its_way(app: TestApp) {
        let key = app.new_application("tests").await;
        let hooks = one_endpoint_per_dialect(&app, &key).await;
        let jwks = jwks(&app).await;
        for (dialect, h) in &hooks {
            let (s, b) = app
                .call(Method::POST, &format!("/v1/webhook-endpoints/{}/test", h.id()), Some(&key),
                      Some(json!({"data": {"dialect": dialect.name()}})))
                .await;
            assert_eq!(s, StatusCode::ACCEPTED, "{b}");
            let got = h.receiver.wait_for(1, WAIT).await;
            let g = &got[0];
            verify_standard(h.secret(), g);
            let body: Value = serde_json::from_slice(&g.body).unwrap();
            // Each vendor's receiver parses it as that vendor's message, named as no real
            // message is, carrying what the caller passed.
            match dialect {
                Dialect::Standard => {
                    assert_eq!(body["type"], "endpoint.test", "{body}");
                    assert_eq!(body["data"]["data"]["dialect"], "standard");
                    assert_eq!(body["data"]["endpoint_id"], h.id());
                }
                Dialect::Bud => {
                    verify_bud_signature(&jwks, g);
                    assert_eq!(body["event"], "freshet.endpoint.test", "{body}");
                    assert_eq!(body["endpoint_id"], h.id());
                    assert_eq!(body["data"]["dialect"], "bud");
                }
                Dialect::Klavi => {
                    verify_klavi_signature(h.secret(), g);
                    assert!(body.is_array(), "a JSON array, as every Klavi event: {body}");
                    assert_eq!(body.as_array().unwrap().len(), 1);
                    let e = &body[0];
                    assert_eq!((&e["eventType"], &e["eventName"]), (&json!("api"), &json!("endpoint_test")));
                    assert_eq!(e["partnerAppId"], PARTNER_APP_ID);
                    assert_eq!(e["payload"]["endpointId"], h.id());
                    assert_eq!(e["payload"]["data"]["dialect"], "klavi");
                    assert!(e["eventTime"].as_str().unwrap().ends_with('Z'));
                }
                Dialect::Tatra => {
                    assert_eq!(header(g, "authorization"), Some(TATRA_HEADER));
                    assert_eq!(body, json!({"consentId": h.id(), "eventType": "TEST", "accounts": []}));
                }
                Dialect::Yodlee => {
                    assert_eq!(body["event"]["info"], "ENDPOINT.TEST", "{body}");
                    assert_eq!(body["event"]["notificationId"], header(g, "webhook-id").unwrap());
                    assert_eq!(body["event"]["data"]["data"]["dialect"], "yodlee");
                }
            }
            if !matches!(dialect, Dialect::Bud) {
                assert_eq!(header(g, "x-signature"), None);
            }
            if !matches!(dialect, Dialect::Klavi) {
                assert_eq!(header(g, "x-klavi-signature"), None);
            }
        }
        app.stop().await;
    }

    async fn bud_signatures_verify_against_the_jwks_across_a_key_rotation(app: TestApp) {
        let (app_id, key) = app.new_application_with_id("rotation").await;
        let r = Receiver::start(vec![Answer::Status(200)]).await;
        endpoint(&app, &key, json!({"url": r.url(), "dialect": "bud"})).await;
        let (t, revoked) = canonical_events().swap_remove(1);
        record(&app, app_id, t, revoked.clone()).await;
        let before = jwks(&app).await;
        assert_eq!(before["keys"].as_array().unwrap().len(), 1, "{before}");
        let first = r.wait_for(1, WAIT).await.remove(0);
        let old_kid = verify_bud_signature(&before, &first);
        assert_eq!(before["keys"][0]["kid"], old_kid);

        // Only the operator rotates.
        let (s, b) = app.call(Method::POST, "/v1/admin/signing-keys/rotate", Some(&key), None).await;
        assert_problem(s, &b, StatusCode::UNAUTHORIZED, None);
        let (s, b) = app
            .call(Method::POST, "/v1/admin/signing-keys/rotate", Some(ADMIN_TOKEN),
                  Some(json!({"overlap_seconds": -5})))
            .await;
        assert_problem(s, &b, StatusCode::UNPROCESSABLE_ENTITY, Some("overlap_seconds"));
        let (s, rotated) = app
            .call(Method::POST, "/v1/admin/signing-keys/rotate", Some(ADMIN_TOKEN), None)
            .await;
        assert_eq!(s, StatusCode::OK, "{rotated}");
        let new_kid = rotated["signing_kid"].as_str().unwrap().to_string();
        assert_ne!(new_kid, old_kid);
        assert_eq!(rotated["keys"][0]["kid"], old_kid);
        assert!(rotated["keys"][0]["retires_at"].is_string(), "{rotated}");
        assert_eq!(rotated["keys"][1]["kid"], new_kid.as_str());

        record(&app, app_id, t, revoked).await;
        let second = r.wait_for(2, WAIT).await.remove(1);
        let after = jwks(&app).await;
        assert_eq!(after["keys"].as_array().unwrap().len(), 2, "{after}");
        assert_eq!(verify_bud_signature(&after, &second), new_kid, "the new key signs");
        assert_eq!(verify_bud_signature(&after, &first), old_kid, "the old key still verifies");
        verify_bud(&before, &new_kid, header(&second, "x-signature").unwrap(), &second.body)
            .expect_err("a stale JWKS lacks the new key: receivers refetch on an unknown kid");
        app.stop().await;
    }

    async fn endpoint_rules_follow_the_dialect(app: TestApp) {
        let key = app.new_application("rules").await;
        let refused = [
            (json!({"url": "https://example.com/h?token=1", "dialect": "tatra"}), "url"),
            (json!({"url": "https://example.com/h", "dialect": "tatra",
                    "security_header": "Bearer a.b-c"}), "security_header"),
            (json!({"url": "https://example.com/h", "dialect": "bud",
                    "event_types": ["refresh.completed", "transactions.new"]}), "event_types[1]"),
            (json!({"url": "https://example.com/h", "dialect": "klavi",
                    "event_types": ["endpoint.test"]}), "event_types[0]"),
            (json!({"url": "https://example.com/h", "dialect": "plaid"}), "dialect"),
        ];
        for (body, field) in refused {
            let (s, b) = app.call(Method::POST, "/v1/webhook-endpoints", Some(&key), Some(body)).await;
            assert_problem(s, &b, StatusCode::UNPROCESSABLE_ENTITY, Some(field));
        }
        let (_, b) = app
            .call(Method::POST, "/v1/webhook-endpoints", Some(&key),
                  Some(json!({"url": "https://example.com/h", "dialect": "bud", "event_types": ["transactions.new"]})))
            .await;
        let message = b["errors"][0]["message"].as_str().unwrap();
        assert!(message.contains("bud") && message.contains("refresh.completed"), "{b}");

        // Query parameters are Tatra's rule only; an empty security header is allowed.
        endpoint(&app, &key, json!({"url": "https://example.com/h?x=1", "dialect": "yodlee",
                                    "event_types": ["refresh.progress"]})).await;
        let tatra = endpoint(&app, &key, json!({"url": "https://example.com/tatra", "dialect": "tatra",
                                                "security_header": ""})).await;
        // Tatra endpoints start at the next full hour unless asked otherwise.
        assert_eq!(tatra["status"], "scheduled", "{tatra}");
        assert!(tatra["active_from"].as_str().unwrap().contains(":00:00"), "{tatra}");
        let (s, b) = app
            .call(Method::PATCH, &format!("/v1/webhook-endpoints/{}", tatra["id"].as_str().unwrap()),
                  Some(&key), Some(json!({"url": "https://example.com/tatra?"})))
            .await;
        assert_problem(s, &b, StatusCode::UNPROCESSABLE_ENTITY, Some("url"));

        let (s, keys) = app.call(Method::GET, "/.well-known/jwks.json", None, None).await;
        assert_eq!(s, StatusCode::OK);
        let k = &keys["keys"][0];
        assert_eq!((&k["kty"], &k["crv"], &k["alg"], &k["use"]), (&json!("EC"), &json!("P-256"), &json!("ES256"), &json!("sig")));
        assert!(k.get("d").is_none(), "no private part: {k}");
        app.stop().await;
    }
}

/// Several nodes on one PostgreSQL, started at once, publish one key set; a rotation through
/// one node shows in every node's JWKS at once.
#[tokio::test]
async fn nodes_on_one_postgres_share_their_signing_keys() {
    use freshet::{config::Config, server::Server};
    use freshet_store::testing::{Backend, TestDb};

    let Some(db) = TestDb::new(Backend::Postgres).await else {
        return;
    };
    let starts = (0..3).map(|_| {
        let mut config = Config::new(db.url.clone());
        config.listen = "127.0.0.1:0".parse().unwrap();
        config.admin_token = Some(ADMIN_TOKEN.to_string().into());
        config.master_key = Some(db.master_key.clone());
        Server::start(config)
    });
    let nodes: Vec<Server> = futures::future::join_all(starts)
        .await
        .into_iter()
        .map(|s| s.expect("the node starts"))
        .collect();
    let http = reqwest::Client::new();
    let jwks_of = |node: &Server| {
        let req = http.get(format!("http://{}/.well-known/jwks.json", node.addr()));
        async move { req.send().await.unwrap().json::<Value>().await.unwrap() }
    };
    let first = jwks_of(&nodes[0]).await;
    assert_eq!(first["keys"].as_array().unwrap().len(), 1, "{first}");
    for node in &nodes[1..] {
        assert_eq!(
            jwks_of(node).await,
            first,
            "every node publishes the same key"
        );
    }
    let rotated: Value = http
        .post(format!(
            "http://{}/v1/admin/signing-keys/rotate",
            nodes[0].addr()
        ))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for node in &nodes {
        let keys = jwks_of(node).await;
        let kids: Vec<&str> = keys["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap())
            .collect();
        assert_eq!(
            kids,
            [&first["keys"][0]["kid"], &rotated["signing_kid"]].map(|v| v.as_str().unwrap())
        );
    }
    for node in nodes {
        node.shutdown().await.unwrap();
    }
}

/// Seed 000's scenario and a consent's life, from the refresh engine itself, to one endpoint
/// per dialect: every delivery is its dialect's rendering of a recorded event, signed its way.
async fn seed_000_and_a_consent_lifecycle(app: TestApp) {
    use freshet_model::{ApplicationId, PageRequest};
    let (app_id, key) = app.new_application_with_id("vendors").await;
    let hooks = one_endpoint_per_dialect(&app, &key).await;
    let c = crate::refresh::Client {
        app: &app,
        key: key.clone(),
    };
    let customer = app
        .new_customer(
            &key,
            json!({"external_id": "c-000", "login_name": "fri21",
                                    "personal_tax_id": "76109277673",
                                    "external_info": {"myTraceId": "yourTraceId-1"}}),
        )
        .await;
    let cid = customer["id"].as_str().unwrap();
    let natwest = c
        .connect(cid, "natwest", json!({"external_track_id": "track-1"}))
        .await;
    c.connect(cid, "tatrabanka", json!({})).await;
    c.sandbox(
        "faults",
        json!({"provider_id": "tatrabanka", "kind": "provider_failure"}),
    )
    .await;
    let (_, started) = c
        .call(Method::POST, &format!("/v1/customers/{cid}/refresh"), None)
        .await;
    let task = c.finished(started["task_id"].as_str().unwrap()).await;
    assert_eq!(task["status"], "Failed");
    let (s, _) = c
        .call(
            Method::DELETE,
            &format!("/v1/consents/{}", natwest["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);

    let first = PageRequest {
        limit: 500,
        ..PageRequest::first()
    };
    let events = app
        .db
        .store
        .list_events(ApplicationId(app_id), &Default::default(), first)
        .await
        .unwrap()
        .data;
    let jwks = jwks(&app).await;
    for (dialect, h) in &hooks {
        let expected = events
            .iter()
            .filter(|e| dialect.sends(e.event_type))
            .count();
        assert!(expected > 0, "{dialect} has something to receive");
        let got = h.receiver.wait_for(expected, WAIT).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(
            h.receiver.count(),
            expected,
            "{dialect} got what it sends, once"
        );
        let partner = if *dialect == Dialect::Klavi {
            PARTNER_APP_ID.to_string()
        } else {
            app_id.to_string()
        };
        let mut bodies = String::new();
        for g in &got {
            verify_standard(h.secret(), g);
            rendered_from(*dialect, &events, g, &partner);
            match dialect {
                Dialect::Bud => {
                    verify_bud_signature(&jwks, g);
                }
                Dialect::Klavi => verify_klavi_signature(h.secret(), g),
                Dialect::Tatra => assert_eq!(header(g, "authorization"), Some(TATRA_HEADER)),
                _ => {}
            }
            bodies.push_str(&String::from_utf8_lossy(&g.body));
        }
        let has = |needle: &str| bodies.matches(needle).count();
        match dialect {
            Dialect::Bud => {
                assert_eq!(has("open_banking.v2.refresh.completed"), 1, "{bodies}");
                assert_eq!(has("open_banking.consent.revoked"), 1);
            }
            Dialect::Tatra => assert!(has("FINISHED") >= 1 && has("FAILED") >= 1, "{bodies}"),
            Dialect::Klavi => {
                assert_eq!(has("\"link_created\""), 2, "{bodies}");
                assert_eq!(has("\"consent_authorised\""), 2);
                assert_eq!(has("\"consent_revoked\""), 1);
                assert!(bodies.contains("yourTraceId-1") && bodies.contains("track-1"));
            }
            Dialect::Yodlee => {
                assert_eq!(has("REFRESH.INTERIM_PROGRESS"), 2, "{bodies}");
                assert_eq!(has("REFRESH.PROCESS_COMPLETED"), 2);
                assert!(bodies.contains("fri21"));
            }
            Dialect::Standard => assert_eq!(expected, events.len()),
        }
    }
    app.stop().await;
}

#[tokio::test]
async fn seed_000_and_a_consent_lifecycle_in_every_dialect_on_sqlite() {
    crate::support::run_with(
        freshet_store::testing::Backend::Sqlite,
        |c| c.refresh_tick = Duration::from_secs(3600),
        seed_000_and_a_consent_lifecycle,
    )
    .await;
}

#[tokio::test]
async fn seed_000_and_a_consent_lifecycle_in_every_dialect_on_postgres() {
    crate::support::run_with(
        freshet_store::testing::Backend::Postgres,
        |c| c.refresh_tick = Duration::from_secs(3600),
        seed_000_and_a_consent_lifecycle,
    )
    .await;
}
