//! Webhook endpoints and deliveries end to end: the API, the dispatcher, a real receiver.

use std::time::Duration;

use freshet_engine::testing::{Answer, Receiver};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::{
    on_both_stores,
    support::{TestApp, assert_problem},
};

const WAIT: Duration = Duration::from_secs(10);

async fn endpoint(app: &TestApp, key: &str, body: Value) -> Value {
    let (s, b) = app
        .call(Method::POST, "/v1/webhook-endpoints", Some(key), Some(body))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    b
}

fn verify(secret: &str, got: &freshet_engine::testing::Received) -> Value {
    let wh = standardwebhooks::Webhook::new(secret).expect("a whsec_ secret");
    let mut headers = http::HeaderMap::new();
    for (k, v) in &got.headers {
        headers.insert(k.clone(), v.clone());
    }
    wh.verify(&got.body, &headers)
        .expect("the Standard Webhooks signature verifies");
    serde_json::from_slice(&got.body).unwrap()
}

on_both_stores! {
    async fn test_event_arrives_signed(app: TestApp) {
        let key = app.new_application("hooks").await;
        let r = Receiver::start(vec![Answer::Status(204)]).await;
        let ep = endpoint(&app, &key, json!({"url": r.url(), "description": "mine"})).await;
        let secret = ep["secret"].as_str().unwrap();
        assert!(secret.starts_with("whsec_"), "{ep}");
        assert_eq!(ep["status"], "active");
        assert_eq!(ep["dialect"], "standard");
        let id = ep["id"].as_str().unwrap();

        let (s, b) = app
            .call(Method::POST, &format!("/v1/webhook-endpoints/{id}/test"), Some(&key), Some(json!({"data": {"sent_at": 42}})))
            .await;
        assert_eq!(s, StatusCode::ACCEPTED, "{b}");
        let event_id = b["event_id"].as_str().unwrap().to_string();
        let got = r.wait_for(1, WAIT).await;
        let body = verify(secret, &got[0]);
        assert_eq!(body["type"], "endpoint.test");
        assert_eq!(body["data"]["data"]["sent_at"], 42);

        // The event log shows the event, its delivery and the attempt.
        let (_, ev) = app.call(Method::GET, &format!("/v1/events/{event_id}"), Some(&key), None).await;
        assert_eq!(ev["type"], "endpoint.test");
        let deadline = tokio::time::Instant::now() + WAIT;
        let delivery = loop {
            let (_, ds) = app.call(Method::GET, &format!("/v1/events/{event_id}/deliveries"), Some(&key), None).await;
            if ds["data"][0]["status"] == "succeeded" { break ds["data"][0].clone(); }
            assert!(tokio::time::Instant::now() < deadline, "{ds}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let (_, attempts) = app
            .call(Method::GET, &format!("/v1/deliveries/{}/attempts", delivery["id"].as_str().unwrap()), Some(&key), None)
            .await;
        assert_eq!(attempts["data"][0]["status_code"], 204);
        assert!(attempts["data"][0]["latency_ms"].is_u64());
    }

    async fn failed_deliveries_keep_their_id_and_can_be_retried(app: TestApp) {
        let key = app.new_application("retry").await;
        let r = Receiver::start(vec![Answer::StatusWithBody(500, "database down".into()), Answer::Status(200)]).await;
        // A long schedule: only a manual retry brings the second attempt soon.
        let ep = endpoint(&app, &key, json!({"url": r.url(), "retry_schedule": [3600]})).await;
        let id = ep["id"].as_str().unwrap();
        let (_, t) = app.call(Method::POST, &format!("/v1/webhook-endpoints/{id}/test"), Some(&key), None).await;
        let event_id = t["event_id"].as_str().unwrap();
        r.wait_for(1, WAIT).await;
        let deadline = tokio::time::Instant::now() + WAIT;
        let delivery = loop {
            let (_, ds) = app.call(Method::GET, &format!("/v1/events/{event_id}/deliveries"), Some(&key), None).await;
            if ds["data"][0]["status"] == "failed" { break ds["data"][0].clone(); }
            assert!(tokio::time::Instant::now() < deadline, "{ds}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert_eq!(delivery["last_status_code"], 500);
        let did = delivery["id"].as_str().unwrap();
        let (_, attempts) = app.call(Method::GET, &format!("/v1/deliveries/{did}/attempts"), Some(&key), None).await;
        assert_eq!(attempts["data"][0]["response_excerpt"], "database down");

        let (s, b) = app.call(Method::POST, &format!("/v1/deliveries/{did}/retry"), Some(&key), None).await;
        assert_eq!(s, StatusCode::ACCEPTED, "{b}");
        let got = r.wait_for(2, WAIT).await;
        assert_eq!(got[0].headers["webhook-id"], got[1].headers["webhook-id"], "receivers dedupe on webhook-id");
        let secret = ep["secret"].as_str().unwrap();
        verify(secret, &got[1]);
    }

    async fn rotated_secrets_sign_with_both_during_the_overlap(app: TestApp) {
        let key = app.new_application("rotate").await;
        let r = Receiver::start(vec![Answer::Status(200)]).await;
        let ep = endpoint(&app, &key, json!({"url": r.url()})).await;
        let id = ep["id"].as_str().unwrap();
        let old = ep["secret"].as_str().unwrap().to_string();
        let (s, rotated) = app.call(Method::POST, &format!("/v1/webhook-endpoints/{id}/rotate-secret"), Some(&key), None).await;
        assert_eq!(s, StatusCode::OK, "{rotated}");
        let new = rotated["secret"].as_str().unwrap().to_string();
        assert_ne!(old, new);
        app.call(Method::POST, &format!("/v1/webhook-endpoints/{id}/test"), Some(&key), None).await;
        let got = r.wait_for(1, WAIT).await;
        let signatures = got[0].headers["webhook-signature"].to_str().unwrap().to_string();
        assert_eq!(signatures.split(' ').count(), 2, "{signatures}");
        verify(&old, &got[0]);
        verify(&new, &got[0]);
        let (_, secrets) = app.call(Method::GET, &format!("/v1/webhook-endpoints/{id}/secret"), Some(&key), None).await;
        assert_eq!(secrets["previous_secret"], old.as_str());
        let (s, b) = app
            .call(Method::POST, &format!("/v1/webhook-endpoints/{id}/rotate-secret"), Some(&key), Some(json!({"overlap_seconds": -1})))
            .await;
        assert_problem(s, &b, StatusCode::UNPROCESSABLE_ENTITY, Some("overlap_seconds"));
    }

    async fn endpoint_input_is_validated(app: TestApp) {
        let key = app.new_application("validate").await;
        let cases = [
            (json!({"url": "ftp://example.com/x"}), "url"),
            (json!({"url": "http://10.0.0.1/hook"}), "url"),
            (json!({"url": "http://169.254.169.254/latest/meta-data"}), "url"),
            (json!({"url": "https://example.com/h", "dialect": "swift"}), "dialect"),
            (json!({"url": "https://example.com/h", "event_types": ["nope"]}), "event_types[0]"),
            (json!({"url": "https://example.com/h", "activation": "later"}), "activation"),
            (json!({"url": "https://example.com/h", "retry_schedule": []}), "retry_schedule"),
            (json!({"url": "https://example.com/h", "rate_limit": 0}), "rate_limit"),
            (json!({"url": "https://example.com/h", "rate_limit": 100001}), "rate_limit"),
            (json!({"url": "https://example.com/h", "max_in_flight": -3}), "max_in_flight"),
        ];
        for (body, field) in cases {
            let (s, b) = app.call(Method::POST, "/v1/webhook-endpoints", Some(&key), Some(body)).await;
            assert_problem(s, &b, StatusCode::UNPROCESSABLE_ENTITY, Some(field));
        }
        let (s, b) = app.call(Method::POST, "/v1/webhook-endpoints", Some(&key), Some(json!({"dialect": "standard"}))).await;
        assert_problem(s, &b, StatusCode::BAD_REQUEST, Some("url"));
        let (s, b) = app.call(Method::POST, "/v1/webhook-endpoints", Some(&key), Some(json!({"url": "https://example.com/h", "rate_limit": "fast"}))).await;
        assert_problem(s, &b, StatusCode::BAD_REQUEST, Some("rate_limit"));
        let (_, list) = app.call(Method::GET, "/v1/webhook-endpoints", Some(&key), None).await;
        assert_eq!(list["data"], json!([]), "nothing refused was stored");
        // Limits round-trip, and null removes one.
        let (s, e) = app.call(Method::POST, "/v1/webhook-endpoints", Some(&key), Some(json!({"url": "https://example.com/h", "rate_limit": 100, "max_in_flight": 4}))).await;
        assert_eq!(s, StatusCode::CREATED, "{e}");
        assert_eq!((e["rate_limit"].clone(), e["max_in_flight"].clone()), (json!(100), json!(4)));
        let path = format!("/v1/webhook-endpoints/{}", e["id"].as_str().unwrap());
        let (s, b) = app.call(Method::PATCH, &path, Some(&key), Some(json!({"max_in_flight": 0}))).await;
        assert_problem(s, &b, StatusCode::UNPROCESSABLE_ENTITY, Some("max_in_flight"));
        let (s, e) = app.call(Method::PATCH, &path, Some(&key), Some(json!({"rate_limit": null}))).await;
        assert_eq!(s, StatusCode::OK, "{e}");
        assert_eq!((e["rate_limit"].clone(), e["max_in_flight"].clone()), (json!(null), json!(4)));
    }

    async fn endpoints_of_other_applications_are_not_found(app: TestApp) {
        let alice = app.new_application("alice").await;
        let mallory = app.new_application("mallory").await;
        let ep = endpoint(&app, &alice, json!({"url": "https://example.com/h"})).await;
        let id = ep["id"].as_str().unwrap();
        for (method, path) in [
            (Method::GET, format!("/v1/webhook-endpoints/{id}")),
            (Method::GET, format!("/v1/webhook-endpoints/{id}/secret")),
            (Method::PATCH, format!("/v1/webhook-endpoints/{id}")),
            (Method::DELETE, format!("/v1/webhook-endpoints/{id}")),
            (Method::POST, format!("/v1/webhook-endpoints/{id}/test")),
            (Method::POST, format!("/v1/webhook-endpoints/{id}/rotate-secret")),
        ] {
            let body = (method == Method::PATCH).then(|| json!({"description": "x"}));
            let (s, b) = app.call(method.clone(), &path, Some(&mallory), body).await;
            assert_problem(s, &b, StatusCode::NOT_FOUND, None);
        }
        let (s, _) = app.call(Method::GET, &format!("/v1/webhook-endpoints/{id}"), Some(&alice), None).await;
        assert_eq!(s, StatusCode::OK);
    }
}

/// A receiver that is down (connection refused) gets every event once it is back.
#[tokio::test]
async fn a_receiver_down_for_a_while_gets_everything_when_back() {
    let Some(app) = TestApp::spawn(freshet_store::testing::Backend::Sqlite, |_| {}).await else {
        return;
    };
    let key = app.new_application("down").await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/hook");
    let ep = endpoint(
        &app,
        &key,
        json!({"url": url, "retry_schedule": [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]}),
    )
    .await;
    let id = ep["id"].as_str().unwrap();
    for n in 0..20 {
        app.call(
            Method::POST,
            &format!("/v1/webhook-endpoints/{id}/test"),
            Some(&key),
            Some(json!({"data": {"n": n}})),
        )
        .await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let r = Receiver::start_on(
        format!("127.0.0.1:{port}").parse().unwrap(),
        vec![Answer::Status(200)],
    )
    .await;
    let got = r.wait_for(20, WAIT).await;
    let mut ns: Vec<u64> = got
        .iter()
        .map(|g| {
            verify(ep["secret"].as_str().unwrap(), g)["data"]["data"]["n"]
                .as_u64()
                .unwrap()
        })
        .collect();
    ns.sort();
    ns.dedup();
    assert_eq!(ns, (0..20).collect::<Vec<_>>());
    let (_, events) = app
        .call(
            Method::GET,
            "/v1/events?type=endpoint.test&limit=1",
            Some(&key),
            None,
        )
        .await;
    let first = events["data"][0]["id"].as_str().unwrap();
    let (_, ds) = app
        .call(
            Method::GET,
            &format!("/v1/events/{first}/deliveries"),
            Some(&key),
            None,
        )
        .await;
    let did = ds["data"][0]["id"].as_str().unwrap();
    let (_, attempts) = app
        .call(
            Method::GET,
            &format!("/v1/deliveries/{did}/attempts"),
            Some(&key),
            None,
        )
        .await;
    let first_attempt = &attempts["data"][0];
    assert_eq!(
        first_attempt["status_code"],
        Value::Null,
        "no response while the receiver was down"
    );
    assert!(
        first_attempt["error"].as_str().unwrap().contains("connect"),
        "{first_attempt}"
    );
}
