//! Each standard's whole secured flow against the strict sandbox, and the steps the refusal
//! tests reuse.

use freshet_fapi::{Jwks, jws, oidc::half_hash};
use freshet_sandbox::{CLIENT_ID, Standard, bank};
use reqwest::StatusCode;
use serde_json::Value;

use super::client::{Flow, REDIRECT, Signing, Tpp, answer};

/// Creates a consent with a client-credentials token (OBIE, OFB) or signed (BG).
pub async fn consent(tpp: &Tpp, bank_id: &str) -> String {
    let standard = bank(bank_id).unwrap().standard;
    let cc = match standard {
        Standard::BerlinGroup => None,
        _ => Some(tpp.client_credentials(bank_id).await),
    };
    let resp = tpp.create_consent(bank_id, cc.as_deref()).await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let body: Value = resp.json().await.unwrap();
    let id = match standard {
        Standard::Obie => &body["Data"]["ConsentId"],
        Standard::BerlinGroup => &body["consentId"],
        Standard::OpenFinanceBrasil => &body["data"]["consentId"],
    };
    id.as_str().unwrap().to_string()
}

/// The authorisation URL of each standard for `consent_id`.
pub async fn authorisation_url(tpp: &Tpp, bank_id: &str, consent_id: &str, flow: &Flow) -> String {
    match bank(bank_id).unwrap().standard {
        Standard::Obie => {
            let request = tpp.sign(&tpp.request_claims(bank_id, consent_id, flow));
            tpp.authorize_url(
                bank_id,
                &[
                    ("client_id", CLIENT_ID),
                    ("response_type", "code id_token"),
                    ("scope", "openid accounts"),
                    ("redirect_uri", REDIRECT),
                    ("state", &flow.state),
                    ("nonce", &flow.nonce),
                    ("request", &request),
                ],
            )
        }
        Standard::OpenFinanceBrasil => {
            let request = tpp.sign(&tpp.request_claims(bank_id, consent_id, flow));
            let pushed = tpp.par(bank_id, &request).await;
            assert_eq!(pushed.status(), StatusCode::CREATED);
            let pushed: Value = pushed.json().await.unwrap();
            assert_eq!(pushed["expires_in"], 90);
            let uri = pushed["request_uri"].as_str().unwrap();
            assert!(
                uri.starts_with("urn:ietf:params:oauth:request_uri:"),
                "{uri}"
            );
            tpp.authorize_url(bank_id, &[("client_id", CLIENT_ID), ("request_uri", uri)])
        }
        Standard::BerlinGroup => tpp.authorize_url(
            bank_id,
            &[
                ("response_type", "code"),
                ("client_id", CLIENT_ID),
                ("scope", &format!("AIS:{consent_id}")),
                ("redirect_uri", REDIRECT),
                ("state", &flow.state),
                (
                    "code_challenge",
                    &freshet_fapi::oidc::pkce_challenge(&flow.verifier),
                ),
                ("code_challenge_method", "S256"),
            ],
        ),
    }
}

/// Checks a hybrid flow's ID token with the bank's published keys.
async fn verify_id_token(
    tpp: &Tpp,
    bank_id: &str,
    consent_id: &str,
    flow: &Flow,
    code: &str,
    token: &str,
) {
    let discovery: Value = tpp
        .anonymous
        .get(format!(
            "{}/.well-known/openid-configuration",
            tpp.issuer(bank_id)
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(discovery["issuer"], tpp.issuer(bank_id));
    assert_eq!(
        discovery["require_pushed_authorization_requests"],
        bank_id == "santander-br"
    );
    let jwks: Jwks = tpp
        .anonymous
        .get(discovery["jwks_uri"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let unverified = jws::decode(token).unwrap();
    assert_eq!(unverified.header.alg, "ES256");
    let key = jwks.find(unverified.header.kid.as_deref()).unwrap();
    assert_eq!(
        unverified.header.kid,
        Some(key.thumbprint()),
        "kid is the thumbprint"
    );
    assert_eq!(jwks.keys[0].alg.as_deref(), Some("ES256"));
    let claims = unverified.verify(&key).unwrap();
    let expect = jws::Expect {
        iss: &tpp.issuer(bank_id),
        aud: &[CLIENT_ID],
        max_lifetime: 300,
        leeway: 5,
    };
    jws::check_claims(&claims, &expect).unwrap();
    assert_eq!(claims["nonce"], flow.nonce.as_str());
    assert_eq!(claims["c_hash"], half_hash(code));
    assert_eq!(claims["s_hash"], half_hash(&flow.state));
    assert_eq!(claims["acr"], "urn:openbanking:psd2:sca");
    assert!(claims["auth_time"].is_i64() && claims["sub"].is_string());
    if bank_id == "santander-br" {
        assert!(claims.get("openbanking_intent_id").is_none());
    } else {
        assert_eq!(claims["openbanking_intent_id"], consent_id);
    }
}

/// The whole flow at `bank_id`: consent, authorisation, code, tokens. Returns the consent id
/// and the access token.
pub async fn open(tpp: &Tpp, bank_id: &str) -> (String, String) {
    let consent_id = consent(tpp, bank_id).await;
    let flow = Flow::new();
    let url = authorisation_url(tpp, bank_id, &consent_id, &flow).await;
    let location = tpp.approve(&url).await.unwrap();
    let hybrid = bank(bank_id).unwrap().standard != Standard::BerlinGroup;
    assert!(location.starts_with(REDIRECT), "{location}");
    let got = answer(&location, hybrid);
    assert_eq!(got["state"], flow.state);
    let code = got["code"].clone();
    if hybrid {
        assert!(
            url::Url::parse(&location).unwrap().query().is_none(),
            "{location}"
        );
        verify_id_token(tpp, bank_id, &consent_id, &flow, &code, &got["id_token"]).await;
    }
    let mut grant = vec![
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT),
    ];
    if bank_id != "natwest" && bank_id != "lloyds" {
        grant.push(("code_verifier", &flow.verifier));
    }
    let tokens = tpp.token(bank_id, &grant).await;
    assert_eq!(tokens.status(), StatusCode::OK);
    let tokens: Value = tokens.json().await.unwrap();
    assert_eq!(tokens["token_type"], "Bearer");
    assert!(tokens["refresh_token"].is_string());
    (
        consent_id,
        tokens["access_token"].as_str().unwrap().to_string(),
    )
}

pub fn accounts_path(bank_id: &str) -> &'static str {
    match bank(bank_id).unwrap().standard {
        Standard::Obie => "/accounts",
        Standard::BerlinGroup => "/v1/accounts",
        Standard::OpenFinanceBrasil => "/open-banking/accounts/v2/accounts",
    }
}

#[tokio::test]
async fn every_standard_completes_its_secured_flow() {
    let tpp = Tpp::start().await;
    for bank_id in ["natwest", "santander-br", "tatrabanka"] {
        let (consent_id, token) = open(&tpp, bank_id).await;
        let resp = tpp
            .data(
                &tpp.http,
                bank_id,
                accounts_path(bank_id),
                &token,
                &consent_id,
                Signing::Registered,
            )
            .await;
        assert_eq!(resp.status(), StatusCode::OK, "{bank_id}");
        let body: Value = resp.json().await.unwrap();
        let list = match bank(bank_id).unwrap().standard {
            Standard::Obie => &body["Data"]["Account"],
            Standard::BerlinGroup => &body["accounts"],
            Standard::OpenFinanceBrasil => &body["data"],
        };
        assert!(!list.as_array().unwrap().is_empty(), "{body}");
    }
}

#[tokio::test]
async fn berlin_group_shortens_valid_until_to_180_days() {
    let tpp = Tpp::start().await;
    let id = consent(&tpp, "slsp").await;
    let req = tpp
        .http
        .get(format!("{}/v1/consents/{id}", tpp.api("slsp")));
    let resp = tpp
        .signed(req, b"", Signing::Registered)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    let want = time::OffsetDateTime::now_utc().date() + time::Duration::days(180);
    assert_eq!(body["validUntil"], want.to_string());
}
