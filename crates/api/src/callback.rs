//! Where banks send the customer back after their authorisation page. The plain redirect flow
//! puts `state` and `code` in the query; the hybrid flow of FAPI banks (`code id_token`) puts
//! them in the URL fragment, which never reaches a server: the page served then reads it in
//! the browser and posts it back here. Either way the consent is completed, then the customer
//! is sent to the link's `redirect_url` or shown what happened.

use axum::{
    body::Bytes,
    extract::State,
    http::{HeaderValue, StatusCode, header},
    response::{Html, IntoResponse, Response},
};
use freshet_engine::refresh::AuthorisationReturn;
use serde::Deserialize;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    extract::Query,
    problem::{ApiError, Problem},
    state::AppState,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(callback, callback_fragment))
}

/// What a bank sends the customer back with.
#[derive(Deserialize, utoipa::IntoParams, utoipa::ToSchema)]
#[into_params(parameter_in = Query)]
pub struct CallbackParams {
    state: Option<String>,
    code: Option<String>,
    /// The ID token of the hybrid flow.
    id_token: Option<String>,
    error: Option<String>,
    #[allow(dead_code)]
    error_description: Option<String>,
}

/// Completes a consent from what the bank sent the customer back with. With nothing in the
/// query (the hybrid flow's answer is in the fragment), answers a page that posts the
/// fragment back. No API key: the `state` identifies the consent.
#[utoipa::path(
    get, path = "/v1/consents/callback", tag = "links",
    params(CallbackParams),
    responses(
        (status = 200, description = "A page for the customer"),
        (status = 303, description = "To the link's redirect_url"),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    )
)]
async fn callback(
    State(state): State<AppState>,
    Query(q): Query<CallbackParams>,
) -> Result<Response, ApiError> {
    if q.state.is_none() && q.code.is_none() && q.error.is_none() {
        return Ok(fragment_page());
    }
    complete(&state, q).await
}

/// The hybrid flow's fragment, posted back by the callback page (form-encoded `state`,
/// `code`, `id_token`, or `error`).
#[utoipa::path(
    post, path = "/v1/consents/callback", tag = "links",
    request_body(content = CallbackParams, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "A page for the customer"),
        (status = 303, description = "To the link's redirect_url"),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    )
)]
async fn callback_fragment(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let q: CallbackParams = serde_urlencoded::from_bytes(&body)
        .map_err(|e| ApiError::bad_field("body", format!("not a form: {e}")))?;
    complete(&state, q).await
}

async fn complete(state: &AppState, q: CallbackParams) -> Result<Response, ApiError> {
    let Some(s) = q.state.as_deref().filter(|s| !s.is_empty()) else {
        return Err(ApiError::bad_field("state", "is required"));
    };
    let done = state
        .refresher
        .complete_authorisation(AuthorisationReturn {
            state: s,
            code: q.code.as_deref(),
            id_token: q.id_token.as_deref(),
            error: q.error.as_deref(),
        })
        .await?;
    let status = done.consent.status.as_str();
    if let Some(url) = &done.consent.redirect_url
        && let Ok(mut target) = url::Url::parse(url)
    {
        target
            .query_pairs_mut()
            .append_pair("consent_id", &done.consent.id.to_string())
            .append_pair("status", status);
        let mut resp = StatusCode::SEE_OTHER.into_response();
        if let Ok(v) = HeaderValue::from_str(target.as_str()) {
            resp.headers_mut().insert(header::LOCATION, v);
        }
        return Ok(resp);
    }
    let message = if done.authorised {
        "Your bank connection is authorised. You can close this window.".to_string()
    } else {
        format!(
            "The bank connection was not authorised: {}.",
            done.detail.unwrap_or_default()
        )
    };
    Ok(Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>freshet</title></head>\
         <body><h1>{}</h1><p>{}</p><p>Consent {} is {status}.</p></body></html>",
        if done.authorised { "Connected" } else { "Not connected" },
        html_escape(&message),
        done.consent.id
    ))
    .into_response())
}

/// The page that carries a fragment back: it posts the fragment's parameters to this same
/// path and removes the fragment from the address bar and history first, so the code never
/// lingers there.
fn fragment_page() -> Response {
    let mut resp = Html(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>freshet</title>
<meta name="referrer" content="no-referrer"></head><body><h1>Completing your bank connection…</h1>
<p id="m"><noscript>This step needs JavaScript to read what your bank sent back.</noscript></p>
<script>
(function () {
  var p = new URLSearchParams(location.hash.slice(1));
  if (!p.has("state")) {
    document.getElementById("m").textContent = "Nothing came back from a bank: open this page from your bank's authorisation.";
    return;
  }
  history.replaceState(null, "", location.pathname);
  var f = document.createElement("form");
  f.method = "post";
  f.action = location.pathname;
  p.forEach(function (v, k) {
    var i = document.createElement("input");
    i.type = "hidden"; i.name = k; i.value = v; f.appendChild(i);
  });
  document.body.appendChild(f);
  f.submit();
})();
</script></body></html>"#,
    )
    .into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
