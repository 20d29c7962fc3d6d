//! What the strict banks refuse, each refusal with its status and a reason naming the problem.

use freshet_fapi::{SigningKey, jws};
use freshet_sandbox::CLIENT_ID;
use reqwest::StatusCode;
use serde_json::{Value, json};

use super::{
    client::{
        Flow, REDIRECT, Signing, Tpp, answer, foreign_client, other_tpp_client, reason, stranger,
    },
    flows::{accounts_path, authorisation_url, consent, open},
};

#[tokio::test]
async fn no_client_certificate_is_401_on_token_and_api() {
    let tpp = Tpp::start().await;
    let resp = tpp
        .token_with(
            &tpp.anonymous,
            "natwest",
            &[("grant_type", "client_credentials"), ("scope", "accounts")],
            None,
        )
        .await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "invalid_client");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("client certificate")
    );
    for bank_id in ["natwest", "santander-br", "tatrabanka"] {
        let resp = tpp
            .data(
                &tpp.anonymous,
                bank_id,
                accounts_path(bank_id),
                "at_x",
                "c",
                Signing::Registered,
            )
            .await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{bank_id}");
        assert!(
            reason(resp)
                .await
                .contains("a client certificate is required"),
            "{bank_id}"
        );
    }
}

#[tokio::test]
async fn a_certificate_from_another_ca_fails_the_handshake() {
    let tpp = Tpp::start().await;
    let err = foreign_client()
        .post(format!("{}/token", tpp.issuer("natwest")))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .expect_err("the handshake must fail");
    assert!(err.is_connect() || err.is_request(), "{err:?}");
}

/// A client-credentials request at natwest with a client assertion of these claims, signed
/// by `key` (the registered one when `None`).
async fn assertion_refused(tpp: &Tpp, claims: Value, key: Option<&SigningKey>) -> String {
    let assertion = jws::sign(key.unwrap_or(&tpp.signing), None, &claims).unwrap();
    let resp = tpp
        .token_with(
            &tpp.http,
            "natwest",
            &[("grant_type", "client_credentials"), ("scope", "accounts")],
            Some(assertion),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "invalid_client");
    body["error_description"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn bad_client_assertions_are_refused_by_name() {
    let tpp = Tpp::start().await;
    let aud = format!("{}/token", tpp.issuer("natwest"));
    let now = jws::now();
    let with = |patch: Value| {
        let mut c = tpp.assertion_claims(&aud);
        for (k, v) in patch.as_object().unwrap() {
            c[k] = v.clone();
        }
        c
    };
    let why = assertion_refused(
        &tpp,
        with(json!({"iat": now - 400, "exp": now - 200})),
        None,
    )
    .await;
    assert!(why.contains("expired"), "{why}");
    let why = assertion_refused(&tpp, with(json!({"exp": now + 600})), None).await;
    assert!(why.contains("longer than 300"), "{why}");
    let why = assertion_refused(
        &tpp,
        with(json!({"aud": "https://elsewhere.example/token"})),
        None,
    )
    .await;
    assert!(why.contains("`aud`"), "{why}");
    let why = assertion_refused(&tpp, with(json!({"sub": "someone-else"})), None).await;
    assert!(why.contains("`sub`"), "{why}");
    let why = assertion_refused(&tpp, with(json!({})), Some(stranger())).await;
    assert!(why.contains("registered key"), "{why}");

    // The same assertion twice: the second is a replay.
    let claims = with(json!({}));
    let assertion = tpp.sign(&claims);
    let grant = [("grant_type", "client_credentials"), ("scope", "accounts")];
    let first = tpp
        .token_with(&tpp.http, "natwest", &grant, Some(assertion.clone()))
        .await;
    assert_eq!(first.status(), StatusCode::OK);
    let why = assertion_refused(&tpp, claims, None).await;
    assert!(
        why.contains("`jti`") && why.contains("used already"),
        "{why}"
    );
}

#[tokio::test]
async fn obie_consent_creation_needs_a_client_credentials_token() {
    let tpp = Tpp::start().await;
    for bank_id in ["natwest", "santander-br"] {
        let resp = tpp.create_consent(bank_id, None).await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{bank_id}");
        assert!(
            reason(resp).await.contains("client-credentials"),
            "{bank_id}"
        );
    }
}

#[tokio::test]
async fn authorisation_needs_a_request_object_or_par() {
    let tpp = Tpp::start().await;
    let flow = Flow::new();

    // OBIE without a request object.
    let id = consent(&tpp, "lloyds").await;
    let bare = tpp.authorize_url(
        "lloyds",
        &[
            ("client_id", CLIENT_ID),
            ("response_type", "code id_token"),
            ("redirect_uri", REDIRECT),
            ("consent_id", &id),
        ],
    );
    let (status, page) = tpp.approve(&bare).await.unwrap_err();
    assert_eq!(status, 400);
    assert!(page.contains("request is missing"), "{page}");

    // OBIE with a request object that names another redirect in the query.
    let request = tpp.sign(&tpp.request_claims("lloyds", &id, &flow));
    let url = tpp.authorize_url(
        "lloyds",
        &[
            ("client_id", CLIENT_ID),
            ("redirect_uri", "https://127.0.0.1:9/other"),
            ("request", &request),
        ],
    );
    let (status, page) = tpp.approve(&url).await.unwrap_err();
    assert_eq!(status, 400);
    assert!(page.contains("redirect_uri"), "{page}");

    // OBIE with a request object signed by another key.
    let forged = jws::sign(stranger(), None, &tpp.request_claims("lloyds", &id, &flow)).unwrap();
    let url = tpp.authorize_url("lloyds", &[("client_id", CLIENT_ID), ("request", &forged)]);
    let (status, page) = tpp.approve(&url).await.unwrap_err();
    assert_eq!(status, 400);
    assert!(page.contains("registered key"), "{page}");

    // OFB: the request object straight to the authorisation endpoint is refused.
    let id = consent(&tpp, "santander-br").await;
    let request = tpp.sign(&tpp.request_claims("santander-br", &id, &flow));
    let url = tpp.authorize_url(
        "santander-br",
        &[("client_id", CLIENT_ID), ("request", &request)],
    );
    let (status, page) = tpp.approve(&url).await.unwrap_err();
    assert_eq!(status, 400);
    assert!(page.contains("pushed authorisation"), "{page}");

    // OFB: a request_uri serves one decision only.
    let url = authorisation_url(&tpp, "santander-br", &id, &flow).await;
    tpp.approve(&url).await.unwrap();
    let (status, page) = tpp.approve(&url).await.unwrap_err();
    assert_eq!(status, 400);
    assert!(
        page.contains("request_uri is unknown, expired or already used"),
        "{page}"
    );
}

#[tokio::test]
async fn pkce_is_checked_at_the_code_exchange() {
    let tpp = Tpp::start().await;
    let id = consent(&tpp, "santander-br").await;
    let flow = Flow::new();
    let url = authorisation_url(&tpp, "santander-br", &id, &flow).await;
    let got = answer(&tpp.approve(&url).await.unwrap(), true);
    let resp = tpp
        .token(
            "santander-br",
            &[
                ("grant_type", "authorization_code"),
                ("code", &got["code"]),
                ("redirect_uri", REDIRECT),
                ("code_verifier", "not-the-verifier"),
            ],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(reason(resp).await.contains("PKCE"));
}

/// A signed Berlin Group consent creation whose body is not what was signed.
#[tokio::test]
async fn berlin_group_refuses_unsigned_tampered_and_foreign_signatures() {
    let tpp = Tpp::start().await;
    let url = format!("{}/v1/consents", tpp.api("tatrabanka"));
    let body = br#"{"access":{"allPsd2":"allAccounts"},"recurringIndicator":true,"validUntil":"9999-12-31","frequencyPerDay":4}"#;
    let send = |sign: Signing, sent: &'static [u8]| {
        let req = tpp
            .http
            .post(&url)
            .header("content-type", "application/json");
        tpp.signed(req, body, sign).body(sent).send()
    };

    let resp = send(Signing::Registered, br#"{"access":{"allPsd2":"allAccounts"},"recurringIndicator":false,"validUntil":"9999-12-31","frequencyPerDay":4}"#).await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let b: Value = resp.json().await.unwrap();
    assert_eq!(b["tppMessages"][0]["code"], "SIGNATURE_INVALID");
    assert!(
        b["tppMessages"][0]["text"]
            .as_str()
            .unwrap()
            .contains("Digest"),
        "{b}"
    );

    let resp = send(Signing::Stranger, body).await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let b: Value = resp.json().await.unwrap();
    assert_eq!(b["tppMessages"][0]["code"], "SIGNATURE_INVALID");
    assert!(
        b["tppMessages"][0]["text"]
            .as_str()
            .unwrap()
            .contains("does not verify"),
        "{b}"
    );

    let resp = send(Signing::None, body).await.unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let b: Value = resp.json().await.unwrap();
    assert_eq!(b["tppMessages"][0]["code"], "FORMAT_ERROR");
    assert!(
        b["tppMessages"][0]["text"]
            .as_str()
            .unwrap()
            .contains("Signature is required"),
        "{b}"
    );

    let resp = send(Signing::Registered, body).await.unwrap();
    assert_eq!(
        resp.status(),
        StatusCode::CREATED,
        "the same request, signed, passes"
    );
}

#[tokio::test]
async fn a_token_is_refused_over_another_client_certificate() {
    let tpp = Tpp::start().await;
    for bank_id in ["natwest", "santander-br", "tatrabanka"] {
        let (consent_id, token) = open(&tpp, bank_id).await;
        let other = other_tpp_client();
        let resp = tpp
            .data(
                &other,
                bank_id,
                accounts_path(bank_id),
                &token,
                &consent_id,
                Signing::Registered,
            )
            .await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{bank_id}");
        assert!(
            reason(resp)
                .await
                .contains("bound to another client certificate"),
            "{bank_id}"
        );
    }
}

#[tokio::test]
async fn berlin_group_checks_the_oauth_request_and_the_client_certificate() {
    let tpp = Tpp::start().await;
    let id = consent(&tpp, "tatrabanka").await;
    let flow = Flow::new();
    let good = authorisation_url(&tpp, "tatrabanka", &id, &flow).await;
    let without = |drop: &str| {
        let mut url = url::Url::parse(&good).unwrap();
        let kept: Vec<(String, String)> = url
            .query_pairs()
            .into_owned()
            .filter(|(k, _)| k != drop)
            .collect();
        url.query_pairs_mut().clear().extend_pairs(kept);
        url.to_string()
    };
    for (dropped, named) in [
        ("code_challenge", "code_challenge"),
        ("scope", "AIS:"),
        ("redirect_uri", "redirect_uri"),
        ("client_id", "client_id"),
    ] {
        let (status, page) = tpp.approve(&without(dropped)).await.unwrap_err();
        assert_eq!(status, 400, "{dropped}");
        assert!(page.contains(named), "{dropped}: {page}");
    }
    let elsewhere = good.replace("127.0.0.1%3A9%2Fcallback", "127.0.0.1%3A9%2Felsewhere");
    assert_ne!(elsewhere, good);
    let (_, page) = tpp.approve(&elsewhere).await.unwrap_err();
    assert!(page.contains("TPP-Redirect-URI"), "{page}");

    let location = tpp.approve(&good).await.unwrap();
    let code = answer(&location, false)["code"].clone();
    let grant = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT),
        ("code_verifier", flow.verifier.as_str()),
    ];
    let resp = tpp
        .token_with(&other_tpp_client(), "tatrabanka", &grant, None)
        .await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(reason(resp).await.contains("tls_client_auth"));
}

#[tokio::test]
async fn a_rejection_comes_back_in_the_fragment_without_a_token() {
    let tpp = Tpp::start().await;
    let id = consent(&tpp, "natwest").await;
    let flow = Flow::new();
    let url = authorisation_url(&tpp, "natwest", &id, &flow).await;
    let done = tpp
        .anonymous
        .post(&url)
        .form(&[("decision", "reject")])
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), StatusCode::SEE_OTHER);
    let location = done.headers()["location"].to_str().unwrap().to_string();
    let got = answer(&location, true);
    assert_eq!(got["error"], "access_denied");
    assert_eq!(got["state"], flow.state);
    assert!(!got.contains_key("id_token") && !got.contains_key("code"));
}
