//! The Berlin Group banks (tatrabanka, slsp): NextGenPSD2 XS2A 1.3.
//!
//! As the standard and its best-known implementation have it: every call needs
//! `X-Request-ID`, data calls `Consent-ID`; a new recurring consent ends the customer's older
//! one; the unattended budget runs out as 429 `ACCESS_EXCEEDED` with no `Retry-After`; ids
//! promise nothing, so some booking dates shift between fetches.

use std::collections::HashMap;

use axum::{
    Json, Router,
    body::Bytes,
    extract::{OriginalUri, Path, Query, State},
    http::{HeaderMap, HeaderValue, StatusCode, Uri},
    response::{IntoResponse, Response},
    routing::get,
};
use serde_json::{Value, json};

use crate::{
    Sandbox,
    bank::{Consent, ConsentState, Denied},
    catalogue::{Bank, Standard},
    data::{Account, AccountKind, Txn, TxnState, hash},
    web::{self, bearer, error, header, signed, ymd},
};

pub fn routes() -> Router<Sandbox> {
    Router::new()
        .route("/{bank}/v1/consents", axum::routing::post(create_consent))
        .route(
            "/{bank}/v1/consents/{id}",
            get(get_consent).delete(delete_consent),
        )
        .route("/{bank}/v1/consents/{id}/status", get(consent_status))
        .route("/{bank}/v1/accounts", get(accounts))
        .route("/{bank}/v1/accounts/{account}/balances", get(balances))
        .route(
            "/{bank}/v1/accounts/{account}/transactions",
            get(transactions),
        )
}

/// The longest a consent is granted for, in days.
const MAX_DAYS: i64 = 180;

fn fail(status: StatusCode, code: &str, text: &str) -> Response {
    error(Standard::BerlinGroup, status, code, text, None)
}

/// A call to this bank: the shared start, and the `X-Request-ID` every answer echoes.
struct Call<'a> {
    base: web::Call<'a>,
    request_id: String,
}

impl<'a> std::ops::Deref for Call<'a> {
    type Target = web::Call<'a>;

    fn deref(&self) -> &Self::Target {
        &self.base
    }
}

impl<'a> Call<'a> {
    async fn start(
        sb: &'a Sandbox,
        bank: &str,
        headers: &'a HeaderMap,
        original: &OriginalUri,
        uri: &Uri,
    ) -> Result<Self, Response> {
        let request_id = |h: &HeaderMap| {
            header(h, "x-request-id")
                .filter(|id| uuid::Uuid::parse_str(id).is_ok())
                .map(str::to_string)
        };
        let check = |h: &HeaderMap| match request_id(h) {
            Some(_) => Ok(()),
            None => Err(fail(
                StatusCode::BAD_REQUEST,
                "FORMAT_ERROR",
                "X-Request-ID must be a UUID",
            )),
        };
        let base = web::Call::start(
            sb,
            bank,
            Standard::BerlinGroup,
            headers,
            (original, uri),
            check,
        )
        .await?;
        let request_id = request_id(headers).unwrap_or_default();
        Ok(Self { base, request_id })
    }

    fn reply(&self, status: StatusCode, body: Value) -> Response {
        let mut resp = (status, Json(body)).into_response();
        if let Ok(v) = HeaderValue::from_str(&self.request_id) {
            resp.headers_mut().insert("x-request-id", v);
        }
        resp
    }

    fn authorise(&self, budget: Option<&str>) -> Result<(Consent, Vec<Account>), Response> {
        let named = header(self.headers, "consent-id").ok_or_else(|| {
            fail(
                StatusCode::BAD_REQUEST,
                "FORMAT_ERROR",
                "Consent-ID is required",
            )
        })?;
        let present = header(self.headers, "psu-ip-address").is_some();
        self.sb
            .authorise_call(
                self.bank,
                bearer(self.headers),
                Some(named),
                budget,
                present,
            )
            .map_err(|d| match d {
                Denied::Token => fail(
                    StatusCode::UNAUTHORIZED,
                    "TOKEN_INVALID",
                    "the access token is not valid",
                ),
                Denied::Mismatch => fail(
                    StatusCode::FORBIDDEN,
                    "CONSENT_UNKNOWN",
                    "Consent-ID does not match the token",
                ),
                Denied::Expired | Denied::Consent(ConsentState::Superseded) => fail(
                    StatusCode::UNAUTHORIZED,
                    "CONSENT_EXPIRED",
                    "the consent has expired",
                ),
                Denied::Consent(_) => fail(
                    StatusCode::UNAUTHORIZED,
                    "CONSENT_INVALID",
                    "the consent is not valid",
                ),
                Denied::Budget => fail(
                    StatusCode::TOO_MANY_REQUESTS,
                    "ACCESS_EXCEEDED",
                    "the access frequency for today is used up",
                ),
            })
    }
}

fn status_of(c: &Consent) -> &'static str {
    match c.state {
        ConsentState::Awaiting => "received",
        ConsentState::Authorised if c.expired(crate::now()) => "expired",
        ConsentState::Authorised => "valid",
        ConsentState::Rejected => "rejected",
        ConsentState::Deleted => "terminatedByTpp",
        ConsentState::RevokedByCustomer => "revokedByPsu",
        ConsentState::Superseded => "expired",
    }
}

async fn create_consent(
    State(sb): State<Sandbox>,
    Path(bank): Path<String>,
    headers: HeaderMap,
    original: OriginalUri,
    uri: Uri,
    body: Bytes,
) -> Response {
    let call = tri!(Call::start(&sb, &bank, &headers, &original, &uri).await);
    let Ok(req) = serde_json::from_slice::<Value>(&body) else {
        return fail(
            StatusCode::BAD_REQUEST,
            "FORMAT_ERROR",
            "the body is not JSON",
        );
    };
    let Some(access) = req.get("access").filter(|a| a.is_object()) else {
        return fail(
            StatusCode::BAD_REQUEST,
            "FORMAT_ERROR",
            "access is required",
        );
    };
    let Some(recurring) = req.get("recurringIndicator").and_then(Value::as_bool) else {
        return fail(
            StatusCode::BAD_REQUEST,
            "FORMAT_ERROR",
            "recurringIndicator is required",
        );
    };
    let Some(valid_until) = req.get("validUntil").and_then(Value::as_str).and_then(|d| {
        time::Date::parse(d, time::macros::format_description!("[year]-[month]-[day]")).ok()
    }) else {
        return fail(
            StatusCode::BAD_REQUEST,
            "FORMAT_ERROR",
            "validUntil must be a date (YYYY-MM-DD)",
        );
    };
    if valid_until < crate::now().date() {
        return fail(
            StatusCode::BAD_REQUEST,
            "PERIOD_INVALID",
            "validUntil is in the past",
        );
    }
    let frequency = req
        .get("frequencyPerDay")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    if !(1..=4).contains(&frequency) && recurring {
        return fail(
            StatusCode::BAD_REQUEST,
            "FORMAT_ERROR",
            "frequencyPerDay must be 1 to 4 for recurring access",
        );
    }
    // Banks grant at most 180 days, whatever is asked (9999-12-31, the standard's "as long
    // as possible", included), and say so in the consent's validUntil.
    let valid_until = valid_until.min(crate::now().date() + time::Duration::days(MAX_DAYS));
    let consent = sb.create_consent(call.bank, |c| {
        c.recurring = recurring;
        c.access = access.clone();
        c.frequency_per_day = frequency as u32;
        c.expires_at = Some((valid_until + time::Duration::DAY).midnight().assume_utc());
        c.redirect_uri = header(&headers, "tpp-redirect-uri").map(str::to_string);
        // Where the bank notifies the TPP of new transactions (docs/sandbox.md).
        c.notification_uri = header(&headers, "tpp-notification-uri").map(str::to_string);
    });
    let self_url = format!("{}/v1/consents/{}", call.api_base(), consent.id);
    let paths = call.bank.paths(&call.root);
    // Strict banks use the OAuth SCA approach: the client builds the authorisation request.
    let (approach, sca) = if sb.is_strict() {
        let metadata = format!(
            "{}/{}/.well-known/oauth-authorization-server",
            call.root, call.bank.id
        );
        ("OAUTH", json!({"scaOAuth": {"href": metadata}}))
    } else {
        let href = format!("{}?consent_id={}", paths.authorize, consent.id);
        ("REDIRECT", json!({"scaRedirect": {"href": href}}))
    };
    let mut links = json!({
        "self": {"href": self_url},
        "status": {"href": format!("{self_url}/status")},
    });
    for (k, v) in sca.as_object().into_iter().flatten() {
        links[k] = v.clone();
    }
    let mut resp = call.reply(
        StatusCode::CREATED,
        json!({"consentStatus": "received", "consentId": consent.id, "_links": links}),
    );
    if let Ok(v) = HeaderValue::from_str(&self_url) {
        resp.headers_mut().insert("location", v);
    }
    resp.headers_mut()
        .insert("aspsp-sca-approach", HeaderValue::from_static(approach));
    resp
}

fn known(sb: &Sandbox, bank: &Bank, id: &str) -> Result<Consent, Response> {
    sb.consent(bank, id)
        .ok_or_else(|| fail(StatusCode::FORBIDDEN, "CONSENT_UNKNOWN", "no such consent"))
}

async fn get_consent(
    State(sb): State<Sandbox>,
    Path((bank, id)): Path<(String, String)>,
    headers: HeaderMap,
    original: OriginalUri,
    uri: Uri,
) -> Response {
    let call = tri!(Call::start(&sb, &bank, &headers, &original, &uri).await);
    let c = tri!(known(&sb, call.bank, &id));
    let valid_until = c.expires_at.map_or("9999-12-31".to_string(), |t| {
        ymd(t.date() - time::Duration::DAY)
    });
    call.reply(
        StatusCode::OK,
        json!({
            "access": c.access,
            "recurringIndicator": c.recurring,
            "validUntil": valid_until,
            "frequencyPerDay": c.frequency_per_day,
            "lastActionDate": ymd(c.updated_at.date()),
            "consentStatus": status_of(&c),
            "_links": {"status": {"href": format!("{}/status", call.self_url)}},
        }),
    )
}

async fn consent_status(
    State(sb): State<Sandbox>,
    Path((bank, id)): Path<(String, String)>,
    headers: HeaderMap,
    original: OriginalUri,
    uri: Uri,
) -> Response {
    let call = tri!(Call::start(&sb, &bank, &headers, &original, &uri).await);
    let c = tri!(known(&sb, call.bank, &id));
    call.reply(StatusCode::OK, json!({"consentStatus": status_of(&c)}))
}

async fn delete_consent(
    State(sb): State<Sandbox>,
    Path((bank, id)): Path<(String, String)>,
    headers: HeaderMap,
    original: OriginalUri,
    uri: Uri,
) -> Response {
    let call = tri!(Call::start(&sb, &bank, &headers, &original, &uri).await);
    tri!(known(&sb, call.bank, &id));
    sb.delete(call.bank, &id);
    let mut resp = StatusCode::NO_CONTENT.into_response();
    if let Ok(v) = HeaderValue::from_str(&call.request_id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    resp
}

fn account_json(a: &Account, bank: &Bank, base: &str) -> Value {
    let href = format!("{base}/v1/accounts/{}", a.id);
    json!({
        "resourceId": a.id,
        "iban": a.iban,
        "currency": a.currency,
        "name": a.name,
        "product": if a.kind == AccountKind::Savings { "Sporenie" } else { "Osobný účet" },
        "cashAccountType": if a.kind == AccountKind::Savings { "SVGS" } else { "CACC" },
        "status": "enabled",
        "bic": bank.institution,
        "usage": "PRIV",
        "_links": {"balances": {"href": format!("{href}/balances")}, "transactions": {"href": format!("{href}/transactions")}},
    })
}

async fn accounts(
    State(sb): State<Sandbox>,
    Path(bank): Path<String>,
    headers: HeaderMap,
    original: OriginalUri,
    uri: Uri,
) -> Response {
    let call = tri!(Call::start(&sb, &bank, &headers, &original, &uri).await);
    let (_, accounts) = tri!(call.authorise(Some("accounts")));
    let base = call.api_base();
    let list: Vec<Value> = accounts
        .iter()
        .map(|a| account_json(a, call.bank, &base))
        .collect();
    call.reply(StatusCode::OK, json!({"accounts": list}))
}

fn find<'a>(accounts: &'a [Account], id: &str) -> Result<&'a Account, Response> {
    web::find_account(accounts, id, || {
        fail(
            StatusCode::NOT_FOUND,
            "RESOURCE_UNKNOWN",
            "no such account under this consent",
        )
    })
}

async fn balances(
    State(sb): State<Sandbox>,
    Path((bank, id)): Path<(String, String)>,
    headers: HeaderMap,
    original: OriginalUri,
    uri: Uri,
) -> Response {
    let call = tri!(Call::start(&sb, &bank, &headers, &original, &uri).await);
    let (_, accounts) = tri!(call.authorise(Some(&format!("accounts/{id}/balances"))));
    let a = tri!(find(&accounts, &id));
    let (booked, available) = sb.balances(call.bank, a);
    let now = crate::now();
    call.reply(
        StatusCode::OK,
        json!({
            "account": {"iban": a.iban, "currency": a.currency},
            "balances": [
                {"balanceAmount": {"currency": a.currency, "amount": signed(booked)}, "balanceType": "closingBooked", "referenceDate": ymd(now.date() - time::Duration::DAY)},
                {"balanceAmount": {"currency": a.currency, "amount": signed(available)}, "balanceType": "interimAvailable", "lastChangeDateTime": web::rfc3339(now)},
            ],
        }),
    )
}

async fn transactions(
    State(sb): State<Sandbox>,
    Path((bank, id)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    original: OriginalUri,
    uri: Uri,
) -> Response {
    let call = tri!(Call::start(&sb, &bank, &headers, &original, &uri).await);
    let status = q.get("bookingStatus").map(String::as_str);
    let (want_booked, want_pending) = match status {
        Some("booked") => (true, false),
        Some("pending") => (false, true),
        Some("both") => (true, true),
        Some(_) => {
            return fail(
                StatusCode::BAD_REQUEST,
                "PARAMETER_NOT_SUPPORTED",
                "bookingStatus must be booked, pending or both",
            );
        }
        None => {
            return fail(
                StatusCode::BAD_REQUEST,
                "FORMAT_ERROR",
                "bookingStatus is required",
            );
        }
    };
    let date = |key: &str| {
        web::query_date(&q, key).map_err(|why| fail(StatusCode::BAD_REQUEST, "FORMAT_ERROR", &why))
    };
    let from = tri!(date("dateFrom"));
    let to = tri!(date("dateTo"));
    let page: usize = match q.get("page").map(|p| p.parse()) {
        None => 1,
        Some(Ok(p)) if p >= 1 => p,
        Some(_) => {
            return fail(
                StatusCode::BAD_REQUEST,
                "FORMAT_ERROR",
                "page must be a positive integer",
            );
        }
    };
    let budget = (page == 1).then(|| format!("accounts/{id}/transactions"));
    let (_, accounts) = tri!(call.authorise(budget.as_deref()));
    let a = tri!(find(&accounts, &id));
    let today = crate::now().date();
    let from = from.unwrap_or(today - time::Duration::days(crate::data::HISTORY_DAYS));
    let (mut rows, fetches) = sb.transactions(call.bank, a, from, to.unwrap_or(today), page == 1);
    rows.retain(|t| {
        if t.state == TxnState::Booked {
            want_booked
        } else {
            want_pending
        }
    });
    rows.sort_by_key(|t| (t.state == TxnState::Pending, t.date, t.seconds));
    let (rows, pages) = web::page(&rows, page, sb.config.page_size, true);
    let mut booked = Vec::new();
    let mut pending = Vec::new();
    for t in &rows {
        let row = txn_json(t, a, fetches);
        if t.state == TxnState::Booked {
            booked.push(row)
        } else {
            pending.push(row)
        }
    }
    let mut links =
        json!({"account": {"href": format!("{}/v1/accounts/{}", call.api_base(), a.id)}});
    if page < pages {
        links["next"] = json!({"href": web::with_page(&call.self_url, page + 1)});
    }
    let mut transactions = json!({"_links": links});
    if want_booked {
        transactions["booked"] = json!(booked);
    }
    if want_pending {
        transactions["pending"] = json!(pending);
    }
    call.reply(
        StatusCode::OK,
        json!({"account": {"iban": a.iban, "currency": a.currency}, "transactions": transactions}),
    )
}

fn txn_json(t: &Txn, a: &Account, fetches: u32) -> Value {
    // One booked item in thirteen moves its booking date by a day on every other fetch.
    let shifts =
        t.state == TxnState::Booked && hash(&[t.id.as_bytes(), a.id.as_bytes()]).is_multiple_of(13);
    let booking = if shifts && fetches % 2 == 1 {
        t.date + time::Duration::DAY
    } else {
        t.date
    };
    let mut row = json!({
        "transactionId": t.id,
        "entryReference": t.id,
        "valueDate": ymd(t.date),
        "transactionAmount": {"currency": a.currency, "amount": signed(t.amount)},
        "remittanceInformationUnstructured": t.description,
    });
    if t.state == TxnState::Booked {
        row["bookingDate"] = json!(ymd(booking));
    }
    let party = if t.amount.is_sign_negative() {
        "creditorName"
    } else {
        "debtorName"
    };
    row[party] = json!(t.counterparty.chars().take(70).collect::<String>());
    row
}
