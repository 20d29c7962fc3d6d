//! The authorisation request as each standard's security profile has it: a signed request
//! object (OBIE, FAPI 1 Advanced), pushed first to the PAR endpoint (Open Finance Brasil), or
//! Berlin Group's OAuth SCA request with PKCE naming the consent in `scope`. Whatever the
//! route, it ends as one [`AuthRequest`] the authorisation page shows and decides.

use std::collections::HashMap;

use axum::{
    Extension, Form, Json,
    extract::{OriginalUri, Path, State},
    http::{HeaderMap, StatusCode, Uri},
    response::{IntoResponse, Response},
};
use freshet_fapi::jws::{self, Expect};
use serde_json::{Value, json};

use super::{CLIENT_ID, PAR_SECONDS, Peer, Strict, oauth_error};
use crate::{
    Sandbox,
    bank::ConsentState,
    catalogue::{Bank, Standard, bank},
};

/// The longest a request object may live, `nbf` to `exp`.
const MAX_REQUEST_SECONDS: i64 = 3600;

/// An authorisation request that passed its standard's checks.
#[derive(Clone, Debug)]
pub struct AuthRequest {
    pub consent_id: String,
    pub redirect_uri: String,
    pub state: Option<String>,
    pub nonce: Option<String>,
    /// PKCE S256 challenge the code will be bound to.
    pub code_challenge: Option<String>,
    /// OBIE and OFB answer `code id_token` in the fragment; Berlin Group `code` in the query.
    pub hybrid: bool,
    /// The `request_uri` it came through, which the decision uses up.
    pub request_uri: Option<String>,
}

/// Resolves the authorisation request in `q` at `bank`, whose issuer is `issuer`. `Err`
/// is the reason the page shows.
pub(crate) fn resolve(
    sb: &Sandbox,
    strict: &Strict,
    bank: &Bank,
    q: &HashMap<String, String>,
    issuer: &str,
) -> Result<AuthRequest, String> {
    let get = |k: &str| q.get(k).map(String::as_str).filter(|v| !v.is_empty());
    match get("client_id") {
        None => return Err("client_id is missing".into()),
        Some(CLIENT_ID) => {}
        Some(_) => return Err("client_id is not a registered client".into()),
    }
    let req = match (bank.standard, get("request_uri"), get("request")) {
        (Standard::BerlinGroup, _, _) => berlin(sb, bank, &get)?,
        (_, Some(uri), _) => strict
            .pushed(uri, false)
            .ok_or("request_uri is unknown, expired or already used")?,
        (Standard::OpenFinanceBrasil, None, Some(_)) => {
            return Err(
                "this bank requires pushed authorisation requests: push the request \
                        object to the PAR endpoint and send only client_id and request_uri"
                    .into(),
            );
        }
        (Standard::OpenFinanceBrasil, None, None) => {
            return Err(
                "request_uri is missing: this bank requires a pushed authorisation request".into(),
            );
        }
        (Standard::Obie, None, None) => {
            return Err(
                "request is missing: this bank requires a signed request object (FAPI)".into(),
            );
        }
        (Standard::Obie, None, Some(jws)) => {
            let (req, claims) = request_object(strict, bank, jws, issuer)?;
            for key in [
                "client_id",
                "response_type",
                "redirect_uri",
                "scope",
                "state",
                "nonce",
            ] {
                if let (Some(v), Some(c)) = (get(key), claims[key].as_str())
                    && v != c
                {
                    return Err(format!(
                        "`{key}` in the query differs from the request object's"
                    ));
                }
            }
            req
        }
    };
    awaiting(sb, bank, &req.consent_id)?;
    Ok(req)
}

fn awaiting(sb: &Sandbox, bank: &Bank, consent_id: &str) -> Result<(), String> {
    match sb.consent(bank, consent_id) {
        None => Err("the consent named is unknown at this bank".into()),
        Some(c) if c.state != ConsentState::Awaiting => {
            Err("this consent has already been decided".into())
        }
        Some(_) => Ok(()),
    }
}

/// Berlin Group's OAuth SCA approach: `scope=AIS:<consentId>`, the consent's redirect, PKCE.
fn berlin<'q>(
    sb: &Sandbox,
    bank: &Bank,
    get: &impl Fn(&str) -> Option<&'q str>,
) -> Result<AuthRequest, String> {
    if get("response_type") != Some("code") {
        return Err("response_type must be `code`".into());
    }
    let consent_id = get("scope")
        .and_then(|s| s.strip_prefix("AIS:"))
        .filter(|id| !id.is_empty())
        .ok_or("scope must be `AIS:<consentId>`")?;
    let consent = sb
        .consent(bank, consent_id)
        .ok_or("scope names a consent unknown at this bank")?;
    let redirect = get("redirect_uri").ok_or("redirect_uri is missing")?;
    if consent.redirect_uri.as_deref() != Some(redirect) {
        return Err("redirect_uri must equal the consent's TPP-Redirect-URI".into());
    }
    let challenge = pkce(get("code_challenge"), get("code_challenge_method"), true)?;
    Ok(AuthRequest {
        consent_id: consent_id.to_string(),
        redirect_uri: redirect.to_string(),
        state: get("state").map(str::to_string),
        nonce: None,
        code_challenge: challenge,
        hybrid: false,
        request_uri: None,
    })
}

fn pkce(
    challenge: Option<&str>,
    method: Option<&str>,
    required: bool,
) -> Result<Option<String>, String> {
    match (challenge, method) {
        (None, _) if required => Err("code_challenge is required (PKCE)".into()),
        (None, _) => Ok(None),
        (Some(c), Some("S256")) => Ok(Some(c.to_string())),
        (Some(_), _) => Err("code_challenge_method must be S256".into()),
    }
}

/// Checks a request object (OBIE, OFB) and reads the request from it, with its claims.
fn request_object(
    strict: &Strict,
    bank: &Bank,
    jws: &str,
    issuer: &str,
) -> Result<(AuthRequest, Value), String> {
    let fail = |why: &str| format!("request object: {why}");
    let token = jws::decode(jws).map_err(|e| fail(&e.to_string()))?;
    let claims = token
        .verify(&strict.config.client_key)
        .map_err(|e| match e {
            freshet_fapi::Error::BadSignature => {
                fail("the signature does not verify with the client's registered key")
            }
            other => fail(&other.to_string()),
        })?;
    let text = |k: &str| claims[k].as_str().filter(|v| !v.is_empty());
    if text("client_id") != Some(CLIENT_ID) {
        return Err(fail(&format!("`client_id` must be `{CLIENT_ID}`")));
    }
    if claims["nbf"].as_i64().is_none() {
        return Err(fail("`nbf` is required"));
    }
    let expect = Expect {
        iss: CLIENT_ID,
        aud: &[issuer],
        max_lifetime: MAX_REQUEST_SECONDS,
        leeway: 5,
    };
    jws::check_claims(&claims, &expect).map_err(|e| fail(&e.to_string()))?;
    if text("response_type") != Some("code id_token") {
        return Err(fail("`response_type` must be `code id_token`"));
    }
    let redirect = text("redirect_uri")
        .filter(|r| url::Url::parse(r).is_ok_and(|u| matches!(u.scheme(), "http" | "https")))
        .ok_or_else(|| fail("`redirect_uri` must be an http or https URL"))?;
    let scope: Vec<&str> = text("scope").unwrap_or_default().split(' ').collect();
    if !scope.contains(&"openid") || !scope.contains(&"accounts") {
        return Err(fail("`scope` must contain `openid` and `accounts`"));
    }
    let state = text("state").ok_or_else(|| fail("`state` is required"))?;
    let nonce = text("nonce").ok_or_else(|| fail("`nonce` is required"))?;
    let consent_id = match bank.standard {
        Standard::Obie => claims["claims"]["id_token"]["openbanking_intent_id"]["value"]
            .as_str()
            .ok_or_else(|| fail("`claims.id_token.openbanking_intent_id.value` is required"))?,
        _ => scope
            .iter()
            .find_map(|s| s.strip_prefix("consent:"))
            .ok_or_else(|| fail("`scope` must contain `consent:<consentId>`"))?,
    };
    let challenge = pkce(
        text("code_challenge"),
        text("code_challenge_method"),
        bank.standard == Standard::OpenFinanceBrasil,
    )
    .map_err(|e| fail(&e))?;
    let req = AuthRequest {
        consent_id: consent_id.to_string(),
        redirect_uri: redirect.to_string(),
        state: Some(state.to_string()),
        nonce: Some(nonce.to_string()),
        code_challenge: challenge,
        hybrid: true,
        request_uri: None,
    };
    Ok((req, claims))
}

/// `POST /{bank}/par` (RFC 9126): the request object, checked now, for a `request_uri`.
pub(crate) async fn par(
    State(sb): State<Sandbox>,
    Path(bank_id): Path<String>,
    peer: Option<Extension<Peer>>,
    headers: HeaderMap,
    original: OriginalUri,
    uri: Uri,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let (Some(strict), Some(bank)) = (
        sb.strict.clone(),
        bank(&bank_id).filter(|b| b.standard != Standard::BerlinGroup),
    ) else {
        return crate::web::not_found().await;
    };
    let root = crate::web::root_url(&sb, &headers, &original, &uri);
    let issuer = format!("{root}/{}", bank.id);
    let (token_url, par_url) = (format!("{issuer}/token"), format!("{issuer}/par"));
    let audiences = [token_url.as_str(), issuer.as_str(), par_url.as_str()];
    tri!(super::authenticate_client(
        &strict,
        bank,
        &form,
        peer.as_deref(),
        &audiences
    ));
    let bad = |why: &str| oauth_error(StatusCode::BAD_REQUEST, "invalid_request_object", why);
    if form.contains_key("request_uri") {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "request_uri is not allowed at the PAR endpoint",
        );
    }
    let Some(jws) = form.get("request").filter(|r| !r.is_empty()) else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "request is missing: push a signed request object",
        );
    };
    let (req, _) = match request_object(&strict, bank, jws, &issuer) {
        Ok(r) => r,
        Err(why) => return bad(&why),
    };
    if let Err(why) = awaiting(&sb, bank, &req.consent_id) {
        return bad(&why);
    }
    let request_uri = strict.push(req);
    (
        StatusCode::CREATED,
        Json(json!({"request_uri": request_uri, "expires_in": PAR_SECONDS})),
    )
        .into_response()
}
