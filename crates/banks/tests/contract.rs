//! Every connector against the sandbox bank over real HTTP: the whole consent flow, every
//! page of every list, each fault kind mapped into freshet's words, and answers that differ
//! from the sandbox's as real banks' do (fields of their own, fields missing).

use std::{sync::Arc, time::Duration};

use freshet_banks::{
    AuthReturn, BankError, Connector, ConsentRequest, ConsentStatus, Provider, ResultCode, Session,
    Standard, Tokens,
};
use freshet_model::{events::Permission, reconcile::TxnStatus};
use freshet_sandbox::{Sandbox, SandboxConfig, data};
use reqwest::{Client, redirect::Policy};
use serde_json::{Value, json};
use time::{Duration as Days, OffsetDateTime};

const REDIRECT: &str = "http://127.0.0.1:9/callback";
const SEED: u64 = 11;

struct Bank {
    root: String,
    http: Client,
}

async fn sandbox(config: SandboxConfig) -> Bank {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let root = format!("http://{}", listener.local_addr().unwrap());
    let app = freshet_sandbox::router(Sandbox::new(config));
    tokio::spawn(async move { axum::serve(listener, app).await });
    Bank {
        root,
        http: Client::builder().redirect(Policy::none()).build().unwrap(),
    }
}

fn config() -> SandboxConfig {
    SandboxConfig {
        seed: SEED,
        page_size: 20,
        hold: Duration::from_secs(3),
        ..Default::default()
    }
}

impl Bank {
    fn connector(&self, id: &str, timeout: Duration) -> Connector {
        let b = freshet_sandbox::bank(id).unwrap();
        let paths = b.paths(&self.root);
        let provider = Provider {
            id: b.id.into(),
            name: b.name.into(),
            code: b.code.into(),
            institution_code: b.code.into(),
            numeric_id: b.numeric_id,
            standard: b.standard,
            country: b.country.into(),
            api_base: paths.api_base,
            authorize_url: paths.authorize,
            token_url: paths.token,
            concurrency: 4,
            unattended_per_day: 4,
            push: false,
            timeout,
            security: None,
        };
        Connector::new(provider, Client::new())
    }

    /// Creates a consent, approves it as `customer` on the bank's page, and exchanges the code.
    async fn open(&self, c: &Connector, customer: &str) -> (String, Tokens) {
        let consent = c
            .create_consent(&ConsentRequest {
                permissions: vec![Permission::AccountsAll, Permission::RegistrationAll],
                expires_at: Some(OffsetDateTime::now_utc() + Days::days(90)),
                history_from: OffsetDateTime::now_utc().date() - Days::days(90),
                customer_tax_id: Some("76109277673".into()),
                customer_ip: Some("203.0.113.7".into()),
                redirect_uri: Some(REDIRECT.into()),
                notification_uri: None,
            })
            .await
            .unwrap();
        assert_eq!(consent.status, ConsentStatus::AwaitingAuthorisation);
        let authorisation = c.authorisation(&consent, REDIRECT, "st4te").await.unwrap();
        let url = authorisation.url;
        let page = self.http.get(&url).send().await.unwrap();
        assert_eq!(page.status(), 200, "the authorisation page opens");
        let decided = self
            .http
            .post(&url)
            .form(&[("decision", "approve"), ("customer", customer)])
            .send()
            .await
            .unwrap();
        assert_eq!(decided.status(), 303);
        let location = url::Url::parse(decided.headers()["location"].to_str().unwrap()).unwrap();
        let param = |k: &str| {
            location
                .query_pairs()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.into_owned())
        };
        assert_eq!(param("state").as_deref(), Some("st4te"));
        let returned = AuthReturn {
            state: "st4te".into(),
            code: param("code").unwrap(),
            id_token: None,
        };
        let tokens = c
            .finish_authorisation(
                &returned,
                &authorisation.context,
                &consent.bank_consent_id,
                REDIRECT,
            )
            .await
            .unwrap();
        (consent.bank_consent_id, tokens)
    }

    async fn fault(&self, provider: &str, kind: &str) {
        let r = self
            .http
            .post(format!("{}/control/faults", self.root))
            .json(&json!({"provider_id": provider, "kind": kind, "times": 1}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    }

    async fn control(&self, path: &str) {
        let r = self
            .http
            .post(format!("{}{path}", self.root))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
    }
}

fn session<'a>(consent: &'a str, tokens: &'a Tokens) -> Session<'a> {
    Session {
        bank_consent_id: consent,
        access_token: &tokens.access_token,
        customer_ip: None,
        auth_date: None,
    }
}

/// The whole flow against one bank, checked against the data the sandbox generates.
async fn full_flow(id: &str) {
    full_flow_at(&sandbox(config()).await, id).await;
}

async fn full_flow_at(bank: &Bank, id: &str) {
    let c = bank.connector(id, Duration::from_secs(5));
    let (consent, tokens) = bank.open(&c, "carol").await;
    let s = session(&consent, &tokens);
    assert_eq!(
        c.consent_status(&s).await.unwrap(),
        ConsentStatus::Authorised
    );
    let accounts = c.accounts(&s).await.unwrap();
    let sb = freshet_sandbox::bank(id).unwrap();
    let truth = data::accounts(SEED, sb, "carol");
    assert_eq!(
        accounts.iter().map(|a| &a.id).collect::<Vec<_>>(),
        truth.iter().map(|a| &a.id).collect::<Vec<_>>()
    );
    let today = OffsetDateTime::now_utc().date();
    for (account, expected) in accounts.iter().zip(&truth) {
        assert_eq!(account.currency, expected.currency);
        let balances = c.balances(&s, &account.id).await.unwrap();
        assert!(!balances.is_empty(), "{id}: balances");
        let txns = c
            .transactions(&s, &account.id, today - Days::days(90), today)
            .await
            .unwrap();
        let want = data::history(sb.standard, expected, today - Days::days(90), today, today);
        assert_eq!(
            txns.len(),
            want.len(),
            "{id}: every row of every page, none twice"
        );
        let mut got: Vec<_> = txns
            .iter()
            .map(|t| (t.amount, t.status == TxnStatus::Pending))
            .collect();
        let mut exp: Vec<_> = want
            .iter()
            .map(|t| (t.amount, t.state == data::TxnState::Pending))
            .collect();
        got.sort();
        exp.sort();
        assert_eq!(got, exp, "{id}: signed amounts and states");
        for t in &txns {
            let immutable = match sb.standard {
                Standard::BerlinGroup => false,
                _ => t.status == TxnStatus::Booked,
            };
            assert_eq!(
                t.immutable_id, immutable,
                "{id}: the standard's immutability rule"
            );
        }
    }
    let refreshed = c
        .refresh_tokens(tokens.refresh_token.as_deref().unwrap())
        .await
        .unwrap();
    assert_ne!(refreshed.access_token, tokens.access_token);
    c.revoke(&session(&consent, &refreshed)).await.unwrap();
    let after = c.consent_status(&session(&consent, &refreshed)).await;
    match sb.standard {
        // OBIE deletes the resource and its tokens.
        Standard::Obie => {
            assert_eq!(after.unwrap_err().result, ResultCode::ConsentNotFound)
        }
        _ => assert_eq!(after.unwrap(), ConsentStatus::Revoked),
    }
    let data = c
        .accounts(&session(&consent, &refreshed))
        .await
        .unwrap_err();
    assert!(data.reconnect_required(), "{id}: {data:?}");
}

#[tokio::test]
async fn obie_connector_runs_the_whole_flow() {
    full_flow("natwest").await;
    full_flow("lloyds").await;
}

#[tokio::test]
async fn berlin_group_connector_runs_the_whole_flow() {
    full_flow("tatrabanka").await;
    full_flow("slsp").await;
}

#[tokio::test]
async fn open_finance_brasil_connector_runs_the_whole_flow() {
    full_flow("santander-br").await;
}

/// What each fault becomes, per standard.
fn expected(kind: &str, standard: Standard) -> ResultCode {
    match (kind, standard) {
        ("provider_failure", _) => ResultCode::ProviderFailure,
        ("reauth_required", Standard::Obie) => ResultCode::ConnectionReauthenticate,
        ("reauth_required", _) => ResultCode::ConnectionExpired,
        ("rate_limited", _) => ResultCode::ProviderRequestLimit,
        ("timeout", _) => ResultCode::ProviderTimeout,
        ("maintenance", _) => ResultCode::ProviderMaintenance,
        _ => unreachable!(),
    }
}

#[tokio::test]
async fn every_fault_maps_to_its_result_code_on_every_standard() {
    let bank = sandbox(SandboxConfig {
        unattended_per_day: 100,
        ..config()
    })
    .await;
    for id in ["natwest", "tatrabanka", "santander-br"] {
        let c = bank.connector(id, Duration::from_millis(500));
        let (consent, tokens) = bank.open(&c, "dave").await;
        let s = session(&consent, &tokens);
        for kind in [
            "provider_failure",
            "reauth_required",
            "rate_limited",
            "timeout",
            "maintenance",
        ] {
            bank.fault(id, kind).await;
            let err: BankError = c.accounts(&s).await.unwrap_err();
            let standard = c.provider().standard;
            assert_eq!(err.result, expected(kind, standard), "{id} {kind}: {err:?}");
            assert_eq!(
                err.reconnect_required(),
                kind == "reauth_required",
                "{id} {kind}"
            );
            if kind == "rate_limited" {
                match standard {
                    Standard::Obie => assert_eq!(
                        err.retry_after,
                        Some(Duration::from_secs(2)),
                        "OBIE's Retry-After"
                    ),
                    // Berlin Group's budget lasts the day; Brasil says nothing.
                    Standard::BerlinGroup => assert!(
                        err.retry_after
                            .is_some_and(|d| d <= Duration::from_secs(86_400))
                    ),
                    Standard::OpenFinanceBrasil => assert_eq!(err.retry_after, None),
                }
            }
            assert!(
                c.accounts(&s).await.is_ok(),
                "{id}: a fault for one call is gone after it"
            );
        }
    }
}

#[tokio::test]
async fn expiry_needs_the_customer_again_on_every_standard() {
    let bank = sandbox(config()).await;
    for id in ["lloyds", "slsp", "santander-br"] {
        let c = bank.connector(id, Duration::from_secs(5));
        let (consent, tokens) = bank.open(&c, "erin").await;
        let s = session(&consent, &tokens);
        bank.control(&format!("/control/consents/{consent}/expire"))
            .await;
        let err = c.accounts(&s).await.unwrap_err();
        assert_eq!(err.result, ResultCode::ConnectionExpired, "{id}: {err:?}");
        let status = c.consent_status(&s).await;
        match c.provider().standard {
            // OBIE keeps Authorised on the resource; only the data calls tell.
            Standard::Obie => assert_eq!(status.unwrap(), ConsentStatus::Authorised),
            _ => assert_eq!(status.unwrap(), ConsentStatus::Expired),
        }
    }
}

#[tokio::test]
async fn the_customer_present_header_is_sent_only_when_present_and_lifts_the_budget() {
    let bank = sandbox(SandboxConfig {
        unattended_per_day: 1,
        ..config()
    })
    .await;
    for id in ["natwest", "tatrabanka", "santander-br"] {
        let c = bank.connector(id, Duration::from_secs(5));
        let (consent, tokens) = bank.open(&c, "frank").await;
        let unattended = session(&consent, &tokens);
        c.accounts(&unattended).await.unwrap();
        let err = c.accounts(&unattended).await.unwrap_err();
        assert_eq!(
            err.result,
            ResultCode::ProviderRequestLimit,
            "{id}: the budget counts unattended calls"
        );
        let present = Session {
            customer_ip: Some("203.0.113.7"),
            ..unattended
        };
        c.accounts(&present)
            .await
            .unwrap_or_else(|e| panic!("{id}: the customer is there: {e:?}"));
    }
}

#[tokio::test]
async fn berlin_group_ends_older_consents_and_the_connector_says_reconnect() {
    let bank = sandbox(config()).await;
    let c = bank.connector("tatrabanka", Duration::from_secs(5));
    let (older, old_tokens) = bank.open(&c, "gina").await;
    let (_newer, _) = bank.open(&c, "gina").await;
    let s = session(&older, &old_tokens);
    assert_eq!(c.consent_status(&s).await.unwrap(), ConsentStatus::Expired);
    assert!(c.accounts(&s).await.unwrap_err().reconnect_required());
}

/// Rewrites a JSON answer; given the request's path and query.
type Tamper = Arc<dyn Fn(&str, &mut Value) + Send + Sync>;

/// The sandbox behind a proxy on loopback that rewrites every JSON answer with `tamper`: a bank
/// that answers what the sandbox does not. Paging links lead back through the proxy.
async fn tampered(tamper: Tamper) -> Bank {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let root = format!("http://{}", listener.local_addr().unwrap());
    let upstream = sandbox(SandboxConfig {
        public_url: Some(root.clone()),
        ..config()
    })
    .await;
    let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
        let (upstream, tamper) = (upstream.root.clone(), tamper.clone());
        async move { forward(&upstream, &tamper, req).await }
    });
    tokio::spawn(async move { axum::serve(listener, app).await });
    Bank {
        root,
        http: Client::builder().redirect(Policy::none()).build().unwrap(),
    }
}

async fn forward(
    upstream: &str,
    tamper: &Tamper,
    req: axum::extract::Request,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    use reqwest::header::{CONTENT_LENGTH, HOST, TRANSFER_ENCODING};

    let (parts, body) = req.into_parts();
    let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    let mut headers = parts.headers.clone();
    headers.remove(HOST);
    let resp = Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap()
        .request(parts.method, format!("{upstream}{target}"))
        .headers(headers)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let mut headers = resp.headers().clone();
    let bytes = resp.bytes().await.unwrap();
    let body = match serde_json::from_slice::<Value>(&bytes) {
        Ok(mut v) => {
            tamper(target, &mut v);
            serde_json::to_vec(&v).unwrap()
        }
        Err(_) => bytes.to_vec(),
    };
    headers.remove(CONTENT_LENGTH);
    headers.remove(TRANSFER_ENCODING);
    (status, headers, body).into_response()
}

/// Adds a field of the bank's own to every object of an answer, as banks do.
fn extend(v: &mut Value) {
    match v {
        Value::Object(map) => {
            map.values_mut().for_each(extend);
            map.insert(
                "bankExtension".into(),
                json!({"addedBy": "the bank", "list": [1, 2]}),
            );
        }
        Value::Array(items) => items.iter_mut().for_each(extend),
        _ => {}
    }
}

#[tokio::test]
async fn a_bank_adding_fields_of_its_own_still_gets_every_row_imported() {
    for id in ["natwest", "tatrabanka", "santander-br"] {
        let bank = tampered(Arc::new(|_, v: &mut Value| extend(v))).await;
        full_flow_at(&bank, id).await;
    }
}

#[tokio::test]
async fn a_bank_leaving_out_a_required_field_fails_the_call_naming_it() {
    let path = |target: &str| target.split('?').next().unwrap_or_default().to_string();
    let remove = |v: &mut Value, pointer: &str, field: &str| {
        v.pointer_mut(pointer)
            .and_then(Value::as_object_mut)
            .and_then(|row| row.remove(field))
            .unwrap_or_else(|| panic!("the sandbox sends {pointer}/{field}"));
    };
    let cases: [(&str, Tamper, &str); 3] = [
        (
            "natwest",
            Arc::new(move |t, v| {
                if path(t).ends_with("/transactions") && t.contains("page=2") {
                    remove(v, "/Data/Transaction/2", "Amount");
                }
            }),
            "OBIE transactions, page 2: Data.Transaction[2].Amount: missing field",
        ),
        (
            "tatrabanka",
            Arc::new(move |t, v| {
                if path(t).ends_with("/transactions") && !t.contains("page=") {
                    remove(v, "/transactions/booked/1", "transactionAmount");
                }
            }),
            "Berlin Group transactions: transactions.booked[1].transactionAmount: missing field",
        ),
        (
            "santander-br",
            Arc::new(move |t, v| {
                if path(t).ends_with("/accounts/v2/accounts") {
                    remove(v, "/data/0", "accountId");
                }
            }),
            "Open Finance Brasil accounts: data[0].accountId: missing field",
        ),
    ];
    let today = OffsetDateTime::now_utc().date();
    for (id, tamper, detail) in cases {
        let bank = tampered(tamper).await;
        let c = bank.connector(id, Duration::from_secs(5));
        let (consent, tokens) = bank.open(&c, "hana").await;
        let s = session(&consent, &tokens);
        let err = match c.accounts(&s).await {
            Err(e) => e,
            Ok(accounts) => c
                .transactions(&s, &accounts[0].id, today - Days::days(90), today)
                .await
                .expect_err("a transaction without its amount"),
        };
        assert_eq!(err.result, ResultCode::ProviderFailure, "{id}: {err:?}");
        assert_eq!(err.detail, detail, "{id}");
        assert!(
            !err.reconnect_required(),
            "{id}: the bank's fault, not the customer's"
        );
    }
}
