//! Each bank's OAuth side: the authorisation page a customer approves or rejects a consent
//! on, and the token endpoint. The standards leave both to the bank; this is the common
//! redirect flow (RFC 6749 section 4.1) with the consent id in the query. In strict mode the
//! request, the client and the answer follow each standard's security profile instead (see
//! [`crate::strict`]).

use std::collections::HashMap;

use axum::{
    Extension, Form, Json, Router,
    extract::{OriginalUri, Path, Query, State},
    http::{HeaderMap, HeaderValue, StatusCode, Uri, header},
    response::{Html, IntoResponse, Response},
    routing::{get, post},
};
use serde_json::json;

use crate::{
    Sandbox,
    bank::{ConsentState, Exchange, TOKEN_SECONDS},
    catalogue::{Bank, Standard, bank},
    data::hash,
    strict::{self, AuthRequest, Peer, oauth_error},
    web::root_url,
};

pub fn routes() -> Router<Sandbox> {
    Router::new()
        .route("/{bank}/authorize", get(page).post(decide))
        .route("/{bank}/token", post(token))
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn refuse(message: &str) -> Response {
    let body = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Sandbox bank</title></head><body><h1>Cannot continue</h1><p>{}</p></body></html>",
        escape(message)
    );
    (StatusCode::BAD_REQUEST, Html(body)).into_response()
}

/// A query or form value, the form winning.
fn param<'a>(
    form: &'a HashMap<String, String>,
    query: &'a HashMap<String, String>,
    key: &str,
) -> Option<&'a str> {
    form.get(key)
        .or_else(|| query.get(key))
        .map(String::as_str)
        .filter(|v| !v.is_empty())
}

fn redirect_ok(uri: &str) -> bool {
    url::Url::parse(uri).is_ok_and(|u| matches!(u.scheme(), "http" | "https"))
}

/// The customer a consent opens when the page does not name one: a new one per consent,
/// except in Brasil, where the consent names the customer's CPF.
fn default_customer(consent_id: &str, logged_user: Option<&str>) -> String {
    logged_user.map_or_else(
        || format!("customer-{:08x}", hash(&[consent_id.as_bytes()]) as u32),
        str::to_string,
    )
}

/// The request the page shows and decides. Relaxed: as the query (or form) says. Strict: the
/// standard's authorisation request, checked ([`strict::resolve_authorisation`]).
fn authorisation(
    sb: &Sandbox,
    bank: &Bank,
    form: &HashMap<String, String>,
    q: &HashMap<String, String>,
    issuer: &str,
) -> Result<AuthRequest, String> {
    if let Some(strict) = &sb.strict {
        return strict::resolve_authorisation(sb, strict, bank, q, issuer);
    }
    let text = |k: &str| param(form, q, k).map(str::to_string);
    Ok(AuthRequest {
        consent_id: text("consent_id").ok_or("consent_id is missing")?,
        redirect_uri: text("redirect_uri").unwrap_or_default(),
        state: text("state"),
        nonce: None,
        code_challenge: None,
        hybrid: false,
        request_uri: None,
    })
}

/// The bank's issuer: its root as the caller reached it.
fn issuer(
    sb: &Sandbox,
    bank: &Bank,
    headers: &HeaderMap,
    original: &OriginalUri,
    uri: &Uri,
) -> String {
    format!("{}/{}", root_url(sb, headers, original, uri), bank.id)
}

async fn page(
    State(sb): State<Sandbox>,
    Path(bank_id): Path<String>,
    headers: HeaderMap,
    original: OriginalUri,
    uri: Uri,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let Some(bank) = bank(&bank_id) else {
        return refuse("no such bank");
    };
    let issuer = issuer(&sb, bank, &headers, &original, &uri);
    let req = match authorisation(&sb, bank, &HashMap::new(), &q, &issuer) {
        Ok(req) => req,
        Err(why) => return refuse(&why),
    };
    let consent_id = req.consent_id.as_str();
    let Some(consent) = sb.consent(bank, consent_id) else {
        return refuse("no such consent at this bank");
    };
    if consent.state != ConsentState::Awaiting {
        return refuse("this consent has already been decided");
    }
    let redirect = req.redirect_uri.as_str();
    if !redirect_ok(redirect) {
        return refuse("redirect_uri must be an http or https URL");
    }
    let state = req.state.as_deref().unwrap_or_default();
    let customer = default_customer(&consent.id, consent.logged_user.as_deref());
    let expiry = consent
        .expires_at
        .map_or("no expiry".to_string(), crate::web::rfc3339);
    let permissions = if consent.permissions.is_empty() {
        match bank.standard {
            Standard::BerlinGroup => consent.access.to_string(),
            _ => "—".to_string(),
        }
    } else {
        consent.permissions.join(", ")
    };
    let body = format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{bank} — authorise access</title>
<style>body{{font-family:system-ui,sans-serif;max-width:34rem;margin:3rem auto;padding:0 1rem}}
dt{{font-weight:600}}button{{font-size:1rem;padding:.5rem 1.5rem;margin-right:1rem}}</style></head>
<body><h1>{bank}</h1><p>A third party asks to read your account data.</p>
<dl><dt>Consent</dt><dd>{id}</dd><dt>Access</dt><dd>{permissions}</dd><dt>Until</dt><dd>{expiry}</dd></dl>
<form method="post">
<input type="hidden" name="consent_id" value="{id}"><input type="hidden" name="redirect_uri" value="{redirect}"><input type="hidden" name="state" value="{state}">
<p><label>Customer number <input name="customer" value="{customer}"></label></p>
<button type="submit" name="decision" value="approve">Approve</button><button type="submit" name="decision" value="reject">Reject</button>
</form></body></html>"#,
        bank = escape(bank.name),
        id = escape(&consent.id),
        permissions = escape(&permissions),
        expiry = escape(&expiry),
        redirect = escape(redirect),
        state = escape(state),
        customer = escape(&customer),
    );
    Html(body).into_response()
}

/// The customer's answer: 303 back to the client with a code, or with `error=access_denied`.
async fn decide(
    State(sb): State<Sandbox>,
    Path(bank_id): Path<String>,
    headers: HeaderMap,
    original: OriginalUri,
    uri: Uri,
    Query(q): Query<HashMap<String, String>>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let Some(bank) = bank(&bank_id) else {
        return refuse("no such bank");
    };
    let issuer = issuer(&sb, bank, &headers, &original, &uri);
    let req = match authorisation(&sb, bank, &form, &q, &issuer) {
        Ok(req) => req,
        Err(why) => return refuse(&why),
    };
    let consent_id = req.consent_id.as_str();
    let Some(consent) = sb.consent(bank, consent_id) else {
        return refuse("no such consent at this bank");
    };
    let redirect = req.redirect_uri.as_str();
    if !redirect_ok(redirect) {
        return refuse("redirect_uri must be an http or https URL");
    }
    let approve = match param(&form, &q, "decision") {
        Some("approve") => true,
        Some("reject") => false,
        _ => return refuse("decision must be approve or reject"),
    };
    let customer = param(&form, &q, "customer").map_or_else(
        || default_customer(&consent.id, consent.logged_user.as_deref()),
        str::to_string,
    );
    let challenge = req.code_challenge.as_deref();
    let code = match sb.decide(bank, consent_id, &customer, approve, (redirect, challenge)) {
        Ok(code) => code,
        Err(why) => return refuse(why),
    };
    let mut answer = Vec::new();
    match &code {
        Some(code) => answer.push(("code", code.clone())),
        None => answer.push(("error", "access_denied".to_string())),
    }
    if let Some(strict) = &sb.strict {
        if let Some(uri) = &req.request_uri {
            strict.pushed(uri, true);
        }
        if let (Some(code), true) = (&code, req.hybrid) {
            let id_token = strict::id_token(strict, bank.standard, &issuer, &req, code);
            answer.push(("id_token", id_token));
        }
    }
    if let Some(state) = &req.state {
        answer.push(("state", state.clone()));
    }
    let mut target = url::Url::parse(redirect).expect("checked above");
    if req.hybrid {
        // The hybrid flow answers in the fragment (OpenID Connect Core 3.3.2.5).
        let fragment = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&answer)
            .finish();
        target.set_fragment(Some(&fragment));
    } else {
        target.query_pairs_mut().extend_pairs(&answer);
    }
    let mut resp = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(target.as_str()) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

async fn token(
    State(sb): State<Sandbox>,
    Path(bank_id): Path<String>,
    peer: Option<Extension<Peer>>,
    headers: HeaderMap,
    original: OriginalUri,
    uri: Uri,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let Some(bank) = bank(&bank_id) else {
        return crate::web::not_found().await;
    };
    if let Some(resp) = crate::web::fault(&sb, bank).await {
        return resp;
    }
    let get = |k: &str| form.get(k).map(String::as_str).unwrap_or_default();
    // Strict: the client authenticates, and its tokens are bound to its certificate.
    let mut cnf = None;
    if let Some(strict) = &sb.strict {
        let issuer = issuer(&sb, bank, &headers, &original, &uri);
        let token_url = format!("{issuer}/token");
        let audiences = [token_url.as_str(), issuer.as_str()];
        let peer = tri!(strict::authenticate_client(
            strict,
            bank,
            &form,
            peer.as_deref(),
            &audiences
        ));
        if get("grant_type") == "client_credentials" {
            return strict::client_credentials(strict, bank, peer, get("scope"));
        }
        cnf = Some(peer.thumbprint.as_str());
    }
    let verifier = form.get("code_verifier").map(String::as_str);
    let issued = match get("grant_type") {
        "authorization_code" => {
            sb.exchange_code(bank, get("code"), get("redirect_uri"), verifier, cnf)
        }
        "refresh_token" => sb
            .refresh(bank, get("refresh_token"), cnf)
            .ok_or(Exchange::Invalid),
        "" => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "grant_type is required",
            );
        }
        _ => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "authorization_code or refresh_token",
            );
        }
    };
    match issued {
        Ok((access, refresh)) => Json(json!({
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": TOKEN_SECONDS,
            "refresh_token": refresh,
        }))
        .into_response(),
        Err(Exchange::Invalid) => oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "the code or refresh token is unknown, used, or for another redirect_uri",
        ),
        Err(Exchange::Pkce) => oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "code_verifier is missing or does not match the code_challenge (PKCE)",
        ),
    }
}
