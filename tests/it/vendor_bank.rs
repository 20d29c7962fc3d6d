//! Vendor dialects whose words come from the bank itself: Klavi's `permissionsGranted` is what
//! the bank's consent answer grants. Every test here looks only at what receivers got.

use std::time::Duration;

use freshet_dialects::klavi::verify_klavi;
use freshet_engine::testing::{Answer, Received, Receiver};
use freshet_store::testing::Backend;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::{
    refresh::Client,
    support::{TestApp, run_with},
};

fn body(g: &Received) -> Value {
    serde_json::from_slice(&g.body).unwrap()
}

async fn endpoint(c: &Client<'_>, body: Value) -> Value {
    let (s, e) = c
        .call(Method::POST, "/v1/webhook-endpoints", Some(body))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{e}");
    e
}

/// The Klavi event named `name` among what `r` got, once it arrived, its signature checked
/// under each of `secrets`: its `payload.consents`, and its `X-Klavi-Signature`.
async fn klavi_event(r: &Receiver, secrets: &[&str], name: &str) -> (Value, String) {
    for _ in 0..200 {
        let found = r.received().into_iter().find_map(|g| {
            let b = body(&g);
            (b[0]["eventName"] == name).then_some((g, b))
        });
        if let Some((g, b)) = found {
            let sig = g.headers["x-klavi-signature"].to_str().unwrap();
            for secret in secrets {
                assert!(verify_klavi(secret, sig, &g.body), "{name}: signature");
            }
            return (b[0]["payload"]["consents"].clone(), sig.to_string());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no {name} arrived");
}

/// A customer asks santander-br for card data too; the bank grants only the groups it offers
/// (it has no cards), and `consent_authorised` says so: `permissionsGranted` a strict subset
/// of `permissionsApply`. A revoked consent keeps saying what it had granted (Klavi's own
/// example); an expired one grants nothing. After a secret rotation `X-Klavi-Signature`
/// carries a signature per active secret, and either secret verifies it.
#[tokio::test]
async fn klavi_permissions_are_what_the_bank_granted() {
    run_with(
        Backend::Sqlite,
        |c| c.refresh_tick = Duration::from_millis(500),
        |app| async move {
            check_klavi_permissions(&app).await;
            app.stop().await;
        },
    )
    .await;
}

async fn check_klavi_permissions(app: &TestApp) {
    let c = Client {
        app,
        key: app.new_application("klavi-permissions").await,
    };
    let r = Receiver::start(vec![Answer::Status(200)]).await;
    let e = endpoint(
        &c,
        json!({"url": r.url(), "dialect": "klavi",
               "event_types": ["consent.authorised", "consent.revoked", "consent.expired"]}),
    )
    .await;
    let secret = e["secret"].as_str().unwrap().to_string();
    let customer = app
        .new_customer(&c.key, json!({"personal_tax_id": "25872252137"}))
        .await;
    let cid = customer["id"].as_str().unwrap();
    let asked = json!({"permissions": ["registration_all", "accounts_all", "credit_cards_all"]});
    let consent = c.connect(cid, "santander-br", asked).await;
    assert_eq!(
        consent["permissions_granted"],
        json!(["registration_all", "accounts_all"]),
        "{consent}"
    );

    let (authorised, sig) = klavi_event(&r, &[&secret], "consent_authorised").await;
    assert_eq!(sig.split(' ').count(), 1, "one secret, one signature");
    assert_eq!(
        authorised["permissionsApply"],
        json!(["REGISTRATION_ALL", "ACCOUNTS_ALL", "CREDIT_CARDS_ALL"])
    );
    assert_eq!(
        authorised["permissionsGranted"],
        json!(["REGISTRATION_ALL", "ACCOUNTS_ALL"]),
        "the bank has no cards"
    );

    // A rotation: until the overlap ends both secrets sign, either verifies.
    let path = format!(
        "/v1/webhook-endpoints/{}/rotate-secret",
        e["id"].as_str().unwrap()
    );
    let (s, rotated) = c.call(Method::POST, &path, None).await;
    assert_eq!(s, StatusCode::OK, "{rotated}");
    let new_secret = rotated["secret"].as_str().unwrap().to_string();
    assert_ne!(new_secret, secret);

    let id = consent["id"].as_str().unwrap();
    let (s, revoked) = c
        .call(Method::DELETE, &format!("/v1/consents/{id}"), None)
        .await;
    assert_eq!(s, StatusCode::OK, "{revoked}");
    let (revoked, sig) = klavi_event(&r, &[&new_secret, &secret], "consent_revoked").await;
    assert_eq!(
        sig.split(' ').count(),
        2,
        "one signature per active secret: {sig}"
    );
    assert_eq!(revoked["permissionsApply"], authorised["permissionsApply"]);
    assert_eq!(
        revoked["permissionsGranted"],
        authorised["permissionsGranted"]
    );

    // A consent that expires a few seconds after it is granted.
    let soon = freshet_model::time::now() + time::Duration::seconds(4);
    let soon = soon
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let short = c
        .connect(
            cid,
            "santander-br",
            json!({"permissions": ["accounts_all"], "expires_at": soon}),
        )
        .await;
    assert_eq!(short["permissions_granted"], json!(["accounts_all"]));
    let (expired, _) = klavi_event(&r, &[&new_secret, &secret], "consent_expired").await;
    assert_eq!(expired["consentId"], short["id"]);
    assert_eq!(expired["permissionsApply"], json!(["ACCOUNTS_ALL"]));
    assert_eq!(expired["permissionsGranted"], json!([]));
}
