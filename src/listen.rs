//! `freshet listen`: a local webhook receiver for developers, like the Stripe CLI's `listen`.
//!
//! It accepts deliveries on any path, checks every signature it can — the Standard Webhooks
//! headers every freshet delivery carries, and the dialect's own (Bud's JWT against freshet's
//! JWKS, Klavi's HMAC, Tatra's Authorization header) — prints one line per delivery (the body
//! too with `--verbose`), and forwards it to the developer's app when asked, answering freshet
//! with the app's status so retries behave as they would against the app itself.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context;
use axum::{
    Router,
    body::Bytes,
    http::{HeaderMap, StatusCode},
    routing::any,
};
use clap::Args;
use serde_json::Value;
use tokio::sync::Mutex;

/// Options of `freshet listen`. `Debug` hides the secret.
#[derive(Args, Clone)]
pub struct Listen {
    /// Address to receive on; point a webhook endpoint's URL at it.
    #[arg(long, default_value = "127.0.0.1:9000")]
    pub listen: SocketAddr,
    /// The endpoint's signing secret (`whsec_…`), to verify signatures with.
    #[arg(long, env = "FRESHET_LISTEN_SECRET", hide_env_values = true)]
    pub secret: Option<String>,
    /// The endpoint's dialect: standard, bud, tatra, klavi or yodlee.
    #[arg(long, default_value = "standard")]
    pub dialect: String,
    /// The freshet node, whose JWKS verifies Bud signatures.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub freshet: String,
    /// Forward every delivery (body and headers) to this URL and answer with its status.
    #[arg(long)]
    pub forward_to: Option<String>,
    /// Print each body, pretty.
    #[arg(long)]
    pub verbose: bool,
}

impl std::fmt::Debug for Listen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listen")
            .field("listen", &self.listen)
            .field("secret", &freshet_model::secret::redact(&self.secret))
            .field("dialect", &self.dialect)
            .field("freshet", &self.freshet)
            .field("forward_to", &self.forward_to)
            .field("verbose", &self.verbose)
            .finish()
    }
}

struct State {
    opts: Listen,
    http: reqwest::Client,
    /// Freshet's published keys, fetched on the first Bud delivery and again on an unknown key.
    jwks: Mutex<Option<Value>>,
}

pub async fn run(opts: Listen) -> anyhow::Result<()> {
    if freshet_dialects::Dialect::parse(&opts.dialect).is_none() {
        anyhow::bail!(
            "--dialect: `{}` is not one of standard, bud, tatra, klavi, yodlee",
            opts.dialect
        );
    }
    let listener = tokio::net::TcpListener::bind(opts.listen)
        .await
        .with_context(|| format!("listening on {}", opts.listen))?;
    println!(
        "listening on http://{} for {} webhooks{}{}",
        listener.local_addr()?,
        opts.dialect,
        if opts.secret.is_some() {
            ", verifying signatures"
        } else {
            " (no --secret: signatures not checked)"
        },
        opts.forward_to
            .as_deref()
            .map(|u| format!(", forwarding to {u}"))
            .unwrap_or_default()
    );
    let state = Arc::new(State {
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(15))
            .build()?,
        opts,
        jwks: Mutex::new(None),
    });
    let app = Router::new().fallback(any(move |headers: HeaderMap, body: Bytes| {
        let state = state.clone();
        async move { receive(&state, headers, body).await }
    }));
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

async fn receive(state: &State, headers: HeaderMap, body: Bytes) -> StatusCode {
    let opts = &state.opts;
    let id = header(&headers, "webhook-id").unwrap_or_else(|| "-".into());
    let parsed: Option<Value> = serde_json::from_slice(&body).ok();
    let kind = parsed
        .as_ref()
        .map(event_name)
        .unwrap_or_else(|| "(not JSON)".into());
    let mut checks = Vec::new();
    if let Some(secret) = &opts.secret {
        let verdict = freshet_dialects::verify_standard(
            &[secret.as_str()],
            |name| header(&headers, name),
            &body,
            freshet_model::time::now(),
            time::Duration::minutes(5),
        );
        checks.push(verdict_text(
            "webhook-signature",
            verdict.map_err(|e| e.to_string()),
        ));
    }
    match opts.dialect.as_str() {
        "bud" => checks.push(verdict_text(
            "x-signature",
            verify_bud(state, &headers, &body).await,
        )),
        "klavi" => {
            if let Some(secret) = &opts.secret {
                // During a rotation the header carries a signature per active secret.
                let ok = header(&headers, "x-klavi-signature")
                    .is_some_and(|got| freshet_dialects::klavi::verify_klavi(secret, &got, &body));
                checks.push(verdict_text(
                    "x-klavi-signature",
                    if ok {
                        Ok(())
                    } else {
                        Err("does not match".into())
                    },
                ));
            }
        }
        "tatra" => checks.push(match header(&headers, "authorization") {
            Some(_) => "authorization present".into(),
            None => "authorization MISSING".into(),
        }),
        _ => {}
    }
    let answer = match &opts.forward_to {
        Some(url) => forward(state, url, &headers, body.clone()).await,
        None => (StatusCode::NO_CONTENT, String::new()),
    };
    let when = time::OffsetDateTime::now_utc();
    println!(
        "{:02}:{:02}:{:02}  {kind}  {id}  {}{}",
        when.hour(),
        when.minute(),
        when.second(),
        if checks.is_empty() {
            "signature not checked".into()
        } else {
            checks.join(", ")
        },
        answer.1
    );
    if opts.verbose
        && let Some(v) = &parsed
    {
        println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
    }
    answer.0
}

fn verdict_text(what: &str, verdict: Result<(), String>) -> String {
    match verdict {
        Ok(()) => format!("{what} ok"),
        Err(why) => format!("{what} FAILED ({why})"),
    }
}

/// The event's name in whichever shape the dialect gives it.
fn event_name(v: &Value) -> String {
    let candidates = [
        &v["type"],          // standard
        &v["event"],         // bud
        &v["data"]["event"], // bud, nested
        &v[0]["eventName"],  // klavi
        &v["event"]["info"], // yodlee
        &v["eventType"],     // tatra
    ];
    if let Some(task_status) = v["taskStatus"].as_str() {
        // Tatra banka's account event names no type; its task status says what happened.
        return format!("accounts {task_status}");
    }
    let yodlee = &v["event"]["data"]["providerAccount"][0];
    if let (Some(info), Some(stage)) = (
        v["event"]["info"].as_str(),
        yodlee["dataset"][0]["additionalStatus"].as_str(),
    ) {
        // Yodlee's REFRESH notifications share two names; the stage and the provider
        // account tell them apart.
        return format!("{info} {stage} (providerAccount {})", yodlee["id"]);
    }
    candidates
        .iter()
        .find_map(|c| c.as_str())
        .map(str::to_string)
        .unwrap_or_else(|| "(event)".into())
}

async fn verify_bud(state: &State, headers: &HeaderMap, body: &[u8]) -> Result<(), String> {
    let kid = header(headers, "x-signing-id").ok_or("no X-Signing-ID")?;
    let jwt = header(headers, "x-signature").ok_or("no X-Signature")?;
    let mut cached = state.jwks.lock().await;
    for attempt in 0..2 {
        if cached.is_none() || attempt == 1 {
            let url = format!(
                "{}/.well-known/jwks.json",
                state.opts.freshet.trim_end_matches('/')
            );
            let jwks: Value = state
                .http
                .get(&url)
                .send()
                .await
                .and_then(|r| r.error_for_status())
                .map_err(|e| format!("fetching {url}: {e}"))?
                .json()
                .await
                .map_err(|e| e.to_string())?;
            *cached = Some(jwks);
        }
        let jwks = cached.as_ref().expect("fetched above");
        match freshet_dialects::verify_bud(jwks, &kid, &jwt, body) {
            Ok(_) => return Ok(()),
            // A key this listener has not seen: freshet may have rotated; fetch once more.
            Err(_) if attempt == 0 => continue,
            Err(e) => return Err(e.to_string()),
        }
    }
    Err("no key verifies it".into())
}

async fn forward(
    state: &State,
    url: &str,
    headers: &HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    let mut req = state.http.post(url).body(body);
    for (name, value) in headers {
        if !matches!(name.as_str(), "host" | "content-length" | "connection") {
            req = req.header(name, value);
        }
    }
    match req.send().await {
        Ok(r) => {
            let status =
                StatusCode::from_u16(r.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
            (status, format!("  -> {} {}", url, status.as_u16()))
        }
        Err(e) => (StatusCode::BAD_GATEWAY, format!("  -> {url} failed: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn each_dialect_names_its_events() {
        let yodlee = json!({"event": {"info": "REFRESH.INTERIM_PROGRESS", "data": {
            "providerAccount": [{"id": 4210995860u64,
                                 "dataset": [{"additionalStatus": "ACCT_SUMMARY_RECEIVED"}]}]}}});
        assert_eq!(
            event_name(&yodlee),
            "REFRESH.INTERIM_PROGRESS ACCT_SUMMARY_RECEIVED (providerAccount 4210995860)"
        );
        let test = json!({"event": {"info": "ENDPOINT.TEST", "data": {}}});
        assert_eq!(event_name(&test), "ENDPOINT.TEST");
        assert_eq!(
            event_name(&json!({"taskStatus": "FINISHED"})),
            "accounts FINISHED"
        );
        assert_eq!(
            event_name(&json!([{"eventName": "endpoint_test"}])),
            "endpoint_test"
        );
        assert_eq!(
            event_name(&json!({"type": "endpoint.test"})),
            "endpoint.test"
        );
    }
}
