//! The control API: what a test or a person does to the sandbox banks from outside —
//! inject faults, add transactions, book pending ones, and revoke or expire a consent at the
//! bank. Errors are problem details naming the field, like freshet's own API.

use std::{collections::HashMap, time::Duration};

use axum::{
    Json, Router,
    body::Bytes,
    extract::{OriginalUri, Path, Query, State},
    http::{HeaderMap, StatusCode, Uri, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{
    Sandbox,
    bank::{Fault, FaultKind, Notification},
    catalogue::{BANKS, Bank, bank},
    data::TxnState,
    web,
};

pub fn routes() -> Router<Sandbox> {
    Router::new()
        .route(
            "/control/faults",
            get(list_faults).post(add_fault).delete(clear_faults),
        )
        .route("/control/transactions", post(add_transactions))
        .route("/control/stats", get(stats))
        .route("/control/transactions/book", post(book))
        .route("/control/consents/{id}/revoke", post(revoke))
        .route("/control/consents/{id}/expire", post(expire))
}

fn problem(status: StatusCode, detail: &str, field: Option<&str>) -> Response {
    let mut body = json!({
        "type": if status == StatusCode::NOT_FOUND { "urn:freshet:problem:not-found" } else { "urn:freshet:problem:invalid-request" },
        "title": status.canonical_reason().unwrap_or("Error"),
        "status": status.as_u16(),
        "detail": detail,
    });
    if let Some(field) = field {
        body["errors"] = json!([{"field": field, "message": detail}]);
    }
    let mut resp = (status, Json(body)).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/problem+json"),
    );
    resp
}

/// Reads a JSON body strictly, naming the field that is wrong.
fn read<T: for<'de> Deserialize<'de>>(body: &Bytes) -> Result<T, Response> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let field = (path != ".").then_some(path);
        problem(
            StatusCode::BAD_REQUEST,
            &e.inner().to_string(),
            field.as_deref(),
        )
    })
}

fn known_bank(id: &str) -> Result<&'static Bank, Response> {
    bank(id).ok_or_else(|| {
        let ids: Vec<&str> = BANKS.iter().map(|b| b.id).collect();
        problem(
            StatusCode::BAD_REQUEST,
            &format!("unknown provider; the sandbox has {}", ids.join(", ")),
            Some("provider_id"),
        )
    })
}

/// The sandbox's banks with their absolute endpoints.
pub async fn providers(
    State(sb): State<Sandbox>,
    headers: HeaderMap,
    original: OriginalUri,
    uri: Uri,
) -> Response {
    let root = web::root_url(&sb, &headers, &original, &uri);
    let data: Vec<Value> = BANKS
        .iter()
        .map(|b| {
            let p = b.paths(&root);
            json!({
                "id": b.id,
                "name": b.name,
                "code": b.code,
                "numeric_id": b.numeric_id,
                "standard": b.standard,
                "country": b.country,
                "api_base": p.api_base,
                "authorize_url": p.authorize,
                "token_url": p.token,
            })
        })
        .collect();
    Json(json!({"data": data})).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FaultIn {
    provider_id: String,
    kind: FaultKind,
    times: Option<u32>,
    delay_ms: Option<u64>,
}

/// How long a `slow` fault holds a call when the request does not say.
const SLOW_DELAY: Duration = Duration::from_secs(1);

/// A `slow` fault's longest delay: long enough for any client's timeout, short of a hang.
const SLOW_DELAY_MAX_MS: u64 = 600_000;

fn fault_json(bank: &str, f: &Fault) -> Value {
    let mut v = json!({"provider_id": bank, "kind": f.kind, "times": f.remaining});
    if f.kind == FaultKind::Slow {
        v["delay_ms"] = json!(f.delay.as_millis() as u64);
    }
    v
}

async fn add_fault(State(sb): State<Sandbox>, body: Bytes) -> Response {
    let f: FaultIn = tri!(read(&body));
    let bank = tri!(known_bank(&f.provider_id));
    if f.times == Some(0) {
        return problem(
            StatusCode::BAD_REQUEST,
            "times must be at least 1 (leave it out for until cleared)",
            Some("times"),
        );
    }
    let delay = match (f.kind, f.delay_ms) {
        (FaultKind::Slow, None) => SLOW_DELAY,
        (FaultKind::Slow, Some(ms)) if ms <= SLOW_DELAY_MAX_MS => Duration::from_millis(ms),
        (FaultKind::Slow, Some(_)) => {
            return problem(
                StatusCode::BAD_REQUEST,
                &format!("delay_ms must be at most {SLOW_DELAY_MAX_MS}"),
                Some("delay_ms"),
            );
        }
        (_, Some(_)) => {
            return problem(
                StatusCode::BAD_REQUEST,
                "delay_ms applies only to the slow fault",
                Some("delay_ms"),
            );
        }
        (_, None) => Duration::ZERO,
    };
    let fault = Fault {
        kind: f.kind,
        remaining: f.times,
        delay,
    };
    sb.set_fault(bank, fault);
    (StatusCode::CREATED, Json(fault_json(bank.id, &fault))).into_response()
}

async fn list_faults(State(sb): State<Sandbox>) -> Response {
    let data: Vec<Value> = sb
        .faults()
        .into_iter()
        .map(|(b, f)| fault_json(b, &f))
        .collect();
    Json(json!({"data": data})).into_response()
}

async fn clear_faults(
    State(sb): State<Sandbox>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let bank = match q.get("provider_id") {
        Some(id) => Some(tri!(known_bank(id))),
        None => None,
    };
    sb.clear_faults(bank);
    StatusCode::NO_CONTENT.into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TransactionsIn {
    provider_id: String,
    count: u32,
    #[serde(default)]
    status: Option<StatusIn>,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum StatusIn {
    Booked,
    Pending,
}

async fn add_transactions(State(sb): State<Sandbox>, body: Bytes) -> Response {
    let t: TransactionsIn = tri!(read(&body));
    let bank = tri!(known_bank(&t.provider_id));
    if !(1..=1000).contains(&t.count) {
        return problem(
            StatusCode::BAD_REQUEST,
            "count must be 1 to 1000",
            Some("count"),
        );
    }
    let state = match t.status {
        Some(StatusIn::Pending) => TxnState::Pending,
        _ => TxnState::Booked,
    };
    let (accounts, owed) = sb.add_transactions(bank, t.count, state);
    let notified = owed.len();
    for n in owed {
        tokio::spawn(notify(sb.http.clone(), n));
    }
    (StatusCode::CREATED, Json(json!({"provider_id": bank.id, "added": accounts.len() as u64 * u64::from(t.count), "account_ids": accounts, "notified": notified}))).into_response()
}

/// Tells a TPP that new transactions reached its consent's accounts, at the
/// `TPP-Notification-URI` it gave: `{"consentId", "accountIds"}`. One attempt; the TPP's next
/// scheduled refresh finds the transactions anyway.
async fn notify(http: reqwest::Client, n: Notification) {
    let body = json!({"consentId": n.consent_id, "accountIds": n.account_ids});
    match http.post(&n.uri).json(&body).send().await {
        Ok(r) if r.status().is_success() => {}
        Ok(r) => {
            tracing::warn!(consent = %n.consent_id, status = %r.status(), "the TPP refused the notification")
        }
        Err(e) => {
            tracing::warn!(consent = %n.consent_id, error = %e, "the notification did not reach the TPP")
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BookIn {
    provider_id: String,
}

async fn book(State(sb): State<Sandbox>, body: Bytes) -> Response {
    let b: BookIn = tri!(read(&body));
    let bank = tri!(known_bank(&b.provider_id));
    let n = sb.book_pending(bank);
    Json(json!({"provider_id": bank.id, "booked": n})).into_response()
}

/// Counters: bank API calls answered and consents held, per bank.
async fn stats(State(sb): State<Sandbox>) -> Response {
    let consents: serde_json::Map<String, Value> = sb
        .consent_counts()
        .into_iter()
        .map(|(b, n)| (b.to_string(), json!(n)))
        .collect();
    Json(json!({"calls": sb.calls(), "consents": consents})).into_response()
}

async fn revoke(State(sb): State<Sandbox>, Path(id): Path<String>) -> Response {
    end(&sb, &id, true)
}

async fn expire(State(sb): State<Sandbox>, Path(id): Path<String>) -> Response {
    end(&sb, &id, false)
}

fn end(sb: &Sandbox, id: &str, revoke: bool) -> Response {
    match sb.end_at_bank(id, revoke) {
        Some(c) => Json(json!({
            "consent_id": c.id,
            "provider_id": c.bank.id,
            "ended": if revoke { "revoked_by_customer" } else { "expired" },
        }))
        .into_response(),
        None => problem(
            StatusCode::NOT_FOUND,
            "no such consent at any sandbox bank",
            None,
        ),
    }
}
