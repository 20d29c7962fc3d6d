//! What a bank tells the TPP of its own accord: the permissions it actually granted.

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
