//! HTTP plumbing shared by the connectors: timeouts, transport failures, error bodies, and
//! Berlin Group's message signing applied to every request that needs it.

use std::{sync::Arc, time::Duration};

use freshet_model::{ResultCode, Standard};
use reqwest::{RequestBuilder, Response, StatusCode, header::HeaderMap};
use serde::Deserialize;
use serde_json::Value;

use crate::{BankError, Provider, Tokens, oauth::OAuthState};

/// A provider's API and the client to reach it.
#[derive(Clone, Debug)]
pub struct Api {
    pub provider: Provider,
    client: reqwest::Client,
    pub(crate) oauth: Arc<OAuthState>,
}

/// Reads a standard's error response into freshet's words.
pub type ErrorMapper = fn(StatusCode, &HeaderMap, &Value) -> BankError;

impl Api {
    /// `client` serves providers that bring no client of their own (no mutual TLS).
    pub fn new(provider: Provider, client: reqwest::Client) -> Self {
        let client = provider
            .security
            .as_ref()
            .map_or(client, |s| s.client.clone());
        Self {
            provider,
            client,
            oauth: Arc::default(),
        }
    }

    /// `path` under the standard's API root; absolute URLs (paging links) are taken as they are.
    pub fn url(&self, path: &str) -> String {
        if path.starts_with("http://") || path.starts_with("https://") {
            path.to_string()
        } else {
            format!("{}{path}", self.provider.api_base.trim_end_matches('/'))
        }
    }

    pub fn get(&self, url: &str) -> RequestBuilder {
        self.client.get(url).timeout(self.provider.timeout)
    }

    pub fn post(&self, url: &str) -> RequestBuilder {
        self.client.post(url).timeout(self.provider.timeout)
    }

    pub fn delete(&self, url: &str) -> RequestBuilder {
        self.client.delete(url).timeout(self.provider.timeout)
    }

    /// Sends and returns the JSON body of a 2xx answer; anything else through `map_error`.
    pub async fn json(
        &self,
        req: RequestBuilder,
        map_error: ErrorMapper,
    ) -> Result<Value, BankError> {
        let resp = self.send(req).await?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.map_err(|e| transport(&e))?;
        let body: Value = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text.chars().take(200).collect()))
        };
        if status.is_success() {
            return Ok(body);
        }
        let mut err = map_error(status, &headers, &body);
        err.status = Some(status.as_u16());
        if err.retry_after.is_none() {
            err.retry_after = retry_after(&headers);
        }
        Err(err)
    }

    /// Reads a token endpoint's answer.
    pub(crate) async fn token_request(&self, req: RequestBuilder) -> Result<Tokens, BankError> {
        #[derive(Deserialize)]
        struct TokenOut {
            access_token: String,
            refresh_token: Option<String>,
            expires_in: Option<i64>,
        }
        let body = self.json(req, oauth_error).await?;
        let t: TokenOut = serde_json::from_value(body).map_err(|e| {
            BankError::new(ResultCode::ProviderFailure, format!("token response: {e}"))
        })?;
        Ok(Tokens {
            access_token: t.access_token,
            refresh_token: t.refresh_token,
            expires_at: t
                .expires_in
                .map(|s| freshet_model::time::now() + time::Duration::seconds(s)),
        })
    }
}

impl Api {
    /// Sends a request, signed first when the provider asks for Berlin Group message signing.
    async fn send(&self, req: RequestBuilder) -> Result<Response, BankError> {
        let signing = self
            .provider
            .security
            .as_deref()
            .filter(|s| s.sign_requests && self.provider.standard == Standard::BerlinGroup);
        let Some(security) = signing else {
            return req.send().await.map_err(|e| transport(&e));
        };
        let mut request = req.build().map_err(|e| transport(&e))?;
        crate::signing::sign(&mut request, security)?;
        self.client
            .execute(request)
            .await
            .map_err(|e| transport(&e))
    }
}

/// A failure with no HTTP answer. The detail carries the cause's chain: a refused TLS
/// handshake says why only in its sources.
pub fn transport(e: &reqwest::Error) -> BankError {
    let mut why = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        why.push_str(": ");
        why.push_str(&cause.to_string());
        source = cause.source();
    }
    if e.is_timeout() {
        BankError::new(
            ResultCode::ProviderTimeout,
            "the bank did not answer in time",
        )
    } else if why.contains("fatal alert") || why.contains("invalid peer certificate") {
        BankError::new(
            ResultCode::ProviderFailure,
            format!(
                "the TLS handshake with the bank failed (check the transport certificate and the \
                 `ca` the registry trusts): {why}"
            ),
        )
    } else if e.is_connect() {
        BankError::new(
            ResultCode::ProviderUnavailable,
            format!("the bank could not be reached: {why}"),
        )
    } else {
        BankError::new(
            ResultCode::ProviderFailure,
            format!("talking to the bank failed: {why}"),
        )
    }
}

/// `Retry-After` in seconds, when given.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
        .map(Duration::from_secs)
}

/// Errors every standard shares by status alone.
pub fn by_status(status: StatusCode) -> ResultCode {
    match status.as_u16() {
        401 => ResultCode::ConnectionExpired,
        403 => ResultCode::ConnectionReauthenticate,
        404 => ResultCode::ConsentNotFound,
        429 => ResultCode::ProviderRequestLimit,
        503 => ResultCode::ProviderMaintenance,
        504 => ResultCode::ProviderTimeout,
        529 => ResultCode::ProviderRequestLimit,
        s if s >= 500 => ResultCode::ProviderFailure,
        _ => ResultCode::ProviderFailure,
    }
}

pub(crate) fn oauth_error(status: StatusCode, _: &HeaderMap, body: &Value) -> BankError {
    let code = body["error"].as_str().unwrap_or("");
    let result = match code {
        "invalid_grant" => ResultCode::AuthExpired,
        "access_denied" => ResultCode::AuthDenied,
        // The bank does not accept freshet's own credentials: no customer can fix that.
        "invalid_client" | "unauthorized_client" => ResultCode::ProviderFailure,
        _ => by_status(status),
    };
    let why = body["error_description"]
        .as_str()
        .map(|d| format!(": {}", d.chars().take(300).collect::<String>()))
        .unwrap_or_default();
    BankError::new(
        result,
        format!("the bank's OAuth server answered {status} {code}{why}"),
    )
}

/// An HTTP date (RFC 9110 IMF-fixdate), e.g. `Sun, 06 Nov 1994 08:49:37 GMT`.
pub fn http_date(t: time::OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    t.format(time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    ))
    .unwrap_or_default()
}
