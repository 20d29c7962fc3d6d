//! Failed authentication is throttled per client address: a client guessing keys meets 429
//! and `Retry-After`; its successful requests cost it nothing, and other addresses are not
//! affected.

use std::{net::IpAddr, time::Duration};

use reqwest::{Method, StatusCode};

use crate::{
    on_both_stores,
    support::{ADMIN_TOKEN, TestApp, assert_problem},
};

/// What `http` gets for `GET /v1/customers` with `key`.
async fn status(app: &TestApp, http: &reqwest::Client, key: &str) -> reqwest::Response {
    http.get(app.url("/v1/customers"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
}

fn client_at(ip: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(ip.parse::<IpAddr>().unwrap())
        .build()
        .unwrap()
}

on_both_stores! {
    async fn guessing_keys_is_throttled_per_address(app: TestApp) {
        let key = app.new_application("throttle").await;
        let guesser = client_at("127.0.0.1");
        // Successful requests are not counted.
        for _ in 0..60 {
            assert_eq!(status(&app, &guesser, &key).await.status(), StatusCode::OK);
        }
        let started = std::time::Instant::now();
        let (mut refused, mut throttled) = (0, 0);
        let mut retry_after = 0;
        for i in 0..200 {
            let res = status(&app, &guesser, &format!("fsk_0123456789abcdef_wrong{i}")).await;
            match res.status() {
                StatusCode::UNAUTHORIZED => refused += 1,
                StatusCode::TOO_MANY_REQUESTS => {
                    throttled += 1;
                    retry_after = res.headers()["retry-after"].to_str().unwrap().parse().unwrap();
                    let body: serde_json::Value = res.json().await.unwrap();
                    assert_problem(StatusCode::TOO_MANY_REQUESTS, &body, StatusCode::TOO_MANY_REQUESTS, None);
                }
                other => panic!("unexpected {other}"),
            }
        }
        let allowed = 30 + started.elapsed().as_secs() as usize + 1;
        assert!(refused >= 30 && refused <= allowed, "{refused} wrong keys were checked");
        assert!(throttled >= 200 - allowed, "{throttled} throttled");
        assert!((1..=5).contains(&retry_after), "Retry-After: {retry_after}");

        // While throttled, even the right key and the admin token are not looked at.
        assert_eq!(status(&app, &guesser, &key).await.status(), StatusCode::TOO_MANY_REQUESTS);
        let (s, b) = app
            .call(Method::POST, "/v1/applications", Some(ADMIN_TOKEN), Some(serde_json::json!({"name": "x"})))
            .await;
        assert_eq!(s, StatusCode::TOO_MANY_REQUESTS, "{b}");

        // Another address is not affected.
        let other = client_at("127.0.0.2");
        assert_eq!(status(&app, &other, &key).await.status(), StatusCode::OK);
        assert_eq!(status(&app, &other, "fsk_0123456789abcdef_nope").await.status(), StatusCode::UNAUTHORIZED);

        // After Retry-After, the guesser may try again.
        tokio::time::sleep(Duration::from_secs(retry_after)).await;
        assert_eq!(status(&app, &guesser, &key).await.status(), StatusCode::OK);
    }
}
