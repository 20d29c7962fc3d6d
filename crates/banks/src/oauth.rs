//! The bank's OAuth side, as each standard's security profile has it: discovery, client
//! authentication at the token and PAR endpoints, client-credentials tokens, the authorisation
//! request (a signed request object for OBIE, pushed for Open Finance Brasil, PKCE for Open
//! Finance Brasil and Berlin Group), and the ID token checked before a code is exchanged.
//!
//! A provider without [`Security`] (the relaxed sandbox banks) gets the plain redirect flow.

use freshet_fapi::{jws, oidc, random_token};
use freshet_model::ResultCode;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::{Mutex, OnceCell, RwLock};

use crate::{BankError, Provider, Security, Standard, TokenAuth, Tokens};

/// What the authorisation request must remember until the customer comes back. `Debug`
/// hides both values: the verifier proves possession of the code.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthContext {
    /// The `nonce` the ID token must echo.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    /// The PKCE verifier the code exchange proves possession with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_verifier: Option<String>,
}

impl std::fmt::Debug for AuthContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use freshet_model::secret::redact;
        f.debug_struct("AuthContext")
            .field("nonce", &redact(&self.nonce))
            .field("code_verifier", &redact(&self.code_verifier))
            .finish()
    }
}

/// Where to send the customer, and what to keep for their return.
#[derive(Clone, Debug)]
pub struct Authorisation {
    pub url: String,
    pub context: AuthContext,
}

/// What the bank sent the customer back with (query or, in the hybrid flow, fragment).
/// `Debug` hides the code and the ID token.
#[derive(Clone, Default)]
pub struct AuthReturn {
    pub state: String,
    pub code: String,
    pub id_token: Option<String>,
}

impl std::fmt::Debug for AuthReturn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use freshet_model::secret::{REDACTED, redact};
        f.debug_struct("AuthReturn")
            .field("state", &self.state)
            .field("code", &REDACTED)
            .field("id_token", &redact(&self.id_token))
            .finish()
    }
}

/// A bank's OAuth endpoints, from the registry or its discovery document.
#[derive(Clone, Debug, Default)]
pub struct Endpoints {
    pub issuer: Option<String>,
    pub authorize: String,
    pub token: String,
    pub par: Option<String>,
    pub jwks_uri: Option<String>,
}

/// What a provider's connector learns once and reuses: endpoints, keys, a client token.
#[derive(Debug, Default)]
pub struct OAuthState {
    endpoints: OnceCell<Endpoints>,
    jwks: RwLock<Option<freshet_fapi::Jwks>>,
    client_token: Mutex<Option<(String, String, time::OffsetDateTime)>>,
}

fn failure(detail: impl Into<String>) -> BankError {
    BankError::new(ResultCode::ProviderFailure, detail)
}

/// A refused ID token: the authorisation is not to be trusted.
fn refused(detail: impl std::fmt::Display) -> BankError {
    BankError::new(
        ResultCode::AuthDenied,
        format!("the ID token is refused: {detail}"),
    )
}

#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    pushed_authorization_request_endpoint: Option<String>,
    jwks_uri: Option<String>,
}

impl crate::http::Api {
    fn security(&self) -> Option<&Security> {
        self.provider.security.as_deref()
    }

    /// The bank's OAuth endpoints: the registry's, completed by discovery when it names an
    /// issuer and leaves some out.
    pub async fn endpoints(&self) -> Result<&Endpoints, BankError> {
        self.oauth
            .endpoints
            .get_or_try_init(|| async { self.discover().await })
            .await
    }

    async fn discover(&self) -> Result<Endpoints, BankError> {
        let p = &self.provider;
        let par = self.security().and_then(|s| s.par_url.clone());
        let issuer = self.security().and_then(|s| s.issuer.clone());
        let complete = !p.authorize_url.is_empty()
            && !p.token_url.is_empty()
            && (p.standard != Standard::OpenFinanceBrasil || par.is_some());
        let Some(issuer) = issuer.filter(|_| !complete || p.standard != Standard::BerlinGroup)
        else {
            return Ok(Endpoints {
                issuer: None,
                authorize: p.authorize_url.clone(),
                token: p.token_url.clone(),
                par,
                jwks_uri: None,
            });
        };
        let url = format!("{issuer}/.well-known/openid-configuration");
        let body = self
            .json(self.get(&url), |s, _, _| {
                failure(format!("discovery answered {s}"))
            })
            .await?;
        let d: Discovery = serde_json::from_value(body)
            .map_err(|e| failure(format!("discovery document: {e}")))?;
        if d.issuer.trim_end_matches('/') != issuer {
            return Err(failure(format!(
                "discovery names issuer `{}`, the registry `{issuer}`",
                d.issuer
            )));
        }
        let or = |given: &str, found: String| {
            if given.is_empty() {
                found
            } else {
                given.to_string()
            }
        };
        Ok(Endpoints {
            issuer: Some(issuer),
            authorize: or(&p.authorize_url, d.authorization_endpoint),
            token: or(&p.token_url, d.token_endpoint),
            par: par.or(d.pushed_authorization_request_endpoint),
            jwks_uri: d.jwks_uri,
        })
    }

    /// The bank's signing keys, fetched again when a token names a key not seen yet.
    async fn bank_key(&self, kid: Option<&str>) -> Result<freshet_fapi::PublicKey, BankError> {
        if let Some(jwks) = self.oauth.jwks.read().await.as_ref()
            && let Ok(k) = jwks.find(kid)
        {
            return Ok(k);
        }
        let uri = self
            .endpoints()
            .await?
            .jwks_uri
            .clone()
            .ok_or_else(|| failure("the bank publishes no jwks_uri"))?;
        let body = self
            .json(self.get(&uri), |s, _, _| {
                failure(format!("the JWKS answered {s}"))
            })
            .await?;
        let jwks: freshet_fapi::Jwks =
            serde_json::from_value(body).map_err(|e| failure(format!("the JWKS: {e}")))?;
        let key = jwks.find(kid).map_err(refused);
        *self.oauth.jwks.write().await = Some(jwks);
        key
    }

    /// The client-authentication part of a token or PAR request addressed to `audience`.
    fn client_auth(
        &self,
        req: reqwest::RequestBuilder,
        audience: &str,
        form: &mut Vec<(String, String)>,
    ) -> Result<reqwest::RequestBuilder, BankError> {
        let Some(s) = self.security() else {
            return Ok(req);
        };
        form.push(("client_id".into(), s.client_id.clone()));
        match s.token_auth {
            TokenAuth::TlsClientAuth => Ok(req),
            TokenAuth::ClientSecretBasic => {
                use secrecy::ExposeSecret;
                let secret = s
                    .client_secret
                    .as_ref()
                    .map(|v| v.expose_secret().to_string());
                Ok(req.basic_auth(&s.client_id, secret))
            }
            TokenAuth::PrivateKeyJwt => {
                let key = s
                    .signing
                    .as_ref()
                    .ok_or_else(|| failure("private_key_jwt without a signing key"))?;
                let now = jws::now();
                let assertion = jws::sign(
                    key,
                    Some("JWT"),
                    &json!({
                        "iss": s.client_id, "sub": s.client_id, "aud": audience,
                        "jti": random_token(16), "iat": now, "exp": now + 120,
                    }),
                )
                .map_err(|e| failure(format!("signing the client assertion: {e}")))?;
                form.push((
                    "client_assertion_type".into(),
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".into(),
                ));
                form.push(("client_assertion".into(), assertion));
                Ok(req)
            }
        }
    }

    /// A token request: authorization code, refresh token or client credentials.
    pub async fn token(&self, form: &[(&str, &str)]) -> Result<Tokens, BankError> {
        let token_url = self.endpoints().await?.token.clone();
        let mut form: Vec<(String, String)> = form
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let req = self.client_auth(self.post(&token_url), &token_url, &mut form)?;
        self.token_request(req.form(&form)).await
    }

    /// A client-credentials token for `scope`, reused until a minute before it expires.
    pub async fn client_token(&self, scope: &str) -> Result<String, BankError> {
        let mut cached = self.oauth.client_token.lock().await;
        let now = freshet_model::time::now();
        if let Some((s, token, until)) = cached.as_ref()
            && s == scope
            && *until > now + time::Duration::MINUTE
        {
            return Ok(token.clone());
        }
        let t = self
            .token(&[("grant_type", "client_credentials"), ("scope", scope)])
            .await?;
        let until = t.expires_at.unwrap_or(now + time::Duration::MINUTE * 5);
        *cached = Some((scope.to_string(), t.access_token.clone(), until));
        Ok(t.access_token)
    }

    /// A client-credentials token for `scope` on a consent call, where the bank demands one
    /// (FAPI); for a provider without credentials the request goes as it is.
    pub async fn with_client_token(
        &self,
        req: reqwest::RequestBuilder,
        scope: &str,
    ) -> Result<reqwest::RequestBuilder, BankError> {
        if self.security().is_none() {
            return Ok(req);
        }
        Ok(req.bearer_auth(self.client_token(scope).await?))
    }

    /// A call on a consent resource: the client's token for `scope` where the bank demands
    /// one, else what `consent_token` adds (the consent's own token, as data calls carry).
    pub async fn consent_call(
        &self,
        req: reqwest::RequestBuilder,
        scope: &str,
        consent_token: impl FnOnce(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
    ) -> Result<reqwest::RequestBuilder, BankError> {
        if self.security().is_none() {
            return Ok(consent_token(req));
        }
        Ok(self
            .with_client_token(req, scope)
            .await?
            .header("x-fapi-interaction-id", uuid::Uuid::now_v7().to_string()))
    }

    /// Where to send the customer to authorise `consent_id`, and what to keep meanwhile.
    pub async fn authorisation(
        &self,
        consent_id: &str,
        redirect_uri: &str,
        state: &str,
    ) -> Result<Authorisation, BankError> {
        let ep = self.endpoints().await?.clone();
        let mut url = url::Url::parse(&ep.authorize)
            .map_err(|e| failure(format!("authorisation endpoint: {e}")))?;
        let Some(s) = self.security() else {
            url.query_pairs_mut()
                .append_pair("consent_id", consent_id)
                .append_pair("redirect_uri", redirect_uri)
                .append_pair("state", state);
            return Ok(Authorisation {
                url: url.into(),
                context: AuthContext::default(),
            });
        };
        let pkce = matches!(
            self.provider.standard,
            Standard::BerlinGroup | Standard::OpenFinanceBrasil
        );
        let context = AuthContext {
            nonce: (self.provider.standard != Standard::BerlinGroup).then(|| random_token(24)),
            code_verifier: pkce.then(|| random_token(32)),
        };
        let challenge = context.code_verifier.as_deref().map(oidc::pkce_challenge);
        match self.provider.standard {
            Standard::BerlinGroup => {
                let mut q = url.query_pairs_mut();
                q.append_pair("response_type", "code")
                    .append_pair("client_id", &s.client_id)
                    .append_pair("scope", &format!("AIS:{consent_id}"))
                    .append_pair("redirect_uri", redirect_uri)
                    .append_pair("state", state);
                if let Some(c) = &challenge {
                    q.append_pair("code_challenge", c)
                        .append_pair("code_challenge_method", "S256");
                }
            }
            Standard::Obie => {
                let scope = "openid accounts";
                let request = self.request_object(&ep, &context, redirect_uri, state, scope, |claims| {
                    claims["claims"] = json!({"id_token": {
                        "openbanking_intent_id": {"value": consent_id, "essential": true},
                        "acr": {"essential": true, "values": ["urn:openbanking:psd2:sca", "urn:openbanking:psd2:ca"]},
                    }});
                })?;
                url.query_pairs_mut()
                    .append_pair("client_id", &s.client_id)
                    .append_pair("response_type", "code id_token")
                    .append_pair("scope", scope)
                    .append_pair("redirect_uri", redirect_uri)
                    .append_pair("state", state)
                    .append_pair("nonce", context.nonce.as_deref().unwrap_or_default())
                    .append_pair("request", &request);
            }
            Standard::OpenFinanceBrasil => {
                let scope = format!("openid accounts consent:{consent_id}");
                let request =
                    self.request_object(&ep, &context, redirect_uri, state, &scope, |claims| {
                        claims["code_challenge"] = json!(challenge);
                        claims["code_challenge_method"] = json!("S256");
                    })?;
                let request_uri = self.push_request(&ep, &request).await?;
                url.query_pairs_mut()
                    .append_pair("client_id", &s.client_id)
                    .append_pair("request_uri", &request_uri);
            }
        }
        Ok(Authorisation {
            url: url.into(),
            context,
        })
    }

    fn request_object(
        &self,
        ep: &Endpoints,
        ctx: &AuthContext,
        redirect_uri: &str,
        state: &str,
        scope: &str,
        extra: impl FnOnce(&mut Value),
    ) -> Result<String, BankError> {
        let s = self.security().expect("called for secured providers");
        let key = s
            .signing
            .as_ref()
            .ok_or_else(|| failure("a request object needs the signing key"))?;
        let now = jws::now();
        let mut claims = json!({
            "iss": s.client_id, "aud": ep.issuer, "client_id": s.client_id,
            "response_type": "code id_token", "redirect_uri": redirect_uri, "scope": scope,
            "state": state, "nonce": ctx.nonce, "iat": now, "nbf": now, "exp": now + 300,
            "jti": random_token(16),
        });
        extra(&mut claims);
        jws::sign(key, Some("oauth-authz-req+jwt"), &claims)
            .map_err(|e| failure(format!("signing the request object: {e}")))
    }

    /// Pushes a request object (RFC 9126); the bank answers the `request_uri` to send.
    async fn push_request(&self, ep: &Endpoints, request: &str) -> Result<String, BankError> {
        let par = ep
            .par
            .clone()
            .ok_or_else(|| failure("the bank has no pushed authorisation request endpoint"))?;
        let mut form = vec![("request".to_string(), request.to_string())];
        let audience = ep.issuer.clone().unwrap_or_else(|| par.clone());
        let req = self.client_auth(self.post(&par), &audience, &mut form)?;
        let body = self.json(req.form(&form), crate::http::oauth_error).await?;
        body["request_uri"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| failure("the PAR answer has no request_uri"))
    }

    /// Checks the ID token of a hybrid-flow return, then exchanges the code.
    pub async fn finish(
        &self,
        ret: &AuthReturn,
        ctx: &AuthContext,
        consent_id: &str,
        redirect_uri: &str,
    ) -> Result<Tokens, BankError> {
        if let Some(s) = self.security()
            && self.provider.standard != Standard::BerlinGroup
        {
            let id_token = ret
                .id_token
                .as_deref()
                .ok_or_else(|| refused("the bank sent no id_token with the code"))?;
            self.check_id_token(s, id_token, ret, ctx, consent_id)
                .await?;
        }
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", ret.code.as_str()),
            ("redirect_uri", redirect_uri),
        ];
        if let Some(v) = &ctx.code_verifier {
            form.push(("code_verifier", v));
        }
        self.token(&form).await
    }

    async fn check_id_token(
        &self,
        s: &Security,
        token: &str,
        ret: &AuthReturn,
        ctx: &AuthContext,
        consent_id: &str,
    ) -> Result<(), BankError> {
        let unverified = jws::decode(token).map_err(refused)?;
        let key = self.bank_key(unverified.header.kid.as_deref()).await?;
        let claims = unverified.verify(&key).map_err(refused)?;
        let issuer = self.endpoints().await?.issuer.clone().unwrap_or_default();
        jws::check_claims(
            &claims,
            &jws::Expect {
                iss: &issuer,
                aud: &[s.client_id.as_str()],
                max_lifetime: 24 * 3600,
                leeway: 60,
            },
        )
        .map_err(refused)?;
        let claim = |name: &str| claims[name].as_str().unwrap_or_default();
        if ctx.nonce.as_deref() != Some(claim("nonce")) {
            return Err(refused("`nonce` is not the one sent"));
        }
        if claim("c_hash") != oidc::half_hash(&ret.code) {
            return Err(refused("`c_hash` does not match the code"));
        }
        if claim("s_hash") != oidc::half_hash(&ret.state) {
            return Err(refused("`s_hash` does not match the state"));
        }
        if self.provider.standard == Standard::Obie && claim("openbanking_intent_id") != consent_id
        {
            return Err(refused("`openbanking_intent_id` is not this consent"));
        }
        Ok(())
    }
}

impl Provider {
    /// Where the bank sends the customer back: the registry's `redirect_uri`, or `default`.
    pub fn redirect_uri(&self, default: &str) -> String {
        self.security
            .as_ref()
            .and_then(|s| s.redirect_uri.clone())
            .unwrap_or_else(|| default.to_string())
    }
}

impl crate::Connector {
    /// Proves the provider's settings against the bank: its discovery document and keys where
    /// it publishes them, else a mutual-TLS exchange with its token endpoint. Says what it found.
    pub async fn check(&self) -> Result<String, BankError> {
        let api = crate::connector_api(self);
        let ep = api.endpoints().await?.clone();
        if ep.jwks_uri.is_some() {
            let jwks = api.bank_key(None).await;
            let keys = api
                .oauth
                .jwks
                .read()
                .await
                .as_ref()
                .map_or(0, |k| k.keys.len());
            if keys == 0 {
                return Err(jwks
                    .err()
                    .unwrap_or_else(|| failure("the JWKS holds no key")));
            }
            return Ok(format!(
                "discovery and JWKS ({keys} key{}) fetched from {}",
                if keys == 1 { "" } else { "s" },
                ep.issuer.unwrap_or_default()
            ));
        }
        let resp = api
            .get(&ep.token)
            .send()
            .await
            .map_err(|e| crate::http::transport(&e))?;
        Ok(format!(
            "the token endpoint answered over TLS ({})",
            resp.status()
        ))
    }
}
