//! The OBIE banks (natwest, lloyds): Account and Transaction API v3.1.
//!
//! As the standard has it: a consent revoked or expired at the bank keeps `Status:
//! Authorised` and data calls answer 401 with no body; unknown resources are 400
//! `UK.OBIE.Resource.NotFound`; the unattended budget runs out as 429 with `Retry-After`.

use std::collections::HashMap;

use axum::{
    Extension, Json, Router,
    body::Bytes,
    extract::{OriginalUri, Path, Query, State},
    http::{HeaderMap, StatusCode, Uri},
    response::{IntoResponse, Response},
    routing::get,
};
use serde_json::{Value, json};

use crate::{
    Sandbox,
    bank::{Consent, ConsentState, Denied},
    catalogue::{Bank, Standard},
    data::{Account, AccountKind, TxnState},
    strict::{self, Peer},
    web::{self, bearer, error, header, obie_time, unsigned},
};

const API: &str = "/{bank}/open-banking/v3.1/aisp";

pub fn routes() -> Router<Sandbox> {
    Router::new()
        .route(
            &format!("{API}/account-access-consents"),
            axum::routing::post(create_consent),
        )
        .route(
            &format!("{API}/account-access-consents/{{id}}"),
            get(get_consent).delete(delete_consent),
        )
        .route(&format!("{API}/accounts"), get(accounts))
        .route(&format!("{API}/accounts/{{account}}"), get(account))
        .route(
            &format!("{API}/accounts/{{account}}/balances"),
            get(balances),
        )
        .route(
            &format!("{API}/accounts/{{account}}/transactions"),
            get(transactions),
        )
}

/// Permissions the standard defines for account access.
const PERMISSIONS: &[&str] = &[
    "ReadAccountsBasic",
    "ReadAccountsDetail",
    "ReadBalances",
    "ReadBeneficiariesBasic",
    "ReadBeneficiariesDetail",
    "ReadDirectDebits",
    "ReadOffers",
    "ReadPAN",
    "ReadParty",
    "ReadPartyPSU",
    "ReadProducts",
    "ReadScheduledPaymentsBasic",
    "ReadScheduledPaymentsDetail",
    "ReadStandingOrdersBasic",
    "ReadStandingOrdersDetail",
    "ReadStatementsBasic",
    "ReadStatementsDetail",
    "ReadTransactionsBasic",
    "ReadTransactionsCredits",
    "ReadTransactionsDebits",
    "ReadTransactionsDetail",
];

fn field_error(code: &str, path: &str, message: &str) -> Response {
    let body = json!({
        "Code": "400",
        "Id": uuid::Uuid::now_v7().to_string(),
        "Message": "the request is invalid",
        "Errors": [{"ErrorCode": code, "Message": message, "Path": path}],
    });
    (StatusCode::BAD_REQUEST, Json(body)).into_response()
}

fn not_found(what: &str) -> Response {
    error(
        Standard::Obie,
        StatusCode::BAD_REQUEST,
        "UK.OBIE.Resource.NotFound",
        &format!("no such {what}"),
        None,
    )
}

/// A call to this bank: the shared start, seen through [`web::Call`].
struct Call<'a>(web::Call<'a>);

impl<'a> std::ops::Deref for Call<'a> {
    type Target = web::Call<'a>;

    fn deref(&self) -> &Self::Target {
        &self.0
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
        web::Call::start(sb, bank, Standard::Obie, headers, (original, uri), |_| {
            Ok(())
        })
        .await
        .map(Self)
    }

    fn reply(&self, status: StatusCode, body: Value) -> Response {
        web::with_interaction((status, Json(body)).into_response(), self.headers)
    }

    /// The consent and accounts behind the bearer token; `budget` names the endpoint when the
    /// call counts against the unattended budget.
    fn authorise(&self, budget: Option<&str>) -> Result<(Consent, Vec<Account>), Response> {
        let present = header(self.headers, "x-fapi-customer-ip-address").is_some();
        self.sb
            .authorise_call(self.bank, bearer(self.headers), None, budget, present)
            .map_err(|d| match d {
                Denied::Token | Denied::Expired | Denied::Mismatch => {
                    error(Standard::Obie, StatusCode::UNAUTHORIZED, "", "", None)
                }
                Denied::Consent(_) => error(
                    Standard::Obie,
                    StatusCode::FORBIDDEN,
                    "UK.OBIE.Resource.InvalidConsentStatus",
                    "the consent is not authorised",
                    None,
                ),
                Denied::Budget => error(
                    Standard::Obie,
                    StatusCode::TOO_MANY_REQUESTS,
                    "UK.OBIE.RateLimited",
                    "unattended access for today is used up",
                    Some(web::until_midnight()),
                ),
            })
    }
}

fn consent_body(c: &Consent, self_url: String) -> Value {
    let status = match c.state {
        ConsentState::Awaiting => "AwaitingAuthorisation",
        ConsentState::Rejected => "Rejected",
        // Revocation and expiry leave the resource as it was: the tokens stop working.
        _ => "Authorised",
    };
    let mut data = json!({
        "ConsentId": c.id,
        "CreationDateTime": obie_time(c.created_at),
        "Status": status,
        "StatusUpdateDateTime": obie_time(c.updated_at),
        "Permissions": c.permissions,
    });
    for (key, value) in [
        ("ExpirationDateTime", c.expires_at),
        ("TransactionFromDateTime", c.history_from),
        ("TransactionToDateTime", c.history_to),
    ] {
        if let Some(t) = value {
            data[key] = json!(obie_time(t));
        }
    }
    json!({"Data": data, "Risk": {}, "Links": {"Self": self_url}, "Meta": {"TotalPages": 1}})
}

async fn create_consent(
    State(sb): State<Sandbox>,
    Path(bank): Path<String>,
    peer: Option<Extension<Peer>>,
    headers: HeaderMap,
    original: OriginalUri,
    uri: Uri,
    body: Bytes,
) -> Response {
    let call = tri!(Call::start(&sb, &bank, &headers, &original, &uri).await);
    tri!(strict::check_consent_creation(
        &sb,
        call.bank,
        &headers,
        peer.as_deref()
    ));
    let Ok(req) = serde_json::from_slice::<Value>(&body) else {
        return field_error("UK.OBIE.Field.Invalid", "", "the body is not JSON");
    };
    let Some(data) = req.get("Data").filter(|d| d.is_object()) else {
        return field_error("UK.OBIE.Field.Missing", "Data", "Data is required");
    };
    if !req.get("Risk").is_some_and(Value::is_object) {
        return field_error("UK.OBIE.Field.Missing", "Risk", "Risk is required");
    }
    let permissions: Vec<String> = match data.get("Permissions").and_then(Value::as_array) {
        Some(p) if !p.is_empty() => p
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        _ => {
            return field_error(
                "UK.OBIE.Field.Missing",
                "Data.Permissions",
                "at least one permission is required",
            );
        }
    };
    if let Some(bad) = permissions
        .iter()
        .find(|p| !PERMISSIONS.contains(&p.as_str()))
    {
        return field_error(
            "UK.OBIE.Field.Unexpected",
            "Data.Permissions",
            &format!("unknown permission {bad}"),
        );
    }
    let mut times = [None, None, None];
    for (slot, key) in times.iter_mut().zip([
        "ExpirationDateTime",
        "TransactionFromDateTime",
        "TransactionToDateTime",
    ]) {
        if let Some(v) = data.get(key) {
            match v.as_str().and_then(web::parse_when) {
                Some(t) => *slot = Some(t),
                None => {
                    return field_error(
                        "UK.OBIE.Field.InvalidDate",
                        &format!("Data.{key}"),
                        "not an ISO 8601 date-time",
                    );
                }
            }
        }
    }
    if times[0].is_some_and(|t| t <= crate::now()) {
        return field_error(
            "UK.OBIE.Field.InvalidDate",
            "Data.ExpirationDateTime",
            "the expiry is in the past",
        );
    }
    let consent = sb.create_consent(call.bank, |c| {
        c.permissions = permissions;
        [c.expires_at, c.history_from, c.history_to] = times;
    });
    let url = format!("{}/account-access-consents/{}", call.api_base(), consent.id);
    call.reply(StatusCode::CREATED, consent_body(&consent, url))
}

async fn get_consent(
    State(sb): State<Sandbox>,
    Path((bank, id)): Path<(String, String)>,
    headers: HeaderMap,
    original: OriginalUri,
    uri: Uri,
) -> Response {
    let call = tri!(Call::start(&sb, &bank, &headers, &original, &uri).await);
    match sb
        .consent(call.bank, &id)
        .filter(|c| c.state != ConsentState::Deleted)
    {
        Some(c) => call.reply(
            StatusCode::OK,
            consent_body(
                &c,
                format!("{}/account-access-consents/{id}", call.api_base()),
            ),
        ),
        None => not_found("consent"),
    }
}

async fn delete_consent(
    State(sb): State<Sandbox>,
    Path((bank, id)): Path<(String, String)>,
    headers: HeaderMap,
    original: OriginalUri,
    uri: Uri,
) -> Response {
    let call = tri!(Call::start(&sb, &bank, &headers, &original, &uri).await);
    if sb
        .consent(call.bank, &id)
        .is_some_and(|c| c.state == ConsentState::Deleted)
        || !sb.delete(call.bank, &id)
    {
        return not_found("consent");
    }
    web::with_interaction(StatusCode::NO_CONTENT.into_response(), &headers)
}

fn account_json(a: &Account, bank: &Bank) -> Value {
    json!({
        "AccountId": a.id,
        "Status": "Enabled",
        "Currency": a.currency,
        "AccountType": "Personal",
        "AccountSubType": if a.kind == AccountKind::Savings { "Savings" } else { "CurrentAccount" },
        "Nickname": a.name,
        "Account": [{
            "SchemeName": "UK.OBIE.SortCodeAccountNumber",
            "Identification": a.number,
            "Name": "Sandbox Customer",
        }],
        "Servicer": {"SchemeName": "UK.OBIE.BICFI", "Identification": bank.institution},
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
    let list: Vec<Value> = accounts
        .iter()
        .map(|a| account_json(a, call.bank))
        .collect();
    let url = format!("{}/accounts", call.api_base());
    call.reply(
        StatusCode::OK,
        json!({"Data": {"Account": list}, "Links": {"Self": url}, "Meta": {"TotalPages": 1}}),
    )
}

async fn account(
    State(sb): State<Sandbox>,
    Path((bank, id)): Path<(String, String)>,
    headers: HeaderMap,
    original: OriginalUri,
    uri: Uri,
) -> Response {
    let call = tri!(Call::start(&sb, &bank, &headers, &original, &uri).await);
    let (_, accounts) = tri!(call.authorise(Some(&format!("accounts/{id}"))));
    let Some(a) = accounts.iter().find(|a| a.id == id) else {
        return not_found("account");
    };
    let url = format!("{}/accounts/{id}", call.api_base());
    call.reply(StatusCode::OK, json!({"Data": {"Account": [account_json(a, call.bank)]}, "Links": {"Self": url}, "Meta": {"TotalPages": 1}}))
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
    let Some(a) = accounts.iter().find(|a| a.id == id) else {
        return not_found("account");
    };
    let (booked, available) = sb.balances(call.bank, a);
    let now = crate::now();
    let entry = |kind: &str, amount: rust_decimal::Decimal| {
        json!({
            "AccountId": a.id,
            "CreditDebitIndicator": if amount.is_sign_negative() { "Debit" } else { "Credit" },
            "Type": kind,
            "DateTime": obie_time(now),
            "Amount": {"Amount": unsigned(amount), "Currency": a.currency},
        })
    };
    let url = format!("{}/accounts/{id}/balances", call.api_base());
    call.reply(
        StatusCode::OK,
        json!({
            "Data": {"Balance": [entry("InterimBooked", booked), entry("InterimAvailable", available)]},
            "Links": {"Self": url},
            "Meta": {"TotalPages": 1},
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
    let page: usize = match q.get("page").map(|p| p.parse()) {
        None => 1,
        Some(Ok(p)) if p >= 1 => p,
        Some(_) => {
            return field_error(
                "UK.OBIE.Field.Invalid",
                "page",
                "page must be a positive integer",
            );
        }
    };
    let mut window = [None, None];
    for (slot, key) in window
        .iter_mut()
        .zip(["fromBookingDateTime", "toBookingDateTime"])
    {
        if let Some(v) = q.get(key) {
            match web::parse_when(v) {
                Some(t) => *slot = Some(t),
                None => {
                    return field_error(
                        "UK.OBIE.Field.InvalidDate",
                        key,
                        "not an ISO 8601 date-time",
                    );
                }
            }
        }
    }
    // Follow-up pages are exempt from the budget.
    let budget = (page == 1).then(|| format!("accounts/{id}/transactions"));
    let (consent, accounts) = tri!(call.authorise(budget.as_deref()));
    let Some(a) = accounts.iter().find(|a| a.id == id) else {
        return not_found("account");
    };
    let today = crate::now().date();
    let from = [window[0], consent.history_from]
        .into_iter()
        .flatten()
        .max()
        .map_or(
            today - time::Duration::days(crate::data::HISTORY_DAYS),
            |t| t.date(),
        );
    let to = [window[1], consent.history_to]
        .into_iter()
        .flatten()
        .min()
        .map_or(today, |t| t.date());
    let (mut rows, _) = sb.transactions(call.bank, a, from, to, page == 1);
    rows.sort_by_key(|t| (t.date, t.seconds));
    let (rows, pages) = web::page(&rows, page, sb.config.page_size, true);
    let list: Vec<Value> = rows
        .iter()
        .map(|t| {
            let when = t.date.midnight().assume_utc() + time::Duration::seconds(i64::from(t.seconds));
            let mut row = json!({
                "AccountId": a.id,
                "TransactionId": t.id,
                "CreditDebitIndicator": if t.amount.is_sign_negative() { "Debit" } else { "Credit" },
                "Status": if t.state == TxnState::Pending { "Pending" } else { "Booked" },
                "TransactionMutability": if t.state == TxnState::Pending { "Mutable" } else { "Immutable" },
                "BookingDateTime": obie_time(when),
                "ValueDateTime": obie_time(when),
                "TransactionInformation": t.description,
                "Amount": {"Amount": unsigned(t.amount), "Currency": a.currency},
            });
            if let Some(mcc) = t.mcc {
                row["MerchantDetails"] = json!({"MerchantName": t.counterparty, "MerchantCategoryCode": mcc});
            }
            row
        })
        .collect();
    let mut links = json!({"Self": call.self_url});
    if page < pages {
        links["Next"] = json!(web::with_page(&call.self_url, page + 1));
    }
    call.reply(
        StatusCode::OK,
        json!({"Data": {"Transaction": list}, "Links": links, "Meta": {"TotalPages": pages}}),
    )
}
