//! Real banks' security, end to end: a node in the production profile, whose only providers
//! come from the registry `freshet sandbox pki` writes, against `freshet sandbox --strict`
//! over HTTPS on loopback — mutual TLS, client assertions, request objects, PAR, ID tokens,
//! Berlin Group's signed requests — with the keys and certificates made at run time.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use freshet::config::{Config, Profile};
use freshet_store::testing::Backend;
use reqwest::{Method, StatusCode, redirect::Policy};
use rust_decimal::Decimal;
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::{
    refresh::{Client, quiet},
    support::{TestApp, assert_problem, run_with},
};

const EXE: &str = env!("CARGO_BIN_EXE_freshet");
/// The CPF the Brasil bank's consents name.
const CPF: &str = "76109277673";
const BANKS: [&str; 5] = ["natwest", "lloyds", "tatrabanka", "slsp", "santander-br"];

/// A strict sandbox bank started from its own test PKI, in a process of its own.
pub struct StrictBank {
    pub dir: tempfile::TempDir,
    pub url: String,
    pub registry: PathBuf,
    _child: tokio::process::Child,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `freshet sandbox pki DIR --url URL`.
pub fn pki(dir: &Path, url: &str) {
    let out = std::process::Command::new(EXE)
        .args(["sandbox", "pki"])
        .arg(dir)
        .args(["--url", url])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "freshet sandbox pki: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl StrictBank {
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let url = format!("https://127.0.0.1:{port}");
        pki(dir.path(), &url);
        let child = tokio::process::Command::new(EXE)
            .args(["sandbox", "--strict", "--pki"])
            .arg(dir.path())
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                let registry = dir.path().join("providers.toml");
                return Self {
                    dir,
                    url,
                    registry,
                    _child: child,
                };
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the strict sandbox did not start on {port}");
    }

    pub fn ca(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("ca.pem")).unwrap()
    }

    /// A copy of the registry with `edit` applied to its text.
    pub fn registry_with(&self, edit: impl FnOnce(String) -> String) -> PathBuf {
        let text = std::fs::read_to_string(&self.registry).unwrap();
        let file = self.dir.path().join(format!("edited-{}.toml", free_port()));
        std::fs::write(&file, edit(text)).unwrap();
        file
    }
}

/// A production node whose providers are `registry`'s; webhooks may go to loopback only
/// because the operator allows it.
pub fn production(registry: PathBuf) -> impl FnOnce(&mut Config) {
    move |c| {
        quiet(c);
        c.profile = Profile::Production;
        c.sandbox = false;
        c.providers = Some(registry);
        c.allow_targets = vec!["127.0.0.1/32".parse().unwrap()];
    }
}

/// What the bank sent the customer back with, before it reaches freshet.
pub struct Return {
    pub callback: String,
    pub params: Vec<(String, String)>,
    /// In the fragment (hybrid flow) rather than the query.
    pub fragment: bool,
}

/// The customer's browser at the bank: opens the page, approves as `customer`, and stops at
/// the redirect back.
pub async fn approve_at_bank(url: &str, ca: &str, customer: &str) -> Return {
    let browser = browser(ca);
    let page = browser.get(url).send().await.unwrap();
    let status = page.status();
    let html = page.text().await.unwrap();
    assert_eq!(status, StatusCode::OK, "the bank's page: {html}");
    assert!(html.contains("Approve"), "{html}");
    let decided = browser
        .post(url)
        .form(&[("decision", "approve"), ("customer", customer)])
        .send()
        .await
        .unwrap();
    assert_eq!(decided.status(), StatusCode::SEE_OTHER);
    let location = url::Url::parse(decided.headers()["location"].to_str().unwrap()).unwrap();
    let (raw, fragment) = match location.fragment() {
        Some(f) => (f.to_string(), true),
        None => (location.query().unwrap_or_default().to_string(), false),
    };
    let mut callback = location.clone();
    callback.set_fragment(None);
    callback.set_query(None);
    Return {
        callback: callback.into(),
        params: form_urlencoded::parse(raw.as_bytes())
            .into_owned()
            .collect(),
        fragment,
    }
}

impl Return {
    pub fn get(&self, name: &str) -> &str {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.as_str())
    }

    pub fn set(&mut self, name: &str, value: &str) {
        self.params.retain(|(k, _)| k != name);
        self.params.push((name.into(), value.into()));
    }

    /// Hands it to freshet as the browser would: the fragment posted by the callback page's
    /// script, a query as it is. Answers the page freshet shows.
    pub async fn deliver(&self) -> String {
        let http = reqwest::Client::new();
        let resp = if self.fragment {
            let page = http.get(&self.callback).send().await.unwrap();
            let script = page.text().await.unwrap();
            assert!(
                script.contains("location.hash") && script.contains(r#"f.method = "post""#),
                "the callback page posts the fragment back: {script}"
            );
            http.post(&self.callback).form(&self.params).send().await
        } else {
            http.get(&self.callback).query(&self.params).send().await
        }
        .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        resp.text().await.unwrap()
    }
}

fn browser(ca: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(Policy::none())
        .add_root_certificate(reqwest::Certificate::from_pem(ca.as_bytes()).unwrap())
        .build()
        .unwrap()
}

/// Creates a link at `provider` for `customer`; the link's answer.
async fn link(c: &Client<'_>, customer: &str, provider: &str) -> (StatusCode, Value) {
    c.call(
        Method::POST,
        &format!("/v1/customers/{customer}/links"),
        Some(json!({"provider_id": provider})),
    )
    .await
}

async fn consent(c: &Client<'_>, id: &str) -> Value {
    let (s, consent) = c
        .call(Method::GET, &format!("/v1/consents/{id}"), None)
        .await;
    assert_eq!(s, StatusCode::OK, "{consent}");
    consent
}

/// Whether the store holds bank tokens for a consent.
async fn has_tokens(app: &TestApp, consent: &str) -> bool {
    let id = freshet_model::refresh::ConsentId(consent.parse().unwrap());
    app.db.store.consent_tokens(id).await.unwrap().is_some()
}

async fn every_bank_connects_and_refreshes_over_its_security_profile(backend: Backend) {
    let bank = StrictBank::start().await;
    let ca = bank.ca();
    run_with(
        backend,
        production(bank.registry.clone()),
        |app| async move {
            let c = Client {
                key: app.new_application("strict").await,
                app: &app,
            };
            let (s, list) = c.call(Method::GET, "/v1/providers", None).await;
            assert_eq!(s, StatusCode::OK);
            let ids: Vec<&str> = list["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["id"].as_str().unwrap())
                .collect();
            assert_eq!(ids, BANKS, "the registry is the only source of providers");
            assert!(!list.to_string().contains("PRIVATE"), "{list}");

            let customer = app
                .new_customer(&c.key, json!({"personal_tax_id": CPF}))
                .await;
            let cid = customer["id"].as_str().unwrap();
            for provider in BANKS {
                let (s, l) = link(&c, cid, provider).await;
                assert_eq!(s, StatusCode::CREATED, "{provider}: {l}");
                let url = l["consent"]["authorisation_url"].as_str().unwrap();
                let back = approve_at_bank(url, &ca, "carol").await;
                let hybrid = !matches!(provider, "tatrabanka" | "slsp");
                assert_eq!(
                    back.fragment, hybrid,
                    "{provider}: code id_token in the fragment"
                );
                if hybrid {
                    assert!(!back.get("id_token").is_empty(), "{provider}");
                }
                let page = back.deliver().await;
                assert!(page.contains("Connected"), "{provider}: {page}");
                let id = l["consent"]["id"].as_str().unwrap();
                let consent = consent(&c, id).await;
                assert_eq!(consent["status"], "authorised", "{provider}: {consent}");
                let expires = OffsetDateTime::parse(
                    consent["expires_at"].as_str().unwrap(),
                    &time::format_description::well_known::Rfc3339,
                )
                .unwrap();
                let days = (expires - OffsetDateTime::now_utc()).whole_days();
                assert!(
                    (85..=181).contains(&days),
                    "{provider}: the bank's expiry, {days} days"
                );
                assert!(has_tokens(&app, id).await);
            }

            let (s, task) = c
                .call(Method::POST, &format!("/v1/customers/{cid}/refresh"), None)
                .await;
            assert_eq!(s, StatusCode::ACCEPTED, "{task}");
            let done = c.finished(task["task_id"].as_str().unwrap()).await;
            assert_eq!(done["status"], "Completed", "{done}");
            assert_eq!(done["result"], "success", "{done}");

            let (_, accounts) = c
                .call(Method::GET, &format!("/v1/customers/{cid}/accounts"), None)
                .await;
            let accounts = accounts["data"].as_array().unwrap();
            let today = OffsetDateTime::now_utc().date();
            for provider in BANKS {
                let sb = freshet_sandbox::bank(provider).unwrap();
                let truth = freshet_sandbox::data::accounts(1, sb, "carol");
                let mine: Vec<&Value> = accounts
                    .iter()
                    .filter(|a| a["provider_id"] == provider)
                    .collect();
                let mut got: Vec<&str> = mine
                    .iter()
                    .map(|a| a["bank_account_id"].as_str().unwrap())
                    .collect();
                let mut want: Vec<&str> = truth.iter().map(|a| a.id.as_str()).collect();
                got.sort();
                want.sort();
                assert_eq!(got, want, "{provider}: every account");
                for account in &truth {
                    let ours = mine
                        .iter()
                        .find(|a| a["bank_account_id"] == account.id.as_str())
                        .unwrap();
                    let (s, txns) = c
                        .call(
                            Method::GET,
                            &format!(
                                "/v1/accounts/{}/transactions?limit=500",
                                ours["id"].as_str().unwrap()
                            ),
                            None,
                        )
                        .await;
                    assert_eq!(s, StatusCode::OK, "{txns}");
                    let mut got: Vec<(Decimal, bool)> = txns["data"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|t| {
                            (
                                t["amount"].as_str().unwrap().parse().unwrap(),
                                t["status"] == "pending",
                            )
                        })
                        .collect();
                    let from = today - time::Duration::days(90);
                    let mut want: Vec<(Decimal, bool)> =
                        freshet_sandbox::data::history(sb.standard, account, from, today, today)
                            .iter()
                            .map(|t| {
                                (
                                    t.amount,
                                    t.state == freshet_sandbox::data::TxnState::Pending,
                                )
                            })
                            .collect();
                    got.sort();
                    want.sort();
                    assert_eq!(got, want, "{provider} {}: every transaction", account.id);
                }
            }
            app.stop().await;
        },
    )
    .await;
}

#[tokio::test]
async fn every_bank_connects_and_refreshes_over_its_security_profile_on_sqlite() {
    every_bank_connects_and_refreshes_over_its_security_profile(Backend::Sqlite).await;
}

#[tokio::test]
async fn every_bank_connects_and_refreshes_over_its_security_profile_on_postgres() {
    every_bank_connects_and_refreshes_over_its_security_profile(Backend::Postgres).await;
}

/// Link creation against a registry edited by `edit` fails with a problem whose detail
/// contains `expected`.
async fn link_refused(bank: &StrictBank, edit: impl FnOnce(String) -> String, expected: &str) {
    let registry = bank.registry_with(edit);
    let expected = expected.to_string();
    run_with(Backend::Sqlite, production(registry), |app| async move {
        let c = Client {
            key: app.new_application("strict").await,
            app: &app,
        };
        let customer = app.new_customer(&c.key, json!({})).await;
        let (s, body) = link(&c, customer["id"].as_str().unwrap(), "natwest").await;
        assert_problem(s, &body, StatusCode::BAD_GATEWAY, None);
        let detail = body["detail"].as_str().unwrap();
        assert!(
            detail.contains(&expected),
            "expected `{expected}` in: {detail}"
        );
        app.stop().await;
    })
    .await;
}

/// The natwest table of a registry, for edits that concern it alone.
fn natwest(text: &str) -> (usize, usize) {
    let start = text.find("id = \"natwest\"").unwrap();
    let end = text[start..]
        .find("[[provider]]")
        .map_or(text.len(), |e| start + e);
    (start, end)
}

fn edit_natwest(text: String, f: impl FnOnce(&str) -> String) -> String {
    let (start, end) = natwest(&text);
    format!("{}{}{}", &text[..start], f(&text[start..end]), &text[end..])
}

#[tokio::test]
async fn a_bank_refuses_a_client_without_the_certificate_or_key_it_registered() {
    let bank = StrictBank::start().await;
    // No client certificate at all.
    link_refused(
        &bank,
        |t| {
            edit_natwest(t, |table| {
                table
                    .lines()
                    .filter(|l| !l.starts_with("transport_"))
                    .map(|l| format!("{l}\n"))
                    .collect()
            })
        },
        "certificate",
    )
    .await;
    // Certificates and keys of another CA: the handshake fails.
    let other = tempfile::tempdir().unwrap();
    pki(other.path(), &bank.url);
    let o = other.path().display().to_string();
    link_refused(
        &bank,
        |t| {
            edit_natwest(t, |table| {
                table
                    .replace(
                        "\"tpp-transport.pem\"",
                        &format!("\"{o}/tpp-transport.pem\""),
                    )
                    .replace(
                        "\"tpp-transport.key\"",
                        &format!("\"{o}/tpp-transport.key\""),
                    )
            })
        },
        "TLS handshake",
    )
    .await;
    // A client assertion signed by a key the bank does not know.
    link_refused(
        &bank,
        |t| {
            edit_natwest(t, |table| {
                table.replace("\"tpp-signing.key\"", &format!("\"{o}/tpp-signing.key\""))
            })
        },
        "invalid_client",
    )
    .await;
}

#[tokio::test]
async fn an_id_token_that_does_not_check_out_ends_the_consent_with_no_tokens() {
    let bank = StrictBank::start().await;
    let ca = bank.ca();
    run_with(
        Backend::Sqlite,
        production(bank.registry.clone()),
        |app| async move {
            let c = Client {
                key: app.new_application("strict").await,
                app: &app,
            };
            let customer = app.new_customer(&c.key, json!({})).await;
            let cid = customer["id"].as_str().unwrap();
            let mut started = Vec::new();
            for _ in 0..4 {
                let (s, l) = link(&c, cid, "natwest").await;
                assert_eq!(s, StatusCode::CREATED, "{l}");
                let url = l["consent"]["authorisation_url"]
                    .as_str()
                    .unwrap()
                    .to_string();
                let back = approve_at_bank(&url, &ca, "carol").await;
                started.push((l["consent"]["id"].as_str().unwrap().to_string(), back));
            }
            let other_token = started[3].1.get("id_token").to_string();
            let other_code = started[3].1.get("code").to_string();
            // A bad signature: its first character changed (the last one may carry padding
            // bits only, which a lenient decoder would not see).
            let token = started[0].1.get("id_token").to_string();
            let at = token.rfind('.').unwrap() + 1;
            let first = if token[at..].starts_with('A') {
                "B"
            } else {
                "A"
            };
            let t = format!("{}{first}{}", &token[..at], &token[at + 1..]);
            started[0].1.set("id_token", &t);
            // Another authorisation's ID token: its nonce is not this one's.
            started[1].1.set("id_token", &other_token);
            // This authorisation's ID token with another's code: c_hash does not match.
            started[2].1.set("code", &other_code);
            for (i, named) in [(0, "signature"), (1, "nonce"), (2, "c_hash")] {
                let (id, back) = &started[i];
                let page = back.deliver().await;
                assert!(
                    page.contains("Not connected") && page.contains(named),
                    "{named}: {page} {}",
                    back.get("id_token")
                );
                let consent = consent(&c, id).await;
                assert_eq!(consent["status"], "error", "{named}: {consent}");
                assert!(!has_tokens(&app, id).await, "{named}: no tokens stored");
            }
            let errors = c.events("consent.error").await;
            assert_eq!(errors.len(), 3, "{errors:?}");
            // The untouched one still connects.
            let (id, back) = &started[3];
            assert!(back.deliver().await.contains("Connected"));
            assert!(has_tokens(&app, id).await);
            app.stop().await;
        },
    )
    .await;
}

#[tokio::test]
async fn links_create_approve_works_against_the_strict_sandbox() {
    let bank = StrictBank::start().await;
    let registry = bank.registry.clone();
    run_with(
        Backend::Sqlite,
        production(registry.clone()),
        |app| async move {
            let key = app.new_application("cli").await;
            let customer = app
                .new_customer(&key, json!({"personal_tax_id": CPF}))
                .await;
            for provider in ["natwest", "tatrabanka", "santander-br"] {
                let out = tokio::process::Command::new(EXE)
                    .args(["links", "create", "--approve", "--customer"])
                    .arg(customer["id"].as_str().unwrap())
                    .args([
                        "--provider",
                        provider,
                        "--url",
                        &app.base,
                        "--api-key",
                        &key,
                    ])
                    .arg("--providers")
                    .arg(&registry)
                    .output()
                    .await
                    .unwrap();
                let stdout = String::from_utf8_lossy(&out.stdout);
                assert!(
                    out.status.success(),
                    "{provider}: {stdout}{}",
                    String::from_utf8_lossy(&out.stderr)
                );
                assert!(stdout.contains("authorised"), "{provider}: {stdout}");
            }
            app.stop().await;
        },
    )
    .await;
}

#[tokio::test]
async fn providers_check_proves_the_registry_and_names_what_fails() {
    let bank = StrictBank::start().await;
    let out = std::process::Command::new(EXE)
        .args(["providers", "check", "--providers"])
        .arg(&bank.registry)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for id in BANKS {
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with(id) && l.contains(" ok ")),
            "{id}: {stdout}"
        );
    }
    // A registry whose issuer is wrong: that provider fails, the command exits non-zero.
    let broken = bank.registry_with(|t| {
        edit_natwest(t, |table| {
            table.replace("/natwest\"\napi_base", "/nowhere\"\napi_base")
        })
    });
    let out = std::process::Command::new(EXE)
        .args(["providers", "check", "--providers"])
        .arg(&broken)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{stdout}");
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("natwest") && l.contains("FAILED")),
        "{stdout}"
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("lloyds") && l.contains(" ok ")),
        "{stdout}"
    );
}

#[tokio::test]
async fn a_node_with_a_broken_registry_refuses_to_start_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    pki(dir.path(), "https://127.0.0.1:8443");
    // The signing key swapped for the transport key: it does not match the signing cert.
    let text = std::fs::read_to_string(dir.path().join("providers.toml")).unwrap();
    let broken = dir.path().join("broken.toml");
    std::fs::write(
        &broken,
        text.replacen(
            "signing_key = \"tpp-signing.key\"",
            "signing_key = \"tpp-transport.key\"",
            3,
        ),
    )
    .unwrap();
    let db = freshet_store::testing::TestDb::new(Backend::Sqlite)
        .await
        .unwrap();
    let mut config = Config::new(db.url.clone());
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.admin_token = Some(crate::support::ADMIN_TOKEN.to_string().into());
    config.master_key = Some(db.master_key.clone());
    production(broken)(&mut config);
    let err = freshet::server::Server::start(config)
        .await
        .err()
        .expect("the node refuses to start")
        .to_string();
    assert!(
        err.contains("broken.toml")
            && err.contains("provider `tatrabanka`")
            && err.contains("`signing_key`"),
        "{err}"
    );
}
