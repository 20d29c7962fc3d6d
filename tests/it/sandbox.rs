//! The sandbox bank inside `freshet serve`: mounted at /sandbox in development, absent in
//! production, and usable the way the quick start says, with `curl -d decision=approve`.

use freshet::config::{Config, FileConfig, ServeArgs};
use freshet_store::testing::Backend;
use reqwest::{StatusCode, redirect::Policy};
use serde_json::{Value, json};

use crate::support::TestApp;

#[tokio::test]
async fn serve_mounts_the_sandbox_in_development_only() {
    let Some(app) = TestApp::spawn(Backend::Sqlite, |_| {}).await else {
        return;
    };
    let providers: Value = app
        .http
        .get(app.url("/sandbox/providers"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = providers["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        ["natwest", "lloyds", "tatrabanka", "slsp", "santander-br"]
    );
    let natwest = &providers["data"][0];
    assert_eq!(
        natwest["api_base"],
        format!("{}/sandbox/natwest/open-banking/v3.1/aisp", app.base),
        "links are absolute, under the mount"
    );

    // A consent approved by a script, as a person would on the page.
    let no_redirects = reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap();
    let created: Value = app
        .http
        .post(format!(
            "{}/account-access-consents",
            natwest["api_base"].as_str().unwrap()
        ))
        .json(&json!({"Data": {"Permissions": ["ReadAccountsDetail"]}, "Risk": {}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let consent = created["Data"]["ConsentId"].as_str().unwrap();
    let page = format!(
        "{}?consent_id={consent}&redirect_uri=http://127.0.0.1:9/cb&state=x",
        natwest["authorize_url"].as_str().unwrap()
    );
    assert!(
        app.http
            .get(&page)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
            .contains("Approve")
    );
    let approved = no_redirects
        .post(&page)
        .form(&[("decision", "approve")])
        .send()
        .await
        .unwrap();
    assert_eq!(approved.status(), StatusCode::SEE_OTHER);
    assert!(
        approved.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with("http://127.0.0.1:9/cb?code=")
    );

    let Some(off) = TestApp::spawn(Backend::Sqlite, |c| c.sandbox = false).await else {
        return;
    };
    let r = off
        .http
        .get(off.url("/sandbox/providers"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::NOT_FOUND,
        "no sandbox when it is off"
    );
}

#[test]
fn the_sandbox_is_on_by_default_in_development_and_off_in_production() {
    let resolve = |args: ServeArgs| Config::merge(args, FileConfig::default()).unwrap().sandbox;
    assert!(resolve(ServeArgs::default()));
    let production = ServeArgs {
        production: true,
        admin_token: Some("a-long-enough-admin-token".into()),
        ..Default::default()
    };
    assert!(!resolve(production.clone()));
    assert!(
        resolve(ServeArgs {
            sandbox: Some(true),
            ..production
        }),
        "the flag wins"
    );
    assert!(!resolve(ServeArgs {
        sandbox: Some(false),
        ..Default::default()
    }));
}
