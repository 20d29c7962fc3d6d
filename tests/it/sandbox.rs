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
        master_key_file: Some("master.key".into()),
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

const EXE: &str = env!("CARGO_BIN_EXE_freshet");

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn freshet(args: &[&str]) -> std::process::Output {
    std::process::Command::new(EXE)
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap()
}

/// An HTTPS client trusting the PKI's CA, presenting the TPP's transport certificate or none.
fn tls_client(dir: &std::path::Path, with_certificate: bool) -> reqwest::Client {
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap();
    let ca = reqwest::Certificate::from_pem(read("ca.pem").as_bytes()).unwrap();
    let mut b = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(ca);
    if with_certificate {
        let pem = read("tpp-transport.pem") + &read("tpp-transport.key");
        b = b.identity(reqwest::Identity::from_pem(pem.as_bytes()).unwrap());
    }
    b.build().unwrap()
}

#[tokio::test]
async fn sandbox_pki_then_strict_serves_the_banks_over_mutual_tls() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("pki");
    let dir_arg = dir.to_str().unwrap();
    let port = free_port();
    let url = format!("https://127.0.0.1:{port}");

    let out = freshet(&["sandbox", "pki", dir_arg, "--url", &url]);
    assert!(out.status.success(), "{out:?}");
    for name in [
        "ca.pem",
        "server.pem",
        "tpp-transport.pem",
        "tpp-signing.pem",
    ] {
        assert!(dir.join(name).is_file(), "{name}");
    }
    #[cfg(unix)]
    for name in ["server.key", "tpp-transport.key", "tpp-signing.key"] {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join(name))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "{name} is readable by its owner alone");
    }
    let registry: toml::Table =
        toml::from_str(&std::fs::read_to_string(dir.join("providers.toml")).unwrap()).unwrap();
    let providers = registry["provider"].as_array().unwrap();
    let ids: Vec<&str> = providers
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        ["natwest", "lloyds", "tatrabanka", "slsp", "santander-br"]
    );
    assert_eq!(
        providers[0]["issuer"].as_str(),
        Some(format!("{url}/natwest").as_str())
    );
    assert_eq!(providers[2]["token_auth"].as_str(), Some("tls_client_auth"));
    assert_eq!(providers[2]["sign_requests"].as_bool(), Some(true));
    assert_eq!(providers[4]["standard"].as_str(), Some("ofb"));

    // An existing directory is kept unless --force.
    let again = freshet(&["sandbox", "pki", dir_arg, "--url", &url]);
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("--force"),
        "{again:?}"
    );
    let forced = freshet(&["sandbox", "pki", dir_arg, "--url", &url, "--force"]);
    assert!(forced.status.success(), "{forced:?}");

    let _server = tokio::process::Command::new(EXE)
        .args(["sandbox", "--strict", "--pki", dir_arg, "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let tpp = tls_client(&dir, true);
    let discovery = format!("{url}/natwest/.well-known/openid-configuration");
    let mut doc = None;
    for _ in 0..100 {
        if let Ok(r) = tpp.get(&discovery).send().await {
            doc = Some(r.json::<Value>().await.unwrap());
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let doc = doc.expect("the strict sandbox answers over HTTPS");
    assert_eq!(doc["issuer"], format!("{url}/natwest"));
    assert_eq!(doc["token_endpoint"], format!("{url}/natwest/token"));

    let providers = tpp.get(format!("{url}/providers")).send().await.unwrap();
    assert_eq!(providers.status(), StatusCode::OK);
    let anonymous = tls_client(&dir, false);
    let refused = anonymous
        .get(format!("{url}/providers"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        refused.status(),
        StatusCode::UNAUTHORIZED,
        "no client certificate"
    );
}
