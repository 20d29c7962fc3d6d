//! HTTP plumbing the three standards share: the sandbox's own URL, faults, errors in each
//! standard's shape, and the formats of amounts and times.

use axum::{
    Json,
    extract::OriginalUri,
    http::{HeaderMap, HeaderValue, StatusCode, Uri, header},
    response::{IntoResponse, Response},
};
use rust_decimal::Decimal;
use serde_json::{Value, json};
use time::{OffsetDateTime, format_description::well_known::Rfc3339, macros::format_description};

use crate::{
    Sandbox,
    bank::FaultKind,
    catalogue::{Bank, Standard, bank},
};

/// What every standard's handler starts from: the bank, the URLs to answer with, and the
/// bank's injected fault already applied.
pub struct Call<'a> {
    pub sb: &'a Sandbox,
    pub bank: &'static Bank,
    pub headers: &'a HeaderMap,
    /// The sandbox's root URL as the caller reached it.
    pub root: String,
    /// This request's own URL, for self links.
    pub self_url: String,
}

impl<'a> Call<'a> {
    /// The bank `bank_id` speaking `standard`, after `check` accepts the request's headers
    /// and the bank's fault, if any, has had its turn.
    pub async fn start(
        sb: &'a Sandbox,
        bank_id: &str,
        standard: Standard,
        headers: &'a HeaderMap,
        (original, uri): (&OriginalUri, &Uri),
        check: impl FnOnce(&HeaderMap) -> Result<(), Response>,
    ) -> Result<Self, Response> {
        let bank = bank_speaking(bank_id, standard)?;
        check(headers)?;
        if let Some(resp) = fault(sb, bank).await {
            return Err(resp);
        }
        let root = root_url(sb, headers, original, uri);
        Ok(Self {
            sb,
            bank,
            headers,
            self_url: self_url(&root, uri),
            root,
        })
    }

    /// The root of this bank's standard API, as the caller reaches it.
    pub fn api_base(&self) -> String {
        self.bank.paths(&self.root).api_base
    }
}

/// An account of the consent by the bank's id, or `missing`'s answer.
pub fn find_account<'a>(
    accounts: &'a [crate::data::Account],
    id: &str,
    missing: impl FnOnce() -> Response,
) -> Result<&'a crate::data::Account, Response> {
    accounts.iter().find(|a| a.id == id).ok_or_else(missing)
}

/// A `YYYY-MM-DD` query parameter; `Err` names the parameter when it does not parse.
pub fn query_date(
    q: &std::collections::HashMap<String, String>,
    key: &str,
) -> Result<Option<time::Date>, String> {
    q.get(key)
        .map(|d| {
            time::Date::parse(d, format_description!("[year]-[month]-[day]"))
                .map_err(|_| format!("{key} must be a date (YYYY-MM-DD)"))
        })
        .transpose()
}

/// The bank `id`, when it speaks `standard`; the other banks do not have this route.
pub fn bank_speaking(id: &str, standard: Standard) -> Result<&'static Bank, Response> {
    bank(id)
        .filter(|b| b.standard == standard)
        .ok_or_else(not_found_response)
}

pub async fn not_found() -> Response {
    not_found_response()
}

fn not_found_response() -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(json!({"error": "not_found", "detail": "no such sandbox route or bank"})),
    )
        .into_response()
}

/// The sandbox's root URL as the caller reached it, e.g. `http://127.0.0.1:8080/sandbox`.
pub fn root_url(sb: &Sandbox, headers: &HeaderMap, original: &OriginalUri, uri: &Uri) -> String {
    if let Some(url) = &sb.config.public_url {
        return url.trim_end_matches('/').to_string();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    let full = original.path();
    let prefix = full.strip_suffix(uri.path()).unwrap_or("");
    let scheme = if sb.is_strict() { "https" } else { "http" };
    format!("{scheme}://{host}{prefix}")
}

/// A request's own URL under the sandbox root.
pub fn self_url(root: &str, uri: &Uri) -> String {
    format!(
        "{root}{}",
        uri.path_and_query().map_or(uri.path(), |p| p.as_str())
    )
}

/// A header's value, if present and readable.
pub fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// The bearer token of a request.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    header(headers, "authorization")?.strip_prefix("Bearer ")
}

/// An error in the standard's own shape. `retry_after` adds the header.
pub fn error(
    standard: Standard,
    status: StatusCode,
    code: &str,
    text: &str,
    retry_after: Option<u64>,
) -> Response {
    let body = match standard {
        // OBIE answers 401 with no body at all.
        Standard::Obie if status == StatusCode::UNAUTHORIZED => Value::Null,
        Standard::Obie => json!({
            "Code": status.as_u16().to_string(),
            "Id": uuid::Uuid::now_v7().to_string(),
            "Message": text,
            "Errors": [{"ErrorCode": code, "Message": text}],
        }),
        Standard::BerlinGroup => json!({
            "tppMessages": [{"category": "ERROR", "code": code, "text": text}],
        }),
        Standard::OpenFinanceBrasil => json!({
            "errors": [{"code": code, "title": title(status), "detail": text}],
            "meta": {"totalRecords": 1, "totalPages": 1, "requestDateTime": brasil_time(crate::now())},
        }),
    };
    let mut resp = if body.is_null() {
        status.into_response()
    } else {
        (status, Json(body)).into_response()
    };
    if let Some(secs) = retry_after {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    resp
}

fn title(status: StatusCode) -> &'static str {
    status.canonical_reason().unwrap_or("Error")
}

/// Applies the bank's injected fault to this call, if it has one.
pub async fn fault(sb: &Sandbox, bank: &Bank) -> Option<Response> {
    let taken = sb.take_fault(bank)?;
    let std = bank.standard;
    Some(match taken.kind {
        FaultKind::Slow => {
            tokio::time::sleep(taken.delay).await;
            return None;
        }
        FaultKind::ProviderFailure => {
            let code = match std {
                Standard::Obie => "UK.OBIE.UnexpectedError",
                Standard::BerlinGroup => "INTERNAL_SERVER_ERROR",
                Standard::OpenFinanceBrasil => "ERRO_INTERNO",
            };
            error(
                std,
                StatusCode::INTERNAL_SERVER_ERROR,
                code,
                "the bank failed to answer (injected fault)",
                None,
            )
        }
        FaultKind::ReauthRequired => match std {
            Standard::Obie => error(
                std,
                StatusCode::FORBIDDEN,
                "UK.OBIE.Reauthenticate",
                "the customer must authenticate again",
                None,
            ),
            Standard::BerlinGroup => error(
                std,
                StatusCode::UNAUTHORIZED,
                "CONSENT_EXPIRED",
                "the consent needs the customer again",
                None,
            ),
            Standard::OpenFinanceBrasil => error(
                std,
                StatusCode::UNAUTHORIZED,
                "NAO_AUTORIZADO",
                "the consent needs the customer again",
                None,
            ),
        },
        FaultKind::RateLimited => match std {
            // OBIE says when to come back; Berlin Group and Brasil do not.
            Standard::Obie => error(
                std,
                StatusCode::TOO_MANY_REQUESTS,
                "UK.OBIE.RateLimited",
                "too many requests",
                Some(2),
            ),
            Standard::BerlinGroup => error(
                std,
                StatusCode::TOO_MANY_REQUESTS,
                "ACCESS_EXCEEDED",
                "too many requests",
                None,
            ),
            Standard::OpenFinanceBrasil => error(
                std,
                StatusCode::TOO_MANY_REQUESTS,
                "LIMITE_REQUISICOES_EXCEDIDO",
                "too many requests",
                None,
            ),
        },
        FaultKind::Timeout => {
            tokio::time::sleep(sb.config.hold).await;
            error(
                std,
                StatusCode::GATEWAY_TIMEOUT,
                "TIMEOUT",
                "the bank's core system did not answer",
                None,
            )
        }
        FaultKind::Maintenance => {
            let code = match std {
                Standard::Obie => "UK.OBIE.ServiceUnavailable",
                Standard::BerlinGroup => "SERVICE_UNAVAILABLE",
                Standard::OpenFinanceBrasil => "MANUTENCAO",
            };
            error(
                std,
                StatusCode::SERVICE_UNAVAILABLE,
                code,
                "the bank is down for maintenance",
                Some(60),
            )
        }
    })
}

/// Seconds until the next UTC midnight, when a day's budget resets.
pub fn until_midnight() -> u64 {
    let now = OffsetDateTime::now_utc();
    let midnight = (now.date() + time::Duration::DAY).midnight().assume_utc();
    (midnight - now).whole_seconds().max(1) as u64
}

/// RFC 3339 with an offset, e.g. `2026-11-25T10:00:00+00:00` (OBIE).
pub fn obie_time(t: OffsetDateTime) -> String {
    t.format(format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second]+00:00"
    ))
    .unwrap_or_default()
}

/// `2026-11-25T10:00:00Z`: Brasil's 20-character date-times.
pub fn brasil_time(t: OffsetDateTime) -> String {
    t.format(format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second]Z"
    ))
    .unwrap_or_default()
}

/// `2026-11-25T10:00:00.000Z`: Brasil's transaction times.
pub fn brasil_millis(t: OffsetDateTime) -> String {
    t.format(format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].000Z"
    ))
    .unwrap_or_default()
}

pub fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

pub fn ymd(d: time::Date) -> String {
    d.format(format_description!("[year]-[month]-[day]"))
        .unwrap_or_default()
}

/// A date-time from a query: RFC 3339, or a bare local date-time / date taken as UTC.
pub fn parse_when(s: &str) -> Option<OffsetDateTime> {
    if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
        return Some(t);
    }
    let date = time::Date::parse(s.get(..10)?, format_description!("[year]-[month]-[day]")).ok()?;
    let rest = &s[10..];
    if rest.is_empty() {
        return Some(date.midnight().assume_utc());
    }
    let t = time::Time::parse(
        rest.trim_start_matches('T').get(..8)?,
        format_description!("[hour]:[minute]:[second]"),
    )
    .ok()?;
    Some(date.with_time(t).assume_utc())
}

/// An unsigned amount with two decimals.
pub fn unsigned(a: Decimal) -> String {
    format!("{:.2}", a.abs())
}

/// A signed amount with two decimals.
pub fn signed(a: Decimal) -> String {
    format!("{a:.2}")
}

/// Sets the interaction id header the FAPI standards echo.
pub fn with_interaction(mut resp: Response, headers: &HeaderMap) -> Response {
    let id = header(headers, "x-fapi-interaction-id")
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert("x-fapi-interaction-id", v);
    }
    resp
}

/// A URL with its `page` query parameter set to `page`.
pub fn with_page(url: &str, page: usize) -> String {
    let (path, query) = url.split_once('?').unwrap_or((url, ""));
    let mut pairs: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .filter(|(k, _)| k != "page")
        .collect();
    pairs.push(("page".into(), page.to_string()));
    let q = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    format!("{path}?{q}")
}

/// One page of `rows`, pages numbered from 1. After the first, each page starts with the
/// last row of the one before: real banks repeat rows across pages, and clients must cope.
pub fn page<T: Clone>(rows: &[T], page: usize, size: usize, repeat: bool) -> (Vec<T>, usize) {
    let size = size.max(1);
    let pages = rows.len().div_ceil(size).max(1);
    let start = (page - 1) * size;
    let from = if repeat && page > 1 { start - 1 } else { start };
    let end = (start + size).min(rows.len());
    (
        rows.get(from.min(end)..end)
            .map(<[T]>::to_vec)
            .unwrap_or_default(),
        pages,
    )
}
