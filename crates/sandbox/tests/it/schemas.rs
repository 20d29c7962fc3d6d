//! What the sandbox banks answer validates against the official OpenAPI documents: every
//! endpoint's success body, its paging links, and the error bodies a connector reads.

use freshet_sandbox::SandboxConfig;
use reqwest::{Method, Response};
use serde_json::{Value, json};

use crate::{
    harness::{Bank, Opened},
    openapi::Spec,
};

const OBIE: &str = "obie-account-info-3.1.11.json";
const BERLIN: &str = "berlin-group-nextgenpsd2-1.3.11.json";
const BR_ACCOUNTS: &str = "open-finance-brasil-accounts-2.4.2.json";
const BR_CONSENTS: &str = "open-finance-brasil-consents-2.2.0.json";

/// Asserts the status and that the body matches the specification's schema for it.
async fn conforms(spec: &Spec, template: &str, method: &str, status: u16, resp: Response) -> Value {
    let got = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    assert_eq!(got, status, "{method} {template}: {text}");
    let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    let errors = spec.check(template, method, status, &body);
    assert!(
        errors.is_empty(),
        "{method} {template} {status} breaks the specification:\n{}\n{body:#}",
        errors.join("\n")
    );
    body
}

async fn fault(b: &Bank, bank_id: &str, kind: &str) {
    let r = b
        .control(
            Method::POST,
            "/control/faults",
            Some(json!({"provider_id": bank_id, "kind": kind, "times": 1})),
        )
        .await;
    assert_eq!(r.status(), 201);
}

#[tokio::test]
async fn obie_answers_conform() {
    let b = Bank::start(SandboxConfig {
        page_size: 20,
        ..Default::default()
    })
    .await;
    let spec = Spec::load(OBIE);
    let created = conforms(
        &spec,
        "/account-access-consents",
        "post",
        201,
        b.create_consent("natwest").await,
    )
    .await;
    assert_eq!(created["Data"]["Status"], "AwaitingAuthorisation");
    let opened = b.open("natwest", Some("alice")).await;
    let got = b
        .call(
            Method::GET,
            "natwest",
            &format!("/account-access-consents/{}", opened.consent_id),
            None,
            None,
        )
        .send()
        .await
        .unwrap();
    conforms(
        &spec,
        "/account-access-consents/{ConsentId}",
        "get",
        200,
        got,
    )
    .await;
    let accounts = conforms(
        &spec,
        "/accounts",
        "get",
        200,
        b.get("natwest", "/accounts", &opened).await,
    )
    .await;
    let id = accounts["Data"]["Account"][0]["AccountId"]
        .as_str()
        .unwrap()
        .to_string();
    conforms(
        &spec,
        "/accounts/{AccountId}",
        "get",
        200,
        b.get("natwest", &format!("/accounts/{id}"), &opened).await,
    )
    .await;
    conforms(
        &spec,
        "/accounts/{AccountId}/balances",
        "get",
        200,
        b.get("natwest", &format!("/accounts/{id}/balances"), &opened)
            .await,
    )
    .await;
    let first = conforms(
        &spec,
        "/accounts/{AccountId}/transactions",
        "get",
        200,
        b.get("natwest", &format!("/accounts/{id}/transactions"), &opened)
            .await,
    )
    .await;
    let next = first["Links"]["Next"]
        .as_str()
        .expect("90 days span several pages of 20");
    conforms(
        &spec,
        "/accounts/{AccountId}/transactions",
        "get",
        200,
        b.get("natwest", next, &opened).await,
    )
    .await;

    conforms(
        &spec,
        "/accounts/{AccountId}/balances",
        "get",
        400,
        b.get("natwest", "/accounts/nope/balances", &opened).await,
    )
    .await;
    let bad = b
        .call(
            Method::POST,
            "natwest",
            "/account-access-consents",
            None,
            None,
        )
        .json(&json!({"Data": {"Permissions": ["ReadEverything"]}, "Risk": {}}))
        .send()
        .await
        .unwrap();
    conforms(&spec, "/account-access-consents", "post", 400, bad).await;
    fault(&b, "natwest", "reauth_required").await;
    conforms(
        &spec,
        "/accounts",
        "get",
        403,
        b.get("natwest", "/accounts", &opened).await,
    )
    .await;
    fault(&b, "natwest", "provider_failure").await;
    conforms(
        &spec,
        "/accounts",
        "get",
        500,
        b.get("natwest", "/accounts", &opened).await,
    )
    .await;
    fault(&b, "natwest", "rate_limited").await;
    let limited = b.get("natwest", "/accounts", &opened).await;
    assert_eq!(limited.status(), 429);
    assert!(
        limited.headers().contains_key("retry-after"),
        "OBIE says when to come back"
    );
    let unauthorised = b
        .get(
            "natwest",
            "/accounts",
            &Opened {
                consent_id: opened.consent_id.clone(),
                token: "at_wrong".into(),
            },
        )
        .await;
    assert_eq!(unauthorised.status(), 401);
    assert!(
        unauthorised.text().await.unwrap().is_empty(),
        "OBIE's 401 has no body"
    );
    let deleted = b
        .call(
            Method::DELETE,
            "natwest",
            &format!("/account-access-consents/{}", opened.consent_id),
            None,
            None,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
}

#[tokio::test]
async fn berlin_group_answers_conform() {
    let b = Bank::start(SandboxConfig {
        page_size: 20,
        ..Default::default()
    })
    .await;
    let spec = Spec::load(BERLIN);
    let created = conforms(
        &spec,
        "/v1/consents",
        "post",
        201,
        b.create_consent("tatrabanka").await,
    )
    .await;
    assert_eq!(created["consentStatus"], "received");
    let opened = b.open("tatrabanka", Some("jana")).await;
    let c = &opened.consent_id;
    conforms(
        &spec,
        "/v1/consents/{consentId}",
        "get",
        200,
        b.call(
            Method::GET,
            "tatrabanka",
            &format!("/v1/consents/{c}"),
            None,
            None,
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    let status = conforms(
        &spec,
        "/v1/consents/{consentId}/status",
        "get",
        200,
        b.call(
            Method::GET,
            "tatrabanka",
            &format!("/v1/consents/{c}/status"),
            None,
            None,
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status["consentStatus"], "valid");
    let accounts = conforms(
        &spec,
        "/v1/accounts",
        "get",
        200,
        b.get("tatrabanka", "/v1/accounts", &opened).await,
    )
    .await;
    let id = accounts["accounts"][0]["resourceId"]
        .as_str()
        .unwrap()
        .to_string();
    conforms(
        &spec,
        "/v1/accounts/{account-id}/balances",
        "get",
        200,
        b.get(
            "tatrabanka",
            &format!("/v1/accounts/{id}/balances"),
            &opened,
        )
        .await,
    )
    .await;
    let first = conforms(
        &spec,
        "/v1/accounts/{account-id}/transactions",
        "get",
        200,
        b.get(
            "tatrabanka",
            &format!("/v1/accounts/{id}/transactions?bookingStatus=both"),
            &opened,
        )
        .await,
    )
    .await;
    let next = first["transactions"]["_links"]["next"]["href"]
        .as_str()
        .expect("several pages");
    conforms(
        &spec,
        "/v1/accounts/{account-id}/transactions",
        "get",
        200,
        b.get("tatrabanka", next, &opened).await,
    )
    .await;

    let no_request_id = b
        .http
        .get(format!("{}/v1/accounts", b.api("tatrabanka")))
        .bearer_auth(&opened.token)
        .header("Consent-ID", c)
        .send()
        .await
        .unwrap();
    conforms(&spec, "/v1/accounts", "get", 400, no_request_id).await;
    let wrong = Opened {
        consent_id: c.clone(),
        token: "at_wrong".into(),
    };
    conforms(
        &spec,
        "/v1/accounts",
        "get",
        401,
        b.get("tatrabanka", "/v1/accounts", &wrong).await,
    )
    .await;
    let other = Opened {
        consent_id: "0000".into(),
        token: opened.token.clone(),
    };
    conforms(
        &spec,
        "/v1/accounts",
        "get",
        403,
        b.get("tatrabanka", "/v1/accounts", &other).await,
    )
    .await;
    conforms(
        &spec,
        "/v1/accounts/{account-id}/balances",
        "get",
        404,
        b.get("tatrabanka", "/v1/accounts/nope/balances", &opened)
            .await,
    )
    .await;
    fault(&b, "tatrabanka", "rate_limited").await;
    let limited = b.get("tatrabanka", "/v1/accounts", &opened).await;
    assert!(
        !limited.headers().contains_key("retry-after"),
        "Berlin Group does not say when"
    );
    conforms(&spec, "/v1/accounts", "get", 429, limited).await;
    fault(&b, "tatrabanka", "reauth_required").await;
    let body = conforms(
        &spec,
        "/v1/accounts",
        "get",
        401,
        b.get("tatrabanka", "/v1/accounts", &opened).await,
    )
    .await;
    assert_eq!(body["tppMessages"][0]["code"], "CONSENT_EXPIRED");
}

#[tokio::test]
async fn open_finance_brasil_answers_conform() {
    // Brasil's link patterns want a host name with a top-level domain, not a loopback address.
    let b = Bank::start(SandboxConfig {
        page_size: 20,
        public_url: Some("https://sandbox.freshet.test".into()),
        ..Default::default()
    })
    .await;
    let consents = Spec::load(BR_CONSENTS);
    let spec = Spec::load(BR_ACCOUNTS);
    let created = conforms(
        &consents,
        "/consents",
        "post",
        201,
        b.create_consent("santander-br").await,
    )
    .await;
    assert_eq!(created["data"]["status"], "AWAITING_AUTHORISATION");
    let opened = b.open("santander-br", None).await;
    let c = &opened.consent_id;
    let got = conforms(
        &consents,
        "/consents/{consentId}",
        "get",
        200,
        b.call(
            Method::GET,
            "santander-br",
            &format!("/open-banking/consents/v2/consents/{c}"),
            None,
            None,
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(got["data"]["status"], "AUTHORISED");
    let accounts = conforms(
        &spec,
        "/accounts",
        "get",
        200,
        b.get(
            "santander-br",
            "/open-banking/accounts/v2/accounts",
            &opened,
        )
        .await,
    )
    .await;
    let id = accounts["data"][0]["accountId"]
        .as_str()
        .unwrap()
        .to_string();
    let base = format!("/open-banking/accounts/v2/accounts/{id}");
    conforms(
        &spec,
        "/accounts/{accountId}/balances",
        "get",
        200,
        b.get("santander-br", &format!("{base}/balances"), &opened)
            .await,
    )
    .await;
    let first = conforms(
        &spec,
        "/accounts/{accountId}/transactions",
        "get",
        200,
        b.get(
            "santander-br",
            &format!("{base}/transactions?page-size=10"),
            &opened,
        )
        .await,
    )
    .await;
    assert!(
        first["links"]["next"].is_string(),
        "ten rows a page makes several pages"
    );
    conforms(
        &spec,
        "/accounts/{accountId}/transactions",
        "get",
        200,
        b.get(
            "santander-br",
            &format!("{base}/transactions?page-size=10&page=2"),
            &opened,
        )
        .await,
    )
    .await;

    let bad = b
        .call(
            Method::POST,
            "santander-br",
            "/open-banking/consents/v2/consents",
            None,
            None,
        )
        .json(&json!({"data": {"permissions": ["ACCOUNTS_READ"]}}))
        .send()
        .await
        .unwrap();
    conforms(&consents, "/consents", "post", 400, bad).await;
    conforms(
        &spec,
        "/accounts/{accountId}/transactions",
        "get",
        422,
        b.get(
            "santander-br",
            &format!("{base}/transactions?page-size=5000"),
            &opened,
        )
        .await,
    )
    .await;
    let wrong = Opened {
        consent_id: c.clone(),
        token: "at_wrong".into(),
    };
    conforms(
        &spec,
        "/accounts",
        "get",
        401,
        b.get("santander-br", "/open-banking/accounts/v2/accounts", &wrong)
            .await,
    )
    .await;
    conforms(
        &spec,
        "/accounts/{accountId}/balances",
        "get",
        404,
        b.get(
            "santander-br",
            "/open-banking/accounts/v2/accounts/nope/balances",
            &opened,
        )
        .await,
    )
    .await;
    fault(&b, "santander-br", "rate_limited").await;
    conforms(
        &spec,
        "/accounts",
        "get",
        429,
        b.get(
            "santander-br",
            "/open-banking/accounts/v2/accounts",
            &opened,
        )
        .await,
    )
    .await;
    fault(&b, "santander-br", "provider_failure").await;
    conforms(
        &spec,
        "/accounts",
        "get",
        500,
        b.get(
            "santander-br",
            "/open-banking/accounts/v2/accounts",
            &opened,
        )
        .await,
    )
    .await;
    let deleted = b
        .call(
            Method::DELETE,
            "santander-br",
            &format!("/open-banking/consents/v2/consents/{c}"),
            None,
            None,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    conforms(
        &spec,
        "/accounts",
        "get",
        403,
        b.get(
            "santander-br",
            "/open-banking/accounts/v2/accounts",
            &opened,
        )
        .await,
    )
    .await;
    let revoked = conforms(
        &consents,
        "/consents/{consentId}",
        "get",
        200,
        b.call(
            Method::GET,
            "santander-br",
            &format!("/open-banking/consents/v2/consents/{c}"),
            None,
            None,
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(
        revoked["data"]["rejection"]["reason"]["code"],
        "CUSTOMER_MANUALLY_REVOKED"
    );
}
