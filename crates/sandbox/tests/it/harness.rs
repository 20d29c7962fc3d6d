//! A sandbox on an ephemeral loopback port, and the calls a client makes to open a consent.

use freshet_sandbox::{Sandbox, SandboxConfig, Standard, bank};
use reqwest::{Client, Method, RequestBuilder, Response, StatusCode, redirect::Policy};
use serde_json::{Value, json};

pub const REDIRECT: &str = "http://127.0.0.1:9/callback";

pub struct Bank {
    pub root: String,
    pub http: Client,
}

/// A consent opened at a bank: its id and an access token.
pub struct Opened {
    pub consent_id: String,
    pub token: String,
}

impl Bank {
    pub async fn start(config: SandboxConfig) -> Self {
        let sandbox = Sandbox::new(config);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = freshet_sandbox::router(sandbox);
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self {
            root: format!("http://{addr}"),
            http: Client::builder().redirect(Policy::none()).build().unwrap(),
        }
    }

    pub fn api(&self, bank_id: &str) -> String {
        bank(bank_id).unwrap().paths(&self.root).api_base
    }

    /// A request with the headers the bank's standard requires.
    pub fn call(
        &self,
        method: Method,
        bank_id: &str,
        path: &str,
        token: Option<&str>,
        consent: Option<&str>,
    ) -> RequestBuilder {
        let url = if path.starts_with("http") {
            path.to_string()
        } else {
            format!("{}{path}", self.api(bank_id))
        };
        let mut req = self.http.request(method, url);
        match bank(bank_id).unwrap().standard {
            Standard::BerlinGroup => {
                req = req.header("X-Request-ID", uuid::Uuid::now_v7().to_string());
                if let Some(c) = consent {
                    req = req.header("Consent-ID", c);
                }
            }
            _ => req = req.header("x-fapi-interaction-id", uuid::Uuid::now_v7().to_string()),
        }
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req
    }

    /// Creates a consent and returns the response.
    pub async fn create_consent(&self, bank_id: &str) -> Response {
        self.create_consent_with(bank_id, &[]).await
    }

    /// Creates a consent, the request carrying `headers` too, and returns the response.
    pub async fn create_consent_with(&self, bank_id: &str, headers: &[(&str, &str)]) -> Response {
        let b = bank(bank_id).unwrap();
        let (path, body) = match b.standard {
            Standard::Obie => (
                "/account-access-consents",
                json!({"Data": {"Permissions": ["ReadAccountsDetail", "ReadBalances", "ReadTransactionsDetail"]}, "Risk": {}}),
            ),
            Standard::BerlinGroup => (
                "/v1/consents",
                json!({"access": {"allPsd2": "allAccounts"}, "recurringIndicator": true, "validUntil": "9999-12-31", "frequencyPerDay": 4, "combinedServiceIndicator": false}),
            ),
            Standard::OpenFinanceBrasil => (
                "/open-banking/consents/v2/consents",
                json!({"data": {"loggedUser": {"document": {"identification": "76109277673", "rel": "CPF"}}, "permissions": ["ACCOUNTS_READ", "ACCOUNTS_BALANCES_READ", "ACCOUNTS_TRANSACTIONS_READ", "RESOURCES_READ"], "expirationDateTime": expiry()}}),
            ),
        };
        let mut req = self.call(Method::POST, bank_id, path, None, None);
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        req.json(&body).send().await.unwrap()
    }

    pub fn consent_id(standard: Standard, body: &Value) -> String {
        let v = match standard {
            Standard::Obie => &body["Data"]["ConsentId"],
            Standard::BerlinGroup => &body["consentId"],
            Standard::OpenFinanceBrasil => &body["data"]["consentId"],
        };
        v.as_str().expect("a consent id").to_string()
    }

    /// The customer's decision on the authorisation page, as `curl -d decision=…` sends it.
    pub async fn decide(
        &self,
        bank_id: &str,
        consent_id: &str,
        customer: Option<&str>,
        decision: &str,
    ) -> Response {
        let paths = bank(bank_id).unwrap().paths(&self.root);
        let mut form = vec![("decision", decision.to_string())];
        if let Some(c) = customer {
            form.push(("customer", c.to_string()));
        }
        self.http
            .post(&paths.authorize)
            .query(&[
                ("consent_id", consent_id),
                ("redirect_uri", REDIRECT),
                ("state", "s1"),
            ])
            .form(&form)
            .send()
            .await
            .unwrap()
    }

    pub async fn token(&self, bank_id: &str, code: &str) -> Response {
        let paths = bank(bank_id).unwrap().paths(&self.root);
        self.http
            .post(&paths.token)
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", REDIRECT),
            ])
            .send()
            .await
            .unwrap()
    }

    /// Approves a consent as `customer` and exchanges the code: its access token.
    pub async fn approve(&self, bank_id: &str, consent_id: &str, customer: Option<&str>) -> String {
        let decided = self.decide(bank_id, consent_id, customer, "approve").await;
        assert_eq!(decided.status(), StatusCode::SEE_OTHER);
        let location = decided.headers()["location"].to_str().unwrap().to_string();
        let code = url::Url::parse(&location)
            .unwrap()
            .query_pairs()
            .find(|(k, _)| k == "code")
            .map(|(_, v)| v.into_owned())
            .expect("a code");
        let tokens: Value = self.token(bank_id, &code).await.json().await.unwrap();
        tokens["access_token"].as_str().unwrap().to_string()
    }

    /// Creates, approves and exchanges: a consent ready for data calls.
    pub async fn open(&self, bank_id: &str, customer: Option<&str>) -> Opened {
        self.open_with(bank_id, customer, &[]).await
    }

    /// Like [`Bank::open`], the consent created with `headers` too.
    pub async fn open_with(
        &self,
        bank_id: &str,
        customer: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Opened {
        let created = self.create_consent_with(bank_id, headers).await;
        assert_eq!(created.status(), StatusCode::CREATED);
        let consent_id = Self::consent_id(
            bank(bank_id).unwrap().standard,
            &created.json().await.unwrap(),
        );
        let token = self.approve(bank_id, &consent_id, customer).await;
        Opened { consent_id, token }
    }

    /// A data call for an opened consent.
    pub async fn get(&self, bank_id: &str, path: &str, opened: &Opened) -> Response {
        self.call(
            Method::GET,
            bank_id,
            path,
            Some(&opened.token),
            Some(&opened.consent_id),
        )
        .send()
        .await
        .unwrap()
    }

    pub async fn control(&self, method: Method, path: &str, body: Option<Value>) -> Response {
        let mut req = self.http.request(method, format!("{}{path}", self.root));
        if let Some(b) = body {
            req = req.json(&b);
        }
        req.send().await.unwrap()
    }
}

/// Six months ahead, in Brasil's format.
pub fn expiry() -> String {
    let t = time::OffsetDateTime::now_utc() + time::Duration::days(180);
    t.format(time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second]Z"
    ))
    .unwrap()
}
