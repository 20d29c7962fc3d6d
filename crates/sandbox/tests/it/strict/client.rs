//! A small client of the strict sandbox, written from the contract (issue 15) rather than from
//! freshet's connectors: mutual TLS with the TPP's transport certificate, client assertions,
//! request objects, PAR, PKCE and Berlin Group request signatures, each with a knob to get
//! it wrong on purpose.

use std::sync::OnceLock;

use freshet_fapi::{
    Certificate, PrivateKey, SigningKey, httpsig, jws,
    oidc::pkce_challenge,
    pki::{Ca, KeyKind, TestPki},
    random_token,
};
use freshet_sandbox::{CLIENT_ID, Sandbox, SandboxConfig, StrictConfig, bank};
use reqwest::{Client, Identity, Method, RequestBuilder, Response, redirect::Policy};
use serde_json::{Value, json};

pub const REDIRECT: &str = "https://127.0.0.1:9/callback";

/// One PKI for every test: RSA keys take a while to make in a debug build.
pub fn pki() -> &'static TestPki {
    static PKI: OnceLock<TestPki> = OnceLock::new();
    PKI.get_or_init(|| TestPki::generate(&["127.0.0.1".into(), "localhost".into()]))
}

/// An RSA key nobody registered.
pub fn stranger() -> &'static SigningKey {
    static KEY: OnceLock<SigningKey> = OnceLock::new();
    KEY.get_or_init(|| SigningKey::new("stranger", PrivateKey::generate_rsa(2048).1))
}

fn http(identity: Option<(&str, &str)>) -> Client {
    let mut b = Client::builder()
        .redirect(Policy::none())
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(pki().ca_pem.as_bytes()).unwrap());
    if let Some((cert, key)) = identity {
        b = b.identity(Identity::from_pem(format!("{cert}{key}").as_bytes()).unwrap());
    }
    b.build().unwrap()
}

/// A client certificate with the same subject as the TPP's, from a CA the bank does not know.
pub fn foreign_client() -> Client {
    let ca = Ca::generate("another CA");
    let (cert, key) = ca.issue_client("freshet TPP transport", KeyKind::P256);
    http(Some((&cert, &key)))
}

/// Another client certificate from the sandbox's own CA, with another subject: the signing
/// pair, which the CA issued for client authentication too (TestPki keeps no CA key to
/// issue a third).
pub fn other_tpp_client() -> Client {
    let p = pki();
    http(Some((&p.signing_pem, &p.signing_key_pem)))
}

/// A strict sandbox on an ephemeral loopback port, and a TPP to call it.
pub struct Tpp {
    pub root: String,
    pub http: Client,
    pub anonymous: Client,
    pub signing: SigningKey,
    pub signing_cert: Certificate,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Tpp {
    pub async fn start() -> Self {
        let p = pki();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let config = StrictConfig::from_pki(p).unwrap();
        let sandbox = Sandbox::new(SandboxConfig::default());
        tokio::spawn(freshet_sandbox::serve_strict(
            listener,
            config,
            sandbox,
            async move {
                let _ = stopped.await;
            },
        ));
        let key = PrivateKey::from_pem(&p.signing_key_pem).unwrap();
        Self {
            root: format!("https://{addr}"),
            http: http(Some((&p.transport_pem, &p.transport_key_pem))),
            anonymous: http(None),
            signing: SigningKey::new(key.public_key().thumbprint(), key),
            signing_cert: Certificate::from_pem(&p.signing_pem).unwrap(),
            _stop: stop,
        }
    }

    pub fn issuer(&self, bank_id: &str) -> String {
        format!("{}/{bank_id}", self.root)
    }

    pub fn api(&self, bank_id: &str) -> String {
        bank(bank_id).unwrap().paths(&self.root).api_base
    }

    /// Claims of a good client assertion for `aud`.
    pub fn assertion_claims(&self, aud: &str) -> Value {
        let now = jws::now();
        json!({"iss": CLIENT_ID, "sub": CLIENT_ID, "aud": aud, "jti": random_token(16), "iat": now, "exp": now + 60})
    }

    pub fn sign(&self, claims: &Value) -> String {
        jws::sign(&self.signing, None, claims).unwrap()
    }

    /// The token endpoint's form with client authentication for `bank_id`; `assertion`
    /// replaces the good client assertion (OBIE, OFB).
    pub async fn token_with(
        &self,
        client: &Client,
        bank_id: &str,
        grant: &[(&str, &str)],
        assertion: Option<String>,
    ) -> Response {
        let token_url = format!("{}/token", self.issuer(bank_id));
        let mut form: Vec<(String, String)> = grant
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        form.push(("client_id".into(), CLIENT_ID.into()));
        if bank(bank_id).unwrap().standard != freshet_sandbox::Standard::BerlinGroup {
            let assertion =
                assertion.unwrap_or_else(|| self.sign(&self.assertion_claims(&token_url)));
            form.push((
                "client_assertion_type".into(),
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".into(),
            ));
            form.push(("client_assertion".into(), assertion));
        }
        client.post(token_url).form(&form).send().await.unwrap()
    }

    pub async fn token(&self, bank_id: &str, grant: &[(&str, &str)]) -> Response {
        self.token_with(&self.http, bank_id, grant, None).await
    }

    pub async fn client_credentials(&self, bank_id: &str) -> String {
        let scope = if bank_id == "santander-br" {
            "consents"
        } else {
            "accounts"
        };
        let resp = self
            .token(
                bank_id,
                &[("grant_type", "client_credentials"), ("scope", scope)],
            )
            .await;
        assert_eq!(resp.status(), 200);
        let body: Value = resp.json().await.unwrap();
        body["access_token"].as_str().unwrap().to_string()
    }

    /// A Berlin Group request, signed as the implementation guidelines say.
    pub fn signed(&self, req: RequestBuilder, body: &[u8], sign: Signing) -> RequestBuilder {
        self.signed_with(req, body, sign, &[])
    }

    /// The same, with `extra` headers sent and signed too.
    pub fn signed_with(
        &self,
        req: RequestBuilder,
        body: &[u8],
        sign: Signing,
        extra: &[(&str, &str)],
    ) -> RequestBuilder {
        let request_id = uuid::Uuid::now_v7().to_string();
        let digest = httpsig::digest(body);
        let mut req = req
            .header("X-Request-ID", &request_id)
            .header("Digest", &digest);
        let mut headers = vec![
            ("Digest", digest.as_str()),
            ("X-Request-ID", request_id.as_str()),
        ];
        for (name, value) in extra {
            req = req.header(*name, *value);
            headers.push((name, value));
        }
        let key = match sign {
            Signing::None => return req,
            Signing::Registered => &self.signing.key,
            Signing::Stranger => &stranger().key,
        };
        let sig = httpsig::sign(key, &httpsig::key_id(&self.signing_cert), &headers).unwrap();
        req = req.header("Signature", sig).header(
            "TPP-Signature-Certificate",
            httpsig::certificate_header(&self.signing_cert),
        );
        req
    }

    /// Creates a consent as a client of the standard does; BG requests are signed.
    pub async fn create_consent(&self, bank_id: &str, cc: Option<&str>) -> Response {
        let b = bank(bank_id).unwrap();
        let (path, body) = match b.standard {
            freshet_sandbox::Standard::Obie => (
                "/account-access-consents",
                json!({"Data": {"Permissions": ["ReadAccountsDetail", "ReadBalances", "ReadTransactionsDetail"]}, "Risk": {}}),
            ),
            freshet_sandbox::Standard::BerlinGroup => (
                "/v1/consents",
                json!({"access": {"allPsd2": "allAccounts"}, "recurringIndicator": true, "validUntil": "9999-12-31", "frequencyPerDay": 4, "combinedServiceIndicator": false}),
            ),
            freshet_sandbox::Standard::OpenFinanceBrasil => (
                "/open-banking/consents/v2/consents",
                json!({"data": {"loggedUser": {"document": {"identification": "76109277673", "rel": "CPF"}}, "permissions": ["ACCOUNTS_READ", "ACCOUNTS_BALANCES_READ", "ACCOUNTS_TRANSACTIONS_READ", "RESOURCES_READ"], "expirationDateTime": expiry()}}),
            ),
        };
        let bytes = serde_json::to_vec(&body).unwrap();
        let mut req = self
            .http
            .post(format!("{}{path}", self.api(bank_id)))
            .header("content-type", "application/json")
            .header("x-fapi-interaction-id", uuid::Uuid::now_v7().to_string());
        if let Some(cc) = cc {
            req = req.bearer_auth(cc);
        }
        if b.standard == freshet_sandbox::Standard::BerlinGroup {
            req = req.header("TPP-Nok-Redirect-URI", REDIRECT);
            req = self.signed_with(
                req,
                &bytes,
                Signing::Registered,
                &[("TPP-Redirect-URI", REDIRECT)],
            );
        }
        req.body(bytes).send().await.unwrap()
    }

    /// Claims of a good request object for `consent_id` at `bank_id` (OBIE, OFB).
    pub fn request_claims(&self, bank_id: &str, consent_id: &str, flow: &Flow) -> Value {
        let now = jws::now();
        let mut claims = json!({
            "iss": CLIENT_ID, "aud": self.issuer(bank_id), "client_id": CLIENT_ID,
            "response_type": "code id_token", "redirect_uri": REDIRECT,
            "scope": "openid accounts", "state": flow.state, "nonce": flow.nonce,
            "exp": now + 300, "nbf": now, "iat": now, "jti": random_token(16),
        });
        if bank_id == "santander-br" {
            claims["scope"] = json!(format!("openid accounts consent:{consent_id}"));
            claims["code_challenge"] = json!(pkce_challenge(&flow.verifier));
            claims["code_challenge_method"] = json!("S256");
        } else {
            claims["claims"] = json!({"id_token": {"openbanking_intent_id": {"value": consent_id, "essential": true}}});
        }
        claims
    }

    /// Pushes a request object to the PAR endpoint.
    pub async fn par(&self, bank_id: &str, request: &str) -> Response {
        let par_url = format!("{}/par", self.issuer(bank_id));
        let assertion = self.sign(&self.assertion_claims(&par_url));
        self.http
            .post(par_url)
            .form(&[
                ("client_id", CLIENT_ID),
                (
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                ),
                ("client_assertion", &assertion),
                ("request", request),
            ])
            .send()
            .await
            .unwrap()
    }

    /// Opens the authorisation page at `url` without a client certificate, as a browser
    /// would, then approves there; returns the redirect's `Location`.
    pub async fn approve(&self, url: &str) -> Result<String, (u16, String)> {
        let page = self.anonymous.get(url).send().await.unwrap();
        let status = page.status().as_u16();
        let html = page.text().await.unwrap();
        if status != 200 {
            return Err((status, html));
        }
        assert!(html.contains(r#"value="approve""#), "{html}");
        let done = self
            .anonymous
            .post(url)
            .form(&[("decision", "approve")])
            .send()
            .await
            .unwrap();
        let status = done.status().as_u16();
        if status != 303 {
            return Err((status, done.text().await.unwrap()));
        }
        Ok(done.headers()["location"].to_str().unwrap().to_string())
    }

    pub fn authorize_url(&self, bank_id: &str, params: &[(&str, &str)]) -> String {
        let mut url = url::Url::parse(&format!("{}/authorize", self.issuer(bank_id))).unwrap();
        url.query_pairs_mut().extend_pairs(params);
        url.to_string()
    }

    /// A data call: BG calls signed, the others with the FAPI headers.
    pub async fn data(
        &self,
        client: &Client,
        bank_id: &str,
        path: &str,
        token: &str,
        consent_id: &str,
        sign: Signing,
    ) -> Response {
        let mut req = client
            .request(Method::GET, format!("{}{path}", self.api(bank_id)))
            .bearer_auth(token)
            .header("x-fapi-interaction-id", uuid::Uuid::now_v7().to_string());
        if bank(bank_id).unwrap().standard == freshet_sandbox::Standard::BerlinGroup {
            req = self.signed(req.header("Consent-ID", consent_id), b"", sign);
        }
        req.send().await.unwrap()
    }
}

/// How a Berlin Group request is signed.
#[derive(Clone, Copy)]
pub enum Signing {
    Registered,
    Stranger,
    None,
}

/// A flow's one-time values.
pub struct Flow {
    pub state: String,
    pub nonce: String,
    pub verifier: String,
}

impl Flow {
    pub fn new() -> Self {
        Self {
            state: random_token(12),
            nonce: random_token(12),
            verifier: random_token(32),
        }
    }
}

/// The parameters of a redirect `location`: its fragment for the hybrid flow, else its query.
pub fn answer(location: &str, fragment: bool) -> std::collections::HashMap<String, String> {
    let url = url::Url::parse(location).unwrap();
    let part = if fragment {
        url.fragment().unwrap_or_default().to_string()
    } else {
        url.query().unwrap_or_default().to_string()
    };
    form_urlencoded::parse(part.as_bytes())
        .into_owned()
        .collect()
}

/// Six months ahead, in Brasil's format.
pub fn expiry() -> String {
    crate::harness::expiry()
}

/// The error text of a response body in any standard's or OAuth's shape, or the
/// `WWW-Authenticate` header when there is no body (OBIE's 401).
pub async fn reason(resp: Response) -> String {
    let challenge = resp
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    let text = [
        &body["error_description"],
        &body["tppMessages"][0]["text"],
        &body["errors"][0]["detail"],
        &body["Errors"][0]["Message"],
    ]
    .into_iter()
    .find_map(|v| v.as_str())
    .unwrap_or_default()
    .to_string();
    format!("{text} {challenge}")
}
