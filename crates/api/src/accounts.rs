//! Reading what refreshes found: accounts with balances, transactions, and the sync feed of
//! what changed since a cursor.

use axum::{
    Json,
    extract::{Path, State},
};
use freshet_model::{
    reconcile::TxnStatus,
    refresh::{Account, AccountId, Balance, Transaction},
};
use freshet_store::TxnFilter;
use serde::{Deserialize, Serialize};
use time::{Date, OffsetDateTime};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::{
    auth::Tenant,
    customers::ListParams,
    extract::{Query, parse_id},
    problem::{ApiError, Problem},
    state::AppState,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_accounts))
        .routes(routes!(list_transactions))
        .routes(routes!(sync_transactions))
}

/// An account.
#[derive(Serialize, utoipa::ToSchema)]
pub struct AccountOut {
    id: Uuid,
    customer_id: Uuid,
    consent_id: Uuid,
    provider_id: String,
    /// The bank's id for it.
    bank_account_id: String,
    currency: String,
    name: Option<String>,
    /// The standard's account type, e.g. `Personal/CurrentAccount`, `CACC`.
    kind: Option<String>,
    /// IBAN, sort code and number, or branch and number.
    identification: Option<String>,
    balances: Vec<Balance>,
    /// The bank no longer lists it.
    removed: bool,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    updated_at: OffsetDateTime,
}

impl From<Account> for AccountOut {
    fn from(a: Account) -> Self {
        Self {
            id: a.id.0,
            customer_id: a.customer_id.0,
            consent_id: a.consent_id.0,
            provider_id: a.provider_id,
            bank_account_id: a.bank_account_id,
            currency: a.currency,
            name: a.name,
            kind: a.kind,
            identification: a.identification,
            balances: a.balances,
            removed: a.removed,
            updated_at: a.updated_at,
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct AccountListOut {
    data: Vec<AccountOut>,
}

/// Lists a customer's accounts with their latest balances.
#[utoipa::path(
    get, path = "/v1/customers/{customer_id}/accounts", tag = "accounts",
    params(("customer_id" = Uuid, Path)),
    responses(
        (status = 200, body = AccountListOut),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
async fn list_accounts(
    Tenant(app): Tenant,
    State(state): State<AppState>,
    Path(customer): Path<String>,
) -> Result<Json<AccountListOut>, ApiError> {
    let customer = crate::customers::customer_id(&customer)?;
    state
        .store
        .get_customer(app, customer)
        .await?
        .ok_or(ApiError::NotFound("customer"))?;
    let data = state
        .store
        .customer_accounts(app, customer)
        .await?
        .into_iter()
        .map(AccountOut::from)
        .collect();
    Ok(Json(AccountListOut { data }))
}

/// A transaction.
#[derive(Serialize, utoipa::ToSchema)]
pub struct TransactionOut {
    id: Uuid,
    account_id: Uuid,
    /// The bank's id, when it gives one.
    provider_transaction_id: Option<String>,
    status: TransactionStatus,
    #[serde(with = "crate::extract::ymd")]
    #[schema(value_type = String, format = Date)]
    booking_date: Date,
    /// Signed: negative leaves the account.
    #[schema(value_type = String)]
    amount: rust_decimal::Decimal,
    currency: String,
    description: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    updated_at: OffsetDateTime,
}

/// Whether a transaction has settled.
#[derive(Serialize, Deserialize, Clone, Copy, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TransactionStatus {
    Booked,
    Pending,
}

impl From<TxnStatus> for TransactionStatus {
    fn from(s: TxnStatus) -> Self {
        match s {
            TxnStatus::Booked => Self::Booked,
            TxnStatus::Pending => Self::Pending,
        }
    }
}

impl From<Transaction> for TransactionOut {
    fn from(t: Transaction) -> Self {
        Self {
            id: t.id.0,
            account_id: t.account_id.0,
            provider_transaction_id: t.provider_transaction_id,
            status: t.status.into(),
            booking_date: t.booking_date,
            amount: t.amount,
            currency: t.currency,
            description: t.description,
            updated_at: t.updated_at,
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct TransactionListOut {
    data: Vec<TransactionOut>,
    next_cursor: Option<String>,
}

/// Filters and paging of a transaction list.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TransactionParams {
    /// Booked on or after this date.
    #[serde(default, with = "crate::extract::ymd::option")]
    #[param(value_type = Option<String>, format = Date)]
    from: Option<Date>,
    /// Booked on or before this date.
    #[serde(default, with = "crate::extract::ymd::option")]
    #[param(value_type = Option<String>, format = Date)]
    to: Option<Date>,
    status: Option<TransactionStatus>,
    limit: Option<u32>,
    cursor: Option<String>,
}

async fn account(
    state: &AppState,
    app: freshet_model::ApplicationId,
    raw: &str,
) -> Result<Account, ApiError> {
    let id = AccountId(parse_id("account_id", raw)?);
    state
        .store
        .get_account(app, id)
        .await?
        .ok_or(ApiError::NotFound("account"))
}

/// Lists an account's transactions, newest first.
#[utoipa::path(
    get, path = "/v1/accounts/{account_id}/transactions", tag = "accounts",
    params(("account_id" = Uuid, Path), TransactionParams),
    responses(
        (status = 200, body = TransactionListOut),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
async fn list_transactions(
    Tenant(app): Tenant,
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<TransactionParams>,
) -> Result<Json<TransactionListOut>, ApiError> {
    let account = account(&state, app, &id).await?;
    let page = ListParams::new(q.limit, q.cursor).page()?;
    let filter = TxnFilter {
        from: q.from,
        to: q.to,
        status: q.status.map(|s| match s {
            TransactionStatus::Booked => TxnStatus::Booked,
            TransactionStatus::Pending => TxnStatus::Pending,
        }),
    };
    let page = state
        .store
        .list_transactions(account.id, &filter, page)
        .await?
        .map(TransactionOut::from);
    Ok(Json(TransactionListOut {
        data: page.data,
        next_cursor: page.next_cursor,
    }))
}

/// Where a sync left off.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SyncParams {
    /// The `next_cursor` of the previous call; from the beginning when left out.
    cursor: Option<String>,
    /// Rows per call, 1 to 500 (default 100).
    limit: Option<u32>,
}

/// What changed since a cursor.
#[derive(Serialize, utoipa::ToSchema)]
pub struct SyncOut {
    added: Vec<TransactionOut>,
    /// Held transactions the bank changed: booked, re-dated, re-identified.
    modified: Vec<TransactionOut>,
    /// Held transactions the bank no longer lists (a pending item that vanished).
    removed: Vec<TransactionOut>,
    next_cursor: String,
    has_more: bool,
}

fn parse_cursor(raw: Option<&str>) -> Result<i64, ApiError> {
    match raw {
        None => Ok(0),
        Some(c) => c
            .strip_prefix("s1_")
            .and_then(|n| n.parse::<i64>().ok())
            .filter(|n| *n >= 0)
            .ok_or_else(|| ApiError::bad_field("cursor", "is not a cursor this API returned")),
    }
}

/// Transactions added, modified and removed since `cursor` (Plaid's `/transactions/sync`).
#[utoipa::path(
    get, path = "/v1/accounts/{account_id}/transactions/sync", tag = "accounts",
    params(("account_id" = Uuid, Path), SyncParams),
    responses(
        (status = 200, body = SyncOut),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
async fn sync_transactions(
    Tenant(app): Tenant,
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<SyncParams>,
) -> Result<Json<SyncOut>, ApiError> {
    let account = account(&state, app, &id).await?;
    let after = parse_cursor(q.cursor.as_deref())?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::bad_field("limit", "must be 1 to 500"));
    }
    let page = state
        .store
        .sync_transactions(account.id, after, limit)
        .await?;
    let out = |v: Vec<Transaction>| v.into_iter().map(TransactionOut::from).collect();
    Ok(Json(SyncOut {
        added: out(page.added),
        modified: out(page.modified),
        removed: out(page.removed),
        next_cursor: format!("s1_{}", page.next_seq),
        has_more: page.has_more,
    }))
}
